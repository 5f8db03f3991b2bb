//! A real `caspers-replay serve` process and small clients speaking HTTP, SSE and
//! WebSocket to it over 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use caspers_replay::dataset::Dataset;
use caspers_replay::events::Filter;
use caspers_replay::events::expand_event;
use caspers_replay::timeline::{Position, Timeline};

pub const TOKEN: &str = "test-presenter-token";

/// A server process; killed when dropped.
pub struct LiveServer {
    pub child: Child,
    pub addr: SocketAddr,
    /// The server's start line (`serving … on http://… from day …`).
    pub start_line: String,
}

impl LiveServer {
    /// Starts `serve` on a free port of 127.0.0.1 with `extra` options.
    pub fn start(dataset: &Path, extra: &[&str]) -> LiveServer {
        Self::start_at(dataset, "127.0.0.1:0", extra)
    }

    /// [`LiveServer::start`] on a given address.
    pub fn start_at(dataset: &Path, bind: &str, extra: &[&str]) -> LiveServer {
        // Each server gets its own clock state file unless the test names one.
        static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let own_state = std::env::temp_dir().join(format!(
            "caspers-live-state-{}-{}.json",
            std::process::id(),
            SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_caspers-replay"));
        cmd.arg("serve").arg("--dataset").arg(dataset);
        if !extra.iter().any(|a| *a == "--state" || *a == "--nats") {
            cmd.arg("--fresh").arg("--state").arg(&own_state);
        }
        cmd.args(["--bind", bind, "--control-token", TOKEN]);
        // Short ticks, unless the test names its own.
        if !extra.contains(&"--tick-ms") {
            cmd.args(["--tick-ms", "20"]);
        }
        cmd.args(extra);
        Self::spawn(cmd)
    }

    /// Runs `cmd` (a `serve` command line as the caller made it) and waits for its start
    /// line, which names its address.
    pub fn spawn(cmd: Command) -> LiveServer {
        Self::spawn_with_stderr(cmd, Stdio::null())
    }

    /// [`LiveServer::spawn`], its log going to `stderr`.
    pub fn spawn_with_stderr(mut cmd: Command, stderr: impl Into<Stdio>) -> LiveServer {
        let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("server output").unwrap();
        let addr = first
            .split("http://")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .parse()
            .unwrap();
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        LiveServer {
            child,
            addr,
            start_line: first,
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        request(self.addr, "GET", path, &[], "")
    }

    /// POST /v1/clock with the presenter token.
    pub fn control(&self, body: &str) -> serde_json::Value {
        let auth = format!("Bearer {TOKEN}");
        let (status, text) = request(
            self.addr,
            "POST",
            "/v1/clock",
            &[("Authorization", &auth)],
            body,
        );
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A replay session made with `POST /v1/sessions`: its path and its owner's
/// `Authorization` header value.
#[allow(dead_code)] // not every test binary makes sessions
pub struct MadeSession {
    pub path: String,
    pub owner: String,
}

#[allow(dead_code)]
impl MadeSession {
    /// A session paused at `at` (Unix seconds) on `server`.
    pub fn paused_at(server: &LiveServer, at: i64) -> MadeSession {
        let body = format!(
            "{{\"start\": \"{}\", \"paused\": true}}",
            caspers_replay::time::format_rfc3339(at)
        );
        let (status, made) = request(server.addr, "POST", "/v1/sessions", &[], &body);
        assert_eq!(status, 201, "{made}");
        let made: serde_json::Value = serde_json::from_str(&made).unwrap();
        MadeSession {
            path: made["urls"]["session"].as_str().unwrap().to_string(),
            owner: format!("Bearer {}", made["token"].as_str().unwrap()),
        }
    }

    /// Steps its clock by `seconds` through `server` (any replica).
    pub fn step(&self, server: &LiveServer, seconds: u32) {
        let (status, text) = request(
            server.addr,
            "POST",
            &format!("{}/clock", self.path),
            &[("Authorization", &self.owner)],
            &format!("{{\"step\": {seconds}}}"),
        );
        assert_eq!(status, 200, "{text}");
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns status and body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let answer = exchange(addr, method, path, headers, body);
    (answer.status, answer.body)
}

/// A response: its status, its headers (names in lower case) and its body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The value of a header, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close` (a `Content-Type: application/json` body
/// unless `body` is empty and the method is GET or OPTIONS).
pub fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !(body.is_empty() && matches!(method, "GET" | "OPTIONS")) {
        req.push_str(&format!(
            "Content-Length: {}\r\nContent-Type: application/json\r\n",
            body.len()
        ));
    }
    req.push_str(&format!("\r\n{body}"));
    s.write_all(req.as_bytes()).unwrap();
    let mut reader = BufReader::new(s);
    let (status, headers) = read_head(&mut reader);
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let mut out = Vec::new();
    if chunked {
        ChunkedReader::new(reader).read_to_end(&mut out).unwrap();
    } else {
        reader.read_to_end(&mut out).unwrap();
    }
    Answer {
        status,
        headers,
        body: String::from_utf8(out).unwrap(),
    }
}

/// Reads a response head; returns the status and the headers (names in lower case).
pub fn read_head(reader: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            return (status, headers);
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
}

/// Decodes HTTP/1.1 chunked transfer encoding.
pub struct ChunkedReader<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> ChunkedReader<R> {
    pub fn new(inner: R) -> Self {
        ChunkedReader {
            inner,
            left: 0,
            done: false,
        }
    }
}

impl<R: BufRead> Read for ChunkedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            if self.inner.read_line(&mut line)? == 0 {
                self.done = true;
                return Ok(0);
            }
            if line.trim().is_empty() {
                line.clear();
                self.inner.read_line(&mut line)?;
            }
            let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            if size == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = size;
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.done = true;
        }
        self.left -= n;
        Ok(n)
    }
}

/// One SSE message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SseMessage {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// A Server-Sent Events client.
pub struct SseClient {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    lines: std::io::Lines<BufReader<ChunkedReader<BufReader<TcpStream>>>>,
    pub stream: TcpStream,
}

impl SseClient {
    pub fn connect(addr: SocketAddr, path: &str, last_event_id: Option<&str>) -> SseClient {
        Self::over(TcpStream::connect(addr).unwrap(), addr, path, last_event_id)
    }

    /// [`SseClient::connect`] from another address of the loopback range (127.0.0.2, …).
    pub fn connect_from(source: &str, addr: SocketAddr, path: &str) -> SseClient {
        Self::over(connect_from(source, addr), addr, path, None)
    }

    /// Asks for the stream on a connected socket.
    pub fn over(
        s: TcpStream,
        addr: SocketAddr,
        path: &str,
        last_event_id: Option<&str>,
    ) -> SseClient {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut req =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        if let Some(id) = last_event_id {
            req.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        req.push_str("\r\n");
        (&s).write_all(req.as_bytes()).unwrap();
        let stream = s.try_clone().unwrap();
        let mut reader = BufReader::new(s);
        let (status, headers) = read_head(&mut reader);
        SseClient {
            status,
            headers,
            lines: BufReader::new(ChunkedReader::new(reader)).lines(),
            stream,
        }
    }

    /// The next message (comments skipped); `None` at the end of the stream.
    pub fn next(&mut self) -> Option<SseMessage> {
        let mut m = SseMessage::default();
        let mut any = false;
        loop {
            let line = match self.lines.next() {
                Some(Ok(l)) => l,
                _ => return None,
            };
            if line.is_empty() {
                if any {
                    return Some(m);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(": ").unwrap_or((&line, ""));
            match field {
                "id" => m.id = Some(value.to_string()),
                "event" => m.event = Some(value.to_string()),
                "data" => m.data.push_str(value),
                _ => continue,
            }
            any = true;
        }
    }

    /// Events (messages with an id) until `want` of them have come, or `timeout`.
    pub fn events(&mut self, want: usize, timeout: Duration) -> Vec<SseMessage> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < want && Instant::now() < deadline {
            match self.next() {
                Some(m) if m.id.is_some() => out.push(m),
                Some(_) => {}
                None => break,
            }
        }
        out
    }
}

/// (id, data) pairs of SSE event messages.
pub fn pairs(messages: &[SseMessage]) -> Vec<(String, String)> {
    messages
        .iter()
        .map(|m| (m.id.clone().unwrap(), m.data.clone()))
        .collect()
}

/// (id, data) of every event with simulation time in [a, b) passing `filter`.
pub fn expected(ds: &Dataset, a: i64, b: i64, filter: Filter) -> Vec<(String, String)> {
    let tag: String = ds.fingerprint.chars().take(8).collect();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    Timeline::new(ds, false).for_each_event(ds, a, b, 0, |pos, shift| {
        if filter.matches(ds.events.location_id(pos), ds.events.event_type(pos)) {
            buf.clear();
            expand_event(&ds.events, pos, shift, &mut buf);
            let id = Position {
                loop_index: shift.loop_index,
                row: pos as u32,
            }
            .to_text(&tag);
            out.push((id, String::from_utf8(buf.clone()).unwrap()));
        }
    });
    out
}

pub fn ws_connect(server: &LiveServer, query: &str) -> tungstenite::WebSocket<TcpStream> {
    ws_connect_to(server, &format!("/v1/ws{query}"))
}

/// A WebSocket to `path` (with its query), e.g. a session's `/v1/sessions/ID/ws`.
pub fn ws_connect_to(server: &LiveServer, path: &str) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let url = format!("ws://{}{path}", server.addr);
    let (ws, response) = tungstenite::client(url, stream).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// What the tests need of a WebSocket client: tungstenite's, or [`DeflateWs`].
pub trait WsClient {
    fn send_text(&mut self, text: &str);
    /// The next text message (`None` for other messages).
    fn read_text(&mut self) -> Result<Option<String>, String>;
}

impl WsClient for tungstenite::WebSocket<TcpStream> {
    fn send_text(&mut self, text: &str) {
        self.send(tungstenite::Message::text(text)).unwrap();
    }

    fn read_text(&mut self) -> Result<Option<String>, String> {
        match self.read() {
            Ok(tungstenite::Message::Text(t)) => Ok(Some(t.as_str().to_string())),
            Ok(_) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// WebSocket messages as JSON, until `events` events have come or `timeout`.
pub fn ws_events(
    ws: &mut impl WsClient,
    want: usize,
    timeout: Duration,
    others: &mut Vec<serde_json::Value>,
) -> Vec<(String, String)> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        let text = match ws.read_text() {
            Ok(Some(text)) => text,
            Ok(None) => continue,
            Err(e) => {
                others.push(serde_json::json!({"read_error": e}));
                break;
            }
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        if v["type"] == "events" {
            out.extend(ws_message_events(&text));
        } else {
            others.push(v);
        }
    }
    out
}

/// A WebSocket client of its own that offers permessage-deflate (RFC 7692) and checks what
/// the server does with it: every compressed message must inflate on its own (the server
/// promised `server_no_context_takeover`). Its own messages are compressed with context
/// takeover, as browsers do.
pub struct DeflateWs {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The server accepted the offer.
    pub negotiated: bool,
    /// Messages that came compressed, and their bytes on the wire against inflated.
    pub compressed: usize,
    pub wire_bytes: usize,
    pub inflated_bytes: usize,
    compressor: flate2::Compress,
}

impl DeflateWs {
    pub fn connect(server: &LiveServer, query: &str) -> DeflateWs {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET /v1/ws{query} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
            server.addr
        )
        .unwrap();
        let mut buf = Vec::new();
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        let negotiated = head.contains("sec-websocket-extensions: permessage-deflate");
        if negotiated {
            assert!(head.contains("server_no_context_takeover"), "{head}");
        }
        buf.drain(..end);
        DeflateWs {
            stream,
            buf,
            negotiated,
            compressed: 0,
            wire_bytes: 0,
            inflated_bytes: 0,
            compressor: flate2::Compress::new(flate2::Compression::default(), false),
        }
    }

    fn fill(&mut self, want: usize) -> Result<(), String> {
        while self.buf.len() < want {
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("closed".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }
}

impl WsClient for DeflateWs {
    fn send_text(&mut self, text: &str) {
        let mut payload = Vec::with_capacity(text.len() + 64);
        if self.negotiated {
            self.compressor
                .compress_vec(text.as_bytes(), &mut payload, flate2::FlushCompress::Sync)
                .unwrap();
            assert!(payload.ends_with(&[0, 0, 0xff, 0xff]));
            payload.truncate(payload.len() - 4);
        } else {
            payload.extend_from_slice(text.as_bytes());
        }
        let first = if self.negotiated { 0xC1 } else { 0x81 };
        let mask = [0x5a, 0x13, 0xc4, 0x7e];
        let mut frame = vec![first, 0x80 | payload.len() as u8];
        assert!(payload.len() < 126);
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).unwrap();
    }

    fn read_text(&mut self) -> Result<Option<String>, String> {
        self.fill(2)?;
        let (first, len7) = (self.buf[0], self.buf[1]);
        assert_eq!(len7 & 0x80, 0, "server frames are not masked");
        let (len, header) = match len7 {
            126 => {
                self.fill(4)?;
                (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
            }
            127 => {
                self.fill(10)?;
                (
                    u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                    10,
                )
            }
            n => (n as usize, 2),
        };
        self.fill(header + len)?;
        let payload: Vec<u8> = self.buf.drain(..header + len).skip(header).collect();
        assert_eq!(first & 0x80, 0x80, "the server does not fragment");
        if first & 0x0f != 1 {
            return Ok(None);
        }
        self.wire_bytes += header + len;
        let text = if first & 0x40 != 0 {
            assert!(self.negotiated, "compressed without permessage-deflate");
            self.compressed += 1;
            let mut input = payload;
            input.extend_from_slice(&[0, 0, 0xff, 0xff]);
            // A fresh context for every message.
            let mut inflater = flate2::Decompress::new(false);
            let mut out = Vec::with_capacity(input.len() * 8);
            loop {
                out.reserve(out.capacity().max(4096));
                let at = inflater.total_in() as usize;
                inflater
                    .decompress_vec(&input[at..], &mut out, flate2::FlushDecompress::Sync)
                    .map_err(|e| e.to_string())?;
                if inflater.total_in() as usize == input.len() && out.len() < out.capacity() {
                    break out;
                }
            }
        } else {
            payload
        };
        self.inflated_bytes += text.len();
        Ok(Some(String::from_utf8(text).unwrap()))
    }
}

/// The (position, raw event text) pairs of a WebSocket events message (none for another
/// message), to compare byte for byte.
pub fn ws_message_events(text: &str) -> Vec<(String, String)> {
    match serde_json::from_str::<WsEvents>(text) {
        Ok(parsed) if parsed.kind == "events" => parsed
            .events
            .iter()
            .zip(parsed.positions)
            .map(|(e, p)| (p, e.get().to_string()))
            .collect(),
        _ => Vec::new(),
    }
}

#[derive(serde::Deserialize)]
pub struct WsEvents<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(borrow, default)]
    events: Vec<&'a serde_json::value::RawValue>,
    #[serde(default)]
    positions: Vec<String>,
}

/// Sends `text` on the WebSocket and returns the `error` message the server answers with.
pub fn ws_error_for(ws: &mut impl WsClient, text: &str) -> serde_json::Value {
    ws.send_text(text);
    let mut others = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !others
        .iter()
        .any(|m: &serde_json::Value| m["type"] == "error")
        && Instant::now() < deadline
    {
        ws_events(ws, 1, Duration::from_millis(100), &mut others);
    }
    others
        .into_iter()
        .find(|m| m["type"] == "error")
        .expect("an error message")
}

/// A connection to `addr` from `source` (another address of the loopback range, e.g.
/// 127.0.0.2: the server sees another client).
pub fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket.connect(addr).await.unwrap()
    });
    let std = stream.into_std().unwrap();
    std.set_nonblocking(false).unwrap();
    std
}

/// A process's resident memory in bytes (from /proc).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// A process's CPU time so far in seconds, user and system (from /proc).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's closing parenthesis; utime and stime are the 14th and
    // 15th of the line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Polls `/healthz` from another loopback address every 50 ms until `stop` is set;
/// returns the slowest answer's time and how many requests failed.
pub fn watch_health(
    addr: SocketAddr,
    source: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(Duration, usize)> {
    std::thread::spawn(move || {
        let (mut slowest, mut failed) = (Duration::ZERO, 0);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let t = Instant::now();
            let mut s = connect_from(source, addr);
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let ok = s
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .is_ok()
                && {
                    let mut answer = String::new();
                    s.read_to_string(&mut answer).is_ok() && answer.starts_with("HTTP/1.1 200")
                };
            if !ok {
                failed += 1;
            }
            slowest = slowest.max(t.elapsed());
            std::thread::sleep(Duration::from_millis(50));
        }
        (slowest, failed)
    })
}
