//! The map page, end to end: a real server on 127.0.0.1 and a real headless Chromium
//! (Debian's chromium, driven by playwright-core from tests/e2e/map.mjs).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

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
    let mut node = Command::new("node")
        .arg(e2e.join("map.mjs"))
        .arg(server.addr.to_string())
        .arg(TOKEN)
        .arg(&out_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node must be installed");
    // The script asks for a server restart mid-way: stop this one, start another on the
    // same address, and tell it to go on.
    let mut stdout = String::new();
    let mut server = Some(server);
    for line in BufReader::new(node.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "restart-now" {
            let addr = server.as_ref().unwrap().addr.to_string();
            drop(server.take());
            server = Some(LiveServer::start_at(
                &dir,
                &addr,
                &["--start-day", "1", "--speed", "600"],
            ));
            let mut stdin = node.stdin.take().unwrap();
            stdin.write_all(b"go\n").unwrap();
        }
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let out = node.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("ok: after a server restart"), "{stdout}");
    assert!(stdout.contains("ok: no console errors"), "{stdout}");
    assert!(std::fs::metadata(out_dir.join("map.png")).unwrap().len() > 20_000);
}
