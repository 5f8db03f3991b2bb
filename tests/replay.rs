//! Batch replay through the real binary: windows, tiling, the dataset's end, loop and shift,
//! crash safety under SIGKILL, and every bad input.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use caspers_replay::dataset::Dataset;
use caspers_replay::dataset::generate::{GenerateOptions, generate};
use caspers_replay::events::expand_event;
use caspers_replay::timeline::Timeline;

const BIN: &str = env!("CARGO_BIN_EXE_caspers-replay");

/// A generated dataset of `days` days, made once per test binary.
fn generated(days: u32) -> PathBuf {
    static DIRS: OnceLock<std::sync::Mutex<HashMap<u32, PathBuf>>> = OnceLock::new();
    let mut dirs = DIRS.get_or_init(Default::default).lock().unwrap();
    dirs.entry(days)
        .or_insert_with(|| {
            let dir = common::scratch_dir(&format!("replay_dataset_{days}d"));
            let opts = GenerateOptions {
                days,
                seed: 99,
                ..GenerateOptions::default()
            };
            generate(&opts, &dir, |_, _| {}).unwrap();
            dir
        })
        .clone()
}

struct Replay {
    dataset: PathBuf,
    checkpoint: PathBuf,
    out: PathBuf,
}

impl Replay {
    fn new(name: &str, dataset: PathBuf) -> Replay {
        let dir = common::scratch_dir(name);
        Replay {
            dataset,
            checkpoint: dir.join("state/checkpoint.json"),
            out: dir.join("out"),
        }
    }

    fn command(&self, now: &str, extra: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("replay")
            .arg("--dataset")
            .arg(&self.dataset)
            .arg("--checkpoint")
            .arg(&self.checkpoint)
            .arg("--out")
            .arg(&self.out)
            .args(["--now", now])
            .args(extra);
        cmd
    }

    fn run(&self, now: &str, extra: &[&str]) -> Output {
        self.command(now, extra).output().unwrap()
    }

    fn ok(&self, now: &str, extra: &[&str]) -> String {
        let out = self.run(now, extra);
        assert!(
            out.status.success(),
            "replay at {now} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The output files in window order (their names sort by window).
    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Every line of every output file, in window order.
    fn lines(&self) -> Vec<String> {
        self.files()
            .iter()
            .flat_map(|f| {
                let text = std::fs::read_to_string(f).unwrap();
                text.lines().map(str::to_string).collect::<Vec<_>>()
            })
            .collect()
    }

    fn checkpoint(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&self.checkpoint).unwrap()).unwrap()
    }
}

/// What one uninterrupted replay emits for simulation time [a, b): the reference that
/// any schedule of runs must add up to.
fn expected(dataset: &Path, a: i64, b: i64, looping: bool, shift: i64) -> Vec<String> {
    let ds = Dataset::open(dataset).unwrap();
    let timeline = Timeline::new(&ds, looping);
    let mut buf = Vec::new();
    let mut lines = Vec::new();
    timeline.for_each_event(&ds, a, b, shift, |pos, event_shift| {
        buf.clear();
        expand_event(&ds.events, pos, event_shift, &mut buf);
        lines.push(String::from_utf8(buf.clone()).unwrap());
    });
    lines
}

fn unix(text: &str) -> i64 {
    caspers_replay::time::parse_rfc3339(text).unwrap()
}

const DAY0: i64 = 1_704_067_200; // 2024-01-01, day zero of every dataset here

#[test]
fn seed_fixture_runs_split_exactly_as_the_seed() {
    let fixtures = common::fixtures_dir();
    let dataset = common::scratch_dir("replay_fixture_ds");
    std::fs::copy(
        fixtures.join("events_1day.parquet"),
        dataset.join("events.parquet"),
    )
    .unwrap();
    let r = Replay::new("replay_fixture", dataset);
    let opts = ["--start-day", "0", "--speed", "60"];
    for (i, now) in [
        "2026-11-24T18:00:00Z",
        "2026-11-24T18:05:00Z",
        "2026-11-24T18:10:00Z",
    ]
    .iter()
    .enumerate()
    {
        r.ok(now, &opts);
        let files = r.files();
        assert_eq!(files.len(), i + 1, "one file per run");
        let ours = std::fs::read_to_string(&files[i]).unwrap();
        let seed =
            std::fs::read_to_string(fixtures.join(format!("seed_output_1day/run{}.jsonl", i + 1)))
                .unwrap();
        assert_eq!(ours.lines().count(), seed.lines().count(), "run {}", i + 1);
        for (a, b) in ours.lines().zip(seed.lines()) {
            common::assert_same_event(a, b);
        }
    }
    let names: Vec<String> = r
        .files()
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "events_20240101T000000Z_20240101T180000Z.json",
            "events_20240101T180000Z_20240101T230000Z.json",
            "events_20240101T230000Z_20240102T003509Z.json", // held at the last event
        ]
    );
}

