//! The API as a contract: docs/asyncapi.yaml and docs/openapi.yaml parse with the
//! ecosystem's parsers and describe what the real server does (every message of a test
//! session, every REST answer, every route); the TypeScript client's committed build is what
//! its sources and schema/event.schema.json build to.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::live::{LiveServer, SseClient, TOKEN, exchange};
use serde_json::{Value, json};

const DAY1: i64 = 1_704_067_200 + 86_400;

fn dataset() -> &'static PathBuf {
    static DS: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DS.get_or_init(|| common::generated_dataset("contract_dataset", 2, 41).0)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The routes src/http/mod.rs registers (`endpoint("PATH", ..)` and its methods), as
/// `[method, path]`.
fn registered_routes() -> Vec<(String, String)> {
    let source = std::fs::read_to_string(repo().join("src/http/mod.rs")).unwrap();
    let mut routes = Vec::new();
    for part in source.split(".service(").skip(1) {
        let Some(rest) = part.trim_start().strip_prefix("endpoint(\"") else {
            continue;
        };
        let (path, rest) = rest.split_once('"').unwrap();
        for method in ["get", "post", "put", "delete", "patch"] {
            if rest.contains(&format!("web::{method}()")) {
                routes.push((method.to_ascii_uppercase(), path.to_string()));
            }
        }
    }
    assert!(routes.len() > 10, "found the routes: {routes:?}");
    routes
}

/// Records what a test session receives, for contract.mjs.
#[derive(Default)]
struct Session(Vec<Value>);

impl Session {
    fn message(&mut self, channel: &str, name: &str, payload: Value) {
        self.0
            .push(json!({"channel": channel, "name": name, "payload": payload}));
    }

