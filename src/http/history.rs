//! What a clock has emitted, for consumers that read it in spans rather than as a stream
//! (the Spark source's `option("clock", URL)`, or any Arrow reader): `GET …/emitted` says how
//! much (an emission count, seconds of simulation time emitted since the clock began, which
//! only grows) and in which runs; `GET …/history?from=&to=` hands out the events of a span of
//! that count as an Arrow IPC stream, in the order the streams sent them.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};

use super::AppState;
use super::feed::Feed;
use super::params::bad_request;
use crate::events::Filter;
use crate::replay::arrow::write_arrow_stream;

/// The longest span one request may ask for, in emission seconds (a day of simulation).
const MAX_SPAN: i64 = 86_400;

fn emitted_on(feed: &Feed) -> HttpResponse {
    let (runs, now) = feed.hub.emitted();
    HttpResponse::Ok().json(serde_json::json!({
        "dataset": feed.hub.tag,
        "emitted": now,
        "runs": runs.iter().map(|&(a, b, at)| [a, b, at]).collect::<Vec<_>>(),
        "clock": feed.clock.state(),
    }))
}

/// `GET /v1/emitted`
pub async fn emitted(state: web::Data<AppState>) -> HttpResponse {
    emitted_on(&Feed::shared(&state))
}

/// `GET /v1/sessions/{id}/emitted`
pub async fn session_emitted(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    match Feed::session(&state, &id) {
        Ok(feed) => emitted_on(&feed),
        Err(response) => *response,
    }
}

/// `GET /v1/history?from=N&to=M&location_id=1,3`
pub async fn history(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    history_on(&state, Feed::shared(&state), &query).await
}

/// `GET /v1/sessions/{id}/history?…`
pub async fn session_history(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    match Feed::session(&state, &id) {
        Ok(feed) => history_on(&state, feed, &query).await,
        Err(response) => *response,
    }
}

async fn history_on(state: &AppState, feed: Feed, query: &HashMap<String, String>) -> HttpResponse {
    const KNOWN: [&str; 3] = ["from", "to", "location_id"];
    if let Some(unknown) = query.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return bad_request(&format!(
            "unknown query parameter '{unknown}' (known: {})",
            KNOWN.join(", ")
        ));
    }
    let count = |name: &str| match query.get(name).map(|v| v.parse::<i64>()) {
        Some(Ok(n)) => Ok(n),
        Some(Err(_)) => Err(format!(
            "{name} must be an emission count (a whole number, as GET …/emitted says)"
        )),
        None => Err(format!(
            "{name} is missing: give from and to, emission counts as GET …/emitted says"
        )),
    };
    let (from, to) = match (count("from"), count("to")) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(e), _) | (_, Err(e)) => return bad_request(&e),
    };
    if to - from > MAX_SPAN {
        return bad_request(&format!(
            "from {from} to {to} is more than {MAX_SPAN} emission seconds: ask in parts"
        ));
    }
    let filter = match Filter::parse(query.get("location_id").map(String::as_str), None)
        .and_then(|f| feed.hub.check_filter(&f).map(|()| f))
    {
        Ok(filter) => filter,
        Err(e) => return bad_request(&e),
    };
    let windows = match feed.hub.emitted_windows(from, to) {
        Ok(windows) => windows,
        Err(e) => {
            return HttpResponse::RangeNotSatisfiable().json(serde_json::json!({ "error": e }));
        }
    };
    // Written off the HTTP workers, at most one a core at a time with the streams'
    // catch-ups: a flood of requests waits instead of taking every core.
    let Ok(_permit) = state.subscribing.acquire().await else {
        return HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"error": "shutting down"}));
    };
    let hub = feed.hub.clone();
    let body = web::block(move || {
        let mut out = Vec::new();
        write_arrow_stream(hub.dataset(), hub.timeline(), &windows, 0, filter, &mut out)
            .map(|_| out)
    })
    .await;
    match body {
        Ok(Ok(bytes)) => HttpResponse::Ok()
            .content_type("application/vnd.apache.arrow.stream")
            .body(bytes),
        _ => HttpResponse::InternalServerError()
            .json(serde_json::json!({"error": "the span could not be written"})),
    }
}
