//! The load generator, a process of its own (`--generator`): opens the subscribers (half
//! SSE, half WebSocket), reads their streams as a browser would, and records each tick's
//! delay from its emission stamp to the read that brought it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::procs::raise_fd_limit;

/// The server the subscribers talk to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `caspers-replay serve`: it counts its subscribers in /metrics.
    Ours,
    /// The bench's floor server.
    Floor,
    /// nginx with the Nchan module: its SSE carries a tick as one event whose `data:`
    /// lines are `emitted MS` and then one event's JSON each, with no chunked framing.
    Nchan,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Ours => "ours",
            Target::Floor => "floor",
            Target::Nchan => "nchan",
        }
    }

    pub fn parse(name: &str) -> Target {
        match name {
            "floor" => Target::Floor,
            "nchan" => Target::Nchan,
            _ => Target::Ours,
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Delays in milliseconds, bucketed by millisecond up to 10 s.
pub struct Histogram(Vec<AtomicU64>);

impl Histogram {
    pub fn new() -> Histogram {
        Histogram((0..10_001).map(|_| AtomicU64::new(0)).collect())
    }
    pub fn add(&self, delay_ms: u64, n: u64) {
        self.0[delay_ms.min(10_000) as usize].fetch_add(n, Ordering::Relaxed);
    }
    /// Empties it (a trace's next second).
    pub fn clear(&self) {
        for c in &self.0 {
            c.store(0, Ordering::Relaxed);
        }
    }

    pub fn quantile(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self.0.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let mut seen = 0;
        for (ms, c) in counts.iter().enumerate() {
            seen += c;
            if seen as f64 >= q * total as f64 && total > 0 {
                return ms as u64;
            }
        }
        0
    }
}

pub struct Stats {
    pub delays: Histogram,
    /// The delays since the last trace line (`CASPERS_LOAD_TRACE=1`).
    pub recent: Histogram,
    /// The same, per transport: [SSE, WebSocket].
    pub by_transport: [Histogram; 2],
    pub lagged: AtomicU64,
    /// Events the lag notices said were skipped (announced losses).
    pub missed: AtomicU64,
    pub errors: AtomicU64,
    /// Bytes read from the sockets (HTTP chunking and WebSocket framing included).
    pub bytes: AtomicU64,
    /// WebSocket: bytes read (handshake aside), the messages' text once inflated, and
    /// the events they held.
    pub ws_bytes: AtomicU64,
    pub inflated: AtomicU64,
    pub ws_events: AtomicU64,
    /// Streams whose response head came.
    pub connected: AtomicU64,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            delays: Histogram::new(),
            recent: Histogram::new(),
            by_transport: [Histogram::new(), Histogram::new()],
            lagged: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            ws_bytes: AtomicU64::new(0),
            inflated: AtomicU64::new(0),
            ws_events: AtomicU64::new(0),
            connected: AtomicU64::new(0),
        }
    }
}

/// Connects from one of several loopback source addresses (127.0.0.2 to 127.0.0.9, by
/// `n`): one source address has only about 28,000 ephemeral ports, too few for 30,000
/// subscribers.
pub async fn connect_from(addr: SocketAddr, n: usize) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, 2 + (n % 8) as u8], 0)))?;
    socket.connect(addr).await
}

/// An SSE subscriber: counts events and records each tick's delay.
pub async fn sse_client(
    addr: SocketAddr,
    n: usize,
    path: String,
    target: Target,
    received: Arc<AtomicU64>,
    stats: Arc<Stats>,
) {
    let Ok(mut s) = connect_from(addr, n).await else {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // Chunked framing (if any) is stripped on the fly; the SSE text is scanned line by line.
    let Some((head, rest)) = response_head(&mut s, &stats).await else {
        return;
    };
    if !head.starts_with("http/1.1 200") {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        return;
    }
    stats.connected.fetch_add(1, Ordering::Relaxed);
    let mut buf = read_buffer();
    let mut line = Vec::with_capacity(256);
    // Without chunked framing the whole stream is one endless chunk.
    let mut chunk_left = if head.contains("transfer-encoding: chunked") {
        0
    } else {
        usize::MAX
    };
    let mut size_line = Vec::new();
    let mut tally = Tally::new(&received, &stats, 0);
    let mut take = |bytes: &[u8]| {
        let at = now_ms();
        process(
            bytes,
            &mut chunk_left,
            &mut size_line,
            &mut line,
            &mut |l| match target {
                Target::Nchan => nchan_sse_line(l, &mut tally, at),
                _ => sse_line(l, &mut tally, at),
            },
        );
        tally.flush(at);
    };
    take(&rest);
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        take(&buf[..n]);
    }
}

