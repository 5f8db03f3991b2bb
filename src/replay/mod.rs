//! Batch replay ("availableNow" with a checkpoint), as docs/batch-replay.md describes it.
//!
//! Each run emits the events that became due since the last run into one JSON lines file,
//! then exits. The first run catches up from the dataset's start to the start day at the
//! current UTC time of day; later runs advance by the wall time since the last run times the
//! speed. Windows are half-open and chained through the checkpoint, so they tile simulation
//! time with no gap and no overlap whatever the schedule.

pub mod arrow;
pub mod checkpoint;
pub mod files;
pub mod spark;

use std::path::{Path, PathBuf};

use checkpoint::{Checkpoint, DatasetIdentity, FORMAT, Pending};

use crate::atomic_file::{AtomicFile, remove_stale_temps};
use crate::dataset::{Dataset, DatasetError};
use crate::replay::files::write_json_lines;
use crate::time::{DAY, format_rfc3339, seconds_of_day};
use crate::timeline::Timeline;

/// What a run is asked to do.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub checkpoint: PathBuf,
    pub out_dir: PathBuf,
    /// Day of the dataset the first run catches up to (0-based).
    pub start_day: i64,
    /// Simulated seconds per wall-clock second, for runs after the first.
    pub speed: f64,
    pub looping: bool,
    pub shift_to_today: bool,
    /// The wall clock, Unix seconds (pinned for tests and reproducible runs).
    pub now: f64,
    /// Ignore an existing checkpoint and start over with a first run.
    pub reset: bool,
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunReport {
    /// The simulation window emitted, [start, end).
    pub window: (i64, i64),
    pub events: u64,
    pub files: Vec<PathBuf>,
    /// A window an interrupted run had left pending and this run completed.
    pub recovered: Option<(i64, i64)>,
    /// Why nothing was emitted, when nothing was.
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("{0}")]
    Options(String),
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("output {path}: {message}")]
    Output { path: PathBuf, message: String },
}

