//! How events and messages are framed for each transport: a tick's events expanded once and
//! framed once per group (SSE frames, a WebSocket message, compressed once for a deflate
//! group), control messages, and the memory the shared chunks hold.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

use super::queue::EventChunk;
use super::websocket;
use crate::dataset::{Dataset, EventType};
use crate::events::{EventShift, Filter, expand_event};
use crate::timeline::Position;

/// How a subscriber's events are framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Sse,
    WebSocket,
    /// WebSocket with permessage-deflate negotiated: a tick's message is compressed once
    /// for the whole group.
    WebSocketDeflate,
}

impl Transport {
    /// A control message (its JSON has a `type`): an SSE event named after it, carrying no
    /// `id:` (a client must never resume from one), or the JSON as a WebSocket message.
    pub fn control(self, kind: &str, json: &[u8]) -> Bytes {
        match self {
            Transport::Sse => {
                let mut out = Vec::with_capacity(json.len() + 24);
                out.extend_from_slice(b"event: ");
                out.extend_from_slice(kind.as_bytes());
                out.extend_from_slice(b"\ndata: ");
                out.extend_from_slice(json);
                out.extend_from_slice(b"\n\n");
                out.into()
            }
            Transport::WebSocket | Transport::WebSocketDeflate => {
                websocket::text_message(json, self.deflates()).into()
            }
        }
    }

    fn deflates(self) -> bool {
        self == Transport::WebSocketDeflate
    }
}

/// Puts a `lagged` notice for `missed` events ahead of `chunks`.
pub(super) fn lagged_notice(transport: Transport, missed: u64, chunks: &mut Vec<EventChunk>) {
    let message = serde_json::json!({
        "type": "lagged",
        "missed": missed,
        "message": "the catch-up holds the latest events that fit in the client's queue: \
                    older ones were skipped",
    });
    chunks.insert(
        0,
        EventChunk::notice(transport.control("lagged", message.to_string().as_bytes())),
    );
}

/// Where one event of a tick sits in the tick's buffers.
struct FramedEvent {
    location_id: u8,
    event_type: EventType,
    /// Its SSE frame in `FramedTick::sse_buffer`.
    frame: Range<usize>,
    /// Its JSON inside that frame.
    json: Range<usize>,
    at: Position,
    /// Its position text in `FramedTick::positions`.
    position: Range<usize>,
}

/// One tick's events, expanded once, framed once per transport on demand. Each chunk
/// starts with the tick's emission time (Unix milliseconds: an SSE comment line, or the
/// `emitted_at` member of the WebSocket message), so clients can measure their delay.
pub(super) struct FramedTick {
    emitted_ms: u64,
    /// Every event's SSE frame, back to back, after the emission comment, in a buffer
    /// from [`sse_buffer`]: the offsets in `index` and `frames_start` count from the
    /// buffer's start.
    sse_buffer: Bytes,
    /// The tick's SSE chunk for every event, as an HTTP/1.1 chunk, and its size line's
    /// length ([`EventChunk::size_line`]).
    sse: (Bytes, u8),
    /// Where the frames start in `sse_buffer` (after the comment).
    frames_start: usize,
    index: Vec<FramedEvent>,
    positions: Vec<u8>,
    /// Where its chunks' bytes are counted while they live.
    memory: Arc<AtomicUsize>,
}

/// Room kept ahead of an SSE chunk's bytes for its HTTP/1.1 chunk-size line (8 hex
/// digits and CRLF).
const SIZE_LINE_ROOM: usize = 10;

/// An SSE chunk's buffer: [`SIZE_LINE_ROOM`] bytes of room, then the chunk's bytes.
fn sse_buffer(capacity: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(SIZE_LINE_ROOM + capacity + 2);
    data.resize(SIZE_LINE_ROOM, 0);
    data
}

/// The SSE chunk in `data` (from [`sse_buffer`]): the whole counted buffer, the chunk as
/// one HTTP/1.1 chunk in it, and its size line's length.
fn sse_chunk(mut data: Vec<u8>, memory: &Arc<AtomicUsize>) -> (Bytes, Bytes, u8) {
    let size = data.len() - SIZE_LINE_ROOM;
    let line = format!("{size:x}\r\n");
    let head = SIZE_LINE_ROOM - line.len();
    data[head..SIZE_LINE_ROOM].copy_from_slice(line.as_bytes());
    data.extend_from_slice(b"\r\n");
    let all = counted(data, memory);
    let http_chunk = all.slice(head..);
    (all, http_chunk, line.len() as u8)
}

/// Bytes whose size counts in `memory` until the last clone is dropped: the hub's budget
/// measures what the shared chunks really hold, once each, however many queues share them.
pub(super) fn counted(data: Vec<u8>, memory: &Arc<AtomicUsize>) -> Bytes {
    struct Counted {
        data: Vec<u8>,
        memory: Arc<AtomicUsize>,
    }
    impl AsRef<[u8]> for Counted {
        fn as_ref(&self) -> &[u8] {
            &self.data
        }
    }
    impl Drop for Counted {
        fn drop(&mut self) {
            self.memory.fetch_sub(self.data.len(), Ordering::Relaxed);
        }
    }
    memory.fetch_add(data.len(), Ordering::Relaxed);
    Bytes::from_owner(Counted {
        data,
        memory: Arc::clone(memory),
    })
}

