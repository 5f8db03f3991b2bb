//! What a clock has emitted, as runs of simulation time broken by seeks, and the catch-up
//! built from it: a client that resumes from a position gets exactly what came after it.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use super::framing::{FramedTick, Transport, lagged_notice};
use super::queue::EventChunk;
use crate::dataset::Dataset;
use crate::events::Filter;
use crate::timeline::{Position, PositionError, Timeline};

/// Runs kept at most (a seek starts one): older ones cannot be resumed from.
const RUNS_KEPT: usize = 256;

/// Events framed together in a catch-up's chunk.
const CATCH_UP_CHUNK: usize = 512;

/// Simulation time emitted, as runs [from, to) in emission order.
#[derive(Default)]
pub(super) struct History {
    runs: Vec<(i64, i64)>,
    /// Seconds of simulation time emitted in runs no longer kept: the emission count of
    /// the first run's start.
    before: i64,
    /// Where this process's own emission began: positions before it were sent by an
    /// earlier process (a restart) or another replica.
    first_live: i64,
}

impl History {
    /// Takes the runs of a clock this process continues or joins; its own emission starts
    /// at `cursor`.
    pub fn set(&mut self, runs: Vec<(i64, i64)>, before: i64, cursor: i64) {
        self.runs = runs;
        self.before = before;
        self.first_live = cursor;
    }

    /// A new run starts at `sim` (the clock started or was sought).
    pub fn start_run(&mut self, sim: i64) {
        self.runs.push((sim, sim));
        if self.runs.len() > RUNS_KEPT {
            let (a, b) = self.runs.remove(0);
            self.before += b - a;
        }
    }

    /// [a, b) was emitted.
    pub fn record(&mut self, a: i64, b: i64) {
        match self.runs.last_mut() {
            Some(run) if run.1 == a => run.1 = b,
            _ => self.runs.push((a, b)),
        }
    }

    pub fn runs(&self) -> &[(i64, i64)] {
        &self.runs
    }

    /// The runs kept, each with its emission count at its start (seconds of simulation
    /// time emitted before it, since the clock began), and the count now.
    pub fn counted(&self) -> (Vec<(i64, i64, i64)>, i64) {
        let mut count = self.before;
        let runs = self
            .runs
            .iter()
            .map(|&(a, b)| {
                let at = count;
                count += b - a;
                (a, b, at)
            })
            .collect();
        (runs, count)
    }

    /// The windows of simulation time emitted between emission counts `from` and `to`, in
    /// emission order; why not, when that span is not kept or not emitted yet.
    pub fn windows(&self, from: i64, to: i64) -> Result<Vec<(i64, i64)>, String> {
        let (runs, now) = self.counted();
        if from > to || to > now {
            return Err(format!(
                "from {from} to {to} is not a span of what this clock has emitted (0 to {now})"
            ));
        }
        if from < self.before {
            return Err(format!(
                "from {from} is older than the runs this clock keeps (from {})",
                self.before
            ));
        }
        Ok(runs
            .iter()
            .filter_map(|&(a, b, at)| {
                let (lo, hi) = (from.max(at), to.min(at + b - a));
                (lo < hi).then(|| (a + lo - at, a + hi - at))
            })
            .collect())
    }

    /// Whether `sim` lies in the current run at or past what was emitted.
    pub fn is_ahead(&self, sim: i64) -> bool {
        self.runs.last().is_some_and(|&(a, b)| a <= sim && sim >= b)
    }

    /// Whether `sim` was emitted before this process began emitting.
    pub fn before_this_process(&self, sim: i64) -> bool {
        sim < self.first_live
    }
}

/// What a catch-up is built from: the dataset on its clock's timeline, the positions' tag,
/// and where the framed chunks' memory is counted.
pub(super) struct CatchUp<'a> {
    pub ds: &'a Dataset,
    pub timeline: &'a Timeline,
    pub tag: &'a str,
    pub memory: &'a Arc<AtomicUsize>,
}

impl CatchUp<'_> {
    /// The events emitted (`history`) after position `text`, in emission order, framed as chunks: the
    /// latest that fit in `room` bytes, after a `lagged` notice for the older ones.
    pub(super) fn after(
        &self,
        text: &str,
        history: &[(i64, i64)],
        filter: Filter,
        transport: Transport,
        room: usize,
    ) -> Result<Vec<EventChunk>, PositionError> {
        let ds = self.ds;
        let p = Position::parse(text, self.tag)?;
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
            let tick = FramedTick::new(ds, self.tag, part, self.memory);
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
            lagged_notice(transport, kept as u64, &mut chunks);
        }
        Ok(chunks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emission_counts_map_to_windows_across_seeks_and_dropped_runs() {
        let mut h = History::default();
        h.set(vec![(100, 100)], 0, 100);
        h.record(100, 160);
        h.start_run(50);
        h.record(50, 80);
        assert_eq!(h.counted(), (vec![(100, 160, 0), (50, 80, 60)], 90));
        assert_eq!(h.windows(30, 75), Ok(vec![(130, 160), (50, 65)]));
        assert_eq!(h.windows(90, 90), Ok(vec![]));
        assert!(h.windows(0, 91).is_err(), "not emitted yet");
        for k in 0..RUNS_KEPT {
            h.start_run(1000 * k as i64);
        }
        let (runs, now) = h.counted();
        assert_eq!((runs[0].2, now), (90, 90), "the dropped runs still count");
        assert!(h.windows(10, 90).unwrap_err().contains("older"));
    }
}
