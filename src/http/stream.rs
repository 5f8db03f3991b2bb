//! The two streams: Server-Sent Events (`/v1/events`) and WebSocket (`/v1/ws`). A
//! handler checks the request, subscribes, and hands the socket to a writer thread
//! (writers.rs) that drains the subscriber's queue onto it; nothing ever holds up the clock
//! or another client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;

use super::AppState;
use super::cors::STREAM_HEADER;
use super::feed::Feed;
use super::params::{bad_request, stream_params};
use crate::events::Filter;
use crate::fanout::hub::{Start, Subscription, Transport};
use crate::fanout::websocket::{self, Message, MessageReader, WsOpcode, close_frame};
use crate::fanout::writers::{ReleaseOnDrop, StreamStart};

/// The connection's socket (set when it is accepted).
#[derive(Clone, Copy)]
pub(crate) struct PeerSocket(pub std::os::fd::RawFd);

/// What a WebSocket client may send: filter changes at most `FILTER_RATE` a second after
/// a burst of `FILTER_BURST` (each one builds a catch-up), and frames of any kind at most
/// `FRAME_RATE` a second after a burst of `FRAME_BURST` (past it the handler reads more
/// slowly). A client that keeps sending filter changes over the limit, `FILTER_STRIKES`
/// times, is closed (1008).
const FILTER_RATE: f64 = 2.0;
const FILTER_BURST: f64 = 10.0;
const FILTER_STRIKES: u32 = 20;
const FRAME_RATE: f64 = 1000.0;
const FRAME_BURST: f64 = 10_000.0;

/// A token bucket: `rate` a second, up to `burst` at once.
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: std::time::Instant,
}

impl Bucket {
    fn new(rate: f64, burst: f64) -> Bucket {
        Bucket {
            rate,
            burst,
            tokens: burst,
            at: std::time::Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = std::time::Instant::now();
        let gained = now.duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + gained).min(self.burst);
        self.at = now;
    }

