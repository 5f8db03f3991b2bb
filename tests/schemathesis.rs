//! The REST endpoints fuzzed from their contract: schemathesis (PyPI) generates requests
//! from docs/openapi.yaml against a real server and checks every answer: no 500, no crash,
//! each status, content type, header and body as the document says, a 405 for methods a
//! path does not take, authentication honoured. Two checks are left out, with reason:
//! whether a schema-valid request is accepted (a seek must fall inside the dataset, which a
//! schema cannot know) and whether a schema-invalid one is refused (unknown query
//! parameters of the clock's POST are ignored, and a speed of 1e6 plus 1e-10 is 1e6 to
//! a float). The streams (`/v1/events`, `/v1/ws`, and a session's) never end and are
//! tested apart.

mod common;

use std::process::Command;

use common::live::{LiveServer, TOKEN};

#[test]
fn schemathesis_finds_the_server_true_to_its_openapi_document() {
    let st = Command::new(common::venv_program("st"))
        .arg("--version")
        .output();
    assert!(
        st.is_ok_and(|o| o.status.success()),
        "schemathesis is missing: bash scripts/test.sh installs it into .venv"
    );
    let (dir, _) = common::generated_dataset("schemathesis_dataset", 2, 71);
    let server = LiveServer::start(&dir, &["--paused", "--start-day", "1"]);
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(common::venv_program("st"))
        .arg("run")
        .arg(repo.join("docs/openapi.yaml"))
        .args(["--url", &format!("http://{}", server.addr)])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--exclude-path", "/v1/events", "--exclude-path", "/v1/ws"])
        .args([
            "--exclude-path",
            "/v1/sessions/{id}/events",
            "--exclude-path",
            "/v1/sessions/{id}/ws",
        ])
        .args(["--checks", "all"])
        .args([
            "--exclude-checks",
            "positive_data_acceptance,negative_data_rejection",
        ])
        .args(["--max-examples", "100", "--seed", "20261130", "--no-color"])
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Tested: 20"),
        "every REST operation was tested:\n{stdout}"
    );
    assert_eq!(server.get("/healthz").0, 200, "the server is still up");
}
