//! The recording layer, the lowest: what a thread does to record an event. Each thread appends
//! encoded events to its own chunk (`local`), stamped by the trace clock (`clock`), with strings
//! and source locations interned to small ids (`intern`). `chunk` is the buffer and its
//! one-writer, many-readers protocol; `sync` picks `std`'s or loom's primitives for it.
//!
//! This layer imports nothing from the rest of the crate: the engine is reached through the
//! [`local::Sink`] trait it implements.

pub(crate) mod chunk;
#[cfg(not(flight_recorder_loom))]
pub(crate) mod clock;
#[cfg(not(flight_recorder_loom))]
pub(crate) mod intern;
#[cfg(not(flight_recorder_loom))]
pub(crate) mod local;
pub(crate) mod sync;
