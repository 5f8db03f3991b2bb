//! Cross-origin use over real sockets: reads answer any origin (the streams, WebSocket
//! included, with or without `--cors-origin`); changing the clock from a page is allowed to
//! the server's own origin and `--cors-origin`'s only, and a refusal carries the CORS
//! headers so that the page can read why; bad origins and preflights never get a 500 and
//! never disturb another client's stream.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use caspers_replay::dataset::Dataset;
use caspers_replay::events::Filter;
use common::live::{LiveServer, SseClient, TOKEN, exchange, expected, pairs};

const DAY1: i64 = 1_704_067_200 + 86_400;
const APP: &str = "http://localhost:5173";

fn dataset() -> &'static (PathBuf, Dataset) {
    static DS: OnceLock<(PathBuf, Dataset)> = OnceLock::new();
    DS.get_or_init(|| common::generated_dataset("cors_dataset", 2, 31))
}

fn server(extra: &[&str]) -> LiveServer {
    let mut args = vec!["--paused", "--start-day", "1"];
    args.extend_from_slice(extra);
    LiveServer::start(&dataset().0, &args)
}

fn preflight(
    server: &LiveServer,
    path: &str,
    origin: &str,
    method: &str,
    headers: &str,
) -> common::live::Answer {
    exchange(
        server.addr,
        "OPTIONS",
        path,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", method),
            ("Access-Control-Request-Headers", headers),
        ],
        "",
    )
}

fn post_clock(server: &LiveServer, origin: Option<&str>, body: &str) -> common::live::Answer {
    let auth = format!("Bearer {TOKEN}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if let Some(o) = origin {
        headers.push(("Origin", o));
    }
    exchange(server.addr, "POST", "/v1/clock", &headers, body)
}