/// Runs one batch replay over `ds`; `progress` hears (events written, events in window).
pub fn run(
    ds: &Dataset,
    opts: &ReplayOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RunReport, ReplayError> {
    if !opts.speed.is_finite() || opts.speed <= 0.0 {
        return Err(ReplayError::Options(format!(
            "--speed must be a number above 0, not {}",
            opts.speed
        )));
    }
    let timeline = Timeline::new(ds, opts.looping);
    let days = ds.days();
    if !(0..days).contains(&opts.start_day) {
        return Err(ReplayError::Options(format!(
            "--start-day {} is outside the dataset, which has days 0 to {}",
            opts.start_day,
            days - 1
        )));
    }
    let out_err = |path: &Path, e: &dyn std::fmt::Display| ReplayError::Output {
        path: path.into(),
        message: e.to_string(),
    };
    let cp_err = |message: String| ReplayError::Checkpoint {
        path: opts.checkpoint.clone(),
        message,
    };
    // One run at a time per checkpoint: a scheduler may start the next run before a long
    // catch-up ends, and two runs would emit the same window twice.
    let _lock = lock_checkpoint(&opts.checkpoint).map_err(cp_err)?;
    std::fs::create_dir_all(&opts.out_dir)
        .and_then(|()| remove_stale_temps(&opts.out_dir))
        .map_err(|e| out_err(&opts.out_dir, &format!("cannot use the directory: {e}")))?;

    let identity = ds.identity();
    let existing = if opts.reset {
        None
    } else {
        Checkpoint::read(&opts.checkpoint)
            .map_err(|m| cp_err(format!("{m}; fix or remove it, or start over with --reset")))?
    };
    let mut report = RunReport::default();
    let mut cp = match existing {
        Some(cp) => {
            check_fixed(&cp, &identity, opts).map_err(cp_err)?;
            cp
        }
        None => first_checkpoint(&timeline, identity, opts),
    };
    // An interrupted run: publish its window exactly as it was planned.
    if let Some(pending) = cp.pending.clone() {
        let published = pending
            .file
            .as_ref()
            .is_none_or(|f| opts.out_dir.join(f).is_file());
        if !published {
            let (file, _) = write_window(ds, &timeline, &cp, &pending, opts, progress)?;
            if let Some(file) = file {
                file.commit().map_err(|e| out_err(&opts.out_dir, &e))?;
            }
        }
        commit(&mut cp, &pending, &opts.checkpoint).map_err(|e| cp_err(e.to_string()))?;
        report.recovered = Some((pending.window_start, pending.window_end));
    }

    // This run's window.
    let first_run = cp.runs == 0;
    let start = cp.window_end;
    let (end, wall_clock) = plan_window(
        &timeline,
        first_run,
        (cp.window_end, cp.wall_clock),
        opts.start_day,
        opts.speed,
        opts.now,
    );
    report.window = (start, end.max(start));
    if end <= start && !first_run {
        report.note = Some(match timeline.end() {
            Some(ds_end) if start >= ds_end => format!(
                "the dataset's end ({}) was reached: nothing to emit (--loop replays it again)",
                format_rfc3339(ds_end)
            ),
            _ => "no simulated second has passed since the last run: nothing to emit".into(),
        });
        return Ok(report);
    }

    let pending = Pending {
        window_start: start,
        window_end: end.max(start),
        wall_clock,
        file: None,
    };
    let (file, events) = write_window(ds, &timeline, &cp, &pending, opts, progress)?;
    let pending = Pending {
        file: file.as_ref().map(|f| file_name(f.path())),
        ..pending
    };
    // Record the intent first: a crash from here on is completed by the next run.
    cp.pending = Some(pending.clone());
    cp.write(&opts.checkpoint)
        .map_err(|e| cp_err(format!("cannot write: {e}")))?;
    if let Some(file) = file {
        let path = file.path().to_path_buf();
        file.commit().map_err(|e| out_err(&path, &e))?;
        report.files.push(path);
    }
    commit(&mut cp, &pending, &opts.checkpoint)
        .map_err(|e| cp_err(format!("cannot write: {e}")))?;
    report.events = events;
    if events == 0 {
        report.note = Some("no event falls in this window".into());
    }
    Ok(report)
}

/// The end of the window after `prev` (its end and the wall-clock instant it stood there),
/// and the wall-clock instant the new end corresponds to (docs/batch-replay.md). The one
/// rule for the batch replay and the Spark source alike: the first run catches up to the start
/// day at `now`'s UTC time of day; later runs advance by the wall time since times `speed`;
/// both stop at the dataset's end unless looping.
pub fn plan_window(
    timeline: &Timeline,
    first_run: bool,
    prev: (i64, f64),
    start_day: i64,
    speed: f64,
    now: f64,
) -> (i64, f64) {
    let (raw_end, wall_clock) = if first_run {
        let end = timeline.day_start(start_day) + seconds_of_day(now.floor() as i64);
        (end, now)
    } else {
        next_window_end(prev.0, prev.1, now, speed)
    };
    let end = timeline.clamp(raw_end);
    // Held at the dataset's end, the clock restarts from now should it ever resume.
    (end, if end < raw_end { now } else { wall_clock })
}

/// Seconds added to every `ts` with `--shift-to-today`: the start day lands on `now`'s
/// UTC date. Fixed at the first run.
pub fn shift_to_today_seconds(timeline: &Timeline, start_day: i64, now: f64) -> i64 {
    (now.floor() as i64).div_euclid(DAY) * DAY - timeline.day_start(start_day)
}

/// The end of a later run's window and the wall-clock instant it corresponds to. Only whole
/// simulated seconds are emitted; the wall time of the remaining fraction carries over to
/// the next run instead of being lost, so no schedule drifts.
pub fn next_window_end(prev_end: i64, prev_wall: f64, now: f64, speed: f64) -> (i64, f64) {
    let advance = ((now - prev_wall) * speed).floor();
    if advance < 1.0 {
        return (prev_end, prev_wall);
    }
    let advance = advance.min(1e15) as i64;
    (prev_end + advance, prev_wall + advance as f64 / speed)
}

/// The checkpoint of a replay that has not run yet.
fn first_checkpoint(
    timeline: &Timeline,
    dataset: DatasetIdentity,
    opts: &ReplayOptions,
) -> Checkpoint {
    // Rebase so that the start day lands on the first run's date (UTC), fixed from now on.
    let shift_seconds = if opts.shift_to_today {
        shift_to_today_seconds(timeline, opts.start_day, opts.now)
    } else {
        0
    };
    Checkpoint {
        format: FORMAT.into(),
        dataset,
        start_day: opts.start_day,
        looping: opts.looping,
        shift_to_today: opts.shift_to_today,
        shift_seconds,
        window_end: timeline.day_zero,
        window_end_utc: String::new(),
        wall_clock: opts.now,
        wall_clock_utc: String::new(),
        runs: 0,
        pending: None,
    }
}

/// Refuses a checkpoint made for another dataset or other fixed options, saying what differs.
fn check_fixed(
    cp: &Checkpoint,
    identity: &DatasetIdentity,
    opts: &ReplayOptions,
) -> Result<(), String> {
    let mut differs = Vec::new();
    if cp.dataset != *identity {
        differs.push(format!(
            "it belongs to another dataset ({} events, fingerprint {}; this one has {} events, {})",
            cp.dataset.events, cp.dataset.fingerprint, identity.events, identity.fingerprint
        ));
    }
    if cp.start_day != opts.start_day {
        differs.push(format!(
            "--start-day was {}, now {}",
            cp.start_day, opts.start_day
        ));
    }
    if cp.looping != opts.looping {
        differs.push(format!(
            "--loop was {}, now {}",
            onoff(cp.looping),
            onoff(opts.looping)
        ));
    }
    if cp.shift_to_today != opts.shift_to_today {
        differs.push(format!(
            "--shift-to-today was {}, now {}",
            onoff(cp.shift_to_today),
            onoff(opts.shift_to_today)
        ));
    }
    if differs.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{}; run with the same options, or start over with --reset (the output directory keeps its files)",
        differs.join("; ")
    ))
}

