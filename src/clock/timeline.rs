//! The simulation timeline: dataset time extended by loops.
//!
//! Simulation time is dataset time on the first pass; loop k (with `--loop`) replays the
//! dataset shifted by k whole spans of days, so simulation time keeps growing and maps back
//! onto the dataset as (loop k, dataset time). Every replay (batch or live) asks the same
//! question, "which events lie in [a, b)?", and gets its answer here.

use std::ops::Range;

use crate::dataset::Dataset;
use crate::events::EventShift;
use crate::time::DAY;

/// How simulation time maps onto a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeline {
    /// The dataset's first midnight: day N starts N days later.
    pub day_zero: i64,
    /// Just past the dataset's last event.
    pub dataset_end: i64,
    /// One loop's length: the dataset's span in whole days.
    pub loop_seconds: i64,
    /// Whether time runs past the dataset's end into loop 1, 2, ...
    pub looping: bool,
}

/// The part of a simulation window that falls in one loop: the events at `positions` of
/// the index, emitted with `shift`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub positions: Range<usize>,
    pub shift: EventShift,
}

impl Timeline {
    pub fn new(ds: &Dataset, looping: bool) -> Timeline {
        Timeline {
            day_zero: ds.day_zero(),
            dataset_end: ds.end(),
            loop_seconds: ds.span_days() * DAY,
            looping,
        }
    }

    /// The start of simulation day `day`.
    pub fn day_start(&self, day: i64) -> i64 {
        self.day_zero + day * DAY
    }

    /// Where simulation time stops: the dataset's end, or never when looping.
    pub fn end(&self) -> Option<i64> {
        (!self.looping).then_some(self.dataset_end)
    }

    /// `sim` held to the timeline's end.
    pub fn clamp(&self, sim: i64) -> i64 {
        match self.end() {
            Some(end) => sim.min(end),
            None => sim,
        }
    }

    /// The loop that simulation time `sim` is in.
    pub fn loop_of(&self, sim: i64) -> i64 {
        (sim - self.day_zero).div_euclid(self.loop_seconds)
    }

    /// The events with simulation time in [a, b), loop by loop, in order; `extra_shift` is
    /// added to every emitted time (`--shift-to-today`).
    pub fn segments(&self, ds: &Dataset, a: i64, b: i64, extra_shift: i64) -> Vec<Segment> {
        let b = self.clamp(b);
        if b <= a {
            return Vec::new();
        }
        let (first, last) = (self.loop_of(a).max(0), self.loop_of(b - 1));
        (first..=last)
            .filter_map(|k| {
                let offset = k * self.loop_seconds;
                let positions = ds.events.range(a - offset, b - offset);
                (!positions.is_empty()).then(|| Segment {
                    positions,
                    shift: EventShift {
                        loop_index: u32::try_from(k).unwrap_or(u32::MAX),
                        seconds: offset + extra_shift,
                    },
                })
            })
            .collect()
    }
}
