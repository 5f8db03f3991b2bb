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
    /// Where this process's own emission began: positions before it were sent by an
    /// earlier process (a restart) or another replica.
    first_live: i64,
}

impl History {
    /// Takes the runs of a clock this process continues or joins; its own emission starts
    /// at `cursor`.
    pub fn set(&mut self, runs: Vec<(i64, i64)>, cursor: i64) {
        self.runs = runs;
        self.first_live = cursor;
    }

    /// A new run starts at `sim` (the clock started or was sought).
    pub fn start_run(&mut self, sim: i64) {
        self.runs.push((sim, sim));
        if self.runs.len() > RUNS_KEPT {
            self.runs.remove(0);
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
