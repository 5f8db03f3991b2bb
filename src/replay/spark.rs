//! The Spark data source's side of the engine (`python/caspers_replay`): its offsets, the
//! JSON that Spark's checkpoint stores, planned by the batch replay's rule
//! ([`plan_window`]), so a streaming query on a checkpoint emits the seed's windows.

use serde::{Deserialize, Serialize};

use super::{plan_window, shift_to_today_seconds};
use crate::dataset::Dataset;
use crate::time::format_rfc3339;
use crate::timeline::Timeline;

/// Where a stream stands: everything before `simulation_seconds` has been planned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SparkOffset {
    /// Simulation time planned up to, exclusive (Unix seconds, before any shift).
    pub simulation_seconds: i64,
    /// The same, readable.
    pub simulation_utc: String,
    /// The wall clock (Unix seconds) at which simulation time stood there.
    pub wall_clock: f64,
    /// Seconds added to every `ts` (`shiftToToday`), fixed by the initial offset.
    pub shift_seconds: i64,
    /// Windows planned since the initial offset: the first is the catch-up.
    pub runs: u64,
    /// The dataset's tag: an offset of another dataset is refused, not misread.
    pub dataset: String,
}

/// The source's options that shape its windows.
#[derive(Clone, Debug)]
pub struct SourceOptions {
    pub start_day: i64,
    pub speed: f64,
    pub looping: bool,
    pub shift_to_today: bool,
}

fn tag(ds: &Dataset) -> String {
    ds.fingerprint.chars().take(8).collect()
}

fn check(ds: &Dataset, opts: &SourceOptions) -> Result<(), String> {
    if !opts.speed.is_finite() || opts.speed <= 0.0 {
        return Err(format!(
            "speedMultiplier must be a number above 0, not {}",
            opts.speed
        ));
    }
    if !(0..ds.days()).contains(&opts.start_day) {
        return Err(format!(
            "simulationStartDay {} is outside the dataset, which has days 0 to {}",
            opts.start_day,
            ds.days() - 1
        ));
    }
    Ok(())
}

/// A new stream's offset: nothing planned yet, at the dataset's day 0.
pub fn initial_offset(ds: &Dataset, opts: &SourceOptions, now: f64) -> Result<SparkOffset, String> {
    check(ds, opts)?;
    let timeline = Timeline::new(ds, opts.looping);
    Ok(SparkOffset {
        simulation_seconds: timeline.day_zero,
        simulation_utc: format_rfc3339(timeline.day_zero),
        wall_clock: now,
        shift_seconds: if opts.shift_to_today {
            shift_to_today_seconds(&timeline, opts.start_day, now)
        } else {
            0
        },
        runs: 0,
        dataset: tag(ds),
    })
}

/// The offset after `start` at wall-clock `now`: the end of the next window.
pub fn latest_offset(
    ds: &Dataset,
    opts: &SourceOptions,
    start: &SparkOffset,
    now: f64,
) -> Result<SparkOffset, String> {
    check(ds, opts)?;
    if start.dataset != tag(ds) {
        return Err(format!(
            "this Spark checkpoint belongs to another dataset (tag {}; this one is {}): use a new checkpoint location",
            start.dataset,
            tag(ds)
        ));
    }
    let timeline = Timeline::new(ds, opts.looping);
    let (end, wall_clock) = plan_window(
        &timeline,
        start.runs == 0,
        (start.simulation_seconds, start.wall_clock),
        opts.start_day,
        opts.speed,
        now,
    );
    if end <= start.simulation_seconds && start.runs > 0 {
        // Nothing new: Spark is told the same offset, and plans no batch.
        return Ok(start.clone());
    }
    let end = end.max(start.simulation_seconds);
    Ok(SparkOffset {
        simulation_seconds: end,
        simulation_utc: format_rfc3339(end),
        wall_clock,
        runs: start.runs + 1,
        ..start.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_survive_json_as_spark_stores_them() {
        let o = SparkOffset {
            simulation_seconds: 1_704_067_200,
            simulation_utc: format_rfc3339(1_704_067_200),
            wall_clock: 1_764_007_200.25,
            shift_seconds: 0,
            runs: 3,
            dataset: "23a9f17e".into(),
        };
        let text = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<SparkOffset>(&text).unwrap(), o);
    }
}
