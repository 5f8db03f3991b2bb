//! Every emitted event, also published to NATS JetStream, so that other consumers (a
//! stream processor, NATS's WebSocket gateway) take the feed from an engine built for
//! distribution.
//!
//! Subjects are `PREFIX.<location_id>.<event_type>`; each message carries the event's
//! stable id as `Nats-Msg-Id`, so JetStream keeps one copy of an event however many
//! replicas publish it, or however often a window is published again after an error.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture};
use tokio::sync::mpsc;

use crate::dataset::Dataset;
use crate::events::{EVENT_ID_LEN, expand_event};
use crate::timeline::{Emitter, Timeline};

/// The stream that stores a prefix's events.
pub fn stream_name(prefix: &str) -> String {
    let clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("CASPERS_{clean}")
}

/// A clock's emitter that publishes its windows, in order, from a task of its own (the
/// clock never waits on NATS).
pub struct Publisher {
    windows: mpsc::UnboundedSender<(i64, i64)>,
}

impl Emitter for Publisher {
    fn emit(&self, a: i64, b: i64) {
        // The task ends only with the runtime.
        let _ = self.windows.send((a, b));
    }
}

impl Publisher {
    /// Makes sure the stream exists, then publishes every window emitted to it, in order;
    /// a window that fails is published again until NATS takes it.
    pub async fn start(
        client: async_nats::Client,
        prefix: &str,
        ds: Arc<Dataset>,
        timeline: Timeline,
    ) -> Result<Publisher, String> {
        if prefix.is_empty() || prefix.contains(['*', '>', ' ']) || prefix.ends_with('.') {
            return Err(format!(
                "--publish-nats '{prefix}' is not a subject prefix (e.g. caspers.events)"
            ));
        }
        let js = jetstream::new(client);
        js.get_or_create_stream(jetstream::stream::Config {
            name: stream_name(prefix),
            subjects: vec![format!("{prefix}.>")],
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("cannot create the JetStream stream for {prefix}.>: {e}"))?;
        let (tx, mut rx) = mpsc::unbounded_channel::<(i64, i64)>();
        let prefix = prefix.to_string();
        tokio::spawn(async move {
            while let Some((a, b)) = rx.recv().await {
                let mut wait = Duration::from_millis(200);
                while let Err(e) = publish_window(&js, &prefix, &ds, &timeline, a, b).await {
                    log::warn!("publishing to NATS failed ({e}); trying the window again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        });
        Ok(Publisher { windows: tx })
    }
}

async fn publish_window(
    js: &jetstream::Context,
    prefix: &str,
    ds: &Dataset,
    timeline: &Timeline,
    a: i64,
    b: i64,
) -> Result<(), String> {
    let mut messages = Vec::new();
    timeline.for_each_event(ds, a, b, 0, |pos, shift| {
        let mut json = Vec::with_capacity(256);
        expand_event(&ds.events, pos, shift, &mut json);
        let subject = format!(
            "{prefix}.{}.{}",
            ds.events.location_id(pos),
            ds.events.event_type(pos).name()
        );
        messages.push((subject, json));
    });
    let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(messages.len());
    for (subject, json) in messages {
        // The expansion starts with {"event_id":"<36 characters>".
        const AT: usize = "{\"event_id\":\"".len();
        let id = String::from_utf8_lossy(&json[AT..AT + EVENT_ID_LEN]).into_owned();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        let ack = js
            .publish_with_headers(subject, headers, json.into())
            .await
            .map_err(|e| e.to_string())?;
        acks.push(ack);
    }
    for ack in acks {
        ack.await.map_err(|e| e.to_string())?;
    }
    Ok(())
}
