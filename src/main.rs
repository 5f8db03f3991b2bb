//! The `caspers-replay` command: a thin layer of argument parsing over the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

use caspers_replay::clock::shared::NatsServer;
use caspers_replay::clock::start::ClockOptions;
use caspers_replay::dataset::{self, Dataset, generate::GenerateOptions};
use caspers_replay::http::{CorsOrigins, check_origin};
use caspers_replay::progress::Progress;
use caspers_replay::replay::{self, ReplayOptions};
use caspers_replay::serve::{ClockOrigin, ServeOptions, Server};
use caspers_replay::time;

/// Replays the Casper's Kitchens canonical dataset: batch files for Spark, a live feed for
/// browsers.
#[derive(Parser)]
#[command(name = "caspers-replay", version, about, long_about = None)]
struct Cli {
    /// With no command: `serve` with its defaults (the default dataset is generated first
    /// when it is missing).
    #[command(subcommand)]
    command: Option<Command>,
}

// Parsed once at start: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve the live feed: SSE and WebSocket streams, the clock's control, the map page.
    Serve(ServeArgs),
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
        #[command(flatten)]
        window: WindowRule,
        /// Ignore the existing checkpoint and start over (the output directory keeps its files).
        #[arg(long)]
        reset: bool,
    },
    /// For the Spark data source (python/caspers_replay): print a stream's next offset as
    /// JSON, the end of the window after --start (without it, a new stream's initial one).
    SparkOffset {
        /// Dataset directory.
        #[arg(long, default_value = dataset::DEFAULT_DIR)]
        dataset: PathBuf,
        /// The offset to plan from, as this command printed it.
        #[arg(long, value_name = "JSON")]
        start: Option<String>,
        #[command(flatten)]
        window: WindowRule,
        /// Print the dataset's bounds instead: {"start": .., "end": ..} (Unix seconds), its
        /// days and its tag.
        #[arg(long, conflicts_with = "start")]
        bounds: bool,
    },
    /// For the Spark data source: write the events of simulation time [--from, --to) as an
    /// Arrow IPC stream (the seed's schema) to standard output.
    SparkRead {
        /// Dataset directory.
        #[arg(long, default_value = dataset::DEFAULT_DIR)]
        dataset: PathBuf,
        /// Simulation time (Unix seconds) from, inclusive.
        #[arg(long, allow_negative_numbers = true)]
        from: i64,
        /// Simulation time (Unix seconds) to, exclusive.
        #[arg(long, allow_negative_numbers = true)]
        to: i64,
        /// Seconds added to every ts.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        shift_seconds: i64,
        /// Past the dataset's end, read its loops.
        #[arg(long = "loop")]
        looping: bool,
        /// Only these locations (comma-separated ids).
        #[arg(long, value_name = "IDS")]
        location_id: Option<String>,
    },
    /// Load and check a dataset, then print what it holds.
    Inspect {
        /// Dataset directory.
        #[arg(long, default_value = dataset::DEFAULT_DIR)]
        dataset: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Dataset directory (the default one is generated when missing).
    #[arg(long, default_value = dataset::DEFAULT_DIR, env = "CASPERS_DATASET")]
    dataset: PathBuf,
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080", env = "CASPERS_BIND")]
    bind: String,
    /// Day of the dataset (0-based) to start at, at the current UTC time of day [default:
    /// 20]. Over a saved clock, a day other than the one it was started with seeks there.
    #[arg(long, env = "CASPERS_START_DAY")]
    start_day: Option<i64>,
    /// Simulated seconds per wall-clock second at start [default: 60]. Over a saved clock, a
    /// speed other than the one it was started with is applied.
    #[arg(long, value_parser = parse_speed, env = "CASPERS_SPEED")]
    speed: Option<f64>,
    /// At the dataset's end, start again instead of stopping.
    #[arg(long = "loop", env = "CASPERS_LOOP")]
    looping: bool,
    /// Start with the clock paused (over a saved clock that was not started paused: pause it).
    #[arg(long, env = "CASPERS_PAUSED")]
    paused: bool,
    /// The presenter's token for changing the clock (generated and printed when not given;
    /// surrounding blanks are not part of it; an empty one is refused). Prefer
    /// --control-token-file or the environment: a flag shows in `ps`.
    #[arg(long, env = "CASPERS_CONTROL_TOKEN", hide_env_values = true)]
    control_token: Option<String>,
    /// Print the presenter's URL with its token at start even when the token came from a
    /// file or the environment (by default only a generated or a flag's token is printed).
    #[arg(long, env = "CASPERS_PRINT_PRESENTER_URL")]
    print_presenter_url: bool,
    /// Read the presenter's token from this file (e.g. a secret an orchestrator mounts);
    /// its first line, without surrounding blanks.
    #[arg(
        long,
        value_name = "FILE",
        env = "CASPERS_CONTROL_TOKEN_FILE",
        conflicts_with = "control_token"
    )]
    control_token_file: Option<PathBuf>,
    /// Streams served at once; more get 503. Lowered at start, and said so, when the
    /// open-files limit cannot hold them.
    #[arg(long, default_value_t = 10_000, env = "CASPERS_MAX_CLIENTS")]
    max_clients: usize,
    /// Streams served at once to one client address; more get 429 (0: no limit). Behind a
    /// proxy, give it with --trusted-proxy, or every client counts as the proxy's address.
    #[arg(long, default_value_t = 1000, env = "CASPERS_MAX_CLIENTS_PER_IP")]
    max_clients_per_ip: usize,
    /// A proxy's address whose X-Forwarded-For header names the client (for
    /// --max-clients-per-ip); repeat for more.
    #[arg(
        long = "trusted-proxy",
        value_name = "IP",
        env = "CASPERS_TRUSTED_PROXY",
        value_delimiter = ','
    )]
    trusted_proxy: Vec<std::net::IpAddr>,
    /// Milliseconds between clock ticks.
    #[arg(long, default_value_t = 100, env = "CASPERS_TICK_MS")]
    tick_ms: u64,
    /// KiB a slow client may have queued before it is skipped ahead.
    #[arg(long, default_value_t = 4096, env = "CASPERS_QUEUE_KIB")]
    queue_kib: usize,
    /// MiB all clients together may have queued; past it the clients furthest behind are
    /// skipped ahead (default: a 24th of the machine's memory, at least 64).
    #[arg(long, env = "CASPERS_QUEUE_BUDGET_MIB")]
    queue_budget_mib: Option<usize>,
    /// HTTP worker threads (default: one per core; at 10,000 subscribers more workers
    /// than cores made the p99 delay grow from 0.45 s to 3.7 s, see docs/benchmarks.md).
    #[arg(long, env = "CASPERS_WORKERS")]
    workers: Option<usize>,
    /// File that keeps the clock across restarts (default: DATASET/.caspers-state/live-clock.json).
    /// A restart continues the clock where it was, with the presenter's speed and pause.
    #[arg(long, value_name = "FILE", env = "CASPERS_STATE")]
    state: Option<PathBuf>,
    /// Start a new clock (from --start-day, --speed, --paused) instead of the saved one.
    #[arg(long, env = "CASPERS_FRESH")]
    fresh: bool,
    /// Share the clock with other replicas through NATS JetStream at this URL
    /// (e.g. nats://127.0.0.1:4222; nats-server must run with -js). Credentials go in the
    /// URL (nats://USER:PASSWORD@host:4222 or nats://TOKEN@host:4222, percent-encoded) and
    /// are never printed; prefer the environment to a flag, which shows in `ps`.
    #[arg(long, value_name = "URL", env = "CASPERS_NATS", hide_env_values = true)]
    nats: Option<String>,
    /// A NATS credentials file (user JWT and NKey seed) to authenticate with.
    #[arg(
        long,
        value_name = "FILE",
        env = "CASPERS_NATS_CREDS",
        requires = "nats"
    )]
    nats_creds: Option<PathBuf>,
    /// Also publish every event to JetStream as SUBJECT_PREFIX.<location_id>.<event_type>
    /// (needs --nats).
    #[arg(long, value_name = "SUBJECT_PREFIX", env = "CASPERS_PUBLISH_NATS")]
    publish_nats: Option<String>,
    /// Never compress WebSocket messages, even for clients that offer permessage-deflate
    /// (by default a group's messages are compressed once and shared by its members).
    #[arg(long, env = "CASPERS_NO_WS_DEFLATE")]
    no_ws_deflate: bool,
    /// An online tile layer for the map page, e.g.
    /// 'https://tile.openstreetmap.org/{z}/{x}/{y}.png' (off by default: the page then loads
    /// nothing from elsewhere).
    #[arg(long, value_name = "URL_TEMPLATE", value_parser = parse_tiles, env = "CASPERS_TILES")]
    tiles: Option<String>,
    /// The attribution the tile layer asks for, shown on the map.
    #[arg(
        long,
        default_value = "map tiles © OpenStreetMap contributors",
        env = "CASPERS_TILES_ATTRIBUTION"
    )]
    tiles_attribution: String,
    /// A web page's origin (e.g. http://localhost:5173) that may change the clock from the
    /// browser; repeat for more. Reading (the streams, GET /v1/clock, kitchens, map) is open
    /// to every origin. When given, WebSockets are accepted only from these origins and the
    /// server's own (other Origin headers get 403).
    #[arg(long = "cors-origin", value_name = "ORIGIN", value_parser = check_origin, env = "CASPERS_CORS_ORIGIN", value_delimiter = ',')]
    cors_origin: Vec<String>,
    /// Close a stream whose client does not take, within this many seconds, what was
    /// queued for it (it can come back with its last position and get what it missed).
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0, value_parser = parse_seconds, env = "CASPERS_SEND_TIMEOUT")]
    send_timeout: f64,
    /// Close a WebSocket whose client does not answer a ping (sent every 15 s) within
    /// this many seconds (close code 1002).
    #[arg(long, value_name = "SECONDS", default_value_t = 45.0, value_parser = parse_seconds, env = "CASPERS_WS_PONG_TIMEOUT")]
    ws_pong_timeout: f64,
    /// Replay sessions (POST /v1/sessions: a clock of one's own) alive at once; more get 429.
    #[arg(long, default_value_t = 1000, env = "CASPERS_MAX_SESSIONS")]
    max_sessions: usize,
    /// A session with no subscriber and no request for this many minutes ends.
    #[arg(long, value_name = "MINUTES", default_value_t = 30.0, value_parser = parse_minutes, env = "CASPERS_SESSION_IDLE_MINUTES")]
    session_idle_minutes: f64,
    /// Creating a session needs this token (Authorization: Bearer TOKEN); without it anyone
    /// who reaches the server may. Prefer --session-token-file or the environment.
    #[arg(long, env = "CASPERS_SESSION_TOKEN", hide_env_values = true)]
    session_token: Option<String>,
    /// Read the token that creating a session needs from this file (its first line).
    #[arg(
        long,
        value_name = "FILE",
        env = "CASPERS_SESSION_TOKEN_FILE",
        conflicts_with = "session_token"
    )]
    session_token_file: Option<PathBuf>,
}

