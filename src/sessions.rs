//! Replay sessions: clocks of their own beside the shared one, so that a developer, a test
//! or a rehearsal can pause, seek and step without moving anybody else's stream.
//!
//! A session is a clock task and a hub over the same dataset in memory; the writer threads
//! are everybody's. Its creator gets a token of its own to change it. A session nobody
//! watches and nobody asks about for the idle time ends by itself; its clients, if any come
//! back, are told it ended (410) rather than that it never was (404). Sessions are kept in
//! a file beside the state file (a restart brings them back), or, with replicas, in NATS
//! (any replica serves any session).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::clock::actor::{self, ClockHandle, ClockSetup, MAX_SPEED, Store};
use crate::clock::shared_sessions::{SessionEvent, SharedSessions};
use crate::clock::shelf::{Saved, Shelf};
use crate::clock::{ClockRecord, SimClock};
use crate::fanout::hub::Hub;
use crate::secret::{digest, random_token, same_token};
use crate::time::{DAY, format_ts, now_unix_f64, parse_rfc3339};
use crate::timeline::{Emitter, Timeline};

/// How sessions are made and kept.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// Sessions alive at once; past it, creating one is refused.
    pub max_sessions: usize,
    /// A session with no subscriber and no request for this long ends.
    pub idle: Duration,
    /// When set, creating a session needs this token.
    pub token: Option<String>,
    /// Time between a running session's clock ticks.
    pub tick: Duration,
    /// What a session starts with when its request does not say (the server's own).
    pub start_day: i64,
    pub speed: f64,
    pub looping: bool,
}

/// Counters for /metrics.
#[derive(Debug, Default)]
pub struct SessionMetrics {
    pub created: AtomicU64,
    pub ended_idle: AtomicU64,
    pub ended_deleted: AtomicU64,
}

/// One session: its clock and the hub its subscribers are on.
pub struct Session {
    pub id: String,
    pub hub: Arc<Hub>,
    pub clock: ClockHandle,
    /// The digest of its creator's token, the only one that changes or ends it.
    owner: String,
    /// The last request about it, or the last of its streams to end.
    touched: Mutex<Instant>,
}

impl Session {
    /// Whether `token` is this session's.
    pub fn is_owner(&self, token: &str) -> bool {
        same_token(&digest(token), &self.owner)
    }

    /// Notes a request about this session (it is not idle).
    pub fn touch(&self) {
        *self.touched.lock().expect("touched") = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.touched.lock().expect("touched").elapsed()
    }
}

/// What a session's id names.
pub enum Lookup {
    Live(Arc<Session>),
    /// It ended, for this reason.
    Ended(String),
    Unknown,
}

/// Why a session was not created.
#[derive(Debug, PartialEq)]
pub enum CreateError {
    /// The request is wrong (HTTP 400), saying what and how to write it.
    Invalid(String),
    /// `--max-sessions` are alive (HTTP 429).
    Full(usize),
    /// The sessions' store (NATS) cannot take it now (HTTP 503).
    Unavailable(String),
}

/// How far ahead of its emission a running session asks the sessions file to save: every
/// session then needs a save about once a second, which one write of the file covers.
const SAVE_AHEAD: Duration = Duration::from_secs(1);

/// How many ended sessions' ids are remembered, to answer 410 rather than 404.
const ENDED_REMEMBERED: usize = 10_000;

/// Where sessions are kept.
pub enum Keeper {
    /// The sessions file (one process), with the sessions it held at start.
    File(Arc<Shelf>, Vec<Saved>),
    /// NATS, shared by the replicas.
    Nats(Arc<SharedSessions>),
}

/// The live sessions.
pub struct Sessions {
    settings: SessionSettings,
    /// Where the sessions' clock tasks run (the shared clock's runtime, not the HTTP
    /// worker that takes the request).
    runtime: tokio::runtime::Handle,
    /// The shared clock's hub: a session's hub is made beside it.
    template: Arc<Hub>,
    /// The sessions file, or NATS.
    shelf: Option<Arc<Shelf>>,
    nats: Option<Arc<SharedSessions>>,
    live: Mutex<HashMap<String, Arc<Session>>>,
    /// Ids of sessions that ended, and why, the newest last.
    ended: Mutex<VecDeque<(String, String)>>,
    pub metrics: SessionMetrics,
}

