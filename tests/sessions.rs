//! Replay sessions through a real server over real sockets on 127.0.0.1: each session's
//! streams follow its own clock and no other, `step` emits exactly the window asked for,
//! sessions end on DELETE and when idle, and bad requests get answers that say what is
//! wrong without disturbing anybody's stream.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use caspers_replay::dataset::Dataset;
use caspers_replay::events::Filter;
use common::live::{LiveServer, SseClient, TOKEN, pairs, request, ws_connect_to, ws_events};

/// A 3-day generated dataset, shared by the tests of this binary.
fn dataset() -> &'static (PathBuf, Dataset) {
    static DS: OnceLock<(PathBuf, Dataset)> = OnceLock::new();
    DS.get_or_init(|| common::generated_dataset("sessions_dataset", 3, 11))
}

fn expected(a: i64, b: i64, filter: Filter) -> Vec<(String, String)> {
    common::live::expected(&dataset().1, a, b, filter)
}

const DAY1: i64 = 1_704_067_200 + 86_400;

fn server(extra: &[&str]) -> LiveServer {
    let mut args = vec!["--paused", "--start-day", "1"];
    args.extend_from_slice(extra);
    LiveServer::start(&dataset().0, &args)
}

/// A session made by POST /v1/sessions.
struct Session {
    id: String,
    token: String,
}

fn create(server: &LiveServer, body: &str) -> Session {
    let (status, text) = request(server.addr, "POST", "/v1/sessions", &[], body);
    assert_eq!(status, 201, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let id = json["id"].as_str().unwrap().to_string();
    assert_eq!(json["urls"]["events"], format!("/v1/sessions/{id}/events"));
    Session {
        id,
        token: json["token"].as_str().unwrap().to_string(),
    }
}

/// POST to a session's clock with its token: (status, JSON answer).
fn change(server: &LiveServer, s: &Session, body: &str) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {}", s.token);
    let (status, text) = request(
        server.addr,
        "POST",
        &format!("/v1/sessions/{}/clock", s.id),
        &[("Authorization", &auth)],
        body,
    );
    (status, serde_json::from_str(&text).unwrap())
}

fn changed(server: &LiveServer, s: &Session, body: &str) -> serde_json::Value {
    let (status, state) = change(server, s, body);
    assert_eq!(status, 200, "{state}");
    state
}

fn sim_end(state: &serde_json::Value) -> i64 {
    state["sim_time"].as_f64().unwrap().floor() as i64 + 1
}

/// Reads events until `want` came, then whatever else arrives within a moment; returns the
/// events and the reasons of the clock messages seen.
fn read(client: &mut SseClient, want: usize) -> (Vec<(String, String)>, Vec<String>) {
    let mut events = Vec::new();
    let mut reasons = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    client
        .stream
        .set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    loop {
        let done = events.len() >= want;
        if !done && Instant::now() > deadline {
            break;
        }
        match client.next() {
            Some(m) if m.id.is_some() => events.push(m),
            Some(m) if m.event.as_deref() == Some("clock") => {
                let json: serde_json::Value = serde_json::from_str(&m.data).unwrap();
                reasons.push(json["reason"].as_str().unwrap().to_string());
            }
            Some(_) => {}
            None if done => break,
            None => {}
        }
    }
    (pairs(&events), reasons)
}

