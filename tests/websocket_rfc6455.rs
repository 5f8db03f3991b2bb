//! The server's side of RFC 6455 (and RFC 7692's limits) over a real socket, case by case
//! as the Autobahn|Testsuite's sections 1-7 and 9 group them (the cases are written from
//! the RFC and the suite's case list; the suite itself is Python 2 and does not run here).
//! Each case opens its own WebSocket, sends raw frames, and checks what the server
//! answers: the close code and the end of the connection, or the answer a valid message
//! gets. Throughout, another client's stream goes on exactly and `/healthz` answers.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use caspers_replay::events::Filter;
use common::live::{LiveServer, SseClient, expected, pairs};

const DAY1: i64 = 1_704_067_200 + 86_400;

/// A client frame, masked: `first` is FIN, RSV and opcode.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![first];
    match payload.len() {
        n @ 0..=125 => f.push(0x80 | n as u8),
        n @ 126..=65535 => {
            f.push(0x80 | 126);
            f.extend((n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend((n as u64).to_be_bytes());
        }
    }
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    f.extend(mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// What the server sent on one connection.
#[derive(Debug, Default)]
struct Answer {
    /// (opcode, payload) of every frame before the close.
    frames: Vec<(u8, Vec<u8>)>,
    /// The close frame's code, if one came.
    close: Option<u16>,
    /// The server ended the TCP connection.
    ended: bool,
    /// How the connection ended, when not by an orderly end of stream.
    error: Option<String>,
}

impl Answer {
    fn texts(&self) -> Vec<String> {
        self.frames
            .iter()
            .filter(|(op, _)| *op == 1)
            .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
            .collect()
    }
}

/// Opens a WebSocket (offering permessage-deflate when `deflate`), skips the clock
/// message, sends `bytes`, and reads for `wait` (or until the server ends the connection).
fn exchange(addr: SocketAddr, deflate: bool, bytes: &[u8], wait: Duration) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let offer = if deflate {
        "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    } else {
        ""
    };
    write!(
        s,
        "GET /v1/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        assert!(Instant::now() < deadline, "no handshake answer");
        read_some(&mut s, &mut buf).unwrap();
    };
    assert!(
        buf.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    buf.drain(..head_end);
    // Sent in pieces, as a network may deliver them.
    for piece in bytes.chunks(4096) {
        if s.write_all(piece).is_err() {
            break;
        }
    }
    let mut answer = Answer::default();
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline && !answer.ended {
        if let Err(e) = read_some(&mut s, &mut buf) {
            answer.ended = true;
            answer.error = e;
        }
        while let Some((op, payload, used)) = server_frame(&buf) {
            buf.drain(..used);
            if op == 8 {
                answer.close =
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
            } else if answer.close.is_none() {
                answer.frames.push((op, payload));
            }
        }
    }
    // The clock message comes first on every connection.
    assert!(
        answer
            .texts()
            .first()
            .is_some_and(|t| t.contains("\"type\":\"clock\"")),
        "{answer:?}"
    );
    answer.frames.remove(0);
    answer
}

/// Reads what is there; `Err` when the connection has ended (with the error, if any).
fn read_some(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), Option<String>> {
    let mut chunk = [0u8; 65536];
    match s.read(&mut chunk) {
        Ok(0) => Err(None),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(Some(e.to_string())),
    }
}

/// A whole server frame at the start of `buf`: opcode, payload, bytes used.
fn server_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if buf.len() < 2 {
        return None;
    }
    assert_eq!(buf[1] & 0x80, 0, "server frames are not masked");
    let (len, at) = match buf[1] & 0x7f {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    if buf.len() < at + len {
        return None;
    }
    let mut payload = buf[at..at + len].to_vec();
    if buf[0] & 0x40 != 0 {
        payload.extend([0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity(1 << 20);
        flate2::Decompress::new(false)
            .decompress_vec(&payload, &mut out, flate2::FlushDecompress::Sync)
            .ok()?;
        payload = out;
    }
    Some((buf[0] & 0x0f, payload, at + len))
}

fn deflated(data: &[u8]) -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::best(), false);
    let mut out = Vec::with_capacity(data.len() / 100 + 1024);
    c.compress_vec(data, &mut out, flate2::FlushCompress::Sync)
        .unwrap();
    while c.total_in() < data.len() as u64 {
        out.reserve(1 << 20);
        let at = c.total_in() as usize;
        c.compress_vec(&data[at..], &mut out, flate2::FlushCompress::Sync)
            .unwrap();
    }
    out.truncate(out.len() - 4);
    out
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// What a case must get.
enum Want {
    /// A close frame with this code, then the end of the connection.
    Close(u16),
    /// These frames (opcode, payload) and no close.
    Frames(Vec<(u8, Vec<u8>)>),
    /// One text message containing this, and no close.
    TextWith(&'static str),
    /// Nothing at all, and no close.
    Nothing,
    /// Pongs (some of these payloads, in order, the last one last) and no close: a pong
    /// not yet sent may be replaced by the next ping's (RFC 6455 section 5.5.3), as
    /// Autobahn's case 2.10 allows.
    Pongs(Vec<Vec<u8>>),
}

#[test]
fn the_servers_side_of_rfc_6455_case_by_case() {
    let (dir, ds) = common::generated_dataset("rfc6455_dataset", 2, 61);
    let server = LiveServer::start(&dir, &["--paused", "--start-day", "1"]);
    let start = DAY1 + 18 * 3600;
    server.control(&format!("{{\"seek\": {start}}}"));
    let mut watcher = SseClient::connect(server.addr, "/v1/events?location_id=2", None);
    server.control(r#"{"speed": 600, "paused": false}"#);

    let text = |t: &str| frame(0x81, t.as_bytes());
    let filter_error = "\"type\":\"error\"";
    let mut valid_utf8_split = frame(0x01, &"κόσμε".as_bytes()[..3]);
    valid_utf8_split.extend(frame(0x80, &"κόσμε".as_bytes()[3..]));
    let mut invalid_utf8_split = frame(0x01, "κόσμε".as_bytes());
    invalid_utf8_split.extend(frame(0x80, &[0xed, 0xa0, 0x80, 0x65, 0x64]));
    let mut ping_inside_fragments = frame(0x01, b"not ");
    ping_inside_fragments.extend(frame(0x89, b"in between"));
    ping_inside_fragments.extend(frame(0x80, b"json"));
    let mut text_inside_fragments = frame(0x01, b"one");
    text_inside_fragments.extend(frame(0x81, b"two"));
    let mut ten_pings = Vec::new();
    for k in 0..10u8 {
        ten_pings.extend(frame(0x89, &[b'0' + k]));
    }
    let mut data_after_close = frame(0x88, &close_payload(1000, b""));
    data_after_close.extend(text("after the close"));
    let mut length_top_bit = vec![0x81, 0x80 | 127];
    length_top_bit.extend((1u64 << 63).to_be_bytes());
    length_top_bit.extend([1, 2, 3, 4]);

    let cases: Vec<(&str, Vec<u8>, Want)> = vec![
        // 1: framing. Text the server does not understand is answered, not fatal.
        ("1.1.1 empty text", text(""), Want::TextWith(filter_error)),
        (
            "1.1.2 text of 125",
            text(&"a".repeat(125)),
            Want::TextWith(filter_error),
        ),
        (
            "1.1.3 text of 126",
            text(&"a".repeat(126)),
            Want::TextWith(filter_error),
        ),
        (
            "1.1.4 text of 65535",
            text(&"a".repeat(65535)),
            Want::TextWith(filter_error),
        ),
        (
            "1.2.1 binary is ignored",
            frame(0x82, b"\x00\x01"),
            Want::Nothing,
        ),
        // 2: pings and pongs.
        (
            "2.1 ping, no payload",
            frame(0x89, b""),
            Want::Frames(vec![(0xA, vec![])]),
        ),
        (
            "2.2 ping with payload",
            frame(0x89, b"Hello"),
            Want::Frames(vec![(0xA, b"Hello".to_vec())]),
        ),
        (
            "2.4 ping of 125",
            frame(0x89, &[0xfe; 125]),
            Want::Frames(vec![(0xA, vec![0xfe; 125])]),
        ),
        (
            "2.5 ping of 126",
            frame(0x89, &[0xfe; 126]),
            Want::Close(1002),
        ),
        ("2.6 unsolicited pong", frame(0x8A, b"x"), Want::Nothing),
        (
            "2.10 ten pings",
            ten_pings,
            Want::Pongs((0..10).map(|k| vec![b'0' + k]).collect()),
        ),
        // 3: reserved bits.
        (
            "3.1 RSV1 without deflate",
            frame(0xC1, b"x"),
            Want::Close(1002),
        ),
        ("3.2 RSV2", frame(0xA1, b"x"), Want::Close(1002)),
        ("3.3 RSV3", frame(0x91, b"x"), Want::Close(1002)),
        ("3.6 RSV on a ping", frame(0xB9, b"x"), Want::Close(1002)),
        // 4: opcodes.
        (
            "4.1.1 reserved data opcode 3",
            frame(0x83, b""),
            Want::Close(1002),
        ),
        (
            "4.1.5 reserved data opcode 7",
            frame(0x87, b"x"),
            Want::Close(1002),
        ),
        (
            "4.2.1 reserved control opcode 11",
            frame(0x8B, b""),
            Want::Close(1002),
        ),
        (
            "4.2.5 reserved control opcode 15",
            frame(0x8F, b"x"),
            Want::Close(1002),
        ),
        // 5: fragmentation.
        ("5.1 fragmented ping", frame(0x09, b"x"), Want::Close(1002)),
        (
            "5.3 fragmented close",
            frame(0x08, &close_payload(1000, b"")),
            Want::Close(1002),
        ),
        (
            "5.6 ping between fragments",
            ping_inside_fragments,
            Want::Frames(vec![(0xA, b"in between".to_vec())]),
        ),
        (
            "5.9 continuation without start",
            frame(0x80, b"x"),
            Want::Close(1002),
        ),
        (
            "5.18 new text inside fragments",
            text_inside_fragments,
            Want::Close(1002),
        ),
        // 6: UTF-8.
        (
            "6.1 valid text split mid-character",
            valid_utf8_split,
            Want::TextWith(filter_error),
        ),
        (
            "6.3 invalid text",
            frame(
                0x81,
                &[0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xed, 0xa0, 0x80],
            ),
            Want::Close(1007),
        ),
        (
            "6.4 invalid text across fragments",
            invalid_utf8_split,
            Want::Close(1007),
        ),
        (
            "6.x truncated character",
            frame(0x81, &[0xf4, 0x90]),
            Want::Close(1007),
        ),
        // 7: closing.
        (
            "7.1.1 close without payload",
            frame(0x88, b""),
            Want::Close(1000),
        ),
        (
            "7.1.3 data after close",
            data_after_close,
            Want::Close(1000),
        ),
        (
            "7.3.2 close with one byte",
            frame(0x88, &[0x03]),
            Want::Close(1002),
        ),
        (
            "7.3.3 close 1000",
            frame(0x88, &close_payload(1000, b"")),
            Want::Close(1000),
        ),
        (
            "7.3.4 close 1000 with reason",
            frame(0x88, &close_payload(1000, b"bye")),
            Want::Close(1000),
        ),
        (
            "7.3.6 close reason of 124",
            frame(0x88, &close_payload(1000, &[b'a'; 124])),
            Want::Close(1002),
        ),
        (
            "7.5.1 close reason not UTF-8",
            frame(0x88, &close_payload(1000, &[0xce, 0xba, 0xe1, 0xbd])),
            Want::Close(1007),
        ),
        (
            "7.7.1 close 1001 echoed",
            frame(0x88, &close_payload(1001, b"")),
            Want::Close(1001),
        ),
        (
            "7.7.6 close 1011 echoed",
            frame(0x88, &close_payload(1011, b"")),
            Want::Close(1011),
        ),
        (
            "7.7.12 close 3000 echoed",
            frame(0x88, &close_payload(3000, b"")),
            Want::Close(3000),
        ),
        (
            "7.7.13 close 4999 echoed",
            frame(0x88, &close_payload(4999, b"")),
            Want::Close(4999),
        ),
        (
            "7.9.1 close code 0",
            frame(0x88, &close_payload(0, b"")),
            Want::Close(1002),
        ),
        (
            "7.9.2 close code 999",
            frame(0x88, &close_payload(999, b"")),
            Want::Close(1002),
        ),
        (
            "7.9.3 close code 1004",
            frame(0x88, &close_payload(1004, b"")),
            Want::Close(1002),
        ),
        (
            "7.9.4 close code 1005",
            frame(0x88, &close_payload(1005, b"")),
            Want::Close(1002),
        ),
        (
            "7.9.5 close code 1006",
            frame(0x88, &close_payload(1006, b"")),
            Want::Close(1002),
        ),
        (
            "7.9.6 close code 1016",
            frame(0x88, &close_payload(1016, b"")),
            Want::Close(1002),
        ),
        (
            "7.9.7 close code 1100",
            frame(0x88, &close_payload(1100, b"")),
            Want::Close(1002),
        ),
        (
            "7.9.9 close code 2999",
            frame(0x88, &close_payload(2999, b"")),
            Want::Close(1002),
        ),
        (
            "7.9.10 close code 5000",
            frame(0x88, &close_payload(5000, b"")),
            Want::Close(1002),
        ),
        (
            "7.13.2 close code 65535",
            frame(0x88, &close_payload(65535, b"")),
            Want::Close(1002),
        ),
        // 9: limits (a client's message is at most 64 KiB).
        (
            "9.1 text of 64 KiB",
            text(&"a".repeat(65536)),
            Want::TextWith(filter_error),
        ),
        (
            "9.1.x text of 20 MB",
            frame(0x81, &vec![b'a'; 20 << 20]),
            Want::Close(1009),
        ),
        (
            "9.x a length with its top bit set",
            length_top_bit,
            Want::Close(1002),
        ),
        // Masking.
        (
            "unmasked frame",
            vec![0x81, 0x02, b'h', b'i'],
            Want::Close(1002),
        ),
    ];

    for (name, bytes, want) in cases {
        let wait = match want {
            Want::Close(_) => Duration::from_secs(5),
            _ => Duration::from_millis(700),
        };
        let got = exchange(server.addr, false, &bytes, wait);
        match want {
            Want::Close(code) => {
                assert_eq!(got.close, Some(code), "{name}: {got:?}");
                assert!(got.ended, "{name}: the connection ends after the close");
            }
            Want::Frames(frames) => {
                assert_eq!(got.close, None, "{name}: {got:?}");
                let controls: Vec<_> = got.frames.iter().filter(|f| f.0 != 1).cloned().collect();
                assert_eq!(controls, frames, "{name}");
            }
            Want::Pongs(payloads) => {
                assert_eq!(got.close, None, "{name}: {got:?}");
                let pongs: Vec<&Vec<u8>> = got
                    .frames
                    .iter()
                    .filter(|f| f.0 != 1)
                    .map(|f| {
                        assert_eq!(f.0, 0xA, "{name}: only pongs");
                        &f.1
                    })
                    .collect();
                assert_eq!(
                    pongs.last(),
                    payloads.last().as_ref(),
                    "{name}: the last ping answered"
                );
                let mut rest = payloads.iter();
                assert!(
                    pongs.iter().all(|p| rest.any(|q| q == *p)),
                    "{name}: pongs answer pings, in order: {pongs:?}"
                );
            }
            Want::TextWith(part) => {
                assert_eq!(got.close, None, "{name}: {got:?}");
                assert!(
                    got.texts().iter().any(|t| t.contains(part)),
                    "{name}: {got:?}"
                );
            }
            Want::Nothing => {
                assert_eq!(got.close, None, "{name}: {got:?}");
                assert!(
                    got.frames.iter().all(|f| f.0 == 1
                        && String::from_utf8_lossy(&f.1).contains("\"type\":\"events\"")),
                    "{name}: {got:?}"
                );
            }
        }
        assert_eq!(
            server.get("/healthz").0,
            200,
            "{name}: the server stays healthy"
        );
    }

    // RFC 7692: a compressed control frame is a protocol error; a small compressed message
    // that would inflate to 200 MB is refused with 1009, and the server's memory does not
    // grow for it.
    let got = exchange(server.addr, true, &frame(0xC9, b""), Duration::from_secs(5));
    assert_eq!(got.close, Some(1002), "compressed ping: {got:?}");
    let bomb = deflated(&vec![b'a'; 200 << 20]);
    assert!(
        bomb.len() < 400_000,
        "a small message: {} bytes",
        bomb.len()
    );
    let pid = server.child.id();
    let before = rss_kb(pid);
    let got = exchange(
        server.addr,
        true,
        &frame(0xC1, &bomb),
        Duration::from_secs(5),
    );
    assert_eq!(got.close, Some(1009), "deflate bomb: {got:?}");
    let after = rss_kb(pid);
    assert!(
        after < before + 20 * 1024,
        "RSS grew from {before} kB to {after} kB for a refused message"
    );

    // The other client's stream went on, exact.
    let end = server.control(r#"{"paused": true}"#)["sim_time"]
        .as_f64()
        .unwrap()
        .floor() as i64
        + 1;
    let want = expected(&ds, start, end, Filter::new(&[2], &[]));
    let got = pairs(&watcher.events(want.len(), Duration::from_secs(10)));
    assert!(want.len() > 20, "a busy window: {}", want.len());
    assert!(
        got == want,
        "the other client's stream: {} of {}",
        got.len(),
        want.len()
    );
}
