//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use serde_json::Value;

pub mod live;
pub mod nats;
pub mod page;

/// The repository's tests/fixtures (see its README.md): the seed's output for one day, the
/// real locations table, and what writes that day with pandas.
pub fn repo_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The fixture day as the tests read it: `events_1day.parquet`, written by pandas (the
/// real layout) with tests/fixtures/pandas_day.py, and `seed_output_1day/run{1,2,3}.jsonl`,
/// what the seed emitted for it. Made once per test process.
pub fn fixtures_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch_dir(&format!("fixtures_{}", std::process::id()));
        let seed = dir.join("seed_output_1day");
        std::fs::create_dir_all(&seed).unwrap();
        for run in ["run1", "run2", "run3"] {
            let gz = repo_fixtures().join(format!("seed_output_1day/{run}.jsonl.gz"));
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap()),
                &mut text,
            )
            .unwrap();
            std::fs::write(seed.join(format!("{run}.jsonl")), text).unwrap();
        }
        let out = std::process::Command::new(python())
            .arg(repo_fixtures().join("pandas_day.py"))
            .arg(dir.join("events_1day.parquet"))
            .output()
            .expect(
                "python3 (with pandas and pyarrow) must be installed: bash scripts/test.sh does it",
            );
        assert!(
            out.status.success(),
            "tests/fixtures/pandas_day.py failed (it needs pandas and pyarrow: bash \
             scripts/test.sh installs them into .venv): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .clone()
}

/// The Python the tests run: the project's environment (.venv, made by scripts/test.sh)
/// when there is one, else `python3` on the PATH.
pub fn python() -> PathBuf {
    venv_program("python3")
}

/// A program of the project's Python environment (e.g. schemathesis' `st`), or the one
/// on the PATH when there is no environment.
pub fn venv_program(name: &str) -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv/bin")
        .join(name);
    if venv.is_file() {
        venv
    } else {
        PathBuf::from(name)
    }
}

/// A fresh empty directory under the target dir, named for the test.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `columns` as a parquet file, in row groups of `row_group_rows`.
pub fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>, row_group_rows: usize) {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        columns.into_iter().map(|c| c.1).collect(),
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// One row of a hand-made events file.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub order_id: Option<&'static str>,
    pub location_id: i64,
    pub event_type_id: i64,
    pub ts_seconds: i64,
    pub sequence: i64,
    pub customer: Option<(f32, f32)>,
    pub addr: Option<&'static str>,
    pub items: Option<&'static str>,
    pub route: Option<&'static str>,
    pub ping: Option<(f32, f32, f32)>,
}

/// The canonical columns of `rows`, with pandas' types.
pub fn event_columns(rows: &[Row]) -> Vec<(&'static str, ArrayRef)> {
    use arrow_array::*;
    vec![
        (
            "order_id",
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.order_id))) as ArrayRef,
        ),
        (
            "location_id",
            Arc::new(Int8Array::from_iter_values(
                rows.iter().map(|r| r.location_id as i8),
            )),
        ),
        (
            "event_type_id",
            Arc::new(Int8Array::from_iter_values(
                rows.iter().map(|r| r.event_type_id as i8),
            )),
        ),
        (
            "ts_seconds",
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.ts_seconds),
            )),
        ),
        (
            "sequence",
            Arc::new(Int8Array::from_iter_values(
                rows.iter().map(|r| r.sequence as i8),
            )),
        ),
        (
            "customer_lat",
            Arc::new(Float32Array::from_iter(
                rows.iter().map(|r| r.customer.map(|c| c.0)),
            )),
        ),
        (
            "customer_lon",
            Arc::new(Float32Array::from_iter(
                rows.iter().map(|r| r.customer.map(|c| c.1)),
            )),
        ),
        (
            "customer_addr",
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.addr))),
        ),
        (
            "items_json",
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.items))),
        ),
        (
            "route_json",
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.route))),
        ),
        (
            "ping_lat",
            Arc::new(Float32Array::from_iter(
                rows.iter().map(|r| r.ping.map(|p| p.0)),
            )),
        ),
        (
            "ping_lon",
            Arc::new(Float32Array::from_iter(
                rows.iter().map(|r| r.ping.map(|p| p.1)),
            )),
        ),
        (
            "ping_progress",
            Arc::new(Float32Array::from_iter(
                rows.iter().map(|r| r.ping.map(|p| p.2)),
            )),
        ),
    ]
}

/// Makes a dataset directory holding `rows` as its events file.
pub fn dataset_of(name: &str, rows: &[Row]) -> PathBuf {
    let dir = scratch_dir(name);
    write_parquet(&dir.join("events.parquet"), event_columns(rows), 1 << 20);
    dir
}

