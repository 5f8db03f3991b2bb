//! The WebSocket wire format (RFC 6455), both ways, and its permessage-deflate extension
//! (RFC 7692).
//!
//! The server writes its frames itself so that the hub can frame (and compress) a tick's
//! message once per group and hand every member the same bytes. Compression is negotiated
//! with `server_no_context_takeover`: each message is compressed on its own, so one
//! compressed frame is valid for every connection that negotiated the extension. Frames
//! from clients (filter messages, pings, close) are few and small; they are read by
//! [`MessageReader`], which inflates a client's compressed messages with the context the
//! client keeps across them (the load bench's clients read the server's frames with it
//! too).

use bytes::{Buf, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

use crate::events::Filter;

/// The opcodes of the WebSocket frames the server sends (RFC 6455, section 5.2).
#[derive(Clone, Copy, Debug)]
pub enum WsOpcode {
    Text = 0x1,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

/// The extension the server answers a client's permessage-deflate offer with.
pub const DEFLATE_RESPONSE: &str = "permessage-deflate; server_no_context_takeover";

/// Messages shorter than this are sent uncompressed even on a deflate connection (RFC 7692
/// lets either side send any message uncompressed): deflate does not pay for itself there.
const DEFLATE_MIN: usize = 256;

/// zlib's default level. At it, peak-hour messages go out at 25 % of their text, and the
/// server's CPU is lower than without compression (`cargo bench --bench load --
/// --subscribers 10000 --filtered --deflate`, docs/benchmarks.md); it is compressed once
/// per group and tick, so a faster level would save little.
const DEFLATE_LEVEL: u32 = 6;

/// A whole, unmasked frame (server to client), RSV bits clear.
pub fn frame(opcode: WsOpcode, payload: &[u8]) -> Vec<u8> {
    framed(0x80 | opcode as u8, payload)
}

/// A text message, compressed when `deflate` was negotiated and the message is long enough
/// to gain by it.
pub fn text_message(payload: &[u8], deflate: bool) -> Vec<u8> {
    if !deflate || payload.len() < DEFLATE_MIN {
        return frame(WsOpcode::Text, payload);
    }
    // FIN, RSV1 (compressed), text.
    framed(0xC1, &compress(payload))
}

fn framed(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(first);
    match payload.len() {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=65_535 => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// RFC 7692 section 7.2.1: raw deflate ending in a sync flush, without the flush's final
/// `00 00 ff ff`, from an empty context (no context takeover).
fn compress(payload: &[u8]) -> Vec<u8> {
    thread_local! {
        // A compressor's state is a few hundred KiB: kept per thread, reset per message.
        static COMPRESSOR: std::cell::RefCell<Compress> =
            std::cell::RefCell::new(Compress::new(Compression::new(DEFLATE_LEVEL), false));
    }
    COMPRESSOR.with_borrow_mut(|c| {
        c.reset();
        let mut out = Vec::with_capacity(payload.len() / 4 + 64);
        loop {
            let consumed = c.total_in() as usize;
            c.compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync)
                .expect("deflate of an in-memory buffer");
            if c.total_in() as usize == payload.len() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(1024));
        }
        if out.ends_with(&[0, 0, 0xff, 0xff]) {
            out.truncate(out.len() - 4);
        }
        out
    })
}

/// Whether a `Sec-WebSocket-Extensions` header offers permessage-deflate with parameters
/// this server can honour (it always keeps a full 32 KiB window, so an offer that limits
/// the server's window is declined, as are unknown parameters).
pub fn deflate_offered(header: &str) -> bool {
    header.split(',').any(|offer| {
        let mut parts = offer.split(';').map(str::trim);
        parts.next() == Some("permessage-deflate")
            && parts.all(|param| {
                let name = param.split('=').next().unwrap_or("").trim();
                let value = param.split('=').nth(1).map(|v| v.trim().trim_matches('"'));
                match name {
                    "server_no_context_takeover" | "client_no_context_takeover" => true,
                    "client_max_window_bits" => true,
                    "server_max_window_bits" => value == Some("15"),
                    _ => false,
                }
            })
    })
}

/// A message from the peer.
#[derive(Debug, PartialEq)]
pub enum Message {
    Text(String),
    Ping(Bytes),
    /// An answer to a ping (or an unsolicited one, RFC 6455 section 5.5.3).
    Pong,
    /// The peer closes, with the status code it gave, if any (a reply echoes it).
    Close(Option<u16>),
}

/// Why the connection must close: the close code (RFC 6455 section 7.4.1) and reason.
#[derive(Debug, PartialEq)]
pub struct ProtocolError {
    pub code: u16,
    pub reason: String,
}

fn protocol_error(code: u16, reason: &str) -> ProtocolError {
    ProtocolError {
        code,
        reason: reason.to_string(),
    }
}

/// Reads a peer's frames into messages: unmasks, joins fragments, inflates compressed
/// messages, and refuses what breaks the protocol.
pub struct MessageReader {
    buf: BytesMut,
    max_message: usize,
    deflate: bool,
    /// Reading a client's frames (masked, compressed with context takeover), or the
    /// server's (unmasked, each compressed message on its own).
    from_client: bool,
    /// Created on the first compressed message (most clients never send one).
    inflater: Option<Decompress>,
    /// A fragmented data message so far: whether compressed, whether text, its bytes.
    partial: Option<(bool, bool, Vec<u8>)>,
}

impl MessageReader {
    /// The server's reader of a client's frames.
    pub fn from_client(deflate: bool, max_message: usize) -> MessageReader {
        MessageReader {
            buf: BytesMut::new(),
            max_message,
            deflate,
            from_client: true,
            inflater: None,
            partial: None,
        }
    }

    /// A client's reader of this server's frames (`server_no_context_takeover`).
    pub fn from_server(deflate: bool, max_message: usize) -> MessageReader {
        MessageReader {
            from_client: false,
            ..MessageReader::from_client(deflate, max_message)
        }
    }

    /// Bytes read from the socket.
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole message, if the bytes so far hold one.
    pub fn next_message(&mut self) -> Result<Option<Message>, ProtocolError> {
        loop {
            let Some((first, payload)) = self.next_frame()? else {
                return Ok(None);
            };
            let fin = first & 0x80 != 0;
            let rsv1 = first & 0x40 != 0;
            let opcode = first & 0x0f;
            if first & 0x30 != 0 || (rsv1 && !self.deflate) {
                return Err(protocol_error(1002, "reserved bits set"));
            }
            if opcode >= 0x8 && (!fin || rsv1) {
                return Err(protocol_error(
                    1002,
                    "fragmented or compressed control frame",
                ));
            }
            match opcode {
                0x8 => return close_code(&payload).map(|code| Some(Message::Close(code))),
                0x9 => return Ok(Some(Message::Ping(payload.freeze()))),
                0xA => return Ok(Some(Message::Pong)),
                0x1 | 0x2 if self.partial.is_none() => {
                    self.partial = Some((rsv1, opcode == 0x1, payload.to_vec()));
                }
                0x0 if !rsv1 && self.partial.is_some() => {
                    let (_, _, bytes) = self.partial.as_mut().expect("checked");
                    bytes.extend_from_slice(&payload);
                    if bytes.len() > self.max_message {
                        return Err(protocol_error(1009, "message too big"));
                    }
                }
                0x0..=0x2 => {
                    return Err(protocol_error(
                        1002,
                        "unexpected continuation or data frame",
                    ));
                }
                _ => return Err(protocol_error(1002, "unknown opcode")),
            }
            if !fin {
                continue;
            }
            let (compressed, text, bytes) = self.partial.take().expect("a data message");
            let bytes = if compressed {
                let inflater = self.inflater.get_or_insert_with(|| Decompress::new(false));
                if !self.from_client {
                    inflater.reset(false);
                }
                inflate(inflater, &bytes, self.max_message)?
            } else {
                bytes
            };
            if !text {
                continue;
            }
            return match String::from_utf8(bytes) {
                Ok(t) => Ok(Some(Message::Text(t))),
                Err(_) => Err(protocol_error(1007, "a text message must be UTF-8")),
            };
        }
    }

    /// The next whole frame: its first byte and its unmasked payload.
    fn next_frame(&mut self) -> Result<Option<(u8, BytesMut)>, ProtocolError> {
        let b = &self.buf[..];
        if b.len() < 2 {
            return Ok(None);
        }
        let masked = b[1] & 0x80 != 0;
        if masked != self.from_client {
            return Err(protocol_error(
                1002,
                "a client's frames must be masked, a server's must not",
            ));
        }
        let (len, header) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().expect("8")), 10),
            126 | 127 => return Ok(None),
            n => (u64::from(n), 2),
        };
        if len >> 63 != 0 {
            return Err(protocol_error(
                1002,
                "a frame length's most significant bit must be 0",
            ));
        }
        if b[0] & 0x08 != 0 && len > 125 {
            return Err(protocol_error(
                1002,
                "a control frame carries at most 125 bytes",
            ));
        }
        if len > self.max_message as u64 {
            return Err(protocol_error(1009, "message too big"));
        }
        let (len, mask_len) = (len as usize, if masked { 4 } else { 0 });
        if b.len() < header + mask_len + len {
            return Ok(None);
        }
        let first = b[0];
        let mut mask = [0u8; 4];
        mask[..mask_len].copy_from_slice(&b[header..header + mask_len]);
        self.buf.advance(header + mask_len);
        let mut payload = self.buf.split_to(len);
        if masked {
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= mask[i & 3];
            }
        }
        Ok(Some((first, payload)))
    }
}

