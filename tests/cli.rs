//! The command line: help for each subcommand, one-line errors with a non-zero exit.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_caspers-replay"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["serve", "replay", "generate", "inspect"] {
        let (ok, stdout, _) = run(&[sub, "--help"]);
        assert!(
            ok && stdout.contains("Usage: caspers-replay"),
            "{sub}: {stdout}"
        );
    }
    let (ok, stdout, _) = run(&["--help"]);
    assert!(
        ok && stdout.contains("serve") && stdout.contains("replay") && stdout.contains("generate")
    );
}

#[test]
fn user_mistakes_are_one_line_errors() {
    let (ok, _, stderr) = run(&["inspect", "--dataset", "/nonexistent/dataset"]);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: /nonexistent/dataset: no such dataset directory"),
        "{stderr}"
    );

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli_days0");
    let (ok, _, stderr) = run(&["generate", "--days", "0", "--out", dir.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(
        stderr.trim(),
        "error: days must be between 1 and 3650, not 0"
    );
}

#[test]
fn generate_then_inspect() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli_generate");
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let (ok, stdout, stderr) = run(&["generate", "--days", "2", "--seed", "5", "--out", d]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("wrote ") && stdout.contains("over 2 days"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = run(&["inspect", "--dataset", d]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("events, 2024-01-01") && stdout.contains("kitchen 4 Chicago"),
        "{stdout}"
    );
}
