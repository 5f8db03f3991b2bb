//! `--floor`: the least a fan-out server must do on this machine, to measure ours against.

use std::sync::Arc;
use std::time::{Duration, Instant};

use caspers_replay::dataset::Dataset;
use caspers_replay::timeline::Timeline;

use crate::generator::{GeneratorProcess, now_ms};
use crate::procs::{cpu_seconds, raise_fd_limit, rss_mb, this_bench};
use crate::{Scenario, Summary};

/// The floor: a fan-out server reduced to what no server can avoid, to measure what this
/// machine allows. Two writer threads (one per core) each own half of the sockets and wait
/// on their own epoll (mio), as the real server's writers do. Every tick each builds one
/// SSE chunk and one WebSocket message (the emission stamp, then as many events of the real
/// server's size as `per_tick` says for that tick) and writes the one its client asked for
/// to each of its sockets with one non-blocking `write`; what a full socket did not take
/// waits for the socket's writable event. No queue, lock, task or copy per connection.
///
/// `deflated`: WebSocket clients get permessage-deflate, each tick's message compressed
/// once, as the real server does for a deflate group; its events are these real events'
/// JSON in turn, so that it compresses as the real server's do.
pub fn serve(per_tick: Vec<usize>, tick: Duration, deflated: Option<Vec<String>>) {
    use std::io::Write;
    raise_fd_limit();
    // Ticks count from `go` on standard input (the subscribers are connected), so that the
    // floor's first tick carries the same events as the real server's first.
    static GO: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    std::thread::spawn(|| {
        for line in std::io::stdin().lines() {
            if line.is_ok_and(|l| l.trim() == "go") {
                GO.store(true, std::sync::atomic::Ordering::Release);
            }
        }
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    println!("listening {}", listener.local_addr().unwrap());
    type Inbox = Arc<std::sync::Mutex<Vec<(std::net::TcpStream, bool)>>>;
    const WAKE: mio::Token = mio::Token(usize::MAX);
    let per_tick = Arc::new(per_tick);
    let deflated = Arc::new(deflated);
    let mut threads: Vec<(Inbox, Arc<mio::Waker>)> = Vec::new();
    for _ in 0..2 {
        let inbox: Inbox = Arc::default();
        let mut poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKE).unwrap());
        threads.push((Arc::clone(&inbox), waker));
        let per_tick = Arc::clone(&per_tick);
        let deflated = Arc::clone(&deflated);
        std::thread::spawn(move || {
            let mut ticks = 0usize;
            const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
            let ws_head = format!(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: x\r\n{}\r\n",
                if deflated.is_some() {
                    format!(
                        "sec-websocket-extensions: {}\r\n",
                        caspers_replay::fanout::websocket::DEFLATE_RESPONSE
                    )
                } else {
                    String::new()
                }
            );
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
                            if send(
                                &mut s,
                                &mut pending,
                                if ws { ws_head.as_bytes() } else { SSE_HEAD },
                            ) {
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
                if !GO.load(std::sync::atomic::Ordering::Acquire) {
                    continue;
                }
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
                let events_json = match deflated.as_ref() {
                    Some(real) => (0..n)
                        .map(|k| real[(ticks * 31 + k) % real.len()].as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    None => vec![ws_event.as_str(); n].join(","),
                };
                let positions = vec!["\"p\""; n].join(",");
                let message = format!(
                    "{{\"type\":\"events\",\"emitted_at\":{emitted},\"events\":[{events_json}],\"positions\":[{positions}]}}"
                );
                let frame = caspers_replay::fanout::websocket::text_message(
                    message.as_bytes(),
                    deflated.is_some(),
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

/// `--floor`: the same generator and figures against [`serve`] instead of the
/// real server, offering each subscriber as many events a tick as the real one would.
pub fn run(ds: &Dataset, sc: &Scenario) -> Summary {
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
    let mut server = this_bench(sc.pin.then_some(0));
    server.args(["--floor-server", "--events-per-tick", &per_tick]);
    let events_file = sc.deflate.then(|| real_events_file(ds));
    if let Some(path) = &events_file {
        server.args(["--deflated-events", &path.to_string_lossy()]);
    }
    let mut server = server
        .stdin(std::process::Stdio::piped())
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
    let subscribers = sc.subscribers.to_string();
    let mut generator_args = vec![
        addr.as_str(),
        "--subscribers",
        &subscribers,
        "--target",
        "floor",
    ];
    if sc.deflate {
        generator_args.push("--deflate");
    }
    let generator = GeneratorProcess::start(&generator_args, sc.pin.then_some(1));
    writeln!(server.stdin.take().unwrap(), "go").unwrap();
    let (server_cpu0, gen_cpu0) = (cpu_seconds(server.id()), cpu_seconds(generator.id()));
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(sc.seconds));
    let wall = t.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(server.id()) - server_cpu0;
    let gen_cpu = cpu_seconds(generator.id()) - gen_cpu0;
    let rss = rss_mb(server.id());
    let reports = generator.stop();
    let _ = server.kill();
    let _ = server.wait();
    if let Some(path) = events_file {
        let _ = std::fs::remove_file(path);
    }
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
        cpu_seconds: server_cpu,
        delivered,
        rss_mb: rss,
    }
}

/// Real events' JSON, one a line, spread over the dataset: what the floor's deflated
/// messages carry, so that they compress as the real server's do.
fn real_events_file(ds: &Dataset) -> std::path::PathBuf {
    let step = (ds.events.len() / 512).max(1);
    let mut text = Vec::new();
    for pos in (0..ds.events.len()).step_by(step) {
        caspers_replay::events::expand_event(&ds.events, pos, Default::default(), &mut text);
        text.push(b'\n');
    }
    let path =
        std::env::temp_dir().join(format!("caspers-floor-events-{}.jsonl", std::process::id()));
    std::fs::write(&path, text).expect("the floor's events file");
    path
}
