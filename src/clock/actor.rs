//! The clock task: one tokio task owns the live simulation clock and takes commands over a
//! channel (set speed, pause, resume, seek). Each tick it hands the hub the events in
//! [emitted so far, now), so every event the clock passes goes out exactly once and in
//! order, whatever the speed changes and pauses. Every change is announced to all clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use super::{SimClock, Timeline};
use crate::sinks::hub::Hub;
use crate::time::{DAY, format_ts};

/// Fastest speed a presenter may set.
pub const MAX_SPEED: f64 = 1_000_000.0;

/// How the clock starts.
#[derive(Clone, Debug)]
pub struct ClockConfig {
    /// Simulation time to start at (Unix seconds).
    pub start: f64,
    pub speed: f64,
    pub paused: bool,
    /// Time between ticks.
    pub tick: Duration,
}

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

/// A presenter's change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Command {
    SetSpeed(f64),
    SetPaused(bool),
    /// Jump to this simulation time (Unix seconds).
    Seek(f64),
}

type Reply = oneshot::Sender<Result<ClockState, String>>;

/// The way to the clock task.
#[derive(Clone)]
pub struct ClockHandle {
    commands: mpsc::Sender<(Vec<Command>, Reply)>,
    state: watch::Receiver<ClockState>,
}

impl ClockHandle {
    /// The latest state.
    pub fn state(&self) -> ClockState {
        self.state.borrow().clone()
    }

    /// Applies `commands` in order (all or none); returns the new state or why not.
    pub async fn apply(&self, commands: Vec<Command>) -> Result<ClockState, String> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send((commands, tx))
            .await
            .map_err(|_| "the clock has stopped".to_string())?;
        rx.await.map_err(|_| "the clock has stopped".to_string())?
    }
}

struct ClockTask {
    clock: SimClock,
    timeline: Timeline,
    hub: Arc<Hub>,
    /// Every event with simulation time before this has been sent.
    cursor: i64,
    ended: bool,
    state: watch::Sender<ClockState>,
}

/// Starts the clock task on the current tokio runtime.
pub fn spawn(hub: Arc<Hub>, timeline: Timeline, config: ClockConfig) -> ClockHandle {
    let now = Instant::now();
    let clock = SimClock::new(config.start, now, config.speed, config.paused);
    let cursor = config.start.floor() as i64;
    hub.start_run(cursor);
    let (state_tx, state_rx) = watch::channel(describe(&clock, &timeline, false, now));
    let (tx, mut rx) = mpsc::channel::<(Vec<Command>, Reply)>(64);
    let mut task = ClockTask {
        clock,
        timeline,
        hub,
        cursor,
        ended: false,
        state: state_tx,
    };
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(config.tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => task.tick(Instant::now()),
                command = rx.recv() => match command {
                    Some((commands, reply)) => {
                        let _ = reply.send(task.apply(&commands, Instant::now()));
                    }
                    None => return,
                },
            }
        }
    });
    ClockHandle {
        commands: tx,
        state: state_rx,
    }
}

fn describe(clock: &SimClock, timeline: &Timeline, ended: bool, now: Instant) -> ClockState {
    let sim = clock.sim_at(now);
    ClockState {
        sim_time: sim,
        sim_time_utc: format_ts(sim.floor() as i64),
        day: (sim.floor() as i64 - timeline.day_zero).div_euclid(DAY),
        speed: clock.speed(),
        paused: clock.paused(),
        ended,
        looping: timeline.looping,
        dataset_start: timeline.dataset_start,
        dataset_end: timeline.dataset_end,
        dataset_days: timeline.loop_seconds / DAY,
    }
}

impl ClockTask {
    /// Sends what became due, and stops the clock at the dataset's end.
    fn tick(&mut self, now: Instant) {
        let sim = self.clock.sim_at(now);
        let target = self.timeline.clamp(sim.floor() as i64 + 1);
        if target > self.cursor {
            self.hub.broadcast_window(self.cursor, target);
            self.cursor = target;
        }
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

    fn apply(&mut self, commands: &[Command], now: Instant) -> Result<ClockState, String> {
        for command in commands {
            check(command, &self.timeline)?;
        }
        let seeks = commands.iter().any(|c| matches!(c, Command::Seek(_)));
        if self.ended && !seeks && commands.contains(&Command::SetPaused(false)) {
            return Err("the clock stopped at the dataset's end: seek back first \
                        (or serve with --loop)"
                .into());
        }
        // What is due up to this instant goes out before anything changes.
        self.tick(now);
        let mut reason = "change";
        for &command in commands {
            match command {
                Command::SetSpeed(speed) => {
                    self.clock.set_speed(now, speed);
                    reason = "speed";
                }
                Command::SetPaused(paused) => {
                    self.clock.set_paused(now, paused);
                    reason = if paused { "pause" } else { "resume" };
                }
                Command::Seek(sim) => {
                    self.clock.seek(now, sim);
                    self.cursor = sim.floor() as i64;
                    self.ended = false;
                    self.hub.start_run(self.cursor);
                    reason = "seek";
                }
            }
        }
        Ok(self.publish(now, reason))
    }

    /// Updates the shared state and announces it to every client.
    fn publish(&mut self, now: Instant, reason: &str) -> ClockState {
        let state = describe(&self.clock, &self.timeline, self.ended, now);
        self.state.send_replace(state.clone());
        let mut json = serde_json::to_value(&state).expect("serializable");
        json["type"] = "clock".into();
        json["reason"] = reason.into();
        self.hub
            .broadcast_control("clock", json.to_string().as_bytes());
        state
    }
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
        _ => Ok(()),
    }
}
