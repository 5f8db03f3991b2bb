//! `--peer nchan`: the same generator, ticks and client mix against nginx with Debian's
//! Nchan module (`apt-get install nginx-light libnginx-mod-nchan`), the pub/sub server a
//! team would pick instead of ours for an SSE/WebSocket fan-out.
//!
//! The bench writes its own `nginx.conf`: two workers on epoll, and one channel per
//! location and format (`sse-1` … `ws-4`) behind `/v1/events?location_id=N` and
//! `/v1/ws?location_id=N`, so the generator's requests are the same as against ours. Every
//! 100 ms it publishes the tick's events of each location (the same simulated window as our
//! clock's tick at that speed, the same event JSON) through `nchan_publisher`, one POST per
//! channel: for SSE a message whose lines are `emitted MS` and then one event's JSON each
//! (Nchan sends it as one SSE event, a `data:` line each), for WebSocket our own events
//! message. A tick is stamped with the time it was due, so a publisher held up by Nchan's
//! answers counts against Nchan. Nchan has no lag notice: every event a client did not get
//! is counted lost.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use caspers_replay::dataset::Dataset;
use caspers_replay::events::expand_event;
use caspers_replay::timeline::{Position, Timeline};

use crate::generator::{GeneratorProcess, Target, now_ms};
use crate::procs::{cpu_seconds, rss_mb};
use crate::{Scenario, Summary};

const MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";

/// One channel's messages: per tick, the text after the emission stamp and the events in it.
struct Channel {
    id: String,
    /// 0 for every location (unfiltered), else the location_id.
    location: u8,
    websocket: bool,
    ticks: Vec<(Vec<u8>, u64)>,
}

impl Channel {
    /// The message of tick `k`, stamped `emitted` (ms); `None` when the tick has no event.
    fn message(&self, k: usize, emitted: u64) -> Option<Vec<u8>> {
        let (rest, n) = self.ticks.get(k)?;
        if *n == 0 {
            return None;
        }
        let mut out = Vec::with_capacity(rest.len() + 64);
        if self.websocket {
            write!(out, "{{\"type\":\"events\",\"emitted_at\":{emitted},").unwrap();
        } else {
            write!(out, "emitted {emitted}").unwrap();
        }
        out.extend_from_slice(rest);
        Some(out)
    }
}

/// The channels and their messages for `ticks` ticks of `span` simulated seconds from `at`.
fn channels(ds: &Dataset, sc: &Scenario, ticks: usize, span: i64) -> Vec<Channel> {
    let timeline = Timeline::new(ds, false);
    let locations: Vec<u8> = if sc.filtered {
        vec![1, 2, 3, 4]
    } else {
        vec![0]
    };
    let mut out = Vec::new();
    for &location in &locations {
        for websocket in [false, true] {
            let name = if location == 0 {
                String::new()
            } else {
                location.to_string()
            };
            out.push(Channel {
                id: format!("{}-{name}", if websocket { "ws" } else { "sse" }),
                location,
                websocket,
                ticks: Vec::with_capacity(ticks),
            });
        }
    }
    let mut json = Vec::new();
    for k in 0..ticks as i64 {
        let a = sc.at + k * span;
        // Per location: the events' JSON and positions.
        let mut picked: Vec<(Vec<Vec<u8>>, Vec<String>)> =
            vec![Default::default(); locations.len()];
        timeline.for_each_event(ds, a, a + span, 0, |pos, shift| {
            let loc = ds.events.location_id(pos);
            let Some(i) = locations.iter().position(|&l| l == 0 || l == loc) else {
                return;
            };
            json.clear();
            expand_event(&ds.events, pos, shift, &mut json);
            let mut position = Vec::new();
            Position {
                loop_index: shift.loop_index,
                row: pos as u32,
            }
            .write("0123abcd", &mut position);
            picked[i].0.push(json.clone());
            picked[i].1.push(String::from_utf8(position).unwrap());
        });
        for channel in &mut out {
            let i = locations
                .iter()
                .position(|&l| l == channel.location)
                .unwrap();
            let (events, positions) = &picked[i];
            let mut rest = Vec::new();
            if channel.websocket {
                rest.extend_from_slice(b"\"events\":[");
                rest.extend_from_slice(&events.join(&b','));
                rest.extend_from_slice(b"],\"positions\":[");
                let quoted: Vec<String> = positions.iter().map(|p| format!("\"{p}\"")).collect();
                rest.extend_from_slice(quoted.join(",").as_bytes());
                rest.extend_from_slice(b"]}");
            } else {
                for event in events {
                    rest.push(b'\n');
                    rest.extend_from_slice(event);
                }
            }
            channel.ticks.push((rest, events.len() as u64));
        }
    }
    out
}

