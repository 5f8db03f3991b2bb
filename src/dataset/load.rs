//! Loading and validating `events.parquet` into an [`EventIndex`].
//!
//! Every row is checked as it is read: a bad file is refused with the file, column and row
//! named, never a panic and never a half-loaded index.

use std::path::Path;

use arrow_array::{Array, StringArray};
use serde::de::IgnoredAny;

use super::EventType;
use super::columns::{Batch, ColumnSpec, Kind, read_columns};
use super::{DatasetError, EventIndex, IndexBuilder, RawEvent};

const fn col(name: &'static str, kind: Kind, required: bool) -> ColumnSpec {
    ColumnSpec {
        name,
        kind,
        required,
    }
}

/// The columns of `events.parquet` (docs/batch-replay.md, the dataset). Every one must be
/// present.
const COLUMNS: [ColumnSpec; 13] = [
    col("order_id", Kind::Text, true),
    col("location_id", Kind::Int, true),
    col("event_type_id", Kind::Int, true),
    col("ts_seconds", Kind::Int, true),
    col("sequence", Kind::Int, true),
    col("customer_lat", Kind::Float, true),
    col("customer_lon", Kind::Float, true),
    col("customer_addr", Kind::Text, true),
    col("items_json", Kind::Text, true),
    col("route_json", Kind::Text, true),
    col("ping_lat", Kind::Float, true),
    col("ping_lon", Kind::Float, true),
    col("ping_progress", Kind::Float, true),
];

// Positions in COLUMNS.
const ORDER_ID: usize = 0;
const LOCATION_ID: usize = 1;
const EVENT_TYPE_ID: usize = 2;
const TS_SECONDS: usize = 3;
const SEQUENCE: usize = 4;
const CUSTOMER_LAT: usize = 5;
const CUSTOMER_LON: usize = 6;
const CUSTOMER_ADDR: usize = 7;
const ITEMS_JSON: usize = 8;
const ROUTE_JSON: usize = 9;
const PING_LAT: usize = 10;
const PING_LON: usize = 11;
const PING_PROGRESS: usize = 12;

/// Years 0000..=9999, the range the `ts` text can show.
const TS_RANGE: std::ops::RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;

/// Reads, checks and indexes the events file at `path`.
pub fn read_events(path: &Path) -> Result<EventIndex, DatasetError> {
    let mut builder = IndexBuilder::default();
    let rows = read_columns(
        path,
        &COLUMNS,
        |batch| check_json(path, batch),
        |batch, json_error| {
            if builder.is_empty() {
                let text = [CUSTOMER_ADDR, ITEMS_JSON, ROUTE_JSON].map(|c| batch.file_bytes[c]);
                builder = IndexBuilder::with_capacity(batch.file_rows, text.iter().sum());
            }
            push_batch(path, batch, json_error, &mut builder)
        },
    )?;
    if builder.is_empty() {
        return Err(DatasetError::Empty { path: path.into() });
    }
    debug_assert_eq!(rows, builder.len());
    Ok(builder.finish())
}

fn text(a: &StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}

fn bad_value(path: &Path, b: &Batch, column: usize, i: usize, message: String) -> DatasetError {
    DatasetError::BadValue {
        path: path.into(),
        column: COLUMNS[column].name.into(),
        row: b.first_row + i,
        message,
    }
}

/// The first row of the batch whose items or route JSON does not parse, with its error.
/// Runs on the decoding thread: parsing the JSON is a fifth of a load.
fn check_json(path: &Path, b: &Batch) -> Option<(usize, DatasetError)> {
    let (types, items, route) = (
        b.int(EVENT_TYPE_ID)?,
        b.text(ITEMS_JSON)?,
        b.text(ROUTE_JSON)?,
    );
    (0..b.len).find_map(|i| {
        if types.is_null(i) {
            return None;
        }
        let error = match EventType::from_id(types.value(i)) {
            Some(EventType::OrderCreated) => {
                let json = text(items, i)?;
                let e = serde_json::from_str::<Vec<IgnoredAny>>(json).err()?;
                bad_value(
                    path,
                    b,
                    ITEMS_JSON,
                    i,
                    format!("not a JSON list of items ({e})"),
                )
            }
            Some(EventType::DriverPickedUp) => {
                let json = text(route, i)?;
                let e = check_route(json.as_bytes()).err()?;
                bad_value(
                    path,
                    b,
                    ROUTE_JSON,
                    i,
                    format!("not a JSON list of [lat, lon] ({e})"),
                )
            }
            _ => return None,
        };
        Some((i, error))
    })
}

