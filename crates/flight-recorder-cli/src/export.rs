//! `flight-recorder export --to parquet FILE|DIR... -o OUT`: trace files as a tree of Parquet
//! files, one per table and snapshot, for SQL engines (`docs/PARQUET.md`).
//!
//! Parquet support is the cargo feature `parquet` (on by default); a binary built without it
//! says so and fails.

use std::io::Write;
use std::path::PathBuf;

use crate::failure::Failure;

/// The formats `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Apache Parquet, one file per table and snapshot in Hive-style directories.
    Parquet,
}

/// Settings of `export`.
pub struct ExportArgs {
    /// Trace files and directories of them.
    pub inputs: Vec<PathBuf>,
    /// The format.
    pub to: ExportFormat,
    /// The output directory.
    pub output: PathBuf,
    /// A poll at least this long is a long poll, ns.
    pub long_poll_ns: u64,
    /// Export the intact part of torn or corrupt files.
    pub partial: bool,
}

/// Runs `export`: one line per failed file on standard error, a report on standard output,
/// exit status 1 if any file failed.
pub fn export(args: ExportArgs, out: &mut impl Write) -> Result<(), Failure> {
    match args.to {
        ExportFormat::Parquet => parquet(args, out),
    }
}

#[cfg(feature = "parquet")]
fn parquet(args: ExportArgs, out: &mut impl Write) -> Result<(), Failure> {
    use flight_recorder_parquet::{ExportOptions, TableOptions};

    let options = ExportOptions {
        tables: TableOptions {
            long_poll_threshold: std::time::Duration::from_nanos(args.long_poll_ns),
            accept_damaged: args.partial,
            only: None,
        },
    };
    let report = match flight_recorder_parquet::export(&args.inputs, &args.output, &options) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("flight-recorder: {e}");
            return Err(Failure::Reported);
        }
    };
    out.flush()?;
    for failure in &report.failures {
        eprintln!("flight-recorder: {failure}");
    }
    writeln!(
        out,
        "{} trace file{} exported ({}), {} failed; {} Parquet file{} in {}",
        report.files_done,
        plural(report.files_done),
        flight_recorder_format::units::format_size(report.input_bytes),
        report.files_failed,
        report.parquet_files,
        plural(report.parquet_files),
        args.output.display(),
    )?;
    for (table, rows) in &report.rows {
        writeln!(out, "  {table:<11} {rows:>10} rows")?;
    }
    if report.files_failed > 0 || report.files_done == 0 {
        if report.files_done == 0 && report.files_failed == 0 {
            out.flush()?;
            eprintln!("flight-recorder: no trace file found");
        }
        return Err(Failure::Reported);
    }
    Ok(())
}

#[cfg(not(feature = "parquet"))]
fn parquet(_args: ExportArgs, _out: &mut impl Write) -> Result<(), Failure> {
    eprintln!(
        "flight-recorder: export --to parquet: this binary was built without Parquet support \
         (the `parquet` feature of flight-recorder-cli, on by default); rebuild it with it"
    );
    Err(Failure::Reported)
}

#[cfg(feature = "parquet")]
fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
