//! A subscriber's outgoing queue, bounded in bytes.
//!
//! The broadcaster only ever pushes (never waits on a socket): when a chunk does not fit, it
//! is dropped and counted, and the subscriber's writer tells its client how many events it
//! missed before going on with the newest ones. So a client that cannot keep up never slows
//! the clock or any other client, and is never skipped silently.
//!
//! The chunks themselves are shared by every subscriber of a group; the hub counts the
//! memory they hold once, and sheds the subscribers furthest behind ([`ClientQueue::shed`])
//! when it passes its budget.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::timeline::Position;

/// Events framed for a transport; one chunk is shared by every member of a group.
#[derive(Clone, Debug, PartialEq)]
pub struct EventChunk {
    /// The framed events or message. SSE events come as one HTTP/1.1 chunk around them
    /// (see `size_line`), which a chunked stream sends as it is: no framing of its own per
    /// stream and tick.
    pub bytes: Bytes,
    /// When `bytes` is an HTTP/1.1 chunk: the length of its size line (the events follow
    /// it, then CRLF). 0 when `bytes` is the events alone.
    pub size_line: u8,
    pub events: u64,
    /// Its last event's position (none for a snapshot or a notice): where a WebSocket
    /// client that changes its filter continues from, even when the bytes are compressed.
    pub last: Option<Position>,
}

impl EventChunk {
    /// The events (or message) without HTTP/1.1 chunk framing.
    pub fn unchunked(self) -> Bytes {
        match usize::from(self.size_line) {
            0 => self.bytes,
            head => self.bytes.slice(head..self.bytes.len() - 2),
        }
    }

    /// A message that counts no event and moves no position (snapshot, notice).
    pub fn notice(bytes: Bytes) -> EventChunk {
        EventChunk {
            bytes,
            size_line: 0,
            events: 0,
            last: None,
        }
    }
}

/// What a writer takes from its queue.
#[derive(Debug, PartialEq)]
pub enum Outgoing {
    /// Events, framed for the transport.
    Events(EventChunk),
    /// A control message (clock change, notice), framed for the transport.
    Control(Bytes),
    /// Events were dropped because the queue was full: this many.
    Lagged(u64),
    /// The server closes this subscription, for this reason.
    Close(String),
}

#[derive(Default)]
struct State {
    items: VecDeque<Outgoing>,
    bytes: usize,
    missed: u64,
    close: Option<String>,
    /// While set, the writer waits (a resuming subscriber's catch-up is being prepared).
    hold: bool,
    /// The position of the last event taken.
    last: Option<Position>,
}

/// What a push calls to tell the queue's writer there is more to send: it marks the
/// stream ready and wakes the writer's poll at most once per batch of pushes.
pub type Wake = Box<dyn Fn() + Send + Sync>;

/// One subscriber's queue.
pub struct ClientQueue {
    state: Mutex<State>,
    /// Tells the writer that drains this queue that there is more (see [`Wake`]).
    waker: std::sync::OnceLock<Wake>,
    limit: usize,
    /// Events handed to the writer (for metrics and tests).
    pub delivered: AtomicU64,
}

impl ClientQueue {
    pub fn new(limit_bytes: usize) -> ClientQueue {
        ClientQueue {
            state: Mutex::new(State::default()),
            waker: std::sync::OnceLock::new(),
            limit: limit_bytes,
            delivered: AtomicU64::new(0),
        }
    }

    /// Calls `wake` on every push from now on (the writer that serves this queue among
    /// many), and once now.
    pub fn wake_on_push(&self, wake: Wake) {
        let _ = self.waker.set(wake);
        self.wake();
    }

    fn wake(&self) {
        if let Some(wake) = self.waker.get() {
            wake();
        }
    }

    /// Queues events; returns false when they did not fit and were dropped.
    pub fn push_events(&self, chunk: EventChunk) -> bool {
        let fits = self.push_tick_events(chunk);
        self.wake();
        fits
    }

