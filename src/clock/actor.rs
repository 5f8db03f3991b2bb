//! The clock task: one tokio task owns a live simulation clock and takes commands over a
//! channel (set speed, pause, resume, seek, step). Each tick it hands its [`Emitter`]s (the
//! delivery engine's hub, the JetStream publisher) the window [emitted so far, now), so
//! every event the clock passes goes out exactly once and in order, whatever the speed
//! changes and pauses. Every change is announced to all clients. A paused clock does not
//! tick: a thousand paused sessions cost nothing.
//!
//! The clock's state lives in a [`ClockRecord`] kept by a [`Store`]:
//! - a state file (one process): the clock never emits past the end the file records, so
//!   a restart continues from there; a change is saved before it is answered;
//! - NATS (replicas): a change is written with compare-and-set and takes effect a little
//!   ahead, at the same wall instant on every replica, which all run the same clock.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use super::shared::{SharedClock, UpdateError};
use super::{ClockRecord, SimClock};
use crate::time::{DAY, format_ts, now_unix_f64};
use crate::timeline::{Emitter, Timeline};

/// Fastest speed a presenter may set.
pub const MAX_SPEED: f64 = 1_000_000.0;

/// What the clock says of itself (GET /v1/clock, and every control message).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ClockState {
    /// Simulation time, Unix seconds.
    pub sim_time: f64,
    pub sim_time_utc: String,
    /// Day of the dataset (0-based; counts on through loops).
    pub day: i64,
    pub speed: f64,
    pub paused: bool,
    /// Time stopped at the dataset's end (not looping).
    pub ended: bool,
    #[serde(rename = "loop")]
    pub looping: bool,
    pub dataset_start: i64,
    pub dataset_end: i64,
    pub dataset_days: i64,
}

impl ClockState {
    /// The clock message clients get (`"type": "clock"`), saying why it was sent.
    pub fn message(&self, reason: &str) -> String {
        let mut json = serde_json::to_value(self).expect("serializable");
        json["type"] = "clock".into();
        json["reason"] = reason.into();
        json.to_string()
    }
}

/// A presenter's change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Command {
    SetSpeed(f64),
    SetPaused(bool),
    /// Jump to this simulation time (Unix seconds).
    Seek(f64),
    /// On a paused clock: emit the next this many seconds of simulation time (the events
    /// with `sim < ts <= sim + seconds`) and stay paused.
    Step(f64),
}

/// The longest step: one day of simulation time.
pub const MAX_STEP: f64 = 86_400.0;

/// Why a change was not made.
#[derive(Clone, Debug, PartialEq)]
pub enum ChangeError {
    /// The change itself is wrong (HTTP 400).
    Invalid(String),
    /// The clock's store cannot take it now (HTTP 503).
    Unavailable(String),
    /// Not in the clock's present state (HTTP 409): a step on a running clock.
    Conflict(String),
}

/// A durable place for one clock's record: the state file, or a session's entry in the
/// sessions file. The clock never emits past the end of the last run saved there.
pub trait Durable: Send + Sync {
    /// Asks for `record` to be saved; `done` hears when it is on disk (or why not).
    fn save(&self, record: ClockRecord, done: Option<oneshot::Sender<Result<(), String>>>);
    /// How far the saved record lets the current run emit: the end of its last run, when
    /// it has as many runs as the clock (`runs`); otherwise nothing is saved for this run.
    fn durable_end(&self, runs: usize) -> Option<i64>;
}

/// Where the clock's state is kept.
pub enum Store {
    File(Box<dyn Durable>),
    Shared(Arc<SharedClock>),
}

type Reply = oneshot::Sender<Result<ClockState, ChangeError>>;

enum Message {
    Change(Vec<Command>, Reply),
    /// A record another replica (or this one) wrote to NATS, with its revision.
    Adopt(Box<ClockRecord>, u64),
}

/// The way to the clock task.
#[derive(Clone)]
pub struct ClockHandle {
    messages: mpsc::Sender<Message>,
    state: watch::Receiver<ClockState>,
    /// The NATS store, when the clock is shared.
    pub shared: Option<Arc<SharedClock>>,
}

