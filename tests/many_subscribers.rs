//! A few hundred subscribers in several groups (filters and transports), some of them
//! slow, on one real server over 127.0.0.1: each gets exactly its filter's events, or, when
//! it fell behind, lag notices that count exactly what it missed.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use caspers_replay::dataset::Dataset;
use caspers_replay::events::Filter;
use common::live::{LiveServer, SseClient};

const DAY1: i64 = 1_704_067_200 + 86_400;

fn dataset() -> &'static (PathBuf, Dataset) {
    static DS: OnceLock<(PathBuf, Dataset)> = OnceLock::new();
    DS.get_or_init(|| common::generated_dataset("many_dataset", 3, 11))
}

/// The groups: (query, filter).
fn groups() -> Vec<(&'static str, Filter)> {
    use caspers_replay::dataset::EventType;
    vec![
        ("", Filter::default()),
        ("?location_id=1", Filter::new(&[1], &[])),
        ("?location_id=2", Filter::new(&[2], &[])),
        ("?location_id=3", Filter::new(&[3], &[])),
        ("?location_id=4", Filter::new(&[4], &[])),
        ("?location_id=1,3", Filter::new(&[1, 3], &[])),
        (
            "?event_type=driver_ping",
            Filter::new(&[], &[EventType::DriverPing]),
        ),
        (
            "?location_id=2&event_type=order_created,delivered",
            Filter::new(&[2], &[EventType::OrderCreated, EventType::Delivered]),
        ),
    ]
}

#[test]
fn every_subscriber_gets_its_filters_events_or_is_told_what_it_missed() {
    let (dir, ds) = dataset();
    let server = LiveServer::start(
        dir,
        &[
            "--paused",
            "--start-day",
            "1",
            "--queue-kib",
            "64",
            "--max-clients-per-ip",
            "0",
        ],
    );
    // Half a day of history first: slow clients resume from its start, further back than
    // their queue holds, then do not read while the clock runs.
    server.control(&format!("{{\"seek\": {DAY1}, \"paused\": true}}"));
    server.control(r#"{"speed": 86400, "paused": false}"#);
    std::thread::sleep(Duration::from_millis(500));
    let paused = server.control(r#"{"paused": true}"#);
    let start = paused["sim_time"].as_f64().unwrap().floor() as i64 + 1;
    assert!(start > DAY1 + 3 * 3600, "a history of hours");
    let groups = groups();
    // 320 subscribers, 40 a group; in every group, every tenth resumes from the history's
    // start and never reads until the clock stops.
    let mut clients = Vec::new();
    for i in 0..320 {
        let (query, filter) = groups[i % groups.len()];
        let slow = (i / groups.len()) % 10 == 9;
        let stream = if slow {
            small_window(server.addr)
        } else {
            std::net::TcpStream::connect(server.addr).unwrap()
        };
        let from = slow.then(|| common::live::expected(ds, DAY1, start, filter)[0].0.clone());
        let path = format!("/v1/events{query}");
        let client = SseClient::over(stream, server.addr, &path, from.as_deref());
        assert_eq!(client.status, 200);
        clients.push((client, filter, slow));
    }
    // Slow clients start reading once the clock has stopped.
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let go_rx = std::sync::Arc::new(std::sync::Mutex::new(go_rx));
    let handles: Vec<_> = clients
        .into_iter()
        .map(|(mut client, filter, slow)| {
            let go_rx = std::sync::Arc::clone(&go_rx);
            std::thread::spawn(move || {
                let quiet = Some(Duration::from_secs(2));
                if slow {
                    go_rx.lock().unwrap().recv().unwrap();
                    client.stream.set_read_timeout(quiet).unwrap();
                }
                let (mut events, mut missed, mut paused) = (Vec::new(), 0, false);
                // Until nothing more comes (a read times out) once the clock has stopped.
                while let Some(m) = client.next() {
                    let json = || serde_json::from_str::<serde_json::Value>(&m.data).unwrap();
                    match m.event.as_deref() {
                        Some("lagged") => missed += json()["missed"].as_u64().unwrap(),
                        Some("clock") if json()["reason"] == "pause" => {
                            paused = true;
                            client.stream.set_read_timeout(quiet).unwrap();
                        }
                        _ if m.id.is_some() => events.push((m.id.unwrap(), m.data)),
                        _ => {}
                    }
                }
                (filter, slow, events, missed, paused)
            })
        })
        .collect();
    server.control(r#"{"speed": 3600, "paused": false}"#);
    std::thread::sleep(Duration::from_millis(2500));
    let state = server.control(r#"{"paused": true}"#);
    let end = state["sim_time"].as_f64().unwrap().floor() as i64 + 1;
    for _ in 0..32 {
        go_tx.send(()).unwrap();
    }
    let (mut fast_exact, mut slow_told) = (0, 0);
    for handle in handles {
        let (filter, slow, got, missed, paused) = handle.join().unwrap();
        let want = if slow {
            common::live::expected(ds, DAY1, end, filter)[1..].to_vec()
        } else {
            common::live::expected(ds, start, end, filter)
        };
        assert!(!want.is_empty(), "the window holds events for {filter:?}");
        assert!(paused, "{filter:?} (slow: {slow}): the pause was announced");
        // What came is the filter's events in order, with only the missed ones left out.
        let mut rest = want.iter();
        assert!(
            got.iter().all(|g| rest.any(|w| w == g)),
            "{filter:?} (slow: {slow}): events in order, each once"
        );
        assert_eq!(
            got.len() as u64 + missed,
            want.len() as u64,
            "{filter:?} (slow: {slow}): every event came or was counted as missed"
        );
        if missed == 0 {
            assert!(got == want);
            fast_exact += usize::from(!slow);
        } else {
            slow_told += usize::from(slow);
        }
    }
    // Readers that keep up get everything; the test's 300 threads on a small machine may
    // fall behind now and then too, which the invariant above covers.
    assert!(
        fast_exact > 250,
        "fast clients got exactly their events ({fast_exact} of 288)"
    );
    assert!(
        slow_told > 0,
        "slow clients fell behind and were told ({slow_told})"
    );
}

/// A connection whose receive buffer is set small before it connects (the window it
/// offers is fixed then), so that the server's writes block soon when it does not read.
fn small_window(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(addr).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}
