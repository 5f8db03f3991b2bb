//! Dataset benchmark: load + validate + index time, peak RSS, and expansion throughput over
//! every event, on the full generated dataset. Prints its figures; run with
//! `cargo bench --bench dataset` (generates the 90-day dataset into target/ when missing).

use std::path::PathBuf;
use std::time::Instant;

use caspers_replay::dataset::{Dataset, generate};
use caspers_replay::events::{EventShift, expand_event};

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let dir = std::env::var_os("CASPERS_BENCH_DATASET")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-dataset-90d")
        });
    if !dir.join("events.parquet").is_file() {
        eprintln!("generating the 90-day dataset into {} ...", dir.display());
        generate::generate(&generate::GenerateOptions::default(), &dir, |_, _| {})
            .expect("generate");
    }
    let rss_before = peak_rss_mb();
    let started = Instant::now();
    let ds = Dataset::open(&dir).expect("load");
    let load_s = started.elapsed().as_secs_f64();
    let rss_after_load = peak_rss_mb();
    println!(
        "load+validate+index: {:.3} s for {} events; peak RSS {:.0} MB (before load {:.0} MB); index holds {:.0} MB",
        load_s,
        ds.events.len(),
        rss_after_load,
        rss_before,
        ds.events.heap_bytes() as f64 / 1e6
    );
    for (label, reps) in [("load (again)", 2)] {
        let mut best = f64::MAX;
        for _ in 0..reps {
            let t = Instant::now();
            drop(Dataset::open(&dir).expect("load"));
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{label}: best of {reps} {best:.3} s");
    }

    let mut buf = Vec::with_capacity(1 << 20);
    let mut best = f64::MAX;
    let mut bytes = 0usize;
    for _ in 0..3 {
        let t = Instant::now();
        bytes = 0;
        for pos in 0..ds.events.len() {
            buf.clear();
            expand_event(&ds.events, pos, EventShift::default(), &mut buf);
            buf.push(b'\n');
            bytes += buf.len();
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "expansion: {:.2} M events/s ({:.0} MB/s of JSON lines), best of 3 passes over {} events",
        ds.events.len() as f64 / best / 1e6,
        bytes as f64 / best / 1e6,
        ds.events.len()
    );
}
