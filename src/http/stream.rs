//! The two streams: Server-Sent Events (`/v1/events`) and WebSocket (`/v1/ws`). Each is a
//! writer that drains its subscriber's queue onto the socket; neither ever holds up the
//! clock or another client.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message};
use bytes::Bytes;
use serde::Deserialize;

use super::params::{bad_request, stream_params};
use super::{AppState, ClientSlot};
use crate::sinks::filter::Filter;
use crate::sinks::hub::{Start, Subscription, Transport};
use crate::sinks::queue::Outgoing;

/// A comment (SSE) or ping (WebSocket) this often keeps proxies from closing idle streams.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

fn too_many() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header(("Retry-After", "5"))
        .json(
            serde_json::json!({"error": "the server has as many clients as --max-clients allows"}),
        )
}

/// The first clock message: `restarted` for a client resuming from a position that an
/// earlier process (or another replica) sent, `connected` otherwise.
fn clock_message(state: &AppState, transport: Transport, from: Option<&str>) -> Bytes {
    let mut json = serde_json::to_value(state.clock.state()).expect("serializable");
    json["type"] = "clock".into();
    let restarted = from.is_some_and(|p| state.hub.sent_before_this_process(p));
    json["reason"] = if restarted { "restarted" } else { "connected" }.into();
    transport.control("clock", json.to_string().as_bytes())
}

