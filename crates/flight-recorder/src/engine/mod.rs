//! The engine layer: the state every thread's recording shares. `shared` holds the engine itself
//! (the consumers of sealed chunks, the live threads, the chunk pool) and publishes the state
//! word; `window` is the flight recorder's rolling window, `sink` the full trace's queue; `cut`
//! takes a consistent cut across all threads; `snapshot_guard` lets one snapshot run at a time.
//! `global` holds the process's engine, state word and per-thread writers: the entry points of
//! the public API.
//!
//! The engine uses the recording layer (`crate::record`) and the crate's error type, nothing
//! above them.

pub(crate) mod cut;
#[cfg(not(flight_recorder_loom))]
pub(crate) mod global;
pub(crate) mod shared;
pub(crate) mod sink;
pub(crate) mod snapshot_guard;
pub(crate) mod window;

#[cfg(not(flight_recorder_loom))]
pub use global::{chunk_size, stats};
#[cfg(not(flight_recorder_loom))]
pub(crate) use global::{engine, STATE};
pub use shared::RecorderStats;