/// A session's request body: every field optional, none unknown.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionRequest {
    /// A day of the dataset (0-based, at the current UTC time of day, as `serve
    /// --start-day`) or an instant (RFC 3339, or `YYYY-MM-DD HH:MM:SS` UTC).
    start: Option<serde_json::Value>,
    speed: Option<f64>,
    paused: Option<bool>,
    #[serde(rename = "loop")]
    looping: Option<bool>,
}

impl Sessions {
    /// Sessions beside `template`'s clock, kept by `keeper` (a file's sessions continue
    /// where they were; NATS's come with [`Sessions::run`]); call on the runtime their
    /// clocks are to run on.
    pub fn new(settings: SessionSettings, template: Arc<Hub>, keeper: Keeper) -> Sessions {
        let (shelf, nats, saved) = match keeper {
            Keeper::File(shelf, saved) => (Some(shelf), None, saved),
            Keeper::Nats(shared) => (None, Some(shared), Vec::new()),
        };
        let sessions = Sessions {
            settings,
            runtime: tokio::runtime::Handle::current(),
            template,
            shelf,
            nats,
            live: Mutex::default(),
            ended: Mutex::default(),
            metrics: SessionMetrics::default(),
        };
        for Saved { id, owner, record } in saved {
            let store = sessions.file_store(&id, &owner, &record);
            let session = sessions.start(id, owner, record, store, 0, true);
            sessions
                .live
                .lock()
                .expect("sessions")
                .insert(session.id.clone(), session);
        }
        sessions
    }

    fn file_store(&self, id: &str, owner: &str, record: &ClockRecord) -> Store {
        let shelf = self.shelf.as_ref().expect("sessions kept in a file");
        Store::File(Box::new(shelf.slot(id, owner, record)))
    }

    /// Starts session `id`'s clock from `record` in `store` (`restored`: one saved by an
    /// earlier process, which it continues).
    fn start(
        &self,
        id: String,
        owner: String,
        record: ClockRecord,
        store: Store,
        revision: u64,
        restored: bool,
    ) -> Arc<Session> {
        let ds = self.template.dataset();
        let timeline = Timeline::new(ds, record.looping);
        let hub = Arc::new(self.template.beside(timeline));
        let _on = self.runtime.enter();
        let clock = actor::spawn(
            vec![Arc::clone(&hub) as Arc<dyn Emitter>],
            timeline,
            ClockSetup {
                record,
                revision,
                restored,
                store,
                tick: self.settings.tick,
                save_ahead: SAVE_AHEAD,
            },
        );
        Arc::new(Session {
            id,
            hub,
            clock,
            owner,
            touched: Mutex::new(Instant::now()),
        })
    }

    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// Sessions alive.
    pub fn count(&self) -> usize {
        self.live.lock().expect("sessions").len()
    }

    /// Makes a session from a request's JSON body (empty: the defaults); its clock starts
    /// ticking beside the shared one. Returns it with its owner's token.
    pub async fn create(&self, body: &[u8]) -> Result<(Arc<Session>, String), CreateError> {
        let now = now_unix_f64();
        let (looping, clock) = self.parse(body, now).map_err(CreateError::Invalid)?;
        if self.count() >= self.settings.max_sessions {
            return Err(CreateError::Full(self.settings.max_sessions));
        }
        let mut record = ClockRecord::new(self.template.dataset(), looping, clock);
        // The second it starts in counts as emitted: nobody is subscribed yet, so nothing
        // is sent, and a client that connects once it is made starts past it, as on any
        // clock that has been running.
        let timeline = Timeline::new(self.template.dataset(), looping);
        if let Some(first) = record.runs.last_mut() {
            first.1 = timeline.clamp(first.0 + 1);
        }
        let (id, token) = (random_token(), random_token());
        let owner = digest(&token);
        let (store, revision) = match &self.nats {
            Some(nats) => {
                let revision = nats
                    .create(&id, &owner, &record)
                    .await
                    .map_err(CreateError::Unavailable)?;
                (Store::Shared(Arc::new(nats.clock(&id, looping))), revision)
            }
            None => (self.file_store(&id, &owner, &record), 0),
        };
        let session = self.start(id, owner, record, store, revision, false);
        self.live
            .lock()
            .expect("sessions")
            .insert(session.id.clone(), Arc::clone(&session));
        self.metrics.created.fetch_add(1, Ordering::Relaxed);
        Ok((session, token))
    }

