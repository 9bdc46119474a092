//! An execution tracer and flight recorder for Rust programs.
//!
//! Threads record events (regions, logs, task polls, …) into per-thread buffers with no lock and
//! no allocation. Two consumers can run, alone or together:
//!
//! - a [`FlightRecorder`] keeps the last seconds in memory, in a window bounded by `min_age` and
//!   `max_bytes`, and writes a snapshot on demand — after a slow request, a failed health check, a
//!   panic;
//! - a [`FullTrace`] streams every event to a writer from start to stop.
//!
//! Around them:
//!
//! - [`capture`]: automatic capture — periodic files in a dump directory with a size budget, and
//!   snapshots on a slow poll, a panic, a signal or the application's call, rate limited; with
//!   the feature `upload`, every file uploaded to S3-compatible object storage
//!   (`docs/CAPTURE.md`, "Uploading to object storage");
//! - [`tokio`] (feature `tokio`): runtime hooks and an instrumented spawn recording every task's
//!   spawn, polls, wakes and end, and worker park and unpark;
//! - annotations after Go's `runtime/trace`: [`UserTask`], [`region`], [`InRegion`], [`log`],
//!   [`mark`], [`counter`]; and [`tracing`] (feature `tracing`), a `tracing_subscriber::Layer`;
//! - [`raw`]: any event kind of the format, for other runtimes.
//!
//! Files are read with the `flight-recorder-format` crate and analyzed by the
//! `flight-recorder-analysis` crate and the `flight-recorder` command (summary, Perfetto and
//! Chrome JSON exports, an HTML report).
//!
//! ```
//! use flight_recorder::{FlightRecorder, FlightRecorderConfig};
//!
//! let fr = FlightRecorder::new(FlightRecorderConfig::default());
//! fr.start()?;
//! {
//!     let _region = flight_recorder::region("handle_request");
//!     flight_recorder::log("http", "GET /");
//! }
//! let dir = tempfile::tempdir()?;
//! let meta = flight_recorder::SnapshotMeta::new("slow_request", "slow");
//! let path = flight_recorder::files::write_snapshot(&fr, dir.path(), &meta)?;
//! println!("snapshot written to {}", path.display());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With nothing recording, every instrumentation point costs one relaxed load and a branch.
//!
//! # Features
//!
//! `tokio`, `tracing` and `signal` are on by default; `http`, `upload` and
//! `tokio-schedule-latency` are off.
//! A library that only adds annotations ([`region`], [`log`], [`UserTask`], [`raw`], …) and
//! leaves the choice of a recorder to the application can depend on the core alone, with
//! `default-features = false`: it then builds without tokio, tracing or signal handling (checked
//! with `cargo check -p flight-recorder --no-default-features`, which builds with no warning).
//!
//! ```toml
//! [dependencies]
//! flight-recorder = { version = "0.1", default-features = false }
//! ```

#![cfg_attr(flight_recorder_loom, allow(dead_code, unused_imports))]

// The layers, lowest first: `record` (the hot path), `engine` (state shared by all threads),
// `file` (trace files), then the public API at the root. A layer uses only the layers below it
// (docs/ENGINE.md).
mod engine;
#[cfg(not(flight_recorder_loom))]
mod file;
mod record;

#[cfg(not(flight_recorder_loom))]
mod annotate;
#[cfg(not(flight_recorder_loom))]
pub mod capture;
mod error;
#[cfg(not(flight_recorder_loom))]
mod flight;
#[cfg(all(feature = "http", not(flight_recorder_loom)))]
pub mod http;
#[cfg(not(flight_recorder_loom))]
pub mod raw;
#[cfg(all(unix, not(flight_recorder_loom)))]
pub mod ring;
#[cfg(not(flight_recorder_loom))]
pub mod stack;
#[cfg(all(feature = "tokio", not(flight_recorder_loom)))]
pub mod tokio;
#[cfg(not(flight_recorder_loom))]
mod trace;
#[cfg(all(feature = "tracing", not(flight_recorder_loom)))]
pub mod tracing;

#[cfg(all(test, flight_recorder_loom))]
mod loom_tests;
// The instrumented spawn's waker slot, alone, for its loom models.
#[cfg(all(test, not(flight_recorder_loom)))]
mod recording_tests;
#[cfg(flight_recorder_loom)]
#[path = "tokio/waker_slot.rs"]
mod waker_slot;

#[cfg(not(flight_recorder_loom))]
pub use annotate::{counter, log, mark, region, InRegion, Region, RegionFuture, UserTask};
#[cfg(not(flight_recorder_loom))]
pub use engine::{chunk_size, stats, RecorderStats};
#[cfg(not(flight_recorder_loom))]
pub use error::{Error, ErrorKind};
#[cfg(not(flight_recorder_loom))]
pub use file::process::{service_name, set_service_name};

/// Snapshot files: their names, and writing a flight recorder's snapshot into a directory so that
/// a crash never leaves a partial file under a final name, readable by the owner only (traces can
/// hold request data).
#[cfg(not(flight_recorder_loom))]
pub mod files {
    pub use crate::file::files::*;
    pub use crate::flight::write_snapshot;
}
#[cfg(not(flight_recorder_loom))]
pub use flight::{FlightRecorder, FlightRecorderConfig, SnapshotMeta};
#[cfg(not(flight_recorder_loom))]
pub use trace::{FullTrace, TraceStats};
