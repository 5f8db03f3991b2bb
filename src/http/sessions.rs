//! `/v1/sessions`: making, reading and ending replay sessions. Their streams and clocks are
//! the shared ones' handlers on the session's feed (stream.rs, control.rs).

use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::control::{owner_only, token_check};
use super::feed::Feed;
use super::params::bad_request;
use crate::secret::same_token;
use crate::sessions::{CreateError, Session};

/// Where a session's endpoints are, relative to the server.
fn links(session: &Session) -> serde_json::Value {
    let base = format!("/v1/sessions/{}", session.id);
    serde_json::json!({
        "session": base,
        "events": format!("{base}/events"),
        "ws": format!("{base}/ws"),
        "clock": format!("{base}/clock"),
    })
}

/// `POST /v1/sessions` with an optional JSON body (`start`, `speed`, `paused`, `loop`):
/// 201 with the session's id, its owner's token and its URLs.
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(needed) = &state.sessions.settings().token
        && let Err(refusal) = token_check(
            &req,
            |t| same_token(t, needed),
            "this server makes sessions only with its session token \
             (Authorization: Bearer TOKEN; see --session-token)",
            "wrong session token",
        )
    {
        return *refusal;
    }
    match state.sessions.create(&body).await {
        Ok((session, token)) => {
            let urls = links(&session);
            HttpResponse::Created()
                .insert_header(("Location", urls["session"].as_str().unwrap_or_default()))
                .json(serde_json::json!({
                    "id": session.id,
                    "token": token,
                    "clock": session.clock.state(),
                    "urls": urls,
                }))
        }
        Err(CreateError::Invalid(e)) => bad_request(&e),
        Err(CreateError::Unavailable(e)) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "2"))
            .json(serde_json::json!({ "error": e })),
        Err(CreateError::Full(limit)) => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "60"))
            .json(serde_json::json!({
                "error": format!(
                    "this server already has {limit} sessions, its limit (--max-sessions); \
                     end one with DELETE /v1/sessions/ID, or wait for idle ones to expire"
                ),
                "limit": "max-sessions",
            })),
    }
}

/// `GET /v1/sessions/{id}`: its clock, subscribers and URLs (no token).
pub async fn describe(state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let feed = match Feed::session(&state, &id) {
        Ok(feed) => feed,
        Err(response) => return *response,
    };
    let session = feed.session.as_ref().expect("a session's feed");
    let (sse, ws) = session.hub.counts();
    HttpResponse::Ok().json(serde_json::json!({
        "id": session.id,
        "clock": session.clock.state(),
        "subscribers": sse + ws,
        "urls": links(session),
    }))
}

/// `DELETE /v1/sessions/{id}` with its token: ends it; its streams are closed with a reason.
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let feed = match Feed::session(&state, &id) {
        Ok(feed) => feed,
        Err(response) => return *response,
    };
    if let Err(refusal) = owner_only(&req, feed.session.as_ref().expect("a session's feed")) {
        return *refusal;
    }
    match state.sessions.delete(&id).await {
        Ok(_) => HttpResponse::NoContent().finish(),
        Err(e) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "2"))
            .json(serde_json::json!({ "error": e })),
    }
}
