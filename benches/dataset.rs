//! Dataset benchmark: load + validate + index time (from parquet, and from the index
//! cache), peak RSS, and expansion throughput over every event, on the full generated
//! dataset. Prints its figures: `cargo bench --bench dataset`.

mod common;

use std::time::Instant;

use caspers_replay::dataset::Dataset;
use caspers_replay::events::{EventShift, expand_event};

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let dir = common::full_dataset();
    common::drop_cache(&dir);
    let rss_before = peak_rss_mb();
    let started = Instant::now();
    let ds = Dataset::open_with(&dir, false).expect("load");
    let first = started.elapsed().as_secs_f64();
    println!(
        "load+validate+index from parquet: {first:.3} s for {} events (first, fresh process); \
         peak RSS {:.0} MB (before {:.0} MB); index {:.0} MB",
        ds.events.len(),
        peak_rss_mb(),
        rss_before,
        ds.events.heap_bytes() as f64 / 1e6
    );
    let again = best_of(3, || drop(Dataset::open_with(&dir, false).expect("load")));
    println!("load+validate+index from parquet: best of 3 more {again:.3} s");
    drop(Dataset::open(&dir).expect("build the cache"));
    let cached = best_of(3, || drop(Dataset::open(&dir).expect("load")));
    println!("load from the index cache (SHA-1 of the file included): best of 3 {cached:.3} s");

    let mut buf = Vec::with_capacity(1 << 20);
    let mut bytes = 0usize;
    let best = best_of(3, || {
        bytes = 0;
        for pos in 0..ds.events.len() {
            buf.clear();
            expand_event(&ds.events, pos, EventShift::default(), &mut buf);
            buf.push(b'\n');
            bytes += buf.len();
        }
    });
    println!(
        "expansion: {:.2} M events/s ({:.0} MB/s of JSON lines), best of 3 passes over {} events",
        ds.events.len() as f64 / best / 1e6,
        bytes as f64 / best / 1e6,
        ds.events.len()
    );
}
