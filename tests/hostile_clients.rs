//! Clients that try to take the server down, each against a real server over real
//! sockets on the loopback range: the attacker on 127.0.0.1, an honest SSE client on
//! 127.0.0.2 that must get every event exactly, `/healthz` asked from 127.0.0.3 every
//! 50 ms. Each attack may cost only the offending connection: the server's memory stays
//! bounded, `/healthz` answers within 200 ms, and the attacker is answered as the RFC or
//! the limit says. The tests run one at a time (they measure the server's memory and
//! time).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use caspers_replay::dataset::Dataset;
use caspers_replay::events::Filter;
use common::live::{
    LiveServer, SseClient, TOKEN, connect_from, cpu_seconds, pairs, request, rss_bytes,
    watch_health,
};

const DAY1: i64 = 1_704_067_200 + 86_400;

/// A 3-day generated dataset, shared by the tests of this binary.
fn dataset() -> &'static (PathBuf, Dataset) {
    static DS: OnceLock<(PathBuf, Dataset)> = OnceLock::new();
    DS.get_or_init(|| common::generated_dataset("hostile_dataset", 3, 5))
}

fn expected(a: i64, b: i64, filter: Filter) -> Vec<(String, String)> {
    common::live::expected(&dataset().1, a, b, filter)
}

/// One test at a time: each measures the server's memory, CPU and answer times.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `serve` on this binary's dataset with its own state file, from day 1, on a free port
/// of 127.0.0.1, added to `cmd` (the binary itself, or a command that runs it).
fn serve_args(cmd: &mut Command, state: &std::path::Path) {
    cmd.arg("serve")
        .arg("--dataset")
        .arg(&dataset().0)
        .arg("--state")
        .arg(state)
        .args(["--fresh", "--start-day", "1", "--bind", "127.0.0.1:0"]);
}

fn paused_server(extra: &[&str]) -> LiveServer {
    let mut args = vec!["--paused", "--start-day", "1"];
    args.extend_from_slice(extra);
    LiveServer::start(&dataset().0, &args)
}

fn seek(server: &LiveServer, at: i64) {
    server.control(&format!("{{\"seek\": {at}, \"paused\": true}}"));
}

fn sim_end(state: &serde_json::Value) -> i64 {
    state["sim_time"].as_f64().unwrap().floor() as i64 + 1
}

fn metric(server: &LiveServer, name: &str) -> f64 {
    let (_, text) = server.get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .parse()
        .unwrap()
}