/// The status code of a close frame's payload (RFC 6455 section 5.5.1): none, or two bytes
/// of a code an endpoint may send, then a UTF-8 reason.
fn close_code(payload: &[u8]) -> Result<Option<u16>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(protocol_error(1002, "a close frame's code takes two bytes")),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            // 1004-1006 and 1015 are never sent; below 1000 and 1016-2999 are not codes;
            // 3000-4999 belong to libraries and applications (section 7.4).
            let sendable = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !sendable {
                return Err(protocol_error(
                    1002,
                    "not a close code an endpoint may send",
                ));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(protocol_error(1007, "a close reason must be UTF-8"));
            }
            Ok(Some(code))
        }
    }
}

/// Inflates one compressed message (RFC 7692 section 7.2.2), keeping the context. Refuses
/// data that stops making progress (e.g. bytes after the end of a final deflate block: the
/// fuzzer found that this loop otherwise grew its buffer without end) and output past
/// `limit`.
fn inflate(inflater: &mut Decompress, data: &[u8], limit: usize) -> Result<Vec<u8>, ProtocolError> {
    let mut input = Vec::with_capacity(data.len() + 4);
    input.extend_from_slice(data);
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let start = inflater.total_in();
    let mut out = Vec::with_capacity((data.len() * 4 + 64).min(limit + 1));
    loop {
        let (consumed, produced) = ((inflater.total_in() - start) as usize, out.len());
        inflater
            .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
            .map_err(|_| protocol_error(1007, "bad compressed data"))?;
        if out.len() > limit {
            return Err(protocol_error(1009, "message too big"));
        }
        let now_consumed = (inflater.total_in() - start) as usize;
        if now_consumed == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        if now_consumed == consumed && out.len() == produced && out.len() < out.capacity() {
            return Err(protocol_error(1007, "bad compressed data"));
        }
        out.reserve(out.capacity().max(1024).min(limit + 1));
    }
}

