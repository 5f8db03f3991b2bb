//! How a command line meets a saved clock. The record keeps the options the clock was
//! started with; the same options again (a supervisor restarting the same command) continue
//! the saved clock as it was, presenter's changes included, and an option given with another
//! value is applied on top, as a presenter's change would be, and said. Options not given
//! are not checked against the dataset when a saved clock is used.

use serde::{Deserialize, Serialize};

use super::actor::Command;
use super::{ClockRecord, SimClock};
use crate::dataset::Dataset;
use crate::time::DAY;

/// The day `serve` starts at when `--start-day` is not given.
pub const DEFAULT_START_DAY: i64 = 20;
/// The speed `serve` starts at when `--speed` is not given.
pub const DEFAULT_SPEED: f64 = 60.0;

/// The options a clock was started with, as its record keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartOptions {
    pub start_day: i64,
    pub speed: f64,
    pub paused: bool,
}

/// What the command line says of the clock: `None` (or `false`) where it says nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClockOptions {
    pub start_day: Option<i64>,
    pub speed: Option<f64>,
    pub paused: bool,
}

impl ClockOptions {
    /// The options in force for a new clock, defaults filled in.
    pub fn effective(&self) -> StartOptions {
        StartOptions {
            start_day: self.start_day.unwrap_or(DEFAULT_START_DAY),
            speed: self.speed.unwrap_or(DEFAULT_SPEED),
            paused: self.paused,
        }
    }

    /// A new clock from these options, at the wall clock's time of day on the start day.
    pub fn new_clock(&self, ds: &Dataset, looping: bool, now: f64) -> Result<ClockRecord, String> {
        let o = self.effective();
        let start = day_at_time_of_day(ds, o.start_day, now)?;
        let mut record =
            ClockRecord::new(ds, looping, SimClock::new(start, now, o.speed, o.paused));
        record.started_with = Some(o);
        Ok(record)
    }

    /// The changes this command line asks of a saved clock (`record`): the commands to
    /// apply and what to say of them. The record's options become this command line's.
    pub fn changes_to(
        &self,
        record: &mut ClockRecord,
        ds: &Dataset,
        now: f64,
    ) -> Result<(Vec<Command>, Vec<String>), String> {
        let Some(was) = record.started_with else {
            // A record from before options were kept: nothing to compare with.
            record.started_with = Some(self.effective());
            return Ok((Vec::new(), Vec::new()));
        };
        let (day, speed, pause) = self.differences(was);
        let mut commands = Vec::new();
        let mut notes = Vec::new();
        let mut now_with = was;
        if let Some(day) = day {
            commands.push(Command::Seek(day_at_time_of_day(ds, day, now)?));
            notes.push(format!("--start-day {day} applied (was {})", was.start_day));
            now_with.start_day = day;
        }
        if let Some(speed) = speed {
            commands.push(Command::SetSpeed(speed));
            notes.push(format!("--speed {speed} applied (was {})", was.speed));
            now_with.speed = speed;
        }
        if pause {
            commands.push(Command::SetPaused(true));
            notes.push("--paused applied".into());
            now_with.paused = true;
        }
        record.started_with = Some(now_with);
        Ok((commands, notes))
    }

    /// The options given with values other than those of `was`: a start day, a speed,
    /// and whether to pause.
    fn differences(&self, was: StartOptions) -> (Option<i64>, Option<f64>, bool) {
        (
            self.start_day.filter(|&d| d != was.start_day),
            self.speed.filter(|&s| s != was.speed),
            self.paused && !was.paused,
        )
    }

    /// What a replica joining the shared clock does not apply, and why.
    pub fn ignored_by_a_joining_replica(&self, record: &ClockRecord) -> Vec<String> {
        let Some(was) = record.started_with else {
            return Vec::new();
        };
        let (day, speed, pause) = self.differences(was);
        let mut ignored = Vec::new();
        if let Some(day) = day {
            ignored.push(format!("--start-day {day}"));
        }
        if let Some(speed) = speed {
            ignored.push(format!("--speed {speed}"));
        }
        if pause {
            ignored.push("--paused".into());
        }
        if ignored.is_empty() {
            return ignored;
        }
        vec![format!(
            "{} ignored: the replicas share one clock, which runs on (change it with POST /v1/clock or the presenter's page)",
            ignored.join(", ")
        )]
    }
}

/// Simulation time of `day` (0-based) of the dataset at the wall clock's UTC time of day.
fn day_at_time_of_day(ds: &Dataset, day: i64, now: f64) -> Result<f64, String> {
    let days = ds.days();
    if !(0..days).contains(&day) {
        return Err(format!(
            "--start-day {day} is outside the dataset, which has days 0 to {}",
            days - 1
        ));
    }
    Ok((ds.day_zero() + day * DAY) as f64 + now.rem_euclid(DAY as f64))
}
