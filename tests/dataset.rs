//! The dataset core: loading (pandas' layout and its equivalents), rejection of bad files,
//! ordering, and the one expansion, byte for byte.

mod common;

use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{DictionaryArray, Int32Array, LargeStringArray, StringArray};
use caspers_replay::dataset::{Dataset, DatasetError};
use caspers_replay::events::{EventShift, expand_event};
use common::*;

fn expand_all(ds: &Dataset, shift: EventShift) -> Vec<String> {
    let mut buf = Vec::new();
    (0..ds.events.len())
        .map(|pos| {
            buf.clear();
            expand_event(&ds.events, pos, shift, &mut buf);
            String::from_utf8(buf.clone()).unwrap()
        })
        .collect()
}

/// One line per event type, written by hand from docs/batch-replay.md (the event): field
/// order, UTC `ts`, body per type (a JSON string holding JSON), and the UUIDv5 id (ids from Python's uuid5).
const GOLDEN: [&str; 8] = [
    r#"{"event_id":"9dafdb9d-82bb-5b67-b689-1bdbb32f4715","event_type":"order_created","ts":"2024-01-05 12:00:00.000","location_id":1,"order_id":"A7K2M9","sequence":0,"body":"{\"customer_lat\":37.7499,\"customer_lon\":-122.4183,\"customer_addr\":\"3612 Main St\",\"items\":[{\"id\":180,\"name\":\"Chicago \\\"Dog\\\"\",\"price\":6.99,\"qty\":2}]}"}"#,
    r#"{"event_id":"4987a6fd-9fe8-5522-9651-67a5002b70e3","event_type":"gk_started","ts":"2024-01-05 12:02:00.000","location_id":1,"order_id":"A7K2M9","sequence":1,"body":"{}"}"#,
    r#"{"event_id":"466bd912-5937-50b2-9699-01fe739b346c","event_type":"gk_finished","ts":"2024-01-05 12:12:00.000","location_id":1,"order_id":"A7K2M9","sequence":2,"body":"{}"}"#,
    r#"{"event_id":"c84ac5ce-a696-57c8-8d78-cded37f2b94b","event_type":"gk_ready","ts":"2024-01-05 12:14:00.000","location_id":1,"order_id":"A7K2M9","sequence":3,"body":"{}"}"#,
    r#"{"event_id":"8987ee26-ae2a-58ec-9789-013612ed1bc5","event_type":"driver_arrived","ts":"2024-01-05 12:15:00.000","location_id":1,"order_id":"A7K2M9","sequence":4,"body":"{}"}"#,
    r#"{"event_id":"a2c92d82-9bdf-5c8e-a5a5-82b37ab143ae","event_type":"driver_picked_up","ts":"2024-01-05 12:20:00.000","location_id":1,"order_id":"A7K2M9","sequence":5,"body":"{\"route_points\":[[37.791024,-122.392865],[37.78,-122.41],[37.7499,-122.4183]]}"}"#,
    r#"{"event_id":"173357c5-ded7-5d6e-b7fc-ba6f4a075857","event_type":"driver_ping","ts":"2024-01-05 12:21:00.000","location_id":1,"order_id":"A7K2M9","sequence":6,"body":"{\"progress_pct\":42.5,\"loc_lat\":37.78,\"loc_lon\":-122.41}"}"#,
    r#"{"event_id":"be88266e-e264-5f40-9b32-3128e026aafe","event_type":"delivered","ts":"2024-01-05 12:23:00.000","location_id":1,"order_id":"A7K2M9","sequence":7,"body":"{\"delivered_lat\":37.7499,\"delivered_lon\":-122.4183}"}"#,
];

#[test]
fn golden_line_per_event_type() {
    let ds = Dataset::open(&dataset_of("golden", &one_order())).unwrap();
    let lines = expand_all(&ds, EventShift::default());
    assert_eq!(lines.len(), 8);
    for (line, golden) in lines.iter().zip(GOLDEN) {
        assert_eq!(line, golden);
    }
    // Every line is JSON whose body is a JSON string that parses to an object.
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let body: serde_json::Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
        assert!(body.is_object());
    }
    // Without a locations file the four built-in kitchens stand in.
    assert_eq!(ds.kitchens.len(), 4);
}

