//! The clock shared by replicas through NATS JetStream: one key-value entry holds the
//! [`ClockRecord`]; every replica watches it and runs the same clock from it; a change is
//! written with compare-and-set on the entry's revision, so two presenters cannot race.
//!
//! Only changes cross NATS (a few hundred bytes each), never events: each replica reads the
//! same dataset and computes the same windows from the same anchors.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::ClockRecord;
use crate::dataset::Dataset;

/// The bucket that holds the clocks (one key per dataset).
pub const BUCKET: &str = "caspers_clock";

/// How long a NATS request may take before the clock is said to be unreachable.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Why a write did not happen.
#[derive(Debug)]
pub enum UpdateError {
    /// Another replica wrote first.
    Conflict,
    Unavailable(String),
}

pub struct SharedClock {
    pub url: String,
    client: async_nats::Client,
    kv: kv::Store,
    key: String,
    ds_identity: crate::dataset::DatasetIdentity,
    looping: bool,
}

/// A NATS server as `--nats` gives it, split into where to connect and how to
/// authenticate: credentials in the URL (`nats://USER:PASSWORD@host` or
/// `nats://TOKEN@host`, percent-encoded) are taken out of it, so that no log line, error
/// or `/healthz` answer, which all name the server by `url`, can show them.
#[derive(Clone)]
pub struct NatsServer {
    /// The URL without credentials.
    pub url: String,
    auth: NatsAuth,
}

#[derive(Clone)]
enum NatsAuth {
    None,
    UserPassword(String, String),
    Token(String),
    /// A NATS credentials file (a user JWT and its NKey seed).
    CredsFile(std::path::PathBuf),
}

impl std::fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match &self.auth {
            NatsAuth::None => "none",
            NatsAuth::UserPassword(..) => "user and password",
            NatsAuth::Token(_) => "token",
            NatsAuth::CredsFile(_) => "credentials file",
        };
        write!(f, "{} (authentication: {auth})", self.url)
    }
}

impl NatsServer {
    /// Reads `--nats URL` and `--nats-creds FILE`.
    pub fn parse(text: &str, creds: Option<&std::path::Path>) -> Result<NatsServer, String> {
        let addr: async_nats::ServerAddr = text.parse().map_err(|e| {
            format!("--nats: not a NATS URL ({e}); expected e.g. nats://127.0.0.1:4222")
        })?;
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| "--nats: the credentials in the URL are not UTF-8".to_string())
        };
        let in_url = match (addr.username(), addr.password()) {
            (Some(user), Some(password)) => {
                NatsAuth::UserPassword(decode(user)?, decode(password)?)
            }
            (Some(token), None) => NatsAuth::Token(decode(token)?),
            _ => NatsAuth::None,
        };
        let auth = match (in_url, creds) {
            (NatsAuth::None, Some(file)) => NatsAuth::CredsFile(file.to_path_buf()),
            (auth, None) => auth,
            (_, Some(_)) => {
                return Err(
                    "--nats-creds and credentials in the --nats URL: give one of them".into(),
                );
            }
        };
        let mut url = addr.into_inner();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(NatsServer {
            url: url.as_str().trim_end_matches('/').to_string(),
            auth,
        })
    }

    /// Connects (reconnecting by itself whenever the connection drops).
    pub async fn connect(&self) -> Result<async_nats::Client, String> {
        let url = &self.url;
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64 * 100).clamp(100, 1000))
            });
        options = match &self.auth {
            NatsAuth::None => options,
            NatsAuth::UserPassword(user, password) => {
                options.user_and_password(user.clone(), password.clone())
            }
            NatsAuth::Token(token) => options.token(token.clone()),
            NatsAuth::CredsFile(file) => options.credentials_file(file).await.map_err(|e| {
                format!(
                    "--nats-creds {}: not a NATS credentials file ({e}); give the .creds \
                     file of a NATS user (nsc generate creds)",
                    file.display()
                )
            })?,
        };
        let client = tokio::time::timeout(Duration::from_secs(10), options.connect(url.as_str()))
            .await
            .map_err(|_| format!("NATS at {url} did not answer within 10 s"))?;
        client.map_err(|e| {
            let hint = match e.kind() {
                async_nats::ConnectErrorKind::AuthorizationViolation
                | async_nats::ConnectErrorKind::Authentication => match self.auth {
                    NatsAuth::None => {
                        "; it needs authentication: put USER:PASSWORD@ or TOKEN@ in the \
                         URL, or give --nats-creds FILE"
                    }
                    _ => "; check the credentials given with --nats or --nats-creds",
                },
                _ => "",
            };
            format!("cannot connect to NATS at {url}: {e}{hint}")
        })
    }
}

/// The bucket that holds the clocks, created by the first replica.
pub(super) async fn bucket(client: &async_nats::Client, url: &str) -> Result<kv::Store, String> {
    let js = jetstream::new(client.clone());
    Ok(match js.get_key_value(BUCKET).await {
        Ok(kv) => kv,
        Err(_) => {
            // The bucket's stream, made by hand: the client's own bucket creation asks
            // for account fields that Debian's nats-server 2.9 does not send.
            js.get_or_create_stream(jetstream::stream::Config {
                    name: format!("KV_{BUCKET}"),
                    subjects: vec![format!("$KV.{BUCKET}.>")],
                    max_messages_per_subject: 8,
                    storage: jetstream::stream::StorageType::File,
                    discard: jetstream::stream::DiscardPolicy::New,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    num_replicas: 1,
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    format!("cannot create the key-value bucket {BUCKET} in NATS at {url} (is JetStream on? start nats-server with -js): {e}")
                })?;
            js.get_key_value(BUCKET).await.map_err(|e| {
                format!("cannot open the key-value bucket {BUCKET} in NATS at {url}: {e}")
            })?
        }
    })
}

