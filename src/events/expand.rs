//! The one expansion of an indexed event to its canonical JSON object (SPEC section 2).
//!
//! Every output of the product (files, SSE, WebSocket) calls [`expand_event`], so an event
//! reads the same everywhere. It writes straight into the caller's reusable buffer: text the
//! body embeds was escaped once at load time, numbers go through `itoa`/`ryu`, and no
//! `serde_json::Value` is built per event.

use super::json::{push_f32, push_int};
use super::{EVENT_ID_LEN, EventType, write_event_id};
use crate::dataset::EventIndex;
use crate::time::{TS_LEN, write_ts};

/// Where an event lands in a replay: loop `loop_index` (0 for the first pass; k > 0 suffixes
/// `order_id` with `-Lk`) and `seconds` added to its time (loop span and any shift).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventShift {
    pub loop_index: u32,
    pub seconds: i64,
}

/// Appends the JSON object of the event at `pos` (no trailing newline) to `out`.
pub fn expand_event(index: &EventIndex, pos: usize, shift: EventShift, out: &mut Vec<u8>) {
    let event_type = index.event_type(pos);
    let order_id = index.order_id(pos);
    let sequence = index.sequence(pos);

    let mut id = [0u8; EVENT_ID_LEN];
    write_event_id(order_id, shift.loop_index, sequence, &mut id);
    let mut ts = [0u8; TS_LEN];
    write_ts(index.ts(pos) + shift.seconds, &mut ts);

    out.extend_from_slice(b"{\"event_id\":\"");
    out.extend_from_slice(&id);
    out.extend_from_slice(b"\",\"event_type\":\"");
    out.extend_from_slice(event_type.name().as_bytes());
    out.extend_from_slice(b"\",\"ts\":\"");
    out.extend_from_slice(&ts);
    out.extend_from_slice(b"\",\"location_id\":");
    push_int(out, index.location_id(pos));
    out.extend_from_slice(b",\"order_id\":\"");
    out.extend_from_slice(order_id);
    if shift.loop_index > 0 {
        out.extend_from_slice(b"-L");
        push_int(out, shift.loop_index);
    }
    out.extend_from_slice(b"\",\"sequence\":");
    push_int(out, sequence);
    out.extend_from_slice(b",\"body\":\"{");
    write_body(index, pos, event_type, out);
    out.extend_from_slice(b"}\"}");
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
