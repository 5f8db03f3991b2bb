//! The two streams: Server-Sent Events (`/v1/events`) and WebSocket (`/v1/ws`). Each is a
//! writer that drains its subscriber's queue onto the socket; neither ever holds up the
//! clock or another client.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde::Deserialize;

use super::params::{bad_request, stream_params};
use super::{AppState, ClientSlot};
use crate::clock::Position;
use crate::sinks::filter::Filter;
use crate::sinks::hub::{Start, Subscription, Transport};
use crate::sinks::queue::{ClientQueue, Outgoing};
use crate::sinks::websocket::{self, Message, MessageReader, WsOpcode};

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
    let restarted = from.is_some_and(|p| state.hub.sent_before_this_process(p));
    let reason = if restarted { "restarted" } else { "connected" };
    transport.control("clock", state.clock.state().message(reason).as_bytes())
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
            Ok(Outgoing::Events(chunk)) => with_queued(chunk.bytes, &w.sub.queue, |_| {}),
            Ok(Outgoing::Control(bytes)) => with_queued(bytes, &w.sub.queue, |_| {}),
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

/// `first`, followed by what else is queued right now (up to 256 KiB): a writer that fell
/// behind sends several ticks in one write. `added` sees the last position of each chunk
/// taken along.
fn with_queued(
    first: Bytes,
    queue: &ClientQueue,
    mut added: impl FnMut(Option<Position>),
) -> Bytes {
    let Some(more) = queue.try_next_data() else {
        return first;
    };
    let mut joined = first.to_vec();
    let mut next = Some(more);
    while let Some((chunk, last)) = next {
        added(last);
        joined.extend_from_slice(&chunk);
        next = if joined.len() < 1 << 18 {
            queue.try_next_data()
        } else {
            None
        };
    }
    joined.into()
}

/// A WebSocket client's message: a new filter (and optionally a snapshot for it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterMessage {
    #[serde(rename = "type")]
    kind: String,
    location_id: Option<Vec<u8>>,
    event_type: Option<Vec<String>>,
    #[serde(default)]
    snapshot: bool,
}