/// A position another replica sent a moment before this one's clock got there: wait (a
/// few ticks at most) for this clock to pass it, so the catch-up meets the live stream.
async fn wait_until_passed(state: &AppState, from: Option<&str>) {
    if let Some(p) = from {
        for _ in 0..100 {
            if !state.hub.position_ahead(p) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn lagged_message(state: &AppState, transport: Transport, missed: u64) -> Bytes {
    state
        .hub
        .metrics
        .clients_lagged
        .fetch_add(1, Ordering::Relaxed);
    let json = serde_json::json!({
        "type": "lagged",
        "missed": missed,
        "message": "you were too slow for the stream: events were dropped and you were skipped ahead",
    });
    transport.control("lagged", json.to_string().as_bytes())
}

/// `GET /v1/events?location_id=1,3&event_type=driver_ping&snapshot=1&from=POSITION`
pub async fn sse(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let params = match stream_params(&query) {
        Ok(p) => p,
        Err(e) => return bad_request(&e),
    };
    let state = state.into_inner();
    let Some(slot) = state.take_slot() else {
        return too_many();
    };
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let from = last_event_id.or(params.from);
    wait_until_passed(&state, from.as_deref()).await;
    let start = match &from {
        Some(p) => Start::After(p),
        None => Start::Live,
    };
    let sub = state
        .hub
        .subscribe(params.filter, Transport::Sse, start, params.snapshot);

    let mut first = b"retry: 3000\n\n".to_vec();
    first.extend_from_slice(&clock_message(&state, Transport::Sse, from.as_deref()));
    struct Writer {
        sub: Subscription,
        state: Arc<AppState>,
        _slot: ClientSlot,
        first: Option<Bytes>,
        done: bool,
    }
    let writer = Writer {
        sub,
        state,
        _slot: slot,
        first: Some(first.into()),
        done: false,
    };
    let body = futures_util::stream::unfold(writer, |mut w| async move {
        if let Some(first) = w.first.take() {
            return Some((Ok::<_, actix_web::Error>(first), w));
        }
        if w.done {
            return None;
        }
        let chunk = match tokio::time::timeout(KEEP_ALIVE, w.sub.queue.next()).await {
            Err(_) => Bytes::from_static(b": keep-alive\n\n"),
            Ok(Outgoing::Events(bytes, _) | Outgoing::Control(bytes)) => {
                // Behind? Send what else is queued in the same write.
                match w.sub.queue.try_next_data() {
                    None => bytes,
                    Some(more) => {
                        let mut joined = bytes.to_vec();
                        joined.extend_from_slice(&more);
                        while joined.len() < 1 << 18 {
                            match w.sub.queue.try_next_data() {
                                Some(b) => joined.extend_from_slice(&b),
                                None => break,
                            }
                        }
                        joined.into()
                    }
                }
            }
            Ok(Outgoing::Lagged(missed)) => lagged_message(&w.state, Transport::Sse, missed),
            Ok(Outgoing::Close(reason)) => {
                w.done = true;
                let json = serde_json::json!({"type": "close", "reason": reason});
                Transport::Sse.control("close", json.to_string().as_bytes())
            }
        };
        Some((Ok(chunk), w))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// A WebSocket client's message: a new filter (and optionally a snapshot for it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    location_id: Option<Vec<u8>>,
    event_type: Option<Vec<String>>,
    #[serde(default)]
    snapshot: bool,
}

fn parse_filter_message(text: &str) -> Result<(Filter, bool), String> {
    let m: ClientMessage = serde_json::from_str(text).map_err(|e| {
        format!(
            "expected {{\"type\":\"filter\",\"location_id\":[1],\"event_type\":[\"driver_ping\"],\"snapshot\":false}}: {e}"
        )
    })?;
    if m.kind != "filter" {
        return Err(format!("unknown message type '{}' (known: filter)", m.kind));
    }
    let locations = m.location_id.unwrap_or_default();
    let types = m.event_type.unwrap_or_default();
    let joined_l = locations
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let filter = Filter::parse(Some(&joined_l), Some(&types.join(",")))?;
    Ok((filter, m.snapshot))
}

/// `GET /v1/ws?location_id=..&event_type=..&snapshot=1&from=POSITION`
pub async fn websocket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> actix_web::Result<HttpResponse> {
    let params = match stream_params(&query) {
        Ok(p) => p,
        Err(e) => return Ok(bad_request(&e)),
    };
    let state = state.into_inner();
    let Some(slot) = state.take_slot() else {
        return Ok(too_many());
    };
    let (response, mut session, mut messages) = actix_ws::handle(&req, body)?;
    wait_until_passed(&state, params.from.as_deref()).await;
    let start = match &params.from {
        Some(p) => Start::After(p),
        None => Start::Live,
    };
    let mut sub = state
        .hub
        .subscribe(params.filter, Transport::WebSocket, start, params.snapshot);

    actix_web::rt::spawn(async move {
        let _slot = slot;
        let text = |b: Bytes| bytestring::ByteString::try_from(b).unwrap_or_default();
        if session
            .text(text(clock_message(
                &state,
                Transport::WebSocket,
                params.from.as_deref(),
            )))
            .await
            .is_err()
        {
            return;
        }
        let mut ping = tokio::time::interval(KEEP_ALIVE);
        ping.tick().await;
        let reason = loop {
            tokio::select! {
                item = sub.queue.next() => {
                    let sent = match item {
                        Outgoing::Events(bytes, _) | Outgoing::Control(bytes) => session.text(text(bytes)).await,
                        Outgoing::Lagged(missed) => {
                            session.text(text(lagged_message(&state, Transport::WebSocket, missed))).await
                        }
                        Outgoing::Close(reason) => break Some(CloseReason {
                            code: CloseCode::Away,
                            description: Some(reason),
                        }),
                    };
                    if sent.is_err() {
                        return;
                    }
                }
                message = messages.recv() => match message {
                    Some(Ok(Message::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(Message::Text(t))) => match parse_filter_message(&t) {
                        Ok((filter, snapshot)) => {
                            // The new filter applies from the next tick on.
                            sub = state.hub.subscribe(filter, Transport::WebSocket, Start::Live, snapshot);
                            let ack = serde_json::json!({
                                "type": "filter",
                                "location_id": filter.location_ids(),
                                "event_type": filter.event_types().iter().map(|t| t.name()).collect::<Vec<_>>(),
                            });
                            if session.text(ack.to_string()).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            let json = serde_json::json!({"type": "error", "message": e});
                            if session.text(json.to_string()).await.is_err() {
                                return;
                            }
                        }
                    },
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                    Some(Ok(_)) => {}
                },
                _ = ping.tick() => {
                    if session.ping(b"").await.is_err() {
                        return;
                    }
                }
            }
        };
        let _ = session.close(reason).await;
    });
    Ok(response)
}