/// A small receive buffer, so that a client that stops reading blocks the server's
/// writes soon.
fn small_receive_buffer(s: &TcpStream) {
    let small: libc::c_int = 4096;
    // SAFETY: setsockopt on the test's own socket with a c_int option value.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(s),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// A client frame, masked: `first` is FIN, RSV and opcode.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![first, 0x80 | payload.len() as u8];
    f.extend(mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// A raw WebSocket (no extension) from 127.0.0.1, past its handshake.
fn raw_websocket(addr: SocketAddr, query: &str, small_buffer: bool) -> TcpStream {
    let mut s = connect_from("127.0.0.1", addr);
    if small_buffer {
        small_receive_buffer(&s);
    }
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "GET /v1/ws{query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// Reads server frames (opcode, payload) until the close frame, the end of the
/// connection, or `timeout`; returns them and the close code, if one came.
fn read_frames(s: &mut TcpStream, timeout: Duration) -> (Vec<(u8, Vec<u8>)>, Option<u16>) {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Whole frames first.
        while buf.len() >= 2 {
            let (len, header) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                127 if buf.len() >= 10 => (
                    u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if buf.len() < header + len {
                break;
            }
            let opcode = buf[0] & 0x0f;
            let payload = buf[header..header + len].to_vec();
            buf.drain(..header + len);
            if opcode == 0x8 {
                let code =
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                return (frames, code);
            }
            frames.push((opcode, payload));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (frames, None);
        }
        s.set_read_timeout(Some(left.min(Duration::from_millis(200))))
            .unwrap();
        match s.read(&mut chunk) {
            Ok(0) => return (frames, None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (frames, None),
        }
    }
}

/// What every attack is checked for, around `attack` (which runs with the clock
/// running at 3600x from day 1, 11:00): the server's memory grows by less than
/// `max_growth` bytes, `/healthz` always answers within 200 ms, and an honest SSE
/// client on another address gets every event exactly.
fn under_attack(server: &LiveServer, max_growth: u64, attack: impl FnOnce()) {
    let start = DAY1 + 11 * 3600;
    seek(server, start);
    let mut honest = SseClient::connect_from("127.0.0.2", server.addr, "/v1/events");
    assert_eq!(honest.status, 200);
    let rss_before = rss_bytes(server.child.id());
    let stop = Arc::new(AtomicBool::new(false));
    let health = watch_health(server.addr, "127.0.0.3", Arc::clone(&stop));
    server.control(r#"{"speed": 3600, "paused": false}"#);
    attack();
    let end = sim_end(&server.control(r#"{"paused": true}"#));
    let growth = rss_bytes(server.child.id()).saturating_sub(rss_before);
    stop.store(true, Ordering::Relaxed);
    let (slowest, failed) = health.join().unwrap();
    println!(
        "measured: server RSS +{:.1} MB, slowest /healthz {} ms",
        growth as f64 / 1048576.0,
        slowest.as_millis()
    );
    let want = expected(start, end, Filter::default());
    let got = pairs(&honest.events(want.len(), Duration::from_secs(20)));
    assert_eq!(got.len(), want.len(), "the honest client got every event");
    assert!(
        got == want,
        "the honest client got every event once, in order"
    );
    assert_eq!(failed, 0, "/healthz always answered");
    assert!(
        slowest < Duration::from_millis(200),
        "/healthz answered within 200 ms throughout (slowest {slowest:?})"
    );
    assert!(
        growth < max_growth,
        "the server's memory grew by {} MB (at most {} MB)",
        growth >> 20,
        max_growth >> 20
    );
}

/// A WebSocket that never reads and floods pings: only the latest pong waits, the server
/// stops reading it (back-pressure), and its memory stays flat.
#[test]
fn a_ping_flood_from_a_client_that_never_reads_costs_only_its_connection() {
    let _serial = serial();
    let server = paused_server(&[]);
    let mut pings_sent = 0u64;
    let mut attacker = None;
    under_attack(&server, 48 << 20, || {
        let mut s = raw_websocket(server.addr, "?location_id=1", true);
        s.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let started = Instant::now();
        let mut unsent: Vec<u8> = Vec::new();
        // Up to 4 s or 10 M pings (60 MB), whichever ends first.
        while started.elapsed() < Duration::from_secs(4) && pings_sent < 10_000_000 {
            if unsent.is_empty() {
                for _ in 0..1000 {
                    unsent.extend(frame(0x89, &pings_sent.to_be_bytes()));
                    pings_sent += 1;
                }
            }
            match s.write(&unsent) {
                Ok(n) => {
                    unsent.drain(..n);
                }
                // The server stopped reading: the kernel's buffers are full.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("the server dropped the connection: {e}"),
            }
        }
        attacker = Some(s);
    });
    // Now read what the server answered: a pong for some of the pings, the latest last,
    // never one per ping.
    let mut s = attacker.unwrap();
    let (frames, _) = read_frames(&mut s, Duration::from_secs(3));
    let pongs: Vec<u64> = frames
        .iter()
        .filter(|(op, _)| *op == 0xA)
        .map(|(_, p)| u64::from_be_bytes(p[..8].try_into().unwrap()))
        .collect();
    // More than the server reads in 4 s (a burst of 10,000 frames, then 1,000 a second):
    // the rest waited in the kernel's buffers.
    assert!(
        pings_sent >= 20_000,
        "the flood was a flood ({pings_sent} pings)"
    );
    assert!(!pongs.is_empty(), "pings are answered");
    assert!(
        (pongs.len() as u64) < pings_sent / 100,
        "only the latest pong waits ({} pongs for {pings_sent} pings)",
        pongs.len()
    );
    assert!(
        pongs.windows(2).all(|w| w[0] < w[1]),
        "pongs answer newer pings"
    );
}

/// A client that reads a trickle (a few bytes now and then) is closed after the send
/// timeout all the same: it must take what was queued for it, not any byte.
#[test]
fn a_client_that_reads_a_trickle_is_closed_after_the_send_timeout() {
    let _serial = serial();
    let server = paused_server(&["--send-timeout", "2"]);
    seek(&server, DAY1);
    let s = connect_from("127.0.0.1", server.addr);
    small_receive_buffer(&s);
    let mut trickle = SseClient::over(s, server.addr, "/v1/events", None);
    assert_eq!(trickle.status, 200);
    server.control(r#"{"speed": 43200, "paused": false}"#);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut byte = [0u8; 16];
    trickle
        .stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut timed_out = false;
    let mut polls = 0;
    while Instant::now() < deadline && !timed_out {
        // Sixteen bytes every 100 ms: the socket takes a byte now and then, never what
        // is queued.
        let _ = trickle.stream.read(&mut byte);
        std::thread::sleep(Duration::from_millis(100));
        polls += 1;
        timed_out = polls % 5 == 0 && metric(&server, "caspers_clients_timed_out_total") >= 1.0;
    }
    server.control(r#"{"paused": true}"#);
    assert!(timed_out, "the trickling client was timed out");
    // Its connection was reset, and the unread bytes dropped with it (not kept in the
    // kernel until the client reads them): the next write fails.
    std::thread::sleep(Duration::from_millis(500));
    let write = (&trickle.stream).write(b"x");
    assert!(write.is_err(), "the connection was reset");
}

/// A resumed WebSocket that floods filter changes: the first ten are served, the next
/// get an error each, and persistent abuse is closed (1008); the server's CPU is bounded.
#[test]
fn a_flood_of_filter_changes_is_limited_and_then_closed() {
    let _serial = serial();
    let server = paused_server(&[]);
    // A history of two days, resumed from its first event.
    seek(&server, DAY1 - 86_400);
    server.control(r#"{"speed": 86400, "paused": false}"#);
    std::thread::sleep(Duration::from_millis(1500));
    let end = sim_end(&server.control(r#"{"paused": true}"#));
    let history = expected(DAY1 - 86_400, end, Filter::default());
    assert!(history.len() > 5_000, "a long history ({})", history.len());
    let first = history[0].0.clone();
    let cpu_before = cpu_seconds(server.child.id());
    under_attack(&server, 64 << 20, || {
        let mut s = raw_websocket(server.addr, &format!("?from={first}"), false);
        let mut flood = Vec::new();
        for i in 0..200 {
            let location = 1 + i % 4;
            let text = format!(r#"{{"type":"filter","location_id":[{location}],"snapshot":true}}"#);
            flood.extend(frame(0x81, text.as_bytes()));
        }
        s.write_all(&flood).unwrap();
        let (frames, close) = read_frames(&mut s, Duration::from_secs(20));
        let texts: Vec<serde_json::Value> = frames
            .iter()
            .filter(|(op, _)| *op == 0x1)
            .map(|(_, p)| serde_json::from_slice(p).unwrap())
            .collect();
        let acks = texts.iter().filter(|t| t["type"] == "filter").count();
        let refusals = texts
            .iter()
            .filter(|t| {
                t["type"] == "error"
                    && t["message"]
                        .as_str()
                        .unwrap()
                        .contains("too many filter changes")
            })
            .count();
        assert!(
            (10..=13).contains(&acks),
            "a burst of ten is served (and a few more as the bucket refills): {acks}"
        );
        assert!(
            refusals >= 10,
            "later ones are refused with an error ({refusals})"
        );
        assert_eq!(close, Some(1008), "persistent abuse is closed with 1008");
    });
    let cpu = cpu_seconds(server.child.id()) - cpu_before;
    println!("measured: server CPU {cpu:.2} s for the flood and the honest client's window");
    assert!(cpu < 5.0, "the server spent {cpu:.1} s of CPU");
}

/// A dataset's whole history emitted (its three days at 86400x), paused; returns the
/// positions and events emitted.
fn whole_history(server: &LiveServer) -> Vec<(String, String)> {
    seek(server, DAY1 - 86_400);
    server.control(r#"{"speed": 86400, "paused": false}"#);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, clock) = server.get("/v1/clock");
        let clock: serde_json::Value = serde_json::from_str(&clock).unwrap();
        if clock["ended"] == true {
            let end = sim_end(&clock);
            return expected(DAY1 - 86_400, end, Filter::default());
        }
        assert!(Instant::now() < deadline, "the clock never reached the end");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Ten clients that resume from the oldest position and never read, the clock stopped:
/// all of their catch-ups together keep to the budget (the clients furthest behind are
/// skipped ahead).
#[test]
fn catch_ups_while_paused_keep_to_the_budget() {
    let _serial = serial();
    let server = paused_server(&["--queue-budget-mib", "8", "--queue-kib", "65536"]);
    let history = whole_history(&server);
    let first = history[0].0.clone();
    let rss_before = rss_bytes(server.child.id());
    let mut idle = Vec::new();
    for _ in 0..10 {
        let s = connect_from("127.0.0.1", server.addr);
        small_receive_buffer(&s);
        let c = SseClient::over(s, server.addr, "/v1/events?snapshot=1", Some(&first));
        assert_eq!(c.status, 200);
        idle.push(c);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let queued = metric(&server, "caspers_queued_bytes");
    assert!(
        queued <= 8.0 * 1024.0 * 1024.0,
        "queued {:.1} MB, over the 8 MB budget",
        queued / 1048576.0
    );
    assert!(
        metric(&server, "caspers_clients_shed_total") >= 1.0,
        "clients were shed"
    );
    let growth = rss_bytes(server.child.id()).saturating_sub(rss_before);
    assert!(growth < 48 << 20, "RSS grew by {} MB", growth >> 20);
    drop(idle);
}

/// A client that resumes from further back than its queue holds gets the latest events
/// that fit, after a `lagged` notice that counts the others.
#[test]
fn a_catch_up_holds_the_latest_events_that_fit_and_counts_the_rest() {
    let _serial = serial();
    let server = paused_server(&["--queue-kib", "1024"]);
    let history = whole_history(&server);
    let first = history[0].0.clone();
    let mut reader = SseClient::connect(server.addr, "/v1/events", Some(&first));
    let mut missed = 0;
    let mut got = Vec::new();
    while let Some(m) = reader.next() {
        match m.event.as_deref() {
            Some("lagged") => {
                let v: serde_json::Value = serde_json::from_str(&m.data).unwrap();
                missed += v["missed"].as_u64().unwrap() as usize;
            }
            _ if m.id.is_some() => {
                let last = m.id.as_deref() == Some(history.last().unwrap().0.as_str());
                got.push((m.id.unwrap(), m.data));
                if last {
                    break;
                }
            }
            _ => {}
        }
    }
    assert!(missed > 0, "a lagged notice for what did not fit");
    assert!(got.iter().map(|g| g.1.len()).sum::<usize>() <= 1 << 20);
    assert!(
        got[..] == history[history.len() - got.len()..],
        "the latest events, in order"
    );
    assert_eq!(
        missed + got.len(),
        history.len() - 1,
        "the rest are counted"
    );
}

/// Idle WebSockets from one address cannot take every place: past
/// `--max-clients-per-ip` they get 429 naming the flag (logged once), while another
/// address still gets its stream; past `--max-clients`, 503.
#[test]
fn one_address_cannot_take_every_place() {
    let _serial = serial();
    let dir = common::scratch_dir("hostile_admission");
    let (log, state) = (dir.join("server.log"), dir.join("clock.json"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_caspers-replay"));
    serve_args(&mut cmd, &state);
    cmd.args(["--paused", "--control-token", TOKEN]).args([
        "--max-clients",
        "6",
        "--max-clients-per-ip",
        "3",
    ]);
    let server = LiveServer::spawn_with_stderr(cmd, std::fs::File::create(&log).unwrap());
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(raw_websocket(server.addr, "", false));
    }
    for _ in 0..5 {
        let mut s = connect_from("127.0.0.1", server.addr);
        let req = format!(
            "GET /v1/ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            server.addr
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut answer = String::new();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(
            answer.contains("\"limit\":\"max-clients-per-ip\""),
            "{answer}"
        );
        assert!(
            answer.contains("--max-clients-per-ip allows (3)"),
            "{answer}"
        );
    }
    // Another address is served.
    let other = SseClient::connect_from("127.0.0.2", server.addr, "/v1/events");
    assert_eq!(other.status, 200);
    let more: Vec<SseClient> = (0..2)
        .map(|_| SseClient::connect_from("127.0.0.4", server.addr, "/v1/events"))
        .collect();
    assert!(more.iter().all(|c| c.status == 200));
    // Six streams: the server is full.
    let full = SseClient::connect_from("127.0.0.5", server.addr, "/v1/events");
    assert_eq!(full.status, 503);
    assert_eq!(metric(&server, "caspers_clients_rejected_total"), 6.0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("refusing streams from 127.0.0.1").count(),
        1,
        "one log line for five refusals: {text}"
    );
    // A place freed is taken again.
    drop(held.pop());
    std::thread::sleep(Duration::from_millis(1500));
    let again = raw_websocket(server.addr, "", false);
    drop(again);
    // Malformed requests are answered, not logged: a client cannot flood the log.
    let before = std::fs::read_to_string(&log).unwrap().lines().count();
    let malformed: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"POST /v1/clock HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pa",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n",
        b"GET /v1/events HTTP/1.1\r\nHost: x\rX: y\r\n\r\n",
    ];
    for _ in 0..20 {
        for bytes in malformed {
            let mut s = connect_from("127.0.0.1", server.addr);
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let _ = s.write_all(bytes);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let _ = s.read_to_end(&mut Vec::new());
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.lines().count(),
        before,
        "100 malformed requests wrote nothing to the log: {text}"
    );
}

/// Behind a trusted proxy, the address that counts is the one X-Forwarded-For names.
#[test]
fn behind_a_trusted_proxy_the_forwarded_address_counts() {
    let _serial = serial();
    let server = paused_server(&["--max-clients-per-ip", "1", "--trusted-proxy", "127.0.0.1"]);
    let open = |forwarded: &str| {
        let mut s = connect_from("127.0.0.1", server.addr);
        let req =
            format!("GET /v1/events HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {forwarded}\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        (s, String::from_utf8_lossy(&head).to_string())
    };
    let (_a, first) = open("192.0.2.10");
    let (_b, second) = open("192.0.2.11");
    let (_c, third) = open("192.0.2.10");
    assert_eq!(first, "HTTP/1.1 200");
    assert_eq!(second, "HTTP/1.1 200", "another forwarded client");
    assert_eq!(third, "HTTP/1.1 429", "the same forwarded client again");
}

/// A WebSocket that reads but never answers pings is closed (1002) after
/// --ws-pong-timeout; one that answers stays.
#[test]
fn a_websocket_that_does_not_answer_pings_is_closed() {
    let _serial = serial();
    let server = paused_server(&["--ws-pong-timeout", "2"]);
    let mut silent = raw_websocket(server.addr, "", false);
    let mut polite = common::live::ws_connect(&server, "");
    let reader = std::thread::spawn(move || {
        // tungstenite answers each ping as it reads.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(8) {
            if polite.read().is_err() {
                return false;
            }
        }
        true
    });
    let started = Instant::now();
    let (frames, close) = read_frames(&mut silent, Duration::from_secs(10));
    assert!(frames.iter().any(|(op, _)| *op == 0x9), "a ping came");
    assert_eq!(close, Some(1002), "no pong: closed with 1002");
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(
        reader.join().unwrap(),
        "the client that answers stays connected"
    );
    assert_eq!(metric(&server, "caspers_clients_unresponsive_total"), 1.0);
}

/// Under a limit of 1,024 open files, 1,100 idle connections: the server lowers its
/// stream limit at start and says so, and the streams and the clock's saves go on.
#[test]
fn idle_connections_past_the_open_files_limit_stop_neither_streams_nor_saves() {
    let _serial = serial();
    raise_own_open_files(4096);
    let dir = common::scratch_dir("hostile_nofile");
    let state = dir.join("clock.json");
    let mut cmd = Command::new("prlimit");
    cmd.arg("--nofile=1024:1024")
        .arg(env!("CARGO_BIN_EXE_caspers-replay"));
    serve_args(&mut cmd, &state);
    cmd.args(["--paused", "--control-token", TOKEN, "--tick-ms", "50"]);
    let server = LiveServer::spawn(cmd);
    assert!(
        server
            .start_line
            .contains("--max-clients lowered from 10000 to"),
        "{}",
        server.start_line
    );
    seek(&server, DAY1 + 11 * 3600);
    let mut honest = SseClient::connect_from("127.0.0.2", server.addr, "/v1/events");
    assert_eq!(honest.status, 200);
    server.control(r#"{"speed": 3600, "paused": false}"#);
    let mut idle = Vec::new();
    for _ in 0..1100 {
        idle.push(connect_from("127.0.0.1", server.addr));
    }
    // For 4 s: events keep coming (no gap over a second) and the state file is saved.
    let started = Instant::now();
    let mut last_event = Instant::now();
    let mut longest_gap = Duration::ZERO;
    let mut events = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let m = honest.next().expect("the stream goes on");
        if m.id.is_some() {
            events += 1;
            longest_gap = longest_gap.max(last_event.elapsed());
            last_event = Instant::now();
        }
    }
    let saved = std::fs::metadata(&state).unwrap().modified().unwrap();
    let age = std::time::SystemTime::now()
        .duration_since(saved)
        .unwrap_or_default();
    assert!(events > 100, "events kept coming ({events})");
    assert!(
        longest_gap < Duration::from_secs(1),
        "longest gap {longest_gap:?}"
    );
    assert!(
        age < Duration::from_secs(1),
        "the clock was saved {age:?} ago"
    );
    drop(idle);
    assert_eq!(server.get("/healthz").0, 200);
}

fn raise_own_open_files(n: libc::rlim_t) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a valid rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_cur = rl.rlim_cur.max(n.min(rl.rlim_max));
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
    }
}

/// An empty presenter token, from the command line or the environment, is refused at
/// start; a token from the environment is not printed; `bearer` in any case works, and
/// the token is compared trimmed.
#[test]
fn no_empty_secret_and_no_secret_printed() {
    let _serial = serial();
    let state = common::scratch_dir("hostile_tokens").join("clock.json");
    let serve = |envs: &[(&str, &str)], args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_caspers-replay"));
        serve_args(&mut cmd, &state);
        cmd.args(args).env_remove("CASPERS_CONTROL_TOKEN");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd
    };
    for (envs, args, says) in [
        (
            &[][..],
            &["--control-token", ""][..],
            "--control-token is empty",
        ),
        (
            &[][..],
            &["--control-token", "  "][..],
            "--control-token is empty",
        ),
        (
            &[("CASPERS_CONTROL_TOKEN", "")][..],
            &[][..],
            "CASPERS_CONTROL_TOKEN is empty",
        ),
        (
            &[("CASPERS_CONTROL_TOKEN", " \n")][..],
            &[][..],
            "CASPERS_CONTROL_TOKEN is empty",
        ),
    ] {
        let out = serve(envs, args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?} {envs:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?} {envs:?}: {stderr}");
    }
    // From the environment, with a newline: not printed, and matched trimmed.
    let secret = "s3cret-from-the-environment";
    let mut cmd = serve(&[("CASPERS_CONTROL_TOKEN", &format!("{secret}\n"))], &[]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = String::new();
    for _ in 0..3 {
        std::io::BufRead::read_line(&mut out, &mut lines).unwrap();
    }
    let addr: SocketAddr = lines
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(!lines.contains(secret), "the secret was printed: {lines}");
    assert!(lines.contains("--print-presenter-url"), "{lines}");
    for auth in [format!("bearer {secret}"), format!("BEARER  {secret} ")] {
        let (status, body) = request(
            addr,
            "POST",
            "/v1/clock",
            &[("Authorization", &auth)],
            r#"{"paused": true}"#,
        );
        assert_eq!(status, 200, "{auth}: {body}");
    }
    let (status, _) = request(
        addr,
        "POST",
        "/v1/clock?token=",
        &[],
        r#"{"paused": false}"#,
    );
    assert_eq!(status, 403, "an empty token never matches");
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains(secret), "the secret was logged: {stderr}");
}

/// A token from a file is not printed either, unless asked with --print-presenter-url.
#[test]
fn a_token_from_a_file_is_printed_only_when_asked() {
    let _serial = serial();
    let dir = common::scratch_dir("hostile_token_file");
    let file = dir.join("token");
    let secret = "s3cret-from-a-file";
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    for (ask, printed) in [(false, false), (true, true)] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_caspers-replay"));
        serve_args(&mut cmd, &dir.join("clock.json"));
        cmd.arg("--control-token-file")
            .arg(&file)
            .env_remove("CASPERS_CONTROL_TOKEN");
        if ask {
            cmd.arg("--print-presenter-url");
        }
        cmd.stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut lines = String::new();
        for _ in 0..3 {
            std::io::BufRead::read_line(&mut out, &mut lines).unwrap();
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(lines.contains(secret), printed, "{lines}");
        assert!(lines.contains("presenter: http://"), "{lines}");
    }
}

/// An HTTP/1.0 client gets its SSE stream delimited by the close, not chunked (RFC 9112
/// section 6.1).
#[test]
fn an_http_1_0_sse_client_gets_a_close_delimited_stream() {
    let _serial = serial();
    let server = paused_server(&[]);
    let start = DAY1 + 11 * 3600;
    seek(&server, start);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"GET /v1/events HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    server.control(r#"{"speed": 3600, "paused": false}"#);
    std::thread::sleep(Duration::from_millis(800));
    let end = sim_end(&server.control(r#"{"paused": true}"#));
    std::thread::sleep(Duration::from_millis(300));
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut raw = Vec::new();
    let mut chunk = [0u8; 65536];
    while let Ok(n) = s.read(&mut chunk) {
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        body.starts_with("retry: 3000\n\nevent: clock\n"),
        "{body:.200}"
    );
    // The events, as SSE, with no chunk sizes between them.
    let mut got = Vec::new();
    let mut id = None;
    for line in body.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.to_string());
        } else if let (Some(v), Some(i)) = (line.strip_prefix("data: "), id.take()) {
            got.push((i, v.to_string()));
        }
    }
    assert!(
        got == expected(start, end, Filter::default()),
        "every event, unchunked"
    );
}
