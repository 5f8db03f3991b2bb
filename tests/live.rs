//! The live feed through a real server process over real sockets on 127.0.0.1: exact
//! windows over SSE and WebSocket, speed changes and pauses, resume, slow clients, the
//! presenter's control, bad parameters, snapshot, limits and shutdown.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use caspers_replay::dataset::Dataset;
use caspers_replay::events::Filter;
use common::live::{
    DeflateWs, LiveServer, SseClient, TOKEN, WsClient, pairs, request, ws_connect, ws_error_for,
    ws_events,
};

/// A 3-day generated dataset, shared by the tests of this binary.
fn dataset() -> &'static (PathBuf, Dataset) {
    static DS: OnceLock<(PathBuf, Dataset)> = OnceLock::new();
    DS.get_or_init(|| common::generated_dataset("live_dataset", 3, 5))
}

/// (id, data) of every event with simulation time in [a, b) passing `filter`.
fn expected(a: i64, b: i64, filter: Filter) -> Vec<(String, String)> {
    common::live::expected(&dataset().1, a, b, filter)
}

const DAY1: i64 = 1_704_067_200 + 86_400;

fn paused_server(extra: &[&str]) -> LiveServer {
    let mut args = vec!["--paused", "--start-day", "1"];
    args.extend_from_slice(extra);
    LiveServer::start(&dataset().0, &args)
}

/// Seeks to `at` (paused), returning the state.
fn seek(server: &LiveServer, at: i64) {
    let state = server.control(&format!("{{\"seek\": {at}, \"paused\": true}}"));
    assert_eq!(state["sim_time"].as_f64().unwrap(), at as f64);
}

fn sim_end(state: &serde_json::Value) -> i64 {
    state["sim_time"].as_f64().unwrap().floor() as i64 + 1
}