/// nginx's configuration for a run on `port`, everything it writes kept in `dir`.
fn config(dir: &Path, port: u16, subscribers: usize) -> String {
    let d = dir.display();
    // As root, workers would otherwise switch to `nobody`, who cannot write to `dir`.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root;"
    } else {
        ""
    };
    let connections = subscribers + 1000;
    format!(
        "load_module {MODULE};
{user}
worker_processes 2;
worker_rlimit_nofile 200000;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections {connections}; use epoll; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/body;
  fastcgi_temp_path {d}/body;
  uwsgi_temp_path {d}/body;
  scgi_temp_path {d}/body;
  client_body_buffer_size 4m;
  client_max_body_size 16m;
  nchan_shared_memory_size 512m;
  server {{
    listen 127.0.0.1:{port} backlog=65535;
    location = /pub {{
      nchan_publisher;
      nchan_channel_id $arg_id;
      nchan_message_buffer_length 20;
      nchan_message_timeout 60s;
    }}
    location = /v1/events {{
      nchan_subscriber eventsource;
      nchan_channel_id sse-$arg_location_id;
    }}
    location = /v1/ws {{
      nchan_subscriber websocket;
      nchan_channel_id ws-$arg_location_id;
    }}
  }}
}}
"
    )
}

/// nginx's master and its workers.
fn processes(master: u32) -> Vec<u32> {
    let mut pids = vec![master];
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|x| x.1.split(' ').nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(master) {
            pids.push(pid);
        }
    }
    pids
}

/// Says what to install when nginx or the module is missing, and stops the bench.
pub fn check_installed() {
    let nginx = std::process::Command::new("nginx")
        .arg("-v")
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !nginx || !Path::new(MODULE).is_file() {
        eprintln!(
            "load bench: the Nchan peer needs nginx and its Nchan module ({MODULE}): \
             apt-get install nginx-light libnginx-mod-nchan (or leave out --peer nchan; \
             --compare --no-peer compares ours with the floor only)"
        );
        std::process::exit(2);
    }
}

