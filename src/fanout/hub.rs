//! The broadcaster: fans each tick's events out to every live subscriber.
//!
//! Each event is expanded once per tick, and framed once per transport; subscribers are
//! grouped by (filter, transport), and each group's chunk for the tick is built once and
//! shared as `Bytes` by every subscriber in it (10,000 clients filtered to one of four
//! kitchens cost four chunks a tick, not 10,000). A tick's events reach a client as one
//! chunk: one SSE write, or one WebSocket message.
//!
//! The hub also remembers which simulation time it has emitted (runs broken by seeks), so
//! a reconnecting client is sent exactly what it missed, and registers new subscribers
//! under the same lock as a tick's fan-out, so a catch-up meets the live stream with no gap
//! and no duplicate.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::queue::{ClientQueue, EventChunk};
use super::websocket;
use crate::dataset::Dataset;
use crate::dataset::EventType;
use crate::events::{EventShift, Filter, expand_event};
use crate::timeline::{Emitter, Position, PositionError, Timeline};

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

/// Live counters for /metrics.
#[derive(Debug, Default)]
pub struct HubMetrics {
    pub events_sent_sse: AtomicU64,
    pub events_sent_ws: AtomicU64,
    pub chunks_dropped: AtomicU64,
    pub events_dropped: AtomicU64,
    pub clients_lagged: AtomicU64,
    pub clients_dropped: AtomicU64,
    /// Subscribers shed because all queues together passed the budget.
    pub clients_shed: AtomicU64,
    /// Streams closed because their client did not keep up for the send timeout.
    pub clients_timed_out: AtomicU64,
    /// WebSockets closed because their client did not answer a ping in time.
    pub clients_unresponsive: AtomicU64,
    pub ticks: AtomicU64,
    /// Time spent expanding, framing and fanning out ticks: total and longest, in µs.
    pub tick_micros_total: AtomicU64,
    pub tick_micros_max: AtomicU64,
}

struct Member {
    id: u64,
    queue: Arc<ClientQueue>,
    /// Asked for the orders in flight: sent again after every seek.
    snapshot: bool,
}

#[derive(Default)]
struct State {
    groups: HashMap<(Filter, Transport), Vec<Member>>,
    /// Simulation time emitted, as runs [from, to) in emission order; a seek starts a run.
    history: Vec<(i64, i64)>,
    /// Where this process's own emission began: positions before it were sent by an
    /// earlier process (a restart) or another replica.
    first_live: i64,
    next_id: u64,
}

/// The fan-out point between the clock and the subscribers.
pub struct Hub {
    state: Mutex<State>,
    /// Subscribers that left, taken out of their groups the next time `state` is locked
    /// ([`Hub::lock`]): a subscription can be dropped where `state`'s lock is already held
    /// further up the stack (a push's wake-up can hold a stream's last reference), so its
    /// drop must not take that lock itself.
    leaving: Mutex<Vec<(Filter, Transport, u64)>>,
    ds: Arc<Dataset>,
    timeline: Timeline,
    /// First 8 hex digits of the dataset fingerprint: the tag of every position.
    pub tag: String,
    /// Bytes a subscriber's queue may hold.
    pub queue_limit: usize,
    /// Bytes the event chunks held for subscribers may take together; past it, the
    /// subscribers furthest behind are shed.
    pub queue_budget: usize,
    /// Bytes of the event chunks alive now (held by queues or being written), each shared
    /// chunk counted once.
    pub queued: Arc<AtomicUsize>,
    /// The location_ids the dataset has, for checking filters.
    pub location_ids: Vec<u8>,
    pub metrics: HubMetrics,
    /// Called once a tick's events are in every queue (see [`Hub::on_tick`]).
    tick_listeners: Mutex<Vec<TickListener>>,
}

/// What the hub calls when a tick's fan-out is done.
pub type TickListener = Box<dyn Fn() + Send + Sync>;

/// A registered subscriber; dropping it unregisters.
pub struct Subscription {
    pub queue: Arc<ClientQueue>,
    pub filter: Filter,
    pub transport: Transport,
    id: u64,
    hub: Arc<Hub>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unregister(self.filter, self.transport, self.id);
    }
}

