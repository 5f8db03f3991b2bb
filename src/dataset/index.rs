//! The time-ordered, columnar, in-memory index of every event.
//!
//! One `Vec` per field (not a `Vec` of row structs) keeps the 1M-event dataset near 40 MB
//! plus its JSON text, and keeps the range search on `ts` cache-friendly. Rows are sorted by
//! (ts_seconds, sequence, file row): the canonical order of every output.

use std::ops::Range;

use super::EventType;
use crate::json::{push_escaped, push_minified_escaped};

/// Marks an event with no text (`text` column).
pub(super) const NO_TEXT: u32 = u32::MAX;

/// The text an event carries, as ranges of the arena, already in the form the body embeds:
/// `addr` escaped twice (a JSON string inside a JSON string), `json` minified and escaped once.
#[derive(Clone, Copy, Debug)]
pub(super) struct TextRef {
    pub(super) start: u32,
    pub(super) addr_len: u32,
    pub(super) end: u32,
}

/// All events of a dataset, sorted by (ts_seconds, sequence, file row).
#[derive(Debug, Default)]
pub struct EventIndex {
    pub(super) ts: Vec<i64>,
    pub(super) sequence: Vec<u16>,
    pub(super) location: Vec<u8>,
    pub(super) event_type: Vec<EventType>,
    pub(super) order: Vec<u32>,
    /// customer_lat/lon on order_created and delivered, ping_lat/lon on driver_ping; NaN: null.
    pub(super) lat: Vec<f32>,
    pub(super) lon: Vec<f32>,
    pub(super) progress: Vec<f32>,
    pub(super) text: Vec<u32>,
    pub(super) texts: Vec<TextRef>,
    /// Order ids, back to back; `order_ends[k]` is where order k's id ends.
    pub(super) order_ids: Vec<u8>,
    pub(super) order_ends: Vec<u32>,
    pub(super) arena: Vec<u8>,
}

/// One row as the loader (or a test) hands it to [`IndexBuilder::push`].
#[derive(Clone, Copy, Debug)]
pub struct RawEvent<'a> {
    pub order_id: &'a str,
    pub location_id: u8,
    pub event_type: EventType,
    pub ts_seconds: i64,
    pub sequence: u16,
    /// Customer position (order_created, delivered) or ping position (driver_ping); NaN: null.
    pub lat: f32,
    pub lon: f32,
    pub progress: f32,
    /// customer_addr (order_created).
    pub addr: Option<&'a str>,
    /// items_json (order_created) or route_json (driver_picked_up), already checked to parse.
    pub json: Option<&'a str>,
}

/// Collects rows in file order, then sorts them into an [`EventIndex`].
#[derive(Debug, Default)]
pub struct IndexBuilder {
    index: EventIndex,
    scratch: Vec<u8>,
}

impl IndexBuilder {
    /// A builder for about `rows` rows holding about `text_bytes` of addresses and JSON.
    pub fn with_capacity(rows: usize, text_bytes: usize) -> Self {
        let mut b = IndexBuilder::default();
        let ix = &mut b.index;
        // Escaping adds about one byte in ten to the items; minifying takes as much from
        // the routes.
        ix.arena.reserve(text_bytes + text_bytes / 8);
        ix.ts.reserve(rows);
        ix.sequence.reserve(rows);
        ix.location.reserve(rows);
        ix.event_type.reserve(rows);
        ix.order.reserve(rows);
        ix.lat.reserve(rows);
        ix.lon.reserve(rows);
        ix.progress.reserve(rows);
        ix.text.reserve(rows);
        b
    }

    /// Rows pushed so far.
    pub fn len(&self) -> usize {
        self.index.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.ts.is_empty()
    }

