//! The live service wired together: the hub, the clock (new, from its state file, or the
//! replicas' in NATS) and the writer threads, then the HTTP layer over them; and the
//! shutdown that ends them. `caspers-replay serve` is this and its command line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::actor::{self, ClockSetup, Store};
use crate::clock::shared::{self, SharedClock};
use crate::clock::shared_sessions::SharedSessions;
use crate::clock::shelf::{self, Shelf};
use crate::clock::start::ClockOptions;
use crate::clock::state_file::StateFile;
use crate::dataset::Dataset;
use crate::fanout::hub::Hub;
use crate::fanout::jetstream::Publisher;
use crate::fanout::writers::{Deadlines, Writers};
use crate::http::{self, CorsOrigins, HttpOptions};
use crate::sessions::{Keeper, SessionSettings, Sessions};
use crate::timeline::{Emitter, Timeline};

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub bind: String,
    /// What the command line says of the clock (start day, speed, paused).
    pub clock: ClockOptions,
    pub looping: bool,
    /// The presenter's token (needed to change the clock).
    pub control_token: String,
    /// Streams at most (lowered at start if the open-files limit cannot hold them).
    pub max_clients: usize,
    /// Streams at most from one client address (0: no limit).
    pub max_clients_per_ip: usize,
    /// Proxies whose `X-Forwarded-For` names the client's address.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub tick: Duration,
    /// Bytes a subscriber's queue may hold before it is skipped ahead.
    pub queue_limit: usize,
    /// Bytes all subscribers' queues may hold together.
    pub queue_budget: usize,
    /// HTTP worker threads.
    pub workers: usize,
    /// The clock's state file (one process; unused with `nats`).
    pub state_file: std::path::PathBuf,
    /// Ignore a saved clock and start over.
    pub fresh: bool,
    /// The NATS server to share the clock with the other replicas through.
    pub nats: Option<shared::NatsServer>,
    /// Publish every event to JetStream under this subject prefix.
    pub publish_nats: Option<String>,
    /// Compress WebSocket messages for clients that offer permessage-deflate.
    pub ws_deflate: bool,
    /// An online tile layer for the map page (URL template) and its attribution.
    pub tiles: Option<(String, String)>,
    /// Other origins whose pages may change the clock.
    pub cors_origins: CorsOrigins,
    /// A stream whose client does not take what was queued for it within this long is
    /// closed.
    pub send_timeout: Duration,
    /// A WebSocket whose client does not answer a ping within this long is closed.
    pub pong_timeout: Duration,
    /// Replay sessions at most, at once.
    pub max_sessions: usize,
    /// A session with no subscriber and no request for this long ends.
    pub session_idle: Duration,
    /// When set, creating a session needs this token.
    pub session_token: Option<String>,
}

/// How the clock was set up, for the start-up message.
#[derive(Clone, Debug, PartialEq)]
pub enum ClockOrigin {
    New,
    /// Continued from the state file.
    Restored,
    /// Joined the replicas' clock in NATS.
    Joined,
}

/// A running server.
pub struct Server {
    pub addrs: Vec<SocketAddr>,
    pub origin: ClockOrigin,
    /// What became of the command line's clock options over a saved or shared clock.
    pub notes: Vec<String>,
    server: actix_web::dev::Server,
    hub: Arc<Hub>,
    sessions: Arc<Sessions>,
}

