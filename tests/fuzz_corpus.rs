//! The fuzz corpora (fuzz/corpus/TARGET, kept by scripts/fuzz.sh) replayed as regression
//! tests: every input that once mattered to a fuzz target still passes its checks
//! (fuzz/harness.rs, shared with the targets).

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{target}: {} fails its check", path.display());
        }
        n += 1;
    }
    assert!(n > 0, "{target}: an empty corpus");
}

#[test]
fn websocket_frames() {
    replay("ws_frames", harness::ws_frames);
}

#[test]
fn stream_query_parameters() {
    replay("stream_query", harness::stream_query);
}

#[test]
fn positions() {
    replay("position", harness::position);
}

#[test]
fn clock_changes() {
    replay("clock_change", harness::clock_change);
}

#[test]
fn websocket_filter_messages() {
    replay("filter_message", harness::filter_message_text);
}
