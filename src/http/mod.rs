//! The HTTP face of the live feed (actix-web): SSE and WebSocket streams, the clock's
//! control, operations endpoints and the map page, in one process.

mod admission;
mod control;
mod cors;
mod open_files;
pub mod params;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};

use crate::clock::actor::{self, ClockHandle, ClockSetup, Store};
use crate::clock::shared::{self, SharedClock};
use crate::clock::start::ClockOptions;
use crate::clock::state_file::StateFile;
use crate::dataset::Dataset;
use crate::fanout::hub::Hub;
use crate::fanout::jetstream::Publisher;
use crate::fanout::writers::{Deadlines, Writers};
use crate::timeline::Timeline;
use admission::Admission;
pub use cors::{CorsOrigins, check_origin};

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
    /// Other origins whose pages may change the clock (and, when given, the only ones
    /// that may open a WebSocket).
    pub cors_origins: CorsOrigins,
    /// A stream whose client does not take what was queued for it within this long is
    /// closed.
    pub send_timeout: Duration,
    /// A WebSocket whose client does not answer a ping within this long is closed.
    pub pong_timeout: Duration,
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

/// What every handler shares.
pub(crate) struct AppState {
    pub hub: Arc<Hub>,
    pub clock: ClockHandle,
    pub token: String,
    /// The map page's online tile layer (URL template, attribution), if any.
    pub tiles: Option<(String, String)>,
    pub ws_deflate: bool,
    pub cors: CorsOrigins,
    /// The threads that write the streams.
    pub writers: Writers,
    /// The limits on streams in all and per client address.
    pub admission: Arc<Admission>,
    /// Subscriptions being built (catch-ups, snapshots) at once: at most one per core, on
    /// threads of their own, so that resuming clients cannot stall the HTTP workers.
    pub subscribing: tokio::sync::Semaphore,
}

/// A running server.
pub struct Server {
    pub addrs: Vec<SocketAddr>,
    pub origin: ClockOrigin,
    /// What became of the command line's clock options over a saved or shared clock.
    pub notes: Vec<String>,
    server: actix_web::dev::Server,
    hub: Arc<Hub>,
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
                        (Store::File(file), record, 0, ClockOrigin::Restored)
                    }
                    None => (Store::File(file), new_clock?, 0, ClockOrigin::New),
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
        let clock = actor::spawn(
            Arc::clone(&hub) as Arc<dyn actor::Emitter>,
            timeline,
            ClockSetup {
                record,
                revision,
                restored: origin == ClockOrigin::Restored,
                store,
                tick: opts.tick,
                publisher,
            },
        );
        if !changes.is_empty() {
            // Applied as a presenter's change is: saved, then announced.
            clock
                .apply(changes)
                .await
                .map_err(|e| format!("cannot apply the command line to the saved clock: {e:?}"))?;
        }
        let (max_clients, per_worker, fd_note) =
            open_files::fit(opts.max_clients, opts.workers.max(1));
        notes.extend(fd_note);
        let state = web::Data::from(Arc::new(AppState {
            hub: Arc::clone(&hub),
            clock,
            token: opts.control_token.clone(),
            tiles: opts.tiles.clone(),
            ws_deflate: opts.ws_deflate,
            cors: opts.cors_origins.clone(),
            writers: Writers::start(
                opts.workers.max(1),
                Deadlines {
                    send: opts.send_timeout,
                    pong: opts.pong_timeout,
                },
                &hub,
            )
            .map_err(|e| format!("cannot start the stream writers: {e}"))?,
            admission: Arc::new(Admission::new(
                max_clients,
                opts.max_clients_per_ip,
                opts.trusted_proxies.clone(),
            )),
            subscribing: tokio::sync::Semaphore::new(opts.workers.max(1)),
        }));
        let server = HttpServer::new(move || {
            App::new()
                .wrap(state.cors.middleware())
                .app_data(state.clone())
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    let response = params::bad_request(&format!("bad query string: {e}"));
                    actix_web::error::InternalError::from_response(e, response).into()
                }))
                .service(endpoint("/", "GET").route(web::get().to(index)))
                .service(endpoint("/basemap.json", "GET").route(web::get().to(basemap)))
                .service(endpoint("/client/{file}", "GET").route(web::get().to(client_file)))
                .service(endpoint("/asyncapi.yaml", "GET").route(web::get().to(asyncapi)))
                .service(endpoint("/openapi.yaml", "GET").route(web::get().to(openapi)))
                .service(endpoint("/healthz", "GET").route(web::get().to(control::healthz)))
                .service(endpoint("/metrics", "GET").route(web::get().to(control::metrics)))
                .service(
                    endpoint("/v1/clock", "GET, POST")
                        .route(web::get().to(control::get_clock))
                        .route(web::post().to(control::post_clock)),
                )
                .service(endpoint("/v1/kitchens", "GET").route(web::get().to(control::kitchens)))
                .service(endpoint("/v1/map", "GET").route(web::get().to(control::map_config)))
                .service(endpoint("/v1/events", "GET").route(web::get().to(stream::sse)))
                .service(endpoint("/v1/ws", "GET").route(web::get().to(stream::websocket)))
        })
        // Small tick chunks must not wait for the peer's delayed ACK (Nagle). The socket is
        // remembered so that an idle stream can notice its peer leave (stream.rs).
        .on_connect(|conn, data| {
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
                data.insert(stream::PeerSocket(std::os::fd::AsRawFd::as_raw_fd(tcp)));
            }
        })
        .workers(opts.workers.max(1))
        .backlog(4096)
        // Connections past what the open-files limit holds wait in the backlog (actix
        // stops accepting), so the clock's saves and the streams never run out of files.
        .max_connections(per_worker)
        .disable_signals()
        // A client that does not take its close in this long is not waited for.
        .shutdown_timeout(1)
        .bind(&opts.bind)
        .map_err(|e| format!("cannot listen on {}: {e}", opts.bind))?;
        let addrs = server.addrs();
        let server = server.run();
        Ok(Server {
            addrs,
            origin,
            notes,
            server,
            hub,
        })
    }

    /// Serves until SIGINT or SIGTERM, then closes the listeners (a client that reconnects
    /// finds the port closed and tries again later, rather than wait on a dying process),
    /// sends every stream its close, and stops once they are written.
    pub async fn run_until_signal(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let hub = Arc::clone(&self.hub);
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
            // Each stream ends once its close is written; a client that does not take it
            // soon is not waited for, so that the process is gone within a second. On a
            // thread of its own: the runtime's threads may be busy stopping.
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_millis(750);
                while hub.counts() != (0, 0) && Instant::now() < deadline {
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

/// A path the server answers, with `allow`ed methods: any other method gets a 405 that
/// says which ones it takes (not a 404, the path exists).
fn endpoint(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        HttpResponse::MethodNotAllowed()
            .insert_header(("Allow", allow))
            .json(serde_json::json!({ "error": format!("this endpoint answers {allow} only") }))
    }))
}

