//! The clock's state file: one process's clock, saved so that a restart continues it.
//!
//! A writer thread replaces the file atomically (temporary file, fsync, rename, fsync of
//! the directory) with the newest record asked for, so the clock task never waits on the
//! disk for a tick; a presenter's change is saved before it is answered. The file is held
//! with `<state>.lock`, so two servers never share one.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::ClockRecord;
use super::actor::Durable;
use crate::atomic_file::{LockError, lock_beside, write_atomically};
use crate::dataset::Dataset;

/// Where a dataset's live clock is kept when `--state` is not given.
pub fn default_path(dataset_dir: &Path) -> PathBuf {
    dataset_dir.join(".caspers-state").join("live-clock.json")
}

struct Save {
    record: ClockRecord,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// An open state file, owned by this process while it runs.
pub struct StateFile {
    pub path: PathBuf,
    saves: mpsc::Sender<Save>,
    /// (runs, end of the last run) of the newest record on disk.
    durable: Arc<Mutex<(usize, i64)>>,
    _lock: std::fs::File,
}

impl StateFile {
    /// Takes `path` for this process and reads the clock saved there (none with `fresh`,
    /// or when there is no file yet). A file that cannot be used is refused with why, and
    /// left as it is.
    pub fn open(
        path: &Path,
        ds: &Dataset,
        looping: bool,
        fresh: bool,
    ) -> Result<(StateFile, Option<ClockRecord>), String> {
        let shown = path.display();
        let lock = lock_beside(path).map_err(|e| match e {
            LockError::Busy => format!(
                "the clock state file {shown} is in use by another server; give this one its own --state FILE"
            ),
            LockError::Io(e) => format!("the clock state file {shown}: {e} (choose another with --state FILE)"),
        })?;
        let saved = if fresh {
            None
        } else {
            match std::fs::read(path) {
                Ok(bytes) => Some(ClockRecord::from_bytes(&bytes, &ds.identity(), Some(looping)).map_err(|why| {
                    format!(
                        "the clock state file {shown} cannot be used: {why}. It was left as it is: \
                         remove it, start with --fresh (the clock starts over), or use another --state FILE"
                    )
                })?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(format!("cannot read the clock state file {shown}: {e}")),
            }
        };
        let durable = Arc::new(Mutex::new(
            saved
                .as_ref()
                .map_or((0, i64::MIN), |r| (r.runs.len(), r.run_end())),
        ));
        let (saves, rx) = mpsc::channel::<Save>();
        let target = path.to_path_buf();
        let done_mark = Arc::clone(&durable);
        std::thread::Builder::new()
            .name("clock-state".into())
            .spawn(move || write_loop(&target, &rx, &done_mark))
            .map_err(|e| format!("cannot start the state writer: {e}"))?;
        Ok((
            StateFile {
                path: path.to_path_buf(),
                saves,
                durable,
                _lock: lock,
            },
            saved,
        ))
    }
}

impl Durable for StateFile {
    fn save(&self, record: ClockRecord, done: Option<oneshot::Sender<Result<(), String>>>) {
        let _ = self.saves.send(Save { record, done });
    }

    fn durable_end(&self, runs: usize) -> Option<i64> {
        let (n, end) = *self.durable.lock().expect("state lock");
        (n == runs).then_some(end)
    }
}

/// Writes the newest record asked for, over and over, until the clock is gone.
fn write_loop(path: &Path, rx: &mpsc::Receiver<Save>, durable: &Mutex<(usize, i64)>) {
    while let Ok(first) = rx.recv() {
        let mut latest = first.record;
        let mut waiting: Vec<_> = first.done.into_iter().collect();
        while let Ok(more) = rx.try_recv() {
            latest = more.record;
            waiting.extend(more.done);
        }
        let result = write_atomically(path, &latest.to_bytes())
            .map_err(|e| format!("cannot save the clock state to {}: {e}", path.display()));
        match &result {
            Ok(()) => *durable.lock().expect("state lock") = (latest.runs.len(), latest.run_end()),
            Err(e) => log::error!("{e}"),
        }
        for done in waiting {
            let _ = done.send(result.clone());
        }
    }
}