#[test]
fn first_and_later_windows_follow_the_pinned_clock() {
    let r = Replay::new("replay_windows", generated(3));
    let out = r.ok(
        "2026-11-24T06:30:15Z",
        &["--start-day", "1", "--speed", "60"],
    );
    assert!(
        out.starts_with("window 2024-01-01T00:00:00Z .. 2024-01-02T06:30:15Z: "),
        "{out}"
    );
    let cp = r.checkpoint();
    assert_eq!(cp["window_end"], DAY0 + 86_400 + 6 * 3600 + 30 * 60 + 15);
    assert_eq!(cp["wall_clock_utc"], "2026-11-24T06:30:15Z");
    assert_eq!(cp["runs"], 1);
    assert!(cp["pending"].is_null());

    // 10.5 s later at 60x: 630 simulated seconds.
    let out = r.ok(
        "2026-11-24T06:30:25Z",
        &["--start-day", "1", "--speed", "63"],
    );
    assert!(
        out.starts_with("window 2024-01-02T06:30:15Z .. 2024-01-02T06:40:45Z: "),
        "{out}"
    );
    // The speed applies to the time since the last run only: a change causes no jump.
    let out = r.ok(
        "2026-11-24T06:30:35Z",
        &["--start-day", "1", "--speed", "1"],
    );
    assert!(
        out.starts_with("window 2024-01-02T06:40:45Z .. 2024-01-02T06:40:55Z: "),
        "{out}"
    );
    // The same instant again: nothing is due, and the checkpoint stays as it is.
    let before = std::fs::read(&r.checkpoint).unwrap();
    let out = r.ok("2026-11-24T06:30:35Z", &["--start-day", "1"]);
    assert!(
        out.contains("0 events") && out.contains("nothing to emit"),
        "{out}"
    );
    assert_eq!(std::fs::read(&r.checkpoint).unwrap(), before);
}

#[test]
fn irregular_schedules_tile_time_exactly() {
    let dataset = generated(3);
    let r = Replay::new("replay_tiling", dataset.clone());
    let opts = ["--start-day", "0", "--speed", "997.3"];
    r.ok("2026-11-24T01:00:00Z", &opts);
    // Gaps of 0.4 s to 40 s, speeds changing: fractions of a simulated second carry over.
    let mut now = unix("2026-11-24T01:00:00Z") as f64;
    let mut step = 0.4;
    for i in 0..40 {
        now += step;
        step = (step * 1.7) % 40.0 + 0.4;
        let speed = if i % 3 == 0 { "997.3" } else { "123.25" };
        let text = caspers_replay::time::format_rfc3339(now as i64);
        r.ok(&text, &["--start-day", "0", "--speed", speed]);
    }
    let end = r.checkpoint()["window_end"].as_i64().unwrap();
    assert!(
        end > DAY0 + 3600 + 10_000,
        "the schedule moved time on ({end})"
    );
    let lines = r.lines();
    let want = expected(&dataset, DAY0, end, false, 0);
    assert_eq!(lines.len(), want.len());
    assert!(
        lines == want,
        "the runs' union differs from one run over the same span"
    );
    // Ids are unique: nothing twice.
    let ids: std::collections::HashSet<&str> = lines.iter().map(|l| &l[13..49]).collect();
    assert_eq!(ids.len(), lines.len());
}

#[test]
fn the_end_of_the_dataset_loses_no_event_then_says_so() {
    let dataset = generated(3);
    let ds_end = Dataset::open(&dataset).unwrap().end();
    assert!(
        ds_end > DAY0 + 3 * 86_400,
        "late deliveries run past the last day"
    );
    let r = Replay::new("replay_end", dataset.clone());
    r.ok("2026-11-24T20:00:00Z", &["--start-day", "2"]);
    let out = r.ok(
        "2026-11-24T23:00:00Z",
        &["--start-day", "2", "--speed", "3600"],
    );
    assert!(
        out.contains(&caspers_replay::time::format_rfc3339(ds_end)),
        "{out}"
    );
    assert_eq!(r.lines(), expected(&dataset, DAY0, ds_end, false, 0));
    let before = std::fs::read(&r.checkpoint).unwrap();
    let out = r.ok(
        "2026-11-25T23:00:00Z",
        &["--start-day", "2", "--speed", "3600"],
    );
    assert!(
        out.contains("the dataset's end") && out.contains("nothing to emit"),
        "{out}"
    );
    assert_eq!(std::fs::read(&r.checkpoint).unwrap(), before);
}