/// Where a new subscriber starts.
pub enum Start<'a> {
    /// At the live edge.
    Live,
    /// Just after this position (text from `Last-Event-ID` or `?from=`).
    After(&'a str),
}

/// Events framed together in a catch-up's chunk.
const CATCH_UP_CHUNK: usize = 512;

impl Hub {
    pub fn new(
        ds: Arc<Dataset>,
        timeline: Timeline,
        queue_limit: usize,
        queue_budget: usize,
    ) -> Hub {
        let mut seen = [false; 256];
        for pos in 0..ds.events.len() {
            seen[usize::from(ds.events.location_id(pos))] = true;
        }
        Hub {
            state: Mutex::new(State::default()),
            leaving: Mutex::default(),
            queue_budget,
            queued: Arc::default(),
            location_ids: (0..=255u8).filter(|&l| seen[usize::from(l)]).collect(),
            tag: ds.fingerprint.chars().take(8).collect(),
            ds,
            timeline,
            queue_limit,
            metrics: HubMetrics::default(),
            tick_listeners: Mutex::default(),
        }
    }

    /// A hub for another clock over the same dataset (a session's): the same limits and
    /// location ids, its own subscribers, history and metrics. Its pushes wake each stream's
    /// writer themselves (it has no tick listeners).
    pub fn beside(&self, timeline: Timeline) -> Hub {
        Hub {
            state: Mutex::new(State::default()),
            leaving: Mutex::default(),
            ds: Arc::clone(&self.ds),
            timeline,
            tag: self.tag.clone(),
            queue_limit: self.queue_limit,
            queue_budget: self.queue_budget,
            queued: Arc::default(),
            location_ids: self.location_ids.clone(),
            metrics: HubMetrics::default(),
            tick_listeners: Mutex::default(),
        }
    }

    pub fn dataset(&self) -> &Dataset {
        &self.ds
    }

