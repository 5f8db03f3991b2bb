//! The batch replay's checkpoint: a small, human-readable JSON file.
//!
//! It records how far simulation time has been emitted (`window_end`) and the wall-clock
//! instant that corresponds to it (`wall_clock`), plus what fixes the replay: the dataset's
//! fingerprint, the start day, looping and the time shift. A run about to publish a file
//! first records it as `pending`, so a run killed at any instant is completed, not
//! repeated, by the next one. Its last member is a CRC-32C of the rest: a damaged file is
//! refused, never trusted.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::atomic_file::write_atomically;
use crate::checksum::{SealedError, read_sealed_json, seal_json};
pub use crate::dataset::DatasetIdentity;
use crate::time::format_rfc3339;

/// The `format` value of this version.
pub const FORMAT: &str = "caspers-replay checkpoint v1";

/// A window whose file was being published when the run stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub window_start: i64,
    pub window_end: i64,
    pub wall_clock: f64,
    /// The output file's name in the output directory; none for a window with no event.
    pub file: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    pub dataset: DatasetIdentity,
    pub start_day: i64,
    #[serde(rename = "loop")]
    pub looping: bool,
    pub shift_to_today: bool,
    /// Seconds added to every emitted `ts` (fixed at the first run).
    pub shift_seconds: i64,
    /// Simulation time (Unix seconds) emitted up to, exclusive.
    pub window_end: i64,
    /// The same, readable (simulation time, before the shift).
    pub window_end_utc: String,
    /// Wall-clock Unix seconds at which simulation time stood at `window_end`.
    pub wall_clock: f64,
    pub wall_clock_utc: String,
    /// Runs that emitted a window.
    pub runs: u64,
    pub pending: Option<Pending>,
}

impl Checkpoint {
    /// Reads a checkpoint; `Ok(None)` when there is none yet.
    pub fn read(path: &Path) -> Result<Option<Checkpoint>, String> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read: {e}")),
        };
        let cp: Checkpoint = read_sealed_json(&bytes).map_err(|e| match e {
            SealedError::NotJson(e) => format!("not a caspers-replay checkpoint ({e})"),
            SealedError::Damaged(e) => format!("the checkpoint is damaged: {e}"),
        })?;
        if cp.format != FORMAT {
            return Err(format!(
                "unknown checkpoint format '{}' (expected '{FORMAT}')",
                cp.format
            ));
        }
        Ok(Some(cp))
    }

    /// Replaces the checkpoint file atomically.
    pub fn write(&mut self, path: &Path) -> std::io::Result<()> {
        self.window_end_utc = format_rfc3339(self.window_end);
        self.wall_clock_utc = format_rfc3339(self.wall_clock.floor() as i64);
        let text = seal_json(&serde_json::to_vec_pretty(self).expect("serializable"));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        write_atomically(path, &text)
    }
}
