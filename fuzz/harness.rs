//! What each fuzz target checks, shared by the targets (fuzz_targets/) and by the crate's
//! tests, which replay the kept corpus (tests/fuzz_corpus.rs). Every parser of client input
//! must answer any bytes with a value or an error, never a panic, and what it accepts must
//! hold together.

use std::collections::HashMap;

use caspers_replay::fanout::websocket::{Message, MessageReader, ProtocolError, filter_message};
use caspers_replay::timeline::Position;

/// A client's WebSocket frames, read whole and read in the splits the input's first bytes
/// choose (with and without permessage-deflate): the same messages, the same error.
pub fn ws_frames(data: &[u8]) {
    let [flags, step, rest @ ..] = data else {
        return;
    };
    let deflate = flags & 1 == 1;
    let read = |pieces: &mut dyn Iterator<Item = &[u8]>| {
        let mut reader = MessageReader::from_client(deflate, 64 * 1024);
        let mut got: Vec<Message> = Vec::new();
        for piece in pieces {
            reader.extend(piece);
            loop {
                match reader.next_message() {
                    Ok(Some(m)) => got.push(m),
                    Ok(None) => break,
                    Err(e) => return (got, Some(e)),
                }
            }
        }
        (got, None::<ProtocolError>)
    };
    let whole = read(&mut std::iter::once(rest));
    let step = usize::from(*step).max(1);
    let split = read(&mut rest.chunks(step));
    assert_eq!(whole, split, "the same bytes in pieces of {step}");
    if let (_, Some(e)) = &whole {
        assert!(
            matches!(e.code, 1002 | 1007 | 1009),
            "a close code for a protocol error: {}",
            e.code
        );
    }
}

/// A stream's query parameters (`k=v&k=v`, taken as they are, not percent-decoded).
pub fn stream_query(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let query: HashMap<String, String> = text
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    if let Ok(p) = caspers_replay::http::params::parse_stream_query(&query) {
        let ids = p.filter.location_ids();
        let types: Vec<&str> = p.filter.event_types().iter().map(|t| t.name()).collect();
        // What was accepted reads back the same way.
        let again = caspers_replay::events::Filter::parse(
            Some(&ids.iter().map(u8::to_string).collect::<Vec<_>>().join(",")),
            Some(&types.join(",")),
        )
        .expect("a filter's own text parses");
        assert_eq!(again, p.filter);
    }
}

/// A position (`from`, `Last-Event-ID`): what parses prints back to itself.
pub fn position(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = Position::parse(text, "23a9f17e") {
        assert_eq!(Position::parse(&p.to_text("23a9f17e"), "23a9f17e"), Ok(p));
    }
}

/// A presenter's change to the clock (`POST /v1/clock`).
pub fn clock_change(data: &[u8]) {
    if let Ok(commands) = caspers_replay::clock::change::parse_change(data, 1_704_067_466) {
        assert!(!commands.is_empty());
    }
}

/// A WebSocket client's filter message.
pub fn filter_message_text(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = filter_message(text);
    }
}
