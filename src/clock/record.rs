//! The live clock's durable state: what a restarted process, or another replica, needs to
//! run the same clock and accept the same stream positions.
//!
//! The same record is kept in the state file (one process) and in a NATS key-value bucket
//! (replicas). It is sealed with a CRC-32C and bound to the dataset, so a damaged record or
//! one from another dataset is refused, never trusted.

use serde::{Deserialize, Serialize};

use super::SimClock;
use crate::checksum::{SealedError, read_sealed_json, seal_json};
use crate::dataset::{Dataset, DatasetIdentity};
use crate::time::{format_rfc3339, now_unix_f64};

/// The `format` value of this version.
pub const FORMAT: &str = "caspers-replay clock v1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClockRecord {
    pub format: String,
    pub dataset: DatasetIdentity,
    #[serde(rename = "loop")]
    pub looping: bool,
    /// The anchors: simulation time `anchor_sim` at wall time `anchor_wall` (Unix seconds),
    /// advancing at `speed` unless `paused`. A replica's change takes effect at an
    /// `anchor_wall` slightly ahead, so that every replica switches at the same instant.
    #[serde(flatten)]
    pub clock: SimClock,
    /// Simulation time emitted, as runs [from, to) in emission order; a seek starts a run.
    /// The last run is the current one: in a state file its end is as far as the clock may
    /// have emitted (it never emits past a saved end); shared through NATS, the anchors say
    /// how far it has come, and the end is where the run began.
    pub runs: Vec<(i64, i64)>,
    /// Seconds of simulation time emitted in runs no longer kept (the oldest are dropped
    /// past 256): with the runs, how much the clock has emitted since it began, which only
    /// grows (a Spark query's offsets count on it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub emitted_before: i64,
    /// What the last change was (`speed`, `pause`, `resume`, `seek`, `start`): every
    /// replica announces it to its clients with the same word.
    pub reason: String,
    /// The options the clock was started with, or a later command line applied (see
    /// `clock::start`); absent in records from before they were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_with: Option<super::start::StartOptions>,
    /// Readable forms, for a person looking at the file.
    pub emitted_to_utc: String,
    pub saved_at_utc: String,
}

impl ClockRecord {
    /// A clock starting at `clock`'s anchor, nothing emitted yet.
    pub fn new(ds: &Dataset, looping: bool, clock: SimClock) -> ClockRecord {
        let start = clock.anchor_sim.floor() as i64;
        ClockRecord {
            format: FORMAT.into(),
            dataset: ds.identity(),
            looping,
            clock,
            runs: vec![(start, start)],
            emitted_before: 0,
            reason: "start".into(),
            started_with: None,
            emitted_to_utc: String::new(),
            saved_at_utc: String::new(),
        }
    }

    /// Where the current run began.
    pub fn run_start(&self) -> i64 {
        self.runs.last().map_or(0, |r| r.0)
    }

    /// The current run's recorded end.
    pub fn run_end(&self) -> i64 {
        self.runs.last().map_or(0, |r| r.1)
    }

    /// The sealed JSON text.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut r = self.clone();
        r.emitted_to_utc = format_rfc3339(self.run_end());
        r.saved_at_utc = format_rfc3339(now_unix_f64().floor() as i64);
        seal_json(&serde_json::to_vec_pretty(&r).expect("serializable"))
    }

    /// Reads a record, checking its checksum, that it is one, and that it belongs to the
    /// dataset `here` with the same `looping` (when given); says what is wrong otherwise.
    pub fn from_bytes(
        bytes: &[u8],
        here: &DatasetIdentity,
        looping: Option<bool>,
    ) -> Result<ClockRecord, String> {
        let r: ClockRecord = read_sealed_json(bytes).map_err(|e| match e {
            SealedError::NotJson(e) => format!("it is not a caspers-replay clock state ({e})"),
            SealedError::Damaged(e) => format!("it is damaged: {e}"),
        })?;
        if r.format != FORMAT {
            return Err(format!("its format is '{}', not '{FORMAT}'", r.format));
        }
        if r.dataset != *here {
            return Err(format!(
                "it belongs to another dataset ({} events, SHA-1 {}; this one has {} events, SHA-1 {})",
                r.dataset.events, r.dataset.fingerprint, here.events, here.fingerprint
            ));
        }
        if let Some(looping) = looping
            && r.looping != looping
        {
            return Err(format!(
                "it was made with --loop {}, and this server has it {}",
                onoff(r.looping),
                onoff(looping)
            ));
        }
        let c = &r.clock;
        let sane = c.anchor_sim.is_finite()
            && c.anchor_wall.is_finite()
            && c.speed.is_finite()
            && c.speed > 0.0
            && !r.runs.is_empty()
            && r.runs.iter().all(|&(a, b)| a <= b);
        if !sane {
            return Err("its anchors or runs make no sense".into());
        }
        Ok(r)
    }
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn onoff(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}