    /// [`Self::push_events`] without waking the writer: the hub wakes every writer once
    /// when a tick's fan-out is done ([`super::hub::Hub::on_tick`]).
    pub fn push_tick_events(&self, chunk: EventChunk) -> bool {
        let mut s = self.state.lock().expect("queue lock");
        if s.close.is_some() {
            return true;
        }
        let fits = s.bytes + chunk.bytes.len() <= self.limit;
        if fits {
            s.bytes += chunk.bytes.len();
            s.items.push_back(Outgoing::Events(chunk));
        } else {
            s.missed += chunk.events;
        }
        fits
    }

    /// Queues events ahead of everything queued (a resuming client's catch-up, which the
    /// hub keeps within this queue's limit).
    pub fn push_front_events(&self, chunks: Vec<EventChunk>) {
        let mut s = self.state.lock().expect("queue lock");
        for chunk in chunks.into_iter().rev() {
            s.bytes += chunk.bytes.len();
            s.items.push_front(Outgoing::Events(chunk));
        }
        drop(s);
        self.wake();
    }

    /// Queues a control message; these are small and always queued.
    pub fn push_control(&self, message: Bytes) {
        let mut s = self.state.lock().expect("queue lock");
        if s.close.is_none() {
            s.bytes += message.len();
            s.items.push_back(Outgoing::Control(message));
        }
        drop(s);
        self.wake();
    }

    /// The position of the last event taken from this queue: where a client that changes
    /// its filter continues from.
    pub fn last_taken(&self) -> Option<Position> {
        self.state.lock().expect("queue lock").last
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().expect("queue lock").bytes
    }

    /// Drops every queued event (control messages stay), counting them as missed, so the
    /// writer says `lagged` and goes on with what comes next; returns the bytes it held.
    pub fn shed(&self) -> usize {
        let mut s = self.state.lock().expect("queue lock");
        let before = s.bytes;
        let mut missed = 0;
        s.items.retain(|item| match item {
            Outgoing::Events(chunk) => {
                missed += chunk.events;
                false
            }
            _ => true,
        });
        s.missed += missed;
        s.bytes = s
            .items
            .iter()
            .map(|i| match i {
                Outgoing::Control(b) => b.len(),
                _ => 0,
            })
            .sum();
        let freed = before - s.bytes;
        drop(s);
        if missed > 0 {
            self.wake();
        }
        freed
    }

    /// Holds the writer back (`true`) until released (`false`).
    pub fn hold(&self, on: bool) {
        self.state.lock().expect("queue lock").hold = on;
        if !on {
            self.wake();
        }
    }

    /// Asks the writer to close after what is queued.
    pub fn close(&self, reason: &str) {
        let mut s = self.state.lock().expect("queue lock");
        s.close.get_or_insert_with(|| reason.to_string());
        drop(s);
        self.wake();
    }

    /// The next thing to write, if any. A pending lag notice comes before the events
    /// queued after the drop; a close comes after everything queued. (The writers take
    /// batches: [`Self::take_batch`].)
    #[cfg(test)]
    pub fn try_next(&self) -> Option<Outgoing> {
        let mut s = self.state.lock().expect("queue lock");
        self.take(&mut s)
    }

    /// Takes what [`Self::try_next`] would, in order and under one lock, handing each to
    /// `take` (which says how many bytes it makes), until `budget` bytes are taken, a close
    /// is, or nothing is left. (One lock per stream and tick instead of two.) Returns
    /// whether it stopped because nothing was left to take.
    pub fn take_batch(&self, budget: usize, mut take: impl FnMut(Outgoing) -> usize) -> bool {
        let mut s = self.state.lock().expect("queue lock");
        let mut taken = 0;
        while taken < budget {
            let Some(item) = self.take(&mut s) else {
                return true;
            };
            let close = matches!(item, Outgoing::Close(_));
            taken += take(item);
            if close {
                break;
            }
        }
        false
    }