/// A close frame: the status code, then the reason (cut to fit a control frame's 125 bytes).
pub fn close_frame(code: u16, reason: &str) -> bytes::Bytes {
    let mut payload = code.to_be_bytes().to_vec();
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(WsOpcode::Close, &payload).into()
}

/// A WebSocket client's message: a new filter (and optionally a snapshot for it).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterMessage {
    #[serde(rename = "type")]
    kind: String,
    location_id: Option<Vec<u8>>,
    event_type: Option<Vec<String>>,
    #[serde(default)]
    snapshot: bool,
}

/// A client's filter message (`{"type":"filter","location_id":[1],...}`): the new
/// filter and whether it asks for a snapshot. Client input: refused with a message, never
/// a panic (fuzzed: fuzz/fuzz_targets/filter_message.rs).
pub fn filter_message(text: &str) -> Result<(Filter, bool), String> {
    let m: FilterMessage = serde_json::from_str(text).map_err(|e| {
        format!(
            "expected {{\"type\":\"filter\",\"location_id\":[1],\"event_type\":[\"driver_ping\"],\"snapshot\":false}}: {e}"
        )
    })?;
    if m.kind != "filter" {
        return Err(format!("unknown message type '{}' (known: filter)", m.kind));
    }
    let locations = m.location_id.unwrap_or_default();
    let types = m.event_type.unwrap_or_default();
    let joined_l = locations
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let filter = Filter::parse(Some(&joined_l), Some(&types.join(",")))?;
    Ok((filter, m.snapshot))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's frame: masked with a fixed key.
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = framed(first, payload);
        let header = f.len() - payload.len();
        f[1] |= 0x80;
        let mask = [0x12, 0x34, 0x56, 0x78];
        let masked: Vec<u8> = payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i & 3])
            .collect();
        f.truncate(header);
        f.extend_from_slice(&mask);
        f.extend_from_slice(&masked);
        f
    }

    fn inflate_once(data: &[u8]) -> Vec<u8> {
        inflate(&mut Decompress::new(false), data, 1 << 20).unwrap()
    }

    #[test]
    fn a_compressed_message_inflates_on_its_own() {
        let payload = br#"{"type":"events","events":[{"a":1},{"a":1},{"a":1},{"a":1}]}"#.repeat(20);
        let message = text_message(&payload, true);
        assert_eq!(message[0], 0xC1, "FIN, RSV1, text");
        assert!(message.len() < payload.len() / 4);
        // Each message decodes with a fresh context: no context takeover.
        let body = &message[if message[1] == 126 { 4 } else { 2 }..];
        assert_eq!(inflate_once(body), payload);
        assert_eq!(text_message(&payload, true), message);
        // Short ones go uncompressed.
        assert_eq!(text_message(b"{}", true), frame(WsOpcode::Text, b"{}"));
    }

    #[test]
    fn offers() {
        assert!(deflate_offered(
            "permessage-deflate; client_max_window_bits"
        ));
        assert!(deflate_offered(
            "x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover"
        ));
        assert!(!deflate_offered(
            "permessage-deflate; server_max_window_bits=10"
        ));
        assert!(deflate_offered(
            "permessage-deflate; server_max_window_bits=10, permessage-deflate"
        ));
        assert!(!deflate_offered("x-webkit-deflate-frame"));
    }

    #[test]
    fn reads_masked_fragmented_and_compressed_messages() {
        let mut r = MessageReader::from_client(true, 1 << 16);
        let mut bytes = client_frame(0x01, b"{\"type\":");
        bytes.extend(client_frame(0x89, b"hi"));
        bytes.extend(client_frame(0x80, b"\"filter\"}"));
        // A compressed message, split across two reads.
        let compressed = compress(&b"{\"type\":\"filter\",\"location_id\":[1]}".repeat(3));
        let f = client_frame(0xC1, &compressed);
        bytes.extend(&f[..5]);
        r.extend(&bytes);
        assert_eq!(r.next_message(), Ok(Some(Message::Ping("hi".into()))));
        assert_eq!(
            r.next_message(),
            Ok(Some(Message::Text("{\"type\":\"filter\"}".into())))
        );
        assert_eq!(r.next_message(), Ok(None));
        r.extend(&f[5..]);
        assert_eq!(
            r.next_message(),
            Ok(Some(Message::Text(
                "{\"type\":\"filter\",\"location_id\":[1]}".repeat(3)
            )))
        );
        r.extend(&client_frame(0x88, &1000u16.to_be_bytes()));
        assert_eq!(r.next_message(), Ok(Some(Message::Close(Some(1000)))));
    }

    #[test]
    fn reads_the_servers_frames_each_compressed_message_on_its_own() {
        let payload = b"{\"type\":\"events\",\"events\":[]}".repeat(30);
        let mut r = MessageReader::from_server(true, 1 << 16);
        for _ in 0..3 {
            r.extend(&text_message(&payload, true));
        }
        r.extend(&frame(WsOpcode::Ping, b""));
        for _ in 0..3 {
            let text = String::from_utf8(payload.clone()).unwrap();
            assert_eq!(r.next_message(), Ok(Some(Message::Text(text))));
        }
        assert_eq!(r.next_message(), Ok(Some(Message::Ping(Bytes::new()))));
    }

    #[test]
    fn refuses_protocol_errors() {
        let code = |deflate: bool, bytes: Vec<u8>| {
            let mut r = MessageReader::from_client(deflate, 100);
            r.extend(&bytes);
            r.next_message().unwrap_err().code
        };
        assert_eq!(code(true, framed(0x81, b"unmasked")), 1002);
        let mut from_server = MessageReader::from_server(true, 100);
        from_server.extend(&client_frame(0x81, b"masked"));
        assert_eq!(from_server.next_message().unwrap_err().code, 1002);
        assert_eq!(
            code(false, client_frame(0xC1, b"x")),
            1002,
            "RSV1 not negotiated"
        );
        assert_eq!(
            code(true, client_frame(0x80, b"x")),
            1002,
            "nothing to continue"
        );
        assert_eq!(
            code(true, client_frame(0x09, b"x")),
            1002,
            "fragmented ping"
        );
        assert_eq!(code(true, client_frame(0x81, &[0xff, 0xfe])), 1007);
        assert_eq!(code(true, client_frame(0x81, &[b'a'; 101])), 1009);
        assert_eq!(
            code(true, client_frame(0xC1, &compress(&[b'a'; 500]))),
            1009
        );
        assert_eq!(
            code(true, client_frame(0x89, &[b'p'; 126])),
            1002,
            "long ping"
        );
        assert_eq!(code(true, client_frame(0x88, &[3])), 1002, "one-byte close");
        assert_eq!(code(true, client_frame(0x88, &999u16.to_be_bytes())), 1002);
        assert_eq!(code(true, client_frame(0x88, &1005u16.to_be_bytes())), 1002);
        assert_eq!(
            code(true, client_frame(0x08, &1000u16.to_be_bytes())),
            1002,
            "fragmented close"
        );
        assert_eq!(code(true, client_frame(0xC9, b"")), 1002, "compressed ping");
        let mut bad_reason = 1000u16.to_be_bytes().to_vec();
        bad_reason.extend([0xce, 0xba, 0xe1, 0xbd]);
        assert_eq!(code(true, client_frame(0x88, &bad_reason)), 1007);
        let mut huge = vec![0x81, 0xff];
        huge.extend(u64::MAX.to_be_bytes());
        huge.extend([0, 0, 0, 0]);
        assert_eq!(code(true, huge), 1002, "length with its top bit set");
        // A final deflate block, then more bytes: refused, not inflated without end.
        let mut c = Compress::new(Compression::default(), false);
        let mut ended = Vec::with_capacity(64);
        c.compress_vec(b"{}", &mut ended, FlushCompress::Finish)
            .unwrap();
        ended.extend_from_slice(b"\x12\x34\x56");
        assert_eq!(
            code(true, client_frame(0xC1, &ended)),
            1007,
            "data after the final block"
        );
    }

    #[test]
    fn close_codes() {
        for ok in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert_eq!(close_code(&ok.to_be_bytes()), Ok(Some(ok)), "{ok}");
        }
        for bad in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert_eq!(
                close_code(&bad.to_be_bytes()).unwrap_err().code,
                1002,
                "{bad}"
            );
        }
        assert_eq!(close_code(b""), Ok(None));
    }

    #[test]
    fn the_same_bytes_in_any_split_give_the_same_messages() {
        let mut bytes = client_frame(0x01, "{\"type\":\"fil".as_bytes());
        bytes.extend(client_frame(0x89, b"ping"));
        bytes.extend(client_frame(0x80, "ter\",\"x\":\"\u{e9}\"}".as_bytes()));
        bytes.extend(client_frame(0xC1, &compress(&b"{\"a\":1}".repeat(40))));
        bytes.extend(client_frame(0x88, &1001u16.to_be_bytes()));
        let whole = {
            let mut r = MessageReader::from_client(true, 1 << 16);
            r.extend(&bytes);
            std::iter::from_fn(|| r.next_message().unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(whole.len(), 4);
        for step in 1..bytes.len() {
            let mut r = MessageReader::from_client(true, 1 << 16);
            let mut got = Vec::new();
            for piece in bytes.chunks(step) {
                r.extend(piece);
                while let Some(m) = r.next_message().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, whole, "split every {step} bytes");
        }
    }
}
