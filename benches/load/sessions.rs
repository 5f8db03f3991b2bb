//! Replay sessions under load: `--sessions N --subscribers K [--speed 60] [--rounds 3]` runs
//! N sessions, each at its own instant of the busiest hour, K one-location subscribers on
//! each, against the same N × K subscribers on the shared clock in the same run
//! (alternately); `--paused-sessions N` measures what N paused sessions without
//! subscribers cost (CPU, memory each) and how long creating and deleting one takes with
//! them alive.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use caspers_replay::dataset::Dataset;
use caspers_replay::timeline::Timeline;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::generator::GeneratorProcess;
use crate::procs::{cpu_seconds, rss_mb};
use crate::{FAILED, Scenario, Summary, start_server};

/// One HTTP request with `Connection: close`: its status and JSON body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = out.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(json).unwrap_or_default())
}

/// A session made for the bench: its id and owner's token.
struct Made {
    id: String,
    token: String,
}

async fn create(addr: SocketAddr, body: &str) -> Made {
    let (status, json) = request(addr, "POST", "/v1/sessions", None, body).await;
    assert_eq!(status, 201, "creating a session: {json}");
    Made {
        id: json["id"].as_str().unwrap().to_string(),
        token: json["token"].as_str().unwrap().to_string(),
    }
}

