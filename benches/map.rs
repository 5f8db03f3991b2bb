//! Map page benchmark: frame rate of the page in headless Chromium with hundreds of drivers
//! on the road, each pinging every frame. Prints its figures: `cargo bench --bench map`
//! (needs Debian's chromium and `npm ci` in tests/e2e, as the tests do).

mod common;

use std::process::Command;

fn main() {
    let dir = common::full_dataset();
    let (mut server, addr) = common::start_server(&dir, &["--paused"]);
    let addr = addr.to_string();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/fps.mjs");
    for drivers in ["100", "300", "600"] {
        let out = Command::new("node")
            .arg(&script)
            .args([addr.as_str(), drivers, "5"])
            .output()
            .expect("node");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let _ = server.kill();
    let _ = server.wait();
}
