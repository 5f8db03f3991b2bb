//! Shared by the bench binaries: the full 90-day generated dataset.

use std::path::PathBuf;

use caspers_replay::dataset::generate;

/// The 90-day dataset (seed 42), generated into target/ on first use, or the directory
/// named by CASPERS_BENCH_DATASET.
pub fn full_dataset() -> PathBuf {
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
    dir
}

#[allow(dead_code)] // not every bench uses it
/// Removes the dataset's index cache, so that the next load decodes the parquet file.
pub fn drop_cache(dir: &std::path::Path) {
    let _ = std::fs::remove_dir_all(dir.join(caspers_replay::dataset::cache::CACHE_DIR));
}

/// Starts `caspers-replay serve` on a free port of 127.0.0.1 with `args`; returns the
/// process and its address. Its output is drained so it never blocks.
#[allow(dead_code)] // not every bench serves
pub fn start_server(
    dataset: &std::path::Path,
    args: &[&str],
) -> (std::process::Child, std::net::SocketAddr) {
    serve(dataset, args, None)
}

/// [`start_server`] on one core (`taskset -c CORE`).
#[allow(dead_code)] // not every bench serves
pub fn start_server_pinned(
    dataset: &std::path::Path,
    args: &[&str],
    core: usize,
) -> (std::process::Child, std::net::SocketAddr) {
    serve(dataset, args, Some(core))
}

fn serve(
    dataset: &std::path::Path,
    args: &[&str],
    core: Option<usize>,
) -> (std::process::Child, std::net::SocketAddr) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    // A new clock each time, kept in a file of its own (not the dataset's saved clock).
    static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let state = std::env::temp_dir().join(format!(
        "caspers-bench-state-{}-{}.json",
        std::process::id(),
        SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut cmd = match core {
        Some(c) => {
            let mut t = Command::new("taskset");
            t.args(["-c", &c.to_string()])
                .arg(env!("CARGO_BIN_EXE_caspers-replay"));
            t
        }
        None => Command::new(env!("CARGO_BIN_EXE_caspers-replay")),
    };
    cmd.arg("serve").arg("--dataset").arg(dataset);
    if !args.contains(&"--nats") {
        cmd.arg("--fresh").arg("--state").arg(&state);
    }
    let mut child = cmd
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// The Python the benches run: the project's environment (.venv, made by scripts/test.sh)
/// when there is one, else `python3` on the PATH.
#[allow(dead_code)] // only the Spark bench runs Python
pub fn python() -> PathBuf {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python3");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    }
}
