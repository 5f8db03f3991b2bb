//! The HTTP face of the live feed (actix-web handlers only): SSE and WebSocket streams, the
//! clock's control, operations endpoints, the map page and the documents. What it serves
//! over (the hub, the clock, the writer threads) is built by [`crate::serve`].

mod admission;
mod control;
mod cors;
mod feed;
mod history;
mod open_files;
pub mod params;
mod sessions;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};

use crate::clock::actor::ClockHandle;
use crate::fanout::hub::Hub;
use crate::fanout::writers::Writers;
use crate::sessions::Sessions;
use admission::Admission;
pub use cors::{CorsOrigins, check_origin};

/// What the HTTP layer needs to know besides the hub, the clock and the writers.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    pub bind: String,
    /// HTTP worker threads.
    pub workers: usize,
    /// The presenter's token (needed to change the clock).
    pub control_token: String,
    /// Streams at most (lowered if the open-files limit cannot hold them).
    pub max_clients: usize,
    /// Streams at most from one client address (0: no limit).
    pub max_clients_per_ip: usize,
    /// Proxies whose `X-Forwarded-For` names the client's address.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Compress WebSocket messages for clients that offer permessage-deflate.
    pub ws_deflate: bool,
    /// An online tile layer for the map page (URL template) and its attribution.
    pub tiles: Option<(String, String)>,
    /// Other origins whose pages may change the clock.
    pub cors_origins: CorsOrigins,
}

/// What every handler shares.
pub(crate) struct AppState {
    /// The shared clock's hub and the clock.
    pub hub: Arc<Hub>,
    pub clock: ClockHandle,
    /// The replay sessions beside it.
    pub sessions: Arc<Sessions>,
    pub token: String,
    /// The map page's online tile layer (URL template, attribution), if any.
    pub tiles: Option<(String, String)>,
    pub ws_deflate: bool,
    pub cors: CorsOrigins,
    /// The threads that write the streams.
    pub writers: Writers,
    /// The limits on streams in all and per client address.
    pub admission: Arc<Admission>,
    /// Subscriptions being built (catch-ups, snapshots) and history spans written at once:
    /// at most one per core, on threads of their own, so that resuming clients and history
    /// readers cannot stall the HTTP workers.
    pub subscribing: tokio::sync::Semaphore,
}

/// What [`listen`] started.
pub struct Listening {
    pub server: actix_web::dev::Server,
    pub addrs: Vec<SocketAddr>,
    /// Set when the open-files limit lowered `max_clients`: what it became, and why.
    pub note: Option<String>,
}

/// Binds the routes over `hub`, `clock`, `sessions` and `writers` and starts serving.
pub fn listen(
    hub: Arc<Hub>,
    clock: ClockHandle,
    sessions: Arc<Sessions>,
    writers: Writers,
    opts: &HttpOptions,
) -> Result<Listening, String> {
    let (max_clients, per_worker, fd_note) = open_files::fit(opts.max_clients, opts.workers.max(1));
    let state = web::Data::from(Arc::new(AppState {
        hub,
        clock,
        sessions,
        token: opts.control_token.clone(),
        tiles: opts.tiles.clone(),
        ws_deflate: opts.ws_deflate,
        cors: opts.cors_origins.clone(),
        writers,
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
            .service(endpoint("/v1/emitted", "GET").route(web::get().to(history::emitted)))
            .service(endpoint("/v1/history", "GET").route(web::get().to(history::history)))
            .service(endpoint("/v1/sessions", "POST").route(web::post().to(sessions::create)))
            .service(
                endpoint("/v1/sessions/{id}/emitted", "GET")
                    .route(web::get().to(history::session_emitted)),
            )
            .service(
                endpoint("/v1/sessions/{id}/history", "GET")
                    .route(web::get().to(history::session_history)),
            )
            .service(
                endpoint("/v1/sessions/{id}", "GET, DELETE")
                    .route(web::get().to(sessions::describe))
                    .route(web::delete().to(sessions::delete)),
            )
            .service(
                endpoint("/v1/sessions/{id}/events", "GET")
                    .route(web::get().to(stream::session_sse)),
            )
            .service(
                endpoint("/v1/sessions/{id}/ws", "GET")
                    .route(web::get().to(stream::session_websocket)),
            )
            .service(
                endpoint("/v1/sessions/{id}/clock", "GET, POST")
                    .route(web::get().to(control::get_session_clock))
                    .route(web::post().to(control::post_session_clock)),
            )
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
    Ok(Listening {
        addrs: server.addrs(),
        server: server.run(),
        note: fd_note,
    })
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