/// A subscriber's read buffer, its pages touched now: left to the first reads, 5,000
/// subscribers' first faults (the kernel zeroing 320 MB of pages) took two thirds of the
/// generator's time over the peak's first 1.5 s, and the delays it measured then were its
/// own (perf: `clear_page_erms` 66 %).
fn read_buffer() -> Vec<u8> {
    vec![0x55u8; 64 * 1024]
}

/// Reads a response's head: its text, lower case, and the bytes that came after it;
/// `None` if the connection ends first.
pub async fn response_head(s: &mut TcpStream, stats: &Stats) -> Option<(String, Vec<u8>)> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        };
        stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
            return Some((text, head[end + 4..].to_vec()));
        }
    }
}

/// Events counted since the last flush, all of one tick: the shared counters and
/// histograms are touched once per read and tick, not once per event (at 1.4 M events/s
/// their atomics were a visible share of the generator's core).
pub struct Tally<'a> {
    pub emitted: u64,
    pub events: u64,
    pub received: &'a AtomicU64,
    pub stats: &'a Stats,
    /// 0 SSE, 1 WebSocket.
    pub transport: usize,
    /// The last event name was `lagged`: its data line says how many were skipped.
    pub lag_data_next: bool,
}

impl<'a> Tally<'a> {
    pub fn new(received: &'a AtomicU64, stats: &'a Stats, transport: usize) -> Tally<'a> {
        Tally {
            emitted: 0,
            events: 0,
            received,
            stats,
            transport,
            lag_data_next: false,
        }
    }

    /// A new tick's events start (received at `at`).
    fn tick(&mut self, emitted: u64, at: u64) {
        self.flush(at);
        self.emitted = emitted;
    }

    fn flush(&mut self, at: u64) {
        if self.events > 0 {
            let delay = at.saturating_sub(self.emitted);
            self.received.fetch_add(self.events, Ordering::Relaxed);
            self.stats.delays.add(delay, self.events);
            self.stats.recent.add(delay, self.events);
            self.stats.by_transport[self.transport].add(delay, self.events);
            self.events = 0;
        }
    }
}

/// Feeds chunked-encoded bytes, calling `on_line` for each complete SSE line.
pub fn process(
    mut data: &[u8],
    chunk_left: &mut usize,
    size_line: &mut Vec<u8>,
    line: &mut Vec<u8>,
    on_line: &mut dyn FnMut(&[u8]),
) {
    while !data.is_empty() {
        if *chunk_left == 0 {
            // Reading a chunk-size line (possibly after the CRLF ending the last chunk).
            let Some(nl) = memchr::memchr(b'\n', data) else {
                size_line.extend_from_slice(data);
                return;
            };
            size_line.extend_from_slice(&data[..nl]);
            data = &data[nl + 1..];
            let text = String::from_utf8_lossy(size_line).trim().to_string();
            size_line.clear();
            if text.is_empty() {
                continue;
            }
            *chunk_left = usize::from_str_radix(&text, 16).unwrap_or(0);
            continue;
        }
        let take = data.len().min(*chunk_left);
        let mut seg = &data[..take];
        while let Some(nl) = memchr::memchr(b'\n', seg) {
            if line.is_empty() {
                on_line(&seg[..nl]);
            } else {
                line.extend_from_slice(&seg[..nl]);
                on_line(line);
                line.clear();
            }
            seg = &seg[nl + 1..];
        }
        line.extend_from_slice(seg);
        *chunk_left -= take;
        data = &data[take..];
    }
}