/// What shapes the windows of `replay` and of the Spark source (docs/batch-replay.md, the batch replay).
#[derive(clap::Args, Clone)]
struct WindowRule {
    /// Day of the dataset (0-based) the first run catches up to.
    #[arg(long, default_value_t = 20)]
    start_day: i64,
    /// Simulated seconds per wall-clock second, for runs after the first.
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    speed: f64,
    /// At the dataset's end, start again (loop k shifts ts by k spans, order_id gets -Lk).
    #[arg(long = "loop")]
    looping: bool,
    /// Rebase ts so the start day is the first run's date (fixed at the first run).
    #[arg(long)]
    shift_to_today: bool,
    /// Pin the wall clock (RFC 3339), for tests and reproducible runs.
    #[arg(long, value_parser = parse_now)]
    now: Option<i64>,
}

impl WindowRule {
    fn now(&self) -> f64 {
        self.now.map_or_else(time::now_unix_f64, |t| t as f64)
    }
}

fn main() -> ExitCode {
    // A client's malformed request is answered (400, 408, ...), not logged: one line per
    // request would let any client flood the log. RUST_LOG brings them back.
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,actix_http=off,actix_server=warn"),
    )
    .format_timestamp(None)
    .format_target(false)
    .init();
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Whether the presenter's token came from the environment (it is not printed then).
    let token_from_env = matches
        .subcommand_matches("serve")
        .and_then(|m| m.value_source("control_token"))
        == Some(clap::parser::ValueSource::EnvVariable);
    match run(cli, token_from_env) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, token_from_env: bool) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Generate { out, days, seed }) => generate(&out, days, seed),
        Some(Command::Inspect { dataset }) => inspect(&dataset),
        Some(Command::Replay {
            dataset,
            checkpoint,
            out,
            window,
            reset,
        }) => {
            let opts = ReplayOptions {
                checkpoint,
                out_dir: out,
                start_day: window.start_day,
                speed: window.speed,
                looping: window.looping,
                shift_to_today: window.shift_to_today,
                now: window.now(),
                reset,
            };
            replay(&dataset, &opts)
        }
        Some(Command::SparkOffset {
            dataset,
            start,
            window,
            bounds,
        }) => {
            let ds = Dataset::open(&dataset)?;
            if bounds {
                println!(
                    "{}",
                    serde_json::json!({
                        "start": ds.start(),
                        "end": ds.end(),
                        "days": ds.days(),
                        "dataset": ds.fingerprint.chars().take(8).collect::<String>(),
                    })
                );
                return Ok(());
            }
            let opts = replay::spark::SourceOptions {
                start_day: window.start_day,
                speed: window.speed,
                looping: window.looping,
                shift_to_today: window.shift_to_today,
            };
            let now = window.now();
            let offset = match start {
                None => replay::spark::initial_offset(&ds, &opts, now),
                Some(text) => {
                    let start = serde_json::from_str(&text).map_err(|e| {
                        anyhow::anyhow!("--start is not an offset of this source: {e}")
                    })?;
                    replay::spark::latest_offset(&ds, &opts, &start, now)
                }
            }
            .map_err(anyhow::Error::msg)?;
            println!("{}", serde_json::to_string(&offset)?);
            Ok(())
        }
        Some(Command::SparkRead {
            dataset,
            from,
            to,
            shift_seconds,
            looping,
            location_id,
        }) => {
            let ds = Dataset::open(&dataset)?;
            let filter = caspers_replay::events::Filter::parse(location_id.as_deref(), None)
                .map_err(anyhow::Error::msg)?;
            let timeline = caspers_replay::timeline::Timeline::new(&ds, looping);
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            caspers_replay::replay::arrow::write_arrow_stream(
                &ds,
                &timeline,
                &[(from, to)],
                shift_seconds,
                filter,
                &mut out,
            )?;
            std::io::Write::flush(&mut out)?;
            Ok(())
        }
        Some(Command::Serve(args)) => serve(args, token_from_env),
        None => serve(ServeArgs::defaults(), false),
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

