//! The full trace as a consumer of sealed chunks: the engine queues each sealed chunk for the
//! trace's writer thread (`crate::trace`), and counts what the queue could not take.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};

use crate::record::chunk::{Chunk, ChunkView};
use crate::record::state::State;
use crate::record::sync::Arc;

/// What the engine and the trace's owner send to the writer thread.
pub(crate) enum TraceMessage {
    /// A sealed chunk.
    Chunk(Arc<Chunk>),
    /// The trace stops: the open chunks' cut, the last thing written.
    Finish(Vec<ChunkView>),
}

/// Chunks and bytes dropped because the queue was full.
#[derive(Default)]
pub(crate) struct Lost {
    pub chunks: AtomicU64,
    pub bytes: AtomicU64,
}

/// The full trace as a consumer of sealed chunks.
pub(crate) struct TraceSink {
    sender: SyncSender<TraceMessage>,
    start_state: State,
    lost: std::sync::Arc<Lost>,
}

impl TraceSink {
    /// A sink sending to `sender` the chunks of `start_state` and later, counting the lost ones
    /// in `lost`.
    pub(crate) fn new(
        sender: SyncSender<TraceMessage>,
        start_state: State,
        lost: std::sync::Arc<Lost>,
    ) -> TraceSink {
        TraceSink {
            sender,
            start_state,
            lost,
        }
    }

    /// Queues a sealed chunk for the writer thread, or counts it lost if the queue is full.
    pub(crate) fn offer(&self, chunk: &Arc<Chunk>) {
        if chunk.state.generation() < self.start_state.generation() {
            return;
        }
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.sender.try_send(TraceMessage::Chunk(chunk.clone()))
        {
            self.lost.chunks.fetch_add(1, Ordering::Relaxed);
            self.lost
                .bytes
                .fetch_add(chunk.committed() as u64, Ordering::Relaxed);
        }
    }
}
