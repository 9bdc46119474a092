//! The recorder's shared state: which consumers are active (a flight-recorder window, a full
//! trace), the live threads and their open chunks, and the chunk pool.
//!
//! Lock order, to rule out deadlocks: a thread's slot, then `consumers`, then the pool; `threads`
//! and `infos` are never held while taking another lock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};
use std::sync::{Arc, LazyLock, Mutex};

use flight_recorder_format::ThreadInfo;

use crate::engine::cut::{cut, OpenChunk};
use crate::engine::window::Window;
use crate::record::chunk::{self, Chunk, ChunkPool, ChunkView, CHUNK_SIZE};
use crate::record::sync::lock;
use crate::trace::TraceSink;

/// Bit 0 of [`STATE`]: some consumer is active and threads record events.
pub(crate) const ENABLED: u64 = 1;

/// Bit 1 of [`STATE`]: a watchdog reads the poll marks, so polls set them.
pub(crate) const WATCH_POLLS: u64 = 2;

/// The generation sits above the flag bits.
const GENERATION_SHIFT: u32 = 2;

/// The recorder state read on every instrumentation point: [`ENABLED`], [`WATCH_POLLS`] and,
/// above them, a generation that changes whenever the set of consumers (or watchers) changes. A thread whose chunk belongs to
/// another generation seals it and takes a fresh one, so every consumer's data starts on a clean
/// cut.
pub(crate) static STATE: StdAtomicU64 = StdAtomicU64::new(0);

/// Free buffers kept for reuse; they are what a window at its size limit recycles on every seal.
const POOL_MAX_FREE: usize = 16;

/// Exited threads whose description is kept for files that still hold their chunks.
const EXITED_THREADS_KEPT: usize = 4096;

/// A thread known to the recorder.
pub(crate) struct ThreadShared {
    pub id: u64,
    pub open: OpenChunk,
}

/// A poll running on some thread, as seen by [`Engine::polls_in_progress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PollInProgress {
    /// The recorder's id of the thread.
    pub thread: u64,
    /// The task being polled.
    pub task: u64,
    /// When the poll began, in clock units.
    pub started_units: u64,
}

/// The active consumers of sealed chunks.
#[derive(Default)]
pub(crate) struct Consumers {
    pub window: Option<Window>,
    pub trace: Option<TraceSink>,
    /// Watchdogs reading the poll marks.
    poll_watchers: usize,
    generation: u64,
}

#[derive(Default)]
struct ThreadTable {
    live: HashMap<u64, ThreadInfo>,
    exited: BTreeMap<u64, ThreadInfo>,
    exit_order: VecDeque<u64>,
}

pub(crate) struct Engine {
    consumers: Mutex<Consumers>,
    threads: Mutex<Vec<Arc<ThreadShared>>>,
    infos: Mutex<ThreadTable>,
    pool: ChunkPool,
    next_seq: StdAtomicU64,
    next_thread: StdAtomicU64,
}

static ENGINE: LazyLock<Engine> = LazyLock::new(|| Engine {
    consumers: Mutex::new(Consumers::default()),
    threads: Mutex::new(Vec::new()),
    infos: Mutex::new(ThreadTable::default()),
    pool: ChunkPool::new(CHUNK_SIZE, POOL_MAX_FREE),
    next_seq: StdAtomicU64::new(1),
    next_thread: StdAtomicU64::new(1),
});

pub(crate) fn engine() -> &'static Engine {
    &ENGINE
}

impl Engine {
    /// Changes the consumers. `f` gets them and the state value the change will publish (the
    /// generation its chunks will carry) and decides; the state is published after it.
    pub(crate) fn update_consumers<R>(&self, f: impl FnOnce(&mut Consumers, u64) -> R) -> R {
        let mut consumers = lock(&self.consumers);
        let generation = consumers.generation + 1;
        let watch = |c: &Consumers| if c.poll_watchers > 0 { WATCH_POLLS } else { 0 };
        let next_state = (generation << GENERATION_SHIFT) | ENABLED | watch(&consumers);
        let result = f(&mut consumers, next_state);
        consumers.generation = generation;
        let enabled = consumers.window.is_some() || consumers.trace.is_some();
        let state = (generation << GENERATION_SHIFT)
            | if enabled { ENABLED } else { 0 }
            | watch(&consumers);
        STATE.store(state, StdOrdering::SeqCst);
        result
    }

    /// Starts (`on`) or stops one watchdog's reading of the poll marks: polls mark their thread
    /// only while some watchdog reads the marks.
    pub(crate) fn watch_polls(&self, on: bool) {
        self.update_consumers(|consumers, _| {
            if on {
                consumers.poll_watchers += 1;
            } else {
                consumers.poll_watchers = consumers.poll_watchers.saturating_sub(1);
            }
        });
    }

    /// Reads the consumers under their lock.
    pub(crate) fn with_consumers<R>(&self, f: impl FnOnce(&mut Consumers) -> R) -> R {
        f(&mut lock(&self.consumers))
    }

    /// A fresh chunk for `thread`, or `None` when memory is exhausted.
    pub(crate) fn new_chunk(
        &self,
        thread: u64,
        generation: u64,
        base_units: u64,
    ) -> Option<Arc<Chunk>> {
        let buffer = self.pool.take()?;
        let seq = self.next_seq.fetch_add(1, StdOrdering::Relaxed);
        Some(Arc::new(Chunk::new(
            buffer, seq, thread, generation, base_units,
        )))
    }

