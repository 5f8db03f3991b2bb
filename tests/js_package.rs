//! The TypeScript client as the npm package `caspers-replay-client` (clients/js): its
//! promised types hold under `tsc --strict`; in Node's own test runner against a real
//! server it delivers a window exact over SSE (fetch streams) and over WebSocket; and the
//! tarball `npm pack` makes installs into the React example (examples/react), which builds
//! under strict TypeScript and, in headless Chromium on another origin, shows every event
//! of a window once across a `kill -9` and restart and a seek, with a fresh snapshot.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use caspers_replay::dataset::Dataset;
use caspers_replay::events::Filter;
use common::live::{LiveServer, TOKEN, expected};
use common::page::{Page, one_browser};

const DAY1: i64 = 1_704_067_200 + 86_400;

fn dataset() -> &'static (PathBuf, Dataset) {
    static DS: OnceLock<(PathBuf, Dataset)> = OnceLock::new();
    DS.get_or_init(|| common::generated_dataset("js_package_dataset", 2, 52))
}

#[test]
fn the_types_promise_what_they_say() {
    // Every `@ts-expect-error` in test/types/promises.ts must be an error and every other
    // line must compile, against the declarations in dist/ (the package as installed).
    run_in(
        &common::client_dir(),
        "node",
        &["node_modules/typescript/bin/tsc", "-p", "test/types"],
        &[],
    );
}

#[test]
fn node_gets_a_window_exact_over_sse_and_websocket() {
    let (dir, ds) = dataset();
    let server = LiveServer::start(dir, &["--paused", "--start-day", "1"]);
    let start = DAY1 + 18 * 3600;
    let end = start + 3600;
    let want = expected(ds, start + 1, end, Filter::new(&[2], &[]));
    let window = serde_json::json!({
        "start": start,
        "end": end,
        "location_ids": [2],
        "events": want,
    });
    let file = common::scratch_dir("js_package_window").join("window.json");
    std::fs::write(&file, window.to_string()).unwrap();
    let out = run_in(
        &common::client_dir(),
        "node",
        &["--experimental-websocket", "--test", "test/"],
        &[
            ("CASPERS_URL", format!("http://{}", server.addr)),
            ("CASPERS_TOKEN", TOKEN.to_string()),
            ("CASPERS_WINDOW", file.display().to_string()),
        ],
    );
    assert!(out.contains("# fail 0"), "{out}");
    assert!(!out.contains("# pass 0"), "{out}");
}

/// Runs `program args` in `dir` with `env` added; panics with its output unless it
/// succeeds.
fn run_in(dir: &Path, program: &str, args: &[&str], env: &[(&str, String)]) -> String {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{program} {args:?} in {}:\n{text}",
        dir.display()
    );
    text
}

/// The example app (examples/react) built on the package as `npm pack` makes it: a copy of
/// the app, its dependencies from the example's own install, the client from the tarball.
fn example_app_on_the_tarball() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = repo.join("examples/react");
    assert!(
        example.join("node_modules/vite").is_dir(),
        "vite is missing: npm ci in examples/react (scripts/test.sh does it)"
    );
    let scratch = common::scratch_dir("js_package_react");
    let packed = run_in(
        &common::client_dir(),
        "npm",
        &[
            "pack",
            "--silent",
            "--pack-destination",
            scratch.to_str().unwrap(),
        ],
        &[],
    );
    let tarball = scratch.join(packed.trim().lines().last().unwrap().trim());
    assert!(tarball.is_file(), "npm pack wrote {}", tarball.display());

    let app = scratch.join("app");
    std::fs::create_dir_all(&app).unwrap();
    for part in [
        "package.json",
        "index.html",
        "vite.config.ts",
        "tsconfig.json",
        "src",
    ] {
        run_in(
            repo,
            "cp",
            &[
                "-R",
                example.join(part).to_str().unwrap(),
                app.to_str().unwrap(),
            ],
            &[],
        );
    }
    run_in(
        repo,
        "cp",
        &[
            "-R",
            example.join("node_modules").to_str().unwrap(),
            app.to_str().unwrap(),
        ],
        &[],
    );
    // The app depends on the tarball instead of the checkout; the rest comes from the
    // example's install (npm may ask the registry for what its cache lacks).
    let manifest = app.join("package.json");
    let mut package: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    package["dependencies"]["caspers-replay-client"] = format!("file:{}", tarball.display()).into();
    std::fs::write(&manifest, package.to_string()).unwrap();
    let _ = std::fs::remove_file(app.join("node_modules/caspers-replay-client"));
    run_in(
        &app,
        "npm",
        &[
            "install",
            "--prefer-offline",
            "--no-audit",
            "--no-fund",
            "--silent",
        ],
        &[],
    );
    let installed = app.join("node_modules/caspers-replay-client");
    assert!(
        !installed
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink()
            && installed.join("dist/react.js").is_file()
            && installed.join("README.md").is_file()
            && installed.join("LICENSE").is_file(),
        "the package is installed from the tarball, with its README and licence"
    );
    // Strict type-check, then the production build.
    run_in(
        &app,
        "node",
        &["node_modules/typescript/bin/tsc", "--noEmit", "-p", "."],
        &[],
    );
    run_in(
        &app,
        "node",
        &[
            "node_modules/vite/bin/vite.js",
            "build",
            "--logLevel",
            "warn",
        ],
        &[],
    );
    app.join("dist")
}

