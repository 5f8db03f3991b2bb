//! The `caspers` PySpark source (python/caspers_replay) in real PySpark, local mode: each
//! test runs a case of tests/python/spark_source.py against this build's engine.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One Spark at a time: each is a JVM that wants both cores.
static SPARK: Mutex<()> = Mutex::new(());

fn spark_case(case: &str, args: &[&std::ffi::OsStr]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = vec![std::ffi::OsStr::new(case)];
    all.extend_from_slice(args);
    run_python(&root.join("tests/python/spark_source.py"), &all)
}

/// `script` under this build's engine and package, in Spark's environment.
fn python(script: &Path) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new(common::python());
    command
        .arg(script)
        .env("PYTHONPATH", root.join("python"))
        .env("CASPERS_REPLAY_BIN", env!("CARGO_BIN_EXE_caspers-replay"))
        // Spark's Python workers run in the same environment as the driver.
        .env("PYSPARK_PYTHON", common::python())
        .env("TZ", "UTC");
    command
}

/// Runs a Python script with this build's engine and package; its output, once it passed.
fn run_python(script: &Path, args: &[&std::ffi::OsStr]) -> String {
    let _one = SPARK.lock().unwrap_or_else(|e| e.into_inner());
    let ok = Command::new(common::python())
        .args(["-c", "import pyspark, pyarrow"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "PySpark 4 and pyarrow are missing: bash scripts/test.sh installs them into .venv"
    );
    let out = python(script).args(args).output().expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn fixture_dataset() -> PathBuf {
    fixture_dataset_named("spark_fixture_1day")
}

/// The pandas-written fixture day as a dataset directory of its own.
fn fixture_dataset_named(name: &str) -> PathBuf {
    let dir = common::scratch_dir(name);
    std::fs::copy(
        common::fixtures_dir().join("events_1day.parquet"),
        dir.join("events.parquet"),
    )
    .unwrap();
    dir
}

#[test]
fn three_pinned_available_now_runs_emit_what_the_seed_emitted() {
    let dataset = fixture_dataset();
    let work = common::scratch_dir("spark_seed_runs");
    let seed = common::fixtures_dir().join("seed_output_1day");
    let out = spark_case(
        "seed-runs",
        &[dataset.as_os_str(), seed.as_os_str(), work.as_os_str()],
    );
    for run in 1..=3 {
        assert!(
            out.contains(&format!("ok: run {run}: every event as the seed's")),
            "{out}"
        );
    }
    assert!(
        out.contains("ok: a run at the same instant emits nothing"),
        "{out}"
    );
}

#[test]
fn a_query_killed_mid_batch_ends_with_every_event_once() {
    let (dataset, _) = common::generated_dataset("spark_killed_dataset", 5, 3);
    let work = common::scratch_dir("spark_killed");
    let out = spark_case("killed", &[dataset.as_os_str(), work.as_os_str()]);
    assert!(out.contains("ok: every event of the window once"), "{out}");
}

#[test]
fn batch_read_with_location_id_returns_only_that_location() {
    let (dataset, _) = common::generated_dataset("spark_batch_dataset", 3, 5);
    let out = spark_case("batch", &[dataset.as_os_str()]);
    assert!(out.contains("ok: only location 2"), "{out}");
}

#[test]
fn spark_says_what_is_wrong_with_a_path_an_option_or_a_dataset() {
    let (dataset, _) = common::generated_dataset("spark_errors_dataset", 2, 5);
    let bad = common::scratch_dir("spark_bad_dataset");
    std::fs::write(bad.join("events.parquet"), b"PAR1 this is not parquet").unwrap();
    let out = spark_case("errors", &[dataset.as_os_str(), bad.as_os_str()]);
    assert!(out.contains("ok: a damaged dataset"), "{out}");
}

#[test]
fn the_example_notebook_runs_with_the_one_import_changed() {
    let dataset = fixture_dataset_named("spark_example_dataset");
    let work = common::scratch_dir("spark_example");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (out, checkpoint) = (work.join("out"), work.join("checkpoint"));
    let args: Vec<&std::ffi::OsStr> = [
        "--dataset".as_ref(),
        dataset.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--checkpoint".as_ref(),
        checkpoint.as_os_str(),
    ]
    .into_iter()
    .chain(
        [
            "--start-day",
            "0",
            "--speed",
            "60",
            "--now",
            "2026-11-24T18:00:00Z",
        ]
        .map(|a| a.as_ref()),
    )
    .collect();
    let stdout = run_python(&root.join("python/examples/replay_notebook.py"), &args);
    // The seed's first run at 18:00 on day 0 emitted 5,748 events.
    assert!(
        stdout.contains("Streaming query complete: 5748 events"),
        "{stdout}"
    );
}

/// The `live` case of spark_source.py against the clock at `url`: started, then stopped
/// once both queries have read what the clock emitted by then.
struct LiveQueries {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    work: PathBuf,
}

impl LiveQueries {
    fn start(url: &str, dataset: &Path, work: PathBuf) -> LiveQueries {
        use std::io::BufRead;
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut child = python(&root.join("tests/python/spark_source.py"))
            .args(["live", url])
            .arg(&work)
            .arg(dataset)
            .arg("1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut q = LiveQueries { child, lines, work };
        q.said("started");
        q
    }

    fn said(&mut self, what: &str) {
        loop {
            let line = self.lines.next().expect("the queries' output").unwrap();
            if line == what {
                return;
            }
            assert!(!line.starts_with("FAILED"), "{line}");
        }
    }

    /// Stops both queries once they have read emission `emitted`; what each wrote, in
    /// order, by query.
    fn stop(mut self, emitted: &serde_json::Value) -> Vec<(&'static str, Vec<serde_json::Value>)> {
        use std::io::Write;
        let mut stdin = self.child.stdin.take().unwrap();
        writeln!(stdin, "stop {emitted}").unwrap();
        self.said("stopped");
        assert!(self.child.wait().unwrap().success());
        ["server", "local"]
            .into_iter()
            .map(|query| {
                let mut files: Vec<PathBuf> = std::fs::read_dir(self.work.join(query))
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect();
                files.sort();
                let mut got = Vec::new();
                for file in files {
                    for line in std::fs::read_to_string(file).unwrap().lines() {
                        got.push(serde_json::from_str::<serde_json::Value>(line).unwrap());
                    }
                }
                (query, got)
            })
            .collect()
    }
}

impl LiveQueries {
    /// Stops both queries once they have read emission `emitted`, and checks that each
    /// holds `want`, field for field, in the same order.
    fn stop_holding(self, emitted: &serde_json::Value, want: &[serde_json::Value]) {
        for (query, got) in self.stop(emitted) {
            assert_eq!(
                got.len(),
                want.len(),
                "{query}: as many events as the SSE client"
            );
            assert!(
                got == want,
                "{query}: the same events, field for field, in the same order"
            );
        }
    }
}

/// The events an SSE client receives until nothing more comes for a moment, with their
/// positions.
fn sse_events(sse: &mut common::live::SseClient) -> Vec<(String, serde_json::Value)> {
    sse.stream
        .set_read_timeout(Some(std::time::Duration::from_millis(1500)))
        .unwrap();
    let mut events = Vec::new();
    while let Some(m) = sse.next() {
        if let Some(id) = m.id {
            events.push((
                id,
                serde_json::from_str::<serde_json::Value>(&m.data).unwrap(),
            ));
        }
    }
    events
}

#[test]
fn a_query_on_a_session_follows_it_not_the_shared_clock_across_a_server_kill_9() {
    use common::live::{LiveServer, MadeSession, SseClient};
    let _one = SPARK.lock().unwrap_or_else(|e| e.into_inner());
    let (dataset, _) = common::generated_dataset("spark_live_dataset", 3, 9);
    let day1 = 1_704_067_200 + 86_400;
    let state = common::scratch_dir("spark_session_state").join("clock.json");
    let state = state.to_str().unwrap().to_string();
    let args = ["--paused", "--start-day", "1", "--state", state.as_str()];
    let mut server = LiveServer::start(&dataset, &args);
    let addr = server.addr.to_string();
    let made = MadeSession::paused_at(&server, day1 + 18 * 3600);
    let session = made.path.clone();
    let step = |server: &LiveServer| made.step(server, 900);
    let path = format!("{session}/events?location_id=1");
    let mut sse = SseClient::connect(server.addr, &path, None);
    let queries = LiveQueries::start(
        &format!("http://{addr}{session}"),
        &dataset,
        common::scratch_dir("spark_session_work"),
    );
    // The shared clock runs meanwhile: the queries must not follow it.
    server.control(r#"{"speed": 3600, "paused": false}"#);
    step(&server);
    let mut want = sse_events(&mut sse);
    // The server is killed and comes back on the same address with the same state.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let server = LiveServer::start_at(&dataset, &addr, &args);
    let last = want.len();
    let mut sse = SseClient::connect(server.addr, &path, Some(&want.last().unwrap().0));
    step(&server);
    want.extend(sse_events(&mut sse));
    assert!(
        want.len() > last && last > 10,
        "events before and after the kill: {last}, {}",
        want.len()
    );
    let (_, emitted) = server.get(&format!("{session}/emitted"));
    let emitted: serde_json::Value = serde_json::from_str(&emitted).unwrap();
    let want: Vec<serde_json::Value> = want.into_iter().map(|e| e.1).collect();
    queries.stop_holding(&emitted["emitted"], &want);
}

#[test]
fn queries_on_a_live_clock_hold_what_an_sse_client_got_through_its_changes() {
    use common::live::{LiveServer, SseClient};
    use std::time::Duration;
    let _one = SPARK.lock().unwrap_or_else(|e| e.into_inner());
    let (dataset, _) = common::generated_dataset("spark_live_dataset", 3, 9);
    let day1 = 1_704_067_200 + 86_400;
    let server = LiveServer::start(&dataset, &["--paused", "--start-day", "1"]);
    server.control(&format!(
        "{{\"seek\": {}, \"paused\": true}}",
        day1 + 12 * 3600
    ));
    let mut sse = SseClient::connect(server.addr, "/v1/events?location_id=1", None);
    let queries = LiveQueries::start(
        &format!("http://{}", server.addr),
        &dataset,
        common::scratch_dir("spark_live_work"),
    );
    // The presenter drives the clock: 3600x, a pause, a resume, a seek back by an hour, a
    // seek forward by a day.
    let seek = |t: i64| format!("{{\"seek\": {t}}}");
    for (body, ms) in [
        (r#"{"speed": 3600, "paused": false}"#.to_string(), 1200),
        (r#"{"paused": true}"#.to_string(), 700),
        (r#"{"paused": false}"#.to_string(), 700),
        (seek(day1 + 12 * 3600), 900),
        (seek(day1 + 86_400 + 13 * 3600), 900),
        (r#"{"paused": true}"#.to_string(), 0),
    ] {
        server.control(&body);
        std::thread::sleep(Duration::from_millis(ms));
    }
    let want: Vec<serde_json::Value> = sse_events(&mut sse).into_iter().map(|e| e.1).collect();
    let distinct: std::collections::HashSet<&str> = want
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert!(want.len() > 100, "a busy span: {}", want.len());
    assert!(
        distinct.len() < want.len(),
        "the seek back sent events again"
    );
    let (_, emitted) = server.get("/v1/emitted");
    let emitted: serde_json::Value = serde_json::from_str(&emitted).unwrap();
    queries.stop_holding(&emitted["emitted"], &want);
}

#[test]
fn a_query_on_a_live_clock_killed_mid_batch_ends_with_every_event_once() {
    use common::live::{LiveServer, TOKEN};
    let (dataset, _) = common::generated_dataset("spark_live_dataset", 3, 9);
    let server = LiveServer::start(&dataset, &["--paused", "--start-day", "1"]);
    server.control(&format!(
        "{{\"seek\": {}, \"paused\": true}}",
        1_704_067_200 + 86_400 + 12 * 3600
    ));
    let work = common::scratch_dir("spark_live_killed");
    let url = format!("http://{}", server.addr);
    let url = std::ffi::OsString::from(url);
    let token = std::ffi::OsString::from(TOKEN);
    let out = spark_case("live-killed", &[&url, &token, work.as_os_str()]);
    assert!(out.contains("ok: every event of the span once"), "{out}");
}

#[test]
fn a_live_clock_that_cannot_be_followed_is_a_one_line_error() {
    use common::live::LiveServer;
    let (dataset, _) = common::generated_dataset("spark_live_dataset", 3, 9);
    let (other, _) = common::generated_dataset("spark_errors_dataset", 2, 5);
    let server = LiveServer::start(&dataset, &["--paused", "--start-day", "1"]);
    let url = std::ffi::OsString::from(format!("http://{}", server.addr));
    let out = spark_case(
        "live-errors",
        &[&url, dataset.as_os_str(), other.as_os_str()],
    );
    assert!(
        out.contains("ok: the server's own dataset is taken"),
        "{out}"
    );
}