    /// Appends one row. Rows of one order usually come together (the file is grouped by
    /// order), so an order id equal to the previous row's is stored once.
    pub fn push(&mut self, row: RawEvent<'_>) {
        let ix = &mut self.index;
        let same_order = ix
            .order_ends
            .len()
            .checked_sub(1)
            .is_some_and(|last| ix.order_id_bytes(last as u32) == row.order_id.as_bytes());
        if !same_order {
            ix.order_ids.extend_from_slice(row.order_id.as_bytes());
            ix.order_ends.push(arena_pos(&ix.order_ids));
        }
        ix.order.push(ix.order_ends.len() as u32 - 1);
        ix.ts.push(row.ts_seconds);
        ix.sequence.push(row.sequence);
        ix.location.push(row.location_id);
        ix.event_type.push(row.event_type);
        ix.lat.push(row.lat);
        ix.lon.push(row.lon);
        ix.progress.push(row.progress);
        if row.addr.is_none() && row.json.is_none() {
            ix.text.push(NO_TEXT);
            return;
        }
        let start = arena_pos(&ix.arena);
        if let Some(addr) = row.addr {
            self.scratch.clear();
            push_escaped(&mut self.scratch, addr.as_bytes());
            push_escaped(&mut ix.arena, &self.scratch);
        }
        let addr_len = arena_pos(&ix.arena) - start;
        if let Some(json) = row.json {
            push_minified_escaped(&mut ix.arena, json.as_bytes());
        }
        ix.text.push(ix.texts.len() as u32);
        ix.texts.push(TextRef {
            start,
            addr_len,
            end: arena_pos(&ix.arena),
        });
    }

    /// Sorts the rows by (ts_seconds, sequence, file row) and returns the index.
    pub fn finish(self) -> EventIndex {
        let ix = self.index;
        let mut perm: Vec<u32> = (0..ix.ts.len() as u32).collect();
        // Ties keep file order: the sort is stable and starts from file order.
        perm.sort_by_key(|&r| (ix.ts[r as usize], ix.sequence[r as usize]));
        EventIndex {
            ts: permute(&perm, &ix.ts),
            sequence: permute(&perm, &ix.sequence),
            location: permute(&perm, &ix.location),
            event_type: permute(&perm, &ix.event_type),
            order: permute(&perm, &ix.order),
            lat: permute(&perm, &ix.lat),
            lon: permute(&perm, &ix.lon),
            progress: permute(&perm, &ix.progress),
            text: permute(&perm, &ix.text),
            texts: ix.texts,
            order_ids: ix.order_ids,
            order_ends: ix.order_ends,
            arena: ix.arena,
        }
    }
}

fn permute<T: Copy>(perm: &[u32], v: &[T]) -> Vec<T> {
    perm.iter().map(|&r| v[r as usize]).collect()
}

fn arena_pos(arena: &[u8]) -> u32 {
    u32::try_from(arena.len()).expect("dataset text over 4 GiB")
}

impl EventIndex {
    /// Number of events.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// The time of the first event, if any.
    pub fn first_ts(&self) -> Option<i64> {
        self.ts.first().copied()
    }

    /// The time of the last event, if any.
    pub fn last_ts(&self) -> Option<i64> {
        self.ts.last().copied()
    }

    /// The positions of the events with `t0 <= ts_seconds < t1`.
    pub fn range(&self, t0: i64, t1: i64) -> Range<usize> {
        let start = self.ts.partition_point(|&t| t < t0);
        let end = start + self.ts[start..].partition_point(|&t| t < t1);
        start..end
    }

    /// The first position whose time is `>= t`.
    pub fn position_at(&self, t: i64) -> usize {
        self.ts.partition_point(|&x| x < t)
    }

    pub fn ts(&self, pos: usize) -> i64 {
        self.ts[pos]
    }

    pub fn sequence(&self, pos: usize) -> u16 {
        self.sequence[pos]
    }

    pub fn location_id(&self, pos: usize) -> u8 {
        self.location[pos]
    }

    pub fn event_type(&self, pos: usize) -> EventType {
        self.event_type[pos]
    }

    /// The order id's bytes (ASCII, checked by the loader).
    pub fn order_id(&self, pos: usize) -> &[u8] {
        self.order_id_bytes(self.order[pos])
    }

    /// A number for the event's order, equal for the events of one order that the file
    /// stores together.
    pub fn order_key(&self, pos: usize) -> u32 {
        self.order[pos]
    }

    fn order_id_bytes(&self, order: u32) -> &[u8] {
        let end = self.order_ends[order as usize] as usize;
        let start = match order {
            0 => 0,
            o => self.order_ends[o as usize - 1] as usize,
        };
        &self.order_ids[start..end]
    }

