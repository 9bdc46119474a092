//! `flight-recorder-query`: SQL over trace files, Parquet exports of them, and S3 prefixes of
//! either, with [DataFusion](https://datafusion.apache.org).
//!
//! ```text
//! flight-recorder-query "SQL" FILE|DIR|s3://bucket/prefix... [--format table|csv|json]
//! flight-recorder query  "SQL" FILE|DIR|s3://bucket/prefix... [--format table|csv|json]
//! ```
//!
//! The tables are those of the `flight-recorder-parquet` crate ([`TABLES`]: `snapshots`,
//! `polls`, `tasks`, `long_polls`, `regions`, `user_tasks`, `logs`, `counters`, `wakes`,
//! `samples`), with the columns of [`flight_recorder_parquet::schema`], whatever the inputs are:
//!
//! - **trace files** (`executiontrace.*.out`, or any file named on the command line) and
//!   directories of them (searched recursively for `*.out`): each file is decoded when a query
//!   scans a table, on a blocking thread, one file at a time per partition (as many partitions
//!   as cores), so memory holds a few files' tables at a time, not the whole corpus;
//! - **directories of the Parquet export** (`flight-recorder export --to parquet`, recognized by
//!   a subdirectory named after a table): a DataFusion `ListingTable` per table over
//!   `DIR/<table>/**/*.parquet`. `service`, `host` and `snapshot_id` are columns of the files, so
//!   the `service=…/date=…/host=…` directories are not declared as partition columns;
//! - **`s3://bucket/prefix`**: the prefix is listed once; `*.parquet` objects under
//!   `<prefix>/<table>/` are read in place as above, through the S3 object store registered
//!   with the session, and trace files (`executiontrace.*.out`) are fetched and decoded. The
//!   store is configured from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, …: `AmazonS3Builder::from_env`).
//!
//! Trace files and Parquet exports cannot be mixed in one query (they are the same tables; say
//! which copy to read).
//!
//! The library builds the same session for programs of their own: [`Session::open`] returns a
//! DataFusion [`SessionContext`] with every table registered.
//!
//! ```no_run
//! # async fn example() -> Result<(), flight_recorder_query::Error> {
//! use flight_recorder_query::{Session, SessionOptions};
//!
//! let session = Session::open(&["traces/".to_string()], &SessionOptions::default()).await?;
//! let batches = session
//!     .context()
//!     .sql("SELECT service, count(*) FROM polls GROUP BY service")
//!     .await?
//!     .collect()
//!     .await?;
//! # let _ = batches;
//! # Ok(())
//! # }
//! ```
//!
//! Exit status of the command: 0 when the query ran; 1 when the query failed (bad SQL, an
//! unknown table or column, an error while running it) or when it ran but trace files were
//! skipped because they could not be decoded (each named by a warning line on standard error,
//! then a count); 2 when there was nothing to query (bad arguments, an input that does not
//! exist or cannot be opened, a directory without trace files, an S3 prefix that cannot be
//! listed). Errors are one line, `flight-recorder-query: …`.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionConfig;

pub mod inputs;
pub mod output;
mod s3;
mod traces;

pub use datafusion;
pub use flight_recorder_parquet::TABLES;
pub use inputs::{Input, InputKind};
pub use output::Format;
pub use traces::SkippedFiles;

/// Why a query could not be answered.
#[derive(Debug)]
pub enum Error {
    /// Nothing to query: an input that does not exist or cannot be read, a directory without
    /// trace files, mixed kinds of input, an S3 prefix that cannot be listed (exit status 2).
    Input(String),
    /// The query failed: bad SQL, an unknown table or column, an error while running it (exit
    /// status 1).
    Query(DataFusionError),
    /// Standard output could not be written (exit status 1; a closed pipe is not an error).
    Output(io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Input(message) => f.write_str(message),
            Error::Query(e) => write!(f, "{}", query_message(e)),
            Error::Output(e) => write!(f, "standard output: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        Error::Query(e)
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Output(e)
    }
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        match e {
            datafusion::arrow::error::ArrowError::IoError(_, e) => Error::Output(e),
            e => Error::Query(DataFusionError::ArrowError(Box::new(e), None)),
        }
    }
}

/// A DataFusion error as one line: its innermost message, without the layers of context
/// ("External error: …") that say nothing to the user.
fn query_message(e: &DataFusionError) -> String {
    let text = match e.find_root() {
        DataFusionError::External(inner) => inner.to_string(),
        root => root.to_string(),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Settings of a [`Session`].
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// How many partitions a query runs in (trace files are decoded this many at a time);
    /// `None`: the number of cores.
    pub target_partitions: Option<usize>,
    /// How trace files become tables (passed to `flight_recorder_parquet::read_snapshot`).
    pub table_options: flight_recorder_parquet::TableOptions,
    /// Print a warning line on standard error for each trace file skipped (default true).
    pub warn: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            target_partitions: None,
            table_options: flight_recorder_parquet::TableOptions::default(),
            warn: true,
        }
    }
}

