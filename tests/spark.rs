//! The `caspers` PySpark source (python/caspers_replay) in real PySpark, local mode: each
//! test runs a case of tests/python/spark_source.py against this build's engine.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One Spark at a time: each is a JVM that wants both cores.
static SPARK: Mutex<()> = Mutex::new(());

fn spark_case(case: &str, args: &[&Path]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = vec![std::ffi::OsStr::new(case)];
    all.extend(args.iter().map(|a| a.as_os_str()));
    run_python(&root.join("tests/python/spark_source.py"), &all)
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(common::python())
        .arg(script)
        .args(args)
        .env("PYTHONPATH", root.join("python"))
        .env("CASPERS_REPLAY_BIN", env!("CARGO_BIN_EXE_caspers-replay"))
        // Spark's Python workers run in the same environment as the driver.
        .env("PYSPARK_PYTHON", common::python())
        .env("TZ", "UTC")
        .output()
        .expect("python3");
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
    let out = spark_case("seed-runs", &[&dataset, &seed, &work]);
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
    let out = spark_case("killed", &[&dataset, &work]);
    assert!(out.contains("ok: every event of the window once"), "{out}");
}

#[test]
fn batch_read_with_location_id_returns_only_that_location() {
    let (dataset, _) = common::generated_dataset("spark_batch_dataset", 3, 5);
    let out = spark_case("batch", &[&dataset]);
    assert!(out.contains("ok: only location 2"), "{out}");
}

#[test]
fn spark_says_what_is_wrong_with_a_path_an_option_or_a_dataset() {
    let (dataset, _) = common::generated_dataset("spark_errors_dataset", 2, 5);
    let bad = common::scratch_dir("spark_bad_dataset");
    std::fs::write(bad.join("events.parquet"), b"PAR1 this is not parquet").unwrap();
    let out = spark_case("errors", &[&dataset, &bad]);
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

#[test]
fn queries_on_a_live_clock_hold_what_an_sse_client_got_through_its_changes() {
    use common::live::{LiveServer, SseClient};
    use std::io::{BufRead, BufReader, Write};
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
    let work = common::scratch_dir("spark_live_work");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut python = Command::new(common::python())
        .arg(root.join("tests/python/spark_source.py"))
        .args(["live", &format!("http://{}", server.addr)])
        .arg(&work)
        .arg(&dataset)
        .arg("1")
        .env("PYTHONPATH", root.join("python"))
        .env("CASPERS_REPLAY_BIN", env!("CARGO_BIN_EXE_caspers-replay"))
        .env("PYSPARK_PYTHON", common::python())
        .env("TZ", "UTC")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(python.stdout.take().unwrap()).lines();
    let mut said = |what: &str| loop {
        let line = lines.next().expect("the query's output").unwrap();
        if line == what {
            return;
        }
        assert!(!line.starts_with("FAILED"), "{line}");
    };
    said("started");
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
    let (_, emitted) = server.get("/v1/emitted");
    let emitted: serde_json::Value = serde_json::from_str(&emitted).unwrap();
    let mut stdin = python.stdin.take().unwrap();
    writeln!(stdin, "stop {}", emitted["emitted"]).unwrap();
    said("stopped");
    assert!(python.wait().unwrap().success());
    // What the SSE client got over the same span.
    sse.stream
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut want = Vec::new();
    while let Some(m) = sse.next() {
        if m.id.is_some() {
            want.push(serde_json::from_str::<serde_json::Value>(&m.data).unwrap());
        }
    }
    let ids = |events: &[serde_json::Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_string())
            .collect()
    };
    let distinct: std::collections::HashSet<String> = ids(&want).into_iter().collect();
    assert!(want.len() > 100, "a busy span: {}", want.len());
    assert!(
        distinct.len() < want.len(),
        "the seek back sent events again"
    );
    for query in ["server", "local"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(work.join(query))
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