    fn rest(
        &mut self,
        server: &LiveServer,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> u16 {
        self.rest_answer(server, method, path, headers, body).0
    }

    /// [`Session::rest`], with the answer's body.
    fn rest_answer(
        &mut self,
        server: &LiveServer,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String) {
        let a = exchange(server.addr, method, path, headers, body);
        let content_type = a
            .header("content-type")
            .map(|t| t.split(';').next().unwrap().trim().to_string());
        let json_body = content_type.as_deref() == Some("application/json");
        self.0.push(json!({"rest": {
            "method": method, "path": path.split('?').next().unwrap(), "status": a.status,
            "type": content_type,
            "body": if json_body { a.body.clone() } else { String::new() },
        }}));
        (a.status, a.body)
    }

    fn sse(&mut self, m: &common::live::SseMessage) {
        let name = m.event.as_deref().unwrap_or("message");
        self.message("sse", name, serde_json::from_str(&m.data).unwrap());
    }

    fn names(&self, channel: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .iter()
            .filter(|v| v["channel"] == channel)
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

fn ws_read(
    ws: &mut tungstenite::WebSocket<std::net::TcpStream>,
    session: &mut Session,
) -> Option<Value> {
    match ws.read() {
        Ok(tungstenite::Message::Text(t)) => {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            session.message("websocket", v["type"].as_str().unwrap(), v.clone());
            Some(v)
        }
        Ok(tungstenite::Message::Close(Some(frame))) => {
            let v = json!({"code": u16::from(frame.code), "reason": frame.reason.as_str()});
            session.message("websocket", "close", v.clone());
            Some(json!({"type": "close"}))
        }
        Ok(_) => Some(Value::Null),
        Err(_) => None,
    }
}

/// Reads WebSocket messages until one of `kind` (or 5 s).
fn ws_until(
    ws: &mut tungstenite::WebSocket<std::net::TcpStream>,
    session: &mut Session,
    kind: &str,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match ws_read(ws, session) {
            Some(v) if v["type"] == kind => return v,
            Some(_) => {}
            None => break,
        }
    }
    panic!("no {kind} message on the WebSocket");
}

#[test]
fn the_documents_parse_and_describe_every_message_answer_and_route_of_a_session() {
    let e2e = common::e2e_dir();
    let dir = dataset();
    let mut server = LiveServer::start(
        dir,
        &[
            "--paused",
            "--start-day",
            "1",
            "--queue-kib",
            "16",
            "--max-sessions",
            "2",
        ],
    );
    server.control(&format!("{{\"seek\": {}}}", DAY1 + 17 * 3600));
    let mut session = Session::default();

    // REST: each route, the clock's errors, the streams' refusals.
    let auth = format!("Bearer {TOKEN}");
    for path in [
        "/",
        "/basemap.json",
        "/client/caspers-replay.js",
        "/asyncapi.yaml",
        "/openapi.yaml",
        "/healthz",
        "/metrics",
        "/v1/clock",
        "/v1/kitchens",
        "/v1/map",
    ] {
        assert_eq!(session.rest(&server, "GET", path, &[], ""), 200, "{path}");
    }
    let clock = |session: &mut Session, headers: &[(&str, &str)], body: &str| {
        session.rest(&server, "POST", "/v1/clock", headers, body)
    };
    assert_eq!(
        clock(
            &mut session,
            &[("Authorization", &auth)],
            r#"{"speed": 120}"#
        ),
        200
    );
    assert_eq!(
        clock(
            &mut session,
            &[("Authorization", &auth)],
            r#"{"speed": -1}"#
        ),
        400
    );
    assert_eq!(
        clock(&mut session, &[("Authorization", &auth)], r#"{"warp": 9}"#),
        400
    );
    assert_eq!(clock(&mut session, &[], r#"{"speed": 120}"#), 401);
    assert_eq!(
        clock(
            &mut session,
            &[("Authorization", "Bearer nope")],
            r#"{"speed": 1}"#
        ),
        403
    );
    assert_eq!(
        clock(
            &mut session,
            &[("Authorization", &auth), ("Origin", "http://elsewhere:1")],
            r#"{"speed": 1}"#
        ),
        403
    );
    assert_eq!(
        session.rest(&server, "GET", "/v1/events?location_id=77", &[], ""),
        400
    );
    assert_eq!(
        session.rest(&server, "GET", "/v1/ws?snapshot=2", &[], ""),
        400
    );
    assert_eq!(session.rest(&server, "GET", "/v1/ws", &[], ""), 400);

    // A replay session: made, read, stepped, refused, streamed, ended.
    let (status, made) = session.rest_answer(
        &server,
        "POST",
        "/v1/sessions",
        &[],
        &format!(
            "{{\"start\": \"{}\", \"paused\": true}}",
            caspers_replay::time::format_rfc3339(DAY1 + 18 * 3600)
        ),
    );
    assert_eq!(status, 201, "{made}");
    let made: Value = serde_json::from_str(&made).unwrap();
    let base = made["urls"]["session"].as_str().unwrap().to_string();
    let owner = format!("Bearer {}", made["token"].as_str().unwrap());
    let mut on_session = SseClient::connect(server.addr, &format!("{base}/events"), None);
    for (method, path, headers, body, status) in [
        (
            "POST",
            "/v1/sessions".to_string(),
            vec![],
            r#"{"warp": 1}"#,
            400,
        ),
        ("GET", base.clone(), vec![], "", 200),
        ("GET", format!("{base}/clock"), vec![], "", 200),
        (
            "POST",
            format!("{base}/clock"),
            vec![("Authorization", owner.as_str())],
            // A few minutes: the queue (--queue-kib 16) holds them.
            r#"{"step": 120}"#,
            200,
        ),
        (
            "POST",
            format!("{base}/clock"),
            vec![("Authorization", owner.as_str())],
            r#"{"paused": false, "step": 60}"#,
            409,
        ),
        (
            "POST",
            format!("{base}/clock"),
            vec![],
            r#"{"step": 60}"#,
            401,
        ),
        (
            "POST",
            format!("{base}/clock"),
            vec![("Authorization", auth.as_str())],
            r#"{"step": 60}"#,
            403,
        ),
        ("GET", "/v1/sessions/nope".to_string(), vec![], "", 404),
        (
            "GET",
            "/v1/sessions/nope/events".to_string(),
            vec![],
            "",
            404,
        ),
        ("DELETE", base.clone(), vec![], "", 401),
        ("POST", "/v1/sessions".to_string(), vec![], "", 201),
        ("POST", "/v1/sessions".to_string(), vec![], "", 429),
    ] {
        assert_eq!(
            session.rest(&server, method, &path, &headers, body),
            status,
            "{method} {path} {body}"
        );
    }
    let mut session_events = 0;
    while session_events < 3 {
        let m = on_session.next().expect("the session's stepped events");
        session_events += usize::from(m.id.is_some());
        session.sse(&m);
    }
    assert_eq!(
        session.rest(&server, "DELETE", &base, &[("Authorization", &owner)], ""),
        204
    );
    while let Some(m) = on_session.next() {
        session.sse(&m);
    }
    assert_eq!(session.rest(&server, "GET", &base, &[], ""), 410);

    // SSE: a snapshot, a resume that cannot be honoured, events, a lag, the close.
    let mut sse = SseClient::connect(server.addr, "/v1/events?snapshot=1&from=0000-0-1", None);
    let mut slow = SseClient::connect(server.addr, "/v1/events", None);
    // WebSocket: a snapshot, events, a filter change and a refused one, the close.
    let mut ws = common::live::ws_connect(&server, "?snapshot=1");
    server.control(r#"{"speed": 3600, "paused": false}"#);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sse_events = 0;
    while sse_events < 50 && Instant::now() < deadline {
        let Some(m) = sse.next() else { break };
        sse_events += usize::from(m.id.is_some());
        session.sse(&m);
    }
    assert!(sse_events >= 50, "events over SSE");
    ws_until(&mut ws, &mut session, "events");
    ws.send(tungstenite::Message::text(
        r#"{"type":"filter","location_id":[2],"event_type":["driver_ping"]}"#,
    ))
    .unwrap();
    ws_until(&mut ws, &mut session, "filter");
    ws.send(tungstenite::Message::text(
        r#"{"type":"filter","location_id":[77]}"#,
    ))
    .unwrap();
    ws_until(&mut ws, &mut session, "error");
    ws_until(&mut ws, &mut session, "events");
    // The whole dataset at 86400x: more than the slow client's queue and socket hold.
    server.control(r#"{"seek_day": 0, "speed": 86400}"#);
    std::thread::sleep(Duration::from_millis(2500));
    server.control(r#"{"paused": true}"#);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match slow.next() {
            Some(m) if m.event.as_deref() == Some("lagged") => {
                session.sse(&m);
                break;
            }
            Some(_) => {}
            None => panic!("the slow client's stream ended before its lagged message"),
        }
    }
    // The clients read what the server sent, then it shuts down and says so.
    let end = std::thread::spawn({
        let pid = server.child.id();
        move || {
            std::thread::sleep(Duration::from_millis(300));
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    });
    while let Some(m) = sse.next() {
        session.sse(&m);
    }
    while let Some(v) = ws_read(&mut ws, &mut session) {
        if v["type"] == "close" {
            break;
        }
    }
    end.join().unwrap();
    assert!(server.terminate().success());

    let sse_names = session.names("sse");
    let ws_names = session.names("websocket");
    for name in ["message", "clock", "snapshot", "lagged", "error", "close"] {
        assert!(
            sse_names.contains(&name.to_string()),
            "SSE {name}: {sse_names:?}"
        );
    }
    for name in ["events", "clock", "snapshot", "error", "filter", "close"] {
        assert!(
            ws_names.contains(&name.to_string()),
            "WebSocket {name}: {ws_names:?}"
        );
    }

    let out = common::scratch_dir("contract");
    let mut file = std::fs::File::create(out.join("session.jsonl")).unwrap();
    for v in &session.0 {
        writeln!(file, "{v}").unwrap();
    }
    let routes: Vec<[String; 2]> = registered_routes()
        .into_iter()
        .map(|(m, p)| [m, p])
        .collect();
    std::fs::write(
        out.join("routes.json"),
        serde_json::to_string(&routes).unwrap(),
    )
    .unwrap();
    let run = Command::new("node")
        .arg(e2e.join("contract.mjs"))
        .arg(repo())
        .arg(out.join("session.jsonl"))
        .arg(out.join("routes.json"))
        .output()
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("every message of the session is documented and valid"),
        "{stdout}"
    );
    assert!(
        stdout.contains("routes are the OpenAPI document's"),
        "{stdout}"
    );
}

#[test]
fn the_server_serves_the_documents_and_the_client_as_committed() {
    let dir = dataset();
    let server = LiveServer::start(dir, &["--paused", "--start-day", "1"]);
    for (path, file, kind) in [
        ("/asyncapi.yaml", "docs/asyncapi.yaml", "application/yaml"),
        ("/openapi.yaml", "docs/openapi.yaml", "application/yaml"),
        (
            "/client/caspers-replay.js",
            "clients/js/dist/caspers-replay.js",
            "text/javascript",
        ),
        (
            "/client/caspers-replay.d.ts",
            "clients/js/dist/caspers-replay.d.ts",
            "text/plain",
        ),
        (
            "/client/events.generated.d.ts",
            "clients/js/dist/events.generated.d.ts",
            "text/plain",
        ),
        (
            "/client/caspers-replay.js.map",
            "clients/js/dist/caspers-replay.js.map",
            "application/json",
        ),
    ] {
        let a = exchange(
            server.addr,
            "GET",
            path,
            &[("Origin", "http://localhost:5173")],
            "",
        );
        assert_eq!(a.status, 200, "{path}");
        assert!(
            a.header("content-type").unwrap().starts_with(kind),
            "{path}"
        );
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some("http://localhost:5173")
        );
        assert_eq!(
            a.body,
            std::fs::read_to_string(repo().join(file)).unwrap(),
            "{path}"
        );
    }
}

#[test]
fn the_committed_client_is_what_its_sources_and_the_event_schema_build_to() {
    let client = common::client_dir();
    let out = common::scratch_dir("client_build");
    let generated = out.join("events.generated.ts");
    let run = Command::new("node")
        .arg("scripts/types-from-schema.mjs")
        .arg(&generated)
        .current_dir(&client)
        .status()
        .expect("node must be installed");
    assert!(run.success());
    assert_eq!(
        std::fs::read_to_string(&generated).unwrap(),
        std::fs::read_to_string(client.join("src/events.generated.ts")).unwrap(),
        "src/events.generated.ts is not what schema/event.schema.json gives: npm run build in clients/js"
    );
    // Type-checks (strict) and writes the declarations; then the ES modules.
    let dist = out.join("dist");
    let build = Command::new("node")
        .args(["scripts/build.mjs", "--no-generate", "--out"])
        .arg(&dist)
        .current_dir(&client)
        .output()
        .expect("node must be installed");
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    for file in [
        "caspers-replay.js",
        "caspers-replay.d.ts",
        "events.generated.d.ts",
        "react.js",
        "react.d.ts",
    ] {
        assert_eq!(
            std::fs::read_to_string(dist.join(file)).unwrap(),
            std::fs::read_to_string(client.join("dist").join(file)).unwrap(),
            "dist/{file} is not what the sources build to: npm run build in clients/js"
        );
    }
    let bundle = dist.join("caspers-replay.js");
    let js = std::fs::read_to_string(&bundle).unwrap();
    assert!(
        !js.lines()
            .any(|l| l.starts_with("import ") || l.contains(" from \"") || l.contains("require(")),
        "one ES module with no imports"
    );
    for name in [
        "export {",
        "connect",
        "control",
        "SimClock",
        "parseEvent",
        "kitchens",
    ] {
        assert!(js.contains(name), "{name}");
    }
}
