//! Replay sessions shared by replicas through NATS: each session's clock is a key of the
//! clocks' bucket, run by every replica as the shared clock is, so that any replica serves
//! any session and a client can move between them.
//!
//! Keys, beside the shared clock's `clock.<dataset>`: `session.<dataset>.<id>` (the clock's
//! record), `owner.<dataset>.<id>` (a digest of its owner's token) and `seen.<dataset>.<id>`
//! (when a replica last had a subscriber or a request for it, Unix seconds: a session is
//! idle only when no replica has seen it for the idle time). A session ends when its key
//! is deleted; every replica watching hears of it.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::ClockRecord;
use super::shared::{SharedClock, bucket, dataset_key};
use crate::dataset::{Dataset, DatasetIdentity};
use crate::time::now_unix_f64;

/// How long a NATS request may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// What the replicas' sessions do, as a watching replica hears of it.
pub enum SessionEvent {
    /// A session exists (made by any replica, or found at start).
    Made {
        id: String,
        owner: String,
        record: Box<ClockRecord>,
        revision: u64,
    },
    /// A session was ended by a replica.
    Ended { id: String },
}

/// The sessions in NATS.
pub struct SharedSessions {
    pub url: String,
    client: async_nats::Client,
    kv: kv::Store,
    dataset: String,
    identity: DatasetIdentity,
}

impl SharedSessions {
    pub async fn open(
        client: async_nats::Client,
        url: &str,
        ds: &Dataset,
    ) -> Result<Arc<SharedSessions>, String> {
        let kv = bucket(&client, url).await?;
        Ok(Arc::new(SharedSessions {
            url: url.into(),
            client,
            kv,
            dataset: dataset_key(ds),
            identity: ds.identity(),
        }))
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{kind}.{}.{id}", self.dataset)
    }

    /// Session `id`'s clock, as the clock task keeps it.
    pub fn clock(&self, id: &str, looping: bool) -> SharedClock {
        SharedClock::at_key(
            self.client.clone(),
            &self.url,
            self.kv.clone(),
            self.key("session", id),
            &self.identity,
            looping,
        )
    }

    fn failed(&self, what: &str, e: impl std::fmt::Display) -> String {
        format!("cannot {what} in NATS at {}: {e}", self.url)
    }

    /// Writes a new session; returns its record's revision.
    pub async fn create(&self, id: &str, owner: &str, record: &ClockRecord) -> Result<u64, String> {
        let write = async {
            self.kv
                .put(self.key("owner", id), owner.as_bytes().to_vec().into())
                .await
                .map_err(|e| self.failed("keep the session's owner", e))?;
            self.mark_seen(id).await;
            self.kv
                .create(self.key("session", id), record.to_bytes().into())
                .await
                .map_err(|e| self.failed("write the session", e))
        };
        tokio::time::timeout(TIMEOUT * 2, write)
            .await
            .map_err(|_| format!("NATS at {} did not answer in time", self.url))?
    }

    /// Ends session `id` for every replica.
    pub async fn delete(&self, id: &str) -> Result<(), String> {
        let delete = async {
            self.kv
                .delete(self.key("session", id))
                .await
                .map_err(|e| self.failed("end the session", e))?;
            for kind in ["owner", "seen"] {
                let _ = self.kv.purge(self.key(kind, id)).await;
            }
            Ok(())
        };
        tokio::time::timeout(TIMEOUT * 2, delete)
            .await
            .map_err(|_| format!("NATS at {} did not answer in time", self.url))?
    }

    /// Notes that this replica has a subscriber or a request for session `id` now.
    pub async fn mark_seen(&self, id: &str) {
        let now = format!("{:.0}", now_unix_f64());
        let put = self.kv.put(self.key("seen", id), now.into_bytes().into());
        if let Ok(Err(e)) = tokio::time::timeout(TIMEOUT, put).await {
            log::debug!("cannot mark session {id} seen in NATS: {e}");
        }
    }

    /// When any replica last saw session `id` (Unix seconds), if NATS says.
    pub async fn last_seen(&self, id: &str) -> Option<f64> {
        let entry = tokio::time::timeout(TIMEOUT, self.kv.get(self.key("seen", id)))
            .await
            .ok()?
            .ok()??;
        std::str::from_utf8(&entry).ok()?.parse().ok()
    }

    /// Sends every session there is and will be, and every end, to `tx`, watching again
    /// after NATS comes back.
    pub fn watch(self: &Arc<Self>, tx: mpsc::UnboundedSender<SessionEvent>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let prefix = me.key("session", "");
            loop {
                if tx.is_closed() {
                    return;
                }
                match me.kv.watch_with_history(format!("{prefix}*")).await {
                    Ok(mut updates) => {
                        while let Some(Ok(entry)) = updates.next().await {
                            let Some(id) = entry.key.strip_prefix(&prefix) else {
                                continue;
                            };
                            let event = match entry.operation {
                                kv::Operation::Put => match me.made(id, &entry).await {
                                    Some(event) => event,
                                    None => continue,
                                },
                                kv::Operation::Delete | kv::Operation::Purge => {
                                    SessionEvent::Ended { id: id.to_string() }
                                }
                            };
                            if tx.send(event).is_err() {
                                return;
                            }
                        }
                        log::warn!(
                            "lost the watch on the sessions in NATS at {}; watching again",
                            me.url
                        );
                    }
                    Err(e) => log::debug!("cannot watch the sessions in NATS yet: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }

    async fn made(&self, id: &str, entry: &kv::Entry) -> Option<SessionEvent> {
        let record = match ClockRecord::from_bytes(&entry.value, &self.identity, None) {
            Ok(record) => record,
            Err(e) => {
                log::error!("ignoring session {id} in NATS at {}: {e}", self.url);
                return None;
            }
        };
        let owner = tokio::time::timeout(TIMEOUT, self.kv.get(self.key("owner", id)))
            .await
            .ok()?
            .ok()??;
        Some(SessionEvent::Made {
            id: id.to_string(),
            owner: String::from_utf8_lossy(&owner).into_owned(),
            record: Box::new(record),
            revision: entry.revision,
        })
    }
}