    /// Hands a full or retired chunk to the active consumers, then recycles what nobody keeps.
    /// Called with the owner's slot locked (see `cut`).
    pub(crate) fn seal(&self, chunk: Arc<Chunk>, now_units: u64) {
        let mut evicted = Vec::new();
        let len = chunk.committed();
        if len > 0 && STATE.load(StdOrdering::Relaxed) & ENABLED != 0 {
            // A mostly empty chunk is kept as an exact-size copy so that the window's size bound
            // is a bound on memory.
            let compact = if len < chunk.capacity() / 2 {
                chunk.compacted().map(Arc::new)
            } else {
                None
            };
            let kept = compact.as_ref().unwrap_or(&chunk);
            let mut consumers = lock(&self.consumers);
            if let Some(window) = consumers.window.as_mut() {
                window.push(kept.clone(), now_units, &mut evicted);
            }
            if let Some(trace) = consumers.trace.as_ref() {
                trace.offer(kept);
            }
        }
        self.pool.give(chunk);
        self.recycle(evicted);
    }

    /// Returns chunks to the pool (those no reader holds any more).
    pub(crate) fn recycle(&self, chunks: impl IntoIterator<Item = Arc<Chunk>>) {
        for chunk in chunks {
            self.pool.give(chunk);
        }
    }

    /// Takes a cut across every live thread's open chunk and the chunks `sealed` returns.
    pub(crate) fn cut(&self, sealed: impl FnOnce() -> Vec<Arc<Chunk>>) -> Vec<ChunkView> {
        let threads = lock(&self.threads).clone();
        cut(threads.iter().map(|t| &t.open), sealed)
    }

    /// Registers the calling thread.
    pub(crate) fn register_thread(&self) -> Arc<ThreadShared> {
        let id = self.next_thread.fetch_add(1, StdOrdering::Relaxed);
        let info = ThreadInfo {
            id,
            os_tid: crate::file::process::os_thread_id(),
            name: std::thread::current()
                .name()
                .unwrap_or_default()
                .to_string(),
        };
        lock(&self.infos).live.insert(id, info);
        let shared = Arc::new(ThreadShared {
            id,
            open: OpenChunk::new(),
        });
        lock(&self.threads).push(shared.clone());
        shared
    }

    /// Forgets an exited thread's open chunk; its description is kept for a while, for the files
    /// that still hold its chunks.
    pub(crate) fn unregister_thread(&self, id: u64) {
        lock(&self.threads).retain(|t| t.id != id);
        let mut infos = lock(&self.infos);
        if let Some(info) = infos.live.remove(&id) {
            infos.exited.insert(id, info);
            infos.exit_order.push_back(id);
            while infos.exit_order.len() > EXITED_THREADS_KEPT {
                if let Some(old) = infos.exit_order.pop_front() {
                    infos.exited.remove(&old);
                }
            }
        }
    }

    /// The descriptions of these threads, those still known.
    pub(crate) fn thread_info(&self, id: u64) -> Option<ThreadInfo> {
        let infos = lock(&self.infos);
        infos
            .live
            .get(&id)
            .or_else(|| infos.exited.get(&id))
            .cloned()
    }

    /// The polls running now, on every live thread that marks its polls (the poll marks live in
    /// each thread's open chunk; a chunk of an older generation does not count, since a poll that
    /// began before a recorder change may end unrecorded).
    pub(crate) fn polls_in_progress(&self) -> Vec<PollInProgress> {
        let state = STATE.load(StdOrdering::Relaxed);
        let threads = lock(&self.threads).clone();
        threads
            .iter()
            .filter_map(|t| {
                let view = t.open.view()?;
                if view.chunk.generation != state {
                    return None;
                }
                let (task, started_units) = view.chunk.poll_mark()?;
                Some(PollInProgress {
                    thread: t.id,
                    task,
                    started_units,
                })
            })
            .collect()
    }

    /// Memory and thread figures.
    pub(crate) fn stats(&self) -> RecorderStats {
        let window_bytes = lock(&self.consumers)
            .window
            .as_ref()
            .map_or(0, Window::bytes);
        RecorderStats {
            allocated_bytes: chunk::allocated_bytes(),
            window_bytes,
            live_threads: lock(&self.threads).len(),
            free_buffers: self.pool.free_count(),
        }
    }
}

/// Memory and thread figures of the recorder, for monitoring it and for tests of its bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecorderStats {
    /// Bytes allocated for event buffers: the window, one open chunk per recording thread, free
    /// buffers and snapshots in progress.
    pub allocated_bytes: usize,
    /// Bytes held by the flight recorder's window.
    pub window_bytes: usize,
    /// Threads that have recorded and not exited.
    pub live_threads: usize,
    /// Free buffers kept for reuse.
    pub free_buffers: usize,
}

/// The recorder's current memory and thread figures.
pub fn stats() -> RecorderStats {
    engine().stats()
}

/// The size of one thread's event buffer (a chunk), bytes: the unit of the memory bound, which is
/// about `max_bytes` plus one chunk per recording thread.
pub const fn chunk_size() -> usize {
    CHUNK_SIZE
}