    /// (lat, lon) when set: the customer's on order_created and delivered, the driver's on
    /// driver_ping.
    pub fn position(&self, pos: usize) -> Option<(f32, f32)> {
        let (lat, lon) = (self.lat[pos], self.lon[pos]);
        (!lat.is_nan() && !lon.is_nan()).then_some((lat, lon))
    }

    /// ping_progress (driver_ping), NaN when null.
    pub fn progress(&self, pos: usize) -> f32 {
        self.progress[pos]
    }

    /// customer_addr, escaped twice (ready to embed in the body string); empty when none.
    pub fn addr_escaped(&self, pos: usize) -> &[u8] {
        match self.text_ref(pos) {
            Some(t) => &self.arena[t.start as usize..(t.start + t.addr_len) as usize],
            None => &[],
        }
    }

    /// items_json or route_json, minified and escaped once (ready to embed in the body
    /// string); `None` when null.
    pub fn json_escaped(&self, pos: usize) -> Option<&[u8]> {
        let t = self.text_ref(pos)?;
        let json = &self.arena[(t.start + t.addr_len) as usize..t.end as usize];
        (!json.is_empty()).then_some(json)
    }

    fn text_ref(&self, pos: usize) -> Option<TextRef> {
        match self.text[pos] {
            NO_TEXT => None,
            i => Some(self.texts[i as usize]),
        }
    }

    /// Bytes held by the index (for reports).
    pub fn heap_bytes(&self) -> usize {
        let n = self.ts.capacity();
        n * (8 + 2 + 1 + 1 + 4 + 4 + 4 + 4 + 4)
            + self.texts.capacity() * std::mem::size_of::<TextRef>()
            + self.order_ends.capacity() * 4
            + self.order_ids.capacity()
            + self.arena.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(order_id: &str, ts: i64, seq: u16) -> RawEvent<'_> {
        RawEvent {
            order_id,
            location_id: 1,
            event_type: EventType::GkStarted,
            ts_seconds: ts,
            sequence: seq,
            lat: f32::NAN,
            lon: f32::NAN,
            progress: f32::NAN,
            addr: None,
            json: None,
        }
    }

    #[test]
    fn sorts_by_ts_then_sequence_then_file_row() {
        let mut b = IndexBuilder::default();
        b.push(row("BBBBBB", 20, 1));
        b.push(row("AAAAAA", 10, 3));
        b.push(row("CCCCCC", 10, 2));
        b.push(row("DDDDDD", 10, 2));
        b.push(row("EEEEEE", 10, 0));
        let ix = b.finish();
        let orders: Vec<_> = (0..ix.len())
            .map(|i| String::from_utf8(ix.order_id(i).to_vec()).unwrap())
            .collect();
        assert_eq!(orders, ["EEEEEE", "CCCCCC", "DDDDDD", "AAAAAA", "BBBBBB"]);
        assert_eq!((ix.first_ts(), ix.last_ts()), (Some(10), Some(20)));
    }

    #[test]
    fn range_is_half_open() {
        let mut b = IndexBuilder::default();
        for (i, t) in [5, 10, 10, 11, 20].into_iter().enumerate() {
            b.push(row("AAAAAA", t, i as u16));
        }
        let ix = b.finish();
        assert_eq!(ix.range(10, 11), 1..3);
        assert_eq!(ix.range(0, 5), 0..0);
        assert_eq!(ix.range(0, 100), 0..5);
        assert_eq!(ix.range(21, 30), 5..5);
        assert_eq!(ix.position_at(11), 3);
    }

    #[test]
    fn text_is_prepared_for_the_body() {
        let mut b = IndexBuilder::default();
        b.push(RawEvent {
            addr: Some("1 \"Q\" St"),
            json: Some(r#"[ {"name": "Crème"} ]"#),
            ..row("AAAAAA", 1, 0)
        });
        b.push(row("AAAAAA", 2, 1));
        let ix = b.finish();
        assert_eq!(ix.addr_escaped(0), br#"1 \\\"Q\\\" St"#);
        assert_eq!(
            ix.json_escaped(0).unwrap(),
            r#"[{\"name\":\"Crème\"}]"#.as_bytes()
        );
        assert_eq!(ix.json_escaped(1), None);
        assert_eq!(ix.order_key(0), ix.order_key(1));
    }
}