#[test]
fn reads_answer_any_origin_and_the_streams_say_so_in_their_own_heads() {
    let s = server(&[]);
    for path in [
        "/v1/clock",
        "/v1/kitchens",
        "/v1/map",
        "/healthz",
        "/basemap.json",
    ] {
        let a = exchange(s.addr, "GET", path, &[("Origin", APP)], "");
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(a.header("access-control-allow-origin"), Some(APP), "{path}");
    }
    // A preflight for a GET with the resume header (EventSource's reconnection).
    let p = preflight(&s, "/v1/events", APP, "GET", "last-event-id");
    assert_eq!(p.status, 200);
    assert_eq!(p.header("access-control-allow-origin"), Some(APP));
    assert!(
        p.header("access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase()
            .contains("last-event-id")
    );
    // The SSE stream's head is written by a writer thread, not actix: it carries it too.
    let sse = SseClient::connect(s.addr, "/v1/events", None);
    assert_eq!(sse.status, 200);
    assert!(
        sse.headers
            .iter()
            .any(|(k, v)| k == "access-control-allow-origin" && v == "*"),
        "{:?}",
        sse.headers
    );
    // A 400 of a stream, answered by actix, too.
    let bad = exchange(
        s.addr,
        "GET",
        "/v1/events?location_id=77",
        &[("Origin", APP)],
        "",
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.header("access-control-allow-origin"), Some(APP));
}

#[test]
fn only_listed_origins_and_the_servers_own_may_change_the_clock() {
    let own = |s: &LiveServer| format!("http://{}", s.addr);
    let closed = server(&[]);
    // The preflight for another origin's POST passes: the POST is refused by the clock's
    // handler, in an answer the page can read (a refused preflight would leave the page
    // only "Failed to fetch").
    let p = preflight(
        &closed,
        "/v1/clock",
        APP,
        "POST",
        "authorization,content-type",
    );
    assert_eq!(p.status, 200);
    assert_eq!(p.header("access-control-allow-origin"), Some(APP));
    let refused = post_clock(&closed, Some(APP), r#"{"speed": 7}"#);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.header("access-control-allow-origin"), Some(APP));
    let message: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert!(
        message["error"]
            .as_str()
            .unwrap()
            .contains("--cors-origin http://localhost:5173"),
        "{}",
        refused.body
    );
    // A wrong token from a page of another origin: readable too.
    let wrong = exchange(
        closed.addr,
        "POST",
        "/v1/clock",
        &[("Authorization", "Bearer wrong"), ("Origin", APP)],
        r#"{"speed": 7}"#,
    );
    assert_eq!(wrong.status, 403);
    assert_eq!(wrong.header("access-control-allow-origin"), Some(APP));
    let clock: serde_json::Value = serde_json::from_str(&closed.get("/v1/clock").1).unwrap();
    assert_ne!(clock["speed"], 7.0);
    // The map page's own origin may (browsers send Origin on a same-origin POST).
    assert_eq!(
        post_clock(&closed, Some(&own(&closed)), r#"{"speed": 7}"#).status,
        200
    );
    // Without Origin (not a browser): the token decides, as before.
    assert_eq!(post_clock(&closed, None, r#"{"speed": 8}"#).status, 200);

    let open = server(&[
        "--cors-origin",
        APP,
        "--cors-origin",
        "https://show.example",
    ]);
    let p = preflight(
        &open,
        "/v1/clock",
        APP,
        "POST",
        "authorization,content-type",
    );
    assert_eq!(p.status, 200);
    assert_eq!(p.header("access-control-allow-origin"), Some(APP));
    let methods = p.header("access-control-allow-methods").unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let headers = p
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
    let ok = post_clock(&open, Some(APP), r#"{"speed": 9}"#);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.header("access-control-allow-origin"), Some(APP));
    // Other origins stay out, and can read why; a preflight for a method or header not
    // allowed gets no allow headers; none of it is a 500.
    let other = post_clock(&open, Some("http://localhost:5174"), r#"{"speed": 3}"#);
    assert_eq!(other.status, 403);
    assert_eq!(
        other.header("access-control-allow-origin"),
        Some("http://localhost:5174")
    );
    for (origin, method, headers) in [
        (APP, "PUT", "content-type"),
        (APP, "POST", "x-something-else"),
        ("not an origin", "PUT", "content-type"),
        ("null", "POST", "x-something-else"),
    ] {
        let p = preflight(&open, "/v1/clock", origin, method, headers);
        assert!(p.status < 500, "{origin} {method} {headers}: {}", p.status);
        assert!(
            p.header("access-control-allow-methods").is_none(),
            "{origin} {method} {headers}"
        );
    }
    for bad in ["not an origin", "null", "http://localhost:5173/"] {
        let a = post_clock(&open, Some(bad), r#"{"speed": 3}"#);
        assert_eq!(a.status, 403, "{bad}: {}", a.body);
    }
    let clock: serde_json::Value = serde_json::from_str(&open.get("/v1/clock").1).unwrap();
    assert_eq!(clock["speed"], 9.0, "only the allowed change happened");
}

fn ws_handshake(server: &LiveServer, origin: Option<&str>) -> u16 {
    let mut headers = vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    if let Some(o) = origin {
        headers.push(("Origin", o));
    }
    use std::io::{BufReader, Write};
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = format!("GET /v1/ws HTTP/1.1\r\nHost: {}\r\n", server.addr);
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    common::live::read_head(&mut BufReader::new(s)).0
}

#[test]
fn websockets_answer_any_origin_as_sse_does_and_the_others_stream_on() {
    let s = server(&["--cors-origin", APP]);
    let start = DAY1 + 18 * 3600;
    s.control(&format!("{{\"seek\": {start}}}"));
    let mut watcher = SseClient::connect(s.addr, "/v1/events?location_id=1", None);
    s.control(r#"{"speed": 3600, "paused": false}"#);
    // --cors-origin governs who may change the clock, not who may read.
    assert_eq!(ws_handshake(&s, Some("http://evil.example")), 101);
    assert_eq!(ws_handshake(&s, Some("garbage value")), 101);
    assert_eq!(ws_handshake(&s, Some(APP)), 101);
    assert_eq!(ws_handshake(&s, Some(&format!("http://{}", s.addr))), 101);
    assert_eq!(ws_handshake(&s, None), 101);
    assert_eq!(s.get("/healthz").0, 200);
    std::thread::sleep(Duration::from_millis(400));
    let end = s.control(r#"{"paused": true}"#)["sim_time"]
        .as_f64()
        .unwrap()
        .floor() as i64
        + 1;
    let want = expected(&dataset().1, start, end, Filter::new(&[1], &[]));
    let got = pairs(&watcher.events(want.len(), Duration::from_secs(10)));
    assert!(!want.is_empty());
    assert!(got == want, "the other client's stream went on, exact");
}

#[test]
fn cors_origin_must_be_an_origin() {
    for bad in [
        "localhost:5173",
        "http://localhost:5173/",
        "http://a/b",
        "*",
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_caspers-replay"))
            .args(["serve", "--dataset"])
            .arg(&dataset().0)
            .args(["--bind", "127.0.0.1:0", "--cors-origin", bad])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--cors-origin") && err.contains("error:"),
            "{bad}: {err}"
        );
    }
}