async fn change(addr: SocketAddr, s: &Made, body: &str) -> serde_json::Value {
    let path = format!("/v1/sessions/{}/clock", s.id);
    let (status, json) = request(addr, "POST", &path, Some(&s.token), body).await;
    assert_eq!(status, 200, "changing a session: {json}");
    json
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `n` sessions, each at its own instant of the hour from `sc.at` and `sc.subscribers / n`
/// one-location subscribers on each, running at `sc.speed` for `sc.seconds`.
fn run(ds: &Dataset, dir: &Path, sc: &Scenario, n: usize) -> Summary {
    let max_sessions = (n + 10).to_string();
    let (mut server, addr) = start_server(
        dir,
        sc.subscribers + 100,
        None,
        sc.pin.then_some(0),
        &["--max-sessions", &max_sessions],
    );
    let pid = server.id();
    let rt = runtime();
    let starts: Vec<i64> = (0..n as i64).map(|i| sc.at + i * 3600 / n as i64).collect();
    let made: Vec<Made> = rt.block_on(async {
        let mut made = Vec::with_capacity(n);
        for &at in &starts {
            let body = format!(
                "{{\"start\": \"{}\", \"paused\": true, \"speed\": {}}}",
                caspers_replay::time::format_rfc3339(at),
                sc.speed
            );
            made.push(create(addr, &body).await);
        }
        made
    });
    let ids: Vec<&str> = made.iter().map(|m| m.id.as_str()).collect();
    let ids = ids.join(",");
    let subscribers = sc.subscribers.to_string();
    let addr_text = addr.to_string();
    let args = [
        addr_text.as_str(),
        "--subscribers",
        &subscribers,
        "--filtered",
        "--session-ids",
        &ids,
    ];
    let mut generator = GeneratorProcess::start(&args, sc.pin.then_some(1));
    std::thread::sleep(Duration::from_millis(500));
    let cpu0 = cpu_seconds(pid);
    let t = Instant::now();
    // Every session changed at once (a hundred requests at a time), as a thousand users
    // would.
    let all = |body: &'static str| {
        let made = &made;
        async move {
            let mut times = Vec::with_capacity(n);
            for batch in made.chunks(100) {
                let answers =
                    futures_util::future::join_all(batch.iter().map(|s| change(addr, s, body)))
                        .await;
                times.extend(answers.iter().map(|a| a["sim_time"].as_f64().unwrap()));
            }
            times
        }
    };
    let (begun, ended) = rt.block_on(async {
        let begun = all(r#"{"paused": false}"#).await;
        tokio::time::sleep(Duration::from_secs(sc.seconds)).await;
        (begun, all(r#"{"paused": true}"#).await)
    });
    let wall = t.elapsed().as_secs_f64();
    generator.wait_until_still();
    let measured = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let rss = rss_mb(pid);
    let reports = generator.stop();
    let _ = server.kill();
    let _ = server.wait();

    // What each session's subscribers should have: its own window, per location.
    let timeline = Timeline::new(ds, false);
    let window = |k: usize, loc: u8| {
        let (a, b) = (begun[k].floor() as i64 + 1, ended[k].floor() as i64 + 1);
        let mut count = 0u64;
        timeline.for_each_event(ds, a, b, 0, |pos, _| {
            count += u64::from(ds.events.location_id(pos) == loc);
        });
        count
    };
    let (mut expected, mut delivered) = (0u64, 0u64);
    for r in &reports {
        for &(k, loc, subs, got) in &r.per_session {
            expected += window(k as usize, loc) * subs;
            delivered += got;
        }
    }
    let r = &reports[0];
    let lost = expected as i64 - delivered as i64;
    let announced = r.missed as i64;
    println!(
        "{n} sessions × {} subscribers (one location each), {}x, each from its own instant of the hour from {}, {wall:.1} s: delivered {delivered} = {:.0} events/s; delay p50 {} ms, p99 {} ms; lost {lost} of {expected}: {announced} announced, {} unannounced ({} connection errors); server CPU {:.2} cores, RSS {rss:.0} MB",
        sc.subscribers / n,
        sc.speed,
        caspers_replay::time::format_ts(sc.at),
        delivered as f64 / wall,
        r.p50,
        r.p99,
        lost - announced,
        r.errors,
        cpu / measured,
    );
    if lost != announced {
        println!(
            "  FAILED: {} events lost without a lag notice",
            lost - announced
        );
        FAILED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    Summary {
        p50: r.p50,
        p99: r.p99,
        events_per_s: delivered as f64 / wall,
        lost,
        unannounced: lost - announced,
        cpu: cpu / measured,
        cpu_seconds: cpu,
        delivered,
        rss_mb: rss,
    }
}

/// `--sessions N`: N sessions against the same subscribers on one clock, alternately,
/// `rounds` times; each side's median round (by p99) and the ratios.
pub fn compare(ds: &Dataset, dir: &Path, sc: &Scenario, n: usize, rounds: usize) {
    let (mut one, mut many) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        println!("-- round {round} of {rounds}: one clock");
        one.push(crate::run(ds, dir, sc));
        println!("-- round {round} of {rounds}: {n} sessions");
        many.push(run(ds, dir, sc, n));
    }
    let median = |mut v: Vec<Summary>| {
        v.sort_by_key(|s| s.p99);
        v.swap_remove(v.len() / 2)
    };
    let (one, many) = (median(one), median(many));
    println!(
        "\n{} subscribers at {}x, one location each, median of {rounds} rounds (by p99):",
        sc.subscribers, sc.speed
    );
    println!(
        "| clocks | p50 ms | p99 ms | delivered events/s | lost (unannounced) | server CPU (cores) | RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, s) in [("one (the shared clock)", &one), ("one per session", &many)] {
        println!(
            "| {name} | {} | {} | {:.0} | {} ({}) | {:.2} | {:.0} |",
            s.p50, s.p99, s.events_per_s, s.lost, s.unannounced, s.cpu, s.rss_mb
        );
    }
    println!(
        "{n} sessions / one clock: p99 {:.2} (goal ≤ 2), server CPU {:.2} (goal ≤ 3)",
        many.p99 as f64 / one.p99.max(1) as f64,
        many.cpu / one.cpu.max(1e-9)
    );
}

/// `--paused-sessions N`: the server's CPU and memory with N paused sessions and nobody
/// watching, and creating and deleting a session with them alive.
pub fn paused(dir: &Path, n: usize) {
    let max_sessions = (n + 10).to_string();
    let (mut server, addr) = start_server(dir, 100, None, None, &["--max-sessions", &max_sessions]);
    let pid = server.id();
    let rt = runtime();
    std::thread::sleep(Duration::from_millis(500));
    let rss_empty = rss_mb(pid);
    let t = Instant::now();
    let made: Vec<Made> = rt.block_on(async {
        let mut made = Vec::with_capacity(n);
        for i in 0..n {
            let body = format!("{{\"start\": {}, \"paused\": true}}", i % 80);
            made.push(create(addr, &body).await);
        }
        made
    });
    let create_all = t.elapsed().as_secs_f64();
    // Let the sessions file settle before measuring.
    std::thread::sleep(Duration::from_secs(2));
    let rss_full = rss_mb(pid);
    let cpu0 = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(10));
    let idle_cpu = (cpu_seconds(pid) - cpu0) / 10.0;
    // Creating and deleting one, 200 times, with the N alive.
    let mut times: Vec<(f64, f64)> = rt.block_on(async {
        let mut times = Vec::with_capacity(200);
        for _ in 0..200 {
            let t = Instant::now();
            let s = create(addr, r#"{"paused": true}"#).await;
            let created = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            let path = format!("/v1/sessions/{}", s.id);
            let (status, _) = request(addr, "DELETE", &path, Some(&s.token), "").await;
            assert_eq!(status, 204);
            times.push((created, t.elapsed().as_secs_f64() * 1e3));
        }
        times
    });
    let quantile = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    let mut created: Vec<f64> = times.iter().map(|t| t.0).collect();
    let mut deleted: Vec<f64> = times.drain(..).map(|t| t.1).collect();
    println!(
        "{n} paused sessions, nobody watching: made in {create_all:.1} s; server CPU {idle_cpu:.4} cores (goal ≤ 0.01); RSS {rss_empty:.0} MB empty, {rss_full:.0} MB with them: {:.1} KB per session (goal ≤ 16)",
        (rss_full - rss_empty) * 1024.0 / n as f64,
    );
    println!(
        "with them alive: creating a session p50 {:.2} ms, p99 {:.2} ms; deleting one p50 {:.2} ms, p99 {:.2} ms (goal p99 ≤ 5 ms; over a new connection each)",
        quantile(&mut created, 0.5),
        quantile(&mut created, 0.99),
        quantile(&mut deleted, 0.5),
        quantile(&mut deleted, 0.99),
    );
    drop(made);
    let _ = server.kill();
    let _ = server.wait();
}
