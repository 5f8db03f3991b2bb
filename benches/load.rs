//! Load generator for the live feed: opens N concurrent subscribers (half SSE, half
//! WebSocket) against a real `caspers-replay serve` on 127.0.0.1, runs the clock, and
//! reports delivered events/s, the p50/p99 delay from the clock's emission (the tick's
//! `emitted` stamp) to the client's receipt, lost events and the server's RSS.
//!
//! Every run starts at a fixed simulated instant (a Friday's dinner peak; `--at` picks
//! another), so the same command offers the same events; the load generator is a process
//! of its own (this binary, `--generator`), so the server's CPU is measured apart, and
//! `--pin` puts the server on core 0 and the generator on core 1.
//!
//! `cargo bench --bench load` runs the scenarios; one scenario:
//! `cargo bench --bench load -- --subscribers 1000 --speed 3600 --seconds 10 [--filtered]
//! [--replicas 2] [--at "2024-02-02 17:30:00"] [--pin] [--deflate] [--floor]` (replicas
//! share one clock through a `nats-server -js` the bench starts; `--floor` measures the
//! same against a minimal fan-out server on epoll, to show what the machine allows).
//! `--compare [--rounds 3]` runs ours and the floor alternately and prints each side's
//! median round and the ratios; `--stalled 1000 [--send-timeout 8]` measures clients that
//! never read. After the clock stops, a run waits until the server's queues are empty, so
//! a late event is not counted lost; every loss is either announced by a lag notice or
//! fails the bench. All traffic stays on 127.0.0.1 and every run stops by itself.

mod common;

use std::net::SocketAddr;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use caspers_replay::dataset::Dataset;
use caspers_replay::timeline::Timeline;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "load-test-token";

/// Set by a run that lost events without telling its clients: the bench then fails.
static FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Delays in milliseconds, bucketed by millisecond up to 10 s.
struct Histogram(Vec<AtomicU64>);