impl ClockHandle {
    /// The latest state.
    pub fn state(&self) -> ClockState {
        self.state.borrow().clone()
    }

    /// Applies `commands` in order (all or none); returns the new state or why not.
    pub async fn apply(&self, commands: Vec<Command>) -> Result<ClockState, ChangeError> {
        let stopped = || ChangeError::Unavailable("the clock has stopped".into());
        let (tx, rx) = oneshot::channel();
        self.messages
            .send(Message::Change(commands, tx))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

struct ClockTask {
    clock: SimClock,
    /// The record in force (its clock may differ from `clock` at the dataset's end).
    record: ClockRecord,
    /// A shared change adopted but not yet in force (it takes effect at its anchor).
    pending: Option<ClockRecord>,
    /// Revision of the newest shared record seen.
    revision: u64,
    timeline: Timeline,
    /// Where windows and announcements go, in this order (the hub first).
    emitters: Vec<Arc<dyn Emitter>>,
    /// Every event with simulation time before this has been sent.
    cursor: i64,
    /// The end last asked of the state file for the current run.
    requested_end: i64,
    ended: bool,
    tick: Duration,
    /// How far ahead of its emission a running clock asks its store to save.
    save_ahead: Duration,
    store: Store,
    state: watch::Sender<ClockState>,
}

/// What the clock task starts from.
pub struct ClockSetup {
    pub record: ClockRecord,
    /// The shared record's revision (0 with a state file).
    pub revision: u64,
    /// The record is a saved one this process continues (a restart), not a new clock or
    /// the replicas' one it joins.
    pub restored: bool,
    pub store: Store,
    /// Time between ticks.
    pub tick: Duration,
    /// How far ahead (wall time) a running clock asks its store to save: a tick for the
    /// shared clock, longer for sessions, whose saves share one file.
    pub save_ahead: Duration,
}

/// Starts the clock task on the current tokio runtime.
pub fn spawn(
    emitters: Vec<Arc<dyn Emitter>>,
    timeline: Timeline,
    setup: ClockSetup,
) -> ClockHandle {
    let ClockSetup {
        mut record,
        revision,
        restored,
        store,
        tick,
        save_ahead,
    } = setup;
    let now = now_unix_f64();
    let cursor = match &store {
        // Time stood still while the process was down: continue where the file says the
        // clock may have got to (at most a tick past what it had sent).
        Store::File(_) if restored => {
            let end = record.run_end();
            if !record.clock.paused {
                record.clock.anchor_sim = end as f64;
            }
            record.clock.anchor_wall = now;
            record.reason = "restarted".into();
            end
        }
        Store::File(_) => record.run_end(),
        // The shared clock never stopped: join it where it is now.
        Store::Shared(_) => {
            let at = timeline.clamp(record.clock.sim_at(now).floor() as i64 + 1);
            at.max(record.run_start())
        }
    };
    let mut history = record.runs.clone();
    if let Some(last) = history.last_mut() {
        last.1 = cursor.max(last.0);
    }
    for emitter in &emitters {
        emitter.set_history(history.clone(), record.emitted_before, cursor);
    }
    let (state_tx, state_rx) = watch::channel(describe(&record.clock, &timeline, false, now));
    let (tx, mut rx) = mpsc::channel::<Message>(64);
    let shared = match &store {
        Store::Shared(s) => {
            s.watch(tx.clone(), |record, revision| {
                Message::Adopt(Box::new(record), revision)
            });
            Some(Arc::clone(s))
        }
        Store::File(_) => None,
    };
    let mut task = ClockTask {
        clock: record.clock,
        requested_end: record.run_end(),
        record,
        pending: None,
        revision,
        timeline,
        emitters,
        cursor,
        ended: false,
        tick,
        save_ahead,
        store,
        state: state_tx,
    };
    if restored {
        if let Store::File(file) = &task.store {
            file.save(task.record.clone(), None);
        }
        task.publish(now, "restarted");
    }
    tokio::spawn(async move {
        // A paused clock does not tick: what is due at its start (the second it is paused
        // in) goes out now.
        task.tick(now_unix_f64());
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A paused clock has nothing to emit until a change (or a shared record that
            // takes effect later) comes: it waits for messages only.
            let idle = task.clock.paused && task.pending.is_none() && task.caught_up();
            tokio::select! {
                _ = ticks.tick(), if !idle => task.tick(now_unix_f64()),
                message = rx.recv() => match message {
                    Some(Message::Change(commands, reply)) => {
                        let _ = reply.send(task.change(&commands).await);
                    }
                    Some(Message::Adopt(record, revision)) => {
                        task.adopt(*record, revision);
                        // What it makes due goes out now, also on a paused clock that does
                        // not tick (a step, a seek's first second).
                        task.tick(now_unix_f64());
                    }
                    None => return,
                },
            }
        }
    });
    ClockHandle {
        messages: tx,
        state: state_rx,
        shared,
    }
}

fn describe(clock: &SimClock, timeline: &Timeline, ended: bool, now: f64) -> ClockState {
    let sim = clock.sim_at(now);
    ClockState {
        sim_time: sim,
        sim_time_utc: format_ts(sim.floor() as i64),
        day: (sim.floor() as i64 - timeline.day_zero).div_euclid(DAY),
        speed: clock.speed,
        paused: clock.paused,
        ended,
        looping: timeline.looping,
        dataset_start: timeline.dataset_start,
        dataset_end: timeline.dataset_end,
        dataset_days: timeline.loop_seconds / DAY,
    }
}

impl ClockTask {
    /// Sends what became due, and stops the clock at the dataset's end.
    fn tick(&mut self, now: f64) {
        if self
            .pending
            .as_ref()
            .is_some_and(|p| now >= p.clock.anchor_wall)
        {
            let next = self.pending.take().expect("pending");
            self.switch(next, now);
        }
        let wanted = self
            .timeline
            .clamp(self.clock.sim_at(now).floor() as i64 + 1);
        let mut target = wanted;
        if let Store::File(file) = &self.store {
            // Ask the file to run a tick ahead (or `save_ahead`, when longer: a save then
            // covers several ticks); never emit past what it holds.
            let lead = (self.clock.speed * self.tick.as_secs_f64()).ceil() as i64 + 1;
            let ahead = lead.max((self.clock.speed * self.save_ahead.as_secs_f64()).ceil() as i64);
            if wanted > self.cursor && self.requested_end < wanted + lead {
                self.requested_end = self.timeline.clamp(wanted + ahead);
                let mut record = self.record.clone();
                if let Some(last) = record.runs.last_mut() {
                    last.1 = self.requested_end;
                }
                file.save(record, None);
            }
            let durable = file
                .durable_end(self.record.runs.len())
                .unwrap_or(self.cursor);
            target = target.min(durable);
        }
        self.emit_to(target);
        let at_end = self.timeline.end().is_some_and(|end| self.cursor >= end);
        if at_end && !self.ended {
            self.ended = true;
            let end = self.timeline.dataset_end as f64;
            self.clock.seek(now, end);
            self.clock.set_paused(now, true);
            self.publish(now, "end");
            return;
        }
        self.state
            .send_replace(describe(&self.clock, &self.timeline, self.ended, now));
    }

    /// Whether everything due at the clock's present instant has been emitted.
    fn caught_up(&self) -> bool {
        let wanted = self
            .timeline
            .clamp(self.clock.sim_at(now_unix_f64()).floor() as i64 + 1);
        self.ended || self.cursor >= wanted
    }

    fn emit_to(&mut self, target: i64) {
        if target > self.cursor {
            for emitter in &self.emitters {
                emitter.emit(self.cursor, target);
            }
            self.cursor = target;
        }
    }

    /// Puts `next` in force: a seek first finishes the current run where `next` closes it.
    fn switch(&mut self, next: ClockRecord, now: f64) {
        let seek =
            next.runs.len() > self.record.runs.len() || next.run_start() != self.record.run_start();
        if seek {
            let closed = next.runs.len().checked_sub(2).map(|i| next.runs[i].1);
            if let Some(end) = closed {
                if self.cursor > end {
                    log::warn!(
                        "this replica had sent events up to {} before it learnt of a seek at {}",
                        format_ts(self.cursor),
                        format_ts(end)
                    );
                }
                self.emit_to(end);
            }
            self.cursor = next.run_start();
            self.requested_end = next.run_end();
            for emitter in &self.emitters {
                emitter.start_run(self.cursor);
            }
            self.ended = false;
            self.clock = next.clock;
        } else if self.ended {
            // Stopped at the end: only a seek moves it again.
            self.clock.speed = next.clock.speed;
        } else {
            self.clock = next.clock;
            self.requested_end = self.requested_end.max(next.run_end());
        }
        let reason = next.reason.clone();
        self.record = next;
        self.publish(now, &reason);
        if seek {
            for emitter in &self.emitters {
                emitter.sought(self.cursor);
            }
        }
    }

    /// A shared record from NATS: in force at its anchor (at once if that has passed).
    fn adopt(&mut self, record: ClockRecord, revision: u64) {
        if revision <= self.revision {
            return;
        }
        self.revision = revision;
        let now = now_unix_f64();
        if let Some(earlier) = self.pending.take() {
            self.switch(earlier, now);
        }
        if record.clock.anchor_wall <= now {
            self.switch(record, now);
        } else {
            self.pending = Some(record);
        }
    }

    async fn change(&mut self, commands: &[Command]) -> Result<ClockState, ChangeError> {
        for command in commands {
            check(command, &self.timeline).map_err(ChangeError::Invalid)?;
        }
        let seeks = commands.iter().any(|c| matches!(c, Command::Seek(_)));
        let steps = commands.iter().any(|c| matches!(c, Command::Step(_)));
        let runs = commands.contains(&Command::SetPaused(false))
            || (!self.clock.paused && !commands.contains(&Command::SetPaused(true)));
        if steps && runs {
            return Err(ChangeError::Conflict(
                "step needs a paused clock: pause it first ({\"paused\": true})".into(),
            ));
        }
        if self.ended && !seeks && commands.contains(&Command::SetPaused(false)) {
            return Err(ChangeError::Invalid(
                "the clock stopped at the dataset's end: seek back first \
                 (or serve with --loop)"
                    .into(),
            ));
        }
        match &self.store {
            Store::File(_) => self.change_local(commands).await,
            Store::Shared(shared) => {
                let shared = Arc::clone(shared);
                self.change_shared(commands, &shared).await
            }
        }
    }

    /// One process: applied now, saved (to a state file) before it is answered; what the
    /// change makes due (a step's window) goes out before the answer too.
    async fn change_local(&mut self, commands: &[Command]) -> Result<ClockState, ChangeError> {
        let now = now_unix_f64();
        // What is due up to this instant goes out before anything changes.
        self.tick(now);
        let mut next = self.record.clone();
        next.clock = self.clock;
        // The run keeps the end already asked of the file (a seek closes it at the cursor).
        if let Some(last) = next.runs.last_mut() {
            last.1 = self.requested_end.max(self.cursor);
        }
        edit(&mut next, commands, now, self.cursor);
        // The same save asks for what is due now (a step's window) and, running, a tick
        // ahead, as every tick does: else the first tick after a resume may emit nothing
        // (the file not yet there) and the next one two ticks' events at once, the slowest
        // tick of a run (the load bench's p99).
        let lead = if next.clock.paused {
            0
        } else {
            (next.clock.speed * self.tick.as_secs_f64()).ceil() as i64 + 1
        };
        let wanted = self
            .timeline
            .clamp(next.clock.sim_at(now).floor() as i64 + 1);
        if let Some(last) = next.runs.last_mut() {
            last.1 = last.1.max(self.timeline.clamp(wanted + lead));
        }
        if let Store::File(file) = &self.store {
            let (tx, rx) = oneshot::channel();
            file.save(next.clone(), Some(tx));
            rx.await
                .unwrap_or_else(|_| Err("the state writer stopped".into()))
                .map_err(ChangeError::Unavailable)?;
        }
        self.switch(next, now);
        self.tick(now);
        Ok(self.state.borrow().clone())
    }

    /// Replicas: written to NATS with compare-and-set, in force a little ahead on every
    /// replica at once.
    async fn change_shared(
        &mut self,
        commands: &[Command],
        shared: &SharedClock,
    ) -> Result<ClockState, ChangeError> {
        if !shared.is_connected() {
            return Err(ChangeError::Unavailable(shared.unreachable()));
        }
        let ahead = (self.tick.as_secs_f64() * 1.5).max(0.05);
        for _ in 0..5 {
            let (base, revision) = match &self.pending {
                Some(p) => (p.clone(), self.revision),
                None => (self.record.clone(), self.revision),
            };
            let at = now_unix_f64() + ahead;
            let mut next = base;
            let closing = self
                .timeline
                .clamp(next.clock.sim_at(at).floor() as i64 + 1)
                .max(next.run_start());
            edit(&mut next, commands, at, closing);
            match shared.update(&next, revision).await {
                Ok(new_revision) => {
                    let state = describe(&next.clock, &self.timeline, false, at);
                    self.adopt(next, new_revision);
                    return Ok(state);
                }
                Err(UpdateError::Conflict) => match shared.latest().await {
                    // Another presenter changed it first: apply theirs, then try ours on it.
                    Ok((record, revision)) => self.adopt(record, revision),
                    Err(e) => return Err(ChangeError::Unavailable(e)),
                },
                Err(UpdateError::Unavailable(e)) => return Err(ChangeError::Unavailable(e)),
            }
        }
        Err(ChangeError::Unavailable(
            "the clock kept changing under this request; try again".into(),
        ))
    }

    /// Updates the shared state and announces it to every client.
    fn publish(&mut self, now: f64, reason: &str) -> ClockState {
        let state = describe(&self.clock, &self.timeline, self.ended, now);
        self.state.send_replace(state.clone());
        for emitter in &self.emitters {
            emitter.announce("clock", state.message(reason).as_bytes());
        }
        state
    }
}

/// Applies `commands` to `record` at wall time `at`; a seek closes the current run at
/// `closing` (simulation time emitted by then) and starts another.
fn edit(record: &mut ClockRecord, commands: &[Command], at: f64, closing: i64) {
    let mut reason = "change";
    for &command in commands {
        match command {
            Command::SetSpeed(speed) => {
                record.clock.set_speed(at, speed);
                reason = "speed";
            }
            Command::SetPaused(paused) => {
                record.clock.set_paused(at, paused);
                reason = if paused { "pause" } else { "resume" };
            }
            Command::Seek(sim) => {
                record.clock.seek(at, sim);
                if let Some(last) = record.runs.last_mut() {
                    last.1 = closing.max(last.0);
                }
                let start = sim.floor() as i64;
                record.runs.push((start, start));
                if record.runs.len() > 256 {
                    let (a, b) = record.runs.remove(0);
                    record.emitted_before += b - a;
                }
                reason = "seek";
            }
            Command::Step(seconds) => {
                let sim = record.clock.sim_at(at);
                record.clock.seek(at, sim + seconds);
                reason = "step";
            }
        }
    }
    // A seek names the change whatever came with it: it is what a client must act on (the
    // stream goes on from elsewhere, and a fresh snapshot follows).
    if commands.iter().any(|c| matches!(c, Command::Seek(_))) {
        reason = "seek";
    }
    record.reason = reason.into();
}

/// Refuses a command the clock cannot take, saying why.
fn check(command: &Command, timeline: &Timeline) -> Result<(), String> {
    match *command {
        Command::SetSpeed(s) if !(s.is_finite() && s > 0.0 && s <= MAX_SPEED) => Err(format!(
            "speed must be a number above 0 and at most {MAX_SPEED}, not {s}"
        )),
        Command::Seek(t)
            if !(t.is_finite()
                && t >= timeline.day_zero as f64
                && t < timeline.dataset_end as f64) =>
        {
            Err(format!(
                "seek must be within the dataset, {} .. {}",
                format_ts(timeline.day_zero),
                format_ts(timeline.dataset_end)
            ))
        }
        Command::Step(s) if !(s.is_finite() && s > 0.0 && s <= MAX_STEP) => Err(format!(
            "step must be a number of seconds above 0 and at most {MAX_STEP}, not {s}"
        )),
        _ => Ok(()),
    }
}