#[derive(Parser)]
#[command(no_binary_name = true)]
struct DefaultServe {
    #[command(flatten)]
    args: ServeArgs,
}

impl ServeArgs {
    /// The defaults, as `serve` with no options.
    fn defaults() -> ServeArgs {
        DefaultServe::parse_from(std::iter::empty::<String>()).args
    }
}

fn serve(args: ServeArgs, token_from_env: bool) -> anyhow::Result<()> {
    let dir = &args.dataset;
    if dir == Path::new(dataset::DEFAULT_DIR) && !dir.join(dataset::EVENTS_FILE).is_file() {
        log::info!(
            "no dataset at {}: generating the default one",
            dir.display()
        );
        generate(dir, 90, 42)?;
    }
    let started = Instant::now();
    let ds = Dataset::open(dir)?;
    if let Some(speed) = args.speed
        && speed > caspers_replay::clock::actor::MAX_SPEED
    {
        anyhow::bail!(
            "--speed {speed} is above the fastest the clock takes ({})",
            caspers_replay::clock::actor::MAX_SPEED
        );
    }
    let (token, token_origin) = presenter_token(&args, token_from_env)?;
    let opts = ServeOptions {
        bind: args.bind.clone(),
        clock: ClockOptions {
            start_day: args.start_day,
            speed: args.speed,
            paused: args.paused,
        },
        looping: args.looping,
        control_token: token.clone(),
        max_clients: args.max_clients,
        max_clients_per_ip: args.max_clients_per_ip,
        trusted_proxies: args.trusted_proxy.clone(),
        tick: std::time::Duration::from_millis(args.tick_ms.max(1)),
        queue_limit: args.queue_kib.max(1) * 1024,
        queue_budget: args
            .queue_budget_mib
            .unwrap_or_else(default_queue_budget_mib)
            .max(1)
            << 20,
        workers: args
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        state_file: args
            .state
            .clone()
            .unwrap_or_else(|| caspers_replay::clock::state_file::default_path(dir)),
        fresh: args.fresh,
        nats: args
            .nats
            .as_deref()
            .map(|url| NatsServer::parse(url, args.nats_creds.as_deref()))
            .transpose()
            .map_err(anyhow::Error::msg)?,
        publish_nats: args.publish_nats.clone(),
        ws_deflate: !args.no_ws_deflate,
        tiles: args
            .tiles
            .clone()
            .map(|t| (t, args.tiles_attribution.clone())),
        cors_origins: CorsOrigins::new(&args.cors_origin).map_err(anyhow::Error::msg)?,
        send_timeout: std::time::Duration::from_secs_f64(args.send_timeout),
        pong_timeout: std::time::Duration::from_secs_f64(args.ws_pong_timeout),
        max_sessions: args.max_sessions,
        session_idle: std::time::Duration::from_secs_f64(args.session_idle_minutes * 60.0),
        session_token: session_token(&args)?,
    };
    let events = ds.events.len();
    actix_web::rt::System::new().block_on(async move {
        let server = Server::start(ds, &opts).await.map_err(anyhow::Error::msg)?;
        let addr = server.addrs[0];
        let mut clock = match (&server.origin, &opts.nats) {
            (ClockOrigin::Restored, _) => format!(
                "continuing the clock saved in {} (--fresh starts over)",
                opts.state_file.display()
            ),
            (ClockOrigin::Joined, Some(nats)) => {
                format!("joining the replicas' clock in NATS at {}", nats.url)
            }
            _ => {
                let o = opts.clock.effective();
                format!("from day {} at {}x", o.start_day, o.speed)
            }
        };
        for note in &server.notes {
            clock.push_str("; ");
            clock.push_str(note);
        }
        println!(
            "serving {events} events (loaded in {:.2} s) on http://{addr}/ {clock}",
            started.elapsed().as_secs_f64(),
        );
        match token_origin {
            Some(origin) if !args.print_presenter_url => println!(
                "presenter: http://{addr}/?token=… (the token from {origin}; \
                 --print-presenter-url prints it here)"
            ),
            _ => println!("presenter: http://{addr}/?token={token}"),
        }
        println!("streams: http://{addr}/v1/events (SSE), ws://{addr}/v1/ws; clock: http://{addr}/v1/clock");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        server.run_until_signal().await?;
        Ok(())
    })
}