struct Nginx {
    child: std::process::Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Nginx {
    fn start(sc: &Scenario) -> Nginx {
        let dir = std::env::temp_dir().join(format!("caspers-bench-nchan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("body")).expect("nginx's directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(&dir, port, sc.subscribers)).expect("nginx.conf");
        let mut cmd = if sc.pin {
            let mut c = std::process::Command::new("taskset");
            c.args(["-c", "0", "nginx"]);
            c
        } else {
            std::process::Command::new("nginx")
        };
        let mut child = cmd
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                panic!(
                    "nginx did not start on {addr}; its error log ({}):\n{log}",
                    dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx { child, dir, addr }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers (a SIGKILL would leave them running).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One publisher connection per channel, kept alive.
struct Publisher {
    streams: Vec<std::io::BufReader<TcpStream>>,
}

impl Publisher {
    fn connect(addr: SocketAddr, n: usize) -> Publisher {
        let streams = (0..n)
            .map(|_| {
                let s = TcpStream::connect(addr).expect("the publisher's connection");
                s.set_nodelay(true).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                std::io::BufReader::new(s)
            })
            .collect();
        Publisher { streams }
    }

    /// Posts `message` to `channel` over connection `k` (the answer is read by [`Self::answer`]).
    fn post(&mut self, k: usize, channel: &str, message: &[u8]) {
        let s = self.streams[k].get_mut();
        let head = format!(
            "POST /pub?id={channel} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            message.len()
        );
        s.write_all(head.as_bytes()).expect("publish");
        s.write_all(message).expect("publish");
    }

    /// Reads connection `k`'s answer; panics unless Nchan took the message.
    fn answer(&mut self, k: usize) {
        let r = &mut self.streams[k];
        let mut status = String::new();
        r.read_line(&mut status).expect("the publisher's answer");
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).expect("the publisher's answer");
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        r.read_exact(&mut body).expect("the publisher's answer");
        assert!(
            status.starts_with("HTTP/1.1 201") || status.starts_with("HTTP/1.1 202"),
            "Nchan refused a message: {status}{}",
            String::from_utf8_lossy(&body)
        );
    }
}

/// `--peer nchan`: one run against nginx + Nchan.
pub fn run(ds: &Dataset, sc: &Scenario) -> Summary {
    check_installed();
    let tick = Duration::from_millis(100);
    let ticks = sc.seconds as usize * 10;
    let channels = channels(ds, sc, ticks, (sc.speed / 10.0) as i64);
    let nginx = Nginx::start(sc);

    let (addr, subscribers) = (nginx.addr.to_string(), sc.subscribers.to_string());
    let mut args = vec![addr.as_str(), "--subscribers", &subscribers];
    args.extend(["--target", Target::Nchan.name()]);
    if sc.filtered {
        args.push("--filtered");
    }
    let mut generator = GeneratorProcess::start(&args, sc.pin.then_some(1));
    std::thread::sleep(Duration::from_millis(500));

    let pids = processes(nginx.child.id());
    let cpu = || pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>();
    let (server_cpu0, gen_cpu0) = (cpu(), cpu_seconds(generator.id()));
    let mut publisher = Publisher::connect(nginx.addr, channels.len());
    let mut published = [0u64; 256];
    let start = Instant::now();
    let start_ms = now_ms();
    for k in 0..ticks {
        let due = start + tick * k as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        // Stamped with the time the tick was due: when Nchan answers its publisher slower
        // than the ticks come, the ticks behind it count as late (our clock's ticks are
        // stamped when they start, on time, whatever the writers are doing).
        let emitted = start_ms + k as u64 * 100;
        let mut posted = Vec::new();
        for (c, channel) in channels.iter().enumerate() {
            if let Some(message) = channel.message(k, emitted) {
                publisher.post(c, &channel.id, &message);
                posted.push(c);
                if !channel.websocket {
                    published[usize::from(channel.location)] += channel.ticks[k].1;
                }
            }
        }
        for c in posted {
            publisher.answer(c);
        }
    }
    let wall = start.elapsed().as_secs_f64();
    // Let what is on its way arrive.
    generator.wait_until_still();
    let measured = start.elapsed().as_secs_f64();
    let server_cpu = cpu() - server_cpu0;
    let gen_cpu = cpu_seconds(generator.id()) - gen_cpu0;
    let rss: f64 = pids.iter().map(|&p| rss_mb(p)).sum();
    let reports = generator.stop();
    drop(nginx);

    let r = &reports[0];
    let (mut expected, mut delivered) = (0u64, 0u64);
    for &(loc, n, got) in &r.groups {
        expected += published[usize::from(loc)] * n;
        delivered += got;
    }
    let lost = expected as i64 - delivered as i64;
    println!(
        "nginx + Nchan: {} subscribers{}{}, {}x from the same instant for {wall:.1} s: delivered {delivered} = {:.0} events/s; delay p50 {} ms, p99 {} ms (SSE {}/{}, WebSocket {}/{}); lost {lost} of {expected} (Nchan sends no lag notice); {} connection errors",
        sc.subscribers,
        if sc.filtered {
            ", one location each"
        } else {
            ""
        },
        if sc.pin {
            ", server on core 0, generator on core 1"
        } else {
            ""
        },
        sc.speed,
        delivered as f64 / wall,
        r.p50,
        r.p99,
        r.sse_p50,
        r.sse_p99,
        r.ws_p50,
        r.ws_p99,
        r.errors
    );
    println!(
        "  CPU over the run (cores): nginx {:.2} (master and 2 workers), load generator {:.2}; nginx RSS {rss:.0} MB",
        server_cpu / measured,
        gen_cpu / measured
    );
    Summary {
        p50: r.p50,
        p99: r.p99,
        events_per_s: delivered as f64 / wall,
        lost,
        unannounced: lost,
        cpu: server_cpu / measured,
        cpu_seconds: server_cpu,
        delivered,
        rss_mb: rss,
    }
}
