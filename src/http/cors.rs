//! Who may use the API from a page of another origin (CORS), in one place.
//!
//! Reading is public and needs no token, so every read-only endpoint and both streams
//! (`fetch`, `EventSource`, WebSocket) answer any origin. Changing the clock from a browser
//! is allowed only to the page's own origin and to the origins given with `--cors-origin`:
//! a presenter's token typed into some other site's page must not move the clock. That
//! rule is the clock handler's: every answer, a refusal included, carries the CORS headers,
//! so that a page of any origin can read why it was refused (a preflight refused by CORS
//! would leave it only "Failed to fetch"). A session's clock is its creator's, who holds its
//! token: any origin may create, change and end sessions. Requests without an `Origin` header (curl,
//! servers, the tests' own clients) are not a browser's and are not limited here.

use actix_cors::Cors;
use actix_web::http::{Method, header};

/// The origins given with `--cors-origin`, as `scheme://host[:port]`.
#[derive(Clone, Debug, Default)]
pub struct CorsOrigins(Vec<String>);

impl CorsOrigins {
    /// The origins, each as [`check_origin`] accepts it.
    pub fn new(origins: &[String]) -> Result<CorsOrigins, String> {
        let checked: Result<Vec<String>, String> = origins
            .iter()
            .map(|o| check_origin(o).map_err(|e| format!("--cors-origin {o}: {e}")))
            .collect();
        Ok(CorsOrigins(checked?))
    }

    /// Whether a browser page of `origin` may change the clock of the server reached at
    /// `host` (the request's `Host`).
    pub fn may_change(&self, origin: &str, host: Option<&str>) -> bool {
        same_origin(origin, host) || self.listed(origin)
    }

    fn listed(&self, origin: &str) -> bool {
        self.0.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// actix-cors for the endpoints actix answers (the streams write their own heads,
    /// see [`STREAM_HEADER`]): every origin gets the headers that let it read the answer,
    /// and preflights for `Authorization` and `Content-Type` pass; who may change the clock
    /// is [`CorsOrigins::may_change`], asked by its handler.
    pub fn middleware(&self) -> Cors {
        Cors::default()
            .allowed_origin_fn(|_, _| true)
            .allowed_methods([Method::GET, Method::HEAD, Method::POST, Method::DELETE])
            .allowed_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("last-event-id"),
                header::HeaderName::from_static("x-control-token"),
            ])
            .max_age(3600)
    }
}

/// Checks an origin's form: what a browser sends in `Origin` (a scheme, a host, maybe a
/// port; no path, no slash at the end), so that a typo is an error at start rather than a
/// refusal in front of the audience. Returns it in lower case.
pub fn check_origin(origin: &str) -> Result<String, String> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or("expected http://HOST[:PORT] or https://HOST[:PORT]")?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ', '*']) {
        return Err(
            "an origin is a scheme, a host and maybe a port, nothing else \
             (e.g. http://localhost:5173)"
                .into(),
        );
    }
    Ok(origin.to_ascii_lowercase())
}

/// What the streams' own response heads carry: the stream is public.
pub const STREAM_HEADER: &str = "access-control-allow-origin: *\r\n";

/// Whether `origin` is the origin of the server reached at `host`.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((rest, host), (Some(r), Some(h)) if r.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_at_start() {
        for bad in [
            "localhost:5173",
            "http://",
            "http://a.example/",
            "http://a/b",
            "*",
        ] {
            assert!(CorsOrigins::new(&[bad.into()]).is_err(), "{bad}");
        }
        let ok = CorsOrigins::new(&["http://Localhost:5173".into()]).unwrap();
        assert!(ok.may_change("http://localhost:5173", Some("127.0.0.1:8080")));
        assert!(!ok.may_change("http://localhost:5174", Some("127.0.0.1:8080")));
    }

    #[test]
    fn the_servers_own_page_may_change_the_clock() {
        let none = CorsOrigins::default();
        assert!(none.may_change("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(!none.may_change("http://127.0.0.1:9000", Some("127.0.0.1:8080")));
        assert!(!none.may_change("null", Some("127.0.0.1:8080")));
        let some = CorsOrigins::new(&["http://a:1".into()]).unwrap();
        assert!(some.may_change("http://a:1", Some("h:1")));
        assert!(some.may_change("http://h:1", Some("h:1")));
        assert!(!some.may_change("http://elsewhere:1", Some("h:1")));
    }
}
