//! Which clock a request is about: the shared one (`/v1/...`) or a session's
//! (`/v1/sessions/{id}/...`), with the hub its streams are on.

use std::sync::Arc;

use actix_web::HttpResponse;

use super::AppState;
use crate::clock::actor::ClockHandle;
use crate::fanout::hub::Hub;
use crate::sessions::{Lookup, Session};

/// A clock and its hub.
pub(crate) struct Feed {
    pub hub: Arc<Hub>,
    pub clock: ClockHandle,
    /// The session, when it is one: kept while a stream on it lasts, and told when the
    /// stream ends (its idle time starts then).
    pub session: Option<Arc<Session>>,
}

impl Feed {
    pub fn shared(state: &AppState) -> Feed {
        Feed {
            hub: Arc::clone(&state.hub),
            clock: state.clock.clone(),
            session: None,
        }
    }

    /// Session `id`'s, or the answer for an id that names none: 404 (never was) or 410
    /// (ended, and why).
    pub fn session(state: &AppState, id: &str) -> Result<Feed, Box<HttpResponse>> {
        match state.sessions.get(id) {
            Lookup::Live(session) => Ok(Feed {
                hub: Arc::clone(&session.hub),
                clock: session.clock.clone(),
                session: Some(session),
            }),
            Lookup::Ended(why) => Err(Box::new(HttpResponse::Gone().json(serde_json::json!({
                "error": format!("session {id} has ended ({why}); create another with POST /v1/sessions")
            })))),
            Lookup::Unknown => Err(Box::new(HttpResponse::NotFound().json(serde_json::json!({
                "error": format!(
                    "no session {id} on this server (sessions are made with POST /v1/sessions)"
                )
            })))),
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        if let Some(session) = &self.session {
            session.touch();
        }
    }
}
