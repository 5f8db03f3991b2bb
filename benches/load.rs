//! Load generator for the live feed: opens N concurrent subscribers (half SSE, half
//! WebSocket) against a real `caspers-replay serve` on 127.0.0.1, runs the clock, and
//! reports delivered events/s, the p50/p99 delay from the clock's emission (the tick's
//! `emitted` stamp) to the client's receipt, lost events and the server's RSS.
//!
//! `cargo bench --bench load` runs the scenarios; one scenario:
//! `cargo bench --bench load -- --subscribers 1000 --speed 3600 --seconds 10 [--filtered]
//! [--replicas 2]` (replicas share one clock through a `nats-server -js` the bench starts).
//! All traffic stays on 127.0.0.1 and every run stops by itself.

mod common;

use std::net::SocketAddr;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use caspers_replay::clock::Timeline;
use caspers_replay::dataset::Dataset;
use caspers_replay::sinks::filter::Filter;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "load-test-token";

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
    errors: AtomicU64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            delays: Histogram::new(),
            by_transport: [Histogram::new(), Histogram::new()],
            lagged: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// Several replicas' figures as one.
    fn merged(parts: &[Arc<Stats>]) -> Stats {
        let all = Stats::new();
        let add = |into: &Histogram, from: &Histogram| {
            for (a, b) in into.0.iter().zip(&from.0) {
                a.fetch_add(b.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        };
        for p in parts {
            add(&all.delays, &p.delays);
            add(&all.by_transport[0], &p.by_transport[0]);
            add(&all.by_transport[1], &p.by_transport[1]);
            all.lagged
                .fetch_add(p.lagged.load(Ordering::Relaxed), Ordering::Relaxed);
            all.errors
                .fetch_add(p.errors.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        all
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

fn raise_fd_limit() {
    // SAFETY: plain libc calls on a stack struct.
    unsafe {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

fn start_server(
    dataset: &std::path::Path,
    max_clients: usize,
    nats: Option<&str>,
) -> (Child, SocketAddr) {
    let max_clients = max_clients.to_string();
    let mut args = vec!["--paused", "--start-day", "30", "--control-token", TOKEN];
    args.extend(["--max-clients", &max_clients]);
    if let Some(url) = nats {
        args.extend(["--nats", url]);
    }
    // Extra server options for experiments, e.g. "--tick-ms 50 --workers 1".
    let extra = std::env::var("CASPERS_LOAD_SERVER_ARGS").unwrap_or_default();
    args.extend(extra.split_whitespace());
    common::start_server(dataset, &args)
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

/// An SSE subscriber: counts events and records each tick's delay.
async fn sse_client(addr: SocketAddr, query: String, received: Arc<AtomicU64>, stats: Arc<Stats>) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
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
    let mut buf = vec![0u8; 64 * 1024];
    let mut line = Vec::with_capacity(256);
    let mut head_done = false;
    let mut head = Vec::new();
    let mut chunk_left = 0usize;
    let mut size_line = Vec::new();
    let mut emitted = 0u64;
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let at = now_ms();
        let mut data = &buf[..n];
        if !head_done {
            head.extend_from_slice(data);
            let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            if !head.starts_with(b"HTTP/1.1 200") {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
            head_done = true;
            let rest = head[end + 4..].to_vec();
            process(
                &rest,
                &mut chunk_left,
                &mut size_line,
                &mut line,
                &mut |l| sse_line(l, &mut emitted, at, &received, &stats),
            );
            data = &[];
        }
        process(data, &mut chunk_left, &mut size_line, &mut line, &mut |l| {
            sse_line(l, &mut emitted, at, &received, &stats)
        });
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
            let Some(nl) = data.iter().position(|&b| b == b'\n') else {
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
        while let Some(nl) = seg.iter().position(|&b| b == b'\n') {
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
fn sse_line(line: &[u8], emitted: &mut u64, at: u64, received: &AtomicU64, stats: &Stats) {
    if let Some(ms) = line.strip_prefix(b": emitted ") {
        *emitted = std::str::from_utf8(ms)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(at);
    } else if line.starts_with(b"id: ") {
        received.fetch_add(1, Ordering::Relaxed);
        stats.delays.add(at.saturating_sub(*emitted), 1);
        stats.by_transport[0].add(at.saturating_sub(*emitted), 1);
    } else if line == b"event: lagged" {
        stats.lagged.fetch_add(1, Ordering::Relaxed);
    }
}

/// A WebSocket subscriber.
async fn ws_client(addr: SocketAddr, query: String, received: Arc<AtomicU64>, stats: Arc<Stats>) {
    let Ok(s) = TcpStream::connect(addr).await else {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let url = format!("ws://{addr}/v1/ws{query}");
    let Ok((mut ws, _)) = tokio_tungstenite::client_async(url, s).await else {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        let at = now_ms();
        let tokio_tungstenite::tungstenite::Message::Text(text) = message else {
            continue;
        };
        let text = text.as_str();
        if let Some(rest) = text.strip_prefix("{\"type\":\"events\",\"emitted_at\":") {
            let emitted: u64 = rest
                .split(',')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(at);
            let n = text.matches("{\"event_id\":").count() as u64;
            received.fetch_add(n, Ordering::Relaxed);
            stats.delays.add(at.saturating_sub(emitted), n);
            stats.by_transport[1].add(at.saturating_sub(emitted), n);
        } else if text.contains("\"type\":\"lagged\"") {
            stats.lagged.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Scenario {
    subscribers: usize,
    speed: f64,
    seconds: u64,
    filtered: bool,
    /// Servers sharing one clock through NATS; subscribers are spread over them.
    replicas: usize,
}

fn run(ds: &Dataset, dir: &std::path::Path, sc: &Scenario) {
    let nats = (sc.replicas > 1).then(start_nats);
    let url = nats.as_ref().map(|n| n.1.clone());
    let mut servers: Vec<(Child, SocketAddr)> = (0..sc.replicas.max(1))
        .map(|_| start_server(dir, sc.subscribers + 100, url.as_deref()))
        .collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.1).collect();
    let addr = addrs[0];
    let pid = servers[0].0.id();
    std::thread::sleep(Duration::from_millis(300));
    let rss_empty = rss_mb(pid);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let per_replica: Vec<Arc<Stats>> = addrs.iter().map(|_| Arc::new(Stats::new())).collect();
    // One counter per subscriber, with its filter.
    let mut counters = Vec::new();
    let t_connect = Instant::now();
    rt.block_on(async {
        for i in 0..sc.subscribers {
            let location = (i % 4 + 1) as u8;
            let query = if sc.filtered {
                format!("?location_id={location}")
            } else {
                String::new()
            };
            let filter = if sc.filtered {
                Filter::new(&[location], &[])
            } else {
                Filter::default()
            };
            let received = Arc::new(AtomicU64::new(0));
            // Pairs of subscribers (one SSE, one WebSocket) go to each replica in turn.
            let replica = (i / 2) % addrs.len();
            counters.push((filter, Arc::clone(&received), replica));
            let stats = Arc::clone(&per_replica[replica]);
            let addr = addrs[replica];
            if i % 2 == 0 {
                tokio::spawn(sse_client(addr, query, received, stats));
            } else {
                tokio::spawn(ws_client(addr, query, received, stats));
            }
            if i % 500 == 499 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // Wait until the server counts every subscriber.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let mut count = 0.0;
            for &addr in &addrs {
                let mut s = TcpStream::connect(addr).await.unwrap();
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .await
                    .unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).await.unwrap();
                count += out
                    .lines()
                    .filter(|l| l.starts_with("caspers_subscribers{"))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum::<f64>();
            }
            if count as usize >= sc.subscribers {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let connect_s = t_connect.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = rss_mb(pid);

    let (server_cpu0, own_cpu0) = (cpu_seconds(pid), cpu_seconds(std::process::id()));
    let (start, end, wall) = rt.block_on(async {
        let started = control(
            addr,
            &format!("{{\"speed\": {}, \"paused\": false}}", sc.speed),
        )
        .await;
        let t = Instant::now();
        tokio::time::sleep(Duration::from_secs(sc.seconds)).await;
        let stopped = control(addr, "{\"paused\": true}").await;
        let wall = t.elapsed().as_secs_f64();
        // Let the last ticks drain.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut metrics = String::new();
        s.read_to_string(&mut metrics).await.unwrap();
        let value = |name: &str| -> f64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or(f64::NAN)
        };
        let ticks = value("caspers_ticks_total ");
        println!(
            "  server ticks: {ticks:.0}, fan-out {:.1} ms on average, {:.1} ms at most",
            value("caspers_tick_duration_seconds_total ") / ticks * 1e3,
            value("caspers_tick_duration_seconds_max ") * 1e3
        );
        (
            started["sim_time"].as_f64().unwrap(),
            stopped["sim_time"].as_f64().unwrap(),
            wall,
        )
    });
    let rss_busy = rss_mb(pid);
    let stats = Stats::merged(&per_replica);
    let server_cpu = cpu_seconds(pid) - server_cpu0;
    let own_cpu = cpu_seconds(std::process::id()) - own_cpu0;
    let (a, b) = (start.floor() as i64 + 1, end.floor() as i64 + 1);
    let timeline = Timeline::new(ds, false);
    let mut per_location = [0u64; 256];
    let mut total = 0u64;
    timeline.for_each_event(ds, a, b, 0, |pos, _| {
        per_location[usize::from(ds.events.location_id(pos))] += 1;
        total += 1;
    });
    let mut expected = 0u64;
    let mut delivered = 0u64;
    let mut by_replica = vec![(0u64, 0u64); addrs.len()];
    for (filter, received, replica) in &counters {
        let want = if filter.is_all() {
            total
        } else {
            per_location[usize::from(filter.location_ids()[0])]
        };
        let got = received.load(Ordering::Relaxed);
        expected += want;
        delivered += got;
        by_replica[*replica].0 += want;
        by_replica[*replica].1 += got;
    }
    let lost = expected as i64 - delivered as i64;
    println!(
        "{} subscribers ({}), {}x for {:.1} s: {} events delivered = {:.0} events/s; delay p50 {} ms, p99 {} ms (SSE {}/{}, WebSocket {}/{}); \
         lost {} of {} ({} lag notices, {} connection errors); connect {:.1} s; server RSS {:.0} MB empty, \
         {:.0} MB with idle subscribers ({:.1} KB each), {:.0} MB after the run; CPU over the run \
         (cores, of 2): server {:.2}, load generator {:.2}",
        sc.subscribers,
        if sc.filtered {
            "each filtered to one location"
        } else {
            "unfiltered"
        },
        sc.speed,
        wall,
        delivered,
        delivered as f64 / wall,
        stats.delays.quantile(0.5),
        stats.delays.quantile(0.99),
        stats.by_transport[0].quantile(0.5),
        stats.by_transport[0].quantile(0.99),
        stats.by_transport[1].quantile(0.5),
        stats.by_transport[1].quantile(0.99),
        lost,
        expected,
        stats.lagged.load(Ordering::Relaxed),
        stats.errors.load(Ordering::Relaxed),
        connect_s,
        rss_empty,
        rss_idle,
        (rss_idle - rss_empty) * 1024.0 / sc.subscribers as f64,
        rss_busy,
        server_cpu / (wall + 2.0),
        own_cpu / (wall + 2.0),
    );
    if addrs.len() > 1 {
        for (k, (&(want, got), stats)) in by_replica.iter().zip(&per_replica).enumerate() {
            println!(
                "  replica {k}: {got} events delivered = {:.0} events/s; delay p50 {} ms, p99 {} ms; lost {} of {want}",
                got as f64 / wall,
                stats.delays.quantile(0.5),
                stats.delays.quantile(0.99),
                want as i64 - got as i64
            );
        }
        println!("  (server RSS and CPU above are replica 0's)");
    }
    for (child, _) in &mut servers {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some((mut child, _)) = nats {
        let _ = child.kill();
        let _ = child.wait();
    }
    rt.shutdown_timeout(Duration::from_secs(1));
}

fn main() {
    raise_fd_limit();
    let dir = common::full_dataset();
    let ds = Dataset::open(&dir).expect("load");
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let scenarios = match arg("--subscribers") {
        Some(n) => vec![Scenario {
            subscribers: n.parse().expect("--subscribers N"),
            speed: arg("--speed").map_or(3600.0, |s| s.parse().expect("--speed X")),
            seconds: arg("--seconds").map_or(10, |s| s.parse().expect("--seconds S")),
            filtered: args.iter().any(|a| a == "--filtered"),
            replicas: arg("--replicas").map_or(1, |s| s.parse().expect("--replicas N")),
        }],
        None => vec![
            Scenario {
                subscribers: 10_000,
                speed: 3600.0,
                seconds: 10,
                filtered: true,
                replicas: 1,
            },
            Scenario {
                subscribers: 1_000,
                speed: 3600.0,
                seconds: 10,
                filtered: false,
                replicas: 1,
            },
            Scenario {
                subscribers: 100,
                speed: 86_400.0,
                seconds: 10,
                filtered: false,
                replicas: 1,
            },
        ],
    };
    for sc in &scenarios {
        run(&ds, &dir, sc);
    }
}
