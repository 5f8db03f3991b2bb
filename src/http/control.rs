//! The clock's control (anyone reads, presenters change) and the operations endpoints.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::feed::Feed;
use super::params::bad_request;
use crate::clock::actor::{ChangeError, ClockHandle};
use crate::clock::change::parse_change;
use crate::secret::same_token;
use crate::sessions::Session;

/// The kitchens (id, code, name, lat, lon), for maps.
pub async fn kitchens(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(&state.hub.dataset().kitchens)
}

/// What the map page draws under the drivers: the built-in base map, and an online tile
/// layer only when the server was started with `--tiles`.
pub async fn map_config(state: web::Data<AppState>) -> HttpResponse {
    let (tiles, attribution) = match &state.tiles {
        Some((t, a)) => (Some(t.as_str()), Some(a.as_str())),
        None => (None, None),
    };
    HttpResponse::Ok().json(serde_json::json!({ "tiles": tiles, "tiles_attribution": attribution }))
}

pub async fn get_clock(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.clock.state())
}

/// `GET /v1/sessions/{id}/clock`
pub async fn get_session_clock(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    match Feed::session(&state, &id) {
        Ok(feed) => HttpResponse::Ok().json(feed.clock.state()),
        Err(response) => *response,
    }
}

/// The token a request carries: `Authorization: Bearer T` (the scheme in any case, as
/// RFC 9110 §11.1 has it), `X-Control-Token: T` or `?token=T`; trimmed as the server's own
/// token is at start.
pub(crate) fn presented_token(req: &HttpRequest) -> Option<String> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some((scheme, t)) = header("authorization").and_then(|v| v.trim().split_once(' '))
        && scheme.eq_ignore_ascii_case("bearer")
    {
        return Some(t.trim().to_string());
    }
    if let Some(t) = header("x-control-token") {
        return Some(t.trim().to_string());
    }
    web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("token").map(|t| t.trim().to_string()))
}

/// `POST /v1/clock`: the presenter's change to the shared clock.
pub async fn post_clock(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    // A browser sends its page's origin: only the server's own and --cors-origin's may
    // change the clock (the preflight already says so; this also stops simple requests).
    if let Some(origin) = req.headers().get("origin") {
        let host = req.headers().get("host").and_then(|h| h.to_str().ok());
        let origin = String::from_utf8_lossy(origin.as_bytes());
        if !state.cors.may_change(&origin, host) {
            return HttpResponse::Forbidden().json(serde_json::json!({
                "error": format!(
                    "a page of origin '{origin}' may not change the clock \
                     (start the server with --cors-origin {origin} to allow it)"
                )
            }));
        }
    }
    if let Err(refusal) = token_check(
        &req,
        |t| same_token(t, &state.token),
        "changing the clock needs the presenter token \
         (Authorization: Bearer TOKEN, printed by the server at start)",
        "wrong presenter token",
    ) {
        return *refusal;
    }
    change(&state.clock, &body).await
}

/// `POST /v1/sessions/{id}/clock`: the session owner's change to its clock.
pub async fn post_session_clock(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let feed = match Feed::session(&state, &id) {
        Ok(feed) => feed,
        Err(response) => return *response,
    };
    let session = feed.session.as_ref().expect("a session's feed");
    if let Err(refusal) = owner_only(&req, session) {
        return *refusal;
    }
    change(&feed.clock, &body).await
}

/// Refuses a request that does not carry `session`'s token.
pub(crate) fn owner_only(req: &HttpRequest, session: &Session) -> Result<(), Box<HttpResponse>> {
    token_check(
        req,
        |t| session.is_owner(t),
        "changing a session needs its token (Authorization: Bearer TOKEN, \
         as POST /v1/sessions answered when it was made)",
        &format!("that is not session {}'s token", session.id),
    )
}

/// Refuses a request whose token `accepts` does not take: 401 saying `missing` when it
/// carries none, 403 saying `wrong` otherwise. An empty token is never taken.
pub(crate) fn token_check(
    req: &HttpRequest,
    accepts: impl Fn(&str) -> bool,
    missing: &str,
    wrong: &str,
) -> Result<(), Box<HttpResponse>> {
    match presented_token(req) {
        Some(t) if !t.is_empty() && accepts(&t) => Ok(()),
        Some(_) => Err(Box::new(
            HttpResponse::Forbidden().json(serde_json::json!({ "error": wrong })),
        )),
        None => Err(Box::new(
            HttpResponse::Unauthorized().json(serde_json::json!({ "error": missing })),
        )),
    }
}

/// Applies a change (JSON `body`) to `clock` and answers with its new state.
async fn change(clock: &ClockHandle, body: &[u8]) -> HttpResponse {
    let commands = match parse_change(body, clock.state().dataset_start) {
        Ok(commands) => commands,
        Err(e) => return bad_request(&e),
    };
    match clock.apply(commands).await {
        Ok(new_state) => HttpResponse::Ok().json(new_state),
        Err(ChangeError::Invalid(e)) => bad_request(&e),
        Err(ChangeError::Conflict(e)) => {
            HttpResponse::Conflict().json(serde_json::json!({ "error": e }))
        }
        Err(ChangeError::Unavailable(e)) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "2"))
            .json(serde_json::json!({ "error": e })),
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