/// A 24th of the machine's memory in MiB (1 GiB on 24 GB), at least 64.
fn default_queue_budget_mib() -> usize {
    let kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        })
        .unwrap_or(8 << 20);
    (kib / 1024 / 24).max(64)
}

fn parse_speed(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "'{text}' is not a speed (a number above 0, e.g. 1, 60, 3600)"
        )),
    }
}

/// The presenter's token, trimmed (the server trims what a request presents the same
/// way), and where it came from when that was a file or the environment: such a token is
/// a secret kept elsewhere, so it is not printed. An empty token is refused: it would let
/// anyone change the clock.
fn presenter_token(args: &ServeArgs, from_env: bool) -> anyhow::Result<(String, Option<String>)> {
    if let Some(file) = &args.control_token_file {
        return Ok((
            read_token_file(file, "--control-token-file")?,
            Some(file.display().to_string()),
        ));
    }
    let Some(given) = &args.control_token else {
        return Ok((caspers_replay::secret::random_token(), None));
    };
    let token = given.trim();
    if token.is_empty() {
        if from_env {
            anyhow::bail!(
                "CASPERS_CONTROL_TOKEN is empty: set it to the presenter's token, or unset it \
                 to have one generated"
            );
        }
        anyhow::bail!(
            "--control-token is empty: give the presenter's token, or leave the option out \
             to have one generated"
        );
    }
    let origin = from_env.then(|| "CASPERS_CONTROL_TOKEN".to_string());
    Ok((token.to_string(), origin))
}

