//! The `caspers-replay` command: a thin layer of argument parsing over the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

use caspers_replay::dataset::{self, Dataset, generate::GenerateOptions};
use caspers_replay::progress::Progress;
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

fn inspect(dir: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let ds = Dataset::open(dir)?;
    println!(
        "{}: {} events, {} .. {} ({} days), loaded in {:.2} s",
        dir.display(),
        ds.events.len(),
        time::format_ts(ds.start()),
        time::format_ts(ds.end() - 1),
        ds.span_days(),
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