/// Checks one batch's rows and hands them to the builder. `json_error` is what
/// [`check_json`] found; it is reported when its row comes, after any earlier row's error.
fn push_batch(
    path: &Path,
    b: &Batch,
    mut json_error: Option<(usize, DatasetError)>,
    builder: &mut IndexBuilder,
) -> Result<(), DatasetError> {
    let bad = |column: usize, i: usize, message: String| bad_value(path, b, column, i, message);
    let null = |column: usize, i: usize| bad(column, i, "null in a required column".into());

    let (order_id, addr, items, route) = (
        b.text(ORDER_ID).expect("required"),
        b.text(CUSTOMER_ADDR).expect("required"),
        b.text(ITEMS_JSON).expect("required"),
        b.text(ROUTE_JSON).expect("required"),
    );
    let ints = [LOCATION_ID, EVENT_TYPE_ID, TS_SECONDS, SEQUENCE].map(|c| b.int(c).expect("req"));
    let floats = [
        CUSTOMER_LAT,
        CUSTOMER_LON,
        PING_LAT,
        PING_LON,
        PING_PROGRESS,
    ]
    .map(|c| b.float(c).expect("required"));

    for i in 0..b.len {
        if json_error.as_ref().is_some_and(|(row, _)| *row == i) {
            return Err(json_error.take().expect("checked").1);
        }
        let int = |k: usize, column: usize| -> Result<i64, DatasetError> {
            let a = ints[k];
            if a.is_null(i) {
                Err(null(column, i))
            } else {
                Ok(a.value(i))
            }
        };
        // Null and NaN both mean "not set" (pandas writes NaN for a missing float).
        let float = |k: usize, column: usize| -> Result<f32, DatasetError> {
            let a = floats[k];
            if a.is_null(i) || a.value(i).is_nan() {
                return Ok(f32::NAN);
            }
            let v = a.value(i);
            if !v.is_finite() || v.abs() > f64::from(f32::MAX) {
                return Err(bad(column, i, format!("{v} is not a finite float32")));
            }
            Ok(v as f32)
        };

        let oid = text(order_id, i).ok_or_else(|| null(ORDER_ID, i))?;
        if oid.is_empty()
            || oid.len() > 32
            || !oid
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        {
            return Err(bad(
                ORDER_ID,
                i,
                format!("'{oid}' is not an order id (1 to 32 of A-Z, a-z, 0-9, '_', '-')"),
            ));
        }
        let location = int(0, LOCATION_ID)?;
        let location_id = u8::try_from(location)
            .map_err(|_| bad(LOCATION_ID, i, format!("{location} is outside 0..255")))?;
        let type_id = int(1, EVENT_TYPE_ID)?;
        let event_type = EventType::from_id(type_id).ok_or_else(|| {
            bad(
                EVENT_TYPE_ID,
                i,
                format!("unknown event type {type_id} (expected 1..8)"),
            )
        })?;
        let ts_seconds = int(2, TS_SECONDS)?;
        if !TS_RANGE.contains(&ts_seconds) {
            return Err(bad(
                TS_SECONDS,
                i,
                format!("{ts_seconds} is outside years 0..9999"),
            ));
        }
        let seq = int(3, SEQUENCE)?;
        let sequence = u16::try_from(seq)
            .map_err(|_| bad(SEQUENCE, i, format!("{seq} is outside 0..65535")))?;

        let mut row = RawEvent {
            order_id: oid,
            location_id,
            event_type,
            ts_seconds,
            sequence,
            lat: f32::NAN,
            lon: f32::NAN,
            progress: f32::NAN,
            addr: None,
            json: None,
        };
        let pair = |lat_col: usize, lon_col: usize, k: usize| -> Result<_, DatasetError> {
            let (lat, lon) = (float(k, lat_col)?, float(k + 1, lon_col)?);
            if lat.is_nan() != lon.is_nan() {
                let missing = if lat.is_nan() { lat_col } else { lon_col };
                return Err(null(missing, i));
            }
            Ok((lat, lon))
        };
        match event_type {
            EventType::OrderCreated => {
                (row.lat, row.lon) = pair(CUSTOMER_LAT, CUSTOMER_LON, 0)?;
                if row.lat.is_nan() {
                    return Err(null(CUSTOMER_LAT, i));
                }
                row.addr = Some(text(addr, i).ok_or_else(|| null(CUSTOMER_ADDR, i))?);
                let json = text(items, i).ok_or_else(|| null(ITEMS_JSON, i))?;
                serde_json::from_str::<Vec<IgnoredAny>>(json)
                    .map_err(|e| bad(ITEMS_JSON, i, format!("not a JSON list of items ({e})")))?;
                row.json = Some(json);
            }
            EventType::DriverPickedUp => {
                if let Some(json) = text(route, i) {
                    serde_json::from_str::<Vec<(f64, f64)>>(json).map_err(|e| {
                        bad(
                            ROUTE_JSON,
                            i,
                            format!("not a JSON list of [lat, lon] ({e})"),
                        )
                    })?;
                    row.json = Some(json);
                }
            }
            EventType::DriverPing => {
                (row.lat, row.lon) = pair(PING_LAT, PING_LON, 2)?;
                row.progress = float(4, PING_PROGRESS)?;
                if row.lat.is_nan() != row.progress.is_nan() {
                    let missing = if row.lat.is_nan() {
                        PING_LAT
                    } else {
                        PING_PROGRESS
                    };
                    return Err(null(missing, i));
                }
            }
            EventType::Delivered => {
                (row.lat, row.lon) = pair(CUSTOMER_LAT, CUSTOMER_LON, 0)?;
            }
            EventType::GkStarted
            | EventType::GkFinished
            | EventType::GkReady
            | EventType::DriverArrived => {}
        }
        builder.push(row);
    }
    Ok(())
}