impl FramedTick {
    pub(super) fn new(
        ds: &Dataset,
        tag: &str,
        events: &[(usize, EventShift)],
        memory: &Arc<AtomicUsize>,
    ) -> FramedTick {
        let emitted_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut sse = sse_buffer(events.len() * 400 + 32);
        sse.extend_from_slice(b": emitted ");
        crate::json::push_int(&mut sse, emitted_ms);
        sse.push(b'\n');
        let frames_start = sse.len();
        let mut positions = Vec::with_capacity(events.len() * 20);
        let mut index = Vec::with_capacity(events.len());
        for &(pos, shift) in events {
            let start = sse.len();
            sse.extend_from_slice(b"id: ");
            let p0 = positions.len();
            let at = Position {
                loop_index: shift.loop_index,
                row: pos as u32,
            };
            at.write(tag, &mut positions);
            sse.extend_from_slice(&positions[p0..]);
            sse.extend_from_slice(b"\ndata: ");
            let j0 = sse.len();
            expand_event(&ds.events, pos, shift, &mut sse);
            let j1 = sse.len();
            sse.extend_from_slice(b"\n\n");
            index.push(FramedEvent {
                location_id: ds.events.location_id(pos),
                event_type: ds.events.event_type(pos),
                frame: start..sse.len(),
                json: j0..j1,
                at,
                position: p0..positions.len(),
            });
        }
        let (sse_buffer, http_chunk, size_line) = sse_chunk(sse, memory);
        FramedTick {
            emitted_ms,
            sse_buffer,
            sse: (http_chunk, size_line),
            memory: Arc::clone(memory),
            frames_start,
            index,
            positions,
        }
    }

    /// The tick's chunk for a group, with its event count; `None` when no event passes.
    pub(super) fn chunk(&self, filter: Filter, transport: Transport) -> Option<EventChunk> {
        let picked: Vec<usize> = (0..self.index.len())
            .filter(|&i| filter.matches(self.index[i].location_id, self.index[i].event_type))
            .collect();
        if picked.is_empty() {
            return None;
        }
        let (events, last) = (
            picked.len() as u64,
            picked.last().map(|&i| self.index[i].at),
        );
        let chunk = |(bytes, size_line)| EventChunk {
            bytes,
            size_line,
            events,
            last,
        };
        Some(chunk(match transport {
            Transport::Sse if picked.len() == self.index.len() => (self.sse.0.clone(), self.sse.1),
            Transport::Sse => {
                let mut out = sse_buffer(picked.len() * 400);
                out.extend_from_slice(&self.sse_buffer[SIZE_LINE_ROOM..self.frames_start]);
                for i in picked {
                    out.extend_from_slice(&self.sse_buffer[self.index[i].frame.clone()]);
                }
                let (_, http_chunk, size_line) = sse_chunk(out, &self.memory);
                (http_chunk, size_line)
            }
            Transport::WebSocket | Transport::WebSocketDeflate => {
                let mut out = Vec::with_capacity(picked.len() * 400);
                out.extend_from_slice(b"{\"type\":\"events\",\"emitted_at\":");
                crate::json::push_int(&mut out, self.emitted_ms);
                out.extend_from_slice(b",\"events\":[");
                for (k, &i) in picked.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&self.sse_buffer[self.index[i].json.clone()]);
                }
                out.extend_from_slice(b"],\"positions\":[");
                for (k, &i) in picked.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    out.push(b'"');
                    out.extend_from_slice(&self.positions[self.index[i].position.clone()]);
                    out.push(b'"');
                }
                out.extend_from_slice(b"]}");
                let message = websocket::text_message(&out, transport.deflates());
                (counted(message, &self.memory), 0)
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sse_chunk_is_one_http_chunk_around_its_events() {
        let memory = Arc::new(AtomicUsize::new(0));
        let events = b"id: 1\ndata: {}\n\n".repeat(100);
        let mut data = sse_buffer(events.len());
        data.extend_from_slice(&events);
        let (_, framed, size_line) = sse_chunk(data, &memory);
        assert!(
            memory.load(Ordering::Relaxed) >= events.len(),
            "counted while held"
        );
        let expected = [
            format!("{:x}\r\n", events.len()).as_bytes(),
            &events,
            b"\r\n",
        ]
        .concat();
        assert_eq!(&framed[..], &expected[..]);
        let chunk = EventChunk {
            bytes: framed,
            size_line,
            events: 100,
            last: None,
        };
        assert_eq!(&chunk.unchunked()[..], &events[..]);
        assert_eq!(memory.load(Ordering::Relaxed), 0, "uncounted once dropped");
    }
}
