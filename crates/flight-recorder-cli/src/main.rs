//! `flight-recorder`: reads flight-recorder trace files.
//!
//! - `flight-recorder summary FILE [--json]`: what the file is, its window, events by kind,
//!   threads, sizes and dropped data;
//! - `flight-recorder dump FILE [--limit N]`: one line per event, in file order.
//!
//! A file that cannot be read gives one line on standard error,
//! `flight-recorder: <path>: <error>`, and exit status 1. A torn or corrupt file is still
//! summarized (or dumped) up to the damage before that line.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flight_recorder_analysis::dump::Dumper;
use flight_recorder_analysis::Summary;
use flight_recorder_format::TraceReader;

/// Reads flight-recorder trace files.
#[derive(Parser)]
#[command(name = "flight-recorder", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Summarize a trace file: process, reason, window, events by kind, threads, sizes.
    Summary {
        /// The trace file.
        file: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print one line per event, in file order.
    Dump {
        /// The trace file.
        file: PathBuf,
        /// Print at most this many events.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
    },
}

/// Why the command failed; each is reported on one line.
enum Failure {
    /// The trace file could not be opened or read: `<path>: <error>`.
    Trace(PathBuf, String),
    /// Standard output could not be written (a closed pipe is not a failure).
    Output(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = match cli.command {
        Command::Summary { file, json } => summary(&file, json, &mut out),
        Command::Dump { file, limit } => dump(&file, limit, &mut out),
    };
    // Whatever was printed goes out before the error line.
    let result = result.and_then(|()| out.flush().map_err(Failure::from));
    let _ = out.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Output(e)) => {
            eprintln!("flight-recorder: standard output: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Trace(path, error)) => {
            eprintln!("flight-recorder: {}: {error}", path.display());
            ExitCode::FAILURE
        }
    }
}

fn open(path: &Path) -> Result<TraceReader<BufReader<File>>, Failure> {
    let fail = |error: String| Failure::Trace(path.to_path_buf(), error);
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    TraceReader::new(BufReader::with_capacity(256 << 10, file)).map_err(|e| fail(e.to_string()))
}

fn summary(path: &Path, json: bool, out: &mut impl Write) -> Result<(), Failure> {
    let reader = open(path)?;
    let (mut summary, error) = match Summary::from_reader(reader) {
        Ok(summary) => (summary, None),
        Err(damaged) => (*damaged.summary, Some(damaged.error)),
    };
    summary.path = Some(path.display().to_string());
    if json {
        let text = serde_json::to_string_pretty(&summary.to_json()).map_err(io::Error::from)?;
        writeln!(out, "{text}")?;
    } else {
        write!(out, "{}", summary.render_text())?;
    }
    match error {
        None => Ok(()),
        Some(e) => {
            out.flush()?;
            Err(Failure::Trace(path.to_path_buf(), e.to_string()))
        }
    }
}

fn dump(path: &Path, limit: Option<u64>, out: &mut impl Write) -> Result<(), Failure> {
    let mut reader = open(path)?;
    let mut dumper = Dumper::new();
    let mut printed = 0u64;
    while limit.is_none_or(|limit| printed < limit) {
        match reader.next_event() {
            Ok(Some(event)) => {
                writeln!(out, "{}", dumper.line(&reader, &event))?;
                printed += 1;
            }
            Ok(None) => break,
            Err(e) => {
                out.flush()?;
                return Err(Failure::Trace(path.to_path_buf(), e.to_string()));
            }
        }
    }
    Ok(())
}
