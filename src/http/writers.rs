//! Writer threads that own the stream sockets once a stream starts.
//!
//! A stream's handler writes nothing through actix: it hands a duplicate of the socket, the
//! response head and the subscription to one of these threads (one per core) and waits for
//! the stream to end. Each thread serves thousands of sockets: woken by the pushes of a
//! tick, it takes what each queue holds and writes it with one `writev`, the shared chunks
//! straight from the queue (no copy into a per-connection buffer, no task or wake-up per
//! connection). A socket that is full keeps its rest for a retry every 2 ms.
//!
//! Why: at 10,000 subscribers a server of this shape (the load bench's `--floor`) had a
//! p99 delay of 83 ms where actix's per-connection streaming bodies had 0.5 s (README,
//! "Benchmarks").

use std::collections::VecDeque;
use std::io::{IoSlice, Write};
use std::mem::ManuallyDrop;
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::stream::PeerSocket;
use crate::clock::Position;
use crate::sinks::filter::Filter;
use crate::sinks::hub::{Hub, Start, Subscription, Transport};
use crate::sinks::queue::Outgoing;
use crate::sinks::websocket::{self, WsOpcode};

/// A comment (SSE) or ping (WebSocket) this often keeps proxies from closing idle streams.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// At most this much is gathered for one `writev`.
const BATCH_BYTES: usize = 256 * 1024;

/// Streams handed to a writer thread, not yet taken up by it.
type Inbox = Arc<Mutex<Vec<Arc<Conn>>>>;

/// The writer threads.
pub(crate) struct Writers {
    threads: Vec<(Inbox, std::thread::Thread)>,
    next: AtomicUsize,
}

impl Writers {
    /// Starts `n` writer threads.
    pub fn start(n: usize) -> Writers {
        let threads = (0..n.max(1))
            .map(|i| {
                let inbox: Inbox = Arc::default();
                let theirs = Arc::clone(&inbox);
                let handle = std::thread::Builder::new()
                    .name(format!("stream-writer-{i}"))
                    .spawn(move || run(&theirs))
                    .expect("a writer thread");
                (inbox, handle.thread().clone())
            })
            .collect();
        Writers {
            threads,
            next: AtomicUsize::new(0),
        }
    }

    /// Hands a stream to a writer thread: the response `head`, then `first` (the stream's
    /// first message), then what `sub` receives. `from` is where the client resumed from.
    pub fn adopt(
        &self,
        socket: PeerSocket,
        hub: &Arc<Hub>,
        sub: Subscription,
        (head, first): (Bytes, Bytes),
        from: Option<String>,
    ) -> std::io::Result<Arc<Conn>> {
        // The connection's own (non-blocking) socket, not a duplicate: 10,000 streams would
        // need 20,000 descriptors. Never dropped, so never closed here: actix owns it, and
        // the handler does not return before the writer has let it go (`Conn::release`).
        // SAFETY: the descriptor stays open while the handler runs, which outlives its use.
        let stream = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(socket.0) });
        let (inbox, thread) =
            &self.threads[self.next.fetch_add(1, Ordering::Relaxed) % self.threads.len()];
        sub.queue.wake_on_push(thread.clone());
        let conn = Arc::new(Conn {
            stream,
            transport: sub.transport,
            hub: Arc::clone(hub),
            thread: thread.clone(),
            state: Mutex::new(ConnState {
                sub,
                head: Some(head),
                urgent: VecDeque::from([first]),
                from,
                last: None,
                closing: false,
                gone: false,
            }),
            finished: AtomicBool::new(false),
            ended: tokio::sync::Notify::new(),
        });
        inbox.lock().expect("inbox").push(Arc::clone(&conn));
        thread.unpark();
        Ok(conn)
    }
}

/// One stream, shared by its handler and its writer thread.
pub(crate) struct Conn {
    stream: ManuallyDrop<TcpStream>,
    transport: Transport,
    hub: Arc<Hub>,
    thread: std::thread::Thread,
    state: Mutex<ConnState>,
    finished: AtomicBool,
    ended: tokio::sync::Notify,
}

struct ConnState {
    sub: Subscription,
    /// The response head, written before anything else (outside any chunk).
    head: Option<Bytes>,
    /// Sent before anything queued: the head, pongs, acknowledgements, errors, close.
    urgent: VecDeque<Bytes>,
    /// Where the client started (`from`), then the last event taken to be sent.
    from: Option<String>,
    last: Option<Position>,
    /// Close once what is taken is written.
    closing: bool,
    /// The peer left: drop now.
    gone: bool,
}

