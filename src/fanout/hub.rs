//! The hub: one clock's subscribers, and the fan-out of its ticks to them.
//!
//! Subscribers are grouped by (filter, transport); each group's chunk for a tick is framed
//! once (framing.rs) and shared as `Bytes` by every subscriber in it (10,000 clients
//! filtered to one of four kitchens cost four chunks a tick, not 10,000). A tick's events
//! reach a client as one chunk: one SSE write, or one WebSocket message.
//!
//! The hub records what the clock emitted (history.rs) and registers new subscribers under
//! the same lock as a tick's fan-out, so a resuming client's catch-up meets the live stream
//! with no gap and no duplicate. Each clock has its hub: the shared one, and each session's
//! ([`Hub::beside`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::framing::FramedTick;
pub use super::framing::Transport;
use super::history::{CatchUp, History};
use super::queue::{ClientQueue, EventChunk};
use super::snapshot::orders_in_flight;
use crate::dataset::Dataset;
use crate::events::Filter;
use crate::timeline::{Emitter, Position, Timeline};

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
    /// What the clock has emitted.
    history: History,
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
            (id, s.history.runs().to_vec())
        };
        // Built outside the lock: live chunks queue up behind while the writer is held.
        let mut front = Vec::new();
        let edge = history.last().map_or(self.timeline.day_zero, |r| r.1);
        if snapshot {
            front.push(EventChunk::notice(orders_in_flight(
                &self.ds,
                &self.timeline,
                edge,
                filter,
                transport,
            )));
        }
        if let Start::After(text) = start {
            let room = self
                .queue_limit
                .saturating_sub(front.iter().map(|c: &EventChunk| c.bytes.len()).sum());
            let catch_up = CatchUp {
                ds: &self.ds,
                timeline: &self.timeline,
                tag: &self.tag,
                memory: &self.queued,
            };
            match catch_up.after(text, &history, filter, transport, room) {
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
    pub fn set_history(&self, runs: Vec<(i64, i64)>, before: i64, cursor: i64) {
        self.lock().history.set(runs, before, cursor);
    }

    /// The runs emitted with their emission counts at their starts, and the count now
    /// (seconds of simulation time emitted since the clock began: it only grows).
    pub fn emitted(&self) -> (Vec<(i64, i64, i64)>, i64) {
        self.lock().history.counted()
    }

    /// The windows of simulation time emitted between emission counts `from` and `to`.
    pub fn emitted_windows(&self, from: i64, to: i64) -> Result<Vec<(i64, i64)>, String> {
        self.lock().history.windows(from, to)
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
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
        self.lock().history.is_ahead(sim)
    }

    /// Whether position `text` was sent before this process began emitting (by the process
    /// it restarted, or by another replica).
    pub fn sent_before_this_process(&self, text: &str) -> bool {
        let Some(sim) = self.position_time(text) else {
            return false;
        };
        self.lock().history.before_this_process(sim)
    }

    /// Starts a new run of emitted time at `sim` (the clock started or was sought).
    pub fn start_run(&self, sim: i64) {
        self.lock().history.start_run(sim);
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
            s.history.record(a, b);
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
            let snapshot = EventChunk::notice(orders_in_flight(
                &self.ds,
                &self.timeline,
                sim,
                filter,
                transport,
            ));
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
}

impl Emitter for Hub {
    fn set_history(&self, runs: Vec<(i64, i64)>, before: i64, cursor: i64) {
        Hub::set_history(self, runs, before, cursor);
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
