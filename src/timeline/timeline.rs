//! The simulation timeline: dataset time extended by loops.
//!
//! Simulation time is dataset time on the first pass; loop k (with `--loop`) replays the
//! dataset shifted by k times its days of orders, so simulation time keeps growing and maps
//! back onto the dataset as (loop k, dataset time). Loop k+1's first orders overlap loop
//! k's last deliveries, so a window can hold events of two loops, merged in time order.
//! Every replay (batch or live) asks the same question, "which events lie in [a, b)?", and
//! gets its answer here.

use std::ops::Range;

use crate::dataset::Dataset;
use crate::events::EventShift;
use crate::time::DAY;

/// How simulation time maps onto a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeline {
    /// The dataset's first midnight: day N starts N days later.
    pub day_zero: i64,
    /// The dataset's first event.
    pub dataset_start: i64,
    /// Just past the dataset's last event.
    pub dataset_end: i64,
    /// One loop's length: the dataset's days of orders.
    pub loop_seconds: i64,
    /// Whether time runs past the dataset's end into loop 1, 2, ...
    pub looping: bool,
}

/// The events of one loop in a window: `positions` of the index, emitted with `shift`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub positions: Range<usize>,
    pub shift: EventShift,
}

impl Timeline {
    pub fn new(ds: &Dataset, looping: bool) -> Timeline {
        Timeline {
            day_zero: ds.day_zero(),
            dataset_start: ds.start(),
            dataset_end: ds.end(),
            loop_seconds: ds.days() * DAY,
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

    /// The events with simulation time in [a, b), one segment per loop, earliest loop first;
    /// `extra_shift` is added to every emitted time (`--shift-to-today`).
    pub fn segments(&self, ds: &Dataset, a: i64, b: i64, extra_shift: i64) -> Vec<Segment> {
        let b = self.clamp(b);
        if b <= a {
            return Vec::new();
        }
        let l = self.loop_seconds;
        // Loop k spans [dataset_start + kL, dataset_end + kL).
        let first = ((a - self.dataset_end).div_euclid(l) + 1).max(0);
        let last = if self.looping {
            (b - self.dataset_start - 1).div_euclid(l)
        } else {
            0
        };
        (first..=last)
            .filter_map(|k| {
                let offset = k * l;
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

    /// Calls `f` for every event with simulation time in [a, b), in the canonical order
    /// (emitted ts, sequence, earlier loop, file row).
    pub fn for_each_event(
        &self,
        ds: &Dataset,
        a: i64,
        b: i64,
        extra_shift: i64,
        mut f: impl FnMut(usize, EventShift),
    ) {
        let mut segments = self.segments(ds, a, b, extra_shift);
        if let [only] = segments.as_slice() {
            for pos in only.positions.clone() {
                f(pos, only.shift);
            }
            return;
        }
        // Loops overlap only by the late deliveries: a plain merge of a few cursors.
        let ix = &ds.events;
        loop {
            let next = segments
                .iter_mut()
                .filter(|s| !s.positions.is_empty())
                .min_by_key(|s| {
                    let p = s.positions.start;
                    (
                        ix.ts(p) + s.shift.seconds,
                        ix.sequence(p),
                        s.shift.loop_index,
                    )
                });
            match next {
                Some(s) => {
                    f(s.positions.start, s.shift);
                    s.positions.start += 1;
                }
                None => return,
            }
        }
    }

    /// How many events [a, b) holds.
    pub fn count(&self, ds: &Dataset, a: i64, b: i64) -> u64 {
        self.segments(ds, a, b, 0)
            .iter()
            .map(|s| s.positions.len() as u64)
            .sum()
    }
}