#[test]
fn the_packed_client_builds_the_react_example_which_shows_every_event_once_across_a_kill_and_a_seek()
 {
    let built = example_app_on_the_tarball();
    let _browser = one_browser();
    let (dir, ds) = dataset();
    let state = common::scratch_dir("js_package_react_state").join("clock.json");
    let state = state.to_str().unwrap();
    let mut server = LiveServer::start(
        dir,
        &["--state", state, "--fresh", "--paused", "--start-day", "1"],
    );
    let start = DAY1 + 18 * 3600;
    server.control(&format!("{{\"seek\": {start}}}"));
    let query = format!(
        "server=http://{}&kitchen=1&transport=websocket&record=1",
        server.addr
    );
    let mut page = Page::open_with(&[built.to_str().unwrap(), &query]);
    page.until(
        "the board to connect",
        "document.querySelector('[data-testid=status]')?.textContent === 'open'",
        15,
    );
    let count = |page: &mut Page| -> usize {
        page.eval("window.caspersRecord.positions.length")
            .as_u64()
            .unwrap() as usize
    };
    server.control(r#"{"speed": 600, "paused": false}"#);
    page.until(
        "events on the board",
        "(window.caspersRecord?.positions.length ?? 0) >= 20",
        15,
    );

    // kill -9 and the same command line again, on the same address.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let before = count(&mut page);
    let addr = server.addr.to_string();
    drop(server);
    let server = LiveServer::start_at(
        dir,
        &addr,
        &["--state", state, "--paused", "--start-day", "1"],
    );
    page.until(
        "events after the restart",
        &format!("window.caspersRecord.positions.length >= {}", before + 10),
        20,
    );

    // A seek two hours on: a fresh snapshot, then the events from there. (The board also
    // got one at each connection: the first, and the one after the restart.)
    let seek_to = server.control(r#"{"paused": true}"#)["sim_time"]
        .as_f64()
        .unwrap() as i64
        + 2 * 3600;
    std::thread::sleep(Duration::from_millis(300));
    let snapshots_before = page
        .eval("window.caspersRecord.snapshots.length")
        .as_u64()
        .unwrap();
    server.control(&format!("{{\"seek\": {seek_to}, \"paused\": false}}"));
    page.until(
        "the snapshot after the seek",
        &format!("window.caspersRecord.snapshots.length > {snapshots_before}"),
        15,
    );
    let after_seek = count(&mut page);
    page.until(
        "events after the seek",
        &format!(
            "window.caspersRecord.positions.length >= {}",
            after_seek + 10
        ),
        20,
    );
    let end = server.control(r#"{"paused": true}"#)["sim_time"]
        .as_f64()
        .unwrap()
        .floor() as i64
        + 1;
    std::thread::sleep(Duration::from_millis(500));

    // What was emitted: from the state file, where the run before the seek ended; the run
    // after it, to the pause.
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap();
    let mut runs: Vec<(i64, i64)> = saved["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_i64().unwrap(), r[1].as_i64().unwrap()))
        .filter(|&(a, b)| b > start && a < b)
        .collect();
    assert_eq!(runs.len(), 2, "one run to the seek, one after: {runs:?}");
    assert_eq!(runs[1].0, seek_to);
    runs[1].1 = end;
    let filter = Filter::new(&[1], &[]);
    let mut want: Vec<String> = Vec::new();
    for &(a, b) in &runs {
        // The first second of the first run may have gone out before the board connected.
        want.extend(
            expected(ds, a.max(start + 1), b, filter)
                .into_iter()
                .map(|e| e.0),
        );
    }
    let first: Vec<String> = expected(ds, start, start + 1, filter)
        .into_iter()
        .map(|e| e.0)
        .collect();
    let got: Vec<String> = page
        .eval("window.caspersRecord.positions")
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .filter(|p| !first.contains(p))
        .collect();
    assert!(want.len() > 40, "the window spans the kill and the seek");
    assert!(
        got == want,
        "the board got {} events against {} in the window: every one once, in order",
        got.len(),
        want.len()
    );
    let snapshots = page.eval("window.caspersRecord.snapshots");
    assert_eq!(
        snapshots.as_array().unwrap().len() as u64,
        snapshots_before + 1,
        "one snapshot after the seek: {snapshots}"
    );
    assert!(
        snapshots[snapshots_before as usize].as_u64().unwrap() > 0,
        "the fresh snapshot holds the orders in flight at the new time: {snapshots}"
    );
    let rows = page.eval("document.querySelectorAll('tbody tr').length");
    assert!(
        rows.as_u64().unwrap() > 0,
        "the board shows the orders in flight"
    );
}
