//! Frontend developers' view, in headless Chromium: a page of another origin (its own port)
//! uses the feed with plain `fetch` and `EventSource`, and with the TypeScript client loaded
//! from the server (`/client/caspers-replay.js`). The client delivers exactly the dataset's
//! events over SSE and WebSocket across a `kill -9` and restart of the server, across a
//! switch between two replicas behind a load balancer (real `nats-server`), and across a
//! filter change.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use caspers_replay::dataset::Dataset;
use caspers_replay::events::Filter;
use common::live::{LiveServer, TOKEN, expected};
use common::nats::Nats;
use common::page::{Page, one_browser};
use serde_json::Value;

const DAY1: i64 = 1_704_067_200 + 86_400;

fn dataset() -> &'static (PathBuf, Dataset) {
    static DS: OnceLock<(PathBuf, Dataset)> = OnceLock::new();
    DS.get_or_init(|| common::generated_dataset("client_dataset", 3, 51))
}

/// JSON values equal, numbers compared as numbers (the client re-serializes what it parsed:
/// `9.0` comes back as `9`).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// The client's events are exactly `want` (position, wire JSON): every one once, in order,
/// each with its body parsed.
fn assert_delivered(what: &str, got: &[(String, Value)], want: &[(String, String)]) {
    let positions: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    let wanted: Vec<&str> = want.iter().map(|(p, _)| p.as_str()).collect();
    if positions != wanted {
        let at = positions
            .iter()
            .zip(&wanted)
            .position(|(a, b)| a != b)
            .unwrap_or(positions.len().min(wanted.len()));
        let around = |v: &[&str]| v[at.saturating_sub(2)..(at + 3).min(v.len())].join(" ");
        panic!(
            "{what}: {} events delivered, {} in the window; first difference at {at}: \
             delivered {} against {}",
            got.len(),
            want.len(),
            around(&positions),
            around(&wanted)
        );
    }
    for ((p, event), (_, wire)) in got.iter().zip(want) {
        let mut w: Value = serde_json::from_str(wire).unwrap();
        let body: Value = serde_json::from_str(w["body"].as_str().unwrap()).unwrap();
        w["body"] = body;
        assert!(same_json(event, &w), "{what}: {p}: {event} against {w}");
    }
}

/// What a feed delivered from the second after `start` on. The clock was sought to `start`
/// and paused before the feed connected, and the events of that second are due at once: they
/// may have gone out before the feed was there. Those it did get are checked to be of that
/// second and left out; what follows must be the window from the next second, exactly.
fn after_first_second<T>(
    got: &[(String, T)],
    ds: &Dataset,
    start: i64,
    filter: Filter,
) -> Vec<(String, T)>
where
    T: Clone,
{
    let first = expected(ds, start, start + 1, filter);
    let n = got
        .iter()
        .take_while(|(p, _)| first.iter().any(|(q, _)| q == p))
        .count();
    got[n..].to_vec()
}

fn sim_end(state: &Value) -> i64 {
    state["sim_time"].as_f64().unwrap().floor() as i64 + 1
}

