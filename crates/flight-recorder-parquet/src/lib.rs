//! Trace files as Arrow tables and Parquet files, for SQL engines (DataFusion, DuckDB, …).
//!
//! One trace file (a *snapshot*) becomes ten tables ([`TABLES`]): one row per file
//! (`snapshots`), per poll, per task, per long poll, per region, per user task, per log message,
//! per counter sample, per wake and per CPU sample. The rows come from the analysis crate's
//! model (the same pass as the `summary`), so the tables agree with it: the `polls` table has as
//! many rows as the summary counts polls, the `long_polls` table as many as it counts long polls
//! at the same threshold, and so on.
//!
//! Every row carries `snapshot_id`, `service`, `host` and `date`, so that a Parquet file read
//! alone still says where it came from, and every row but those of `snapshots` carries the
//! **identity** of the event it comes from (`pid`, `process_start_ns`, `thread`, `chunk_base`,
//! `event_index`): overlapping snapshots of one process hold the same events, and a query
//! removes the duplicates by grouping on the identity. `docs/PARQUET.md` in the repository
//! describes every column, the identity, the layout of an export and examples.
//!
//! ```no_run
//! use flight_recorder_parquet::{export, read_snapshot, ExportOptions, TableOptions};
//!
//! let tables = read_snapshot("trace.out".as_ref(), &TableOptions::default())?;
//! for (name, batch) in &tables.tables {
//!     println!("{name}: {} rows", batch.num_rows());
//! }
//! let report = export(&["dumps/".into()], "parquet-out".as_ref(), &ExportOptions::default())?;
//! println!("{} files exported, {} failed", report.files_done, report.files_failed);
//! # Ok::<(), flight_recorder_parquet::Error>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

mod build;
mod export;
mod schema;

pub use export::export;

/// Table names, in a fixed order.
pub const TABLES: &[&str] = &[
    "snapshots",
    "polls",
    "tasks",
    "long_polls",
    "regions",
    "user_tasks",
    "logs",
    "counters",
    "wakes",
    "samples",
];

/// The Arrow schema of a table (None for an unknown name).
///
/// Every table starts with the columns `snapshot_id`, `service`, `host`, `date` (text, never
/// null); every table but `snapshots` then has the event identity `pid`, `process_start_ns`,
/// `thread`, `chunk_base`, `event_index`. Timestamps are `Timestamp(Nanosecond, "UTC")`,
/// durations `Int64` nanoseconds (columns ending in `_ns`), ids and counts `UInt64`.
pub fn schema(table: &str) -> Option<SchemaRef> {
    schema::schema_of(table)
}

/// One trace file turned into Arrow record batches, one entry per table (every table present,
/// maybe empty).
#[derive(Clone, Debug)]
pub struct SnapshotTables {
    /// The snapshot's id: stable and unique per file (see [`snapshot_id()`]).
    pub snapshot_id: String,
    /// The service that wrote the file: the header's service, or the program's name for files
    /// written before the header had one.
    pub service: String,
    /// The host the file was written on (`unknown` when the header has none).
    pub host: String,
    /// The day the file was written, `YYYY-MM-DD` (UTC).
    pub date: String,
    /// The tables, in [`TABLES`]' order, each with the schema [`schema`] gives.
    pub tables: Vec<(&'static str, RecordBatch)>,
}

impl SnapshotTables {
    /// The batch of one table.
    pub fn table(&self, name: &str) -> Option<&RecordBatch> {
        self.tables.iter().find(|(n, _)| *n == name).map(|(_, b)| b)
    }
}

/// How a trace file is turned into tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableOptions {
    /// A poll at least this long is a long poll (a row of `long_polls`); default 10 ms, the
    /// summary's default threshold (`flight-recorder summary --long-poll-ms`).
    pub long_poll_threshold: Duration,
    /// Whether a torn or corrupt file still gives tables, of the events before the damage
    /// (its `snapshots` row then has `complete = false` and the `error`); by default (false)
    /// such a file is an [`Error`].
    pub accept_damaged: bool,
    /// Build only this table (one of [`TABLES`]); the others come out empty, with their
    /// schemas. For a reader that scans one table, such as a query: the rows of the others are
    /// not built. `None` (the default) builds them all.
    pub only: Option<&'static str>,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            long_poll_threshold: Duration::from_millis(10),
            accept_damaged: false,
            only: None,
        }
    }
}

/// How [`export`] writes its output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// How each file is turned into tables.
    pub tables: TableOptions,
}

/// What [`export`] did.
#[derive(Debug, Default)]
pub struct ExportReport {
    /// Trace files exported.
    pub files_done: u64,
    /// Trace files that could not be exported (their errors are in `failures`).
    pub files_failed: u64,
    /// Bytes of trace files exported.
    pub input_bytes: u64,
    /// Parquet files written.
    pub parquet_files: u64,
    /// Rows written, per table, in [`TABLES`]' order.
    pub rows: Vec<(&'static str, u64)>,
    /// The error of each file that failed, in the order met.
    pub failures: Vec<Error>,
}

/// What went wrong with which file.
#[derive(Debug)]
pub struct Error {
    /// The file (a trace file read, or a file or directory being written).
    pub path: PathBuf,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// The kinds of [`Error`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading or writing failed.
    Io(std::io::Error),
    /// The trace file is not one, is of an unknown version, torn or corrupt.
    Trace(flight_recorder_format::Error),
    /// Arrow refused a batch (a bug of this crate).
    Arrow(arrow::error::ArrowError),
    /// Writing Parquet failed.
    Parquet(parquet::errors::ParquetError),
}

impl Error {
    pub(crate) fn new(path: impl Into<PathBuf>, kind: ErrorKind) -> Error {
        Error {
            path: path.into(),
            kind,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path.display())?;
        match &self.kind {
            ErrorKind::Io(e) => write!(f, "{e}"),
            ErrorKind::Trace(e) => write!(f, "{e}"),
            ErrorKind::Arrow(e) => write!(f, "building the tables: {e}"),
            ErrorKind::Parquet(e) => write!(f, "writing Parquet: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(e) => Some(e),
            ErrorKind::Trace(e) => Some(e),
            ErrorKind::Arrow(e) => Some(e),
            ErrorKind::Parquet(e) => Some(e),
        }
    }
}

/// Reads one trace file whole and turns it into tables.
pub fn read_snapshot(path: &Path, options: &TableOptions) -> Result<SnapshotTables, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::new(path, ErrorKind::Io(e)))?;
    let name = path.to_string_lossy();
    read_snapshot_bytes(&name, &bytes, options)
}

/// Turns the bytes of one trace file into tables: for files fetched from object storage. `name`
/// is the file's name or path (the `file_name` column keeps its last component; errors name it).
pub fn read_snapshot_bytes(
    name: &str,
    bytes: &[u8],
    options: &TableOptions,
) -> Result<SnapshotTables, Error> {
    build::tables(name, bytes, options)
}

/// The snapshot id of a file with this header: `<host>_<pid>_<written>` where `<written>` is the
/// time the file was written (the header's second clock sample), UTC, as
/// `YYYYMMDDTHHMMSS.nnnnnnnnnZ`; characters other than ASCII letters, digits, `.` and `-` in the
/// host become `-`. The same file always gets the same id; two files of one process are written
/// at different nanoseconds, and two processes on one host have different pids at one time.
pub fn snapshot_id(header: &flight_recorder_format::Header) -> String {
    build::snapshot_id(header)
}