fn onoff(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// Takes the checkpoint's lock file (`<checkpoint>.lock`).
fn lock_checkpoint(checkpoint: &Path) -> Result<std::fs::File, String> {
    crate::atomic_file::lock_beside(checkpoint).map_err(|e| match e {
        crate::atomic_file::LockError::Busy => {
            "another replay is running with this checkpoint; run again when it has finished"
                .to_string()
        }
        crate::atomic_file::LockError::Io(e) => e,
    })
}

/// Marks `pending` done in the checkpoint and writes it.
fn commit(cp: &mut Checkpoint, pending: &Pending, path: &Path) -> std::io::Result<()> {
    cp.window_end = pending.window_end;
    cp.wall_clock = pending.wall_clock;
    cp.runs += 1;
    cp.pending = None;
    cp.write(path)
}

/// The output file of a window: its simulation bounds, e.g.
/// `events_20240101T000000Z_20240121T180000Z.json`.
pub fn window_file_name(start: i64, end: i64) -> String {
    let compact = |t: i64| format_rfc3339(t).replace(['-', ':'], "");
    format!("events_{}_{}.json", compact(start), compact(end))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Writes the window's events, synced but not yet published; `None` when it has none.
fn write_window(
    ds: &Dataset,
    timeline: &Timeline,
    cp: &Checkpoint,
    window: &Pending,
    opts: &ReplayOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(Option<AtomicFile>, u64), ReplayError> {
    let (a, b) = (window.window_start, window.window_end);
    let total = timeline.count(ds, a, b);
    if total == 0 {
        return Ok((None, 0));
    }
    let path = opts
        .out_dir
        .join(window_file_name(window.window_start, window.window_end));
    let out_err = |e: std::io::Error| ReplayError::Output {
        path: path.clone(),
        message: e.to_string(),
    };
    let mut file = AtomicFile::create(&path).map_err(out_err)?;
    write_json_lines(
        ds,
        timeline,
        (a, b),
        cp.shift_seconds,
        file.writer(),
        &mut |written| progress(written, total),
    )
    .map_err(out_err)?;
    file.sync().map_err(out_err)?;
    progress(total, total);
    Ok((Some(file), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_windows_advance_by_whole_seconds_and_carry_the_rest() {
        // 10.5 s at 60x: 630 simulated seconds, all of the wall time used.
        assert_eq!(next_window_end(1000, 0.0, 10.5, 60.0), (1630, 10.5));
        // 1.5 s at 1x: 1 second emitted, the half second carries to the next run.
        assert_eq!(next_window_end(1000, 0.0, 1.5, 1.0), (1001, 1.0));
        assert_eq!(next_window_end(1001, 1.0, 2.0, 1.0), (1002, 2.0));
        // Less than one simulated second, or a clock that went back: nothing moves.
        assert_eq!(next_window_end(1000, 5.0, 5.4, 2.0), (1000, 5.0));
        assert_eq!(next_window_end(1000, 5.0, 4.0, 2.0), (1000, 5.0));
    }

    #[test]
    fn file_names_say_the_window() {
        assert_eq!(
            window_file_name(1_704_067_200, 1_705_860_000),
            "events_20240101T000000Z_20240121T180000Z.json"
        );
    }
}
