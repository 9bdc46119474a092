//! `flight-recorder`: reads flight-recorder trace files.
//!
//! - `flight-recorder summary FILE [--json]`: what the file is, its window, events by kind,
//!   threads, sizes and dropped data;
//! - `flight-recorder diagnose FILE|DIR [--json]`: what is wrong in the window (findings with a
//!   severity, evidence and what to do) and where the slowest requests waited;
//! - `flight-recorder dump FILE [--limit N]`: one line per event, in file order;
//! - `flight-recorder convert FILE --to perfetto|chrome-json [-o OUT]`: export for a viewer;
//! - `flight-recorder report FILE -o report.html`: a self-contained HTML report;
//! - `flight-recorder symbolize FILE [--binary PATH]... [-o OUT]`: a copy of the file with its
//!   stacks' addresses resolved to functions, files and lines (a Symbols record);
//! - `flight-recorder ls DIR [--json] [--verify]`: the trace files of a dump directory, with
//!   time, size, reason, tag and trigger details; `--verify` reads each file whole and says
//!   whether it is complete (end record present, checksums right) or truncated or corrupt;
//! - `flight-recorder export --to parquet FILE|DIR... -o OUT`: the traces as Parquet tables (polls,
//!   tasks, long polls, regions, user tasks, logs, counters, wakes, CPU samples, one row per
//!   file in `snapshots`) for SQL engines; `docs/PARQUET.md` (cargo feature `parquet`, on by
//!   default);
//! - `flight-recorder bundle DIR -o debug.zip`: the traces of a dump directory, an index and
//!   their summaries in one zip file for support;
//! - `flight-recorder query "SQL" FILE|DIR|s3://bucket/prefix...`: SQL over traces and their
//!   Parquet exports, by the `flight-recorder-query` executable ([`query`]).
//!
//! `summary` also takes a directory (every trace file in it, in name order) and shows the
//! analyses of `docs/ANALYSIS.md`: tasks by spawn location, scheduling latency, long polls,
//! worker utilization, user tasks, regions and logs.
//!
//! A file that cannot be read gives one line on standard error,
//! `flight-recorder: <path>: <error>`, and exit status 1. A torn or corrupt file is still
//! summarized (or dumped) up to the damage before that line.
//!
//! The commands are this library; the binary's `main` only calls [`run`]. The modules are public
//! for the tests and fuzz targets that drive them directly (e.g. [`ls`] on a directory).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub mod analyze;
pub mod bundle;
pub mod export;
mod failure;
pub mod ls;
mod progress;
pub mod query;
#[cfg(unix)]
mod recover;
pub mod symbolize;

pub use failure::Failure;

