//! Arrow IPC stream of expanded events in the seed's Spark schema (event_id, event_type,
//! ts, location_id, order_id, sequence, body), for the Spark data source: Spark takes the
//! record batches as they are, with no Python object per event.

use std::io::{self, Write};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::builder::{Int32Builder, StringBuilder};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::dataset::Dataset;
use crate::events::{EventFields, Filter, write_body_text};
use crate::timeline::Timeline;

/// Rows per record batch: large enough that Spark's per-batch cost vanishes, small enough
/// that the reader starts on the first batch at once.
const BATCH_ROWS: usize = 16_384;

/// The seed's schema, every column non-null.
pub fn schema() -> SchemaRef {
    let text = |name| Field::new(name, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        text("event_id"),
        text("event_type"),
        text("ts"),
        Field::new("location_id", DataType::Int32, false),
        text("order_id"),
        Field::new("sequence", DataType::Int32, false),
        text("body"),
    ]))
}

struct Columns {
    event_id: StringBuilder,
    event_type: StringBuilder,
    ts: StringBuilder,
    location_id: Int32Builder,
    order_id: StringBuilder,
    sequence: Int32Builder,
    body: StringBuilder,
    rows: usize,
}

impl Columns {
    fn new() -> Columns {
        let text = |bytes| StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * bytes);
        Columns {
            event_id: text(36),
            event_type: text(16),
            ts: text(23),
            location_id: Int32Builder::with_capacity(BATCH_ROWS),
            order_id: text(8),
            sequence: Int32Builder::with_capacity(BATCH_ROWS),
            body: text(256),
            rows: 0,
        }
    }

    fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(self.event_id.finish()),
                Arc::new(self.event_type.finish()),
                Arc::new(self.ts.finish()),
                Arc::new(self.location_id.finish()),
                Arc::new(self.order_id.finish()),
                Arc::new(self.sequence.finish()),
                Arc::new(self.body.finish()),
            ],
        )
        .expect("columns of the schema")
    }
}

fn text(bytes: &[u8]) -> &str {
    // Ids, times, names and order ids are ASCII; bodies came through serde_json.
    std::str::from_utf8(bytes).expect("UTF-8 event text")
}

fn to_io(e: arrow_schema::ArrowError) -> io::Error {
    io::Error::other(e)
}

/// Writes the events with simulation time in each window [a, b), in turn, that pass
/// `filter`, `shift` seconds added to their `ts`, as one Arrow IPC stream. Returns how many
/// were written.
pub fn write_arrow_stream(
    ds: &Dataset,
    timeline: &Timeline,
    windows: &[(i64, i64)],
    shift: i64,
    filter: Filter,
    out: &mut dyn Write,
) -> io::Result<u64> {
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(out, &schema()).map_err(to_io)?;
    let mut cols = Columns::new();
    let (mut scratch, mut field) = (Vec::new(), Vec::new());
    let mut written = 0u64;
    let mut failed = None;
    for &(a, b) in windows {
        timeline.for_each_event(ds, a, b, shift, |pos, event_shift| {
            if failed.is_some()
                || !filter.matches(ds.events.location_id(pos), ds.events.event_type(pos))
            {
                return;
            }
            let f = EventFields::of(&ds.events, pos, event_shift);
            cols.event_id.append_value(text(&f.event_id));
            cols.event_type.append_value(f.event_type.name());
            cols.ts.append_value(text(&f.ts));
            cols.location_id.append_value(i32::from(f.location_id));
            field.clear();
            f.write_order_id(&mut field);
            cols.order_id.append_value(text(&field));
            cols.sequence.append_value(f.sequence as i32);
            field.clear();
            write_body_text(&ds.events, pos, &mut scratch, &mut field);
            cols.body.append_value(text(&field));
            cols.rows += 1;
            written += 1;
            if cols.rows == BATCH_ROWS
                && let Err(e) = writer.write(&cols.finish())
            {
                failed = Some(e);
            }
        });
    }
    if let Some(e) = failed {
        return Err(to_io(e));
    }
    if cols.rows > 0 {
        writer.write(&cols.finish()).map_err(to_io)?;
    }
    writer.finish().map_err(to_io)?;
    Ok(written)
}