/// The dataset's part of a key: replicas of other datasets share the bucket.
pub(super) fn dataset_key(ds: &Dataset) -> String {
    ds.fingerprint[..16.min(ds.fingerprint.len())].to_string()
}

impl SharedClock {
    /// The clock kept under `key` of `kv` (a session's), with records made `looping` or
    /// not.
    pub(super) fn at_key(
        client: async_nats::Client,
        url: &str,
        kv: kv::Store,
        key: String,
        ds: &crate::dataset::DatasetIdentity,
        looping: bool,
    ) -> SharedClock {
        SharedClock {
            url: url.into(),
            client,
            kv,
            key,
            ds_identity: ds.clone(),
            looping,
        }
    }

    /// Opens the dataset's clock in NATS; the first replica creates it with `initial`.
    /// Returns it with the record in force and its revision.
    pub async fn open(
        client: async_nats::Client,
        url: &str,
        ds: &Dataset,
        looping: bool,
        initial: ClockRecord,
    ) -> Result<(SharedClock, ClockRecord, u64), String> {
        let kv = bucket(&client, url).await?;
        let key = format!("clock.{}", dataset_key(ds));
        let shared = SharedClock::at_key(client, url, kv, key, &ds.identity(), looping);
        for _ in 0..3 {
            if let Ok((record, revision)) = shared.latest().await {
                return Ok((shared, record, revision));
            }
            match shared
                .kv
                .create(&shared.key, initial.to_bytes().into())
                .await
            {
                Ok(revision) => return Ok((shared, initial, revision)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("cannot write the clock to NATS at {url}: {e}")),
            }
        }
        let (record, revision) = shared.latest().await?;
        Ok((shared, record, revision))
    }

    /// Whether NATS is reachable now.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// What a refused change says while NATS is away.
    pub fn unreachable(&self) -> String {
        format!(
            "the clock is shared through NATS at {}, which is unreachable: changes are refused until it is back (the stream goes on meanwhile)",
            self.url
        )
    }

    /// The record in force, with its revision.
    pub async fn latest(&self) -> Result<(ClockRecord, u64), String> {
        let entry = tokio::time::timeout(TIMEOUT, self.kv.entry(self.key.clone()))
            .await
            .map_err(|_| self.unreachable())?
            .map_err(|e| format!("cannot read the clock from NATS at {}: {e}", self.url))?;
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
            return Err(format!(
                "NATS at {} holds no clock for this dataset",
                self.url
            ));
        };
        let record = self.parse(&entry.value)?;
        Ok((record, entry.revision))
    }

    fn parse(&self, bytes: &[u8]) -> Result<ClockRecord, String> {
        ClockRecord::from_bytes(bytes, &self.ds_identity, Some(self.looping))
            .map_err(|why| format!("the clock in NATS at {} cannot be used: {why}", self.url))
    }

    /// Writes `record` if the entry is still at `revision`.
    pub async fn update(&self, record: &ClockRecord, revision: u64) -> Result<u64, UpdateError> {
        let write = self
            .kv
            .update(&self.key, record.to_bytes().into(), revision);
        match tokio::time::timeout(TIMEOUT, write).await {
            Err(_) => Err(UpdateError::Unavailable(self.unreachable())),
            Ok(Ok(revision)) => Ok(revision),
            Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                Err(UpdateError::Conflict)
            }
            Ok(Err(e)) if !self.is_connected() => Err(UpdateError::Unavailable(format!(
                "{} ({e})",
                self.unreachable()
            ))),
            Ok(Err(e)) => Err(UpdateError::Unavailable(format!(
                "cannot write the clock to NATS at {}: {e}",
                self.url
            ))),
        }
    }

    /// Sends every record written from now on (and the latest at once) to `tx`, watching
    /// again after NATS comes back.
    pub fn watch<M: Send + 'static>(
        self: &Arc<Self>,
        tx: mpsc::Sender<M>,
        wrap: fn(ClockRecord, u64) -> M,
    ) {
        // A watch may stall across a reconnection: a read once a second catches up anyway
        // (the clock task ignores revisions it has seen).
        let (me, poll_tx) = (Arc::clone(self), tx.clone());
        tokio::spawn(async move {
            while !poll_tx.is_closed() {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if !me.is_connected() {
                    continue;
                }
                if let Ok((record, revision)) = me.latest().await {
                    let _ = poll_tx.send(wrap(record, revision)).await;
                }
            }
        });
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                if tx.is_closed() {
                    return;
                }
                match me.kv.watch_with_history(&me.key).await {
                    Ok(mut updates) => {
                        while let Some(Ok(entry)) = updates.next().await {
                            if entry.operation != kv::Operation::Put {
                                continue;
                            }
                            match me.parse(&entry.value) {
                                Ok(record) => {
                                    if tx.send(wrap(record, entry.revision)).await.is_err() {
                                        return;
                                    }
                                }
                                Err(e) => log::error!("ignoring a clock record: {e}"),
                            }
                        }
                        log::warn!(
                            "lost the watch on the clock in NATS at {}; watching again",
                            me.url
                        );
                    }
                    Err(e) => log::debug!("cannot watch the clock in NATS yet: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }
}