/// Liveness: the server streams. With a shared clock, says whether NATS is reachable
/// (the stream goes on without it; only clock changes wait for it).
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    match &state.clock.shared {
        None => HttpResponse::Ok().content_type(TEXT).body("ok\n"),
        Some(shared) if shared.is_connected() => HttpResponse::Ok()
            .content_type(TEXT)
            .body("ok\nnats: connected\n"),
        Some(shared) => HttpResponse::Ok().content_type(TEXT).body(format!(
            "ok\nnats: unreachable ({}): streaming on the last clock known; clock changes are refused\n",
            shared.url
        )),
    }
}

/// Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let hub = &state.hub;
    let m = &hub.metrics;
    let (sse, ws) = hub.counts();
    let clock = state.clock.state();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    metric(
        "caspers_subscribers",
        "gauge",
        "Connected subscribers by transport.",
        &[
            ("{transport=\"sse\"}", sse as f64),
            ("{transport=\"websocket\"}", ws as f64),
        ],
    );
    metric(
        "caspers_events_sent_total",
        "counter",
        "Events queued to subscribers by transport.",
        &[
            ("{transport=\"sse\"}", load(&m.events_sent_sse) as f64),
            ("{transport=\"websocket\"}", load(&m.events_sent_ws) as f64),
        ],
    );
    metric(
        "caspers_events_dropped_total",
        "counter",
        "Events dropped for subscribers whose queue was full.",
        &[("", load(&m.events_dropped) as f64)],
    );
    metric(
        "caspers_clients_lagged_total",
        "counter",
        "Times a subscriber was told it missed events and skipped ahead.",
        &[("", load(&m.clients_lagged) as f64)],
    );
    metric(
        "caspers_clients_dropped_total",
        "counter",
        "Subscribers disconnected by the server.",
        &[("", load(&m.clients_dropped) as f64)],
    );
    metric(
        "caspers_clients_shed_total",
        "counter",
        "Subscribers skipped ahead because all queues together passed the budget.",
        &[("", load(&m.clients_shed) as f64)],
    );
    metric(
        "caspers_clients_timed_out_total",
        "counter",
        "Streams closed because their client did not take what was queued within --send-timeout.",
        &[("", load(&m.clients_timed_out) as f64)],
    );
    metric(
        "caspers_clients_unresponsive_total",
        "counter",
        "WebSockets closed because their client did not answer a ping within --ws-pong-timeout.",
        &[("", load(&m.clients_unresponsive) as f64)],
    );
    metric(
        "caspers_queued_bytes",
        "gauge",
        "Bytes of event chunks held for subscribers (a chunk shared by many counted once).",
        &[("", hub.queued.load(Ordering::Relaxed) as f64)],
    );
    metric(
        "caspers_queue_budget_bytes",
        "gauge",
        "Bytes the chunks held for subscribers may take together (--queue-budget-mib).",
        &[("", hub.queue_budget as f64)],
    );
    metric(
        "caspers_clients_rejected_total",
        "counter",
        "Streams refused past --max-clients or --max-clients-per-ip.",
        &[("", state.admission.rejected.load(Ordering::Relaxed) as f64)],
    );
    metric(
        "caspers_ticks_total",
        "counter",
        "Clock ticks that sent events.",
        &[("", load(&m.ticks) as f64)],
    );
    metric(
        "caspers_tick_duration_seconds_total",
        "counter",
        "Time spent expanding, framing and fanning out ticks.",
        &[("", load(&m.tick_micros_total) as f64 / 1e6)],
    );
    metric(
        "caspers_tick_duration_seconds_max",
        "gauge",
        "The longest tick so far.",
        &[("", load(&m.tick_micros_max) as f64 / 1e6)],
    );
    metric(
        "caspers_sim_time_seconds",
        "gauge",
        "Simulation time, Unix seconds.",
        &[("", clock.sim_time)],
    );
    metric(
        "caspers_speed",
        "gauge",
        "Clock speed multiplier.",
        &[("", clock.speed)],
    );
    metric(
        "caspers_paused",
        "gauge",
        "1 when the clock is paused.",
        &[("", f64::from(u8::from(clock.paused)))],
    );
    let sessions = &state.sessions.metrics;
    metric(
        "caspers_sessions",
        "gauge",
        "Replay sessions alive.",
        &[("", state.sessions.count() as f64)],
    );
    metric(
        "caspers_sessions_created_total",
        "counter",
        "Replay sessions created.",
        &[("", load(&sessions.created) as f64)],
    );
    metric(
        "caspers_sessions_ended_total",
        "counter",
        "Replay sessions ended, by why.",
        &[
            ("{reason=\"idle\"}", load(&sessions.ended_idle) as f64),
            ("{reason=\"deleted\"}", load(&sessions.ended_deleted) as f64),
        ],
    );
    let (sse, ws) = state.sessions.subscribers();
    metric(
        "caspers_session_subscribers",
        "gauge",
        "Subscribers on sessions' streams by transport (the shared clock's are caspers_subscribers).",
        &[
            ("{transport=\"sse\"}", sse as f64),
            ("{transport=\"websocket\"}", ws as f64),
        ],
    );
    if let Some(shared) = &state.clock.shared {
        metric(
            "caspers_nats_connected",
            "gauge",
            "1 while NATS (which shares the clock) is reachable.",
            &[("", f64::from(u8::from(shared.is_connected())))],
        );
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}