use clap::{Parser, Subcommand};
use flight_recorder_analysis::dump::Dumper;
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
    /// Summarize a trace file (or every trace file of a directory): window, tasks by spawn
    /// location, scheduling latency, long polls, worker utilization, user tasks, regions, logs.
    Summary(ReadArgs),
    /// What is wrong in a trace file (or each trace file of a directory): findings, the most
    /// severe first, with their evidence and what to do, and where the slowest requests waited.
    Diagnose(ReadArgs),
    /// Convert a trace file for a viewer: Perfetto (ui.perfetto.dev) or Chrome JSON.
    Convert {
        /// The trace file.
        file: PathBuf,
        /// The output format.
        #[arg(long, value_enum)]
        to: analyze::Target,
        /// The output file (default: FILE with `.perfetto-trace` or `.json` added).
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
        /// Events held back to put threads' events in time order.
        #[arg(long, value_name = "N", hide = true)]
        reorder_events: Option<usize>,
        #[command(flatten)]
        symbols: SymbolArgs,
    },
    /// Write a self-contained HTML report with charts.
    Report {
        /// The trace file.
        file: PathBuf,
        /// The HTML file to write.
        #[arg(short, long, value_name = "OUT")]
        output: PathBuf,
        #[command(flatten)]
        analysis: AnalysisArgs,
        #[command(flatten)]
        symbols: SymbolArgs,
    },
    /// Print one line per event, in file order.
    Dump {
        /// The trace file.
        file: PathBuf,
        /// Print at most this many events.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        #[command(flatten)]
        symbols: SymbolArgs,
    },
    /// Resolve the addresses of the file's stacks to functions, files and lines, from the
    /// binaries (checked against the file's build ids), and write a copy of the file with them.
    Symbolize {
        /// The trace file.
        file: PathBuf,
        /// A binary to resolve with: the main executable, or any module by its file name
        /// (default: each module's path on this machine). Repeatable.
        #[arg(long, value_name = "PATH")]
        binary: Vec<PathBuf>,
        /// The file to write (default: FILE.symbolized.out; never the input).
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
    },
    /// List the trace files of a dump directory: time, size, reason, tag, trigger details.
    Ls {
        /// The dump directory.
        dir: PathBuf,
        /// Print the list as JSON, with every header field.
        #[arg(long)]
        json: bool,
        /// Read every file whole and say whether it is complete (end record present, checksums
        /// right), truncated or corrupt; exit status 1 if one is not complete.
        #[arg(long)]
        verify: bool,
    },
    /// Recover the rings of processes that died (killed, crashed): each becomes
    /// `executiontrace.<UTC time>.recovered.out` in the dump directory its process recorded (or
    /// `-o`), then the ring is removed. Rings of live processes are left alone.
    #[cfg(unix)]
    Recover {
        /// The ring directory (default `$XDG_RUNTIME_DIR/flight-recorder`, else
        /// `/dev/shm/flight-recorder`; automatic capture's is `ring_dir` in its settings, or
        /// `FLIGHT_RECORDER_RING_DIR`).
        #[arg(long, value_name = "DIR")]
        ring_dir: Option<PathBuf>,
        /// Write the recovered files here instead of the directories the rings recorded.
        #[arg(short, long, value_name = "DIR")]
        output: Option<PathBuf>,
    },
    /// SQL over trace files, Parquet exports and s3:// prefixes (runs the flight-recorder-query
    /// executable, beside this one or on PATH, with these arguments; see its --help).
    #[command(disable_help_flag = true)]
    Query {
        /// "SQL" FILE|DIR|s3://bucket/prefix... [--format table|csv|json]
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<std::ffi::OsString>,
    },
    /// Export trace files (or directories of them) as tables for SQL engines: one Parquet file
    /// per table and file in OUT/<table>/service=<s>/date=<YYYY-MM-DD>/host=<h>/ (docs/PARQUET.md).
    Export {
        /// Trace files, or directories whose `*.out` files (recursively) are exported.
        #[arg(required = true, value_name = "FILE|DIR")]
        inputs: Vec<PathBuf>,
        /// The output format.
        #[arg(long, value_enum)]
        to: export::ExportFormat,
        /// The output directory (created if needed; files of the same snapshots are replaced).
        #[arg(short, long, value_name = "OUT")]
        output: PathBuf,
        /// A poll at least this long (milliseconds) is a long poll (a row of `long_polls`).
        #[arg(long, value_name = "MS", value_parser = milliseconds, default_value_t = 10.0)]
        long_poll_ms: f64,
        /// Export the intact part of torn or corrupt files too (marked `complete = false` in
        /// `snapshots`) instead of counting them as failed.
        #[arg(long)]
        partial: bool,
    },
    /// Put the trace files of a dump directory, an index and their summaries in a zip file.
    Bundle {
        /// The dump directory.
        dir: PathBuf,
        /// The zip file to write.
        #[arg(short, long, value_name = "OUT")]
        output: PathBuf,
    },
}

/// The arguments of `summary` and `diagnose`.
#[derive(clap::Args)]
struct ReadArgs {
    /// The trace file, or a directory of trace files.
    file: PathBuf,
    /// Print JSON (an array for a directory).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    analysis: AnalysisArgs,
    #[command(flatten)]
    symbols: SymbolArgs,
}

impl ReadArgs {
    fn run(self, view: analyze::View, out: &mut impl Write) -> Result<(), Failure> {
        let options = self.analysis.options();
        self.symbols.set()?;
        analyze::summary(&self.file, self.json, options, view, out)
    }
}

/// Where stacks' names come from, when the file has no Symbols table.
#[derive(clap::Args)]
struct SymbolArgs {
    /// A binary to name stack frames with when the file has no symbols for them: the main
    /// executable, or any module by its file name (default: each module's path on this
    /// machine; a binary of another build is not used). Repeatable.
    #[arg(long, value_name = "PATH")]
    binary: Vec<PathBuf>,
}

/// Settings of the analyses.
#[derive(clap::Args)]
struct AnalysisArgs {
    /// A poll at least this long (milliseconds) is a long poll.
    #[arg(long, value_name = "MS", value_parser = milliseconds, default_value_t = 10.0)]
    long_poll_ms: f64,
    /// How many long polls, slowest instances and locations to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,
    /// Events held back to put threads' events in time order.
    #[arg(long, value_name = "N", hide = true)]
    reorder_events: Option<usize>,
    #[command(flatten)]
    rules: RuleArgs,
}

/// Thresholds of the diagnosis rules (docs/ANALYSIS.md, "Diagnosis").
#[derive(clap::Args)]
struct RuleArgs {
    /// blocking_poll: a poll on a worker at least this long (milliseconds).
    #[arg(long, value_name = "MS", value_parser = milliseconds, default_value_t = 10.0)]
    blocking_poll_ms: f64,
    /// scheduling_delay: a task runnable at least this long before its poll (milliseconds).
    #[arg(long, value_name = "MS", value_parser = milliseconds, default_value_t = 10.0)]
    sched_delay_ms: f64,
    /// imbalance: one worker busy while another idles, at least this long (milliseconds).
    #[arg(long, value_name = "MS", value_parser = milliseconds, default_value_t = 500.0)]
    imbalance_ms: f64,
    /// task_leak: tasks of one spawn location spawned in the window and alive at its end.
    #[arg(long, value_name = "N", default_value_t = 100)]
    leak_tasks: u64,
    /// lost_wake: a task woken and not polled this long while a worker idled (milliseconds).
    #[arg(long, value_name = "MS", value_parser = milliseconds, default_value_t = 1000.0)]
    lost_wake_ms: f64,
    /// blocking_pool_saturated: spawn_blocking work queued at least this long (milliseconds).
    #[arg(long, value_name = "MS", value_parser = milliseconds, default_value_t = 10.0)]
    blocking_queue_ms: f64,
    /// spawn_storm: spawns within 100 ms.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    storm_spawns: u64,
    /// slow_request: a user task or span at least this long, and an outlier (milliseconds).
    #[arg(long, value_name = "MS", value_parser = milliseconds, default_value_t = 100.0)]
    slow_request_ms: f64,
    /// How many of the slowest user tasks get a wait breakdown.
    #[arg(long, value_name = "N", default_value_t = 5)]
    waits: usize,
}