/// The token that creating a session needs, if any; an empty one is refused (it would
/// look like a lock and open to anyone).
fn session_token(args: &ServeArgs) -> anyhow::Result<Option<String>> {
    if let Some(file) = &args.session_token_file {
        return Ok(Some(read_token_file(file, "--session-token-file")?));
    }
    match args.session_token.as_deref().map(str::trim) {
        Some("") => anyhow::bail!(
            "--session-token is empty: give the token that creating a session needs, or leave \
             the option out to let anyone create sessions"
        ),
        token => Ok(token.map(str::to_string)),
    }
}

/// A token from a file given with `flag`: its first line, trimmed.
fn read_token_file(file: &Path, flag: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        anyhow::anyhow!(
            "{flag} {}: cannot read it ({e}); give a file that holds the token",
            file.display()
        )
    })?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        anyhow::bail!(
            "{flag} {}: the file is empty; write the token on its first line",
            file.display()
        );
    }
    Ok(token.to_string())
}

fn parse_minutes(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 7.0 * 24.0 * 60.0 => Ok(v),
        _ => Err(format!(
            "'{text}' is not a number of minutes (above 0, at most a week: e.g. 30, 0.5)"
        )),
    }
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.1..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "'{text}' is not a timeout (seconds from 0.1 to 86400, e.g. 30)"
        )),
    }
}

fn parse_tiles(text: &str) -> Result<String, String> {
    let ok = ["{z}", "{x}", "{y}"].iter().all(|p| text.contains(p))
        && (text.starts_with("http://") || text.starts_with("https://"));
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!(
            "'{text}' is not a tile URL template (expected http(s)://host/{{z}}/{{x}}/{{y}}.png)"
        ))
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
