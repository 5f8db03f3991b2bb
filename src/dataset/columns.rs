//! Reading named columns of a parquet file, whoever wrote it.
//!
//! pandas writes int8/float32/string; other writers widen integers, use large or
//! dictionary-encoded strings, or split the file into row groups. This module accepts all of
//! those and hands each batch over as one array type per kind of column, so the callers deal
//! with values, not with arrow's type zoo.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::DatasetError;

/// The kind of value a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Any signed or unsigned integer width; read as `Int64Array`.
    Int,
    /// float32 or float64; read as `Float64Array` (float32 widens exactly).
    Float,
    /// string, large string or dictionary of either; read as `StringArray`.
    Text,
}

/// A column the caller reads.
#[derive(Clone, Copy, Debug)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

/// One batch of the wanted columns, in the order they were asked for.
pub struct Batch {
    /// Row number of the batch's first row in the file.
    pub first_row: usize,
    pub len: usize,
    /// Rows in the whole file.
    pub file_rows: usize,
    /// Uncompressed bytes of each wanted column in the whole file (0 when absent): a
    /// size hint, so that callers can allocate once.
    pub file_bytes: Arc<Vec<usize>>,
    columns: Vec<Option<ArrayRef>>,
}

impl Batch {
    pub fn int(&self, i: usize) -> Option<&Int64Array> {
        self.columns[i]
            .as_ref()
            .and_then(|a| a.as_any().downcast_ref())
    }

    pub fn float(&self, i: usize) -> Option<&Float64Array> {
        self.columns[i]
            .as_ref()
            .and_then(|a| a.as_any().downcast_ref())
    }

    pub fn text(&self, i: usize) -> Option<&StringArray> {
        self.columns[i]
            .as_ref()
            .and_then(|a| a.as_any().downcast_ref())
    }
}

fn accepts(kind: Kind, dt: &DataType) -> bool {
    use DataType::*;
    match kind {
        Kind::Int => dt.is_integer(),
        Kind::Float => matches!(dt, Float32 | Float64),
        Kind::Text => match dt {
            Utf8 | LargeUtf8 | Utf8View => true,
            Dictionary(key, value) => key.is_integer() && matches!(**value, Utf8 | LargeUtf8),
            _ => false,
        },
    }
}

fn target(kind: Kind) -> DataType {
    match kind {
        Kind::Int => DataType::Int64,
        Kind::Float => DataType::Float64,
        Kind::Text => DataType::Utf8,
    }
}

fn expected_text(kind: Kind) -> &'static str {
    match kind {
        Kind::Int => "an integer (int8 to int64)",
        Kind::Float => "float32 or float64",
        Kind::Text => "string (plain, large or dictionary)",
    }
}

/// Reads the `specs` columns of the parquet file at `path`, calling `each` once per batch
/// in file order. Decoding runs on a thread of its own, which also runs `prepare` on each
/// batch, so the two halves of a load share the machine's cores. Returns the row count.
pub fn read_columns<P: Send>(
    path: &Path,
    specs: &[ColumnSpec],
    prepare: impl Fn(&Batch) -> P + Send,
    mut each: impl FnMut(&Batch, P) -> Result<(), DatasetError>,
) -> Result<usize, DatasetError> {
    let file = File::open(path).map_err(|e| DatasetError::Io {
        path: path.into(),
        message: format!("cannot open: {e}"),
    })?;
    let not_parquet = |message: String| DatasetError::NotParquet {
        path: path.into(),
        message,
    };
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| not_parquet(e.to_string()))?;
    let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let schema = Arc::clone(builder.schema());

    // Where each wanted column is in the file, checked before any data is decoded.
    let mut roots = Vec::new();
    let mut found = Vec::with_capacity(specs.len());
    for spec in specs {
        match schema.index_of(spec.name) {
            Ok(i) => {
                let dt = schema.field(i).data_type();
                if !accepts(spec.kind, dt) {
                    return Err(DatasetError::WrongType {
                        path: path.into(),
                        column: spec.name.into(),
                        found: dt.to_string(),
                        expected: expected_text(spec.kind),
                    });
                }
                roots.push(i);
                found.push(true);
            }
            Err(_) if spec.required => {
                return Err(DatasetError::MissingColumn {
                    path: path.into(),
                    column: spec.name.into(),
                });
            }
            Err(_) => found.push(false),
        }
    }
    let file_bytes: Arc<Vec<usize>> = Arc::new(
        specs
            .iter()
            .map(|spec| {
                let groups = builder.metadata().row_groups();
                groups
                    .iter()
                    .flat_map(|g| g.columns())
                    .filter(|c| c.column_path().parts() == [spec.name])
                    .map(|c| usize::try_from(c.uncompressed_size()).unwrap_or(0))
                    .sum()
            })
            .collect(),
    );
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| not_parquet(e.to_string()))?;

    let decode = move |first_row: usize, batch: RecordBatch| -> Result<Batch, DatasetError> {
        let mut columns = Vec::with_capacity(specs.len());
        for (spec, present) in specs.iter().zip(&found) {
            if !present {
                columns.push(None);
                continue;
            }
            let array = batch.column_by_name(spec.name).expect("projected column");
            let wanted = target(spec.kind);
            let array = if array.data_type() == &wanted {
                Arc::clone(array)
            } else {
                arrow_cast::cast(array, &wanted).map_err(|e| DatasetError::BadValue {
                    path: path.into(),
                    column: spec.name.into(),
                    row: first_row,
                    message: format!("cannot convert to {wanted}: {e}"),
                })?
            };
            columns.push(Some(array));
        }
        Ok(Batch {
            first_row,
            len: batch.num_rows(),
            file_rows: rows,
            file_bytes: Arc::clone(&file_bytes),
            columns,
        })
    };

    std::thread::scope(|scope| {
        // Two batches in flight: enough to overlap, little memory.
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        scope.spawn(move || {
            let mut first_row = 0;
            for batch in reader {
                let decoded = batch
                    .map_err(|e| not_parquet(format!("cannot decode rows from {first_row}: {e}")))
                    .and_then(|b| decode(first_row, b))
                    .map(|b| {
                        let prepared = prepare(&b);
                        (b, prepared)
                    });
                let failed = decoded.is_err();
                if let Ok((b, _)) = &decoded {
                    first_row += b.len;
                }
                if tx.send(decoded).is_err() || failed {
                    return;
                }
            }
        });
        // Leaving early (on an error) drops `rx`, which stops the decoding thread.
        for decoded in rx {
            let (batch, prepared) = decoded?;
            each(&batch, prepared)?;
        }
        Ok(rows)
    })
}