/// The eight events of one order, in file order: the golden order of the tests.
pub fn one_order() -> Vec<Row> {
    let base = Row {
        order_id: Some("A7K2M9"),
        location_id: 1,
        ..Row::default()
    };
    let t0 = 1_704_456_000; // 2024-01-05 12:00:00 UTC
    vec![
        Row {
            event_type_id: 1,
            ts_seconds: t0,
            sequence: 0,
            customer: Some((37.7499, -122.4183)),
            addr: Some("3612 Main St"),
            items: Some(r#"[{"id": 180, "name": "Chicago \"Dog\"", "price": 6.99, "qty": 2}]"#),
            ..base.clone()
        },
        Row {
            event_type_id: 2,
            ts_seconds: t0 + 120,
            sequence: 1,
            ..base.clone()
        },
        Row {
            event_type_id: 3,
            ts_seconds: t0 + 720,
            sequence: 2,
            ..base.clone()
        },
        Row {
            event_type_id: 4,
            ts_seconds: t0 + 840,
            sequence: 3,
            ..base.clone()
        },
        Row {
            event_type_id: 5,
            ts_seconds: t0 + 900,
            sequence: 4,
            ..base.clone()
        },
        Row {
            event_type_id: 6,
            ts_seconds: t0 + 1200,
            sequence: 5,
            route: Some("[[37.791024, -122.392865], [37.78, -122.41], [37.7499, -122.4183]]"),
            ..base.clone()
        },
        Row {
            event_type_id: 7,
            ts_seconds: t0 + 1260,
            sequence: 6,
            ping: Some((37.78, -122.41, 42.5)),
            ..base.clone()
        },
        Row {
            event_type_id: 8,
            ts_seconds: t0 + 1380,
            sequence: 7,
            customer: Some((37.7499, -122.4183)),
            ..base
        },
    ]
}

/// Compares two JSON values, numbers as float32 (the dataset's precision).
pub fn same_f32(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().map(|v| v as f32) == y.as_f64().map(|v| v as f32)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_f32(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| ka == kb && same_f32(va, vb))
        }
        _ => a == b,
    }
}

/// Asserts that our line and the seed's carry the same event: every field equal but the
/// (random in the seed) event_id, the body equal as parsed JSON with float32 numbers.
pub fn assert_same_event(ours: &str, seed: &str) {
    let (a, b): (Value, Value) = (
        serde_json::from_str(ours).unwrap(),
        serde_json::from_str(seed).unwrap(),
    );
    assert_eq!(a.as_object().unwrap().len(), b.as_object().unwrap().len());
    assert_eq!(
        field_order(ours),
        field_order(seed),
        "field order\n ours: {ours}\n seed: {seed}"
    );
    for key in ["event_type", "ts", "location_id", "order_id", "sequence"] {
        assert_eq!(a[key], b[key], "{key}\n ours: {ours}\n seed: {seed}");
    }
    let body = |v: &Value| serde_json::from_str::<Value>(v["body"].as_str().unwrap()).unwrap();
    assert!(
        same_f32(&body(&a), &body(&b)),
        "body\n ours: {ours}\n seed: {seed}"
    );
}

/// The top-level keys of an event line in the order they appear in its text (serde_json's
/// map sorts keys, so the order is read from the text).
pub fn field_order(line: &str) -> Vec<&'static str> {
    const KEYS: [&str; 7] = [
        "event_id",
        "event_type",
        "ts",
        "location_id",
        "order_id",
        "sequence",
        "body",
    ];
    let mut found: Vec<(usize, &str)> = KEYS
        .iter()
        .filter_map(|k| {
            let at = [format!("{{\"{k}\":"), format!(",\"{k}\":")]
                .iter()
                .filter_map(|pat| line.find(pat.as_str()))
                .min()?;
            Some((at, *k))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, k)| k).collect()
}

/// A dataset generated with `days` and `seed` into the scratch folder `name`, loaded.
pub fn generated_dataset(
    name: &str,
    days: u32,
    seed: u64,
) -> (PathBuf, caspers_replay::dataset::Dataset) {
    use caspers_replay::dataset::generate::{GenerateOptions, generate};
    let dir = scratch_dir(name);
    let opts = GenerateOptions {
        days,
        seed,
        ..GenerateOptions::default()
    };
    generate(&opts, &dir, |_, _| {}).unwrap();
    let ds = caspers_replay::dataset::Dataset::open(&dir).unwrap();
    (dir, ds)
}

/// tests/e2e with its node modules installed and Debian's chromium (scripts/test.sh
/// installs both): where the page, client and contract scripts run.
pub fn e2e_dir() -> PathBuf {
    assert!(
        Path::new("/usr/bin/chromium").is_file(),
        "Debian's chromium is missing: apt-get install chromium (scripts/test.sh does it)"
    );
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    for module in [
        "playwright-core",
        "@asyncapi/parser",
        "@readme/openapi-parser",
        "ajv",
    ] {
        assert!(
            e2e.join("node_modules").join(module).is_dir(),
            "{module} is missing: npm ci in tests/e2e (scripts/test.sh does it)"
        );
    }
    e2e
}

/// clients/js with its build tools installed (`npm ci` there; scripts/test.sh does it).
pub fn client_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js");
    for module in ["typescript", "esbuild"] {
        assert!(
            dir.join("node_modules").join(module).is_dir(),
            "{module} is missing: npm ci in clients/js (scripts/test.sh does it)"
        );
    }
    dir
}
