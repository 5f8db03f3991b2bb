//! What can be wrong with a dataset, said so that a user can find and fix it: every error
//! names the file, and the column and row where it applies.

use std::path::PathBuf;

/// An error reading or checking a dataset file.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },

    #[error("{path}: not a readable parquet file ({message})")]
    NotParquet { path: PathBuf, message: String },

    #[error("{path}: missing column '{column}' (docs/batch-replay.md gives the canonical layout)")]
    MissingColumn { path: PathBuf, column: String },

    #[error("{path}: column '{column}' has type {found}, expected {expected}")]
    WrongType {
        path: PathBuf,
        column: String,
        found: String,
        expected: &'static str,
    },

    #[error("{path}: column '{column}', row {row}: {message}")]
    BadValue {
        path: PathBuf,
        column: String,
        /// 0-based row in the file.
        row: usize,
        message: String,
    },

    #[error("{path}: holds no events")]
    Empty { path: PathBuf },
}
