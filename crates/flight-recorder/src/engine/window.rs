//! The flight recorder's window: sealed chunks, oldest first, bounded by `max_bytes` and aged out
//! past `min_age`.

use std::collections::VecDeque;

use crate::record::chunk::Chunk;
use crate::record::state::State;
use crate::record::sync::Arc;

/// Sealed chunks kept for the next snapshot.
pub(crate) struct Window {
    chunks: VecDeque<Arc<Chunk>>,
    bytes: usize,
    max_bytes: usize,
    min_age_units: u64,
    /// The state the window started in: chunks of older generations hold only older events and
    /// are not kept.
    pub start_state: State,
    /// The flight recorder this window belongs to.
    pub owner: u64,
}

impl Window {
    pub(crate) fn new(
        max_bytes: usize,
        min_age_units: u64,
        start_state: State,
        owner: u64,
    ) -> Window {
        Window {
            owner,
            chunks: VecDeque::new(),
            bytes: 0,
            max_bytes,
            min_age_units,
            start_state,
        }
    }

    /// Adds a sealed chunk and moves the chunks that fall out of the window to `evicted`.
    ///
    /// `max_bytes` wins over `min_age`: the oldest chunks go while the window is over its size,
    /// even if they are younger than `min_age`; the newest chunk always stays. Chunks whose last
    /// event is older than `min_age` go too.
    pub(crate) fn push(
        &mut self,
        chunk: Arc<Chunk>,
        now_units: u64,
        evicted: &mut Vec<Arc<Chunk>>,
    ) {
        if chunk.state.generation() < self.start_state.generation() {
            return;
        }
        self.bytes += chunk.capacity();
        self.chunks.push_back(chunk);
        while self.bytes > self.max_bytes && self.chunks.len() > 1 {
            self.pop_front(evicted);
        }
        self.expire(now_units, evicted);
    }

    /// Moves the chunks whose last event is older than `min_age` to `evicted`.
    pub(crate) fn expire(&mut self, now_units: u64, evicted: &mut Vec<Arc<Chunk>>) {
        let horizon = now_units.saturating_sub(self.min_age_units);
        while self
            .chunks
            .front()
            .is_some_and(|oldest| oldest.last_units() < horizon)
        {
            self.pop_front(evicted);
        }
    }

    fn pop_front(&mut self, evicted: &mut Vec<Arc<Chunk>>) {
        if let Some(chunk) = self.chunks.pop_front() {
            self.bytes -= chunk.capacity();
            chunk.mark_evicted();
            evicted.push(chunk);
        }
    }

    /// The chunks, oldest first, for a snapshot.
    pub(crate) fn chunks(&self) -> Vec<Arc<Chunk>> {
        self.chunks.iter().cloned().collect()
    }

    /// Memory the window holds, bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes every chunk out (when the recorder stops).
    pub(crate) fn drain(&mut self) -> Vec<Arc<Chunk>> {
        self.bytes = 0;
        self.chunks.drain(..).collect()
    }
}