/// Land and lakes around the kitchens (OpenStreetMap data, see static/BASEMAP-LICENSE.md).
async fn basemap() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "public, max-age=86400"))
        .body(include_str!("../../static/basemap.json"))
}

/// The map page.
async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        // The presenter's URL carries the token: never send it on to another site.
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(include_str!("../../static/index.html"))
}

/// The TypeScript client as built in clients/js: the module (the map page runs on it, and
/// pages of other origins may import it from here), its source map, and its declarations
/// for a TypeScript app that keeps a copy of the module beside them.
const CLIENT_FILES: [(&str, &str, &str); 4] = [
    (
        "caspers-replay.js",
        "text/javascript; charset=utf-8",
        include_str!("../../clients/js/dist/caspers-replay.js"),
    ),
    (
        "caspers-replay.js.map",
        "application/json",
        include_str!("../../clients/js/dist/caspers-replay.js.map"),
    ),
    (
        "caspers-replay.d.ts",
        "text/plain; charset=utf-8",
        include_str!("../../clients/js/dist/caspers-replay.d.ts"),
    ),
    (
        "events.generated.d.ts",
        "text/plain; charset=utf-8",
        include_str!("../../clients/js/dist/events.generated.d.ts"),
    ),
];

async fn client_file(file: web::Path<String>) -> HttpResponse {
    match CLIENT_FILES
        .iter()
        .find(|(name, ..)| *name == file.as_str())
    {
        Some((_, content_type, body)) => HttpResponse::Ok()
            .content_type(*content_type)
            .insert_header(("Cache-Control", "no-cache"))
            .body(*body),
        None => HttpResponse::NotFound().json(serde_json::json!({
            "error": format!(
                "no client file {file:?}: /client/ serves {}",
                CLIENT_FILES.map(|f| f.0).join(", ")
            )
        })),
    }
}

/// The streams' contract (AsyncAPI 3.0).
async fn asyncapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(include_str!("../../docs/asyncapi.yaml"))
}

/// The REST endpoints' contract (OpenAPI 3.1).
async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(include_str!("../../docs/openapi.yaml"))
}
