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

/// The connection's socket (set when it is accepted).
#[derive(Clone, Copy)]
pub(crate) struct PeerSocket(pub std::os::fd::RawFd);

/// Notices an SSE client that has gone away while its stream is idle, without waiting for
/// the next write to fail: a duplicate of the socket, watched for readability. An SSE
/// client sends nothing after its request, so the socket turns readable when it closes.
struct PeerWatch(tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>);

impl PeerWatch {
    fn new(socket: PeerSocket) -> Option<PeerWatch> {
        use std::os::fd::FromRawFd;
        // SAFETY: dup of a socket this connection owns for as long as its response streams;
        // the duplicate is owned (and closed) by the OwnedFd.
        let dup = unsafe { libc::dup(socket.0) };
        if dup < 0 {
            return None;
        }
        // SAFETY: `dup` is a fresh descriptor nothing else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(dup) };
        // SAFETY: the OwnedFd keeps that descriptor open, and the same, until it is dropped
        // with the AsyncFd.
        unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        }
        .ok()
        .map(PeerWatch)
    }

    /// Resolves when the peer has closed the connection.
    async fn closed(&self) {
        use std::os::fd::AsRawFd;
        loop {
            let Ok(mut guard) = self.0.readable().await else {
                return std::future::pending().await;
            };
            let mut byte = 0u8;
            // SAFETY: a one-byte peek into a local buffer.
            let n = unsafe {
                libc::recv(
                    self.0.get_ref().as_raw_fd(),
                    (&mut byte as *mut u8).cast(),
                    1,
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                )
            };
            if n == 0 {
                return;
            }
            if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock {
                return;
            }
            // Bytes from the client (or a spurious wake-up): wait for the next change.
            guard.clear_ready();
        }
    }
}

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
    let params = match stream_params(&query, &state.hub) {
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
        peer: Option<PeerWatch>,
    }
    let writer = Writer {
        sub,
        state,
        _slot: slot,
        first: Some(first.into()),
        done: false,
        peer: req
            .conn_data::<PeerSocket>()
            .copied()
            .and_then(PeerWatch::new),
    };
    let body = futures_util::stream::unfold(writer, |mut w| async move {
        if let Some(first) = w.first.take() {
            return Some((Ok::<_, actix_web::Error>(first), w));
        }
        if w.done {
            return None;
        }
        let peer_closed = async {
            match &w.peer {
                Some(peer) => peer.closed().await,
                None => std::future::pending().await,
            }
        };
        let next = tokio::select! {
            item = tokio::time::timeout(KEEP_ALIVE, w.sub.queue.next()) => item,
            // Gone: end the stream now, which frees its place and its subscription.
            () = peer_closed => return None,
        };
        let chunk = match next {
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

/// The last position in a WebSocket events message (`…,"positions":[…,"TAG-L-R"]}`).
fn last_position(message: &[u8]) -> Option<String> {
    let body = message.strip_suffix(b"\"]}")?;
    let start = body.iter().rposition(|&b| b == b'"')? + 1;
    std::str::from_utf8(&body[start..]).ok().map(str::to_string)
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
    let params = match stream_params(&query, &state.hub) {
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
        // The position of the last event sent: where a filter change continues from.
        let mut last: Option<String> = params.from.clone();
        let reason = loop {
            tokio::select! {
                item = sub.queue.next() => {
                    let sent = match item {
                        Outgoing::Events(bytes, _) => {
                            if let Some(p) = last_position(&bytes) {
                                last = Some(p);
                            }
                            session.text(text(bytes)).await
                        }
                        Outgoing::Control(bytes) => session.text(text(bytes)).await,
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
                    Some(Ok(Message::Text(t))) => match parse_filter_message(&t)
                        .and_then(|(f, snap)| state.hub.check_filter(&f).map(|()| (f, snap)))
                    {
                        Ok((filter, snapshot)) => {
                            // The new filter continues from the last event this client was
                            // sent: what it has not been sent yet comes under the new filter.
                            let start = match &last {
                                Some(p) => Start::After(p),
                                None => Start::Live,
                            };
                            sub = state.hub.subscribe(filter, Transport::WebSocket, start, snapshot);
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
