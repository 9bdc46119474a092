//! The recording layer, the lowest: what a thread does to record an event. Each thread appends
//! encoded events to its own chunk (`local`), stamped by the trace clock (`clock`), with strings
//! and source locations interned to small ids (`intern`), and call stacks too (`stacks`, for the
//! threads that capture them). `chunk` is the buffer and its
//! one-writer, many-readers protocol; `state` the state word every instrumentation point reads;
//! `sync` picks `std`'s or loom's primitives for them.
//!
//! This layer imports nothing from the rest of the crate: the engine is reached through the
//! [`local::Sink`] trait it implements.

pub(crate) mod chunk;
pub(crate) mod clock;
#[cfg(not(flight_recorder_loom))]
pub(crate) mod fatal;
#[cfg(not(flight_recorder_loom))]
pub(crate) mod intern;
pub(crate) mod local;
#[cfg(not(flight_recorder_loom))]
pub mod ring;
#[cfg(not(flight_recorder_loom))]
pub(crate) mod stacks;
pub(crate) mod state;
pub(crate) mod sync;