/// A DataFusion session with the tables of some inputs registered.
pub struct Session {
    context: SessionContext,
    kind: InputKind,
    skipped: Arc<SkippedFiles>,
    files: usize,
}

impl Session {
    /// Finds the inputs (paths of trace files, directories of trace files or of a Parquet
    /// export, `s3://bucket/prefix` URLs; see the crate's docs) and registers every table of
    /// [`TABLES`] over them. Nothing is decoded yet: trace files are read when a query scans a
    /// table.
    pub async fn open(inputs: &[String], options: &SessionOptions) -> Result<Session, Error> {
        let found = inputs::find(inputs).await?;
        let mut config = SessionConfig::new().with_information_schema(true);
        if let Some(n) = options.target_partitions {
            config = config.with_target_partitions(n.max(1));
        }
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .build();
        let context = SessionContext::new_with_state(state);
        for store in &found.stores {
            context.register_object_store(&store.url, Arc::clone(&store.store));
        }
        let skipped = Arc::new(SkippedFiles::new(options.warn));
        let partitions = context.state().config().target_partitions();
        match found.kind {
            InputKind::Traces => traces::register(
                &context,
                &found.traces,
                partitions,
                &options.table_options,
                &skipped,
            )?,
            InputKind::Parquet => inputs::register_parquet(&context, &found.parquet_roots)?,
        }
        Ok(Session {
            context,
            kind: found.kind,
            skipped,
            files: found.files,
        })
    }

    /// The DataFusion session, every table registered.
    pub fn context(&self) -> &SessionContext {
        &self.context
    }

    /// Whether the tables come from trace files or from Parquet files.
    pub fn kind(&self) -> InputKind {
        self.kind
    }

    /// How many files the inputs hold (trace files, or Parquet files).
    pub fn files(&self) -> usize {
        self.files
    }

    /// The trace files skipped so far because they could not be decoded.
    pub fn skipped(&self) -> &SkippedFiles {
        &self.skipped
    }

    /// Runs one SQL statement (a query: statements that create tables or write files are
    /// refused) and writes its result to `out` in `format`.
    pub async fn query(
        &self,
        sql: &str,
        format: Format,
        out: &mut impl Write,
    ) -> Result<(), Error> {
        let options = datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false);
        let frame = self.context.sql_with_options(sql, options).await?;
        output::write(frame, format, out).await
    }
}

/// The command line of `flight-recorder-query` (and of `flight-recorder query`, which runs it).
#[derive(Parser, Debug)]
#[command(
    name = "flight-recorder-query",
    version,
    about = "SQL over trace files, Parquet exports of them and S3 prefixes of either",
    after_help = "Tables: snapshots, polls, tasks, long_polls, regions, user_tasks, logs, counters, \
                  wakes, samples (DESCRIBE polls lists a table's columns; docs/QUERY.md).\n\
                  Exit status: 0 the query ran; 1 it failed, or trace files were skipped; 2 \
                  nothing to query (bad arguments or inputs)."
)]
pub struct Args {
    /// The SQL query, e.g. "SELECT location, count(*) FROM polls GROUP BY location".
    pub sql: String,
    /// Trace files, directories of trace files or of a Parquet export, s3://bucket/prefix.
    #[arg(required = true, value_name = "FILE|DIR|s3://bucket/prefix")]
    pub inputs: Vec<String>,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Partitions to run the query in (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub partitions: Option<usize>,
}

/// Runs `flight-recorder-query` with the process's arguments and returns its exit status (the
/// whole of `main`).
pub fn run() -> ExitCode {
    run_with(std::env::args_os())
}

/// Runs `flight-recorder-query` with these arguments (the first is the program's name).
pub fn run_with<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("flight-recorder-query: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let result = runtime.block_on(async {
        let options = SessionOptions {
            target_partitions: args.partitions,
            ..SessionOptions::default()
        };
        let session = Session::open(&args.inputs, &options).await?;
        let result = session.query(&args.sql, args.format, &mut out).await;
        Ok::<_, Error>((result, session))
    });
    let flushed = out.flush();
    match result {
        Err(e) => fail(&e),
        Ok((result, session)) => {
            let result = result.and_then(|()| flushed.map_err(Error::Output));
            let skipped = session.skipped().count();
            if skipped > 0 {
                eprintln!(
                    "flight-recorder-query: {skipped} of {} trace files skipped (could not be decoded)",
                    session.files()
                );
            }
            match result {
                Err(e) => fail(&e),
                Ok(()) if skipped > 0 => ExitCode::FAILURE,
                Ok(()) => ExitCode::SUCCESS,
            }
        }
    }
}

/// Reports an error on one line and gives its exit status.
fn fail(e: &Error) -> ExitCode {
    match e {
        Error::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => return ExitCode::SUCCESS,
        _ => eprintln!("flight-recorder-query: {e}"),
    }
    match e {
        Error::Input(_) => ExitCode::from(2),
        Error::Query(_) | Error::Output(_) => ExitCode::FAILURE,
    }
}