/// One SSE line: `: emitted MS` starts a tick's chunk; each `id:` is one event, received
/// when the read that brought it returned.
pub fn sse_line(line: &[u8], tally: &mut Tally, at: u64) {
    if let Some(ms) = line.strip_prefix(b": emitted ") {
        let emitted = std::str::from_utf8(ms)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(at);
        tally.tick(emitted, at);
    } else if line.starts_with(b"id: ") {
        tally.events += 1;
    } else if line == b"event: lagged" {
        tally.stats.lagged.fetch_add(1, Ordering::Relaxed);
        tally.lag_data_next = true;
    } else if tally.lag_data_next && line.starts_with(b"data: ") {
        tally.lag_data_next = false;
        let missed = missed_in(&String::from_utf8_lossy(line));
        tally.stats.missed.fetch_add(missed, Ordering::Relaxed);
    }
}

/// One line of Nchan's SSE: `data: emitted MS` starts a tick, `data: {` is one event.
fn nchan_sse_line(line: &[u8], tally: &mut Tally, at: u64) {
    if let Some(ms) = line.strip_prefix(b"data: emitted ") {
        let emitted = std::str::from_utf8(ms)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(at);
        tally.tick(emitted, at);
    } else if line.starts_with(b"data: {") {
        tally.events += 1;
    }
}