#[test]
fn looping_replays_with_shifted_time_and_suffixed_orders() {
    let dataset = generated(3);
    let r = Replay::new("replay_loop", dataset.clone());
    let opts = ["--start-day", "2", "--loop", "--speed", "3600"];
    r.ok("2026-11-24T20:00:00Z", &opts);
    // 30 wall hours at 3600x: far into loop 1 (the dataset spans 4 whole days).
    r.ok("2026-11-24T20:01:00Z", &opts);
    r.ok("2026-11-24T20:02:00Z", &opts);
    let end = r.checkpoint()["window_end"].as_i64().unwrap();
    assert_eq!(end, DAY0 + 2 * 86_400 + 20 * 3600 + 2 * 60 * 3600);
    let lines = r.lines();
    assert_eq!(lines, expected(&dataset, DAY0, end, true, 0));
    let looped: Vec<&String> = lines.iter().filter(|l| l.contains("-L1\"")).collect();
    assert!(!looped.is_empty());
    // Loop 1 starts 3 days (the days of orders) after loop 0, while loop 0's last
    // deliveries still run: the two are merged in time order.
    assert!(
        looped[0].contains("\"ts\":\"2024-01-04 00:"),
        "{}",
        looped[0]
    );
    let first_looped = lines.iter().position(|l| l.contains("-L1\"")).unwrap();
    assert!(
        lines[first_looped..].iter().any(|l| !l.contains("-L1\"")),
        "overlap merged"
    );
}

#[test]
fn shift_to_today_is_fixed_at_the_first_run() {
    let dataset = generated(3);
    let r = Replay::new("replay_shift", dataset.clone());
    let opts = ["--start-day", "1", "--shift-to-today", "--speed", "60"];
    r.ok("2026-11-24T23:59:00Z", &opts);
    let shift = r.checkpoint()["shift_seconds"].as_i64().unwrap();
    assert_eq!(shift, unix("2026-11-24T00:00:00Z") - (DAY0 + 86_400));
    let first = r.lines();
    let last_ts = first.last().unwrap()[..].split("\"ts\":\"").nth(1).unwrap()[..19].to_string();
    assert!(
        last_ts.starts_with("2026-11-24 23:5"),
        "the catch-up ends now: {last_ts}"
    );
    // Past midnight the shift stays: 2 wall minutes at 60x go on from 23:59 to 01:59, with
    // no jump of a day at midnight.
    r.ok("2026-11-25T00:01:00Z", &opts);
    let all = r.lines();
    let after: Vec<&String> = all[first.len()..].iter().collect();
    assert!(!after.is_empty());
    let ts = |l: &str| l.split("\"ts\":\"").nth(1).unwrap()[..19].to_string();
    assert!(
        after
            .iter()
            .all(|l| ts(l).as_str() >= "2026-11-24 23:59:00"),
        "{}",
        after[0]
    );
    assert!(
        after.iter().all(|l| ts(l).as_str() < "2026-11-25 01:59:00"),
        "{}",
        after[0]
    );
    assert!(after.iter().any(|l| ts(l).starts_with("2026-11-25 01:")));
    let end = r.checkpoint()["window_end"].as_i64().unwrap();
    assert_eq!(all, expected(&dataset, DAY0, end, false, shift));
}

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let dataset = generated(20);
    let opts = ["--start-day", "19", "--speed", "30"];
    let nows = ["2026-11-24T12:00:00Z", "2026-11-24T12:10:00Z"];
    let end = DAY0 + 19 * 86_400 + 12 * 3600 + 10 * 60 * 30;
    let want = expected(&dataset, DAY0, end, false, 0);
    // How long an undisturbed catch-up takes here (the index cache built), to spread the
    // kills over it.
    let probe = Replay::new("replay_crash_probe", dataset.clone());
    probe.ok(nows[0], &["--start-day", "19", "--reset"]);
    let t = Instant::now();
    probe.ok(nows[0], &["--start-day", "19", "--reset"]);
    let full = t.elapsed();

    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 10_000) as f64 / 10_000.0
    };
    let (mut kills, mut rounds) = (0, 0);
    for round in 0..100 {
        if kills >= 24 {
            break;
        }
        rounds += 1;
        // A fresh catch-up, killed at random moments (up to three times in a row, so that
        // recoveries are themselves interrupted), then a later run, then the check.
        let r = Replay::new("replay_crash", dataset.clone());
        for _ in 0..1 + round % 3 {
            let mut child = r.command(nows[0], &opts).spawn().unwrap();
            std::thread::sleep(full.mul_f64(0.9 * random()));
            if child.try_wait().unwrap().is_none() {
                kills += 1;
            }
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
        r.ok(nows[0], &opts);
        r.ok(nows[1], &opts);
        let got = r.lines();
        assert_eq!(
            got.len(),
            want.len(),
            "round {round}: every event exactly once"
        );
        assert!(got == want, "round {round}: the events differ");
        assert_eq!(r.checkpoint()["window_end"], end);
        // No temporary file is left visible to a reader.
        assert!(r.files().iter().all(|f| {
            let name = f.file_name().unwrap().to_string_lossy();
            name.starts_with("events_") && name.ends_with(".json")
        }));
    }
    assert!(
        kills >= 20,
        "only {kills} runs were killed mid-way in {rounds} rounds"
    );
}

