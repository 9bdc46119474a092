//! Analyses of flight-recorder trace files.
//!
//! Every analysis reads a [`TraceReader`](flight_recorder_format::TraceReader) in one streaming
//! pass, so memory does not grow with the file, and still reports on the intact part of a torn
//! or corrupt file:
//!
//! - [`summary`]: what the file is, its time window, events by kind, threads, sizes and dropped
//!   data, as text or JSON;
//! - [`dump`]: one line of text per event.
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

pub mod dump;
pub mod summary;

pub use summary::{DamagedTrace, KindCount, Summary, ThreadSummary, Window};