#[test]
fn loop_suffix_and_shift_change_ts_order_id_and_id() {
    let ds = Dataset::open(&dataset_of("looped", &one_order())).unwrap();
    let shift = EventShift {
        loop_index: 1,
        seconds: 91 * 86_400,
    };
    let last = expand_all(&ds, shift).pop().unwrap();
    assert_eq!(
        last,
        r#"{"event_id":"c2f50365-f3bd-5dee-988c-4f5892d507d5","event_type":"delivered","ts":"2024-04-05 12:23:00.000","location_id":1,"order_id":"A7K2M9-L1","sequence":7,"body":"{\"delivered_lat\":37.7499,\"delivered_lon\":-122.4183}"}"#
    );
}

#[test]
fn optional_bodies_are_empty_objects_when_null() {
    let mut rows = one_order();
    rows[5].route = None;
    rows[6].ping = None;
    rows[7].customer = None;
    let ds = Dataset::open(&dataset_of("empty_bodies", &rows)).unwrap();
    let lines = expand_all(&ds, EventShift::default());
    for line in &lines[5..8] {
        assert!(line.ends_with(r#","body":"{}"}"#), "{line}");
    }
}

#[test]
fn ties_order_by_sequence_then_file_row() {
    let row = |order_id, ts, seq| Row {
        order_id: Some(order_id),
        location_id: 2,
        event_type_id: 3,
        ts_seconds: ts,
        sequence: seq,
        ..Row::default()
    };
    let rows = [
        row("LATE01", 1_704_067_300, 0),
        row("TIEB02", 1_704_067_200, 4),
        row("TIEA03", 1_704_067_200, 2),
        row("TIEC04", 1_704_067_200, 4),
        row("FIRST5", 1_704_067_200, 1),
    ];
    let ds = Dataset::open(&dataset_of("ties", &rows)).unwrap();
    let orders: Vec<String> = (0..ds.events.len())
        .map(|p| String::from_utf8(ds.events.order_id(p).to_vec()).unwrap())
        .collect();
    assert_eq!(orders, ["FIRST5", "TIEA03", "TIEB02", "TIEC04", "LATE01"]);
    assert_eq!(ds.events.range(1_704_067_200, 1_704_067_300), 0..4);
    assert_eq!((ds.start(), ds.end()), (1_704_067_200, 1_704_067_301));
}

#[test]
fn accepts_wide_integers_large_and_dictionary_strings_and_row_groups() {
    let rows = one_order();
    let mut columns = event_columns(&rows);
    columns[1].1 =
        Arc::new(arrow_cast::cast(&columns[1].1, &arrow_schema::DataType::Int64).unwrap());
    columns[2].1 =
        Arc::new(arrow_cast::cast(&columns[2].1, &arrow_schema::DataType::Int16).unwrap());
    columns[4].1 =
        Arc::new(arrow_cast::cast(&columns[4].1, &arrow_schema::DataType::Int32).unwrap());
    let order_ids: DictionaryArray<Int32Type> = rows.iter().map(|r| r.order_id.unwrap()).collect();
    columns[0].1 = Arc::new(order_ids);
    columns[8].1 = Arc::new(LargeStringArray::from_iter(rows.iter().map(|r| r.items)));
    let dir = scratch_dir("equivalent_layouts");
    write_parquet(&dir.join("events.parquet"), columns, 3);
    let ds = Dataset::open(&dir).unwrap();
    assert_eq!(expand_all(&ds, EventShift::default()), GOLDEN);
}

fn open_err(name: &str, rows: &[Row]) -> String {
    let err = Dataset::open(&dataset_of(name, rows)).unwrap_err();
    err.to_string()
}

#[test]
fn rejects_a_null_in_a_required_column_naming_column_and_row() {
    let mut rows = one_order();
    rows[3].order_id = None;
    let msg = open_err("null_order", &rows);
    assert!(
        msg.contains("events.parquet: column 'order_id', row 3: null"),
        "{msg}"
    );
}

#[test]
fn rejects_an_unknown_event_type() {
    let mut rows = one_order();
    rows[2].event_type_id = 9;
    let msg = open_err("unknown_type", &rows);
    assert!(
        msg.contains("column 'event_type_id', row 2: unknown event type 9 (expected 1..8)"),
        "{msg}"
    );
}

#[test]
fn rejects_items_and_route_json_that_does_not_parse() {
    let mut rows = one_order();
    rows[0].items = Some(r#"[{"id": 1,}]"#);
    let msg = open_err("bad_items", &rows);
    assert!(
        msg.contains("column 'items_json', row 0: not a JSON list of items"),
        "{msg}"
    );

    let mut rows = one_order();
    rows[5].route = Some("[[37.7, -122.4], [37.8]]");
    let msg = open_err("bad_route", &rows);
    assert!(
        msg.contains("column 'route_json', row 5: not a JSON list of [lat, lon]"),
        "{msg}"
    );

    // The first bad row is the one reported, whichever check finds it.
    let mut rows = one_order();
    rows[1].event_type_id = 0;
    rows[5].route = Some("nope");
    let msg = open_err("first_error_wins", &rows);
    assert!(msg.contains("row 1: unknown event type 0"), "{msg}");
}

#[test]
fn rejects_an_order_created_without_its_items() {
    let mut rows = one_order();
    rows[0].items = None;
    let msg = open_err("missing_items", &rows);
    assert!(msg.contains("column 'items_json', row 0: null"), "{msg}");
}

#[test]
fn rejects_a_missing_column_and_a_wrong_type() {
    let dir = scratch_dir("missing_column");
    let mut columns = event_columns(&one_order());
    columns.retain(|c| c.0 != "sequence");
    write_parquet(&dir.join("events.parquet"), columns, 100);
    let msg = Dataset::open(&dir).unwrap_err().to_string();
    assert!(
        msg.contains("events.parquet: missing column 'sequence'"),
        "{msg}"
    );

    let dir = scratch_dir("wrong_type");
    let mut columns = event_columns(&one_order());
    columns[3].1 = Arc::new(StringArray::from(vec!["1704456000"; 8]));
    write_parquet(&dir.join("events.parquet"), columns, 100);
    let err = Dataset::open(&dir).unwrap_err();
    assert!(matches!(err, DatasetError::WrongType { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("column 'ts_seconds' has type Utf8, expected an integer"),
        "{msg}"
    );

    let dir = scratch_dir("wrong_float");
    let mut columns = event_columns(&one_order());
    columns[5].1 = Arc::new(Int32Array::from(vec![1; 8]));
    write_parquet(&dir.join("events.parquet"), columns, 100);
    let msg = Dataset::open(&dir).unwrap_err().to_string();
    assert!(
        msg.contains("column 'customer_lat' has type Int32, expected float"),
        "{msg}"
    );
}

#[test]
fn rejects_a_file_that_is_not_parquet_and_a_missing_dataset() {
    let dir = scratch_dir("not_parquet");
    std::fs::write(dir.join("events.parquet"), "order_id,location_id\nA,1\n").unwrap();
    let msg = Dataset::open(&dir).unwrap_err().to_string();
    assert!(
        msg.contains("events.parquet: not a readable parquet file"),
        "{msg}"
    );

    let dir = scratch_dir("truncated");
    let good = dataset_of("truncated_source", &one_order()).join("events.parquet");
    let bytes = std::fs::read(good).unwrap();
    std::fs::write(dir.join("events.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    let msg = Dataset::open(&dir).unwrap_err().to_string();
    assert!(msg.contains("not a readable parquet file"), "{msg}");

    let msg = Dataset::open(&scratch_dir("empty_dir"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("no events.parquet here") && msg.contains("generate"),
        "{msg}"
    );
    let msg = Dataset::open(std::path::Path::new("/nonexistent/ds"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no such dataset directory"), "{msg}");

    let msg = open_err("no_rows", &[]);
    assert!(msg.contains("holds no events"), "{msg}");
}

#[test]
fn reads_the_real_locations_table() {
    let dir = dataset_of("with_locations", &one_order());
    std::fs::copy(
        common::repo_fixtures().join("locations.parquet"),
        dir.join("locations.parquet"),
    )
    .unwrap();
    let ds = Dataset::open(&dir).unwrap();
    let names: Vec<&str> = ds.kitchens.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(
        names,
        ["San Francisco", "Silicon Valley", "Bellevue", "Chicago"]
    );
    let chicago = ds.kitchen(4).unwrap();
    assert_eq!(chicago.code, "chicago");
    assert!((chicago.lat - 41.890664).abs() < 1e-6 && (chicago.lon + 87.632079).abs() < 1e-6);
}

#[test]
fn published_json_schema_matches_the_golden_lines() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/event.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let types: Vec<&str> = schema["properties"]["event_type"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for line in GOLDEN {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v.as_object().unwrap().len(), required.len());
        assert_eq!(field_order(line), required, "fields and their order");
        assert!(types.contains(&v["event_type"].as_str().unwrap()));
        assert!(v["sequence"].is_u64() && v["location_id"].is_u64() && v["body"].is_string());
    }
}

#[test]
fn index_cache_is_reused_rebuilt_when_damaged_and_replaced_when_the_file_changes() {
    let fixture = fixtures_dir().join("events_1day.parquet");
    let dir = scratch_dir("index_cache");
    std::fs::copy(&fixture, dir.join("events.parquet")).unwrap();
    let cache_files = || -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir.join(".caspers-cache"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };

    let uncached = Dataset::open_with(&dir, false).unwrap();
    assert!(cache_files().is_empty(), "open_with(false) writes no cache");
    let want = expand_all(&uncached, EventShift::default());

    let first = Dataset::open(&dir).unwrap();
    let files = cache_files();
    assert_eq!(files.len(), 1);
    assert!(files[0].to_string_lossy().contains(&first.fingerprint));
    assert_eq!(expand_all(&first, EventShift::default()), want);
    let cached = Dataset::open(&dir).unwrap();
    assert_eq!(expand_all(&cached, EventShift::default()), want);

    // Damage: an impossible event type, then a truncated file. Both are rebuilt.
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let types_at = 8 + 5 * 8 + 8481 * (8 + 2 + 1);
    bytes[types_at] = 42;
    std::fs::write(&files[0], &bytes).unwrap();
    assert_eq!(
        expand_all(&Dataset::open(&dir).unwrap(), EventShift::default()),
        want
    );
    assert_ne!(
        std::fs::read(&files[0]).unwrap(),
        bytes,
        "the damaged cache was rewritten"
    );
    let len = std::fs::metadata(&files[0]).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&files[0])
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_eq!(
        expand_all(&Dataset::open(&dir).unwrap(), EventShift::default()),
        want
    );

    // Another events file: another cache, the old one removed.
    write_parquet(
        &dir.join("events.parquet"),
        event_columns(&one_order()),
        100,
    );
    let other = Dataset::open(&dir).unwrap();
    assert_eq!(expand_all(&other, EventShift::default()), GOLDEN);
    let now = cache_files();
    assert_eq!(now.len(), 1);
    assert_ne!(now, files);

    // A bad file is still refused: a cache never stands in for the checks.
    let mut rows = one_order();
    rows[2].event_type_id = 9;
    write_parquet(&dir.join("events.parquet"), event_columns(&rows), 100);
    assert!(Dataset::open(&dir).is_err());
}

#[test]
fn a_cache_with_any_one_byte_changed_is_rebuilt_never_trusted() {
    let fixture = fixtures_dir().join("events_1day.parquet");
    let dir = scratch_dir("index_cache_bytes");
    std::fs::copy(&fixture, dir.join("events.parquet")).unwrap();
    let want = expand_all(&Dataset::open(&dir).unwrap(), EventShift::default());
    let cache = std::fs::read_dir(dir.join(".caspers-cache"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let good = std::fs::read(&cache).unwrap();
    // Every byte of the header and the trailer, and one in every 97 bytes between (route
    // and item text included): a coordinate changed by one digit must not come out.
    let offsets: Vec<usize> = (0..64)
        .chain((64..good.len() - 8).step_by(good.len() / 97))
        .chain(good.len() - 8..good.len())
        .collect();
    for &i in &offsets {
        let mut bad = good.clone();
        bad[i] ^= if i % 2 == 0 { 0x01 } else { 0x10 };
        std::fs::write(&cache, &bad).unwrap();
        let ds = Dataset::open(&dir).unwrap();
        assert!(
            expand_all(&ds, EventShift::default()) == want,
            "byte {i} changed: the events differ"
        );
        assert_eq!(
            std::fs::read(&cache).unwrap(),
            good,
            "byte {i} changed: the cache was not rebuilt"
        );
    }
}