    /// Takes `n` tokens if there are as many.
    fn take(&mut self, n: f64) -> bool {
        self.refill();
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Takes `n` tokens, going into debt; returns how long until the debt is paid.
    fn borrow(&mut self, n: f64) -> Duration {
        self.refill();
        self.tokens -= n;
        Duration::from_secs_f64((-self.tokens).max(0.0) / self.rate)
    }
}

/// Registers a subscriber on a thread of its own (a catch-up or a snapshot is work that
/// must not stall the HTTP worker's other requests), at most one per core at a time.
async fn subscribe(
    state: &Arc<AppState>,
    feed: &Feed,
    filter: Filter,
    transport: Transport,
    from: Option<String>,
    snapshot: bool,
) -> Option<Subscription> {
    let _permit = state.subscribing.acquire().await.ok()?;
    let hub = Arc::clone(&feed.hub);
    web::block(move || {
        let start = match &from {
            Some(p) => Start::After(p),
            None => Start::Live,
        };
        hub.subscribe(filter, transport, start, snapshot)
    })
    .await
    .ok()
}

/// The first clock message: `restarted` for a client resuming from a position that an
/// earlier process (or another replica) sent, `connected` otherwise.
fn clock_message(feed: &Feed, transport: Transport, from: Option<&str>) -> Bytes {
    let restarted = from.is_some_and(|p| feed.hub.sent_before_this_process(p));
    let reason = if restarted { "restarted" } else { "connected" };
    transport.control("clock", feed.clock.state().message(reason).as_bytes())
}

/// A position another replica sent a moment before this one's clock got there: wait (a
/// few ticks at most) for this clock to pass it, so the catch-up meets the live stream.
async fn wait_until_passed(feed: &Feed, from: Option<&str>) {
    if let Some(p) = from {
        for _ in 0..100 {
            if !feed.hub.position_ahead(p) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `GET /v1/events?location_id=1,3&event_type=driver_ping&snapshot=1&from=POSITION`
pub async fn sse(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let feed = Feed::shared(&state);
    sse_on(req, state, feed, query).await
}

/// `GET /v1/sessions/{id}/events?...`: a session's SSE stream.
pub async fn session_sse(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    match Feed::session(&state, &id) {
        Ok(feed) => sse_on(req, state, feed, query).await,
        Err(response) => *response,
    }
}

/// The response (head and events) is written by a writer thread, not through actix: this
/// handler hands it the socket and waits for the stream to end.
async fn sse_on(
    req: HttpRequest,
    state: web::Data<AppState>,
    feed: Feed,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let params = match stream_params(&query, &feed.hub) {
        Ok(p) => p,
        Err(e) => return bad_request(&e),
    };
    let Some(socket) = req.conn_data::<PeerSocket>().copied() else {
        return not_a_stream();
    };
    let state = state.into_inner();
    let _slot = match state.admission.admit(&req) {
        Ok(slot) => slot,
        Err(refusal) => return refusal.response(),
    };
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let from = last_event_id.or(params.from);
    wait_until_passed(&feed, from.as_deref()).await;
    let Some(sub) = subscribe(
        &state,
        &feed,
        params.filter,
        Transport::Sse,
        from.clone(),
        params.snapshot,
    )
    .await
    else {
        return not_a_stream();
    };
    // HTTP/1.0 has no chunked encoding (RFC 9112 section 6.1): its body ends at the close.
    let chunked = req.version() != actix_web::http::Version::HTTP_10;
    let head = Bytes::from(if chunked {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
             x-accel-buffering: no\r\n{STREAM_HEADER}transfer-encoding: chunked\r\n\r\n"
        )
    } else {
        format!(
            "HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
             x-accel-buffering: no\r\n{STREAM_HEADER}connection: close\r\n\r\n"
        )
    });
    let mut first = b"retry: 3000\n\n".to_vec();
    first.extend_from_slice(&clock_message(&feed, Transport::Sse, from.as_deref()));
    let start = StreamStart {
        head,
        first: first.into(),
        from,
        chunked,
    };
    let conn = state.writers.adopt(socket.0, &feed.hub, sub, start);
    let _guard = ReleaseOnDrop(Arc::clone(&conn));
    // The writer thread ends the stream: closed by the server, or the client left (it
    // checks an idle socket for its peer's close, so the place is freed within a second).
    conn.ended().await;
    end_of_stream(socket)
}

/// What the handler returns when its stream has ended. The stream was the response, so
/// nothing may follow it on the connection: the socket is shut down, and actix's write of
/// this response fails and closes the connection.
fn end_of_stream(socket: PeerSocket) -> HttpResponse {
    // SAFETY: shutdown of the connection's own socket, which actix still owns and closes.
    unsafe {
        libc::shutdown(socket.0, libc::SHUT_RDWR);
    }
    HttpResponse::NoContent().finish()
}

fn not_a_stream() -> HttpResponse {
    HttpResponse::InternalServerError()
        .json(serde_json::json!({"error": "this connection cannot carry a stream"}))
}

/// `GET /v1/ws?location_id=..&event_type=..&snapshot=1&from=POSITION`
pub async fn websocket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let feed = Feed::shared(&state);
    websocket_on(req, body, state, feed, query).await
}

/// `GET /v1/sessions/{id}/ws?...`: a session's WebSocket stream.
pub async fn session_websocket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    match Feed::session(&state, &id) {
        Ok(feed) => websocket_on(req, body, state, feed, query).await,
        Err(response) => *response,
    }
}

/// The server side of the WebSocket is written here and by the writer threads, not by a
/// WebSocket library's session: the hub frames each tick once per group, and a writer
/// thread hands those shared frames straight to the socket. A client that offers
/// permessage-deflate gets it (unless the server runs with `--no-ws-deflate`): its
/// group's messages are compressed once for all its members. This handler reads the
/// client's frames (filter changes, pings, close) until the stream ends.
async fn websocket_on(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    feed: Feed,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let params = match stream_params(&query, &feed.hub) {
        Ok(p) => p,
        Err(e) => return bad_request(&e),
    };
    if let Err(e) = actix_http::ws::verify_handshake(req.head()) {
        return bad_request(&format!("not a WebSocket handshake: {e}"));
    }
    let Some(key) = req.headers().get("sec-websocket-key") else {
        return bad_request("not a WebSocket handshake: no Sec-WebSocket-Key");
    };
    let accept = actix_http::ws::hash_key(key.as_bytes());
    let Some(socket) = req.conn_data::<PeerSocket>().copied() else {
        return not_a_stream();
    };
    let deflate = state.ws_deflate
        && req
            .headers()
            .get_all("sec-websocket-extensions")
            .filter_map(|v| v.to_str().ok())
            .any(websocket::deflate_offered);
    let transport = if deflate {
        Transport::WebSocketDeflate
    } else {
        Transport::WebSocket
    };
    let state = state.into_inner();
    let _slot = match state.admission.admit(&req) {
        Ok(slot) => slot,
        Err(refusal) => return refusal.response(),
    };
    wait_until_passed(&feed, params.from.as_deref()).await;
    let Some(sub) = subscribe(
        &state,
        &feed,
        params.filter,
        transport,
        params.from.clone(),
        params.snapshot,
    )
    .await
    else {
        return not_a_stream();
    };
    let mut head = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\
                     connection: upgrade\r\nsec-websocket-accept: "
        .to_vec();
    head.extend_from_slice(&accept);
    if deflate {
        head.extend_from_slice(b"\r\nsec-websocket-extensions: ");
        head.extend_from_slice(websocket::DEFLATE_RESPONSE.as_bytes());
    }
    head.extend_from_slice(b"\r\n\r\n");
    let first = clock_message(&feed, transport, params.from.as_deref());
    let start = StreamStart {
        head: head.into(),
        first,
        from: params.from.clone(),
        chunked: false,
    };
    let conn = state.writers.adopt(socket.0, &feed.hub, sub, start);
    let _guard = ReleaseOnDrop(Arc::clone(&conn));

    use futures_util::StreamExt;
    let mut payload = body;
    let mut reader = MessageReader::from_client(deflate, 64 * 1024);
    let text = |json: serde_json::Value| -> Bytes {
        websocket::frame(WsOpcode::Text, json.to_string().as_bytes()).into()
    };
    // Whether a close frame is on its way to the client.
    let mut closing = false;
    let mut frames = Bucket::new(FRAME_RATE, FRAME_BURST);
    let mut filters = Bucket::new(FILTER_RATE, FILTER_BURST);
    let mut strikes = 0;
    'read: loop {
        // Back-pressure: a client that does not read its answers is not read either.
        conn.output_room().await;
        let chunk = tokio::select! {
            () = conn.ended() => break 'read,
            chunk = payload.next() => chunk,
        };
        match chunk {
            Some(Ok(bytes)) => reader.extend(&bytes),
            // The client went away.
            _ => break 'read,
        }
        let mut count = 0;
        loop {
            let message = reader.next_message();
            count += 1;
            match message {
                Ok(None) => break,
                Ok(Some(Message::Ping(b))) => conn.send_pong(&b),
                Ok(Some(Message::Pong)) => conn.pong_received(),
                Ok(Some(Message::Text(_))) if !filters.take(1.0) => {
                    strikes += 1;
                    if strikes >= FILTER_STRIKES {
                        let reason = "too many filter changes";
                        conn.close_with(close_frame(1008, reason));
                        closing = true;
                        break 'read;
                    }
                    let message = format!(
                        "too many filter changes: at most {FILTER_RATE} a second after a burst \
                         of {FILTER_BURST}; this one was ignored (the stream goes on with the \
                         filter in force; keep sending too fast and it is closed)"
                    );
                    conn.send_urgent(text(
                        serde_json::json!({"type": "error", "message": message}),
                    ));
                }
                Ok(Some(Message::Text(t))) => {
                    let wanted = websocket::filter_message(&t).and_then(|(filter, snapshot)| {
                        feed.hub.check_filter(&filter).map(|()| (filter, snapshot))
                    });
                    match wanted {
                        Ok((filter, snapshot)) => {
                            let ack = text(serde_json::json!({
                                "type": "filter",
                                "location_id": filter.location_ids(),
                                "event_type": filter.event_types().iter().map(|t| t.name()).collect::<Vec<_>>(),
                            }));
                            let after = conn.begin_filter_change();
                            let Some(sub) =
                                subscribe(&state, &feed, filter, transport, after, snapshot).await
                            else {
                                break 'read;
                            };
                            conn.replace_subscription(sub, ack);
                        }
                        Err(e) => {
                            conn.send_urgent(text(
                                serde_json::json!({"type": "error", "message": e}),
                            ));
                        }
                    }
                }
                Ok(Some(Message::Close(code))) => {
                    conn.close_with(close_frame(code.unwrap_or(1000), ""));
                    closing = true;
                    break 'read;
                }
                Err(e) => {
                    conn.close_with(close_frame(e.code, &e.reason));
                    closing = true;
                    break 'read;
                }
            }
        }
        // A flood of frames is read at a bounded rate.
        let wait = frames.borrow(f64::from(count));
        if !wait.is_zero() {
            tokio::select! {
                () = conn.ended() => break 'read,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
    if closing {
        // Let the writer send the close frame before the socket goes.
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.ended()).await;
    }
    conn.release().await;
    end_of_stream(socket)
}