impl Server {
    /// Binds and starts serving `ds`; the clock starts ticking (a new one, the one the state
    /// file holds, or the replicas' one in NATS). Call from within an actix system
    /// (`actix_web::rt::System`).
    pub async fn start(ds: Dataset, opts: &ServeOptions) -> Result<Server, String> {
        let ds = Arc::new(ds);
        let timeline = Timeline::new(&ds, opts.looping);
        let hub = Arc::new(Hub::new(
            Arc::clone(&ds),
            timeline,
            opts.queue_limit,
            opts.queue_budget,
        ));
        let now = crate::time::now_unix_f64();
        // A start day out of range matters only if a new clock is made from it.
        let new_clock = opts.clock.new_clock(&ds, opts.looping, now);
        let client = match &opts.nats {
            Some(server) => Some(server.connect().await?),
            None => None,
        };
        let mut notes = Vec::new();
        let mut changes = Vec::new();
        let (store, record, revision, origin) = match (&opts.nats, &client) {
            (Some(nats), Some(client)) => {
                let url = &nats.url;
                let new_clock = new_clock?;
                let (clock, record, revision) =
                    SharedClock::open(client.clone(), url, &ds, opts.looping, new_clock.clone())
                        .await?;
                let origin = if record == new_clock {
                    ClockOrigin::New
                } else {
                    notes = opts.clock.ignored_by_a_joining_replica(&record);
                    ClockOrigin::Joined
                };
                (Store::Shared(Arc::new(clock)), record, revision, origin)
            }
            _ => {
                let (file, saved) =
                    StateFile::open(&opts.state_file, &ds, opts.looping, opts.fresh)?;
                match saved {
                    Some(mut record) => {
                        (changes, notes) = opts.clock.changes_to(&mut record, &ds, now)?;
                        (
                            Store::File(Box::new(file)),
                            record,
                            0,
                            ClockOrigin::Restored,
                        )
                    }
                    None => (Store::File(Box::new(file)), new_clock?, 0, ClockOrigin::New),
                }
            }
        };
        let publisher = match (&opts.publish_nats, &client) {
            (Some(prefix), Some(client)) => {
                Some(Publisher::start(client.clone(), prefix, Arc::clone(&ds), timeline).await?)
            }
            (Some(_), None) => return Err("--publish-nats needs --nats URL".into()),
            _ => None,
        };
        let mut emitters: Vec<Arc<dyn Emitter>> = vec![Arc::clone(&hub) as Arc<dyn Emitter>];
        emitters.extend(publisher.map(|p| Arc::new(p) as Arc<dyn Emitter>));
        let clock = actor::spawn(
            emitters,
            timeline,
            ClockSetup {
                record,
                revision,
                restored: origin == ClockOrigin::Restored,
                store,
                tick: opts.tick,
                save_ahead: opts.tick,
            },
        );
        if !changes.is_empty() {
            // Applied as a presenter's change is: saved, then announced.
            clock
                .apply(changes)
                .await
                .map_err(|e| format!("cannot apply the command line to the saved clock: {e:?}"))?;
        }
        let writers = Writers::start(
            opts.workers.max(1),
            Deadlines {
                send: opts.send_timeout,
                pong: opts.pong_timeout,
            },
            &hub,
        )
        .map_err(|e| format!("cannot start the stream writers: {e}"))?;
        let defaults = opts.clock.effective();
        // Sessions outlive the process in a file beside the state file, or are shared by
        // the replicas in NATS.
        let keeper = match (&opts.nats, &client) {
            (Some(nats), Some(client)) => {
                Keeper::Nats(SharedSessions::open(client.clone(), &nats.url, &ds).await?)
            }
            _ => {
                let (shelf, saved) =
                    Shelf::open(&shelf::path_beside(&opts.state_file), &ds, opts.fresh)?;
                Keeper::File(shelf, saved)
            }
        };
        let sessions = Arc::new(Sessions::new(
            SessionSettings {
                max_sessions: opts.max_sessions,
                idle: opts.session_idle,
                token: opts.session_token.clone(),
                tick: opts.tick,
                start_day: defaults.start_day,
                speed: defaults.speed,
                looping: opts.looping,
            },
            Arc::clone(&hub),
            keeper,
        ));
        Sessions::run(&sessions);
        let listening = http::listen(
            Arc::clone(&hub),
            clock,
            Arc::clone(&sessions),
            writers,
            &HttpOptions {
                bind: opts.bind.clone(),
                workers: opts.workers,
                control_token: opts.control_token.clone(),
                max_clients: opts.max_clients,
                max_clients_per_ip: opts.max_clients_per_ip,
                trusted_proxies: opts.trusted_proxies.clone(),
                ws_deflate: opts.ws_deflate,
                tiles: opts.tiles.clone(),
                cors_origins: opts.cors_origins.clone(),
            },
        )?;
        notes.extend(listening.note);
        Ok(Server {
            addrs: listening.addrs,
            server: listening.server,
            origin,
            notes,
            hub,
            sessions,
        })
    }

    /// Serves until SIGINT or SIGTERM, then closes the listeners (a client that reconnects
    /// finds the port closed and tries again later, rather than wait on a dying process),
    /// sends every stream its close, and stops once they are written.
    pub async fn run_until_signal(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let hub = Arc::clone(&self.hub);
        let sessions = Arc::clone(&self.sessions);
        actix_web::rt::spawn(async move {
            wait_for_signal().await;
            log::info!("shutting down: closing the listeners and every stream");
            // The clock's state is saved at every change and tick (a crash loses nothing),
            // so a shutdown held up past this (a slow disk, a stuck worker) ends the process
            // rather than hang a supervisor's stop.
            std::thread::spawn(|| {
                std::thread::sleep(Duration::from_secs(8));
                log::warn!("shutdown took over 8 s: exiting now");
                std::process::exit(0);
            });
            // The listeners close as this is sent (the rest of actix's stop is not waited
            // for: it can hold a finished stream's connection for its whole timeout).
            drop(handle.stop(true));
            hub.close_all("server shutting down");
            sessions.close_all("server shutting down");
            // Each stream ends once its close is written; a client that does not take it
            // soon is not waited for, so that the process is gone within a second. On a
            // thread of its own: the runtime's threads may be busy stopping.
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_millis(750);
                while (hub.counts() != (0, 0) || sessions.subscribers() != (0, 0))
                    && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                log::info!("stopped");
                std::process::exit(0);
            });
        });
        self.server.await
    }
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