/// The `missed` count of a lag notice's JSON.
pub fn missed_in(text: &str) -> u64 {
    text.split("\"missed\":")
        .nth(1)
        .and_then(|r| r.split([',', '}']).next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// A WebSocket subscriber, offering permessage-deflate when `deflate` (as browsers do).
/// It reads the server's frames with the crate's own reader.
pub async fn ws_client(
    addr: SocketAddr,
    n: usize,
    path: String,
    deflate: bool,
    received: Arc<AtomicU64>,
    stats: Arc<Stats>,
) {
    use caspers_replay::fanout::websocket::{Message, MessageReader};
    let Ok(mut s) = connect_from(addr, n).await else {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let offer = if deflate {
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    } else {
        ""
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let Some((head, rest)) = response_head(&mut s, &stats).await else {
        return;
    };
    if !head.starts_with("http/1.1 101") {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        return;
    }
    stats.connected.fetch_add(1, Ordering::Relaxed);
    let negotiated = head.contains("permessage-deflate");
    let mut reader = MessageReader::from_server(negotiated, 1 << 30);
    stats
        .ws_bytes
        .fetch_add(rest.len() as u64, Ordering::Relaxed);
    reader.extend(&rest);
    let mut buf = read_buffer();
    let mut at = now_ms();
    loop {
        // The server closes a WebSocket that does not answer its pings.
        let mut ping = None;
        loop {
            let text = match reader.next_message() {
                Ok(Some(Message::Text(text))) => text,
                Ok(Some(Message::Ping(payload))) => {
                    ping = Some(payload);
                    continue;
                }
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            stats
                .inflated
                .fetch_add(text.len() as u64, Ordering::Relaxed);
            if let Some(rest) = text.strip_prefix("{\"type\":\"events\",\"emitted_at\":") {
                let emitted: u64 = rest
                    .split(',')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(at);
                let n = events_in(&text);
                received.fetch_add(n, Ordering::Relaxed);
                stats.delays.add(at.saturating_sub(emitted), n);
                stats.recent.add(at.saturating_sub(emitted), n);
                stats.by_transport[1].add(at.saturating_sub(emitted), n);
                stats.ws_events.fetch_add(n, Ordering::Relaxed);
            } else if text.contains("\"type\":\"lagged\"") {
                stats.lagged.fetch_add(1, Ordering::Relaxed);
                stats.missed.fetch_add(missed_in(&text), Ordering::Relaxed);
            }
        }
        if let Some(payload) = ping
            && s.write_all(&masked_pong(&payload)).await.is_err()
        {
            return;
        }
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        at = now_ms();
        stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        stats.ws_bytes.fetch_add(n as u64, Ordering::Relaxed);
        reader.extend(&buf[..n]);
    }
}

/// The events in a WebSocket events message, counted from its positions at the end
/// (`…],"positions":["P1","P2"]}`), without scanning the events themselves.
pub fn events_in(message: &str) -> u64 {
    match message.rfind("],\"positions\":[") {
        Some(at) => message[at..].matches("\",\"").count() as u64 + 1,
        None => 0,
    }
}

/// What the generator process reports for one replica's subscribers.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ReplicaReport {
    /// (location_id, or 0 for unfiltered; subscribers; events received)
    pub groups: Vec<(u8, u64, u64)>,
    /// With sessions: (session, location_id, subscribers, events received).
    #[serde(default)]
    pub per_session: Vec<(u32, u8, u64, u64)>,
    pub p50: u64,
    pub p99: u64,
    pub sse_p50: u64,
    pub sse_p99: u64,
    pub ws_p50: u64,
    pub ws_p99: u64,
    pub lagged: u64,
    pub missed: u64,
    pub errors: u64,
    pub bytes: u64,
    pub ws_bytes: u64,
    pub inflated: u64,
    pub ws_events: u64,
}

pub fn report(stats: &Stats, groups: Vec<(u8, u64, u64)>) -> ReplicaReport {
    ReplicaReport {
        groups,
        per_session: Vec::new(),
        p50: stats.delays.quantile(0.5),
        p99: stats.delays.quantile(0.99),
        sse_p50: stats.by_transport[0].quantile(0.5),
        sse_p99: stats.by_transport[0].quantile(0.99),
        ws_p50: stats.by_transport[1].quantile(0.5),
        ws_p99: stats.by_transport[1].quantile(0.99),
        lagged: stats.lagged.load(Ordering::Relaxed),
        missed: stats.missed.load(Ordering::Relaxed),
        errors: stats.errors.load(Ordering::Relaxed),
        bytes: stats.bytes.load(Ordering::Relaxed),
        ws_bytes: stats.ws_bytes.load(Ordering::Relaxed),
        inflated: stats.inflated.load(Ordering::Relaxed),
        ws_events: stats.ws_events.load(Ordering::Relaxed),
    }
}

pub async fn subscribers_counted(addrs: &[SocketAddr]) -> usize {
    let mut count = 0.0;
    for &addr in addrs {
        let Ok(Ok(mut s)) =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await
        else {
            continue;
        };
        let _ = s
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        let mut out = String::new();
        // A server out of sockets never answers: do not wait for it forever.
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut out)).await;
        count += out
            .lines()
            .filter(|l| {
                l.starts_with("caspers_subscribers{")
                    || l.starts_with("caspers_session_subscribers{")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    count as usize
}

/// The load generator, a process of its own: opens the subscribers (half SSE, half
/// WebSocket, pairs of them on each replica in turn), says `ready` when the servers count
/// them all (or, for a peer, when all their responses have come), then answers `count` on
/// standard input with the events received so far, and anything else with its figures as
/// JSON, and ends.
pub fn run(
    addrs: &[SocketAddr],
    subscribers: usize,
    filtered: bool,
    never_read: usize,
    deflate: bool,
    target: Target,
    sessions: &[String],
) {
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let per_replica: Vec<Arc<Stats>> = addrs.iter().map(|_| Arc::new(Stats::new())).collect();
    let mut counters = Vec::new();
    let mut stuck = Vec::new();
    rt.block_on(async {
        for i in 0..subscribers {
            let location = (i % 4 + 1) as u8;
            let query = if filtered {
                format!("?location_id={location}")
            } else {
                String::new()
            };
            let received = Arc::new(AtomicU64::new(0));
            let replica = (i / 2) % addrs.len();
            // With sessions, each has an equal share of the subscribers, in turn.
            let session = if sessions.is_empty() {
                0
            } else {
                i / subscribers.div_ceil(sessions.len())
            };
            let prefix = match sessions.get(session) {
                Some(id) => format!("/v1/sessions/{id}"),
                None => "/v1".to_string(),
            };
            counters.push((
                if filtered { location } else { 0 },
                Arc::clone(&received),
                replica,
                session as u32,
            ));
            let stats = Arc::clone(&per_replica[replica]);
            let addr = addrs[replica];
            if i % 2 == 0 {
                let path = format!("{prefix}/events{query}");
                tokio::spawn(sse_client(addr, i, path, target, received, stats));
            } else {
                let path = format!("{prefix}/ws{query}");
                tokio::spawn(ws_client(addr, i, path, deflate, received, stats));
            }
            if i % 500 == 499 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // Clients that ask for every event and never read a byte (hostile or stuck).
        for k in 0..never_read {
            let addr = addrs[k % addrs.len()];
            if let Ok(mut s) = connect_from(addr, subscribers + k).await {
                let _ = s
                    .write_all(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await;
                stuck.push(s);
            }
            if k % 500 == 499 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let connected = || {
            per_replica
                .iter()
                .map(|s| s.connected.load(Ordering::Relaxed) as usize)
                .sum::<usize>()
        };
        while Instant::now() < deadline
            && if target != Target::Ours {
                connected() < subscribers
            } else {
                subscribers_counted(addrs).await < subscribers + never_read
            }
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    if let Some(every) = std::env::var_os("CASPERS_LOAD_TRACE") {
        // Each interval's delays on standard error (`CASPERS_LOAD_TRACE=MS`, 1000 if not a
        // number), to see when a backlog forms.
        let every = every.to_str().and_then(|v| v.parse().ok()).unwrap_or(1000);
        let stats: Vec<Arc<Stats>> = per_replica.iter().map(Arc::clone).collect();
        rt.spawn(async move {
            let started = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(every)).await;
                for s in &stats {
                    eprintln!(
                        "trace {:.1} s: p50 {} ms, p99 {} ms",
                        started.elapsed().as_secs_f64(),
                        s.recent.quantile(0.5),
                        s.recent.quantile(0.99)
                    );
                    s.recent.clear();
                }
            }
        });
    }
    println!("ready");
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).is_ok() && line.trim() == "count" {
        let received: u64 = counters.iter().map(|c| c.1.load(Ordering::Relaxed)).sum();
        println!("{received}");
        line.clear();
    }
    let reports: Vec<ReplicaReport> = per_replica
        .iter()
        .enumerate()
        .map(|(k, stats)| {
            let mut groups: Vec<(u8, u64, u64)> = Vec::new();
            let mut per_session: Vec<(u32, u8, u64, u64)> = Vec::new();
            for (loc, received, replica, session) in &counters {
                if *replica != k {
                    continue;
                }
                let got = received.load(Ordering::Relaxed);
                match groups.iter_mut().find(|g| g.0 == *loc) {
                    Some(g) => {
                        g.1 += 1;
                        g.2 += got;
                    }
                    None => groups.push((*loc, 1, got)),
                }
                if !sessions.is_empty() {
                    match per_session
                        .iter_mut()
                        .find(|g| g.0 == *session && g.1 == *loc)
                    {
                        Some(g) => {
                            g.2 += 1;
                            g.3 += got;
                        }
                        None => per_session.push((*session, *loc, 1, got)),
                    }
                }
            }
            let mut r = report(stats, groups);
            r.per_session = per_session;
            r
        })
        .collect();
    println!("{}", serde_json::to_string(&reports).unwrap());
    drop(stuck);
    rt.shutdown_timeout(Duration::from_millis(100));
}

/// The generator as a process of its own, driven over its standard input and output.
pub struct GeneratorProcess {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl GeneratorProcess {
    /// Starts this bench as the generator with `args` (on `core` if given) and waits until
    /// it says its subscribers are all connected.
    pub fn start(args: &[&str], core: Option<usize>) -> GeneratorProcess {
        use std::io::BufRead;
        let mut child = crate::procs::this_bench(core)
            .arg("--generator")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the generator process");
        let input = child.stdin.take().unwrap();
        let mut output = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(output.next().unwrap().unwrap(), "ready");
        GeneratorProcess {
            child,
            input,
            output,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Events its subscribers have received so far.
    pub fn received(&mut self) -> u64 {
        use std::io::Write;
        writeln!(self.input, "count").unwrap();
        let line = self.output.next().unwrap().unwrap();
        line.trim().parse().expect("the generator's count")
    }

    /// Waits until what the subscribers receive stands still for a second (60 s at most):
    /// what was on its way has arrived.
    pub fn wait_until_still(&mut self) {
        let (started, mut last) = (Instant::now(), u64::MAX);
        while started.elapsed() < Duration::from_secs(60) {
            let now = self.received();
            if now == last {
                return;
            }
            last = now;
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Ends it; its figures per server.
    pub fn stop(mut self) -> Vec<ReplicaReport> {
        use std::io::Write;
        writeln!(self.input, "stop").unwrap();
        let line = self.output.next().unwrap().unwrap();
        let _ = self.child.wait();
        serde_json::from_str(&line).expect("the generator's figures")
    }
}

/// A client's pong frame (masked, as a client's frames must be) for a ping's payload
/// (at most 125 bytes, as every control frame's).
fn masked_pong(payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x8a, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}
