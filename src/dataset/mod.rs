//! The canonical dataset: load and validate `events.parquet`, index it by time, and
//! generate a realistic one when there is none.

pub mod cache;
mod columns;
mod error;
mod event_type;
pub mod generate;
mod index;
mod kitchens;
mod load;

use std::path::{Path, PathBuf};

pub use error::DatasetError;
pub use event_type::EventType;
pub use index::{EventIndex, IndexBuilder, RawEvent};
pub use kitchens::{Kitchen, builtin_kitchens, read_kitchens};
pub use load::read_events;

/// Where the product looks for a dataset when none is named.
pub const DEFAULT_DIR: &str = "data/canonical_dataset";

/// The events file inside a dataset directory.
pub const EVENTS_FILE: &str = "events.parquet";

/// The kitchens file inside a dataset directory (optional).
pub const LOCATIONS_FILE: &str = "locations.parquet";

/// Which dataset a saved state (a checkpoint, the live clock) belongs to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DatasetIdentity {
    /// SHA-1 of events.parquet.
    pub fingerprint: String,
    pub events: u64,
    pub first_ts: i64,
    pub last_ts: i64,
}

/// A loaded dataset: the time-ordered events and the kitchens.
#[derive(Debug)]
pub struct Dataset {
    pub dir: PathBuf,
    pub events: EventIndex,
    pub kitchens: Vec<Kitchen>,
    /// SHA-1 of `events.parquet`, in hex: what a checkpoint and the index cache bind to.
    pub fingerprint: String,
}

impl Dataset {
    /// Opens the dataset directory `dir`: reads, checks and indexes `events.parquet` (or
    /// reads the index cache built from the same file), and reads `locations.parquet` when
    /// it is there.
    pub fn open(dir: &Path) -> Result<Dataset, DatasetError> {
        Self::open_with(dir, true)
    }

    /// [`Dataset::open`], using and refreshing the index cache only when `use_cache`.
    pub fn open_with(dir: &Path, use_cache: bool) -> Result<Dataset, DatasetError> {
        let events_path = dir.join(EVENTS_FILE);
        if !events_path.is_file() {
            let message = if dir.is_dir() {
                format!(
                    "no {EVENTS_FILE} here (run `caspers-replay generate --out {}` to make one)",
                    dir.display()
                )
            } else {
                format!(
                    "no such dataset directory (run `caspers-replay generate --out {}`)",
                    dir.display()
                )
            };
            return Err(DatasetError::Io {
                path: dir.into(),
                message,
            });
        }
        let fingerprint = fingerprint(&events_path)?;
        let cached = cache::cache_path(dir, &fingerprint);
        let events = match use_cache.then(|| cache::read(&cached)).flatten() {
            Some(events) => events,
            None => {
                let events = read_events(&events_path)?;
                if use_cache {
                    // A read-only dataset just goes without a cache.
                    if let Err(e) = cache::write(&cached, &events) {
                        log::debug!("no index cache at {}: {e}", cached.display());
                    }
                }
                events
            }
        };
        let locations_path = dir.join(LOCATIONS_FILE);
        let kitchens = if locations_path.is_file() {
            read_kitchens(&locations_path)?
        } else {
            builtin_kitchens()
        };
        Ok(Dataset {
            dir: dir.into(),
            events,
            kitchens,
            fingerprint,
        })
    }

    /// The first event's time: where a replay starts.
    pub fn start(&self) -> i64 {
        self.events.first_ts().unwrap_or(0)
    }

    /// The time just past the last event: no event is at or after it.
    pub fn end(&self) -> i64 {
        self.events.last_ts().map_or(0, |t| t + 1)
    }

    /// The dataset's first midnight (UTC): day N of the dataset starts N days after it.
    pub fn day_zero(&self) -> i64 {
        self.start().div_euclid(crate::time::DAY) * crate::time::DAY
    }

    /// Days of orders: from day zero through the day of the last order_created (at least
    /// 1). Deliveries of the last orders run past it; a loop shifts time by this many days,
    /// so loop k+1 begins where loop k's orders end and overlaps only its late deliveries.
    pub fn days(&self) -> i64 {
        let ix = &self.events;
        let last_order = (0..ix.len())
            .rev()
            .find(|&p| ix.event_type(p) == crate::dataset::EventType::OrderCreated)
            .map_or(self.end() - 1, |p| ix.ts(p));
        ((last_order - self.day_zero()) / crate::time::DAY + 1).max(1)
    }

    /// What a saved state records to be sure it meets the same dataset again.
    pub fn identity(&self) -> DatasetIdentity {
        DatasetIdentity {
            fingerprint: self.fingerprint.clone(),
            events: self.events.len() as u64,
            first_ts: self.start(),
            last_ts: self.end() - 1,
        }
    }

    /// The kitchen with `location_id`, if the dataset knows it.
    pub fn kitchen(&self, location_id: u8) -> Option<&Kitchen> {
        self.kitchens.iter().find(|k| k.location_id == location_id)
    }
}

/// SHA-1 of a file, in hex.
fn fingerprint(path: &Path) -> Result<String, DatasetError> {
    use sha1::{Digest, Sha1};
    use std::io::Read;
    let io = |e: std::io::Error| DatasetError::Io {
        path: path.into(),
        message: format!("cannot read: {e}"),
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
