//! A page of another origin in headless Chromium, driven by a test (tests/e2e/page.mjs):
//! it evaluates what the test sends it, and records what the client's feeds deliver.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One Chromium at a time: these tests are heavy for two cores.
pub fn one_browser() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A page of its own origin in headless Chromium (tests/e2e/page.mjs), evaluating what the
/// test sends it.
pub struct Page {
    child: Child,
    stdin: ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    pub origin: String,
}

impl Page {
    pub fn open() -> Page {
        Page::open_with(&[])
    }

    /// The page of `args` (an HTML file and its query) instead of an empty one.
    pub fn open_with(args: &[&str]) -> Page {
        let e2e = super::e2e_dir();
        let mut child = Command::new("node")
            .arg(e2e.join("page.mjs"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node must be installed");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("the page's first line").unwrap();
        let origin = first
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("{first}"))
            .to_string();
        Page {
            child,
            stdin,
            lines,
            origin,
        }
    }

    /// Evaluates one JavaScript expression (awaited) in the page.
    pub fn eval(&mut self, js: &str) -> Value {
        assert!(!js.contains('\n'));
        writeln!(self.stdin, "{js}").unwrap();
        let line = self.lines.next().expect("an answer").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if let Some(e) = v.as_str().and_then(|s| s.strip_prefix("error: ")) {
            panic!("the page threw on {js}: {e}");
        }
        v
    }

    /// Waits (up to `secs`) until `js` is true in the page.
    pub fn until(&mut self, what: &str, js: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.eval(js) != Value::Bool(true) {
            if Instant::now() > deadline {
                let feeds = self.eval(
                    "Object.entries(window.feeds || {}).map(([k, v]) => [k, v.f.status, v.f.position, v.rec.events.length, v.rec.clocks, v.rec.lags, v.rec.errors])",
                );
                panic!("timed out waiting for {what}; the feeds: {feeds}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Loads the client from `server` and starts a feed named `name` on `base` with the
    /// options `options` (a JavaScript object literal), recording what it delivers.
    pub fn feed(&mut self, server: SocketAddr, name: &str, base: &str, options: &str) {
        self.eval(&format!(
            "import('http://{server}/client/caspers-replay.js').then((m) => {{ window.m = m; window.feeds = window.feeds || {{}}; \
             const f = m.connect('{base}', {options}); const rec = {{ events: [], clocks: [], lags: [], errors: [] }}; \
             f.onEvent((e) => rec.events.push(e)); f.onClock((c) => rec.clocks.push(c.reason)); \
             f.onLag((l) => rec.lags.push(l)); f.onError((e) => rec.errors.push(e.kind + ': ' + e.message)); \
             window.feeds['{name}'] = {{ f, rec }}; return true; }})"
        ));
        self.until(
            &format!("feed {name} to open"),
            &format!("window.feeds['{name}'].f.status === 'open'"),
            10,
        );
    }

    pub fn count(&mut self, name: &str) -> usize {
        self.eval(&format!("window.feeds['{name}'].rec.events.length"))
            .as_u64()
            .unwrap() as usize
    }

    /// Waits until feed `name` has delivered at least `n` events.
    pub fn wait_for(&mut self, name: &str, n: usize, secs: u64) {
        self.until(
            &format!("{n} events on {name}"),
            &format!("window.feeds['{name}'].rec.events.length >= {n}"),
            secs,
        );
    }

    /// What feed `name` delivered: (position, the event as the client gives it).
    pub fn events(&mut self, name: &str) -> Vec<(String, Value)> {
        let v = self.eval(&format!(
            "window.feeds['{name}'].rec.events.map((e) => [e.position, e])"
        ));
        v.as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                let mut e = pair[1].clone();
                e.as_object_mut().unwrap().remove("position");
                (pair[0].as_str().unwrap().to_string(), e)
            })
            .collect()
    }

    pub fn record(&mut self, name: &str, what: &str) -> Value {
        self.eval(&format!("window.feeds['{name}'].rec.{what}"))
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