impl Conn {
    /// Resolves when the writer thread has let the stream go.
    pub async fn ended(&self) {
        loop {
            let notified = self.ended.notified();
            if self.finished.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Lets the stream go and waits until its writer thread no longer touches the socket,
    /// which actix closes once the handler returns.
    pub async fn release(&self) {
        self.abandon();
        self.ended().await;
    }

    fn abandon(&self) {
        self.state.lock().expect("conn").gone = true;
        self.thread.unpark();
    }

    /// Sends `message` ahead of what is queued.
    pub fn send_urgent(&self, message: Bytes) {
        self.state.lock().expect("conn").urgent.push_back(message);
        self.thread.unpark();
    }

    /// Sends `message` (a close frame), then closes.
    pub fn close_with(&self, message: Bytes) {
        let mut st = self.state.lock().expect("conn");
        st.urgent.push_back(message);
        st.closing = true;
        drop(st);
        self.thread.unpark();
    }

    /// A WebSocket client's new filter: it continues from the last event taken for this
    /// client, so nothing is lost or repeated; `ack` goes out before the new filter's events.
    pub fn change_filter(&self, filter: Filter, snapshot: bool, ack: Bytes) {
        let mut st = self.state.lock().expect("conn");
        let after = st
            .last
            .map(|p| p.to_text(&self.hub.tag))
            .or(st.from.clone());
        let start = match &after {
            Some(p) => Start::After(p),
            None => Start::Live,
        };
        let sub = self.hub.subscribe(filter, self.transport, start, snapshot);
        sub.queue.wake_on_push(self.thread.clone());
        st.sub = sub;
        st.urgent.push_back(ack);
        drop(st);
        self.thread.unpark();
    }

    fn finish(&self) {
        self.finished.store(true, Ordering::Release);
        self.ended.notify_waiters();
    }

    /// The next bytes to write, framed; `None` when there is nothing; `Err` to drop.
    fn gather(&self, out: &mut VecDeque<Bytes>) -> Result<bool, ()> {
        let mut st = self.state.lock().expect("conn");
        if st.gone {
            return Err(());
        }
        if let Some(head) = st.head.take() {
            out.push_back(head);
        }
        let mut batch: Vec<Bytes> = st.urgent.drain(..).collect();
        let mut size: usize = batch.iter().map(Bytes::len).sum();
        while !st.closing && size < BATCH_BYTES {
            let bytes = match st.sub.queue.try_next() {
                None => break,
                Some(Outgoing::Events(chunk)) => {
                    st.last = chunk.last.or(st.last);
                    chunk.bytes
                }
                Some(Outgoing::Control(bytes)) => bytes,
                Some(Outgoing::Lagged(missed)) => lagged_message(&self.hub, self.transport, missed),
                Some(Outgoing::Close(reason)) => {
                    st.closing = true;
                    close_message(self.transport, &reason)
                }
            };
            size += bytes.len();
            batch.push(bytes);
        }
        let closing = st.closing;
        drop(st);
        if batch.is_empty() && out.is_empty() {
            return if closing { Err(()) } else { Ok(false) };
        }
        match self.transport {
            // One HTTP chunk around the batch (the response is chunked).
            Transport::Sse => {
                if size > 0 {
                    out.push_back(Bytes::from(format!("{size:x}\r\n")));
                    out.extend(batch);
                    out.push_back(Bytes::from_static(b"\r\n"));
                }
                if closing {
                    out.push_back(Bytes::from_static(b"0\r\n\r\n"));
                }
            }
            Transport::WebSocket | Transport::WebSocketDeflate => out.extend(batch),
        }
        Ok(true)
    }

    fn keep_alive(&self) -> Bytes {
        match self.transport {
            Transport::Sse => Bytes::from_static(b": keep-alive\n\n"),
            _ => websocket::frame(WsOpcode::Ping, b"").into(),
        }
    }
}

/// The `lagged` notice for a client that was skipped ahead.
fn lagged_message(hub: &Hub, transport: Transport, missed: u64) -> Bytes {
    hub.metrics.clients_lagged.fetch_add(1, Ordering::Relaxed);
    let json = serde_json::json!({
        "type": "lagged",
        "missed": missed,
        "message": "you were too slow for the stream: events were dropped and you were skipped ahead",
    });
    transport.control("lagged", json.to_string().as_bytes())
}

/// The last message of a stream the server closes.
fn close_message(transport: Transport, reason: &str) -> Bytes {
    match transport {
        Transport::Sse => {
            let json = serde_json::json!({"type": "close", "reason": reason});
            Transport::Sse.control("close", json.to_string().as_bytes())
        }
        _ => close_frame(1001, reason),
    }
}

/// A WebSocket close frame: the code, then the reason.
pub(crate) fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut payload = code.to_be_bytes().to_vec();
    // A control frame's payload is at most 125 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    websocket::frame(WsOpcode::Close, &payload).into()
}

/// A handler dropped before its stream ended (actix cancels it when the connection
/// fails): the writer lets the socket go before actix closes it.
pub(crate) struct ReleaseOnDrop(pub Arc<Conn>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        if self.0.finished.load(Ordering::Acquire) {
            return;
        }
        self.0.abandon();
        // The writer notices within one pass over its sockets.
        let deadline = Instant::now() + Duration::from_secs(1);
        while !self.0.finished.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// A stream as its writer thread holds it.
struct Active {
    conn: Arc<Conn>,
    pending: VecDeque<Bytes>,
    last_write: Instant,
    /// When an idle SSE socket was last checked for its peer's close.
    last_peek: Instant,
}

/// Whether the peer has closed: an SSE client sends nothing after its request, so a
/// readable socket means it left (a WebSocket's handler reads its frames and knows).
fn peer_closed(stream: &TcpStream) -> bool {
    let mut byte = 0u8;
    // SAFETY: a one-byte peek into a local buffer.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n == 0 || (n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock)
}

enum Pumped {
    Idle,
    Blocked,
    Done,
}

impl Active {
    fn pump(&mut self) -> Pumped {
        loop {
            if self.pending.is_empty() {
                if self.conn.transport == Transport::Sse
                    && self.last_peek.elapsed() >= Duration::from_millis(250)
                {
                    self.last_peek = Instant::now();
                    if peer_closed(&self.conn.stream) {
                        return Pumped::Done;
                    }
                }
                if self.last_write.elapsed() >= KEEP_ALIVE {
                    self.conn.send_urgent(self.conn.keep_alive());
                }
                match self.conn.gather(&mut self.pending) {
                    Err(()) => return Pumped::Done,
                    Ok(false) => return Pumped::Idle,
                    Ok(true) => {}
                }
            }
            let slices: Vec<IoSlice<'_>> = self
                .pending
                .iter()
                .take(64)
                .map(|b| IoSlice::new(b))
                .collect();
            match (&*self.conn.stream).write_vectored(&slices) {
                Ok(0) => return Pumped::Done,
                Ok(mut n) => {
                    self.last_write = Instant::now();
                    while n > 0 {
                        let front = self.pending.front_mut().expect("written from it");
                        if n >= front.len() {
                            n -= front.len();
                            self.pending.pop_front();
                        } else {
                            let rest = front.slice(n..);
                            *front = rest;
                            n = 0;
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Pumped::Blocked,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Pumped::Done,
            }
            if self.pending.is_empty() && self.conn.state.lock().expect("conn").closing {
                // Written to the end: close, so actix cannot write after it either.
                let _ = self.conn.stream.shutdown(Shutdown::Both);
                return Pumped::Done;
            }
        }
    }
}

fn run(inbox: &Mutex<Vec<Arc<Conn>>>) {
    let mut active: Vec<Active> = Vec::new();
    loop {
        for conn in inbox.lock().expect("inbox").drain(..) {
            active.push(Active {
                conn,
                pending: VecDeque::new(),
                last_write: Instant::now(),
                last_peek: Instant::now(),
            });
        }
        let mut blocked = false;
        active.retain_mut(|a| match a.pump() {
            Pumped::Idle => true,
            Pumped::Blocked => {
                blocked = true;
                true
            }
            Pumped::Done => {
                a.conn.finish();
                false
            }
        });
        std::thread::park_timeout(if blocked {
            Duration::from_millis(2)
        } else {
            Duration::from_millis(250)
        });
    }
}