fn parse_filter_message(text: &str) -> Result<(Filter, bool), String> {
    let m: FilterMessage = serde_json::from_str(text).map_err(|e| {
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

/// What the reader of a WebSocket's incoming frames asks of its writer.
enum WsCommand {
    Pong(Bytes),
    Filter(Filter, bool),
    Error(String),
    /// The client closed, or broke the protocol: close (with this code) and end.
    Close(u16, String),
}

/// A close frame: the code, then the reason.
fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut payload = code.to_be_bytes().to_vec();
    // A control frame's payload is at most 125 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    websocket::frame(WsOpcode::Close, &payload).into()
}

/// `GET /v1/ws?location_id=..&event_type=..&snapshot=1&from=POSITION`
///
/// The server side of the WebSocket is written here, not by a WebSocket library's
/// session: the hub frames each tick once per group, and the writer hands those shared
/// frames straight to the connection, pulled only as fast as the socket takes them (a
/// session that buffers messages per connection let a slow reader hold 32 ticks of its own).
/// A client that offers permessage-deflate gets it (unless the server runs with
/// `--no-ws-deflate`): its group's messages are compressed once for all its members.
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
    let mut handshake = match actix_http::ws::handshake(req.head()) {
        Ok(h) => h,
        Err(e) => return Ok(bad_request(&format!("not a WebSocket handshake: {e}"))),
    };
    let deflate = state.ws_deflate
        && req
            .headers()
            .get_all("sec-websocket-extensions")
            .filter_map(|v| v.to_str().ok())
            .any(websocket::deflate_offered);
    if deflate {
        handshake.insert_header(("sec-websocket-extensions", websocket::DEFLATE_RESPONSE));
    }
    let transport = if deflate {
        Transport::WebSocketDeflate
    } else {
        Transport::WebSocket
    };
    let state = state.into_inner();
    let Some(slot) = state.take_slot() else {
        return Ok(too_many());
    };
    wait_until_passed(&state, params.from.as_deref()).await;
    let start = match &params.from {
        Some(p) => Start::After(p),
        None => Start::Live,
    };
    let sub = state
        .hub
        .subscribe(params.filter, transport, start, params.snapshot);

    // The reader: decodes the client's frames and hands what they ask to the writer.
    let (commands_tx, commands) = tokio::sync::mpsc::channel::<WsCommand>(16);
    let mut payload = body;
    actix_web::rt::spawn(async move {
        use futures_util::StreamExt;
        let mut reader = MessageReader::from_client(deflate, 64 * 1024);
        let command = 'read: loop {
            match payload.next().await {
                Some(Ok(chunk)) => reader.extend(&chunk),
                _ => break WsCommand::Close(1000, String::new()),
            }
            loop {
                let command = match reader.next_message() {
                    Ok(Some(Message::Ping(b))) => WsCommand::Pong(b),
                    Ok(Some(Message::Text(t))) => match parse_filter_message(&t) {
                        Ok((filter, snapshot)) => WsCommand::Filter(filter, snapshot),
                        Err(e) => WsCommand::Error(e),
                    },
                    Ok(Some(Message::Close)) => {
                        break 'read WsCommand::Close(1000, String::new());
                    }
                    Ok(None) => break,
                    Err(e) => break 'read WsCommand::Close(e.code, e.reason),
                };
                if commands_tx.send(command).await.is_err() {
                    return;
                }
            }
        };
        let _ = commands_tx.send(command).await;
    });

    struct Writer {
        sub: Subscription,
        state: Arc<AppState>,
        _slot: ClientSlot,
        commands: tokio::sync::mpsc::Receiver<WsCommand>,
        ping: tokio::time::Interval,
        /// Where the client started (`from`), then the last event sent: where a filter
        /// change continues from.
        from: Option<String>,
        last: Option<Position>,
        first: Option<Bytes>,
        done: bool,
    }
    let mut ping = tokio::time::interval(KEEP_ALIVE);
    ping.reset();
    let writer = Writer {
        first: Some(clock_message(&state, transport, params.from.as_deref())),
        from: params.from.clone(),
        last: None,
        sub,
        state,
        _slot: slot,
        commands,
        ping,
        done: false,
    };
    let frames = futures_util::stream::unfold(writer, move |mut w| async move {
        if let Some(first) = w.first.take() {
            return Some((Ok::<_, actix_web::Error>(first), w));
        }
        if w.done {
            return None;
        }
        let frame = tokio::select! {
            item = w.sub.queue.next() => match item {
                Outgoing::Events(chunk) => {
                    w.last = chunk.last.or(w.last);
                    chunk.bytes
                }
                Outgoing::Control(frame) => frame,
                Outgoing::Lagged(missed) => lagged_message(&w.state, transport, missed),
                Outgoing::Close(reason) => {
                    w.done = true;
                    close_frame(1001, &reason)
                }
            },
            command = w.commands.recv() => match command {
                Some(WsCommand::Pong(payload)) => websocket::frame(WsOpcode::Pong, &payload).into(),
                Some(WsCommand::Filter(filter, snapshot)) => match w.state.hub.check_filter(&filter) {
                    Ok(()) => {
                        // The new filter continues from the last event this client was sent:
                        // what it has not been sent yet comes under the new filter.
                        let last = w.last.map(|p| p.to_text(&w.state.hub.tag)).or(w.from.clone());
                        let start = match &last {
                            Some(p) => Start::After(p),
                            None => Start::Live,
                        };
                        w.sub = w.state.hub.subscribe(filter, transport, start, snapshot);
                        let ack = serde_json::json!({
                            "type": "filter",
                            "location_id": filter.location_ids(),
                            "event_type": filter.event_types().iter().map(|t| t.name()).collect::<Vec<_>>(),
                        });
                        websocket::frame(WsOpcode::Text, ack.to_string().as_bytes()).into()
                    }
                    Err(e) => {
                        let json = serde_json::json!({"type": "error", "message": e});
                        websocket::frame(WsOpcode::Text, json.to_string().as_bytes()).into()
                    }
                },
                Some(WsCommand::Error(e)) => {
                    let json = serde_json::json!({"type": "error", "message": e});
                    websocket::frame(WsOpcode::Text, json.to_string().as_bytes()).into()
                }
                Some(WsCommand::Close(code, reason)) => {
                    w.done = true;
                    close_frame(code, &reason)
                }
                None => return None,
            },
            _ = w.ping.tick() => websocket::frame(WsOpcode::Ping, b"").into(),
        };
        // A close frame is the last; anything else takes what is queued along.
        let frame = if w.done {
            frame
        } else {
            let last = &mut w.last;
            with_queued(frame, &w.sub.queue, |p| *last = p.or(*last))
        };
        Some((Ok(frame), w))
    });
    use actix_web::body::MessageBody;
    let response = handshake
        .message_body(actix_web::body::BodyStream::new(frames).boxed())?
        .into();
    Ok(response)
}