    /// The session `id` names; a live one counts as asked about.
    pub fn get(&self, id: &str) -> Lookup {
        if let Some(session) = self.live.lock().expect("sessions").get(id) {
            session.touch();
            return Lookup::Live(Arc::clone(session));
        }
        match self
            .ended
            .lock()
            .expect("ended sessions")
            .iter()
            .rev()
            .find(|(ended, _)| ended == id)
        {
            Some((_, why)) => Lookup::Ended(why.clone()),
            None => Lookup::Unknown,
        }
    }

    /// Ends session `id` at its owner's request (on every replica); false if it was not
    /// alive.
    pub async fn delete(&self, id: &str) -> Result<bool, String> {
        if let Some(nats) = &self.nats {
            nats.delete(id).await?;
        }
        let ended = self.end(id, "deleted by its owner");
        if ended {
            self.metrics.ended_deleted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(ended)
    }

    /// Ends the sessions nobody has watched or asked about for the idle time (on any
    /// replica); returns how many.
    pub async fn end_idle(&self) -> usize {
        let idle = self.settings.idle;
        let (quiet, seen): (Vec<Arc<Session>>, Vec<Arc<Session>>) = self
            .live
            .lock()
            .expect("sessions")
            .values()
            .cloned()
            .partition(|s| s.idle_for() >= idle && s.hub.counts() == (0, 0));
        let why = format!(
            "idle: no subscriber and no request for {}",
            describe_duration(idle)
        );
        let mut n = 0;
        for session in quiet {
            if let Some(nats) = &self.nats {
                // Another replica may have it busy.
                let elsewhere = nats.last_seen(&session.id).await;
                if elsewhere.is_some_and(|t| now_unix_f64() - t < idle.as_secs_f64()) {
                    continue;
                }
                if let Err(e) = nats.delete(&session.id).await {
                    log::warn!("cannot end idle session {}: {e}", session.id);
                    continue;
                }
            }
            if self.end(&session.id, &why) {
                self.metrics.ended_idle.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }
        if let Some(nats) = &self.nats {
            // Tell the other replicas which sessions this one has busy.
            for session in seen {
                if session.hub.counts() != (0, 0) || session.idle_for() < idle / 4 {
                    nats.mark_seen(&session.id).await;
                }
            }
        }
        n
    }

    /// Runs what keeps the sessions, on the current tokio runtime, for as long as
    /// `sessions` lives: a look for idle ones a few times per idle period, and with NATS,
    /// following the sessions the other replicas make and end.
    pub fn run(sessions: &Arc<Sessions>) {
        let every =
            (sessions.settings.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(15));
        let weak = Arc::downgrade(sessions);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                let Some(sessions) = weak.upgrade() else {
                    return;
                };
                let n = sessions.end_idle().await;
                if n > 0 {
                    log::info!("ended {n} idle session(s)");
                }
            }
        });
        if let Some(nats) = &sessions.nats {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            nats.watch(tx);
            let weak = Arc::downgrade(sessions);
            tokio::spawn(async move {
                while let Some(event) = rx.recv().await {
                    let Some(sessions) = weak.upgrade() else {
                        return;
                    };
                    sessions.follow(event);
                }
            });
        }
    }

    /// A session another replica made (or that was there at start), or ended.
    fn follow(&self, event: SessionEvent) {
        match event {
            SessionEvent::Made {
                id,
                owner,
                record,
                revision,
            } => {
                let known = self.live.lock().expect("sessions").contains_key(&id)
                    || self
                        .ended
                        .lock()
                        .expect("ended sessions")
                        .iter()
                        .any(|(ended, _)| *ended == id);
                if known {
                    return;
                }
                let nats = self.nats.as_ref().expect("following NATS");
                let store = Store::Shared(Arc::new(nats.clock(&id, record.looping)));
                let session = self.start(id, owner, *record, store, revision, false);
                self.live
                    .lock()
                    .expect("sessions")
                    .entry(session.id.clone())
                    .or_insert(session);
            }
            SessionEvent::Ended { id } => {
                self.end(
                    &id,
                    "ended on another replica (deleted by its owner, or idle)",
                );
            }
        }
    }

    /// Ends every session (the server is shutting down): their clients get `reason`.
    pub fn close_all(&self, reason: &str) {
        for session in self.live.lock().expect("sessions").values() {
            session.hub.close_all(reason);
        }
    }

    /// Subscribers on every session's hub: (SSE, WebSocket).
    pub fn subscribers(&self) -> (usize, usize) {
        let hubs: Vec<Arc<Hub>> = self
            .live
            .lock()
            .expect("sessions")
            .values()
            .map(|s| Arc::clone(&s.hub))
            .collect();
        hubs.iter()
            .map(|h| h.counts())
            .fold((0, 0), |a, c| (a.0 + c.0, a.1 + c.1))
    }

    /// Takes session `id` out and closes its streams; its clock task stops with the last
    /// handle (the streams' handlers let theirs go as they end).
    fn end(&self, id: &str, why: &str) -> bool {
        let Some(session) = self.live.lock().expect("sessions").remove(id) else {
            return false;
        };
        let mut ended = self.ended.lock().expect("ended sessions");
        ended.push_back((id.to_string(), why.to_string()));
        if ended.len() > ENDED_REMEMBERED {
            ended.pop_front();
        }
        drop(ended);
        if let Some(shelf) = &self.shelf {
            shelf.remove(id);
        }
        session.hub.close_all(&format!("session ended: {why}"));
        true
    }

    /// A session's clock from its request: whether it loops, and where it starts.
    fn parse(&self, body: &[u8], now: f64) -> Result<(bool, SimClock), String> {
        let expected = |e: &dyn std::fmt::Display| {
            format!(
                "expected JSON like {{\"start\": \"2024-01-10T18:00:00Z\", \"speed\": 60, \
                 \"paused\": true, \"loop\": false}} (every field optional; \"start\" may be a \
                 day of the dataset): {e}"
            )
        };
        let request: SessionRequest = if body.iter().all(u8::is_ascii_whitespace) {
            SessionRequest::default()
        } else {
            let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| expected(&e))?;
            if let Some((name, _)) = json
                .as_object()
                .and_then(|o| o.iter().find(|(_, v)| v.is_null()))
            {
                return Err(format!("{name} is null: give a value, or leave it out"));
            }
            serde_json::from_value(json).map_err(|e| expected(&e))?
        };
        let s = &self.settings;
        let looping = request.looping.unwrap_or(s.looping);
        let timeline = Timeline::new(self.template.dataset(), looping);
        let days = self.template.dataset().days();
        let within = |sim: i64| sim >= timeline.day_zero && sim < timeline.dataset_end;
        let time_of_day = now.rem_euclid(DAY as f64);
        let start = match &request.start {
            None => timeline.day_start(s.start_day) as f64 + time_of_day,
            Some(serde_json::Value::Number(n)) => match n.as_i64() {
                Some(day) if (0..days).contains(&day) => {
                    timeline.day_start(day) as f64 + time_of_day
                }
                _ => {
                    return Err(format!(
                        "start {n} is not a day of the dataset, which has days 0 to {}",
                        days - 1
                    ));
                }
            },
            Some(serde_json::Value::String(text)) => match parse_rfc3339(text) {
                Ok(sim) if within(sim) => sim as f64,
                Ok(_) => {
                    return Err(format!(
                        "start {text:?} is outside the dataset, {} .. {}",
                        format_ts(timeline.day_zero),
                        format_ts(timeline.dataset_end)
                    ));
                }
                Err(e) => return Err(format!("start {text:?} is not a time: {e}")),
            },
            Some(other) => {
                return Err(format!(
                    "start {other} is neither a day (a number) nor a time (a string)"
                ));
            }
        };
        let speed = request.speed.unwrap_or(s.speed);
        if !(speed.is_finite() && speed > 0.0 && speed <= MAX_SPEED) {
            return Err(format!(
                "speed must be a number above 0 and at most {MAX_SPEED}, not {speed}"
            ));
        }
        Ok((
            looping,
            SimClock::new(start, now, speed, request.paused.unwrap_or(false)),
        ))
    }
}

/// "30 minutes", "1.5 s".
fn describe_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 60.0 && secs % 60.0 == 0.0 {
        format!("{} minutes", secs / 60.0)
    } else {
        format!("{secs} s")
    }
}
