//! The map page and the browser's WebSocket, end to end: a real server on 127.0.0.1 and a
//! real headless Chromium (Debian's chromium, driven by playwright-core from tests/e2e).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use caspers_replay::events::Filter;
use common::live::{LiveServer, TOKEN};

#[test]
fn map_page_in_headless_chromium() {
    let e2e = common::e2e_dir();
    let (dir, _) = common::generated_dataset("map_dataset", 2, 8);
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
    assert!(
        stdout.contains("ok: \"rehearse from here\" opens a session")
            && stdout.contains("ok: the rehearsal's keys drive its own clock"),
        "{stdout}"
    );
    assert!(std::fs::metadata(out_dir.join("map.png")).unwrap().len() > 20_000);
}

/// A browser's WebSocket, with permessage-deflate (Chromium always offers it) and without
/// (the server declines with --no-ws-deflate), receives exactly the dataset's events of a
/// window, and the server reads the browser's compressed messages.
#[test]
fn a_browser_websocket_gets_exactly_the_window_with_and_without_deflate() {
    let e2e = common::e2e_dir();
    let (dir, ds) = common::generated_dataset("browser_ws_dataset", 2, 8);
    let start = 1_704_067_200 + 86_400 + 18 * 3600;
    for (flags, extension) in [
        (&[][..], "permessage-deflate; server_no_context_takeover"),
        (&["--no-ws-deflate"][..], ""),
    ] {
        let server = LiveServer::start(
            &dir,
            &[&["--paused", "--start-day", "1"][..], flags].concat(),
        );
        server.control(&format!("{{\"seek\": {start}}}"));
        let out_file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("browser-ws-{}.jsonl", flags.len()));
        let mut node = Command::new("node")
            .arg(e2e.join("websocket.mjs"))
            .arg(server.addr.to_string())
            .arg("?location_id=2,4")
            .arg(&out_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node must be installed");
        let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
        let ready = lines.next().expect("the script's first line").unwrap();
        assert_eq!(ready, format!("ready extensions={extension}"));
        server.control(r#"{"speed": 3600, "paused": false}"#);
        std::thread::sleep(std::time::Duration::from_millis(700));
        let state = server.control(r#"{"paused": true}"#);
        let end = state["sim_time"].as_f64().unwrap().floor() as i64 + 1;
        let want = common::live::expected(&ds, start, end, Filter::new(&[2, 4], &[]));
        assert!(want.len() > 50, "a busy window: {}", want.len());
        let mut stdin = node.stdin.take().unwrap();
        writeln!(stdin, "{}", want.len()).unwrap();
        let rest: Vec<String> = lines.map(Result::unwrap).collect();
        let out = node.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{rest:?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            rest.iter()
                .any(|l| l.contains("location_id 77 is not in this dataset")),
            "the server answers the browser's filter message: {rest:?}"
        );
        let mut got = Vec::new();
        for line in std::fs::read_to_string(&out_file).unwrap().lines() {
            got.extend(common::live::ws_message_events(line));
        }
        assert_eq!(got.len(), want.len());
        assert!(got == want, "every event, in order, byte for byte");
    }
}

/// A 1x1 PNG (one opaque pixel), what the test's tile server answers for every tile.
const PIXEL_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0x60, 0x68, 0x60, 0x00,
    0x00, 0x00, 0x83, 0x00, 0x81, 0xc1, 0xa8, 0x69, 0x4d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

#[test]
fn with_tiles_the_page_draws_the_online_layer_from_the_given_server() {
    use std::io::Read;
    let e2e = common::e2e_dir();
    // A tile server on 127.0.0.1 that records the paths asked for.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tile_base = format!("http://{}", listener.local_addr().unwrap());
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = std::sync::Arc::clone(&asked);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            if let Some(path) = head.split(' ').nth(1) {
                seen.lock().unwrap().push(path.to_string());
            }
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
                    PIXEL_PNG.len()
                )
                .as_bytes(),
            );
            let _ = s.write_all(PIXEL_PNG);
        }
    });
    let (dir, _) = common::generated_dataset("map_tiles_dataset", 1, 9);
    let template = format!("{tile_base}/{{z}}/{{x}}/{{y}}.png");
    let server = LiveServer::start(&dir, &["--start-day", "0", "--tiles", &template]);
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("map_page");
    let out = Command::new("node")
        .arg(e2e.join("tiles.mjs"))
        .arg(server.addr.to_string())
        .arg(&tile_base)
        .arg(&out_dir)
        .output()
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The tiles asked for are Web Mercator tiles around San Francisco's kitchen.
    let tiles: Vec<(u32, f64, f64)> = asked
        .lock()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let mut parts = p
                .trim_start_matches('/')
                .trim_end_matches(".png")
                .split('/');
            let z: u32 = parts.next()?.parse().ok()?;
            let x: f64 = parts.next()?.parse().ok()?;
            let y: f64 = parts.next()?.parse().ok()?;
            Some((z, x, y))
        })
        .collect();
    assert!(tiles.len() >= 4, "{tiles:?}");
    let (lat, lon) = (37.791024f64, -122.392865f64);
    assert!(
        tiles.iter().any(|&(z, x, y)| {
            let n = f64::from(1u32 << z);
            let kx = ((lon + 180.0) / 360.0 * n).floor();
            let r = lat.to_radians();
            let ky =
                ((1.0 - (r.tan() + 1.0 / r.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor();
            (10..=17).contains(&z) && x == kx && y == ky
        }),
        "no tile holds the kitchen: {tiles:?}"
    );
}
