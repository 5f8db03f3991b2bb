//! Replicas sharing one clock through a real `nats-server -js` on 127.0.0.1: a change sent
//! to one shows on the other; a client moved between replicas, or left on one while the
//! other is killed, receives exactly the dataset's events; NATS stopped and restarted
//! while both serve; every event published to JetStream once.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use caspers_replay::dataset::Dataset;
use caspers_replay::events::Filter;
use common::live::{LiveServer, MadeSession, SseClient, TOKEN, expected, pairs, request};
use common::nats::Nats;

const DAY1: i64 = 1_704_067_200 + 86_400;

fn dataset() -> &'static (PathBuf, Dataset) {
    static DS: OnceLock<(PathBuf, Dataset)> = OnceLock::new();
    DS.get_or_init(|| common::generated_dataset("replicas_dataset", 3, 21))
}

fn replica(nats: &Nats, extra: &[&str]) -> LiveServer {
    let url = nats.url();
    let mut args = vec!["--nats", url.as_str(), "--paused", "--start-day", "1"];
    args.extend_from_slice(extra);
    LiveServer::start(&dataset().0, &args)
}

fn clock(server: &LiveServer) -> serde_json::Value {
    serde_json::from_str(&server.get("/v1/clock").1).unwrap()
}

/// Waits (up to 3 s) until `server`'s clock satisfies `ok`.
fn clock_becomes(server: &LiveServer, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let c = clock(server);
        if ok(&c) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {c}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two replicas on `nats` (with `extra` options), their shared clock sought to `from`
/// (paused) by the first and seen there by the second.
fn two_replicas_at(nats: &Nats, extra: &[&str], from: i64) -> (LiveServer, LiveServer) {
    let a = replica(nats, extra);
    let b = replica(nats, extra);
    a.control(&format!("{{\"seek\": {from}, \"paused\": true}}"));
    clock_becomes(&b, "B follows A's seek", |c| c["sim_time"] == from as f64);
    (a, b)
}

fn sim_end(state: &serde_json::Value) -> i64 {
    state["sim_time"].as_f64().unwrap().floor() as i64 + 1
}

fn post_clock(server: &LiveServer, body: &str) -> (u16, String) {
    let auth = format!("Bearer {TOKEN}");
    request(
        server.addr,
        "POST",
        "/v1/clock",
        &[("Authorization", &auth)],
        body,
    )
}

#[test]
fn a_change_on_one_replica_shows_on_the_other_and_a_client_moves_between_them() {
    let nats = Nats::start("move");
    let from = DAY1 + 12 * 3600;
    let (mut a, b) = two_replicas_at(&nats, &[], from);

    let mut on_a = SseClient::connect(a.addr, "/v1/events?location_id=1", None);
    let mut stays_on_b = SseClient::connect(b.addr, "/v1/events", None);
    a.control(r#"{"speed": 3600, "paused": false}"#);
    clock_becomes(&b, "B follows A's speed", |c| {
        c["speed"] == 3600.0 && c["paused"] == false
    });
    let mut got = pairs(&on_a.events(40, Duration::from_secs(10)));
    assert_eq!(got.len(), 40);
    drop(on_a);
    // To replica B with the last position, as a load balancer would send it.
    let last = got.last().unwrap().0.clone();
    let mut on_b = SseClient::connect(b.addr, "/v1/events?location_id=1", Some(&last));
    std::thread::sleep(Duration::from_millis(600));
    let paused = b.control(r#"{"paused": true}"#);
    let end = sim_end(&paused);
    clock_becomes(&a, "A follows B's pause", |c| c["paused"] == true);
    assert_eq!(sim_end(&clock(&a)), end, "both stopped at the same instant");

    let ds = &dataset().1;
    let want = expected(ds, from, end, Filter::new(&[1], &[]));
    got.extend(pairs(
        &on_b.events(want.len() - got.len(), Duration::from_secs(10)),
    ));
    assert!(want.len() > 60, "the window holds events");
    assert!(
        got == want,
        "moved mid-stream: no gap, no duplicate ({} of {})",
        got.len(),
        want.len()
    );

    // Replica A dies: B's clients go on undisturbed.
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    b.control(r#"{"paused": false}"#);
    std::thread::sleep(Duration::from_millis(500));
    let end = sim_end(&b.control(r#"{"paused": true}"#));
    let want = expected(ds, from, end, Filter::default());
    let got = pairs(&stays_on_b.events(want.len(), Duration::from_secs(10)));
    assert!(
        got == want,
        "B's client: every event once ({} of {})",
        got.len(),
        want.len()
    );
}

#[test]
fn with_nats_down_streams_go_on_changes_are_refused_then_work_again() {
    let mut nats = Nats::start("outage");
    let from = DAY1 + 17 * 3600;
    let (a, b) = two_replicas_at(&nats, &[], from);
    let mut on_a = SseClient::connect(a.addr, "/v1/events?location_id=2,3", None);
    let mut on_b = SseClient::connect(b.addr, "/v1/events?location_id=4", None);
    a.control(r#"{"speed": 1800, "paused": false}"#);
    clock_becomes(&b, "B runs", |c| c["paused"] == false);

    nats.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.get("/healthz").1.contains("unreachable") {
        assert!(Instant::now() < deadline, "B never noticed NATS was gone");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, text) = post_clock(&a, r#"{"speed": 60}"#);
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("NATS"), "{text}");
    assert!(b.get("/metrics").1.contains("caspers_nats_connected 0"));
    // The streams go on meanwhile.
    let mut got_a = pairs(&on_a.events(20, Duration::from_secs(10)));
    let mut got_b = pairs(&on_b.events(20, Duration::from_secs(10)));
    assert_eq!(
        (got_a.len(), got_b.len()),
        (20, 20),
        "streaming without NATS"
    );

    nats.restart();
    for server in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !server.get("/healthz").1.contains("nats: connected") {
            assert!(Instant::now() < deadline, "never reconnected to NATS");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let paused = loop {
        let (status, text) = post_clock(&a, r#"{"paused": true}"#);
        if status == 200 {
            break serde_json::from_str::<serde_json::Value>(&text).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "changes never worked again: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let end = sim_end(&paused);
    clock_becomes(&b, "B follows the pause after the outage", |c| {
        c["paused"] == true
    });
    let ds = &dataset().1;
    let want_a = expected(ds, from, end, Filter::new(&[2, 3], &[]));
    let want_b = expected(ds, from, end, Filter::new(&[4], &[]));
    got_a.extend(pairs(
        &on_a.events(want_a.len() - got_a.len(), Duration::from_secs(10)),
    ));
    got_b.extend(pairs(
        &on_b.events(want_b.len() - got_b.len(), Duration::from_secs(10)),
    ));
    assert!(
        got_a == want_a,
        "A's client: {} of {}",
        got_a.len(),
        want_a.len()
    );
    assert!(
        got_b == want_b,
        "B's client: {} of {}",
        got_b.len(),
        want_b.len()
    );
}

#[test]
fn publish_nats_puts_every_event_of_a_window_in_jetstream_once_per_subject() {
    let nats = Nats::start("publish");
    let from = DAY1 + 19 * 3600;
    // Both publish the same events: JetStream keeps one copy by Nats-Msg-Id.
    let (a, _b) = two_replicas_at(&nats, &["--publish-nats", "caspers.test"], from);
    a.control(r#"{"speed": 3600, "paused": false}"#);
    std::thread::sleep(Duration::from_millis(800));
    let end = sim_end(&a.control(r#"{"paused": true}"#));
    let ds = &dataset().1;
    let want = expected(ds, from, end, Filter::default());
    assert!(want.len() > 50);

    let url = nats.url();
    let stored = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let client = async_nats::connect(url).await.unwrap();
            let js = async_nats::jetstream::new(client);
            let mut stream = js.get_stream("CASPERS_CASPERS_TEST").await.unwrap();
            // Publishing is asynchronous: wait until the count stops growing.
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let n = stream.info().await.unwrap().state.last_sequence;
                if n == last && n > 0 {
                    break;
                }
                last = n;
            }
            let mut out = Vec::new();
            for seq in 1..=last {
                if let Ok(m) = stream.get_raw_message(seq).await {
                    out.push((
                        m.subject.to_string(),
                        String::from_utf8(m.payload.to_vec()).unwrap(),
                    ));
                }
            }
            out
        });
    let (from_ts, end_ts) = (
        caspers_replay::time::format_ts(from),
        caspers_replay::time::format_ts(end),
    );
    let in_window: Vec<&(String, String)> = stored
        .iter()
        .filter(|(_, json)| {
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            let ts = v["ts"].as_str().unwrap();
            ts >= from_ts.as_str() && ts < end_ts.as_str()
        })
        .collect();
    let got: Vec<&str> = in_window.iter().map(|(_, j)| j.as_str()).collect();
    let want_json: Vec<&str> = want.iter().map(|(_, j)| j.as_str()).collect();
    assert_eq!(got.len(), want_json.len(), "each event once");
    assert!(got == want_json, "in order, byte for byte");
    for (subject, json) in in_window {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(
            *subject,
            format!(
                "caspers.test.{}.{}",
                v["location_id"],
                v["event_type"].as_str().unwrap()
            )
        );
    }
}

/// A replica that joins the shared clock with other options says which it ignores and why,
/// and the shared clock runs on as it was.
#[test]
fn a_joining_replica_with_other_options_says_what_it_ignores() {
    let nats = Nats::start("join_options");
    let a = replica(&nats, &["--speed", "60"]);
    let url = nats.url();
    let b = LiveServer::start(
        &dataset().0,
        &[
            "--nats",
            &url,
            "--paused",
            "--speed",
            "600",
            "--start-day",
            "2",
        ],
    );
    assert!(
        b.start_line
            .contains("--start-day 2, --speed 600 ignored: the replicas share one clock"),
        "{}",
        b.start_line
    );
    assert_eq!(clock(&b)["speed"], 60.0);
    assert_eq!(clock(&a)["day"], clock(&b)["day"]);
}

/// NATS with authentication, the replicas' user scoped to the clock's bucket by
/// docs/examples/nats-replicas.conf: a replica with the right password shares the clock,
/// one with a wrong password or none stops at start saying why, and no answer, line or
/// log shows the password.
#[test]
fn nats_with_a_password_scoped_to_the_clock() {
    const PASSWORD: &str = "pw-for-the-replicas";
    let dir = common::scratch_dir("nats_auth_conf");
    let conf = dir.join("nats.conf");
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/nats-replicas.conf"),
    )
    .unwrap();
    assert!(text.contains("CHANGE-ME"));
    std::fs::write(&conf, text.replace("CHANGE-ME", PASSWORD)).unwrap();
    let mut nats = Nats::start_with("auth", &["-c", conf.to_str().unwrap()]);
    let base = format!("127.0.0.1:{}", nats.port);
    let url = format!("nats://caspers:{PASSWORD}@{base}");
    let a = replica_at(&url);
    // The second replica takes the URL from the environment.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_caspers-replay"));
    cmd.arg("serve")
        .arg("--dataset")
        .arg(&dataset().0)
        .args([
            "--bind",
            "127.0.0.1:0",
            "--control-token",
            TOKEN,
            "--start-day",
            "1",
        ])
        .env("CASPERS_NATS", &url);
    let b = LiveServer::spawn(cmd);
    for server in [&a, &b] {
        assert!(
            !server.start_line.contains(PASSWORD),
            "{}",
            server.start_line
        );
        let (_, health) = server.get("/healthz");
        assert!(health.contains("nats: connected"), "{health}");
    }
    a.control(r#"{"speed": 600, "seek": 1704160800, "paused": true}"#);
    clock_becomes(&b, "B follows A's change", |c| c["speed"] == 600.0);

    let refused = |url: &str, says: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_caspers-replay"))
            .arg("serve")
            .arg("--dataset")
            .arg(&dataset().0)
            .args(["--bind", "127.0.0.1:0", "--nats", url])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{url}: {stderr}");
        assert!(stderr.contains(says), "{url}: {stderr}");
        assert!(!stderr.contains("wrong-password"), "{stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("wrong-password"));
    };
    refused(
        &format!("nats://caspers:wrong-password@{base}"),
        "authorization violation; check the credentials",
    );
    refused(&format!("nats://{base}"), "it needs authentication");

    // With NATS away, /healthz names the server without the password.
    nats.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, health) = a.get("/healthz");
        if health.contains("unreachable") {
            assert!(!health.contains(PASSWORD), "{health}");
            assert!(health.contains(&base), "{health}");
            break;
        }
        assert!(Instant::now() < deadline, "{health}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A NATS token in the URL (`nats://TOKEN@host`) authenticates, and is never shown.
#[test]
fn nats_with_a_token() {
    const SECRET: &str = "token-for-the-replicas";
    let nats = Nats::start_with("token", &["--auth", SECRET]);
    let url = format!("nats://{SECRET}@127.0.0.1:{}", nats.port);
    let server = replica_at(&url);
    assert!(!server.start_line.contains(SECRET), "{}", server.start_line);
    let (_, health) = server.get("/healthz");
    assert!(health.contains("nats: connected"), "{health}");
    server.control(r#"{"speed": 120}"#);
    clock_becomes(&server, "the change went through NATS", |c| {
        c["speed"] == 120.0
    });
}

fn replica_at(url: &str) -> LiveServer {
    LiveServer::start(
        &dataset().0,
        &["--nats", url, "--paused", "--start-day", "1"],
    )
}

#[test]
fn a_session_made_on_one_replica_streams_from_the_other_and_a_client_moves_between_them() {
    let nats = Nats::start("sessions");
    let a = replica(&nats, &[]);
    let b = replica(&nats, &[]);
    let at = DAY1 + 18 * 3600;
    let made = MadeSession::paused_at(&a, at);
    let (session, owner) = (made.path.clone(), made.owner.clone());
    // The other replica learns of it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.get(&session).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "replica B never served the session"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let step = |server: &LiveServer| made.step(server, 600);
    let path = format!("{session}/events?location_id=2");
    let mut on_b = SseClient::connect(b.addr, &path, None);
    // Stepped on A, streamed from B: exactly the window.
    step(&a);
    let want = expected(&dataset().1, at + 1, at + 601, Filter::new(&[2], &[]));
    assert!(want.len() > 5, "a busy window: {}", want.len());
    let mut got = pairs(&on_b.events(want.len(), Duration::from_secs(10)));
    assert!(got == want, "B's client: the window A's step made");
    // The client moves to A from its last event; the session is stepped on B, with the
    // same token (its owner is in NATS too).
    drop(on_b);
    let mut on_a = SseClient::connect(a.addr, &path, Some(&got.last().unwrap().0));
    step(&b);
    let want = expected(&dataset().1, at + 1, at + 1201, Filter::new(&[2], &[]));
    got.extend(pairs(
        &on_a.events(want.len() - got.len(), Duration::from_secs(10)),
    ));
    assert_eq!(got.len(), want.len());
    assert!(got == want, "every event once across the move");
    // Ended on B: A closes its stream with the reason and answers 410.
    let (status, _) = request(b.addr, "DELETE", &session, &[("Authorization", &owner)], "");
    assert_eq!(status, 204);
    let mut closed = None;
    while let Some(m) = on_a.next() {
        if m.event.as_deref() == Some("close") {
            closed = Some(m.data);
        }
    }
    assert!(
        closed
            .as_deref()
            .is_some_and(|c| c.contains("session ended")),
        "{closed:?}"
    );
    assert_eq!(a.get(&session).0, 410);
}

#[test]
fn replicas_say_the_same_emission_count_and_runs() {
    let nats = Nats::start("emitted");
    let from = DAY1 + 12 * 3600;
    let (a, b) = two_replicas_at(&nats, &[], from);
    a.control(r#"{"speed": 3600, "paused": false}"#);
    std::thread::sleep(Duration::from_millis(500));
    a.control(&format!("{{\"seek\": {}}}", from - 3600));
    std::thread::sleep(Duration::from_millis(500));
    let paused = a.control(r#"{"paused": true}"#);
    clock_becomes(&b, "B pauses with A", |c| {
        c["sim_time"] == paused["sim_time"]
    });
    let emitted = |s: &LiveServer| -> serde_json::Value {
        let mut e: serde_json::Value = serde_json::from_str(&s.get("/v1/emitted").1).unwrap();
        e.as_object_mut().unwrap().remove("clock");
        e
    };
    // Each replica emits what its clock passed; once paused they have passed the same.
    let deadline = Instant::now() + Duration::from_secs(3);
    while emitted(&a) != emitted(&b) {
        assert!(
            Instant::now() < deadline,
            "{} vs {}",
            emitted(&a),
            emitted(&b)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let e = emitted(&a);
    assert!(e["emitted"].as_i64().unwrap() > 3600, "{e}");
    assert!(
        e["runs"].as_array().unwrap().len() >= 2,
        "the seek began a run: {e}"
    );
}
