//! The `caspers-replay` command: a thin layer of argument parsing over the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

use caspers_replay::dataset::{self, Dataset, generate::GenerateOptions};
use caspers_replay::progress::Progress;
use caspers_replay::replay::{self, ReplayOptions};
use caspers_replay::time;

/// Replays the Casper's Kitchens canonical dataset: batch files for Spark, a live feed for
/// browsers.
#[derive(Parser)]
#[command(name = "caspers-replay", version, about, long_about = None)]
struct Cli {
    /// With no command: make the default dataset if it is missing, then show it.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a realistic canonical dataset (events.parquet, locations.parquet).
    Generate {
        /// Directory to write into (created if missing).
        #[arg(long, default_value = dataset::DEFAULT_DIR)]
        out: PathBuf,
        /// Days of orders.
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// Random seed: the same seed writes the same dataset.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Emit the events that became due since the last run as a JSON lines file, then exit
    /// (run it from a scheduler; the first run catches up on history).
    Replay {
        /// Dataset directory.
        #[arg(long, default_value = dataset::DEFAULT_DIR)]
        dataset: PathBuf,
        /// Checkpoint file (created by the first run).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Output directory for the JSON lines files.
        #[arg(long)]
        out: PathBuf,
        /// Day of the dataset (0-based) the first run catches up to.
        #[arg(long, default_value_t = 20)]
        start_day: i64,
        /// Simulated seconds per wall-clock second, for runs after the first.
        #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
        speed: f64,
        /// At the dataset's end, start again (loop k shifts ts by k spans, order_id gets -Lk).
        #[arg(long = "loop")]
        looping: bool,
        /// Rebase ts so the start day is the first run's date (fixed in the checkpoint).
        #[arg(long)]
        shift_to_today: bool,
        /// Pin the wall clock (RFC 3339), for tests and reproducible runs.
        #[arg(long, value_parser = parse_now)]
        now: Option<i64>,
        /// Ignore the existing checkpoint and start over (the output directory keeps its files).
        #[arg(long)]
        reset: bool,
    },
    /// Load and check a dataset, then print what it holds.
    Inspect {
        /// Dataset directory.
        #[arg(long, default_value = dataset::DEFAULT_DIR)]
        dataset: PathBuf,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp(None)
        .format_target(false)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Generate { out, days, seed }) => generate(&out, days, seed),
        Some(Command::Inspect { dataset }) => inspect(&dataset),
        Some(Command::Replay {
            dataset,
            checkpoint,
            out,
            start_day,
            speed,
            looping,
            shift_to_today,
            now,
            reset,
        }) => {
            let opts = ReplayOptions {
                checkpoint,
                out_dir: out,
                start_day,
                speed,
                looping,
                shift_to_today,
                now: now.map_or_else(time::now_unix_f64, |t| t as f64),
                reset,
            };
            replay(&dataset, &opts)
        }
        None => {
            let dir = PathBuf::from(dataset::DEFAULT_DIR);
            if !dir.join(dataset::EVENTS_FILE).is_file() {
                log::info!(
                    "no dataset at {}: generating the default one",
                    dir.display()
                );
                generate(&dir, 90, 42)?;
            }
            inspect(&dir)
        }
    }
}

fn generate(out: &Path, days: u32, seed: u64) -> anyhow::Result<()> {
    let opts = GenerateOptions {
        days,
        seed,
        ..GenerateOptions::default()
    };
    let started = Instant::now();
    let bar = Progress::new(u64::from(days), "generating days");
    let summary = dataset::generate::generate(&opts, out, |done, _| bar.set(u64::from(done)))?;
    bar.finish();
    println!(
        "wrote {} orders, {} events over {days} days to {} in {:.1} s",
        summary.orders,
        summary.events,
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn parse_speed(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "'{text}' is not a speed (a number above 0, e.g. 1, 60, 3600)"
        )),
    }
}

fn parse_now(text: &str) -> Result<i64, String> {
    time::parse_rfc3339(text)
}

fn replay(dataset: &Path, opts: &ReplayOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    let ds = Dataset::open(dataset)?;
    log::debug!(
        "loaded {} events in {:.2} s",
        ds.events.len(),
        started.elapsed().as_secs_f64()
    );
    let mut bar: Option<Progress> = None;
    let report = replay::run(&ds, opts, &mut |done, total| {
        // Only a large catch-up earns a bar.
        if total >= 200_000 {
            bar.get_or_insert_with(|| Progress::new(total, "writing events"))
                .set(done);
        }
    })?;
    if let Some(bar) = bar {
        bar.finish();
    }
    if let Some((a, b)) = report.recovered {
        log::warn!(
            "completed the window {} .. {} that an interrupted run left pending",
            time::format_rfc3339(a),
            time::format_rfc3339(b)
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    let (a, b) = report.window;
    let files: Vec<String> = report
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    println!(
        "window {} .. {}: {} events in {} file{}{} in {:.2} s ({:.0} events/s){}",
        time::format_rfc3339(a),
        time::format_rfc3339(b),
        report.events,
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        if files.is_empty() {
            String::new()
        } else {
            format!(" ({})", files.join(", "))
        },
        seconds,
        report.events as f64 / seconds.max(1e-9),
        report.note.map(|n| format!("; {n}")).unwrap_or_default()
    );
    Ok(())
}

fn inspect(dir: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let ds = Dataset::open(dir)?;
    println!(
        "{}: {} events, {} .. {} ({} days of orders), loaded in {:.2} s",
        dir.display(),
        ds.events.len(),
        time::format_ts(ds.start()),
        time::format_ts(ds.end() - 1),
        ds.days(),
        started.elapsed().as_secs_f64()
    );
    for k in &ds.kitchens {
        println!(
            "  kitchen {} {} ({}, {})",
            k.location_id, k.name, k.lat, k.lon
        );
    }
    Ok(())
}
