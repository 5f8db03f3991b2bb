//! The map page, end to end: a real server on 127.0.0.1 and a real headless Chromium
//! (Debian's chromium, driven by playwright-core from tests/e2e/map.mjs).

mod common;

use std::path::Path;
use std::process::Command;

use caspers_replay::dataset::generate::{GenerateOptions, generate};
use common::live::{LiveServer, TOKEN};

#[test]
fn map_page_in_headless_chromium() {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    assert!(
        Path::new("/usr/bin/chromium").is_file(),
        "Debian's chromium is missing: apt-get install chromium (scripts/test.sh does it)"
    );
    assert!(
        e2e.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: npm ci in tests/e2e (scripts/test.sh does it)"
    );
    let dir = common::scratch_dir("map_dataset");
    let opts = GenerateOptions {
        days: 2,
        seed: 8,
        ..GenerateOptions::default()
    };
    generate(&opts, &dir, |_, _| {}).unwrap();
    // Day 1 at noon is busy; 600x moves drivers visibly within a second.
    let server = LiveServer::start(&dir, &["--start-day", "1", "--speed", "600"]);
    server.control(&format!(
        "{{\"seek\": {}}}",
        1_704_067_200 + 86_400 + 12 * 3600
    ));
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("map_page");
    let out = Command::new("node")
        .arg(e2e.join("map.mjs"))
        .arg(server.addr.to_string())
        .arg(TOKEN)
        .arg(&out_dir)
        .output()
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("ok: no console errors"), "{stdout}");
    assert!(std::fs::metadata(out_dir.join("map.png")).unwrap().len() > 20_000);
}
