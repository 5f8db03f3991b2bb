//! The sessions file: many clocks' records (replay sessions') in one file beside the state
//! file, so that a restart brings every session back where it was.
//!
//! One writer thread replaces the whole file atomically with the newest record of every
//! session: at once for a change someone waits for, and otherwise at most every
//! [`MIN_INTERVAL`], so that a thousand running sessions make a few writes a second, not a
//! thousand (each asks a second ahead, see `ClockSetup::save_ahead`). Each
//! session's clock never emits past what the file holds for it, as the shared clock does
//! with its state file. The file is held with `<file>.lock`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::ClockRecord;
use super::actor::Durable;
use crate::atomic_file::{LockError, lock_beside, write_atomically};
use crate::dataset::Dataset;

/// The `format` value of this version.
const FORMAT: &str = "caspers-replay sessions v1";

/// The least time between two writes of the file.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Where the sessions of a server whose clock is kept in `state_file` are kept.
pub fn path_beside(state_file: &Path) -> PathBuf {
    let mut name = state_file.file_stem().unwrap_or_default().to_os_string();
    name.push(".sessions.json");
    state_file.with_file_name(name)
}

/// One session as the file keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    id: String,
    /// A digest of its owner's token (the token itself is not kept).
    owner: String,
    /// The clock's sealed record, as a state file holds it.
    record: String,
}

#[derive(Serialize, Deserialize)]
struct File {
    format: String,
    sessions: Vec<Entry>,
}

/// A saved session: its id, its owner's token digest, its clock.
pub struct Saved {
    pub id: String,
    pub owner: String,
    pub record: ClockRecord,
}

type Done = oneshot::Sender<Result<(), String>>;

/// A session's newest record, sealed when it was saved (on its clock's thread, not the
/// writer's).
#[derive(Clone)]
struct Kept {
    owner: String,
    record: String,
    /// Its runs and the end of its last run: how far it may emit once written.
    runs: usize,
    end: i64,
}

impl Kept {
    fn new(owner: &str, record: &ClockRecord) -> Kept {
        Kept {
            owner: owner.to_string(),
            record: String::from_utf8(record.to_bytes()).expect("JSON is UTF-8"),
            runs: record.runs.len(),
            end: record.run_end(),
        }
    }
}

#[derive(Default)]
struct Pending {
    /// id -> its newest record.
    records: BTreeMap<String, Kept>,
    dirty: bool,
    waiting: Vec<Done>,
}

/// The open sessions file, owned by this process while it runs.
pub struct Shelf {
    pub path: PathBuf,
    pending: Mutex<Pending>,
    changed: Condvar,
    /// id -> (runs, end of the last run) of its newest record on disk.
    durable: Mutex<HashMap<String, (usize, i64)>>,
    _lock: std::fs::File,
}