#[test]
fn a_run_stopped_between_its_steps_is_completed_not_repeated() {
    let dataset = generated(3);
    let r = Replay::new("replay_pending", dataset.clone());
    let opts = ["--start-day", "1"];
    r.ok("2026-11-24T08:00:00Z", &opts);
    let want = r.lines();
    let done = r.checkpoint();
    let file = r.files().pop().unwrap();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    // The checkpoint as the run left it just before publishing its file.
    let mut pending = done.clone();
    pending["runs"] = 0.into();
    pending["window_end"] = DAY0.into();
    pending["pending"] = serde_json::json!({
        "window_start": DAY0,
        "window_end": done["window_end"],
        "wall_clock": done["wall_clock"],
        "file": name,
    });
    pending.as_object_mut().unwrap().remove("crc32c");
    let pending_text =
        caspers_replay::checksum::seal_json(&serde_json::to_vec_pretty(&pending).unwrap());

    // Stopped after the rename: the file is kept as it is.
    std::fs::write(&r.checkpoint, &pending_text).unwrap();
    let out = r.run("2026-11-24T08:00:00Z", &opts);
    assert!(out.status.success());
    assert!(stderr(&out).contains("left pending"), "{}", stderr(&out));
    assert_eq!(r.lines(), want);
    assert_eq!(r.checkpoint()["window_end"], done["window_end"]);
    assert!(r.checkpoint()["pending"].is_null());

    // Stopped before the rename (only a temporary file): the same file is written again.
    std::fs::write(&r.checkpoint, &pending_text).unwrap();
    std::fs::rename(&file, r.out.join(format!(".caspers-tmp-{name}"))).unwrap();
    r.ok("2026-11-24T08:00:00Z", &opts);
    assert_eq!(r.lines(), want);
    assert_eq!(r.files(), [file]);
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_input_is_a_one_line_error_and_leaves_the_checkpoint_alone() {
    let dataset = generated(3);
    let r = Replay::new("replay_bad", dataset.clone());
    r.ok("2026-11-24T10:00:00Z", &["--start-day", "1"]);
    let cp_before = std::fs::read(&r.checkpoint).unwrap();
    let files_before = r.files();
    let unchanged = |r: &Replay| {
        assert_eq!(std::fs::read(&r.checkpoint).unwrap(), cp_before);
        assert_eq!(r.files(), files_before);
    };

    let missing = Replay {
        dataset: "/nonexistent/ds".into(),
        checkpoint: r.checkpoint.clone(),
        out: r.out.clone(),
    };
    let out = missing.run("2026-11-24T11:00:00Z", &["--start-day", "1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no such dataset directory"),
        "{}",
        stderr(&out)
    );
    unchanged(&r);

    let out = r.run("2026-11-24T11:00:00Z", &["--start-day", "3"]);
    assert!(
        stderr(&out).contains("--start-day 3 is outside the dataset, which has days 0 to 2"),
        "{}",
        stderr(&out)
    );
    let out = r.run("2026-11-24T11:00:00Z", &["--start-day=-1"]);
    assert!(!out.status.success());
    unchanged(&r);

    for speed in ["0", "-5", "NaN", "inf", "fast"] {
        let arg = format!("--speed={speed}");
        let out = r.run("2026-11-24T11:00:00Z", &["--start-day", "1", &arg]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("is not a speed"),
            "{speed}: {}",
            stderr(&out)
        );
    }
    unchanged(&r);

    // Other fixed options: refused, saying what differs and how to start over.
    let out = r.run("2026-11-24T11:00:00Z", &["--start-day", "2", "--loop"]);
    let msg = stderr(&out);
    assert_eq!(msg.lines().count(), 1, "{msg}");
    assert!(
        msg.contains("--start-day was 1, now 2") && msg.contains("--loop was off, now on"),
        "{msg}"
    );
    assert!(msg.contains("--reset"), "{msg}");
    unchanged(&r);

    // Another dataset.
    let other = Replay {
        dataset: generated(2),
        checkpoint: r.checkpoint.clone(),
        out: r.out.clone(),
    };
    let out = other.run("2026-11-24T11:00:00Z", &["--start-day", "1"]);
    assert!(
        stderr(&out).contains("belongs to another dataset"),
        "{}",
        stderr(&out)
    );
    unchanged(&r);

    // An output directory that cannot be made (a file stands in its way).
    let blocked = Replay {
        dataset: dataset.clone(),
        checkpoint: r.checkpoint.clone(),
        out: r.checkpoint.clone(),
    };
    let out = blocked.run("2026-11-24T11:00:00Z", &["--start-day", "1"]);
    assert!(
        stderr(&out).contains("cannot use the directory"),
        "{}",
        stderr(&out)
    );
    unchanged(&r);

    // A full disk: the file size limit makes writes fail part-way (SIGXFSZ ignored, so the
    // write returns an error instead of killing the process).
    let cmd = r.command(
        "2026-11-25T10:00:00Z",
        &["--start-day", "1", "--speed", "60"],
    );
    let program = "trap '' XFSZ; ulimit -f 64; exec \"$0\" \"$@\"";
    let args: Vec<_> = std::iter::once(cmd.get_program().to_owned())
        .chain(cmd.get_args().map(|a| a.to_owned()))
        .collect();
    let out = Command::new("sh")
        .arg("-c")
        .arg(program)
        .args(args)
        .output()
        .unwrap();
    let msg = stderr(&out);
    assert!(!out.status.success());
    assert!(
        msg.starts_with("error: output ") && msg.lines().count() == 1,
        "{msg}"
    );
    unchanged(&r);
    drop(cmd);

    // A checkpoint that does not parse is reported and never overwritten.
    std::fs::write(&r.checkpoint, b"{ not json").unwrap();
    let out = r.run("2026-11-24T11:00:00Z", &["--start-day", "1"]);
    let msg = stderr(&out);
    assert!(
        msg.contains("not a caspers-replay checkpoint") && msg.contains("--reset"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&r.checkpoint).unwrap(), b"{ not json");

    // --reset starts over.
    let out = r.ok("2026-11-24T11:00:00Z", &["--start-day", "1", "--reset"]);
    assert!(
        out.starts_with("window 2024-01-01T00:00:00Z .. 2024-01-02T11:00:00Z"),
        "{out}"
    );
}

#[test]
fn catch_up_output_reads_as_json_lines_with_a_summary() {
    let r = Replay::new("replay_summary", generated(3));
    let t = Instant::now();
    let out = r.ok("2026-11-24T12:00:00Z", &["--start-day", "2"]);
    assert!(t.elapsed() < Duration::from_secs(60));
    // window, events, files, events/s
    assert!(
        out.contains(" events in 1 file (") && out.contains(" events/s)"),
        "{out}"
    );
    for line in r.lines() {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(v["body"].is_string());
    }
}

#[test]
fn output_files_read_as_json_lines_in_pandas() {
    let r = Replay::new("replay_pandas", generated(3));
    r.ok(
        "2026-11-24T12:00:00Z",
        &["--start-day", "1", "--speed", "600"],
    );
    r.ok(
        "2026-11-24T12:05:00Z",
        &["--start-day", "1", "--speed", "600"],
    );
    let events = r.lines().len();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/read_output.py");
    let out = Command::new(common::python())
        .arg(script)
        .arg(&r.out)
        .arg(events.to_string())
        .output()
        .expect(
            "python3 with pandas must be installed (bash scripts/test.sh installs it into .venv)",
        );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_second_run_on_the_same_checkpoint_waits_its_turn() {
    let r = Replay::new("replay_lock", generated(3));
    r.ok("2026-11-24T10:00:00Z", &["--start-day", "1"]);
    let before = std::fs::read(&r.checkpoint).unwrap();
    // Another run holds the lock (this process stands in for it).
    let lock = std::fs::File::open(r.checkpoint.with_extension("json.lock")).unwrap();
    lock.lock().unwrap();
    let out = r.run("2026-11-24T11:00:00Z", &["--start-day", "1"]);
    let msg = stderr(&out);
    assert!(!out.status.success());
    assert!(
        msg.contains("another replay is running with this checkpoint"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&r.checkpoint).unwrap(), before);
    lock.unlock().unwrap();
    r.ok("2026-11-24T11:00:00Z", &["--start-day", "1"]);
}
