//! SIGTERM with a thousand clients connected: the process is gone within a second, every
//! client got its close (an SSE `close` message, a WebSocket close frame 1001), and a
//! restart with the same state file resumes them with nothing lost or repeated. (A test
//! binary of its own, so that no other test's load shares the machine while it is timed.)

mod common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use caspers_replay::dataset::Dataset;
use caspers_replay::events::Filter;
use common::live::{LiveServer, SseClient, expected, ws_connect, ws_message_events};

const DAY1: i64 = 1_704_067_200 + 86_400;
const CLIENTS: usize = 1000;

fn dataset() -> &'static (PathBuf, Dataset) {
    static DS: OnceLock<(PathBuf, Dataset)> = OnceLock::new();
    DS.get_or_init(|| common::generated_dataset("shutdown_dataset", 3, 13))
}

/// This process holds a socket per client (two for SSE): more than the usual 1,024.
fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a valid rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(8192);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur >= 4000,
        "the open-files hard limit is too low for this test"
    );
}

enum Client {
    Sse(Box<SseClient>),
    Ws(Box<tungstenite::WebSocket<TcpStream>>),
}

/// What one client read to the end of its stream.
#[derive(Default)]
struct Read {
    positions: Vec<String>,
    close: Option<String>,
}

fn read_to_end(client: &mut Client) -> Read {
    let mut read = Read::default();
    match client {
        Client::Sse(sse) => {
            while let Some(m) = sse.next() {
                match (m.id, m.event.as_deref()) {
                    (Some(id), _) => read.positions.push(id),
                    (None, Some("close")) => read.close = Some(m.data),
                    _ => {}
                }
            }
        }
        Client::Ws(ws) => loop {
            match ws.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    if t.as_str().starts_with("{\"type\":\"events\"") {
                        read.positions
                            .extend(ws_message_events(t.as_str()).into_iter().map(|e| e.0));
                    }
                }
                Ok(tungstenite::Message::Close(frame)) => {
                    read.close = frame.map(|f| format!("{} {}", u16::from(f.code), f.reason));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        },
    }
    read
}

fn filter_of(i: usize) -> u8 {
    (i % 4) as u8 + 1
}

#[test]
fn sigterm_with_a_thousand_clients_exits_within_a_second_and_a_restart_resumes_them() {
    raise_open_files();
    let (dir, ds) = dataset();
    let state = common::scratch_dir("shutdown").join("clock.json");
    let state_arg = state.to_str().unwrap();
    let args = [
        "--state",
        state_arg,
        "--max-clients-per-ip",
        "0",
        "--start-day",
        "1",
    ];
    let mut a = LiveServer::start(dir, &[&args[..], &["--fresh", "--paused"]].concat());
    let from = DAY1 + 18 * 3600;
    a.control(&format!("{{\"seek\": {from}, \"paused\": true}}"));

    let mut clients: Vec<Client> = (0..CLIENTS)
        .map(|i| {
            let query = format!("?location_id={}", filter_of(i));
            if i % 2 == 0 {
                Client::Sse(Box::new(SseClient::connect(
                    a.addr,
                    &format!("/v1/events{query}"),
                    None,
                )))
            } else {
                Client::Ws(Box::new(ws_connect(&a, &query)))
            }
        })
        .collect();
    // A simulated minute a second: a few dozen events each, which the kernel holds until
    // the clients read them after the server is gone.
    a.control(r#"{"speed": 60, "paused": false}"#);
    std::thread::sleep(Duration::from_millis(1500));

    let signalled = Instant::now();
    let status = a.terminate();
    let took = signalled.elapsed();
    println!("measured: SIGTERM with {CLIENTS} clients: exited after {took:?}");
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(1),
        "the server took {took:?} to exit"
    );

    let reads: Vec<Read> = clients.iter_mut().map(read_to_end).collect();
    for (i, r) in reads.iter().enumerate() {
        let close = r
            .close
            .as_deref()
            .unwrap_or_else(|| panic!("client {i}: no close"));
        assert!(close.contains("shutting down"), "client {i}: {close}");
        if i % 2 == 1 {
            assert!(close.starts_with("1001 "), "client {i}: {close}");
        }
    }
    assert!(
        reads.iter().all(|r| !r.positions.is_empty()),
        "every client had events before the stop"
    );

    // The restart resumes from the state file; a sample of the clients come back from
    // their last position, and each has its window exact.
    let b = LiveServer::start(dir, &args);
    let sample: Vec<usize> = (0..CLIENTS)
        .step_by(50)
        .chain((1..CLIENTS).step_by(50))
        .collect();
    let mut resumed: Vec<(usize, Client)> = sample
        .iter()
        .map(|&i| {
            let last = reads[i].positions.last().unwrap();
            let query = format!("?location_id={}", filter_of(i));
            let client = if i % 2 == 0 {
                Client::Sse(Box::new(SseClient::connect(
                    b.addr,
                    &format!("/v1/events{query}"),
                    Some(last),
                )))
            } else {
                Client::Ws(Box::new(ws_connect(&b, &format!("{query}&from={last}"))))
            };
            (i, client)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    let end = b.control(r#"{"paused": true}"#)["sim_time"]
        .as_f64()
        .unwrap()
        .floor() as i64
        + 1;
    // What was due before the pause is written, then the streams end with the process.
    std::thread::sleep(Duration::from_millis(300));
    drop(b);
    for (i, client) in &mut resumed {
        let after = read_to_end(client).positions;
        let mut got = reads[*i].positions.clone();
        got.extend(after);
        // The events of the first second may have gone out before the clients connected
        // (the clock was sought there): the window compared starts a second later.
        let first: Vec<String> = expected(ds, from, from + 1, Filter::new(&[filter_of(*i)], &[]))
            .into_iter()
            .map(|e| e.0)
            .collect();
        got.retain(|p| !first.contains(p));
        let want: Vec<String> = expected(ds, from + 1, end, Filter::new(&[filter_of(*i)], &[]))
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert!(
            want.len() > reads[*i].positions.len(),
            "the window spans the restart"
        );
        assert!(
            got == want,
            "client {i}: {} events against {} in the window, across the restart",
            got.len(),
            want.len()
        );
    }
}
