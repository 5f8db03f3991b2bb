//! The one expansion of an indexed event to its canonical JSON object (docs/batch-replay.md, the event).
//!
//! Every output of the product (files, SSE, WebSocket) calls [`expand_event`], so an event
//! reads the same everywhere. It writes straight into the caller's reusable buffer: text the
//! body embeds was escaped once at load time, numbers go through `itoa`/`ryu`, and no
//! `serde_json::Value` is built per event.

use super::{EVENT_ID_LEN, write_event_id};
use crate::dataset::EventIndex;
use crate::dataset::EventType;
use crate::json::{push_f32, push_int};
use crate::time::{TS_LEN, write_ts};

/// Where an event lands in a replay: loop `loop_index` (0 for the first pass; k > 0 suffixes
/// `order_id` with `-Lk`) and `seconds` added to its time (loop span and any shift).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventShift {
    pub loop_index: u32,
    pub seconds: i64,
}

/// An event's fields, ready to write: the one place they are derived (ids, the shifted
/// time, the loop's order id suffix), for the JSON object and the Arrow columns alike.
pub struct EventFields<'a> {
    pub event_id: [u8; EVENT_ID_LEN],
    pub event_type: EventType,
    pub ts: [u8; TS_LEN],
    pub location_id: u8,
    order_id: &'a [u8],
    loop_index: u32,
    pub sequence: u32,
}

impl<'a> EventFields<'a> {
    pub fn of(index: &'a EventIndex, pos: usize, shift: EventShift) -> EventFields<'a> {
        let order_id = index.order_id(pos);
        let sequence = index.sequence(pos);
        let mut event_id = [0u8; EVENT_ID_LEN];
        write_event_id(order_id, shift.loop_index, sequence, &mut event_id);
        let mut ts = [0u8; TS_LEN];
        write_ts(index.ts(pos) + shift.seconds, &mut ts);
        EventFields {
            event_id,
            event_type: index.event_type(pos),
            ts,
            location_id: index.location_id(pos),
            order_id,
            loop_index: shift.loop_index,
            sequence: sequence.into(),
        }
    }

    /// The order id, with `-Lk` in loop k > 0.
    pub fn write_order_id(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.order_id);
        if self.loop_index > 0 {
            out.extend_from_slice(b"-L");
            push_int(out, self.loop_index);
        }
    }
}

/// Appends the JSON object of the event at `pos` (no trailing newline) to `out`.
pub fn expand_event(index: &EventIndex, pos: usize, shift: EventShift, out: &mut Vec<u8>) {
    let f = EventFields::of(index, pos, shift);
    out.extend_from_slice(b"{\"event_id\":\"");
    out.extend_from_slice(&f.event_id);
    out.extend_from_slice(b"\",\"event_type\":\"");
    out.extend_from_slice(f.event_type.name().as_bytes());
    out.extend_from_slice(b"\",\"ts\":\"");
    out.extend_from_slice(&f.ts);
    out.extend_from_slice(b"\",\"location_id\":");
    push_int(out, f.location_id);
    out.extend_from_slice(b",\"order_id\":\"");
    f.write_order_id(out);
    out.extend_from_slice(b"\",\"sequence\":");
    push_int(out, f.sequence);
    out.extend_from_slice(b",\"body\":\"{");
    write_body(index, pos, f.event_type, out);
    out.extend_from_slice(b"}\"}");
}

/// The body object's JSON text itself (the `body` column), appended to `out`: the same
/// members as the JSON object's body string, unescaped once. `scratch` is reused.
pub fn write_body_text(index: &EventIndex, pos: usize, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    scratch.clear();
    scratch.extend_from_slice(b"\"{");
    write_body(index, pos, index.event_type(pos), scratch);
    scratch.extend_from_slice(b"}\"");
    // The body string holds only what write_body escaped, so it is always a valid one.
    let text: String = serde_json::from_slice(scratch).expect("an escaped body");
    out.extend_from_slice(text.as_bytes());
}

/// The members of the body object, escaped for the body string.
fn write_body(index: &EventIndex, pos: usize, event_type: EventType, out: &mut Vec<u8>) {
    match event_type {
        EventType::OrderCreated => {
            let mut sep: &[u8] = b"";
            if let Some((lat, lon)) = index.position(pos) {
                out.extend_from_slice(b"\\\"customer_lat\\\":");
                push_f32(out, lat);
                out.extend_from_slice(b",\\\"customer_lon\\\":");
                push_f32(out, lon);
                sep = b",";
            }
            out.extend_from_slice(sep);
            out.extend_from_slice(b"\\\"customer_addr\\\":\\\"");
            out.extend_from_slice(index.addr_escaped(pos));
            out.extend_from_slice(b"\\\"");
            if let Some(items) = index.json_escaped(pos) {
                out.extend_from_slice(b",\\\"items\\\":");
                out.extend_from_slice(items);
            }
        }
        EventType::DriverPickedUp => {
            if let Some(route) = index.json_escaped(pos) {
                out.extend_from_slice(b"\\\"route_points\\\":");
                out.extend_from_slice(route);
            }
        }
        EventType::DriverPing => {
            if let Some((lat, lon)) = index.position(pos) {
                out.extend_from_slice(b"\\\"progress_pct\\\":");
                push_f32(out, index.progress(pos));
                out.extend_from_slice(b",\\\"loc_lat\\\":");
                push_f32(out, lat);
                out.extend_from_slice(b",\\\"loc_lon\\\":");
                push_f32(out, lon);
            }
        }
        EventType::Delivered => {
            if let Some((lat, lon)) = index.position(pos) {
                out.extend_from_slice(b"\\\"delivered_lat\\\":");
                push_f32(out, lat);
                out.extend_from_slice(b",\\\"delivered_lon\\\":");
                push_f32(out, lon);
            }
        }
        EventType::GkStarted
        | EventType::GkFinished
        | EventType::GkReady
        | EventType::DriverArrived => {}
    }
}
