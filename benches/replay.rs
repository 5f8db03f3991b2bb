//! Batch replay benchmark: the first run's catch-up of days 0 to 70 of the full dataset,
//! written to JSON lines, end to end (process start and load included), through the real
//! binary. `cargo bench --bench replay`.

mod common;

use std::process::Command;
use std::time::Instant;

fn run(dataset: &std::path::Path, work: &std::path::Path) -> (f64, u64) {
    let _ = std::fs::remove_dir_all(work);
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_caspers-replay"))
        .arg("replay")
        .arg("--dataset")
        .arg(dataset)
        .arg("--checkpoint")
        .arg(work.join("checkpoint.json"))
        .arg("--out")
        .arg(work.join("out"))
        .args(["--start-day", "70", "--now", "2026-11-24T00:00:00Z"])
        .output()
        .expect("run caspers-replay");
    let seconds = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events = stdout
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("summary line");
    (seconds, events)
}

fn main() {
    let dataset = common::full_dataset();
    let work = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-replay");
    for (label, cached) in [
        ("no index cache (parquet decoded and checked)", false),
        ("index cache present", true),
    ] {
        let mut times = Vec::new();
        let mut events = 0;
        for _ in 0..3 {
            if cached {
                // Any earlier load builds it; the first run below does.
            } else {
                common::drop_cache(&dataset);
            }
            let (s, n) = run(&dataset, &work);
            times.push(s);
            events = n;
        }
        times.sort_by(f64::total_cmp);
        println!(
            "catch-up of days 0-70, {label}: {events} events; median {:.3} s = {:.2} M events/s (best {:.3} s)",
            times[1],
            events as f64 / times[1] / 1e6,
            times[0]
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}