impl Histogram {
    fn new() -> Histogram {
        Histogram((0..10_001).map(|_| AtomicU64::new(0)).collect())
    }
    fn add(&self, delay_ms: u64, n: u64) {
        self.0[delay_ms.min(10_000) as usize].fetch_add(n, Ordering::Relaxed);
    }
    fn quantile(&self, q: f64) -> u64 {
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

struct Stats {
    delays: Histogram,
    /// The same, per transport: [SSE, WebSocket].
    by_transport: [Histogram; 2],
    lagged: AtomicU64,
    /// Events the lag notices said were skipped (announced losses).
    missed: AtomicU64,
    errors: AtomicU64,
    /// Bytes read from the sockets (HTTP chunking and WebSocket framing included).
    bytes: AtomicU64,
    /// WebSocket: bytes read (handshake aside), the messages' text once inflated, and
    /// the events they held.
    ws_bytes: AtomicU64,
    inflated: AtomicU64,
    ws_events: AtomicU64,
    /// Streams whose response head came.
    connected: AtomicU64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            delays: Histogram::new(),
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

/// A `nats-server -js` on a free port with a temporary store, for replica scenarios.
fn start_nats() -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = std::env::temp_dir().join(format!("caspers-bench-nats-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let child = std::process::Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nats-server (apt-get install nats-server)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, format!("nats://127.0.0.1:{port}"))
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ") ".
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map_or("", |x| x.1)
        .split(' ')
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Raises the open-file limit for 30,000 sockets: to 200,000 where the process may (as
/// root), else to the hard limit. The servers and the generator inherit it.
fn raise_fd_limit() {
    // SAFETY: plain libc calls on a stack struct.
    unsafe {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
            let wanted = libc::rlimit {
                rlim_cur: rl.rlim_max.max(200_000),
                rlim_max: rl.rlim_max.max(200_000),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                rl.rlim_cur = rl.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            }
        }
    }
}

fn start_server(
    dataset: &std::path::Path,
    max_clients: usize,
    nats: Option<&str>,
    core: Option<usize>,
) -> (Child, SocketAddr) {
    let max_clients = max_clients.to_string();
    let mut args = vec!["--paused", "--control-token", TOKEN];
    args.extend(["--max-clients", &max_clients]);
    if let Some(url) = nats {
        args.extend(["--nats", url]);
    }
    // Extra server options for experiments, e.g. "--tick-ms 50 --workers 1".
    let extra = std::env::var("CASPERS_LOAD_SERVER_ARGS").unwrap_or_default();
    args.extend(extra.split_whitespace());
    match core {
        Some(c) => common::start_server_pinned(dataset, &args, c),
        None => common::start_server(dataset, &args),
    }
}

async fn get_metrics(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut metrics = String::new();
    s.read_to_string(&mut metrics).await.unwrap();
    metrics
}

fn metric_value(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

async fn control(addr: SocketAddr, body: &str) -> serde_json::Value {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /v1/clock HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let json = out.split("\r\n\r\n").nth(1).unwrap_or("{}");
    serde_json::from_str(json).unwrap_or_else(|_| panic!("control answer: {out}"))
}

/// Connects from one of several loopback source addresses (127.0.0.2 to 127.0.0.9, by
/// `n`): one source address has only about 28,000 ephemeral ports, too few for 30,000
/// subscribers.
async fn connect_from(addr: SocketAddr, n: usize) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, 2 + (n % 8) as u8], 0)))?;
    socket.connect(addr).await
}

/// An SSE subscriber: counts events and records each tick's delay.
async fn sse_client(
    addr: SocketAddr,
    n: usize,
    query: String,
    received: Arc<AtomicU64>,
    stats: Arc<Stats>,
) {
    let Ok(mut s) = connect_from(addr, n).await else {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let req =
        format!("GET /v1/events{query} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // Chunked framing is stripped on the fly; the SSE text is scanned line by line.
    let Some((head, rest)) = response_head(&mut s, &stats).await else {
        return;
    };
    if !head.starts_with("http/1.1 200") {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        return;
    }
    stats.connected.fetch_add(1, Ordering::Relaxed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut line = Vec::with_capacity(256);
    let mut chunk_left = 0usize;
    let mut size_line = Vec::new();
    let mut tally = Tally::new(&received, &stats, 0);
    let mut data = rest;
    loop {
        let at = now_ms();
        process(
            &data,
            &mut chunk_left,
            &mut size_line,
            &mut line,
            &mut |l| sse_line(l, &mut tally, at),
        );
        tally.flush(at);
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        data.clear();
        data.extend_from_slice(&buf[..n]);
    }
}

/// Reads a response's head: its text, lower case, and the bytes that came after it;
/// `None` if the connection ends first.
async fn response_head(s: &mut TcpStream, stats: &Stats) -> Option<(String, Vec<u8>)> {
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
struct Tally<'a> {
    emitted: u64,
    events: u64,
    received: &'a AtomicU64,
    stats: &'a Stats,
    /// 0 SSE, 1 WebSocket.
    transport: usize,
    /// The last event name was `lagged`: its data line says how many were skipped.
    lag_data_next: bool,
}

impl<'a> Tally<'a> {
    fn new(received: &'a AtomicU64, stats: &'a Stats, transport: usize) -> Tally<'a> {
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
            self.stats.by_transport[self.transport].add(delay, self.events);
            self.events = 0;
        }
    }
}

/// Feeds chunked-encoded bytes, calling `on_line` for each complete SSE line.
fn process(
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
fn sse_line(line: &[u8], tally: &mut Tally, at: u64) {
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

/// The `missed` count of a lag notice's JSON.
fn missed_in(text: &str) -> u64 {
    text.split("\"missed\":")
        .nth(1)
        .and_then(|r| r.split([',', '}']).next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// A WebSocket subscriber, offering permessage-deflate when `deflate` (as browsers do).
/// It reads the server's frames with the crate's own reader.
async fn ws_client(
    addr: SocketAddr,
    n: usize,
    query: String,
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
        "GET /v1/ws{query} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
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
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = now_ms();
    loop {
        loop {
            let text = match reader.next_message() {
                Ok(Some(Message::Text(text))) => text,
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
                stats.by_transport[1].add(at.saturating_sub(emitted), n);
                stats.ws_events.fetch_add(n, Ordering::Relaxed);
            } else if text.contains("\"type\":\"lagged\"") {
                stats.lagged.fetch_add(1, Ordering::Relaxed);
                stats.missed.fetch_add(missed_in(&text), Ordering::Relaxed);
            }
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
fn events_in(message: &str) -> u64 {
    match message.rfind("],\"positions\":[") {
        Some(at) => message[at..].matches("\",\"").count() as u64 + 1,
        None => 0,
    }
}

struct Scenario {
    subscribers: usize,
    speed: f64,
    seconds: u64,
    filtered: bool,
    /// Servers sharing one clock through NATS; subscribers are spread over them.
    replicas: usize,
    /// The simulated instant the run starts at (Unix seconds).
    at: i64,
    /// Server on core 0, load generator on core 1.
    pin: bool,
    /// Extra clients that subscribe to everything and never read.
    never_read: usize,
    /// WebSocket clients offer permessage-deflate.
    deflate: bool,
}

/// What the generator process reports for one replica's subscribers.
#[derive(serde::Serialize, serde::Deserialize)]
struct ReplicaReport {
    /// (location_id, or 0 for unfiltered; subscribers; events received)
    groups: Vec<(u8, u64, u64)>,
    p50: u64,
    p99: u64,
    sse_p50: u64,
    sse_p99: u64,
    ws_p50: u64,
    ws_p99: u64,
    lagged: u64,
    missed: u64,
    errors: u64,
    bytes: u64,
    ws_bytes: u64,
    inflated: u64,
    ws_events: u64,
}

fn report(stats: &Stats, groups: Vec<(u8, u64, u64)>) -> ReplicaReport {
    ReplicaReport {
        groups,
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

async fn subscribers_counted(addrs: &[SocketAddr]) -> usize {
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
            .filter(|l| l.starts_with("caspers_subscribers{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    count as usize
}

/// The load generator, a process of its own: opens the subscribers (half SSE, half
/// WebSocket, pairs of them on each replica in turn), says `ready` when the servers count
/// them all, and prints its figures as JSON when told `stop` on standard input.
fn generator(
    addrs: &[SocketAddr],
    subscribers: usize,
    filtered: bool,
    never_read: usize,
    deflate: bool,
    floor: bool,
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
            counters.push((
                if filtered { location } else { 0 },
                Arc::clone(&received),
                replica,
            ));
            let stats = Arc::clone(&per_replica[replica]);
            let addr = addrs[replica];
            if i % 2 == 0 {
                tokio::spawn(sse_client(addr, i, query, received, stats));
            } else {
                tokio::spawn(ws_client(addr, i, query, deflate, received, stats));
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
            && if floor {
                connected() < subscribers
            } else {
                subscribers_counted(addrs).await < subscribers + never_read
            }
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    println!("ready");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    let reports: Vec<ReplicaReport> = per_replica
        .iter()
        .enumerate()
        .map(|(k, stats)| {
            let mut groups: Vec<(u8, u64, u64)> = Vec::new();
            for (loc, received, replica) in &counters {
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
            }
            report(stats, groups)
        })
        .collect();
    println!("{}", serde_json::to_string(&reports).unwrap());
    drop(stuck);
    rt.shutdown_timeout(Duration::from_millis(100));
}

fn run(ds: &Dataset, dir: &std::path::Path, sc: &Scenario) -> Summary {
    use std::io::{BufRead, Write};
    let nats = (sc.replicas > 1).then(start_nats);
    let url = nats.as_ref().map(|n| n.1.clone());
    let mut servers: Vec<(Child, SocketAddr)> = (0..sc.replicas.max(1))
        .map(|_| {
            start_server(
                dir,
                sc.subscribers + 100,
                url.as_deref(),
                sc.pin.then_some(0),
            )
        })
        .collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.1).collect();
    let addr = addrs[0];
    let pids: Vec<u32> = servers.iter().map(|s| s.0.id()).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(control(
        addr,
        &format!("{{\"seek\": {}, \"paused\": true}}", sc.at),
    ));
    std::thread::sleep(Duration::from_millis(300));
    let rss_empty = rss_mb(pids[0]);

    // The generator: this bench binary again, in a process of its own.
    let joined: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let mut cmd = this_bench(sc.pin.then_some(1));
    cmd.args([
        "--generator",
        &joined.join(","),
        "--subscribers",
        &sc.subscribers.to_string(),
    ]);
    if sc.filtered {
        cmd.arg("--filtered");
    }
    if sc.deflate {
        cmd.arg("--deflate");
    }
    let mut gen_child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the generator process");
    let gen_pid = gen_child.id();
    let mut gen_out = std::io::BufReader::new(gen_child.stdout.take().unwrap()).lines();
    let t_connect = Instant::now();
    assert_eq!(gen_out.next().unwrap().unwrap(), "ready");
    let connect_s = t_connect.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = rss_mb(pids[0]);

    // The server's peak RSS over the run, sampled every 100 ms.
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let peak = {
        let (sampling, pid) = (Arc::clone(&sampling), pids[0]);
        std::thread::spawn(move || {
            let mut peak: f64 = 0.0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(rss_mb(pid));
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        })
    };
    let server_cpu0: f64 = pids.iter().map(|&p| cpu_seconds(p)).sum();
    let gen_cpu0 = cpu_seconds(gen_pid);
    let t_measure = Instant::now();
    let (start, end, wall, metrics) = rt.block_on(async {
        let started = control(
            addr,
            &format!("{{\"speed\": {}, \"paused\": false}}", sc.speed),
        )
        .await;
        let t = Instant::now();
        tokio::time::sleep(Duration::from_secs(sc.seconds)).await;
        let stopped = control(addr, "{\"paused\": true}").await;
        let wall = t.elapsed().as_secs_f64();
        // Let what is queued drain (a late event is not a lost one): until every server's
        // queues are empty (60 s at most), then a second for the sockets.
        let drain = Instant::now();
        // (Clients that never read keep their queues: those are not waited for.)
        let limit = if sc.never_read > 0 { 0 } else { 60 };
        while drain.elapsed() < Duration::from_secs(limit) {
            let mut queued = 0.0;
            for &a in &addrs {
                queued += metric_value(&get_metrics(a).await, "caspers_queued_bytes ");
            }
            if queued == 0.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let metrics = get_metrics(addr).await;
        (
            started["sim_time"].as_f64().unwrap(),
            stopped["sim_time"].as_f64().unwrap(),
            wall,
            metrics,
        )
    });
    let measured = t_measure.elapsed().as_secs_f64();
    let server_cpu = pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>() - server_cpu0;
    let gen_cpu = cpu_seconds(gen_pid) - gen_cpu0;
    let rss_busy = rss_mb(pids[0]);
    sampling.store(false, Ordering::Relaxed);
    let rss_peak = peak.join().unwrap_or(f64::NAN);
    let mut stdin = gen_child.stdin.take().unwrap();
    writeln!(stdin, "stop").unwrap();
    let reports: Vec<ReplicaReport> =
        serde_json::from_str(&gen_out.next().unwrap().unwrap()).expect("generator figures");
    let _ = gen_child.wait();

    let value = |name: &str| metric_value(&metrics, name);
    let ticks = value("caspers_ticks_total ");
    let (a, b) = (start.floor() as i64 + 1, end.floor() as i64 + 1);
    let timeline = Timeline::new(ds, false);
    let mut per_location = [0u64; 256];
    let mut total = 0u64;
    timeline.for_each_event(ds, a, b, 0, |pos, _| {
        per_location[usize::from(ds.events.location_id(pos))] += 1;
        total += 1;
    });
    let want = |loc: u8| {
        if loc == 0 {
            total
        } else {
            per_location[usize::from(loc)]
        }
    };
    let mut expected = 0u64;
    let mut delivered = 0u64;
    let mut bytes = 0u64;
    let (ws_bytes, inflated, ws_events) = reports.iter().fold((0, 0, 0), |a, r| {
        (a.0 + r.ws_bytes, a.1 + r.inflated, a.2 + r.ws_events)
    });
    for r in &reports {
        for &(loc, n, got) in &r.groups {
            expected += want(loc) * n;
            delivered += got;
        }
        bytes += r.bytes;
    }
    println!(
        "{} subscribers ({}), {}x from {} for {:.1} s{}: the clock offers {:.0} events/s ({} events), the fan-out {:.0} events/s",
        sc.subscribers,
        if sc.filtered {
            "each filtered to one location"
        } else {
            "unfiltered"
        },
        sc.speed,
        caspers_replay::time::format_ts(sc.at),
        wall,
        if sc.pin {
            ", server on core 0, generator on core 1"
        } else {
            ""
        },
        total as f64 / wall,
        total,
        expected as f64 / wall,
    );
    let all = &reports;
    let worst = |f: fn(&ReplicaReport) -> u64| all.iter().map(f).max().unwrap_or(0);
    let lost = expected as i64 - delivered as i64;
    let announced = all.iter().map(|r| r.missed).sum::<u64>() as i64;
    println!(
        "  delivered {delivered} = {:.0} events/s; delay p50 {} ms, p99 {} ms (SSE {}/{}, WebSocket {}/{}); lost {lost} of {expected}: {announced} announced by {} lag notices, {} unannounced ({} connection errors)",
        delivered as f64 / wall,
        worst(|r| r.p50),
        worst(|r| r.p99),
        worst(|r| r.sse_p50),
        worst(|r| r.sse_p99),
        worst(|r| r.ws_p50),
        worst(|r| r.ws_p99),
        all.iter().map(|r| r.lagged).sum::<u64>(),
        lost - announced,
        all.iter().map(|r| r.errors).sum::<u64>(),
    );
    if lost != announced {
        println!(
            "  FAILED: {} events lost without a lag notice",
            lost - announced
        );
        FAILED.store(true, Ordering::Relaxed);
    }
    let summary = Summary {
        p50: worst(|r| r.p50),
        p99: worst(|r| r.p99),
        events_per_s: delivered as f64 / wall,
        lost,
        unannounced: lost - announced,
        cpu: server_cpu / measured,
    };
    println!(
        "  on the wire {:.0} bytes per event delivered; connect {connect_s:.1} s; server ticks {ticks:.0}, fan-out {:.1} ms on average, {:.1} ms at most",
        bytes as f64 / delivered.max(1) as f64,
        value("caspers_tick_duration_seconds_total ") / ticks * 1e3,
        value("caspers_tick_duration_seconds_max ") * 1e3
    );
    println!(
        "  WebSocket{}: {:.0} bytes per event on the wire, {:.0} as text ({:.1} %)",
        if sc.deflate {
            " (clients offer permessage-deflate)"
        } else {
            ""
        },
        ws_bytes as f64 / ws_events.max(1) as f64,
        inflated as f64 / ws_events.max(1) as f64,
        100.0 * ws_bytes as f64 / inflated.max(1) as f64,
    );
    println!(
        "  CPU over the run (cores): server {:.2} ({:.3} per 1,000 subscribers), load generator {:.2}; server RSS {rss_empty:.0} MB empty, {rss_idle:.0} MB with idle subscribers ({:.1} KB each), {rss_busy:.0} MB after the run, {rss_peak:.0} MB at most",
        server_cpu / measured,
        server_cpu / measured / (sc.subscribers as f64 / 1000.0),
        gen_cpu / measured,
        (rss_idle - rss_empty) * 1024.0 / sc.subscribers as f64,
    );
    if sc.never_read > 0 {
        println!(
            "  beside them, {} clients that never read: {:.0} skipped ahead by the memory budget, {:.0} MB of chunks held at the end",
            sc.never_read,
            value("caspers_clients_shed_total "),
            value("caspers_queued_bytes ") / 1e6
        );
    }
    if reports.len() > 1 {
        for (k, r) in reports.iter().enumerate() {
            let (w, g): (u64, u64) = r.groups.iter().fold((0, 0), |acc, &(loc, n, got)| {
                (acc.0 + want(loc) * n, acc.1 + got)
            });
            println!(
                "  replica {k}: {g} events delivered = {:.0} events/s; delay p50 {} ms, p99 {} ms; lost {} of {w}",
                g as f64 / wall,
                r.p50,
                r.p99,
                w as i64 - g as i64
            );
        }
        println!("  (server RSS is replica 0's; CPU is all replicas')");
    }
    for (child, _) in &mut servers {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some((mut child, _)) = nats {
        let _ = child.kill();
        let _ = child.wait();
    }
    summary
}

/// The floor: a fan-out server reduced to what no server can avoid, to measure what this
/// machine allows. Two writer threads (one per core) each own half of the sockets and wait
/// on their own epoll (mio), as the real server's writers do. Every tick each builds one
/// SSE chunk and one WebSocket message (the emission stamp, then as many events of the real
/// server's size as `per_tick` says for that tick) and writes the one its client asked for
/// to each of its sockets with one non-blocking `write`; what a full socket did not take
/// waits for the socket's writable event. No queue, lock, task or copy per connection.
fn floor_server(per_tick: Vec<usize>, tick: Duration) {
    use std::io::Write;
    raise_fd_limit();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    println!("listening {}", listener.local_addr().unwrap());
    type Inbox = Arc<std::sync::Mutex<Vec<(std::net::TcpStream, bool)>>>;
    const WAKE: mio::Token = mio::Token(usize::MAX);
    let per_tick = Arc::new(per_tick);
    let mut threads: Vec<(Inbox, Arc<mio::Waker>)> = Vec::new();
    for _ in 0..2 {
        let inbox: Inbox = Arc::default();
        let mut poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKE).unwrap());
        threads.push((Arc::clone(&inbox), waker));
        let per_tick = Arc::clone(&per_tick);
        std::thread::spawn(move || {
            let mut ticks = 0usize;
            const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
            const WS_HEAD: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: x\r\n\r\n";
            // (socket, what it has not taken yet, WebSocket); indexed by token.
            let mut sockets: Vec<Option<(mio::net::TcpStream, Vec<u8>, bool)>> = Vec::new();
            let mut events = mio::Events::with_capacity(1024);
            let event = format!("id: 00000000-0-0000000\ndata: {}\n\n", "x".repeat(350));
            let ws_event = format!("{{\"x\":\"{}\"}}", "x".repeat(345));
            let mut next_tick = Instant::now();
            // Writes `bytes` after what is pending; false when the socket failed.
            let send = |s: &mut mio::net::TcpStream, pending: &mut Vec<u8>, bytes: &[u8]| {
                if !pending.is_empty() {
                    pending.extend_from_slice(bytes);
                    return true;
                }
                match s.write(bytes) {
                    Ok(n) => pending.extend_from_slice(&bytes[n..]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        pending.extend_from_slice(bytes)
                    }
                    Err(_) => return false,
                }
                true
            };
            loop {
                let wait = next_tick.saturating_duration_since(Instant::now());
                let _ = poll.poll(&mut events, Some(wait));
                for ev in &events {
                    if ev.token() == WAKE {
                        for (s, ws) in inbox.lock().unwrap().drain(..) {
                            s.set_nodelay(true).unwrap();
                            s.set_nonblocking(true).unwrap();
                            let mut s = mio::net::TcpStream::from_std(s);
                            let token = mio::Token(sockets.len());
                            poll.registry()
                                .register(&mut s, token, mio::Interest::WRITABLE)
                                .unwrap();
                            let mut pending = Vec::new();
                            if send(&mut s, &mut pending, if ws { WS_HEAD } else { SSE_HEAD }) {
                                sockets.push(Some((s, pending, ws)));
                            } else {
                                sockets.push(None);
                            }
                        }
                    } else if let Some(Some((s, pending, _))) = sockets.get_mut(ev.token().0) {
                        // Writable again: what it did not take.
                        if !pending.is_empty() {
                            match s.write(pending) {
                                Ok(n) => {
                                    pending.drain(..n);
                                }
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                Err(_) => sockets[ev.token().0] = None,
                            }
                        }
                    }
                }
                if Instant::now() < next_tick {
                    continue;
                }
                next_tick += tick;
                // The real server's events for this tick (the same instant and speed),
                // then the last count again.
                let n = per_tick[ticks.min(per_tick.len() - 1)];
                ticks += 1;
                let emitted = now_ms();
                let mut body = format!(": emitted {emitted}\n").into_bytes();
                for _ in 0..n {
                    body.extend_from_slice(event.as_bytes());
                }
                let mut chunk = format!("{:x}\r\n", body.len()).into_bytes();
                chunk.extend_from_slice(&body);
                chunk.extend_from_slice(b"\r\n");
                let events_json = vec![ws_event.as_str(); n].join(",");
                let positions = vec!["\"p\""; n].join(",");
                let message = format!(
                    "{{\"type\":\"events\",\"emitted_at\":{emitted},\"events\":[{events_json}],\"positions\":[{positions}]}}"
                );
                let frame = caspers_replay::fanout::websocket::frame(
                    caspers_replay::fanout::websocket::WsOpcode::Text,
                    message.as_bytes(),
                );
                for slot in &mut sockets {
                    if let Some((s, pending, ws)) = slot {
                        let bytes = if *ws { &frame } else { &chunk };
                        if !send(s, pending, bytes) {
                            *slot = None;
                        }
                    }
                }
            }
        });
    }
    for (k, stream) in listener.incoming().enumerate() {
        let Ok(mut stream) = stream else {
            continue;
        };
        // The request says which stream the client wants.
        use std::io::Read;
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(n) if n > 0 => request.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        let ws = request.starts_with(b"GET /v1/ws");
        let (inbox, waker) = &threads[k % 2];
        inbox.lock().unwrap().push((stream, ws));
        waker.wake().unwrap();
    }
}

/// This bench binary as another process, on `core` if given (`taskset`).
fn this_bench(core: Option<usize>) -> std::process::Command {
    let exe = std::env::current_exe().unwrap();
    match core {
        Some(c) => {
            let mut cmd = std::process::Command::new("taskset");
            cmd.args(["-c", &c.to_string()]).arg(exe);
            cmd
        }
        None => std::process::Command::new(exe),
    }
}

/// `--floor`: the same generator and figures against [`floor_server`] instead of the
/// real server, offering each subscriber as many events a tick as the real one would.
fn run_floor(ds: &Dataset, sc: &Scenario) -> Summary {
    use std::io::{BufRead, Write};
    // Events per subscriber in each 100 ms tick, as the real server offers them from the
    // same instant (ticks are uneven: the dinner peak's are three times the mean).
    let timeline = Timeline::new(ds, false);
    let span = (sc.speed / 10.0) as i64;
    let per_tick: Vec<String> = (0..sc.seconds as i64 * 10 + 40)
        .map(|k| {
            let a = sc.at + k * span;
            let n = timeline.count(ds, a, a + span);
            (if sc.filtered { n / 4 } else { n }).to_string()
        })
        .collect();
    let per_tick = per_tick.join(",");
    let mut server = this_bench(sc.pin.then_some(0))
        .args(["--floor-server", "--events-per-tick", &per_tick])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the floor server");
    let mut out = std::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let addr = out
        .next()
        .unwrap()
        .unwrap()
        .trim_start_matches("listening ")
        .to_string();
    let mut gen_child = this_bench(sc.pin.then_some(1))
        .args([
            "--generator",
            &addr,
            "--subscribers",
            &sc.subscribers.to_string(),
            "--floor",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the generator process");
    let mut gen_out = std::io::BufReader::new(gen_child.stdout.take().unwrap()).lines();
    assert_eq!(gen_out.next().unwrap().unwrap(), "ready");
    let (server_cpu0, gen_cpu0) = (cpu_seconds(server.id()), cpu_seconds(gen_child.id()));
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(sc.seconds));
    let wall = t.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(server.id()) - server_cpu0;
    let gen_cpu = cpu_seconds(gen_child.id()) - gen_cpu0;
    let rss = rss_mb(server.id());
    writeln!(gen_child.stdin.take().unwrap(), "stop").unwrap();
    let reports: Vec<ReplicaReport> =
        serde_json::from_str(&gen_out.next().unwrap().unwrap()).expect("generator figures");
    let _ = gen_child.wait();
    let _ = server.kill();
    let _ = server.wait();
    let r = &reports[0];
    let delivered: u64 = r.groups.iter().map(|g| g.2).sum();
    println!(
        "floor: {} subscribers{}, each tick's events as {}x from the same instant{}: delivered {:.0} events/s; delay p50 {} ms, p99 {} ms; {} connection errors",
        sc.subscribers,
        if sc.pin {
            ", server on core 0, generator on core 1"
        } else {
            ""
        },
        sc.speed,
        if sc.filtered {
            ", one location each"
        } else {
            ""
        },
        delivered as f64 / wall,
        r.p50,
        r.p99,
        r.errors
    );
    println!(
        "  CPU (cores): floor server {:.2}, load generator {:.2}; floor server RSS {rss:.0} MB",
        server_cpu / wall,
        gen_cpu / wall
    );
    Summary {
        p50: r.p50,
        p99: r.p99,
        events_per_s: delivered as f64 / wall,
        lost: 0,
        unannounced: 0,
        cpu: server_cpu / wall,
    }
}

/// `--stalled N`: N clients that ask for every event and never read, the clock at 86400x
/// for a few seconds, then paused. Measures the server's CPU while they sit there with full
/// sockets (a writer on readiness spends nothing on them) and how long until the send
/// timeout has closed them all.
fn run_stalled(dir: &std::path::Path, n: usize, send_timeout: f64, at: i64) {
    use std::io::{BufRead, Write};
    let timeout = send_timeout.to_string();
    let (mut server, addr) = common::start_server(
        dir,
        &[
            "--paused",
            "--control-token",
            TOKEN,
            "--max-clients",
            &(n + 100).to_string(),
            "--send-timeout",
            &timeout,
        ],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(control(
        addr,
        &format!("{{\"seek\": {at}, \"paused\": true}}"),
    ));
    let mut gen_child = this_bench(None)
        .args([
            "--generator",
            &addr.to_string(),
            "--subscribers",
            "0",
            "--never-read",
            &n.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the generator process");
    let mut gen_out = std::io::BufReader::new(gen_child.stdout.take().unwrap()).lines();
    assert_eq!(gen_out.next().unwrap().unwrap(), "ready");
    let run_s = 2.0f64.min(send_timeout / 2.0);
    rt.block_on(async {
        control(addr, "{\"speed\": 86400, \"paused\": false}").await;
        tokio::time::sleep(Duration::from_secs_f64(run_s)).await;
        control(addr, "{\"paused\": true}").await;
    });
    let paused = Instant::now();
    // A quiet window while they all sit with full sockets, before any timeout is due (they
    // filled up during the run): nothing asked of the server, nothing to send.
    let quiet = (send_timeout - run_s - 1.0).clamp(0.5, 4.0);
    std::thread::sleep(Duration::from_millis(500));
    let cpu0 = cpu_seconds(server.id());
    std::thread::sleep(Duration::from_secs_f64(quiet));
    let cpu_while_stalled = (cpu_seconds(server.id()) - cpu0) / quiet;
    let still = rt.block_on(subscribers_counted(&[addr]));
    let mut all_closed = None;
    while paused.elapsed() < Duration::from_secs_f64(send_timeout + 30.0) {
        if rt.block_on(subscribers_counted(&[addr])) == 0 {
            all_closed = Some(paused.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // And with nothing left at all.
    let cpu1 = cpu_seconds(server.id());
    std::thread::sleep(Duration::from_secs(3));
    let cpu_after = (cpu_seconds(server.id()) - cpu1) / 3.0;
    let metrics = rt.block_on(get_metrics(addr));
    writeln!(gen_child.stdin.take().unwrap(), "stop").unwrap();
    let _ = gen_out.next();
    let _ = gen_child.wait();
    let _ = server.kill();
    let _ = server.wait();
    println!(
        "{n} clients that never read, 86400x for {run_s:.0} s, then paused; --send-timeout {send_timeout} s:"
    );
    match all_closed {
        Some(t) => println!(
            "  server CPU {cpu_while_stalled:.3} cores over {quiet:.1} s while {still} of them sat with full sockets, {cpu_after:.3} once they were gone; all closed {t:.1} s after the pause ({:.0} timed out)",
            metric_value(&metrics, "caspers_clients_timed_out_total ")
        ),
        None => {
            println!(
                "  FAILED: still connected {:.0} s after the pause",
                send_timeout + 30.0
            );
            FAILED.store(true, Ordering::Relaxed);
        }
    }
}

/// Friday 2024-02-02 17:30 UTC: the dinner peak of a Friday, the busiest hours of a week.
const FRIDAY_PEAK: i64 = 1_706_895_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(addrs) = arg("--generator") {
        let addrs: Vec<SocketAddr> = addrs.split(',').map(|a| a.parse().unwrap()).collect();
        let n = arg("--subscribers").unwrap().parse().unwrap();
        let never_read = arg("--never-read").map_or(0, |v| v.parse().unwrap());
        generator(
            &addrs,
            n,
            args.iter().any(|a| a == "--filtered"),
            never_read,
            args.iter().any(|a| a == "--deflate"),
            args.iter().any(|a| a == "--floor"),
        );
        return;
    }
    if args.iter().any(|a| a == "--floor-server") {
        let per_tick = arg("--events-per-tick").map_or(vec![14], |v| {
            v.split(',').map(|n| n.parse().unwrap()).collect()
        });
        floor_server(per_tick, Duration::from_millis(100));
        return;
    }
    raise_fd_limit();
    let dir = common::full_dataset();
    let ds = Dataset::open(&dir).expect("load");
    let at = arg("--at").map_or(FRIDAY_PEAK, |t| {
        caspers_replay::time::parse_rfc3339(&t).expect("--at \"2024-02-02 17:30:00\"")
    });
    if let Some(n) = arg("--stalled") {
        let timeout = arg("--send-timeout").map_or(8.0, |t| t.parse().expect("--send-timeout S"));
        run_stalled(&dir, n.parse().expect("--stalled N"), timeout, at);
        finish();
        return;
    }
    let pin = args.iter().any(|a| a == "--pin");
    let scenarios = match arg("--subscribers") {
        Some(n) => vec![Scenario {
            subscribers: n.parse().expect("--subscribers N"),
            speed: arg("--speed").map_or(3600.0, |s| s.parse().expect("--speed X")),
            seconds: arg("--seconds").map_or(10, |s| s.parse().expect("--seconds S")),
            filtered: args.iter().any(|a| a == "--filtered"),
            replicas: arg("--replicas").map_or(1, |s| s.parse().expect("--replicas N")),
            at,
            pin,
            never_read: arg("--never-read").map_or(0, |v| v.parse().expect("--never-read N")),
            deflate: args.iter().any(|a| a == "--deflate"),
        }],
        None => [
            // (subscribers, speed, one location each, seconds, clients that never read,
            // WebSocket clients offer permessage-deflate)
            (10_000, 3600.0, true, 10, 0, false),
            (10_000, 3600.0, true, 10, 0, true),
            (2_000, 3600.0, false, 10, 0, false),
            (1_000, 3600.0, false, 10, 0, false),
            (100, 86_400.0, false, 10, 0, false),
            (1_000, 86_400.0, false, 10, 5_000, false),
        ]
        .into_iter()
        .map(
            |(subscribers, speed, filtered, seconds, never_read, deflate)| Scenario {
                subscribers,
                speed,
                seconds,
                filtered,
                replicas: 1,
                at,
                pin,
                never_read,
                deflate,
            },
        )
        .collect(),
    };
    let rounds = arg("--rounds").map_or(3, |r| r.parse().expect("--rounds N"));
    for sc in &scenarios {
        if args.iter().any(|a| a == "--compare") {
            compare(&ds, &dir, sc, rounds);
        } else if args.iter().any(|a| a == "--floor") {
            run_floor(&ds, sc);
        } else {
            run(&ds, &dir, sc);
        }
    }
    finish();
}

/// Exits with failure when a run lost events without telling its clients.
fn finish() {
    if FAILED.load(Ordering::Relaxed) {
        eprintln!("load bench: FAILED (see above)");
        std::process::exit(1);
    }
}

/// `--compare`: ours and the floor alternately, `rounds` times each, on the same scenario;
/// each side's median round (by p99) and the ratios.
fn compare(ds: &Dataset, dir: &std::path::Path, sc: &Scenario, rounds: usize) {
    let mut ours = Vec::new();
    let mut floor = Vec::new();
    for round in 1..=rounds {
        println!("-- round {round} of {rounds}: ours");
        ours.push(run(ds, dir, sc));
        println!("-- round {round} of {rounds}: the floor");
        floor.push(run_floor(ds, sc));
    }
    let median = |mut v: Vec<Summary>| {
        v.sort_by_key(|s| s.p99);
        v.swap_remove(v.len() / 2)
    };
    let (o, f) = (median(ours), median(floor));
    println!(
        "\n{} subscribers{}, {}x, median of {rounds} rounds (by p99):",
        sc.subscribers,
        if sc.filtered {
            ", one location each"
        } else {
            ""
        },
        sc.speed
    );
    println!(
        "| server | p50 ms | p99 ms | delivered events/s | lost (unannounced) | server CPU (cores) |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, s) in [("ours", &o), ("the floor", &f)] {
        println!(
            "| {name} | {} | {} | {:.0} | {} ({}) | {:.2} |",
            s.p50, s.p99, s.events_per_s, s.lost, s.unannounced, s.cpu
        );
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    println!(
        "ours / floor: p50 {:.2}, p99 {:.2}, CPU {:.2}",
        ratio(o.p50 as f64, f.p50 as f64),
        ratio(o.p99 as f64, f.p99 as f64),
        ratio(o.cpu, f.cpu)
    );
}

/// One run's figures, for `--compare`.
struct Summary {
    p50: u64,
    p99: u64,
    events_per_s: f64,
    lost: i64,
    unannounced: i64,
    /// Server CPU, cores.
    cpu: f64,
}
