//! The clock's control (anyone reads, presenters change) and the operations endpoints.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::params::bad_request;
use crate::clock::actor::ChangeError;
use crate::clock::change::parse_change;

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

/// The token a request carries: `Authorization: Bearer T` (the scheme in any case, as
/// RFC 9110 §11.1 has it), `X-Control-Token: T` or `?token=T`; trimmed as the server's own
/// token is at start.
fn presented_token(req: &HttpRequest) -> Option<String> {
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

/// Compares without stopping at the first difference.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

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
    match presented_token(&req) {
        Some(t) if !t.is_empty() && same_token(&t, &state.token) => {}
        Some(_) => {
            return HttpResponse::Forbidden()
                .json(serde_json::json!({"error": "wrong presenter token"}));
        }
        None => {
            return HttpResponse::Unauthorized().json(serde_json::json!({
                "error": "changing the clock needs the presenter token \
                          (Authorization: Bearer TOKEN, printed by the server at start)"
            }));
        }
    }
    let commands = match parse_change(&body, state.clock.state().dataset_start) {
        Ok(commands) => commands,
        Err(e) => return bad_request(&e),
    };
    match state.clock.apply(commands).await {
        Ok(new_state) => HttpResponse::Ok().json(new_state),
        Err(ChangeError::Invalid(e)) => bad_request(&e),
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