impl Shelf {
    /// Takes `path` for this process and reads the sessions saved there (none with
    /// `fresh`, or when there is no file yet). A file that cannot be used is refused with
    /// why, and left as it is.
    pub fn open(
        path: &Path,
        ds: &Dataset,
        fresh: bool,
    ) -> Result<(Arc<Shelf>, Vec<Saved>), String> {
        let shown = path.display();
        let lock = lock_beside(path).map_err(|e| match e {
            LockError::Busy => format!(
                "the sessions file {shown} is in use by another server; give this one its own --state FILE"
            ),
            LockError::Io(e) => format!("the sessions file {shown}: {e} (choose another place with --state FILE)"),
        })?;
        let refuse = |why: String| {
            format!(
                "the sessions file {shown} cannot be used: {why}. It was left as it is: remove \
                 it, start with --fresh (the clock and the sessions start over), or use another \
                 --state FILE"
            )
        };
        let mut saved = Vec::new();
        if !fresh {
            match std::fs::read(path) {
                Ok(bytes) => {
                    let file: File = serde_json::from_slice(&bytes)
                        .map_err(|e| refuse(format!("it is not a sessions file ({e})")))?;
                    if file.format != FORMAT {
                        return Err(refuse(format!(
                            "its format is '{}', not '{FORMAT}'",
                            file.format
                        )));
                    }
                    for entry in file.sessions {
                        let record =
                            ClockRecord::from_bytes(entry.record.as_bytes(), &ds.identity(), None)
                                .map_err(|why| refuse(format!("session {}: {why}", entry.id)))?;
                        saved.push(Saved {
                            id: entry.id,
                            owner: entry.owner,
                            record,
                        });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot read the sessions file {shown}: {e}")),
            }
        }
        let shelf = Arc::new(Shelf {
            path: path.to_path_buf(),
            pending: Mutex::new(Pending {
                records: saved
                    .iter()
                    .map(|s| (s.id.clone(), Kept::new(&s.owner, &s.record)))
                    .collect(),
                dirty: fresh,
                waiting: Vec::new(),
            }),
            changed: Condvar::new(),
            durable: Mutex::new(
                saved
                    .iter()
                    .map(|s| (s.id.clone(), (s.record.runs.len(), s.record.run_end())))
                    .collect(),
            ),
            _lock: lock,
        });
        let writer = Arc::clone(&shelf);
        std::thread::Builder::new()
            .name("sessions-state".into())
            .spawn(move || writer.write_loop())
            .map_err(|e| format!("cannot start the sessions writer: {e}"))?;
        Ok((shelf, saved))
    }

    /// Keeps session `id` (owned by the token whose digest is `owner`) from now on, its
    /// record saved through the returned slot. A new session's record counts as saved
    /// before it is: what it holds has reached nobody yet, and waiting for a rewrite of
    /// the whole file would make creating a session cost as much as every session alive.
    /// (A crash within a write of its creation loses it: its creator gets 404.)
    pub fn slot(self: &Arc<Self>, id: &str, owner: &str, record: &ClockRecord) -> Slot {
        let mut pending = self.pending.lock().expect("sessions file");
        pending
            .records
            .entry(id.to_string())
            .or_insert_with(|| Kept::new(owner, record));
        pending.dirty = true;
        drop(pending);
        self.durable
            .lock()
            .expect("sessions durable")
            .entry(id.to_string())
            .or_insert((record.runs.len(), record.run_end()));
        self.changed.notify_one();
        Slot {
            shelf: Arc::clone(self),
            id: id.to_string(),
            owner: owner.to_string(),
        }
    }

    /// Forgets session `id` (it ended).
    pub fn remove(&self, id: &str) {
        let mut pending = self.pending.lock().expect("sessions file");
        if pending.records.remove(id).is_some() {
            pending.dirty = true;
        }
        drop(pending);
        self.durable.lock().expect("sessions durable").remove(id);
        self.changed.notify_one();
    }

    /// Writes the newest records, over and over, for as long as the process runs.
    fn write_loop(&self) {
        let mut last_write: Option<std::time::Instant> = None;
        loop {
            let (records, waiting) = {
                let mut pending = self.pending.lock().expect("sessions file");
                // A change someone waits for is written at once; saves ahead, at most
                // every MIN_INTERVAL.
                loop {
                    let due = last_write
                        .map_or(Duration::ZERO, |t| MIN_INTERVAL.saturating_sub(t.elapsed()));
                    if pending.dirty && (!pending.waiting.is_empty() || due.is_zero()) {
                        break;
                    }
                    pending = if pending.dirty {
                        self.changed
                            .wait_timeout(pending, due)
                            .expect("sessions file")
                            .0
                    } else {
                        self.changed.wait(pending).expect("sessions file")
                    };
                }
                pending.dirty = false;
                (
                    pending.records.clone(),
                    std::mem::take(&mut pending.waiting),
                )
            };
            let file = File {
                format: FORMAT.into(),
                sessions: records
                    .iter()
                    .map(|(id, kept)| Entry {
                        id: id.clone(),
                        owner: kept.owner.clone(),
                        record: kept.record.clone(),
                    })
                    .collect(),
            };
            let bytes = serde_json::to_vec(&file).expect("serializable");
            let result = write_atomically(&self.path, &bytes)
                .map_err(|e| format!("cannot save the sessions to {}: {e}", self.path.display()));
            match &result {
                Ok(()) => {
                    let mut durable = self.durable.lock().expect("sessions durable");
                    let pending = self.pending.lock().expect("sessions file");
                    for (id, kept) in &records {
                        // A session removed meanwhile stays removed.
                        if pending.records.contains_key(id) {
                            durable.insert(id.clone(), (kept.runs, kept.end));
                        }
                    }
                }
                Err(e) => log::error!("{e}"),
            }
            for done in waiting {
                let _ = done.send(result.clone());
            }
            last_write = Some(std::time::Instant::now());
        }
    }
}

/// One session's place in the sessions file.
pub struct Slot {
    shelf: Arc<Shelf>,
    id: String,
    owner: String,
}

impl Durable for Slot {
    fn save(&self, record: ClockRecord, done: Option<Done>) {
        let kept = Kept::new(&self.owner, &record);
        let mut pending = self.shelf.pending.lock().expect("sessions file");
        let Some(entry) = pending.records.get_mut(&self.id) else {
            // Removed: the session has ended.
            drop(pending);
            if let Some(done) = done {
                let _ = done.send(Err("this session has ended".into()));
            }
            return;
        };
        *entry = kept;
        pending.dirty = true;
        pending.waiting.extend(done);
        drop(pending);
        self.shelf.changed.notify_one();
    }

    fn durable_end(&self, runs: usize) -> Option<i64> {
        let durable = self.shelf.durable.lock().expect("sessions durable");
        let &(n, end) = durable.get(&self.id)?;
        (n == runs).then_some(end)
    }
}
