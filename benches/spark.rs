//! The Spark source against the seed's: the catch-up of days 0-70 of the 90-day generated
//! dataset through Spark (availableNow, JSON sink, local[2]), each in a Python process of
//! its own (Spark's start-up and the sink included), the clock pinned the same way.
//! `cargo bench --bench spark` (needs PySpark 4 and pandas: bash scripts/test.sh puts them
//! in .venv). The seed's row needs the seed's notebook, which is not in this repository:
//! `CASPERS_SEED_NOTEBOOK=PATH/canonical_data_replay_notebook.txt cargo bench --bench spark`;
//! without it the bench runs the other rows and says what to set.
//! `cargo bench --bench spark -- --live`: the source on a live server's clock against its
//! own clock (benches/spark_live.py).

mod common;

use std::path::Path;
use std::process::Command;

/// `script` (in benches/) under this build's engine and package, in Spark's environment.
fn python(script: &str) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new(common::python());
    command
        .arg(root.join("benches").join(script))
        .env("PYTHONPATH", root.join("python"))
        .env("CASPERS_REPLAY_BIN", env!("CARGO_BIN_EXE_caspers-replay"))
        // Spark's Python workers run in the same environment as the driver.
        .env("PYSPARK_PYTHON", common::python())
        .env("TZ", "UTC");
    command
}

fn run(which: &str, start_day: &str, dataset: &Path, out: &Path) -> serde_json::Value {
    let _ = std::fs::remove_dir_all(out);
    let output = python("spark_source.py")
        .arg(which)
        .arg(dataset)
        .arg(out)
        // At 00:00, the first window ends at the start day's midnight.
        .args([start_day, "2026-11-24T00:00:00Z"])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{which}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the run's figures")
}

/// `--live`: the source on a running server's clock (3600x from the Friday dinner peak)
/// against the same query on its own clock, in the same Spark, each for 20 s with a 1 s
/// trigger: rows/s and the delay from the clock passing an event to the sink.
fn live(dataset: &Path) {
    const TOKEN: &str = "spark-bench-token";
    let (mut server, addr) = common::start_server(
        dataset,
        &["--paused", "--control-token", TOKEN, "--speed", "3600"],
    );
    let output = python("spark_live.py")
        .arg(format!("http://{addr}"))
        .arg(TOKEN)
        .arg(dataset)
        .arg("20")
        .output()
        .expect("python3");
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let runs: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the run's figures");
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    println!("live: 3600x from 2024-02-02 17:30, one location, 1 s trigger, 20 s each:");
    for v in runs.as_array().unwrap() {
        println!(
            "  {:>28}: {} rows, {:.0} rows/s; delay from the clock to the sink p50 {:.2} s, p99 {:.2} s; Spark's empty micro-batch {:.2} s (median of {})",
            v["query"].as_str().unwrap_or(""),
            v["rows"],
            f(v, "rows_per_s"),
            f(v, "delay_p50"),
            f(v, "delay_p99"),
            f(v, "empty_batch"),
            v["empty_batches"]
        );
    }
    let server_clock = &runs[0];
    println!(
        "  server clock: delay / Spark's empty micro-batch: p50 {:.2}, p99 {:.2} (goal ≤ 1.5)",
        f(server_clock, "delay_p50") / f(server_clock, "empty_batch"),
        f(server_clock, "delay_p99") / f(server_clock, "empty_batch")
    );
}

fn main() {
    let dataset = common::full_dataset();
    if std::env::args().any(|a| a == "--live") {
        live(&dataset);
        return;
    }
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
    // The engine's index cache is built once beforehand, as a user's second run finds it.
    let _ = caspers_replay::dataset::Dataset::open(&dataset).expect("load");
    // Day 0: an empty first window, what Spark's start-up and an empty query cost alone.
    let floor = run("ours", "0", &dataset, &scratch.join("spark-bench-floor"));
    let ours = run("ours", "70", &dataset, &scratch.join("spark-bench-ours"));
    let seed = match std::env::var_os("CASPERS_SEED_NOTEBOOK") {
        Some(path) if Path::new(&path).is_file() => Some(run(
            "seed",
            "70",
            &dataset,
            &scratch.join("spark-bench-seed"),
        )),
        Some(path) => panic!(
            "CASPERS_SEED_NOTEBOOK={}: no such file (give the seed's \
             canonical_data_replay_notebook.txt)",
            Path::new(&path).display()
        ),
        None => None,
    };
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    println!("catch-up of days 0-70 through Spark (availableNow, JSON sink, local[2]):");
    let mut rows = vec![("empty window", &floor), ("caspers_replay", &ours)];
    if let Some(seed) = &seed {
        rows.push(("seed's source", seed));
    }
    for (name, v) in rows {
        println!(
            "  {name:>14}: {} rows in {:.1} s end to end; {:.2} s in the source's read (the longest task {:.2} s)",
            v["rows"],
            f(v, "seconds"),
            f(v, "read_seconds"),
            f(v, "read_max")
        );
    }
    let Some(seed) = seed else {
        println!(
            "  seed's source: not run. It needs the seed's notebook, which this repository \
             does not hold: set CASPERS_SEED_NOTEBOOK to its \
             canonical_data_replay_notebook.txt"
        );
        return;
    };
    println!(
        "  ratio (seed / ours): {:.1}x end to end, {:.0}x in read ({:.0}x against the longest read task)",
        f(&seed, "seconds") / f(&ours, "seconds"),
        f(&seed, "read_seconds") / f(&ours, "read_seconds"),
        f(&seed, "read_seconds") / f(&ours, "read_max")
    );
    assert_eq!(ours["rows"], seed["rows"], "both emit the same events");
}