#[test]
fn sse_receives_exactly_the_window_in_order_filtered_by_location() {
    let server = paused_server(&[]);
    let start = DAY1 + 11 * 3600;
    seek(&server, start);
    let mut all = SseClient::connect(server.addr, "/v1/events", None);
    let mut sf = SseClient::connect(server.addr, "/v1/events?location_id=1,4", None);
    assert_eq!((all.status, sf.status), (200, 200));
    server.control(r#"{"speed": 3600, "paused": false}"#);
    std::thread::sleep(Duration::from_millis(1500));
    let end = sim_end(&server.control(r#"{"paused": true}"#));
    let want_all = expected(start, end, Filter::default());
    let want_sf = expected(start, end, Filter::new(&[1, 4], &[]));
    assert!(
        want_all.len() > 100,
        "the window holds events ({})",
        want_all.len()
    );
    assert!(want_sf.len() < want_all.len());
    let got_all = pairs(&all.events(want_all.len(), Duration::from_secs(10)));
    let got_sf = pairs(&sf.events(want_sf.len(), Duration::from_secs(10)));
    assert_eq!(got_all.len(), want_all.len());
    assert!(
        got_all == want_all,
        "every event once, in order, byte for byte"
    );
    assert!(got_sf == want_sf);
    // Nothing more comes while paused (only keep-alives and control messages).
    all.stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(all.events(1, Duration::from_millis(400)).is_empty());
}

#[test]
fn speed_changes_and_pauses_mid_stream_lose_and_duplicate_nothing() {
    let server = paused_server(&[]);
    let start = DAY1 + 17 * 3600;
    seek(&server, start);
    let mut client = SseClient::connect(
        server.addr,
        "/v1/events?event_type=driver_ping,delivered,order_created",
        None,
    );
    for body in [
        r#"{"speed": 3600, "paused": false}"#,
        r#"{"speed": 20000}"#,
        r#"{"paused": true}"#,
        r#"{"paused": false, "speed": 600}"#,
        r#"{"speed": 90000}"#,
    ] {
        server.control(body);
        std::thread::sleep(Duration::from_millis(300));
    }
    let end = sim_end(&server.control(r#"{"paused": true}"#));
    let filter = Filter::parse(None, Some("driver_ping,delivered,order_created")).unwrap();
    let want = expected(start, end, filter);
    let got = pairs(&client.events(want.len(), Duration::from_secs(10)));
    assert_eq!(got.len(), want.len());
    assert!(got == want);
}

#[test]
fn reconnecting_with_last_event_id_resumes_with_no_gap_and_no_duplicate() {
    let server = paused_server(&[]);
    let start = DAY1 + 12 * 3600;
    seek(&server, start);
    let mut first = SseClient::connect(server.addr, "/v1/events?location_id=3", None);
    server.control(r#"{"speed": 3600, "paused": false}"#);
    let mut got = pairs(&first.events(40, Duration::from_secs(10)));
    assert_eq!(got.len(), 40);
    drop(first);
    // Away for a while: the clock goes on.
    std::thread::sleep(Duration::from_millis(700));
    let last = got.last().unwrap().0.clone();
    let mut second = SseClient::connect(server.addr, "/v1/events?location_id=3", Some(&last));
    std::thread::sleep(Duration::from_millis(500));
    let end = sim_end(&server.control(r#"{"paused": true}"#));
    let want = expected(start, end, Filter::new(&[3], &[]));
    let rest = want.len() - got.len();
    got.extend(pairs(&second.events(rest, Duration::from_secs(10))));
    assert_eq!(got.len(), want.len());
    assert!(got == want);

    // ?from= works the same; a position it cannot resume from is said, not ignored.
    let mut third = SseClient::connect(
        server.addr,
        &format!("/v1/events?location_id=3&from={}", want[5].0),
        None,
    );
    let resumed = pairs(&third.events(3, Duration::from_secs(5)));
    assert_eq!(resumed, want[6..9]);
    for bad in ["nonsense", "deadbeef-0-12"] {
        let mut c = SseClient::connect(server.addr, "/v1/events", Some(bad));
        let mut saw_error = false;
        for _ in 0..3 {
            let m = c.next().unwrap();
            if m.event.as_deref() == Some("error") {
                assert!(m.data.contains("cannot resume"), "{}", m.data);
                saw_error = true;
                break;
            }
        }
        assert!(saw_error, "{bad}: no error message");
    }
}

#[test]
fn a_client_that_stops_reading_delays_no_one_and_is_told() {
    let server = paused_server(&["--queue-kib", "512"]);
    let start = DAY1;
    seek(&server, start);
    let mut slow = SseClient::connect(server.addr, "/v1/events", None);
    let mut fast = SseClient::connect(server.addr, "/v1/events", None);
    server.control(r#"{"speed": 43200, "paused": false}"#);
    // The fast client reads everything as it comes; the slow one reads nothing.
    let t = Instant::now();
    let mut got = Vec::new();
    while t.elapsed() < Duration::from_secs(3) {
        got.extend(pairs(&fast.events(200, Duration::from_millis(200))));
    }
    let end = sim_end(&server.control(r#"{"paused": true}"#));
    let want = expected(start, end, Filter::default());
    let rest = want.len().saturating_sub(got.len());
    got.extend(pairs(&fast.events(rest, Duration::from_secs(10))));
    assert_eq!(got.len(), want.len(), "the fast client got every event");
    assert!(got == want);

    let (_, metrics) = server.get("/metrics");
    let dropped: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("caspers_events_dropped_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        dropped > 0.0,
        "the slow client's queue overflowed\n{metrics}"
    );
    // When the slow client reads again, it is told what it missed before anything newer.
    let mut told = None;
    for _ in 0..200_000 {
        match slow.next() {
            Some(m) if m.event.as_deref() == Some("lagged") => {
                told = Some(m.data);
                break;
            }
            Some(_) => {}
            None => break,
        }
    }
    let told = told.expect("a lagged message");
    let v: serde_json::Value = serde_json::from_str(&told).unwrap();
    assert!(v["missed"].as_u64().unwrap() > 0);
}

#[test]
fn only_the_presenter_changes_the_clock_and_bad_values_get_400() {
    let server = paused_server(&[]);
    let speed = |s: &LiveServer| {
        let (_, text) = s.get("/v1/clock");
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["speed"]
            .as_f64()
            .unwrap()
    };
    let before = speed(&server);
    let (status, text) = request(server.addr, "POST", "/v1/clock", &[], r#"{"speed": 5}"#);
    assert_eq!(status, 401, "{text}");
    let (status, _) = request(
        server.addr,
        "POST",
        "/v1/clock",
        &[("Authorization", "Bearer nope")],
        r#"{"speed": 5}"#,
    );
    assert_eq!(status, 403);
    assert_eq!(speed(&server), before, "viewers cannot change the clock");
    let (status, _) = request(
        server.addr,
        "POST",
        &format!("/v1/clock?token={TOKEN}"),
        &[],
        r#"{"speed": 5}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(speed(&server), 5.0);
    let auth = format!("Bearer {TOKEN}");
    for (body, says) in [
        (r#"{"speed": 0}"#, "speed must be"),
        (r#"{"speed": -3}"#, "speed must be"),
        (r#"{"speed": 1000001}"#, "speed must be"),
        (r#"{"speed": "fast"}"#, "expected JSON"),
        (r#"{"seek": "2023-01-01 00:00:00"}"#, "within the dataset"),
        (r#"{"seek_day": 99}"#, "within the dataset"),
        (
            r#"{"seek_day": 9223372036854775807}"#,
            "not a day of the dataset",
        ),
        (r#"{"seek": "soon"}"#, "not a time"),
        (r#"{"warp": 9}"#, "expected JSON"),
        (r#"{}"#, "nothing to change"),
        ("", "expected JSON"),
    ] {
        let (status, text) = request(
            server.addr,
            "POST",
            "/v1/clock",
            &[("Authorization", &auth)],
            body,
        );
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains(says), "{body}: {text}");
    }
    assert_eq!(speed(&server), 5.0, "a refused change changes nothing");
    let state = server.control(r#"{"seek_day": 2, "speed": 60}"#);
    assert_eq!(
        (state["day"].as_i64(), state["speed"].as_f64()),
        (Some(2), Some(60.0))
    );
}

#[test]
fn bad_query_parameters_get_400_with_a_message() {
    let server = paused_server(&[]);
    for path in ["/v1/events", "/v1/ws"] {
        for (query, says) in [
            ("location_id=abc", "location_id 'abc'"),
            ("location_id=300", "location_id '300'"),
            ("event_type=pickup", "event_type 'pickup'"),
            ("snapshot=maybe", "snapshot must be"),
            ("locations=1", "unknown query parameter 'locations'"),
        ] {
            let (status, text) = server.get(&format!("{path}?{query}"));
            assert_eq!(status, 400, "{path}?{query}: {text}");
            assert!(text.contains(says), "{path}?{query}: {text}");
        }
    }
    let (status, text) = server.get("/healthz");
    assert_eq!((status, text.as_str()), (200, "ok\n"));
    let (status, text) = server.get("/metrics");
    assert_eq!(status, 200);
    for name in [
        "caspers_subscribers{transport=\"sse\"}",
        "caspers_events_sent_total",
        "caspers_sim_time_seconds",
        "caspers_speed",
        "caspers_tick_duration_seconds_max",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
}

#[test]
fn websocket_receives_the_window_and_changes_its_filter_live() {
    let server = paused_server(&[]);
    let start = DAY1 + 18 * 3600;
    seek(&server, start);
    let mut ws = ws_connect(&server, "?location_id=2");
    let mut others = Vec::new();
    server.control(r#"{"speed": 3600, "paused": false}"#);
    std::thread::sleep(Duration::from_millis(800));
    let end = sim_end(&server.control(r#"{"paused": true}"#));
    let want = expected(start, end, Filter::new(&[2], &[]));
    let got = ws_events(&mut ws, want.len(), Duration::from_secs(10), &mut others);
    assert_eq!(got.len(), want.len());
    assert!(got == want);
    assert!(
        others.iter().any(|m| m["type"] == "clock"),
        "clock messages come too"
    );

    // A new filter, sent as a message, with a snapshot for it.
    ws.send(tungstenite::Message::text(
        r#"{"type":"filter","location_id":[4],"snapshot":true}"#,
    ))
    .unwrap();
    server.control(r#"{"paused": false}"#);
    std::thread::sleep(Duration::from_millis(500));
    server.control(r#"{"paused": true}"#);
    let mut others = Vec::new();
    let later = ws_events(&mut ws, 5, Duration::from_secs(5), &mut others);
    assert!(!later.is_empty(), "{others:?}");
    assert!(
        later.iter().all(|(_, e)| e.contains("\"location_id\":4,")),
        "{later:?}"
    );
    assert!(
        others
            .iter()
            .any(|m| m["type"] == "filter" && m["location_id"] == serde_json::json!([4]))
    );
    let error = ws_error_for(&mut ws, "{\"type\":\"dance\"}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("unknown message type 'dance'")
    );
}

#[test]
fn websocket_with_and_without_permessage_deflate_receives_exactly_the_window() {
    for (server_flags, compresses) in [(&[][..], true), (&["--no-ws-deflate"][..], false)] {
        let server = paused_server(server_flags);
        let start = DAY1 + 18 * 3600;
        seek(&server, start);
        let mut deflate_all = DeflateWs::connect(&server, "");
        let mut deflate_one = DeflateWs::connect(&server, "?location_id=3");
        let mut plain = ws_connect(&server, "?location_id=3");
        assert_eq!(deflate_all.negotiated, compresses);
        server.control(r#"{"speed": 3600, "paused": false}"#);
        std::thread::sleep(Duration::from_millis(700));
        let end = sim_end(&server.control(r#"{"paused": true}"#));
        let all = expected(start, end, Filter::default());
        let one = expected(start, end, Filter::new(&[3], &[]));
        let mut others = Vec::new();
        let timeout = Duration::from_secs(10);
        let got = ws_events(&mut deflate_all, all.len(), timeout, &mut others);
        assert_eq!(got.len(), all.len(), "{others:?}");
        assert!(got == all, "every event, in order, byte for byte");
        assert!(ws_events(&mut deflate_one, one.len(), timeout, &mut others) == one);
        assert!(ws_events(&mut plain, one.len(), timeout, &mut others) == one);
        if compresses {
            assert!(deflate_all.compressed > 0);
            assert!(
                deflate_all.wire_bytes * 3 < deflate_all.inflated_bytes,
                "compressed to under a third: {} of {} bytes",
                deflate_all.wire_bytes,
                deflate_all.inflated_bytes
            );
        } else {
            assert_eq!(deflate_all.compressed, 0);
        }
        // Compressed messages from the client, the second using the first's context.
        let e1 = ws_error_for(&mut deflate_one, r#"{"type":"filter","location_id":[99]}"#);
        let e2 = ws_error_for(&mut deflate_one, r#"{"type":"filter","location_id":[98]}"#);
        assert!(e1["message"].as_str().unwrap().contains("location_id 99"));
        assert!(e2["message"].as_str().unwrap().contains("location_id 98"));
    }
}

#[test]
fn snapshot_holds_the_orders_in_flight() {
    let server = paused_server(&[]);
    let at = DAY1 + 12 * 3600 + 30 * 60;
    seek(&server, at);
    let mut c = SseClient::connect(server.addr, "/v1/events?snapshot=1&location_id=1", None);
    let snapshot = loop {
        let m = c.next().unwrap();
        if m.event.as_deref() == Some("snapshot") {
            break m;
        }
    };
    let v: serde_json::Value = serde_json::from_str(&snapshot.data).unwrap();
    let events = v["events"].as_array().unwrap();
    assert!(
        v["orders"].as_u64().unwrap() > 3,
        "lunchtime: orders in flight"
    );
    let (_, ds) = dataset();
    // Every order in it was created before `at` and is not delivered by then.
    for e in events {
        assert_eq!(e["location_id"], 1);
        let order = e["order_id"].as_str().unwrap();
        let (mut created, mut delivered) = (None, None);
        for pos in ds.events.range(at - 6 * 3600, at + 6 * 3600) {
            if ds.events.order_id(pos) == order.as_bytes() {
                match ds.events.event_type(pos).name() {
                    "order_created" => created = Some(ds.events.ts(pos)),
                    "delivered" => delivered = Some(ds.events.ts(pos)),
                    _ => {}
                }
            }
        }
        assert!(created.unwrap() < at && delivered.unwrap() >= at, "{order}");
    }
}

#[test]
fn past_max_clients_a_stream_gets_503() {
    let server = paused_server(&["--max-clients", "2"]);
    let _a = SseClient::connect(server.addr, "/v1/events", None);
    let _b = SseClient::connect(server.addr, "/v1/events", None);
    let c = SseClient::connect(server.addr, "/v1/events", None);
    assert_eq!(c.status, 503);
    // A client that leaves frees its place as soon as the server next writes to it.
    drop(_a);
    server.control(r#"{"speed": 3600, "paused": false}"#);
    std::thread::sleep(Duration::from_millis(800));
    let d = SseClient::connect(server.addr, "/v1/events", None);
    assert_eq!(d.status, 200, "a freed place is taken again");
}

#[test]
fn the_clock_stops_at_the_end_and_says_so() {
    let server = paused_server(&[]);
    let (_, ds) = dataset();
    let mut c = SseClient::connect(
        server.addr,
        "/v1/events?location_id=1&event_type=delivered",
        None,
    );
    server.control(&format!(
        "{{\"seek\": {}, \"speed\": 3600, \"paused\": false}}",
        ds.end() - 600
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    let ended = loop {
        assert!(Instant::now() < deadline, "no end message");
        let m = c.next().unwrap();
        if m.event.as_deref() == Some("clock") && m.data.contains("\"ended\":true") {
            break m;
        }
    };
    let v: serde_json::Value = serde_json::from_str(&ended.data).unwrap();
    assert_eq!(
        (v["paused"].as_bool(), v["reason"].as_str()),
        (Some(true), Some("end"))
    );
}

#[test]
fn shutdown_closes_every_stream_with_a_reason() {
    let mut server = paused_server(&[]);
    let mut sse = SseClient::connect(server.addr, "/v1/events", None);
    let mut ws = ws_connect(&server, "");
    std::thread::sleep(Duration::from_millis(200));
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let mut closed = None;
    while let Some(m) = sse.next() {
        if m.event.as_deref() == Some("close") {
            closed = Some(m.data);
        }
    }
    assert!(closed.expect("a close message").contains("shutting down"));
    let reason = loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(frame)) => break frame.map(|f| f.reason.to_string()),
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(reason.as_deref(), Some("server shutting down"));
}

#[test]
fn with_loop_the_clock_runs_on_into_the_next_loop() {
    let server = paused_server(&["--loop"]);
    let (_, ds) = dataset();
    let mut c = SseClient::connect(server.addr, "/v1/events?event_type=order_created", None);
    let state = server.control(&format!(
        "{{\"seek\": {}, \"speed\": 7200, \"paused\": false}}",
        ds.end() - 1800
    ));
    assert_eq!(state["loop"], true);
    let deadline = Instant::now() + Duration::from_secs(15);
    let looped = loop {
        assert!(Instant::now() < deadline, "no event of loop 1");
        let m = c.next().unwrap();
        if m.id.is_some() && m.data.contains("-L1\"") {
            break m;
        }
        assert!(
            !m.data.contains("\"ended\":true"),
            "a looping clock never ends"
        );
    };
    // Loop 1 replays day 0 three days (the days of orders) later, with its own ids.
    assert!(
        looped.data.contains("\"ts\":\"2024-01-04 "),
        "{}",
        looped.data
    );
    assert!(looped.id.unwrap().contains("-1-"));
}

#[test]
fn a_location_the_dataset_lacks_gets_400_naming_the_ones_it_has() {
    let server = paused_server(&[]);
    for path in ["/v1/events", "/v1/ws"] {
        let (status, text) = server.get(&format!("{path}?location_id=1,9"));
        assert_eq!(status, 400, "{path}: {text}");
        assert!(
            text.contains("location_id 9 is not in this dataset (it has 1, 2, 3, 4)"),
            "{path}: {text}"
        );
    }
    let mut ws = ws_connect(&server, "");
    let error = ws_error_for(&mut ws, r#"{"type":"filter","location_id":[7]}"#);
    assert!(
        error["message"].as_str().unwrap().contains("location_id 7"),
        "{error}"
    );
}

#[test]
fn a_websocket_filter_change_mid_stream_continues_from_the_last_event_sent() {
    let server = paused_server(&[]);
    let ws = ws_connect(&server, "?location_id=1");
    filter_change_continues(&server, ws);
}

#[test]
fn a_filter_change_over_permessage_deflate_continues_from_the_last_event_sent() {
    let server = paused_server(&[]);
    let ws = DeflateWs::connect(&server, "?location_id=1");
    assert!(ws.negotiated);
    filter_change_continues(&server, ws);
}

/// Events for location 1, then a change to location 3 mid-stream (the message sent while
/// the clock runs): up to the acknowledgement the old filter's events, after it the new
/// one's from just after the last event sent, nothing lost or repeated.
fn filter_change_continues(server: &LiveServer, mut ws: impl WsClient) {
    let start = DAY1 + 12 * 3600;
    seek(server, start);
    server.control(r#"{"speed": 3600, "paused": false}"#);
    let mut others = Vec::new();
    let mut before = ws_events(&mut ws, 25, Duration::from_secs(10), &mut others);
    assert!(before.len() >= 25);
    ws.send_text(r#"{"type":"filter","location_id":[3]}"#);
    // Until the acknowledgement: events under the old filter.
    let mut after = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no filter acknowledgement");
        let mut others = Vec::new();
        let got = ws_events(&mut ws, 1, Duration::from_millis(200), &mut others);
        if others.iter().any(|m| m["type"] == "filter") {
            after.extend(got);
            break;
        }
        before.extend(got);
    }
    std::thread::sleep(Duration::from_millis(500));
    let end = sim_end(&server.control(r#"{"paused": true}"#));
    let all = expected(start, end, Filter::default());
    let last = &before.last().unwrap().0;
    let cut = all.iter().position(|(p, _)| p == last).unwrap();
    let loc = |e: &str, l: u8| e.contains(&format!("\"location_id\":{l},"));
    let want_before: Vec<_> = all[..=cut]
        .iter()
        .filter(|(_, e)| loc(e, 1))
        .cloned()
        .collect();
    let want_after: Vec<_> = all[cut + 1..]
        .iter()
        .filter(|(_, e)| loc(e, 3))
        .cloned()
        .collect();
    assert!(
        before == want_before,
        "the old filter's events, in order, up to the change"
    );
    let rest = want_after.len().saturating_sub(after.len());
    after.extend(ws_events(
        &mut ws,
        rest,
        Duration::from_secs(10),
        &mut others,
    ));
    assert!(!want_after.is_empty());
    assert_eq!(
        after.len(),
        want_after.len(),
        "nothing lost or repeated at the change"
    );
    assert!(after == want_after);
}

fn metric(server: &LiveServer, name: &str) -> f64 {
    let (_, text) = server.get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
}

#[test]
fn an_sse_client_that_closes_frees_its_place_within_a_second() {
    let server = paused_server(&[]);
    let client = SseClient::connect(server.addr, "/v1/events", None);
    assert_eq!(client.status, 200);
    // The clock is paused: nothing is written to this stream, so only the close tells.
    frees_its_place_within_a_second(&server, "sse", move || drop(client));
}

#[test]
fn a_websocket_client_that_vanishes_frees_its_place_within_a_second() {
    let server = paused_server(&[]);
    let ws = ws_connect(&server, "");
    // Gone without a close frame: the socket just closes.
    frees_its_place_within_a_second(&server, "websocket", move || drop(ws));
}

/// Waits until the client is counted on `transport`, lets it `leave`, and checks that the
/// server stops counting it within a second.
fn frees_its_place_within_a_second(server: &LiveServer, transport: &str, leave: impl FnOnce()) {
    let gauge = format!("caspers_subscribers{{transport=\"{transport}\"}}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(server, &gauge) < 1.0 {
        assert!(Instant::now() < deadline, "the client never counted");
        std::thread::sleep(Duration::from_millis(20));
    }
    leave();
    let left = Instant::now();
    while metric(server, &gauge) > 0.0 {
        assert!(
            left.elapsed() < Duration::from_secs(1),
            "still counted {:?} after the client left",
            left.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn clients_that_never_read_are_shed_under_the_memory_budget_and_readers_lose_nothing() {
    let server = paused_server(&["--queue-budget-mib", "2"]);
    let start = DAY1;
    seek(&server, start);
    // Small receive buffers, so the server's queues, not the kernel's, fill up.
    let idle: Vec<TcpStream> = (0..6)
        .map(|_| {
            let s = TcpStream::connect(server.addr).unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
            let size: libc::c_int = 4096;
            // SAFETY: setsockopt on a socket this test owns, with a c_int value.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
            (&s).write_all(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    let mut reader = SseClient::connect(server.addr, "/v1/events?location_id=2", None);
    server.control(r#"{"speed": 86400, "paused": false}"#);
    let t = Instant::now();
    let mut got = Vec::new();
    while t.elapsed() < Duration::from_secs(3) {
        got.extend(pairs(&reader.events(100, Duration::from_millis(100))));
    }
    let end = sim_end(&server.control(r#"{"paused": true}"#));
    let want = expected(start, end, Filter::new(&[2], &[]));
    got.extend(pairs(&reader.events(
        want.len().saturating_sub(got.len()),
        Duration::from_secs(10),
    )));
    assert!(
        got == want,
        "the reader got every event ({} of {})",
        got.len(),
        want.len()
    );
    assert!(
        metric(&server, "caspers_clients_shed_total") > 0.0,
        "the idle clients were shed"
    );
    assert!(metric(&server, "caspers_queued_bytes") <= 2.0 * 1024.0 * 1024.0 * 1.5);
    assert_eq!(
        metric(&server, "caspers_queue_budget_bytes"),
        2.0 * 1024.0 * 1024.0
    );
    drop(idle);
}

/// A client that stops reading is closed after `--send-timeout`, counted, and, coming back
/// with its last position, gets exactly the events it missed.
#[test]
fn a_client_that_stops_reading_is_closed_after_the_send_timeout_and_resumes_exactly() {
    let server = paused_server(&["--send-timeout", "2", "--queue-kib", "65536"]);
    let start = DAY1 - 86_400;
    seek(&server, start);
    let mut stalled = SseClient::connect(server.addr, "/v1/events", None);
    assert_eq!(stalled.next().unwrap().event.as_deref(), Some("clock"));
    // A small receive buffer: the server's writes block soon after the client stops.
    let small: libc::c_int = 4096;
    // SAFETY: setsockopt on the client's own socket with a c_int option value.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&stalled.stream),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    server.control(r#"{"speed": 43200, "paused": false}"#);
    let deadline = Instant::now() + Duration::from_secs(12);
    while metric(&server, "caspers_clients_timed_out_total") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the stalled client was never timed out"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let end = sim_end(&server.control(r#"{"paused": true}"#));
    assert_eq!(server.get("/healthz").0, 200);
    // What reached the client before the close, to the end of the stream.
    let mut got = pairs(&stalled.events(usize::MAX, Duration::from_secs(10)));
    let want = expected(start, end, Filter::default());
    assert!(
        !got.is_empty() && got.len() < want.len(),
        "the client was closed mid-stream ({} of {})",
        got.len(),
        want.len()
    );
    let last = got.last().unwrap().0.clone();
    let mut back = SseClient::connect(server.addr, "/v1/events", Some(&last));
    got.extend(pairs(
        &back.events(want.len() - got.len(), Duration::from_secs(10)),
    ));
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "every event once, in order, across the timeout"
    );
}

#[test]
fn a_change_with_a_seek_is_announced_as_a_seek_whatever_comes_with_it() {
    // Clients act on `seek` (the stream goes on from elsewhere; a fresh snapshot follows),
    // so a seek sent with a pause or a speed must not be named by those.
    let server = paused_server(&[]);
    let mut c = SseClient::connect(server.addr, "/v1/events", None);
    let mut reasons = Vec::new();
    for change in [
        format!("{{\"seek\": {}, \"paused\": true}}", DAY1 + 3600),
        format!("{{\"speed\": 7, \"seek\": {}}}", DAY1 + 7200),
        r#"{"speed": 8}"#.to_string(),
    ] {
        server.control(&change);
        let reason = loop {
            let m = c.next().expect("a clock message");
            if m.event.as_deref() == Some("clock") {
                let v: serde_json::Value = serde_json::from_str(&m.data).unwrap();
                if v["reason"] != "connected" {
                    break v["reason"].as_str().unwrap().to_string();
                }
            }
        };
        reasons.push(reason);
    }
    assert_eq!(reasons, ["seek", "seek", "speed"]);
}