#[test]
fn a_page_of_another_origin_reads_the_feed_and_changes_the_clock_only_when_allowed() {
    let _browser = one_browser();
    let mut page = Page::open();
    let (dir, ds) = dataset();
    let server = LiveServer::start(dir, &["--paused", "--start-day", "1"]);
    let start = DAY1 + 18 * 3600;
    server.control(&format!("{{\"seek\": {start}}}"));
    let s = format!("http://{}", server.addr);

    let clock = page.eval(&format!("fetch('{s}/v1/clock').then((r) => r.json())"));
    assert_eq!(clock["sim_time"], start as f64, "{clock}");
    let own: Value = serde_json::from_str(&server.get("/v1/clock").1).unwrap();
    assert_eq!(clock["dataset_end"], own["dataset_end"]);
    let kitchens = page.eval(&format!("fetch('{s}/v1/kitchens').then((r) => r.json())"));
    assert_eq!(kitchens.as_array().unwrap().len(), 4);

    // A plain EventSource, the server's defaults: exactly the window, byte for byte.
    page.eval(&format!(
        "new Promise((resolve) => {{ window.es = {{ messages: [] }}; const s = new EventSource('{s}/v1/events?location_id=1,3'); \
         s.onmessage = (e) => window.es.messages.push([e.lastEventId, e.data]); s.addEventListener('clock', () => resolve(true)); }})"
    ));
    server.control(r#"{"speed": 3600, "paused": false}"#);
    std::thread::sleep(Duration::from_millis(800));
    let end = sim_end(&server.control(r#"{"paused": true}"#));
    let want = expected(ds, start + 1, end, Filter::new(&[1, 3], &[]));
    assert!(want.len() > 40, "a busy window: {}", want.len());
    page.until(
        "the window's events",
        &format!("window.es.messages.length >= {}", want.len()),
        10,
    );
    std::thread::sleep(Duration::from_millis(200));
    let got: Vec<(String, String)> =
        serde_json::from_value(page.eval("window.es.messages")).unwrap();
    let got = after_first_second(&got, ds, start, Filter::new(&[1, 3], &[]));
    assert!(got == want, "every event once, in order, byte for byte");

    // Changing the clock from this origin: refused by default, in an answer the page can
    // read (its JSON says what to pass), the clock untouched.
    // The page's POST of a speed change, and what it reads of the answer (`then`).
    let post = |page: &mut Page, s: &str, then: &str| {
        page.eval(&format!(
            "fetch('{s}/v1/clock', {{ method: 'POST', headers: {{ 'Content-Type': 'application/json', Authorization: 'Bearer {TOKEN}' }}, \
             body: JSON.stringify({{ speed: 5 }}) }}).then({then}, (e) => 'blocked: ' + e.message)"
        ))
    };
    assert_eq!(post(&mut page, &s, "(r) => r.status"), 403);
    let message = post(&mut page, &s, "(r) => r.json().then((j) => j.error)");
    assert!(
        message
            .as_str()
            .unwrap()
            .contains(&format!("--cors-origin {}", page.origin)),
        "{message}"
    );
    let refused = page.eval(&format!(
        "import('{s}/client/caspers-replay.js').then((m) => m.control('{s}', '{TOKEN}').setSpeed(5).then(() => 'changed', (e) => e.name + ' ' + e.status + ' ' + e.message))"
    ));
    assert!(
        refused
            .as_str()
            .unwrap()
            .starts_with("ControlError 403 a page of origin"),
        "{refused}"
    );
    let (_, text) = server.get("/v1/clock");
    assert_ne!(serde_json::from_str::<Value>(&text).unwrap()["speed"], 5.0);
    // Reading over WebSocket is open to this origin even when the server lists others.
    let listed = LiveServer::start(
        dir,
        &[
            "--paused",
            "--start-day",
            "1",
            "--cors-origin",
            "http://localhost:5173",
        ],
    );
    listed.control(&format!("{{\"seek\": {start}}}"));
    let l = format!("http://{}", listed.addr);
    page.feed(
        listed.addr,
        "ws-any-origin",
        &l,
        "{ transport: 'websocket', locationIds: [1] }",
    );
    listed.control(r#"{"speed": 3600, "paused": false}"#);
    page.wait_for("ws-any-origin", 5, 10);
    // Allowed with --cors-origin for this page's origin.
    let allowed = LiveServer::start(
        dir,
        &[
            "--paused",
            "--start-day",
            "1",
            "--cors-origin",
            &page.origin,
        ],
    );
    let a = format!("http://{}", allowed.addr);
    assert_eq!(post(&mut page, &a, "(r) => r.status"), 200);
    let (_, text) = allowed.get("/v1/clock");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["speed"], 5.0);
    // The client's presenter helper, from the same page.
    let state = page.eval(&format!(
        "import('{a}/client/caspers-replay.js').then((m) => m.control('{a}', '{TOKEN}').setSpeed(7))"
    ));
    assert_eq!(state["speed"], 7.0);
    let refused = page.eval(&format!(
        "import('{a}/client/caspers-replay.js').then((m) => m.control('{a}', 'wrong').pause().then(() => 'changed', (e) => e.name + ' ' + e.status + ' ' + e.message))"
    ));
    assert_eq!(refused, "ControlError 403 wrong presenter token");
}

#[test]
fn the_client_delivers_every_event_once_across_kill_9_and_restart() {
    let _browser = one_browser();
    let mut page = Page::open();
    let (dir, ds) = dataset();
    let state = common::scratch_dir("client_restart").join("clock.json");
    let state = state.to_str().unwrap();
    let mut server = LiveServer::start(
        dir,
        &["--state", state, "--fresh", "--paused", "--start-day", "1"],
    );
    let start = DAY1 + 11 * 3600;
    server.control(&format!("{{\"seek\": {start}}}"));
    let s = format!("http://{}", server.addr);
    page.feed(
        server.addr,
        "sse",
        &s,
        "{ transport: 'sse', locationIds: [1, 2] }",
    );
    page.feed(
        server.addr,
        "ws",
        &s,
        "{ transport: 'websocket', locationIds: [3, 4] }",
    );
    server.control(r#"{"speed": 3600, "paused": false}"#);
    page.wait_for("sse", 20, 10);
    page.wait_for("ws", 20, 10);

    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let before = (page.count("sse"), page.count("ws"));
    std::thread::sleep(Duration::from_millis(300));
    let addr = server.addr.to_string();
    drop(server);
    // The same command line, as a supervisor restarts it (without --fresh).
    let server = LiveServer::start_at(
        dir,
        &addr,
        &["--state", state, "--paused", "--start-day", "1"],
    );
    page.wait_for("sse", before.0 + 10, 20);
    page.wait_for("ws", before.1 + 10, 20);
    let end = sim_end(&server.control(r#"{"paused": true}"#));

    for (name, filter) in [("sse", [1, 2]), ("ws", [3, 4])] {
        let filter = Filter::new(&filter, &[]);
        let want = expected(ds, start + 1, end, filter);
        let deadline = Instant::now() + Duration::from_secs(15);
        while page.count(name) < want.len() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(200));
        let got = after_first_second(&page.events(name), ds, start, filter);
        assert_delivered(name, &got, &want);
        let clocks = page.record(name, "clocks");
        assert!(
            clocks
                .as_array()
                .unwrap()
                .contains(&Value::from("restarted")),
            "{name} is told the server restarted: {clocks}"
        );
        let errors = page.record(name, "errors");
        assert!(
            errors
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e.as_str().unwrap().starts_with("connection")),
            "{name} says the connection dropped: {errors}"
        );
    }
}

/// A TCP load balancer on 127.0.0.1 with one backend at a time; a switch cuts every
/// connection, as a balancer does when a replica leaves.
struct Balancer {
    addr: SocketAddr,
    backend: Arc<Mutex<SocketAddr>>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Balancer {
    fn start(backend: SocketAddr) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let backend = Arc::new(Mutex::new(backend));
        let open = Arc::new(Mutex::new(Vec::<TcpStream>::new()));
        let (to, conns) = (Arc::clone(&backend), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let target = *to.lock().unwrap();
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                conns
                    .lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (mut from, mut into) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut into);
                        let _ = into.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Balancer {
            addr,
            backend,
            open,
        }
    }

    fn switch(&self, to: SocketAddr) {
        *self.backend.lock().unwrap() = to;
        for c in self.open.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn the_client_moves_between_replicas_behind_a_balancer_with_no_gap_or_duplicate() {
    let _browser = one_browser();
    let mut page = Page::open();
    let (dir, ds) = dataset();
    let nats = Nats::start("client_replicas");
    let url = nats.url();
    let replica = || LiveServer::start(dir, &["--nats", &url, "--paused", "--start-day", "1"]);
    let (a, b) = (replica(), replica());
    let start = DAY1 + 12 * 3600;
    a.control(&format!("{{\"seek\": {start}, \"paused\": true}}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while serde_json::from_str::<Value>(&b.get("/v1/clock").1).unwrap()["sim_time"] != start as f64
    {
        assert!(Instant::now() < deadline, "B follows A's seek");
        std::thread::sleep(Duration::from_millis(20));
    }
    let balancer = Balancer::start(a.addr);
    let base = format!("http://{}", balancer.addr);
    page.feed(
        a.addr,
        "sse",
        &base,
        "{ transport: 'sse', locationIds: [1] }",
    );
    page.feed(
        a.addr,
        "ws",
        &base,
        "{ transport: 'websocket', locationIds: [2] }",
    );
    a.control(r#"{"speed": 3600, "paused": false}"#);
    page.wait_for("sse", 15, 10);
    page.wait_for("ws", 15, 10);

    balancer.switch(b.addr);
    let before = (page.count("sse"), page.count("ws"));
    page.wait_for("sse", before.0 + 10, 20);
    page.wait_for("ws", before.1 + 10, 20);
    let end = sim_end(&b.control(r#"{"paused": true}"#));
    for (name, filter) in [("sse", [1]), ("ws", [2])] {
        let filter = Filter::new(&filter, &[]);
        let want = expected(ds, start + 1, end, filter);
        page.until(
            &format!("{name}: the window"),
            &format!("window.feeds['{name}'].rec.events.length >= {}", want.len()),
            15,
        );
        std::thread::sleep(Duration::from_millis(200));
        let got = after_first_second(&page.events(name), ds, start, filter);
        assert_delivered(name, &got, &want);
    }
}

#[test]
fn a_filter_change_through_the_client_loses_and_repeats_nothing() {
    let _browser = one_browser();
    let mut page = Page::open();
    let (dir, ds) = dataset();
    let server = LiveServer::start(dir, &["--paused", "--start-day", "1"]);
    let start = DAY1 + 18 * 3600;
    server.control(&format!("{{\"seek\": {start}}}"));
    let s = format!("http://{}", server.addr);
    page.feed(
        server.addr,
        "sse",
        &s,
        "{ transport: 'sse', locationIds: [1] }",
    );
    page.feed(
        server.addr,
        "ws",
        &s,
        "{ transport: 'websocket', locationIds: [1] }",
    );
    // The same events through `for await`, for those who prefer it.
    page.feed(
        server.addr,
        "iter",
        &s,
        "{ transport: 'websocket', locationIds: [3] }",
    );
    page.eval(
        "(() => { window.iterated = []; (async () => { for await (const e of window.feeds.iter.f) { \
         window.iterated.push(e.position); if (window.iterated.length === 10) break; } window.iterDone = true; })(); return true; })()",
    );
    server.control(r#"{"speed": 3600, "paused": false}"#);
    page.wait_for("sse", 10, 10);
    page.wait_for("ws", 10, 10);
    page.until(
        "ten events through for await",
        "window.iterDone === true",
        10,
    );
    assert_eq!(
        page.eval("window.iterated"),
        page.eval("window.feeds.iter.rec.events.slice(0, 10).map((e) => e.position)"),
        "the iterator yields what onEvent sees"
    );
    for name in ["sse", "ws"] {
        page.eval(&format!(
            "window.feeds['{name}'].f.setFilter({{ locationIds: [2] }})"
        ));
    }
    std::thread::sleep(Duration::from_millis(800));
    let end = sim_end(&server.control(r#"{"paused": true}"#));
    let both = expected(ds, start + 1, end, Filter::new(&[1, 2], &[]));
    for name in ["sse", "ws"] {
        std::thread::sleep(Duration::from_millis(300));
        let got = after_first_second(&page.events(name), ds, start, Filter::new(&[1], &[]));
        // Up to the last kitchen-1 event delivered, kitchen 1; after it, kitchen 2.
        let last_1 = got
            .iter()
            .rposition(|(_, e)| e["location_id"] == 1)
            .expect("kitchen 1's events");
        assert!(
            got[last_1 + 1..].iter().all(|(_, e)| e["location_id"] == 2),
            "{name}: after the change only the new filter's events"
        );
        let switch = both
            .iter()
            .position(|(p, _)| *p == got[last_1].0)
            .expect("the last kitchen-1 event is in the window");
        let want: Vec<(String, String)> = both
            .iter()
            .enumerate()
            .filter(|(i, (_, e))| {
                let kitchen_1 = e.contains("\"location_id\":1,");
                if *i <= switch { kitchen_1 } else { !kitchen_1 }
            })
            .map(|(_, pe)| pe.clone())
            .collect();
        assert!(
            want.len() > last_1 + 10,
            "{name}: kitchen 2's events after the change"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while page.count(name) < want.len() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let got = after_first_second(&page.events(name), ds, start, Filter::new(&[1], &[]));
        assert_delivered(name, &got, &want);
    }
}

#[test]
fn the_example_order_board_runs_from_its_own_origin() {
    let _browser = one_browser();
    let (dir, _) = dataset();
    let server = LiveServer::start(dir, &["--paused", "--start-day", "1"]);
    server.control(&format!("{{\"seek\": {}}}", DAY1 + 18 * 3600));
    let board = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/web/index.html");
    let query = format!("server=http://{}&kitchen=2", server.addr);
    let mut page = Page::open_with(&[board.to_str().unwrap(), &query]);
    page.until(
        "the board's feed",
        "window.board !== undefined && window.board.feed.status === 'open'",
        10,
    );
    assert_eq!(
        page.eval("document.getElementById('kitchen').options.length"),
        4
    );
    // The snapshot fills the board at once; then the orders move.
    page.until(
        "orders on the board",
        "document.querySelectorAll('.order').length > 0",
        10,
    );
    server.control(r#"{"speed": 3600, "paused": false}"#);
    page.until(
        "an order on the road",
        "document.querySelectorAll('#road .order').length > 0",
        10,
    );
    let columns = page.eval("['new', 'cooking', 'ready', 'road'].map((c) => document.querySelectorAll('#' + c + ' .order').length)");
    assert!(
        columns
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>()
            > 0,
        "{columns}"
    );
    assert_eq!(
        page.eval("document.getElementById('status').textContent"),
        "live"
    );
    // Another kitchen: the board empties and fills again from that kitchen's snapshot.
    page.eval("(() => { const s = document.getElementById('kitchen'); s.value = '4'; s.dispatchEvent(new Event('change')); return true; })()");
    page.until(
        "kitchen 4's orders",
        "document.querySelectorAll('.order').length > 0 && window.board.feed.status === 'open'",
        10,
    );
}

#[test]
fn a_page_makes_a_session_of_its_own_steps_it_and_gets_exactly_the_window() {
    let _browser = one_browser();
    let mut page = Page::open();
    let (dir, ds) = dataset();
    let server = LiveServer::start(dir, &["--paused", "--start-day", "1"]);
    let shared_before: Value = serde_json::from_str(&server.get("/v1/clock").1).unwrap();
    let s = format!("http://{}", server.addr);
    let start = DAY1 + 18 * 3600;
    let id = page.eval(&format!(
        "import('{s}/client/caspers-replay.js').then((m) => m.createSession('{s}', {{ start: new Date({start} * 1000), paused: true }})) \
         .then((session) => {{ window.sess = session; return session.id; }})"
    ));
    assert!(id.is_string(), "{id}");
    page.feed(
        server.addr,
        "session",
        &s,
        "{ session: window.sess.id, locationIds: [1] }",
    );
    let stepped = page.eval("window.sess.control.step(600).then((c) => [c.sim_time, c.paused])");
    assert_eq!(stepped[0].as_f64(), Some((start + 600) as f64), "{stepped}");
    assert_eq!(stepped[1], true, "a step leaves it paused");
    let want = expected(ds, start + 1, start + 601, Filter::new(&[1], &[]));
    assert!(want.len() > 5, "a busy window: {}", want.len());
    page.wait_for("session", want.len(), 10);
    std::thread::sleep(Duration::from_millis(300));
    let got: Vec<String> = page.events("session").into_iter().map(|e| e.0).collect();
    let want: Vec<String> = want.into_iter().map(|e| e.0).collect();
    assert_eq!(got, want, "exactly the stepped window, once each, in order");
    assert_eq!(
        page.record("session", "clocks"),
        serde_json::json!(["connected", "step"])
    );
    let shared_after: Value = serde_json::from_str(&server.get("/v1/clock").1).unwrap();
    assert_eq!(
        shared_before["sim_time"], shared_after["sim_time"],
        "the shared clock did not move"
    );
    let ended = page.eval("window.sess.end().then(() => 'ended')");
    assert_eq!(ended, "ended");
    assert_eq!(
        server
            .get(&format!("/v1/sessions/{}", id.as_str().unwrap()))
            .0,
        410
    );
}
