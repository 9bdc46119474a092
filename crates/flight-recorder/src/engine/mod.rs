//! The engine layer: the state every thread's recording shares. `shared` holds the engine itself
//! (the consumers of sealed chunks, the live threads, the chunk pool, the state word); `window`
//! is the flight recorder's rolling window; `cut` takes a consistent cut across all threads;
//! `snapshot_guard` lets one snapshot run at a time.
//!
//! The engine uses the recording layer (`crate::record`) and the crate's error type, nothing
//! above them.

pub(crate) mod cut;
#[cfg(not(flight_recorder_loom))]
mod shared;
pub(crate) mod snapshot_guard;
pub(crate) mod window;

#[cfg(not(flight_recorder_loom))]
pub(crate) use shared::*;
#[cfg(not(flight_recorder_loom))]
pub use shared::{chunk_size, stats, RecorderStats};
