//! The pandas-written fixture day (tests/fixtures: the real layout, written by pandas)
//! loads, and expands to what the seed itself emitted for it, event for event.

mod common;

use caspers_replay::dataset::Dataset;
use caspers_replay::events::{EventShift, expand_event};

#[test]
fn pandas_fixture_expands_to_the_seeds_output() {
    let fixtures = common::fixtures_dir();
    let dir = common::scratch_dir("fixture_1day");
    std::fs::copy(
        fixtures.join("events_1day.parquet"),
        dir.join("events.parquet"),
    )
    .unwrap();
    let ds = Dataset::open(&dir).unwrap();
    assert_eq!(ds.events.len(), 8481);
    assert_eq!(ds.start(), 1_704_067_221);
    assert_eq!(ds.end(), 1_704_155_709);

    let mut seed = Vec::new();
    for run in ["run1.jsonl", "run2.jsonl", "run3.jsonl"] {
        let text = std::fs::read_to_string(fixtures.join("seed_output_1day").join(run)).unwrap();
        seed.extend(text.lines().map(str::to_string));
    }
    assert_eq!(seed.len(), ds.events.len());

    let mut buf = Vec::new();
    for (pos, seed_line) in seed.iter().enumerate() {
        buf.clear();
        expand_event(&ds.events, pos, EventShift::default(), &mut buf);
        common::assert_same_event(std::str::from_utf8(&buf).unwrap(), seed_line);
    }

    // A few known lines, exactly.
    buf.clear();
    expand_event(&ds.events, 0, EventShift::default(), &mut buf);
    let first = String::from_utf8(buf.clone()).unwrap();
    assert!(first.starts_with(r#"{"event_id":""#));
    assert!(
        first.contains(r#""event_type":"order_created","ts":"2024-01-01 00:00:21.000","location_id":4,"order_id":"I01CVM","sequence":0,"body":"{\"customer_lat\":41.881218,\"customer_lon\":-87.68783,\"customer_addr\":\"934 Main St\",\"items\":[{\"id\":180,"#),
        "{first}"
    );
}