/// Checks that `json` is a JSON list of `[number, number]` pairs. Hand-written because it
/// runs over ~100 MB of routes per load and need not parse the numbers, only their syntax:
/// with `serde_json::from_str::<Vec<[f64; 2]>>` instead, a load from parquet took 0.97-0.99 s
/// against 0.74 s with this scanner, at the edge of the 1.0 s target (`cargo bench --bench
/// dataset`, 2-core EPYC VM, 2026-11-25). serde_json still words the error for a bad route.
fn check_route(json: &[u8]) -> Result<(), String> {
    let mut p = Scanner { s: json, i: 0 };
    p.expect(b'[')?;
    if !p.eat(b']') {
        loop {
            p.expect(b'[')?;
            p.number()?;
            p.expect(b',')?;
            p.number()?;
            p.expect(b']')?;
            if p.eat(b']') {
                break;
            }
            p.expect(b',')?;
        }
    }
    p.skip_ws();
    match p.s.get(p.i) {
        None => Ok(()),
        Some(_) => Err(format!("trailing characters at byte {}", p.i)),
    }
}

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        let hit = self.s.get(self.i) == Some(&c);
        self.i += usize::from(hit);
        hit
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    /// A JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
    fn number(&mut self) -> Result<(), String> {
        self.skip_ws();
        let start = self.i;
        let bad = |i: usize| Err(format!("expected a number at byte {i}"));
        self.i += usize::from(self.s.get(self.i) == Some(&b'-'));
        let int_start = self.i;
        let int_digits = self.digits();
        if int_digits == 0 || (int_digits > 1 && self.s[int_start] == b'0') {
            return bad(start);
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return bad(start);
            }
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            self.i += usize::from(matches!(self.s.get(self.i), Some(b'+' | b'-')));
            if self.digits() == 0 {
                return bad(start);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::check_route;

    #[test]
    fn route_syntax() {
        for ok in ["[]", " [ [37.5, -122.25] ,[1e3,-0.5E-2]] ", "[[0,0]]"] {
            assert_eq!(check_route(ok.as_bytes()), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "[",
            "[[1,2]",
            "[[1,2],]",
            "[[1]]",
            "[[1,2,3]]",
            "[[01,2]]",
            "[[1.,2]]",
            "[[\"1\",2]]",
            "[[1,2]] x",
            "[[NaN,2]]",
            "{}",
            "[[-,2]]",
            "[[1e,2]]",
        ] {
            assert!(check_route(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
