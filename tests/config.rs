//! Configuration a supervisor, container or PaaS gives: every `serve` option from the
//! environment (CASPERS_*), a flag beating the variable, and the presenter's token from a
//! file; a missing or empty token file is a clear error.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::live::{LiveServer, request};

/// One dataset for the tests of this file (they run in parallel).
fn dataset() -> &'static std::path::PathBuf {
    static DS: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DS.get_or_init(|| common::generated_dataset("config_dataset", 2, 81).0)
}

/// A `serve` process with `env` and `args` (and its own dataset and state).
fn serve(env: &[(&str, &str)], args: &[&str]) -> LiveServer {
    let dir = dataset();
    static SERVED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let state = std::env::temp_dir().join(format!(
        "caspers-config-{}-{}.json",
        std::process::id(),
        SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_caspers-replay"));
    cmd.arg("serve")
        .env("CASPERS_DATASET", dir)
        .env("CASPERS_START_DAY", "1")
        .env("CASPERS_STATE", &state)
        .env("CASPERS_FRESH", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args);
    LiveServer::spawn(cmd)
}

fn post_with(addr: SocketAddr, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    request(
        addr,
        "POST",
        "/v1/clock",
        &[("Authorization", &auth)],
        r#"{"speed": 7}"#,
    )
    .0
}

#[test]
fn serve_takes_its_options_from_the_environment_and_a_flag_beats_the_variable() {
    let s = serve(
        &[
            ("CASPERS_BIND", "127.0.0.1:0"),
            ("CASPERS_CONTROL_TOKEN", "from-env"),
            ("CASPERS_SPEED", "120"),
        ],
        &[],
    );
    assert!(
        s.addr.ip().is_loopback() && s.addr.port() != 8080,
        "CASPERS_BIND: {}",
        s.addr
    );
    let clock: serde_json::Value =
        serde_json::from_str(&request(s.addr, "GET", "/v1/clock", &[], "").1).unwrap();
    assert_eq!(clock["speed"], 120.0, "CASPERS_SPEED");
    assert_eq!(post_with(s.addr, "from-env"), 200, "CASPERS_CONTROL_TOKEN");
    drop(s);

    let s = serve(
        &[
            ("CASPERS_BIND", "127.0.0.1:1"),
            ("CASPERS_CONTROL_TOKEN", "from-env"),
        ],
        &["--bind", "127.0.0.1:0", "--control-token", "from-flag"],
    );
    assert_ne!(s.addr.port(), 1, "--bind beats CASPERS_BIND");
    assert_eq!(
        post_with(s.addr, "from-env"),
        403,
        "--control-token beats the variable"
    );
    assert_eq!(post_with(s.addr, "from-flag"), 200);
}

#[test]
fn the_presenters_token_comes_from_a_file() {
    let dir = common::scratch_dir("config_token_file");
    let file = dir.join("token");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let s = serve(
        &[("CASPERS_BIND", "127.0.0.1:0")],
        &["--control-token-file", file.to_str().unwrap()],
    );
    assert_eq!(post_with(s.addr, "from-a-file"), 200);
    assert_eq!(post_with(s.addr, "something-else"), 403);
    drop(s);

    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_caspers-replay"))
            .arg("serve")
            .arg("--dataset")
            .arg(dataset())
            .args(["--start-day", "1", "--bind", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let missing = dir.join("missing");
    let err = run(&["--control-token-file", missing.to_str().unwrap()]);
    assert!(
        err.starts_with("error: --control-token-file ") && err.contains("cannot read it"),
        "{err}"
    );
    let empty = dir.join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let err = run(&["--control-token-file", empty.to_str().unwrap()]);
    assert!(err.contains("the file is empty"), "{err}");
}

#[test]
fn help_names_the_environment_variables() {
    let out = Command::new(env!("CARGO_BIN_EXE_caspers-replay"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "CASPERS_BIND",
        "CASPERS_CONTROL_TOKEN",
        "CASPERS_CONTROL_TOKEN_FILE",
        "CASPERS_NATS",
        "CASPERS_CORS_ORIGIN",
    ] {
        assert!(help.contains(&format!("[env: {var}")), "{var} in\n{help}");
    }
}
