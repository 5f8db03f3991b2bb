//! Who may open a stream: at most `--max-clients` streams in all and
//! `--max-clients-per-ip` from one client address, so that one address cannot take every
//! place. A refusal says which limit and which flag; the log says so once a minute per
//! address, not once per attempt.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse};

/// A refusal is logged at most this often per address.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The stream limits and the streams open now.
pub(crate) struct Admission {
    /// Streams at most, in all.
    max_clients: usize,
    /// Streams at most from one client address (0: no limit).
    max_per_address: usize,
    /// Proxies whose `X-Forwarded-For` names the client.
    trusted_proxies: Vec<IpAddr>,
    open: Mutex<Open>,
    /// Streams refused, for /metrics.
    pub rejected: AtomicU64,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
    /// When a refusal was last logged, by address (`None`: the total limit).
    logged: HashMap<Option<IpAddr>, Instant>,
}

/// Holds a stream's places while it is open.
pub(crate) struct Slot {
    admission: Arc<Admission>,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock().expect("admission");
        open.total -= 1;
        if let Some(n) = open.per_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                open.per_address.remove(&self.address);
            }
        }
    }
}

impl Admission {
    pub fn new(max_clients: usize, max_per_address: usize, trusted_proxies: Vec<IpAddr>) -> Self {
        Admission {
            max_clients,
            max_per_address,
            trusted_proxies,
            open: Mutex::default(),
            rejected: AtomicU64::new(0),
        }
    }

    /// The client's address: the peer's, or, when the peer is a trusted proxy, the
    /// nearest address in `X-Forwarded-For` that is not one.
    pub fn client_address(&self, req: &HttpRequest) -> IpAddr {
        let peer = req
            .peer_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        forwarded
            .into_iter()
            .rev()
            .find(|a| !self.trusted_proxies.contains(a))
            .unwrap_or(peer)
    }

    /// Takes a place for a stream from `req`'s client, or says why not.
    pub fn admit(self: &Arc<Self>, req: &HttpRequest) -> Result<Slot, Refusal> {
        let address = self.client_address(req);
        let mut open = self.open.lock().expect("admission");
        let from_address = open.per_address.get(&address).copied().unwrap_or(0);
        let refusal = if open.total >= self.max_clients {
            Some((None, "max-clients", self.max_clients))
        } else if self.max_per_address > 0 && from_address >= self.max_per_address {
            Some((Some(address), "max-clients-per-ip", self.max_per_address))
        } else {
            None
        };
        if let Some((whose, flag, limit)) = refusal {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            let log_now = open
                .logged
                .get(&whose)
                .is_none_or(|t| t.elapsed() >= LOG_EVERY);
            if log_now {
                if open.logged.len() > 10_000 {
                    open.logged.retain(|_, t| t.elapsed() < LOG_EVERY);
                }
                open.logged.insert(whose, Instant::now());
                match whose {
                    None => log::warn!(
                        "refusing streams: {limit} are open, as many as --{flag} allows \
                         (said once a minute)"
                    ),
                    Some(a) => log::warn!(
                        "refusing streams from {a}: it has {limit} open, as many as --{flag} \
                         allows (said once a minute per address)"
                    ),
                }
            }
            return Err(Refusal {
                per_address: whose.is_some(),
                flag,
                limit,
            });
        }
        open.total += 1;
        *open.per_address.entry(address).or_default() += 1;
        Ok(Slot {
            admission: Arc::clone(self),
            address,
        })
    }
}

/// Why a stream was refused: which limit (the flag that sets it) and its value.
pub(crate) struct Refusal {
    /// The client's address has as many as it may (else the whole server does).
    per_address: bool,
    flag: &'static str,
    limit: usize,
}

impl Refusal {
    /// 503 when the server is full, 429 when the address is; the JSON names the limit.
    pub fn response(&self) -> HttpResponse {
        let (mut response, whose) = if self.per_address {
            (HttpResponse::TooManyRequests(), "your address has")
        } else {
            (HttpResponse::ServiceUnavailable(), "the server has")
        };
        response
            .insert_header(("Retry-After", "5"))
            .json(serde_json::json!({
                "error": format!(
                    "{whose} as many streams open as --{} allows ({})",
                    self.flag, self.limit
                ),
                "limit": self.flag,
            }))
    }
}