/// A duration in milliseconds: a finite number, not negative.
fn milliseconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ms) if ms.is_finite() && ms >= 0.0 => Ok(ms),
        Ok(_) => Err(format!(
            "{text} is not a duration: give milliseconds, 0 or more"
        )),
        Err(e) => Err(format!("{text}: {e}")),
    }
}

impl RuleArgs {
    fn options(&self) -> flight_recorder_analysis::DiagnoseOptions {
        let ns = |ms: f64| (ms.max(0.0) * 1e6) as u64;
        flight_recorder_analysis::DiagnoseOptions {
            blocking_poll_ns: ns(self.blocking_poll_ms),
            sched_delay_ns: ns(self.sched_delay_ms),
            imbalance_ns: ns(self.imbalance_ms),
            leak_tasks: self.leak_tasks,
            lost_wake_ns: ns(self.lost_wake_ms),
            blocking_queue_ns: ns(self.blocking_queue_ms),
            storm_spawns: self.storm_spawns,
            slow_request_ns: ns(self.slow_request_ms),
            waits: self.waits,
        }
    }
}

impl AnalysisArgs {
    fn options(&self) -> flight_recorder_analysis::SummaryOptions {
        let mut options = flight_recorder_analysis::SummaryOptions {
            long_poll_ns: (self.long_poll_ms.max(0.0) * 1e6) as u64,
            top: self.top,
            diagnose: self.rules.options(),
            ..Default::default()
        };
        if let Some(n) = self.reorder_events {
            options.merge.reorder_events = n;
        }
        options
    }
}

impl SymbolArgs {
    fn set(self) -> Result<(), Failure> {
        flight_recorder_analysis::symbols::set_default_binaries(self.binary);
        Ok(())
    }
}

/// Runs the command of the process's arguments and returns its exit status (the whole of
/// `main`).
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = match cli.command {
        Command::Summary(args) => args.run(analyze::View::Summary, &mut out),
        Command::Diagnose(args) => args.run(analyze::View::Diagnosis, &mut out),
        Command::Convert {
            file,
            to,
            output,
            reorder_events,
            symbols,
        } => symbols
            .set()
            .and_then(|()| analyze::convert(&file, to, output, reorder_events, &mut out)),
        Command::Report {
            file,
            output,
            analysis,
            symbols,
        } => symbols
            .set()
            .and_then(|()| analyze::report(&file, &output, analysis.options(), &mut out)),
        Command::Dump {
            file,
            limit,
            symbols,
        } => symbols.set().and_then(|()| dump(&file, limit, &mut out)),
        Command::Symbolize {
            file,
            binary,
            output,
        } => symbolize::symbolize(&file, binary, output, &mut out),
        Command::Ls { dir, json, verify } => ls::ls(&dir, json, verify, &mut out),
        Command::Bundle { dir, output } => bundle::bundle(&dir, &output, &mut out),
        // Nothing was written: the query executable writes to standard output itself.
        Command::Query { args } => return query::query(args),
        Command::Export {
            inputs,
            to,
            output,
            long_poll_ms,
            partial,
        } => export::export(
            export::ExportArgs {
                inputs,
                to,
                output,
                long_poll_ns: (long_poll_ms.max(0.0) * 1e6) as u64,
                partial,
            },
            &mut out,
        ),
        #[cfg(unix)]
        Command::Recover { ring_dir, output } => recover::recover(
            &ring_dir.unwrap_or_else(flight_recorder::ring::default_ring_dir),
            output.as_deref(),
            &mut out,
        ),
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
        Err(Failure::Reported) => ExitCode::FAILURE,
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

fn dump(path: &Path, limit: Option<u64>, out: &mut impl Write) -> Result<(), Failure> {
    let mut reader = open(path)?;
    let mut dumper = Dumper::new();
    let mut printed = 0u64;
    while limit.is_none_or(|limit| printed < limit) {
        match reader.next_event() {
            Ok(Some(event)) => {
                writeln!(out, "{}", dumper.line(&reader, &event))?;
                for line in dumper.stack_lines(&reader, &event) {
                    writeln!(out, "    {line}")?;
                }
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