#[test]
fn two_sessions_and_the_shared_clock_each_stream_their_own_clock() {
    let server = server(&[]);
    let shared_at = DAY1 + 11 * 3600 + 40 * 60;
    server.control(&format!("{{\"seek\": {shared_at}, \"paused\": true}}"));
    let a_at = DAY1 + 12 * 3600;
    let b_at = DAY1 + 18 * 3600 + 30 * 60;
    let a = create(
        &server,
        &format!(
            "{{\"start\": \"{}\", \"paused\": true, \"speed\": 3600}}",
            caspers_replay::time::format_rfc3339(a_at)
        ),
    );
    let b = create(
        &server,
        &format!(
            "{{\"start\": \"{}\", \"paused\": true, \"speed\": 900}}",
            caspers_replay::time::format_rfc3339(b_at)
        ),
    );
    let mut on_a = SseClient::connect(
        server.addr,
        &format!("/v1/sessions/{}/events?location_id=2", a.id),
        None,
    );
    let mut on_b = SseClient::connect(server.addr, &format!("/v1/sessions/{}/events", b.id), None);
    let mut ws_b = ws_connect_to(
        &server,
        &format!("/v1/sessions/{}/ws?location_id=1,3", b.id),
    );
    let mut on_shared = SseClient::connect(server.addr, "/v1/events", None);
    assert_eq!(
        (on_a.status, on_b.status, on_shared.status),
        (200, 200, 200)
    );

    // Three clocks at three speeds, changed at different moments.
    changed(&server, &a, r#"{"paused": false}"#);
    std::thread::sleep(Duration::from_millis(300));
    server.control(r#"{"speed": 1800, "paused": false}"#);
    changed(&server, &b, r#"{"paused": false}"#);
    std::thread::sleep(Duration::from_millis(700));
    let a_end = sim_end(&changed(&server, &a, r#"{"paused": true}"#));
    std::thread::sleep(Duration::from_millis(300));
    let shared_end = sim_end(&server.control(r#"{"paused": true}"#));
    let b_end = sim_end(&changed(&server, &b, r#"{"paused": true}"#));

    let want_a = expected(a_at, a_end, Filter::new(&[2], &[]));
    let want_b = expected(b_at, b_end, Filter::default());
    let want_b13 = expected(b_at, b_end, Filter::new(&[1, 3], &[]));
    let want_shared = expected(shared_at, shared_end, Filter::default());
    let sizes = (want_a.len(), want_b.len(), want_shared.len());
    assert!(sizes.0 > 20 && sizes.1 > 20 && sizes.2 > 20, "{sizes:?}");
    let (got_a, reasons_a) = read(&mut on_a, want_a.len());
    let (got_b, reasons_b) = read(&mut on_b, want_b.len());
    let (got_shared, reasons_shared) = read(&mut on_shared, want_shared.len());
    let mut others = Vec::new();
    let got_b13 = ws_events(
        &mut ws_b,
        want_b13.len(),
        Duration::from_secs(10),
        &mut others,
    );
    assert!(got_a == want_a, "session A: its window, every event once");
    assert!(got_b == want_b, "session B: its window");
    assert!(got_b13 == want_b13, "session B over WebSocket");
    assert!(got_shared == want_shared, "the shared clock: its window");
    // Each stream heard of its own clock's changes only.
    assert_eq!(reasons_a, ["connected", "resume", "pause"]);
    assert_eq!(reasons_b, ["connected", "resume", "pause"]);
    assert_eq!(reasons_shared, ["connected", "resume", "pause"]);
}

#[test]
fn step_emits_exactly_the_window_asked_for_on_a_session_and_on_the_shared_clock() {
    let server = server(&[]);
    let at = DAY1 + 18 * 3600;
    let s = create(
        &server,
        &format!(
            "{{\"start\": \"{}\", \"paused\": true}}",
            caspers_replay::time::format_rfc3339(at)
        ),
    );
    server.control(&format!("{{\"seek\": {at}, \"paused\": true}}"));
    let mut on_session = SseClient::connect(
        server.addr,
        &format!("/v1/sessions/{}/events?location_id=1", s.id),
        None,
    );
    let mut on_shared = SseClient::connect(server.addr, "/v1/events?location_id=1", None);
    // Two steps of five simulated minutes each, on both clocks.
    for _ in 0..2 {
        let state = changed(&server, &s, r#"{"step": 300}"#);
        assert_eq!(state["paused"], true, "a step leaves the clock paused");
        server.control(r#"{"step": 300}"#);
    }
    let state = changed(&server, &s, r#"{"speed": 60}"#);
    assert_eq!(state["sim_time"].as_f64().unwrap(), (at + 600) as f64);
    // Paused at `at`: the second `at` was emitted; the steps emit (at, at + 600].
    let want = expected(at + 1, at + 601, Filter::new(&[1], &[]));
    assert!(want.len() > 5, "the window holds events ({})", want.len());
    let (got, reasons) = read(&mut on_session, want.len());
    assert!(got == want, "the session: exactly the steps' window");
    assert_eq!(reasons, ["connected", "step", "step", "speed"]);
    let (got, reasons) = read(&mut on_shared, want.len());
    assert!(got == want, "the shared clock: exactly the steps' window");
    assert_eq!(reasons, ["connected", "step", "step"]);
    // And nothing after it.
    std::thread::sleep(Duration::from_millis(500));
    assert!(read(&mut on_session, 0).0.is_empty());

    // A running clock is not stepped.
    changed(&server, &s, r#"{"paused": false}"#);
    let (status, answer) = change(&server, &s, r#"{"step": 60}"#);
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("pause it first"));
    for bad in [r#"{"step": 0}"#, r#"{"step": -5}"#, r#"{"step": 1e9}"#] {
        changed(&server, &s, r#"{"paused": true}"#);
        let (status, answer) = change(&server, &s, bad);
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains("step must be"));
    }
}

#[test]
fn bad_requests_get_answers_that_say_what_and_disturb_no_stream() {
    let server = server(&["--max-sessions", "2"]);
    let at = DAY1 + 12 * 3600;
    let a = create(
        &server,
        &format!(
            "{{\"start\": \"{}\", \"paused\": true}}",
            caspers_replay::time::format_rfc3339(at)
        ),
    );
    let mut on_a = SseClient::connect(
        server.addr,
        &format!("/v1/sessions/{}/events?location_id=4", a.id),
        None,
    );
    let error = |status: u16, text: &str, says: &str| {
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        let e = json["error"].as_str().unwrap_or_default();
        assert!(e.contains(says), "{status}: {e} does not say {says:?}");
        json
    };
    // Bodies: an unknown field, a bad value, a start outside the dataset, not JSON.
    for (body, says) in [
        (r#"{"warp": 9}"#, "unknown field `warp`"),
        (r#"{"speed": -1}"#, "speed must be"),
        (r#"{"start": 40}"#, "not a day of the dataset"),
        (
            r#"{"start": "2030-01-01T00:00:00Z"}"#,
            "outside the dataset",
        ),
        (r#"{"start": "yesterday"}"#, "not a time"),
        (r#"{"paused": null}"#, "paused is null"),
        ("{", "expected JSON like"),
    ] {
        let (status, text) = request(server.addr, "POST", "/v1/sessions", &[], body);
        assert_eq!(status, 400, "{body}: {text}");
        error(status, &text, says);
    }
    // Past --max-sessions.
    let b = create(&server, "");
    let (status, text) = request(server.addr, "POST", "/v1/sessions", &[], "");
    assert_eq!(status, 429);
    let json = error(status, &text, "--max-sessions");
    assert_eq!(json["limit"], "max-sessions");
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("already has 2 sessions")
    );
    // Another session's token, none, or the presenter's: refused.
    let path = format!("/v1/sessions/{}/clock", a.id);
    let other = format!("Bearer {}", b.token);
    let presenter = format!("Bearer {TOKEN}");
    for (headers, code) in [
        (vec![("Authorization", other.as_str())], 403),
        (vec![], 401),
        (vec![("Authorization", presenter.as_str())], 403),
    ] {
        let (status, text) = request(server.addr, "POST", &path, &headers, r#"{"step": 60}"#);
        assert_eq!(status, code, "{text}");
    }
    let (status, text) = request(
        server.addr,
        "DELETE",
        &format!("/v1/sessions/{}", a.id),
        &[("Authorization", &other)],
        "",
    );
    assert_eq!(status, 403, "{text}");
    // An id that never was, and one that ended.
    let (status, text) = server.get("/v1/sessions/0123456789abcdef/events");
    assert_eq!(status, 404);
    error(status, &text, "no session 0123456789abcdef");
    let (status, _) = request(
        server.addr,
        "DELETE",
        &format!("/v1/sessions/{}", b.id),
        &[("Authorization", &format!("Bearer {}", b.token))],
        "",
    );
    assert_eq!(status, 204);
    for path in ["", "/clock", "/events"] {
        let (status, text) = server.get(&format!("/v1/sessions/{}{path}", b.id));
        assert_eq!(status, 410, "{path}: {text}");
        error(status, &text, "deleted by its owner");
    }
    // Session A's stream went on untouched: a step still gives exactly its window.
    changed(&server, &a, r#"{"step": 900}"#);
    let want = expected(at + 1, at + 901, Filter::new(&[4], &[]));
    assert!(!want.is_empty());
    let (got, reasons) = read(&mut on_a, want.len());
    assert!(got == want);
    assert_eq!(reasons, ["connected", "step"]);
    let (_, metrics) = server.get("/metrics");
    for line in [
        "caspers_sessions 1",
        "caspers_sessions_created_total 2",
        "caspers_sessions_ended_total{reason=\"deleted\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
}

#[test]
fn deleting_a_session_closes_its_streams_with_a_reason() {
    let server = server(&[]);
    let s = create(&server, r#"{"paused": true}"#);
    let mut sse = SseClient::connect(server.addr, &format!("/v1/sessions/{}/events", s.id), None);
    let mut ws = ws_connect_to(&server, &format!("/v1/sessions/{}/ws", s.id));
    let mut shared = SseClient::connect(server.addr, "/v1/events", None);
    let (status, _) = request(
        server.addr,
        "DELETE",
        &format!("/v1/sessions/{}", s.id),
        &[("Authorization", &format!("Bearer {}", s.token))],
        "",
    );
    assert_eq!(status, 204);
    let mut closed = None;
    while let Some(m) = sse.next() {
        if m.event.as_deref() == Some("close") {
            closed = Some(m.data);
        }
    }
    let closed = closed.expect("a close message, then the end of the stream");
    assert!(
        closed.contains("session ended: deleted by its owner"),
        "{closed}"
    );
    let reason = loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(Some(frame))) => break frame.reason.to_string(),
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert!(reason.contains("session ended"), "{reason}");
    // The shared clock's stream is still there.
    server.control(&format!(
        "{{\"seek\": {}, \"paused\": true}}",
        DAY1 + 9 * 3600
    ));
    let (_, reasons) = read(&mut shared, 0);
    assert_eq!(reasons, ["connected", "seek"]);
}

#[test]
fn a_session_nobody_watches_or_asks_about_ends_when_idle() {
    // 0.02 minutes: 1.2 s.
    let server = server(&["--session-idle-minutes", "0.02"]);
    let idle = create(&server, "");
    let watched = create(&server, "");
    let _client = SseClient::connect(
        server.addr,
        &format!("/v1/sessions/{}/events", watched.id),
        None,
    );
    std::thread::sleep(Duration::from_millis(3000));
    let (status, text) = server.get(&format!("/v1/sessions/{}", idle.id));
    assert_eq!(status, 410, "{text}");
    assert!(text.contains("idle"), "{text}");
    let (status, text) = server.get(&format!("/v1/sessions/{}", watched.id));
    assert_eq!(status, 200, "a session with a subscriber stays: {text}");
    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == "caspers_sessions_ended_total{reason=\"idle\"} 1"),
        "{metrics}"
    );
}

#[test]
fn with_a_session_token_only_its_holders_create_sessions() {
    let server = server(&["--session-token", "let-me-in"]);
    let (status, text) = request(server.addr, "POST", "/v1/sessions", &[], "");
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("--session-token"), "{text}");
    let (status, _) = request(
        server.addr,
        "POST",
        "/v1/sessions",
        &[("Authorization", "Bearer nope")],
        "",
    );
    assert_eq!(status, 403);
    let (status, text) = request(
        server.addr,
        "POST",
        "/v1/sessions",
        &[("Authorization", "Bearer let-me-in")],
        "",
    );
    assert_eq!(status, 201, "{text}");
}

#[test]
fn after_kill_9_every_session_continues_and_resuming_clients_lose_and_repeat_nothing() {
    let state = common::scratch_dir("sessions_kill9").join("clock.json");
    let state = state.to_str().unwrap().to_string();
    let args = ["--paused", "--start-day", "1", "--state", state.as_str()];
    let mut server = LiveServer::start(&dataset().0, &args);
    let a_at = DAY1 + 12 * 3600;
    let b_at = DAY1 + 18 * 3600;
    let at = |t: i64| caspers_replay::time::format_rfc3339(t);
    let a = create(
        &server,
        &format!("{{\"start\": \"{}\", \"paused\": true}}", at(a_at)),
    );
    let b = create(
        &server,
        &format!(
            "{{\"start\": \"{}\", \"paused\": true, \"speed\": 1200}}",
            at(b_at)
        ),
    );
    let mut on_a = SseClient::connect(
        server.addr,
        &format!("/v1/sessions/{}/events?location_id=1", a.id),
        None,
    );
    let mut on_b = SseClient::connect(server.addr, &format!("/v1/sessions/{}/events", b.id), None);
    changed(&server, &a, r#"{"step": 600}"#);
    changed(&server, &b, r#"{"paused": false}"#);
    let (mut got_a, _) = read(&mut on_a, 1);
    let mut got_b = pairs(&on_b.events(20, Duration::from_secs(10)));
    assert!(!got_a.is_empty() && got_b.len() == 20);
    // Killed mid-run: B was running, A paused after a step.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop((on_a, on_b));
    std::thread::sleep(Duration::from_millis(300));
    let server = LiveServer::start(&dataset().0, &args);
    // The same tokens work on the sessions the restarted server brought back.
    let state_a = changed(&server, &a, r#"{"step": 600}"#);
    assert_eq!(state_a["sim_time"].as_f64().unwrap(), (a_at + 1200) as f64);
    let mut on_a = SseClient::connect(
        server.addr,
        &format!("/v1/sessions/{}/events?location_id=1", a.id),
        Some(&got_a.last().unwrap().0),
    );
    let mut on_b = SseClient::connect(
        server.addr,
        &format!("/v1/sessions/{}/events", b.id),
        Some(&got_b.last().unwrap().0),
    );
    std::thread::sleep(Duration::from_millis(500));
    let b_end = sim_end(&changed(&server, &b, r#"{"paused": true}"#));
    let want_a = expected(a_at + 1, a_at + 1201, Filter::new(&[1], &[]));
    let want_b = expected(b_at, b_end, Filter::default());
    got_a.extend(read(&mut on_a, want_a.len() - got_a.len()).0);
    got_b.extend(read(&mut on_b, want_b.len() - got_b.len()).0);
    assert_eq!(got_a.len(), want_a.len());
    assert!(
        got_a == want_a,
        "session A: every event once, across the kill"
    );
    assert_eq!(got_b.len(), want_b.len());
    assert!(
        got_b == want_b,
        "session B: every event once, across the kill"
    );
}
