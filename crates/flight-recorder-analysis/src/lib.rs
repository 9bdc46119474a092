//! Analyses of flight-recorder trace files, and exports to other viewers.
//!
//! Every analysis reads a [`TraceReader`](flight_recorder_format::TraceReader) in one streaming
//! pass, with memory bounded by the live state (tasks, threads, open spans) and a fixed lookahead
//! that puts the threads' events in time order, not by the file's size; and each still reports
//! on the intact part of a torn or corrupt file.
//!
//! - [`merge`]: the events of all threads in time order;
//! - [`model`]: the state machine of tasks, polls, threads, regions and user tasks, and the
//!   [`Observer`](model::Observer) that receives what it closes;
//! - [`drive`]: the drivers that feed the merged events through the model to an observer, on
//!   one thread or two;
//! - [`summary`]: the questions asked after an incident (tasks by spawn location, scheduling
//!   latency, long polls, worker utilization, user tasks and regions, logs), as text or JSON;
//! - [`diagnose`]: what is wrong in a trace (findings with a severity, evidence and advice) and
//!   where the slowest requests waited;
//! - [`perfetto`]: export to the Perfetto protobuf format (ui.perfetto.dev);
//! - [`chrome`]: export to the Chrome JSON trace format (chrome://tracing, speedscope);
//! - [`output`]: where an export's bytes go, written on a thread of their own if wanted;
//! - [`report`]: a self-contained HTML report with charts;
//! - [`dump`]: one line of text per event;
//! - [`histogram`]: percentiles in fixed memory;
//! - [`symbols`]: stacks' addresses resolved to functions, files and lines.
//!
//! ```no_run
//! use flight_recorder_analysis::Summary;
//! use flight_recorder_format::TraceReader;
//!
//! let reader = TraceReader::open("trace.out")?;
//! match Summary::from_reader(reader) {
//!     Ok(summary) => print!("{}", summary.render_text()),
//!     Err(damaged) => {
//!         // The intact prefix is still summarized.
//!         print!("{}", damaged.summary.render_text());
//!         eprintln!("{}", damaged.error);
//!     }
//! }
//! # Ok::<(), flight_recorder_format::Error>(())
//! ```

pub mod chrome;
mod dense;
pub mod diagnose;
pub mod drive;
pub mod dump;
pub mod export;
mod flow_ids;
pub mod histogram;
mod ids;
pub mod merge;
pub mod model;
pub mod output;
pub mod perfetto;
pub mod report;
pub mod summary;
pub mod symbols;

pub use diagnose::{DiagnoseOptions, Diagnosis, Finding, FindingKind, Severity};
pub use summary::{DamagedTrace, KindCount, Summary, SummaryOptions, ThreadSummary, Window};