    /// Subscribers per transport.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.lock();
        let mut counts = (0, 0);
        for ((_, transport), members) in &s.groups {
            match transport {
                Transport::Sse => counts.0 += members.len(),
                Transport::WebSocket | Transport::WebSocketDeflate => counts.1 += members.len(),
            }
        }
        counts
    }

    /// Registers a subscriber. With `Start::After`, the events emitted after that position
    /// are queued first, as many of the latest as fit in the queue's limit (the older ones
    /// are announced as missed); with `snapshot`, the orders in flight come before
    /// everything. A position that cannot be resumed from is answered by an error message
    /// in the stream, then live events. The work is bounded by the history (a scan) and the
    /// queue's limit (the framing); it runs on the caller's thread, so a handler calls it
    /// off the HTTP workers.
    pub fn subscribe(
        self: &Arc<Self>,
        filter: Filter,
        transport: Transport,
        start: Start<'_>,
        snapshot: bool,
    ) -> Subscription {
        let queue = Arc::new(ClientQueue::new(self.queue_limit));
        queue.hold(true);
        let (id, history) = {
            let mut s = self.lock();
            s.next_id += 1;
            let id = s.next_id;
            s.groups
                .entry((filter, transport))
                .or_default()
                .push(Member {
                    id,
                    queue: Arc::clone(&queue),
                    snapshot,
                });
            (id, s.history.clone())
        };
        // Built outside the lock: live chunks queue up behind while the writer is held.
        let mut front = Vec::new();
        let edge = history.last().map_or(self.timeline.day_zero, |r| r.1);
        if snapshot {
            front.push(EventChunk::notice(self.snapshot(edge, filter, transport)));
        }
        if let Start::After(text) = start {
            let room = self
                .queue_limit
                .saturating_sub(front.iter().map(|c: &EventChunk| c.bytes.len()).sum());
            match self.catch_up(text, &history, filter, transport, room) {
                Ok(chunks) => front.extend(chunks),
                Err(e) => {
                    let message = serde_json::json!({
                        "type": "error",
                        "message": format!("cannot resume: {e}; streaming live events from now"),
                    });
                    front.push(EventChunk::notice(
                        transport.control("error", message.to_string().as_bytes()),
                    ));
                }
            }
        }
        queue.push_front_events(front);
        queue.hold(false);
        self.keep_to_budget();
        Subscription {
            queue,
            filter,
            transport,
            id,
            hub: Arc::clone(self),
        }
    }

    fn unregister(&self, filter: Filter, transport: Transport, id: u64) {
        self.leaving
            .lock()
            .expect("leaving")
            .push((filter, transport, id));
    }

    /// The state, without the subscribers that have left.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        let mut s = self.state.lock().expect("hub lock");
        let leaving = std::mem::take(&mut *self.leaving.lock().expect("leaving"));
        for (filter, transport, id) in leaving {
            if let Some(members) = s.groups.get_mut(&(filter, transport)) {
                members.retain(|m| m.id != id);
                if members.is_empty() {
                    s.groups.remove(&(filter, transport));
                }
            }
        }
        s
    }

    /// Takes the emitted runs of a clock this process continues or joins; its own emission
    /// starts at `cursor`.
    pub fn set_history(&self, runs: Vec<(i64, i64)>, cursor: i64) {
        let mut s = self.lock();
        s.history = runs;
        s.first_live = cursor;
    }

    /// Simulation time of the event at position `text`, if it is one of this dataset's.
    fn position_time(&self, text: &str) -> Option<i64> {
        let p = Position::parse(text, &self.tag).ok()?;
        let row = p.row as usize;
        (row < self.ds.events.len())
            .then(|| self.ds.events.ts(row) + i64::from(p.loop_index) * self.timeline.loop_seconds)
    }

    /// Whether position `text` lies in the current run just past what this process has
    /// sent: another replica's clock ticked a moment earlier. Resuming from it must wait
    /// until this one has passed it too.
    pub fn position_ahead(&self, text: &str) -> bool {
        let Some(sim) = self.position_time(text) else {
            return false;
        };
        let s = self.lock();
        s.history.last().is_some_and(|&(a, b)| a <= sim && sim >= b)
    }

    /// Whether position `text` was sent before this process began emitting (by the process
    /// it restarted, or by another replica).
    pub fn sent_before_this_process(&self, text: &str) -> bool {
        let first_live = self.lock().first_live;
        self.position_time(text).is_some_and(|sim| sim < first_live)
    }

    /// Starts a new run of emitted time at `sim` (the clock started or was sought).
    pub fn start_run(&self, sim: i64) {
        let mut s = self.lock();
        s.history.push((sim, sim));
        if s.history.len() > 256 {
            s.history.remove(0);
        }
    }

    /// Sends the events of simulation time [a, b) to every subscriber whose filter they
    /// pass, and records [a, b) as emitted.
    pub fn broadcast_window(&self, a: i64, b: i64) {
        let started = std::time::Instant::now();
        self.fan_out(a, b);
        let micros = started.elapsed().as_micros() as u64;
        self.metrics
            .tick_micros_total
            .fetch_add(micros, Ordering::Relaxed);
        self.metrics
            .tick_micros_max
            .fetch_max(micros, Ordering::Relaxed);
    }

    fn fan_out(&self, a: i64, b: i64) {
        let record = |s: &mut State| {
            match s.history.last_mut() {
                Some(run) if run.1 == a => run.1 = b,
                _ => s.history.push((a, b)),
            }
            self.metrics.ticks.fetch_add(1, Ordering::Relaxed);
        };
        {
            // With nobody to send to (a session nobody watches), the window is only
            // recorded, not expanded. Under the same lock as a subscribe: one that comes
            // after this starts past the window.
            let mut s = self.lock();
            if s.groups.is_empty() {
                record(&mut s);
                return;
            }
        }
        let ds = &*self.ds;
        let mut events = Vec::new();
        self.timeline
            .for_each_event(ds, a, b, 0, |pos, shift| events.push((pos, shift)));
        let tick = FramedTick::new(ds, &self.tag, &events, &self.queued);
        // A hub whose writers are not told of ticks (a session's) wakes each stream.
        let wake_each = self
            .tick_listeners
            .lock()
            .expect("tick listeners")
            .is_empty();

        let mut s = self.lock();
        record(&mut s);
        if events.is_empty() {
            return;
        }
        for ((filter, transport), members) in &s.groups {
            let Some(chunk) = tick.chunk(*filter, *transport) else {
                continue;
            };
            let n = chunk.events;
            let sent = match transport {
                Transport::Sse => &self.metrics.events_sent_sse,
                Transport::WebSocket | Transport::WebSocketDeflate => &self.metrics.events_sent_ws,
            };
            let mut dropped = 0;
            for m in members {
                let fits = if wake_each {
                    m.queue.push_events(chunk.clone())
                } else {
                    m.queue.push_tick_events(chunk.clone())
                };
                if !fits {
                    dropped += 1;
                }
            }
            sent.fetch_add(n * (members.len() as u64 - dropped), Ordering::Relaxed);
            if dropped > 0 {
                self.metrics
                    .chunks_dropped
                    .fetch_add(dropped, Ordering::Relaxed);
                self.metrics
                    .events_dropped
                    .fetch_add(n * dropped, Ordering::Relaxed);
            }
        }
        self.shed_over_budget(&s);
        drop(s);
        for listener in self.tick_listeners.lock().expect("tick listeners").iter() {
            listener();
        }
    }

    /// Calls `listener` after each tick's fan-out: a writer thread then writes to all its
    /// streams in one pass. Waking it per queue instead cost the clock a closure call, a
    /// lock and a list push per subscriber and tick, and the writer a list, a sort and a
    /// lookup per stream: at 10,000 subscribers the machine ran out of CPU at the dinner
    /// peak (docs/benchmarks.md).
    pub fn on_tick(&self, listener: TickListener) {
        self.tick_listeners
            .lock()
            .expect("tick listeners")
            .push(listener);
    }

    /// Sheds subscribers if the chunks alive are over the budget (after a catch-up or a
    /// snapshot was queued: the ticks check it themselves, also while the clock is paused).
    fn keep_to_budget(&self) {
        if self.queued.load(Ordering::Relaxed) > self.queue_budget {
            self.shed_over_budget(&self.lock());
        }
    }

    fn shed_over_budget(&self, s: &State) {
        if self.queued.load(Ordering::Relaxed) > self.queue_budget {
            self.shed(s);
        }
    }

    /// Sheds the subscribers furthest behind (most bytes queued) until the chunks alive are
    /// back under three quarters of the budget; each is told it lagged. A chunk is freed
    /// only when no queue holds it any more, so several may go before memory does.
    fn shed(&self, s: &State) {
        let mut behind: Vec<(usize, &Arc<ClientQueue>)> = s
            .groups
            .values()
            .flatten()
            .map(|m| (m.queue.queued_bytes(), &m.queue))
            .collect();
        behind.sort_unstable_by_key(|b| std::cmp::Reverse(b.0));
        let target = self.queue_budget / 4 * 3;
        for (_, queue) in behind {
            if self.queued.load(Ordering::Relaxed) <= target {
                break;
            }
            if queue.shed() > 0 {
                self.metrics.clients_shed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Why a filter cannot be served: a location this dataset does not have.
    pub fn check_filter(&self, filter: &Filter) -> Result<(), String> {
        match filter
            .location_ids()
            .into_iter()
            .find(|l| !self.location_ids.contains(l))
        {
            None => Ok(()),
            Some(l) => Err(format!(
                "location_id {l} is not in this dataset (it has {})",
                self.location_ids
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// After a seek to `sim` (announced already): every subscriber that asked for a
    /// snapshot gets the orders in flight there, built once per group like a tick's chunk,
    /// so that an app replaces what the seek made stale.
    pub fn send_fresh_snapshots(&self, sim: i64) {
        let wanted: Vec<(Filter, Transport, Vec<Arc<ClientQueue>>)> = {
            let s = self.lock();
            s.groups
                .iter()
                .filter_map(|(&(filter, transport), members)| {
                    let queues: Vec<_> = members
                        .iter()
                        .filter(|m| m.snapshot)
                        .map(|m| Arc::clone(&m.queue))
                        .collect();
                    (!queues.is_empty()).then_some((filter, transport, queues))
                })
                .collect()
        };
        // Built outside the lock, so that ticks are not held up.
        for (filter, transport, queues) in wanted {
            let snapshot = EventChunk::notice(self.snapshot(sim, filter, transport));
            for queue in queues {
                queue.push_events(snapshot.clone());
            }
        }
        self.keep_to_budget();
    }

    /// Sends a control message (its JSON has `"type": kind`) to every subscriber.
    pub fn broadcast_control(&self, kind: &str, json: &[u8]) {
        const TRANSPORTS: [Transport; 3] = [
            Transport::Sse,
            Transport::WebSocket,
            Transport::WebSocketDeflate,
        ];
        let framed = TRANSPORTS.map(|t| t.control(kind, json));
        let s = self.lock();
        for ((_, transport), members) in &s.groups {
            let message = &framed[TRANSPORTS.iter().position(|t| t == transport).expect("all")];
            for m in members {
                m.queue.push_control(message.clone());
            }
        }
    }

    /// Asks every subscriber to close, with `reason`.
    pub fn close_all(&self, reason: &str) {
        let s = self.lock();
        for members in s.groups.values() {
            for m in members {
                m.queue.close(reason);
                self.metrics.clients_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The events emitted after position `text`, in emission order, framed as chunks: the
    /// latest that fit in `room` bytes, after a `lagged` notice for the older ones.
    fn catch_up(
        &self,
        text: &str,
        history: &[(i64, i64)],
        filter: Filter,
        transport: Transport,
        room: usize,
    ) -> Result<Vec<EventChunk>, PositionError> {
        let ds = &*self.ds;
        let p = Position::parse(text, &self.tag)?;
        let row = p.row as usize;
        if row >= ds.events.len() {
            return Err(PositionError::OutOfRange(text.into()));
        }
        let shift = i64::from(p.loop_index) * self.timeline.loop_seconds;
        let sim = ds.events.ts(row) + shift;
        let key = (sim, ds.events.sequence(row), p.loop_index, row);
        // The latest run that emitted that instant; everything after the position in it,
        // then every later run.
        let Some(first) = history.iter().rposition(|&(a, b)| a <= sim && sim < b) else {
            return Err(PositionError::OutOfRange(text.into()));
        };
        let mut events = Vec::new();
        for (i, &(a, b)) in history[first..].iter().enumerate() {
            let from = if i == 0 { sim } else { a };
            self.timeline.for_each_event(ds, from, b, 0, |pos, s| {
                let k = (
                    ds.events.ts(pos) + s.seconds,
                    ds.events.sequence(pos),
                    s.loop_index,
                    pos,
                );
                let after = i > 0 || k > key;
                if after && filter.matches(ds.events.location_id(pos), ds.events.event_type(pos)) {
                    events.push((pos, s));
                }
            });
        }
        // Framed from the newest back, so that only what is sent is framed.
        let mut chunks = Vec::new();
        let mut size = 0;
        let mut kept = events.len();
        for part in events.rchunks(CATCH_UP_CHUNK) {
            let tick = FramedTick::new(ds, &self.tag, part, &self.queued);
            let Some(chunk) = tick.chunk(Filter::default(), transport) else {
                continue;
            };
            size += chunk.bytes.len();
            if size > room && !chunks.is_empty() {
                break;
            }
            kept -= part.len();
            chunks.push(chunk);
        }
        chunks.reverse();
        if kept > 0 {
            hub_lagged_notice(transport, kept as u64, &mut chunks);
        }
        Ok(chunks)
    }

    /// The orders in flight at `sim`: for each, its order_created, its driver_picked_up
    /// and its latest driver_ping so far, so that a map is full the moment it connects.
    fn snapshot(&self, sim: i64, filter: Filter, transport: Transport) -> Bytes {
        let ds = &*self.ds;
        const LOOKBACK: i64 = 4 * 3600;
        // (loop, order) -> (created, picked_up, last ping)
        let mut orders: HashMap<(u32, u32), OrderParts> = HashMap::new();
        self.timeline
            .for_each_event(ds, sim - LOOKBACK, sim, 0, |pos, shift| {
                if !filter.matches(ds.events.location_id(pos), ds.events.event_type(pos)) {
                    return;
                }
                let key = (shift.loop_index, ds.events.order_key(pos));
                let slot = match ds.events.event_type(pos) {
                    EventType::OrderCreated => 0,
                    EventType::DriverPickedUp => 1,
                    EventType::DriverPing => 2,
                    EventType::Delivered => {
                        orders.remove(&key);
                        return;
                    }
                    _ => return,
                };
                orders.entry(key).or_default()[slot] = Some((pos, shift));
            });
        let mut picked: Vec<(usize, EventShift)> = orders
            .values()
            .filter(|o| o[0].is_some())
            .flat_map(|o| o.iter().flatten().copied())
            .collect();
        picked
            .sort_by_key(|&(pos, s)| (ds.events.ts(pos) + s.seconds, ds.events.sequence(pos), pos));
        let mut json = Vec::with_capacity(256 * picked.len() + 64);
        json.extend_from_slice(b"{\"type\":\"snapshot\",\"sim_time\":");
        crate::json::push_int(&mut json, sim);
        json.extend_from_slice(b",\"orders\":");
        crate::json::push_int(
            &mut json,
            orders.values().filter(|o| o[0].is_some()).count(),
        );
        json.extend_from_slice(b",\"events\":[");
        for (i, &(pos, shift)) in picked.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            expand_event(&ds.events, pos, shift, &mut json);
        }
        json.extend_from_slice(b"]}");
        transport.control("snapshot", &json)
    }
}

impl Emitter for Hub {
    fn set_history(&self, runs: Vec<(i64, i64)>, cursor: i64) {
        Hub::set_history(self, runs, cursor);
    }

    fn start_run(&self, sim: i64) {
        Hub::start_run(self, sim);
    }

    fn emit(&self, a: i64, b: i64) {
        self.broadcast_window(a, b);
    }

    fn announce(&self, kind: &str, json: &[u8]) {
        self.broadcast_control(kind, json);
    }

    fn sought(&self, sim: i64) {
        self.send_fresh_snapshots(sim);
    }
}

/// Puts a `lagged` notice for `missed` events ahead of `chunks`.
fn hub_lagged_notice(transport: Transport, missed: u64, chunks: &mut Vec<EventChunk>) {
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

/// An in-flight order's events for a snapshot: order_created, driver_picked_up, last ping.
type OrderParts = [Option<(usize, EventShift)>; 3];

/// Where one event of a tick sits in the tick's buffers.
struct FramedEvent {
    location_id: u8,
    event_type: EventType,
    /// Its SSE frame in `FramedTick::sse`.
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
struct FramedTick {
    emitted_ms: u64,
    /// Every event's SSE frame, back to back, after the emission comment.
    sse: Bytes,
    /// Where the frames start in `sse` (after the comment).
    frames_start: usize,
    index: Vec<FramedEvent>,
    positions: Vec<u8>,
    /// Where its chunks' bytes are counted while they live.
    memory: Arc<AtomicUsize>,
}

/// Bytes whose size counts in `memory` until the last clone is dropped: the hub's budget
/// measures what the shared chunks really hold, once each, however many queues share them.
fn counted(data: Vec<u8>, memory: &Arc<AtomicUsize>) -> Bytes {
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
    fn new(
        ds: &Dataset,
        tag: &str,
        events: &[(usize, EventShift)],
        memory: &Arc<AtomicUsize>,
    ) -> FramedTick {
        let emitted_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut sse = Vec::with_capacity(events.len() * 400 + 32);
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
        FramedTick {
            emitted_ms,
            sse: counted(sse, memory),
            memory: Arc::clone(memory),
            frames_start,
            index,
            positions,
        }
    }

    /// The tick's chunk for a group, with its event count; `None` when no event passes.
    fn chunk(&self, filter: Filter, transport: Transport) -> Option<EventChunk> {
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
        let chunk = |bytes| EventChunk {
            bytes,
            events,
            last,
        };
        Some(chunk(match transport {
            Transport::Sse if picked.len() == self.index.len() => self.sse.clone(),
            Transport::Sse => {
                let mut out = Vec::with_capacity(picked.len() * 400);
                out.extend_from_slice(&self.sse[..self.frames_start]);
                for i in picked {
                    out.extend_from_slice(&self.sse[self.index[i].frame.clone()]);
                }
                counted(out, &self.memory)
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
                    out.extend_from_slice(&self.sse[self.index[i].json.clone()]);
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
                counted(
                    websocket::text_message(&out, transport.deflates()),
                    &self.memory,
                )
            }
        }))
    }
}
