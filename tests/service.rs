//! The live feed as a service, one process: its clock survives `kill -9` (state file), and
//! clients that resume across the crash receive exactly the dataset's events; a state file
//! that is damaged or from another dataset is refused and left alone.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use caspers_replay::dataset::Dataset;
use caspers_replay::events::Filter;
use common::live::{LiveServer, SseClient, expected, pairs, ws_connect, ws_events};

const DAY1: i64 = 1_704_067_200 + 86_400;

fn dataset() -> &'static (PathBuf, Dataset) {
    static DS: OnceLock<(PathBuf, Dataset)> = OnceLock::new();
    DS.get_or_init(|| common::generated_dataset("service_dataset", 3, 11))
}

fn start(state: &Path, extra: &[&str]) -> LiveServer {
    let mut args = vec!["--state", state.to_str().unwrap(), "--start-day", "1"];
    args.extend_from_slice(extra);
    LiveServer::start(&dataset().0, &args)
}

fn sim(state: &serde_json::Value) -> f64 {
    state["sim_time"].as_f64().unwrap()
}

fn kill_9(server: &mut LiveServer) {
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[test]
fn after_kill_9_the_clock_continues_and_resuming_clients_lose_and_repeat_nothing() {
    let dir = common::scratch_dir("service_restart");
    let state = dir.join("clock.json");
    let mut a = start(&state, &["--fresh", "--paused"]);
    let from = DAY1 + 11 * 3600;
    a.control(&format!("{{\"seek\": {from}, \"paused\": true}}"));
    let mut sse = SseClient::connect(a.addr, "/v1/events?location_id=1,2", None);
    let mut ws = ws_connect(&a, "?location_id=3,4");
    a.control(r#"{"speed": 3600, "paused": false}"#);
    let mut others = Vec::new();
    let mut got_sse = pairs(&sse.events(30, Duration::from_secs(10)));
    let mut got_ws = ws_events(&mut ws, 30, Duration::from_secs(10), &mut others);
    assert!(got_sse.len() >= 30 && got_ws.len() >= 30);

    // Where the clock stands at the kill: measured just before it.
    let (status, text) = a.get("/v1/clock");
    assert_eq!(status, 200);
    let before = serde_json::from_str::<serde_json::Value>(&text).unwrap();
    let asked = Instant::now();
    kill_9(&mut a);
    let at_kill = sim(&before) + asked.elapsed().as_secs_f64() * 3600.0;
    // What reached the clients before the crash counts: read to the end of each stream.
    got_sse.extend(pairs(&sse.events(usize::MAX, Duration::from_secs(3))));
    got_ws.extend(ws_events(
        &mut ws,
        usize::MAX,
        Duration::from_secs(3),
        &mut others,
    ));

    // The file says where the clock may have got to: the restart continues from there.
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let runs = saved["runs"].as_array().unwrap();
    let restart_at = runs.last().unwrap()[1].as_f64().unwrap();
    // A tick here is 20 ms, 72 simulated seconds at 3600x.
    assert!(
        (at_kill - 100.0..=at_kill + 2.0 * 72.0 + 20.0).contains(&restart_at),
        "the clock goes on from {restart_at}; it stood at {at_kill} when killed"
    );
    let started = Instant::now();
    let b = start(&state, &[]);
    let clock: serde_json::Value = serde_json::from_str(&b.get("/v1/clock").1).unwrap();
    let ran = started.elapsed().as_secs_f64() * 3600.0;
    assert!(
        (restart_at..=restart_at + ran + 1.0).contains(&sim(&clock)),
        "restarted at {}, from {restart_at}",
        sim(&clock)
    );
    assert_eq!(clock["speed"], 3600.0, "the presenter's speed survives");
    assert_eq!(clock["paused"], false);

    let last_sse = got_sse.last().unwrap().0.clone();
    let last_ws = got_ws.last().unwrap().0.clone();
    let mut sse = SseClient::connect(b.addr, "/v1/events?location_id=1,2", Some(&last_sse));
    let first = sse.next().unwrap();
    assert_eq!(first.event.as_deref(), Some("clock"));
    assert!(
        first.data.contains("\"reason\":\"restarted\""),
        "{}",
        first.data
    );
    let mut ws = ws_connect(&b, &format!("?location_id=3,4&from={last_ws}"));
    std::thread::sleep(Duration::from_millis(800));
    let end = b.control(r#"{"paused": true}"#)["sim_time"]
        .as_f64()
        .unwrap()
        .floor() as i64
        + 1;

    let ds = &dataset().1;
    let want_sse = expected(ds, from, end, Filter::new(&[1, 2], &[]));
    let want_ws = expected(ds, from, end, Filter::new(&[3, 4], &[]));
    got_sse.extend(pairs(
        &sse.events(want_sse.len() - got_sse.len(), Duration::from_secs(10)),
    ));
    let rest = want_ws.len() - got_ws.len();
    got_ws.extend(ws_events(
        &mut ws,
        rest,
        Duration::from_secs(10),
        &mut others,
    ));
    assert!(
        want_sse.len() > 100 && want_ws.len() > 100,
        "the window spans the crash"
    );
    assert_eq!(got_sse.len(), want_sse.len());
    assert!(
        got_sse == want_sse,
        "SSE: every event once, in order, across the crash"
    );
    assert_eq!(got_ws.len(), want_ws.len());
    assert!(
        got_ws == want_ws,
        "WebSocket: every event once, in order, across the crash"
    );
}

#[test]
fn a_paused_clock_comes_back_paused_where_it_was() {
    let dir = common::scratch_dir("service_paused");
    let state = dir.join("clock.json");
    let mut a = start(&state, &["--fresh"]);
    let at = DAY1 + 5 * 3600 + 17;
    a.control(&format!(
        "{{\"seek\": {at}, \"paused\": true, \"speed\": 250}}"
    ));
    kill_9(&mut a);
    let b = start(&state, &["--speed", "60"]);
    let clock: serde_json::Value = serde_json::from_str(&b.get("/v1/clock").1).unwrap();
    assert_eq!(sim(&clock), at as f64, "{clock}");
    assert_eq!(clock["paused"], true);
    assert_eq!(clock["speed"], 250.0);
    // --fresh starts over from the options.
    drop(b);
    let c = start(&state, &["--fresh", "--speed", "60", "--paused"]);
    let clock: serde_json::Value = serde_json::from_str(&c.get("/v1/clock").1).unwrap();
    assert_eq!(clock["day"], 1, "{clock}");
    assert_ne!(sim(&clock), at as f64);
    assert_eq!(clock["speed"], 60.0);
}

/// A resume asks the state file for a tick ahead in the save it answers after, as every
/// tick does: the first tick after it has room to send. (Else that tick sent nothing and the
/// next one two ticks' events at once, the slowest tick of a run.)
#[test]
fn a_resume_saves_a_tick_ahead_before_it_is_answered() {
    let dir = common::scratch_dir("service_resume_ahead");
    let state = dir.join("clock.json");
    // Ticks of 2 s: one passes while paused (it asks the file for a tick ahead at the old
    // speed), and hardly ever one between the answer and the reading of the file.
    let a = start(&state, &["--fresh", "--paused", "--tick-ms", "2000"]);
    let at = DAY1 + 5 * 3600;
    a.control(&format!(
        "{{\"seek\": {at}, \"paused\": true, \"speed\": 60}}"
    ));
    std::thread::sleep(Duration::from_millis(2500));
    let resumed = a.control("{\"speed\": 600, \"paused\": false}");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let end = saved["runs"].as_array().unwrap().last().unwrap()[1]
        .as_f64()
        .unwrap();
    // A tick is 2 s here, 1,200 simulated seconds at 600x.
    assert!(
        end >= sim(&resumed) + 1200.0,
        "the file allows the clock up to {end}; it resumed at {}",
        sim(&resumed)
    );
    assert!(
        end <= sim(&resumed) + 1200.0 + 3.0,
        "{end}: more than a tick ahead of {}",
        sim(&resumed)
    );
}

/// Runs `serve` expecting it to refuse to start; returns its stderr.
fn refused(state: &Path, dataset_dir: &Path) -> String {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_caspers-replay"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--start-day",
            "1",
            "--dataset",
        ])
        .arg(dataset_dir)
        .arg("--state")
        .arg(state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("it started with a bad state file");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "it started with a bad state file");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_damaged_state_file_or_one_of_another_dataset_is_refused_and_left_alone() {
    let dir = common::scratch_dir("service_refused");
    let state = dir.join("clock.json");
    let mut a = start(&state, &["--fresh", "--paused"]);
    a.control(r#"{"speed": 900}"#);
    kill_9(&mut a);
    let good = std::fs::read(&state).unwrap();

    // One changed byte, at many places: always refused, the file untouched.
    let step = (good.len() / 40).max(1);
    for i in (0..good.len()).step_by(step) {
        let mut bad = good.clone();
        bad[i] = if bad[i] == b'7' { b'8' } else { b'7' };
        std::fs::write(&state, &bad).unwrap();
        let msg = refused(&state, &dataset().0);
        assert!(msg.contains("cannot be used"), "byte {i}: {msg}");
        assert!(msg.contains("--fresh"), "says what to do: {msg}");
        assert_eq!(std::fs::read(&state).unwrap(), bad, "left as it was");
    }

    // Another dataset's clock.
    std::fs::write(&state, &good).unwrap();
    let (other, _) = common::generated_dataset("service_other_dataset", 2, 12);
    let msg = refused(&state, &other);
    assert!(msg.contains("another dataset"), "{msg}");
    assert_eq!(std::fs::read(&state).unwrap(), good);

    // Two servers never share a state file.
    let _running = start(&state, &[]);
    let msg = refused(&state, &dataset().0);
    assert!(msg.contains("in use by another server"), "{msg}");
}

/// A server on the saved clock `state` with exactly `args` (no --start-day added).
fn restart(state: &Path, args: &[&str]) -> LiveServer {
    let mut all = vec!["--state", state.to_str().unwrap()];
    all.extend_from_slice(args);
    LiveServer::start(&dataset().0, &all)
}

fn clock_of(server: &LiveServer) -> serde_json::Value {
    serde_json::from_str(&server.get("/v1/clock").1).unwrap()
}

/// (first command line, the presenter's change, the command line after kill -9, what the
/// start line must say, the clock's speed and pause after it)
type Case = (
    &'static [&'static str],
    &'static str,
    &'static [&'static str],
    &'static str,
    f64,
    bool,
);

/// The same command line continues a saved clock as it was (the presenter's changes kept);
/// a changed option is applied on top and said; options not given are not checked.
#[test]
fn the_command_line_over_a_saved_clock_means_what_it_says() {
    let day_of = |c: &serde_json::Value| c["day"].as_i64().unwrap();
    let cases: [Case; 5] = [
        (
            &["--start-day", "1", "--speed", "60"],
            r#"{"speed": 3600, "paused": true}"#,
            &["--start-day", "1", "--speed", "60"],
            "continuing the clock saved in",
            3600.0,
            true,
        ),
        // No options at all: continued; the default --start-day 20 is outside this 3-day
        // dataset, and not checked.
        (
            &["--start-day", "1", "--speed", "60"],
            r#"{"speed": 3600, "paused": true}"#,
            &[],
            "continuing the clock saved in",
            3600.0,
            true,
        ),
        (
            &["--start-day", "1", "--speed", "60"],
            r#"{"speed": 3600, "paused": true}"#,
            &["--start-day", "1", "--speed", "600"],
            "--speed 600 applied (was 60)",
            600.0,
            true,
        ),
        (
            &["--start-day", "1"],
            r#"{"speed": 3600}"#,
            &["--start-day", "1", "--paused"],
            "--paused applied",
            3600.0,
            true,
        ),
        (
            &["--start-day", "1", "--paused"],
            r#"{"speed": 120}"#,
            &["--start-day", "2", "--paused"],
            "--start-day 2 applied (was 1)",
            120.0,
            true,
        ),
    ];
    for (k, (first, change, again, says, speed, paused)) in cases.into_iter().enumerate() {
        let state = common::scratch_dir(&format!("service_cli_{k}")).join("clock.json");
        let mut fresh = vec!["--fresh"];
        fresh.extend_from_slice(first);
        let mut a = restart(&state, &fresh);
        a.control(change);
        kill_9(&mut a);
        let b = restart(&state, again);
        assert!(b.start_line.contains(says), "case {k}: {}", b.start_line);
        let c = clock_of(&b);
        assert_eq!(c["speed"], speed, "case {k}: {c}");
        assert_eq!(c["paused"], paused, "case {k}: {c}");
        if again.contains(&"2") {
            assert_eq!(day_of(&c), 2, "case {k}: sought to day 2: {c}");
        } else {
            assert_eq!(day_of(&c), 1, "case {k}: still day 1: {c}");
        }
        // What was applied is recorded: the same command line again changes nothing more.
        drop(b);
        let again_b = restart(&state, again);
        assert!(
            !again_b.start_line.contains("applied"),
            "case {k}: {}",
            again_b.start_line
        );
        assert_eq!(clock_of(&again_b)["speed"], speed);
    }
    // Without a saved clock, a start day outside the dataset is still an error.
    let state = common::scratch_dir("service_cli_fresh").join("clock.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_caspers-replay"))
        .arg("serve")
        .arg("--dataset")
        .arg(&dataset().0)
        .arg("--state")
        .arg(&state)
        .args(["--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--start-day 20 is outside the dataset"),
        "{err}"
    );
}
