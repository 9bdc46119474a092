//! The recorder's state word, read on every instrumentation point: whether some consumer is
//! active (threads record), whether a watchdog reads the poll marks, and a generation that
//! changes whenever the set of consumers (or watchers) changes. A thread whose chunk belongs to
//! another state seals it and takes a fresh one, so every consumer's data starts on a clean cut;
//! every chunk carries the state it was taken in.
//!
//! The bits: 0 [`State::enabled`], 1 [`State::watches_polls`], the generation above them.

use crate::record::sync::{AtomicU64, Ordering};

/// One value of the state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub(crate) struct State(u64);

impl State {
    /// Bit 0: some consumer is active and threads record events.
    const ENABLED: u64 = 1;
    /// Bit 1: a watchdog reads the poll marks, so polls set them.
    const WATCH_POLLS: u64 = 2;
    /// The generation sits above the flag bits.
    const GENERATION_SHIFT: u32 = 2;

    /// Nothing recording, generation 0: the state before any recorder starts, and the state a
    /// thread's writer holds when it has no chunk.
    pub(crate) const OFF: State = State(0);

    /// The state of `generation` with these flags.
    #[inline(always)]
    pub(crate) const fn new(generation: u64, enabled: bool, watch_polls: bool) -> State {
        let mut word = generation << Self::GENERATION_SHIFT;
        if enabled {
            word |= Self::ENABLED;
        }
        if watch_polls {
            word |= Self::WATCH_POLLS;
        }
        State(word)
    }

    /// Whether threads record events.
    #[inline(always)]
    pub(crate) const fn enabled(self) -> bool {
        self.0 & Self::ENABLED != 0
    }

    /// Whether polls mark their thread (a watchdog reads the marks).
    #[inline(always)]
    pub(crate) const fn watches_polls(self) -> bool {
        self.0 & Self::WATCH_POLLS != 0
    }

    /// The whole word (kept in a chunk's header for recovery).
    #[inline(always)]
    pub(crate) const fn word(self) -> u64 {
        self.0
    }

    /// The generation: it grows with every change of the consumers or watchers.
    #[inline(always)]
    pub(crate) const fn generation(self) -> u64 {
        self.0 >> Self::GENERATION_SHIFT
    }
}

/// The state word, shared by all threads.
#[repr(transparent)]
pub(crate) struct AtomicState(AtomicU64);

impl AtomicState {
    /// The state [`State::OFF`].
    #[cfg(not(flight_recorder_loom))]
    pub(crate) const fn new() -> AtomicState {
        AtomicState(AtomicU64::new(0))
    }

    /// The state [`State::OFF`] (loom's atomics have no `const` constructor).
    #[cfg(flight_recorder_loom)]
    pub(crate) fn new() -> AtomicState {
        AtomicState(AtomicU64::new(0))
    }

    /// The current state, relaxed: the one load of every instrumentation point. A thread that
    /// reads a stale value records into its old chunk a little longer, or drops an event; the
    /// engine's locks order everything else.
    #[inline(always)]
    pub(crate) fn load(&self) -> State {
        State(self.0.load(Ordering::Relaxed))
    }

    /// Publishes a new state (the engine does, under its consumers' lock).
    pub(crate) fn store(&self, state: State) {
        self.0.store(state.0, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_read_their_bits() {
        let state = State::new(5, true, false);
        assert!(state.enabled() && !state.watches_polls());
        assert_eq!(state.generation(), 5);
        let state = State::new(7, false, true);
        assert!(!state.enabled() && state.watches_polls());
        assert_eq!(state.generation(), 7);
        assert_eq!(State::OFF, State::new(0, false, false));
        assert!(!State::OFF.enabled());
    }
}
