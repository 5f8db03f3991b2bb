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
//! median round and the ratios; `--capacity --p99-ms 200 [--mix] [--no-peer]` finds each
//! server's largest number of subscribers within a delay bound (doubling, then bisection to
//! 10 %; `--mix` adds the unfiltered and deflate mixes, `--deflate` runs the deflate mix
//! alone); `--stalled 1000 [--send-timeout 8]`
//! measures clients that never read. After the clock stops, a run waits until the server's queues are empty, so
//! a late event is not counted lost; every loss is either announced by a lag notice or
//! fails the bench. All traffic stays on 127.0.0.1 and every run stops by itself.

#[path = "../common/mod.rs"]
mod common;
mod floor;
mod generator;
mod nchan;
mod procs;
mod sessions;

use std::net::SocketAddr;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use caspers_replay::dataset::Dataset;
use caspers_replay::timeline::Timeline;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use generator::{GeneratorProcess, ReplicaReport, subscribers_counted};
use procs::{cpu_seconds, raise_fd_limit, rss_mb};

const TOKEN: &str = "load-test-token";

/// Set by a run that lost events without telling its clients: the bench then fails.
static FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

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

fn start_server(
    dataset: &std::path::Path,
    max_clients: usize,
    nats: Option<&str>,
    core: Option<usize>,
    more: &[&str],
) -> (Child, SocketAddr) {
    let max_clients = max_clients.to_string();
    let mut args = vec!["--paused", "--control-token", TOKEN];
    args.extend_from_slice(more);
    // Every subscriber comes from 127.0.0.1: no cap per address.
    args.extend(["--max-clients", &max_clients, "--max-clients-per-ip", "0"]);
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

/// A runtime for the bench's own requests to the server at `addr`, whose clock it has
/// sought to `at` and paused.
fn paused_at(addr: SocketAddr, at: i64) -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(control(
        addr,
        &format!("{{\"seek\": {at}, \"paused\": true}}"),
    ));
    rt
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

pub struct Scenario {
    pub subscribers: usize,
    pub speed: f64,
    pub seconds: u64,
    pub filtered: bool,
    /// Servers sharing one clock through NATS; subscribers are spread over them.
    pub replicas: usize,
    /// The simulated instant the run starts at (Unix seconds).
    pub at: i64,
    /// Server on core 0, load generator on core 1.
    pub pin: bool,
    /// Extra clients that subscribe to everything and never read.
    pub never_read: usize,
    /// WebSocket clients offer permessage-deflate.
    pub deflate: bool,
}

fn run(ds: &Dataset, dir: &std::path::Path, sc: &Scenario) -> Summary {
    let nats = (sc.replicas > 1).then(start_nats);
    let url = nats.as_ref().map(|n| n.1.clone());
    let mut servers: Vec<(Child, SocketAddr)> = (0..sc.replicas.max(1))
        .map(|_| {
            start_server(
                dir,
                sc.subscribers + 100,
                url.as_deref(),
                sc.pin.then_some(0),
                &[],
            )
        })
        .collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.1).collect();
    let addr = addrs[0];
    let pids: Vec<u32> = servers.iter().map(|s| s.0.id()).collect();
    let rt = paused_at(addr, sc.at);
    std::thread::sleep(Duration::from_millis(300));
    let rss_empty = rss_mb(pids[0]);

    // The generator: this bench binary again, in a process of its own.
    let joined: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let joined = joined.join(",");
    let subscribers = sc.subscribers.to_string();
    let mut args = vec![joined.as_str(), "--subscribers", &subscribers];
    if sc.filtered {
        args.push("--filtered");
    }
    if sc.deflate {
        args.push("--deflate");
    }
    let t_connect = Instant::now();
    let mut generator = GeneratorProcess::start(&args, sc.pin.then_some(1));
    let gen_pid = generator.id();
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
        // (Clients that never read keep their queues: see below.)
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
    if sc.never_read > 0 {
        // Their queues never empty: wait instead until what the readers received stands
        // still.
        generator.wait_until_still();
    }
    let measured = t_measure.elapsed().as_secs_f64();
    let server_cpu = pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>() - server_cpu0;
    let gen_cpu = cpu_seconds(gen_pid) - gen_cpu0;
    let rss_busy = rss_mb(pids[0]);
    sampling.store(false, Ordering::Relaxed);
    let rss_peak = peak.join().unwrap_or(f64::NAN);
    let reports = generator.stop();

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
        cpu_seconds: server_cpu,
        delivered,
        rss_mb: rss_peak,
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

/// `--stalled N`: N clients that ask for every event and never read, the clock at 86400x
/// for a few seconds, then paused. Measures the server's CPU while they sit there with full
/// sockets (a writer on readiness spends nothing on them) and how long until the send
/// timeout has closed them all.
fn run_stalled(dir: &std::path::Path, n: usize, send_timeout: f64, at: i64) {
    let timeout = send_timeout.to_string();
    let (mut server, addr) = common::start_server(
        dir,
        &[
            "--paused",
            "--control-token",
            TOKEN,
            "--max-clients",
            &(n + 100).to_string(),
            "--max-clients-per-ip",
            "0",
            "--send-timeout",
            &timeout,
        ],
    );
    let rt = paused_at(addr, at);
    let (addr_text, never_read) = (addr.to_string(), n.to_string());
    let generator = GeneratorProcess::start(
        &[
            &addr_text,
            "--subscribers",
            "0",
            "--never-read",
            &never_read,
        ],
        None,
    );
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
    generator.stop();
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
        generator::run(
            &addrs,
            n,
            args.iter().any(|a| a == "--filtered"),
            never_read,
            args.iter().any(|a| a == "--deflate"),
            generator::Target::parse(&arg("--target").unwrap_or_default()),
            &arg("--session-ids")
                .map_or_else(Vec::new, |ids| ids.split(',').map(str::to_string).collect()),
        );
        return;
    }
    if args.iter().any(|a| a == "--floor-server") {
        let per_tick = arg("--events-per-tick").map_or(vec![14], |v| {
            v.split(',').map(|n| n.parse().unwrap()).collect()
        });
        let deflated = arg("--deflated-events").map(|path| {
            let text = std::fs::read_to_string(&path).expect("--deflated-events FILE");
            text.lines().map(str::to_string).collect()
        });
        floor::serve(per_tick, Duration::from_millis(100), deflated);
        return;
    }
    raise_fd_limit();
    let dir = common::full_dataset();
    let ds = Dataset::open(&dir).expect("load");
    let at = arg("--at").map_or(FRIDAY_PEAK, |t| {
        caspers_replay::time::parse_rfc3339(&t).expect("--at \"2024-02-02 17:30:00\"")
    });
    if let Some(n) = arg("--paused-sessions") {
        sessions::paused(&dir, n.parse().expect("--paused-sessions N"));
        finish();
        return;
    }
    if let Some(n) = arg("--sessions") {
        let per = arg("--subscribers").map_or(5, |v| v.parse().expect("--subscribers N"));
        let n: usize = n.parse().expect("--sessions N");
        let sc = Scenario {
            subscribers: n * per,
            speed: arg("--speed").map_or(60.0, |s| s.parse().expect("--speed X")),
            seconds: arg("--seconds").map_or(10, |s| s.parse().expect("--seconds S")),
            filtered: true,
            replicas: 1,
            at,
            pin: args.iter().any(|a| a == "--pin"),
            never_read: 0,
            deflate: false,
        };
        let rounds = arg("--rounds").map_or(3, |r| r.parse().expect("--rounds N"));
        sessions::compare(&ds, &dir, &sc, n, rounds);
        finish();
        return;
    }
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
    if args.iter().any(|a| a == "--capacity") {
        let bound = arg("--p99-ms").map_or(200, |b| b.parse().expect("--p99-ms MS"));
        let peer = !args.iter().any(|a| a == "--no-peer");
        let base = |filtered: bool, deflate: bool| Scenario {
            subscribers: 0,
            speed: arg("--speed").map_or(3600.0, |s| s.parse().expect("--speed X")),
            seconds: arg("--seconds").map_or(10, |s| s.parse().expect("--seconds S")),
            filtered,
            replicas: 1,
            at,
            pin,
            never_read: 0,
            deflate,
        };
        // `--deflate` alone: the deflate mix only.
        let deflate = args.iter().any(|a| a == "--deflate");
        capacity(
            &ds,
            &dir,
            &base(true, deflate),
            bound,
            rounds,
            peer && !deflate,
        );
        if args.iter().any(|a| a == "--mix") {
            capacity(&ds, &dir, &base(false, false), bound, rounds, peer);
            // Nchan's channels carry the JSON as it is: no deflate mix for it.
            capacity(&ds, &dir, &base(true, true), bound, rounds, false);
        }
        finish();
        return;
    }
    for sc in &scenarios {
        if args.iter().any(|a| a == "--compare") {
            compare(
                &ds,
                &dir,
                sc,
                rounds,
                !args.iter().any(|a| a == "--no-peer"),
            );
        } else if arg("--peer").as_deref() == Some("nchan") {
            nchan::run(&ds, sc);
        } else if args.iter().any(|a| a == "--floor") {
            floor::run(&ds, sc);
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

/// `--compare`: ours, the floor and (with `peer`) nginx + Nchan alternately, `rounds`
/// times each, on the same scenario; each side's median round (by p99) and the ratios.
fn compare(ds: &Dataset, dir: &std::path::Path, sc: &Scenario, rounds: usize, peer: bool) {
    if peer {
        nchan::check_installed();
    }
    let mut sides: Vec<(&str, Vec<Summary>)> =
        vec![("ours", Vec::new()), ("the floor", Vec::new())];
    if peer {
        sides.push(("nginx + Nchan", Vec::new()));
    }
    for round in 1..=rounds {
        for (name, runs) in &mut sides {
            println!("-- round {round} of {rounds}: {name}");
            runs.push(match *name {
                "ours" => run(ds, dir, sc),
                "the floor" => floor::run(ds, sc),
                _ => nchan::run(ds, sc),
            });
        }
    }
    let medians: Vec<(&str, Summary)> = sides
        .into_iter()
        .map(|(name, mut v)| {
            v.sort_by_key(|s| s.p99);
            (name, v.swap_remove(v.len() / 2))
        })
        .collect();
    println!(
        "\n{} subscribers{}, {}x{}, median of {rounds} rounds (by p99):",
        sc.subscribers,
        if sc.filtered {
            ", one location each"
        } else {
            ""
        },
        sc.speed,
        if sc.pin {
            ", server on core 0, generator on core 1"
        } else {
            ""
        }
    );
    println!(
        "| server | p50 ms | p99 ms | delivered events/s | lost (unannounced) | server CPU (cores) | CPU µs per delivered event |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, s) in &medians {
        println!(
            "| {name} | {} | {} | {:.0} | {} ({}) | {:.2} | {:.2} |",
            s.p50,
            s.p99,
            s.events_per_s,
            s.lost,
            s.unannounced,
            s.cpu,
            s.cpu_per_event_us()
        );
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let o = &medians[0].1;
    for (name, s) in &medians[1..] {
        println!(
            "ours / {name}: p50 {:.2}, p99 {:.2}, CPU {:.2}, CPU per delivered event {:.2}",
            ratio(o.p50 as f64, s.p50 as f64),
            ratio(o.p99 as f64, s.p99 as f64),
            ratio(o.cpu, s.cpu),
            ratio(o.cpu_per_event_us(), s.cpu_per_event_us())
        );
    }
}

/// `--capacity --p99-ms B`: for ours, the floor and (with `peer`) nginx + Nchan, one after
/// another (each alone on the machine), the most subscribers of `base`'s mix whose median
/// p99 over `rounds` runs stays within `bound` ms with nothing lost unannounced: doubling
/// from 1,000, then bisection to within 10 %. Prints each one's capacity and figures there,
/// then the ratios.
fn capacity(
    ds: &Dataset,
    dir: &std::path::Path,
    base: &Scenario,
    bound: u64,
    rounds: usize,
    peer: bool,
) {
    if peer {
        nchan::check_installed();
    }
    let mut servers = vec!["ours", "the floor"];
    if peer {
        servers.push("nginx + Nchan");
    }
    let mix = match (base.filtered, base.deflate) {
        (true, false) => "one location each",
        (true, true) => "one location each, WebSocket clients with permessage-deflate",
        (false, _) => "every event",
    };
    let mut found: Vec<(&str, usize, Summary)> = Vec::new();
    for name in servers {
        // The median run (by p99) at n subscribers, and whether it is within the bound.
        let at = |n: usize| -> (bool, Summary) {
            let sc = Scenario {
                subscribers: n,
                ..*base
            };
            let mut runs: Vec<Summary> = (0..rounds)
                .map(|round| {
                    println!(
                        "-- {name}: {n} subscribers ({mix}), round {} of {rounds}",
                        round + 1
                    );
                    match name {
                        "ours" => run(ds, dir, &sc),
                        "the floor" => floor::run(ds, &sc),
                        _ => nchan::run(ds, &sc),
                    }
                })
                .collect();
            let clean = runs.iter().all(|r| r.unannounced == 0);
            runs.sort_by_key(|r| r.p99);
            let median = runs.swap_remove(runs.len() / 2);
            let ok = clean && median.p99 <= bound;
            println!(
                "-- {name} at {n}: median p99 {} ms{} -> {}",
                median.p99,
                if clean {
                    ""
                } else {
                    ", events lost unannounced"
                },
                if ok { "within" } else { "over" }
            );
            (ok, median)
        };
        let (mut good, mut bad): (Option<(usize, Summary)>, Option<usize>) = (None, None);
        let mut n = 1000;
        while bad.is_none() && n <= 64_000 {
            match at(n) {
                (true, s) => {
                    good = Some((n, s));
                    n *= 2;
                }
                (false, _) => bad = Some(n),
            }
        }
        while good.is_none() && n > 100 {
            n /= 2;
            match at(n) {
                (true, s) => good = Some((n, s)),
                (false, _) => bad = Some(n),
            }
        }
        while let (Some((lo, _)), Some(hi)) = (&good, bad) {
            if hi - lo <= lo / 10 {
                break;
            }
            let mid = (lo + hi) / 2;
            match at(mid) {
                (true, s) => good = Some((mid, s)),
                (false, _) => bad = Some(mid),
            }
        }
        match good {
            Some((n, s)) => found.push((name, n, s)),
            None => println!("-- {name}: over {bound} ms even at {n} subscribers"),
        }
    }
    println!(
        "\ncapacity at p99 <= {bound} ms ({mix}, {}x from the dinner peak, median of {rounds} rounds, within 10 %):",
        base.speed
    );
    println!(
        "| server | subscribers | p50 ms | p99 ms | server CPU (cores) | delivered events/s per server core | RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, n, s) in &found {
        println!(
            "| {name} | {n} | {} | {} | {:.2} | {:.0} | {:.0} |",
            s.p50,
            s.p99,
            s.cpu,
            s.events_per_s / s.cpu.max(1e-9),
            s.rss_mb
        );
    }
    if let Some((_, ours, o)) = found.iter().find(|f| f.0 == "ours") {
        for (name, n, s) in found.iter().filter(|f| f.0 != "ours") {
            println!(
                "ours / {name}: capacity {:.2}, CPU per delivered event at capacity {:.2}",
                *ours as f64 / *n as f64,
                o.cpu_per_event_us() / s.cpu_per_event_us()
            );
        }
    }
}

/// One run's figures, for `--compare`.
pub struct Summary {
    pub p50: u64,
    pub p99: u64,
    pub events_per_s: f64,
    pub lost: i64,
    pub unannounced: i64,
    /// Server CPU, cores.
    pub cpu: f64,
    /// Server CPU over the whole measurement, seconds, and the events delivered in it.
    pub cpu_seconds: f64,
    pub delivered: u64,
    /// The server's resident memory at the end (at most, for ours), MB.
    pub rss_mb: f64,
}

impl Summary {
    /// Server CPU time per delivered event, µs.
    fn cpu_per_event_us(&self) -> f64 {
        self.cpu_seconds / self.delivered.max(1) as f64 * 1e6
    }
}