    fn take(&self, s: &mut State) -> Option<Outgoing> {
        if s.hold {
            return None;
        }
        if s.missed > 0 {
            return Some(Outgoing::Lagged(std::mem::take(&mut s.missed)));
        }
        self.pop(s).or_else(|| {
            s.close
                .as_ref()
                .map(|reason| Outgoing::Close(reason.clone()))
        })
    }

    /// Pops the first queued item, keeping the byte count and the delivered count right.
    fn pop(&self, s: &mut State) -> Option<Outgoing> {
        let item = s.items.pop_front()?;
        match &item {
            Outgoing::Events(chunk) => {
                s.bytes -= chunk.bytes.len();
                s.last = chunk.last.or(s.last);
                self.delivered.fetch_add(chunk.events, Ordering::Relaxed);
            }
            Outgoing::Control(b) => s.bytes -= b.len(),
            Outgoing::Lagged(_) | Outgoing::Close(_) => {}
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(bytes: &'static [u8], events: u64) -> EventChunk {
        EventChunk {
            bytes: Bytes::from_static(bytes),
            size_line: 0,
            events,
            last: None,
        }
    }

    #[test]
    fn drops_what_does_not_fit_and_says_so_first() {
        let q = ClientQueue::new(10);
        assert!(q.push_events(chunk(b"12345", 1)));
        assert!(q.push_events(chunk(b"678", 2)));
        assert!(!q.push_events(chunk(b"abcd", 4)), "over 10 bytes: dropped");
        q.push_control(Bytes::from_static(b"clock"));
        q.close("bye");
        assert_eq!(q.try_next().unwrap(), Outgoing::Lagged(4));
        assert_eq!(q.try_next().unwrap(), Outgoing::Events(chunk(b"12345", 1)));
        assert_eq!(q.try_next().unwrap(), Outgoing::Events(chunk(b"678", 2)));
        assert_eq!(
            q.try_next().unwrap(),
            Outgoing::Control(Bytes::from_static(b"clock"))
        );
        assert_eq!(q.try_next().unwrap(), Outgoing::Close("bye".into()));
        assert_eq!(q.delivered.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn shedding_drops_events_and_keeps_controls() {
        let q = ClientQueue::new(1 << 20);
        q.push_events(chunk(b"12345", 2));
        q.push_control(Bytes::from_static(b"clock"));
        q.push_events(chunk(b"678", 1));
        assert_eq!(q.queued_bytes(), 13);
        assert_eq!(q.shed(), 8);
        assert_eq!(q.queued_bytes(), 5);
        assert_eq!(q.try_next().unwrap(), Outgoing::Lagged(3));
        assert_eq!(
            q.try_next().unwrap(),
            Outgoing::Control(Bytes::from_static(b"clock"))
        );
        assert_eq!(q.queued_bytes(), 0);
    }

    #[test]
    fn catch_up_goes_first_and_a_waiting_writer_wakes() {
        let q = std::sync::Arc::new(ClientQueue::new(1 << 20));
        q.push_events(chunk(b"live", 1));
        q.push_front_events(vec![chunk(b"old1", 1), chunk(b"old2", 1)]);
        assert_eq!(q.try_next().unwrap(), Outgoing::Events(chunk(b"old1", 1)));
        assert_eq!(q.try_next().unwrap(), Outgoing::Events(chunk(b"old2", 1)));
        assert_eq!(q.try_next().unwrap(), Outgoing::Events(chunk(b"live", 1)));
        // A writer thread waiting for more is woken by the next push.
        let q2 = q.clone();
        let writer = std::thread::spawn(move || {
            loop {
                if let Some(item) = q2.try_next() {
                    return item;
                }
                std::thread::park();
            }
        });
        let thread = writer.thread().clone();
        q.wake_on_push(Box::new(move || thread.unpark()));
        q.push_control(Bytes::from_static(b"later"));
        assert_eq!(
            writer.join().unwrap(),
            Outgoing::Control(Bytes::from_static(b"later"))
        );
    }
}
