//! Query parameters of the streams, checked: anything unknown or malformed is a 400 that
//! says what and how to fix it.

use std::collections::HashMap;

use actix_web::HttpResponse;

use crate::events::Filter;

/// A 400 with a JSON error message.
pub fn bad_request(message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(serde_json::json!({ "error": message }))
}

/// What a stream request asks for.
pub struct StreamParams {
    pub filter: Filter,
    pub snapshot: bool,
    pub from: Option<String>,
}

const KNOWN: [&str; 4] = ["location_id", "event_type", "snapshot", "from"];

/// The stream's parameters as the query gives them, checked against the dataset's
/// kitchens by `hub`.
pub fn stream_params(
    query: &HashMap<String, String>,
    hub: &crate::fanout::hub::Hub,
) -> Result<StreamParams, String> {
    let params = parse_stream_query(query)?;
    hub.check_filter(&params.filter)?;
    Ok(params)
}

/// The stream's parameters, checked on their own. Client input: refused with a message,
/// never a panic (fuzzed: fuzz/fuzz_targets/stream_query.rs).
pub fn parse_stream_query(query: &HashMap<String, String>) -> Result<StreamParams, String> {
    if let Some(unknown) = query.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!(
            "unknown query parameter '{unknown}' (known: {})",
            KNOWN.join(", ")
        ));
    }
    let filter = Filter::parse(
        query.get("location_id").map(String::as_str),
        query.get("event_type").map(String::as_str),
    )?;
    let snapshot = match query.get("snapshot").map(String::as_str) {
        None | Some("0" | "false" | "") => false,
        Some("1" | "true") => true,
        Some(other) => return Err(format!("snapshot must be 1 or 0, not '{other}'")),
    };
    Ok(StreamParams {
        filter,
        snapshot,
        from: query.get("from").cloned(),
    })
}
