//! The recorder's shared state: which consumers are active (a flight-recorder window, a full
//! trace), the state word that tells threads, the live threads and their open chunks, and the
//! chunk pool.
//!
//! Lock order, to rule out deadlocks: a thread's slot, then `consumers`, then the pool; `threads`
//! and `infos` are never held while taking another lock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64 as StdAtomicU64, Ordering as StdOrdering};
use std::sync::mpsc::SyncSender;

use flight_recorder_format::ThreadInfo;

use crate::engine::cut::cut;
use crate::engine::sink::{Lost, TraceMessage, TraceSink};
use crate::engine::window::Window;
use crate::error::{Error, ErrorKind};
use crate::record::chunk::{self, Chunk, ChunkPool, ChunkView, OpenChunk};
use crate::record::local::{Sink, ThreadShared};
use crate::record::state::{AtomicState, State};
use crate::record::sync::{lock, Arc, Mutex};

/// Free buffers kept for reuse; they are what a window at its size limit recycles on every seal.
const POOL_MAX_FREE: usize = 16;

/// Exited threads whose description is kept for files that still hold their chunks.
const EXITED_THREADS_KEPT: usize = 4096;

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

/// How far a live thread has recorded, as seen by [`Engine::threads_progress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ThreadProgress {
    /// The recorder's id of the thread.
    pub thread: u64,
    /// Its kernel thread id.
    pub os_tid: u64,
    /// Its open chunk's sequence number and published length (`None` without one): any event
    /// the thread records changes it.
    pub progress: Option<(u64, usize)>,
}

/// The active consumers of sealed chunks.
#[derive(Default)]
struct Consumers {
    window: Option<Window>,
    trace: Option<TraceSink>,
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

/// A flight recorder, as the owner of the window: its id, and its running flag, which the engine
/// sets under its lock when the window becomes or stops being this recorder's.
#[derive(Clone, Copy)]
pub(crate) struct WindowOwner<'a> {
    pub id: u64,
    pub running: &'a AtomicBool,
}

/// The bounds of a window: `max_bytes`, and `min_age` in clock units.
#[derive(Clone, Copy)]
pub(crate) struct WindowBounds {
    pub max_bytes: usize,
    pub min_age_units: u64,
}

/// The recorder's shared state. The process has one (`crate::engine::global`); the loom model
/// makes one per run.
pub(crate) struct Engine {
    /// The state word this engine publishes, which its threads read.
    state: &'static AtomicState,
    consumers: Mutex<Consumers>,
    threads: Mutex<Vec<Arc<ThreadShared>>>,
    infos: Mutex<ThreadTable>,
    pool: ChunkPool,
    next_seq: StdAtomicU64,
    next_thread: StdAtomicU64,
}

impl Engine {
    /// An engine with no consumer, whose chunks have `chunk_size` bytes, publishing its state in
    /// `state`.
    pub(crate) fn new(chunk_size: usize, state: &'static AtomicState) -> Engine {
        Engine {
            state,
            consumers: Mutex::new(Consumers::default()),
            threads: Mutex::new(Vec::new()),
            infos: Mutex::new(ThreadTable::default()),
            pool: ChunkPool::new(chunk_size, POOL_MAX_FREE),
            next_seq: StdAtomicU64::new(1),
            next_thread: StdAtomicU64::new(1),
        }
    }

    /// Changes the consumers. `f` gets them and the state value the change will publish (the
    /// state its chunks will carry) and decides; the state is published after it.
    fn update_consumers<R>(&self, f: impl FnOnce(&mut Consumers, State) -> R) -> R {
        let mut consumers = lock(&self.consumers);
        let generation = consumers.generation + 1;
        let next_state = State::new(generation, true, consumers.poll_watchers > 0);
        let result = f(&mut consumers, next_state);
        consumers.generation = generation;
        let enabled = consumers.window.is_some() || consumers.trace.is_some();
        self.state
            .store(State::new(generation, enabled, consumers.poll_watchers > 0));
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

    /// Starts a window for `owner`. Fails if `owner` or another flight recorder has the window.
    pub(crate) fn start_window(
        &self,
        owner: WindowOwner<'_>,
        bounds: WindowBounds,
    ) -> Result<(), Error> {
        self.update_consumers(|consumers, state| match &consumers.window {
            Some(window) if window.owner == owner.id => Err(Error::new(ErrorKind::AlreadyStarted)),
            Some(_) => Err(Error::another_running("flight recorder")),
            None => {
                consumers.window = Some(Window::new(
                    bounds.max_bytes,
                    bounds.min_age_units,
                    state,
                    owner.id,
                ));
                ring_window(state.generation());
                owner.running.store(true, StdOrdering::SeqCst);
                Ok(())
            }
        })
    }

    /// Gives `previous`'s window to `owner`, with new bounds: its chunks move over (then bounded
    /// by `bounds`), so no history is lost. Fails if `owner` has the window already or `previous`
    /// does not have it.
    pub(crate) fn replace_window(
        &self,
        previous: WindowOwner<'_>,
        owner: WindowOwner<'_>,
        bounds: WindowBounds,
        now_units: u64,
    ) -> Result<(), Error> {
        let mut evicted = Vec::new();
        let result = self.update_consumers(|consumers, _| {
            if consumers
                .window
                .as_ref()
                .is_some_and(|w| w.owner == owner.id)
            {
                return Err(Error::new(ErrorKind::AlreadyStarted));
            }
            let Some(mut old) = consumers.window.take_if(|w| w.owner == previous.id) else {
                return Err(Error::new(ErrorKind::NotStarted));
            };
            let mut window = Window::new(
                bounds.max_bytes,
                bounds.min_age_units,
                old.start_state,
                owner.id,
            );
            for chunk in old.drain() {
                window.push(chunk, now_units, &mut evicted);
            }
            ring_window(window.start_state.generation());
            consumers.window = Some(window);
            previous.running.store(false, StdOrdering::SeqCst);
            owner.running.store(true, StdOrdering::SeqCst);
            Ok(())
        });
        self.recycle(evicted);
        result
    }

    /// Stops the window of flight recorder `owner` and frees it; nothing if `owner` has none.
    pub(crate) fn stop_window(&self, owner: u64) {
        let drained = self.update_consumers(|consumers, _| {
            match consumers.window.take_if(|w| w.owner == owner) {
                Some(mut window) => {
                    ring_window(NO_WINDOW);
                    window.drain()
                }
                None => Vec::new(),
            }
        });
        self.recycle(drained);
    }

    /// A snapshot's cut of the window of flight recorder `owner`: every thread's open chunk and
    /// the window's chunks (after dropping those older than `min_age` at `now_units`); `None` if
    /// `owner` has no window. Open chunks taken before the window started are not in the cut.
    pub(crate) fn take_window_cut(&self, owner: u64, now_units: u64) -> Option<Vec<ChunkView>> {
        let mut expired = Vec::new();
        let mut start_state = None;
        let mut views = self.cut(|| match lock(&self.consumers).window.as_mut() {
            Some(window) if window.owner == owner => {
                window.expire(now_units, &mut expired);
                start_state = Some(window.start_state);
                window.chunks()
            }
            _ => Vec::new(),
        });
        self.recycle(expired);
        let start_state = start_state?;
        // Open chunks taken before the recorder started hold only older events.
        views.retain(|v| v.chunk.state.generation() >= start_state.generation());
        Some(views)
    }

    /// The state the window started in and the states of the chunks it holds (for the loom
    /// model, which checks that no chunk from before the start is kept).
    #[cfg(all(test, flight_recorder_loom))]
    pub(crate) fn window_states(&self) -> Option<(State, Vec<State>)> {
        let consumers = lock(&self.consumers);
        let window = consumers.window.as_ref()?;
        let states = window.chunks().iter().map(|c| c.state).collect();
        Some((window.start_state, states))
    }

    /// Starts sending sealed chunks to a full trace's writer through `sender`, counting what the
    /// queue cannot take in `lost`; returns the state the trace starts in. Fails if a full trace
    /// is running.
    pub(crate) fn start_trace(
        &self,
        sender: SyncSender<TraceMessage>,
        lost: std::sync::Arc<Lost>,
    ) -> Result<State, Error> {
        self.update_consumers(|consumers, state| {
            if consumers.trace.is_some() {
                return Err(Error::another_running("full trace"));
            }
            consumers.trace = Some(TraceSink::new(sender, state, lost));
            Ok(state)
        })
    }

    /// Stops sending sealed chunks to the full trace.
    pub(crate) fn stop_trace(&self) {
        self.update_consumers(|consumers, _| consumers.trace = None);
    }

    /// The open chunks of every live thread (a full trace's last cut), those of `start_state`'s
    /// generation or later.
    pub(crate) fn cut_open_chunks(&self, start_state: State) -> Vec<ChunkView> {
        let mut views = self.cut(Vec::new);
        views.retain(|v| v.chunk.state.generation() >= start_state.generation());
        views
    }

    /// A fresh chunk for `thread`, or `None` when memory is exhausted.
    pub(crate) fn new_chunk(
        &self,
        thread: u64,
        state: State,
        base_units: u64,
    ) -> Option<Arc<Chunk>> {
        let buffer = self.pool.take()?;
        // A thread that registered before the ring was made notes its facts for the fatal
        // handler now (called on the thread itself, from its `refill`; a TLS check otherwise).
        #[cfg(not(flight_recorder_loom))]
        if buffer.is_ring() && crate::record::ring::thread::facts().0 == 0 {
            crate::record::ring::thread::registered(thread);
        }
        let seq = self.next_seq.fetch_add(1, StdOrdering::Relaxed);
        Some(Arc::new(Chunk::new(buffer, seq, thread, state, base_units)))
    }

    /// Hands a full or retired chunk to the active consumers, then recycles what nobody keeps.
    /// Called with the owner's slot locked (see `cut`).
    pub(crate) fn seal(&self, chunk: Arc<Chunk>, now_units: u64) {
        let mut evicted = Vec::new();
        let len = chunk.committed();
        if len > 0 && self.state.load().enabled() {
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
        #[cfg(not(flight_recorder_loom))]
        if let Some(ring) = crate::record::ring::ring() {
            ring.refresh_clock();
        }
    }

    /// Returns chunks to the pool (those no reader holds any more).
    pub(crate) fn recycle(&self, chunks: impl IntoIterator<Item = Arc<Chunk>>) {
        for chunk in chunks {
            self.pool.give(chunk);
        }
    }

    /// Takes a cut across every live thread's open chunk and the chunks `sealed` returns.
    fn cut(&self, sealed: impl FnOnce() -> Vec<Arc<Chunk>>) -> Vec<ChunkView> {
        let threads = lock(&self.threads).clone();
        cut(threads.iter().map(|t| &t.open), sealed)
    }

    /// Registers the calling thread.
    pub(crate) fn register_thread(&self) -> Arc<ThreadShared> {
        let id = self.next_thread.fetch_add(1, StdOrdering::Relaxed);
        let info = ThreadInfo {
            id,
            os_tid: os_thread_id(),
            name: std::thread::current()
                .name()
                .unwrap_or_default()
                .to_string(),
        };
        #[cfg(not(flight_recorder_loom))]
        if let Some(ring) = crate::record::ring::ring() {
            let mut entry = Vec::new();
            flight_recorder_format::tables::push_thread(&info, &mut entry);
            ring.log_threads(&entry);
            crate::record::ring::thread::registered(id);
        }
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

    /// The description of a thread, if still known.
    pub(crate) fn thread_info(&self, id: u64) -> Option<ThreadInfo> {
        let infos = lock(&self.infos);
        infos
            .live
            .get(&id)
            .or_else(|| infos.exited.get(&id))
            .cloned()
    }

    /// The descriptions of the live threads (for the CPU sampler, which maps kernel tids to the
    /// recorder's thread ids).
    pub(crate) fn live_threads(&self) -> Vec<ThreadInfo> {
        lock(&self.infos).live.values().cloned().collect()
    }

    /// The polls running now, on every live thread that marks its polls (the poll marks live in
    /// each thread's open chunk; a chunk of an older state does not count, since a poll that
    /// began before a recorder change may end unrecorded).
    pub(crate) fn polls_in_progress(&self) -> Vec<PollInProgress> {
        let state = self.state.load();
        let threads = lock(&self.threads).clone();
        threads
            .iter()
            .filter_map(|t| {
                let view = t.open.view()?;
                if view.chunk.state != state {
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

    /// The live threads with their kernel ids and how far each has recorded.
    pub(crate) fn threads_progress(&self) -> Vec<ThreadProgress> {
        let threads = lock(&self.threads).clone();
        let infos = lock(&self.infos);
        threads
            .iter()
            .map(|t| {
                let os_tid = infos.live.get(&t.id).map_or(0, |i| i.os_tid);
                ThreadProgress {
                    thread: t.id,
                    os_tid,
                    progress: t.open.view().map(|v| (v.chunk.seq, v.len)),
                }
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

/// A window's start generation where the ring (if any) keeps it for recovery.
const NO_WINDOW: u64 = u64::MAX;

fn ring_window(generation: u64) {
    #[cfg(not(flight_recorder_loom))]
    if let Some(ring) = crate::record::ring::ring() {
        ring.set_window_generation(generation);
    }
    #[cfg(flight_recorder_loom)]
    let _ = generation;
}

impl Engine {
    /// Copies the descriptions of the live threads into the ring's log (when the ring is made;
    /// threads registered later are logged as they come).
    #[cfg(not(flight_recorder_loom))]
    pub(crate) fn log_threads_to_ring(&self, ring: &crate::record::ring::Ring) {
        let infos = lock(&self.infos);
        let mut entries = Vec::new();
        for info in infos.live.values() {
            flight_recorder_format::tables::push_thread(info, &mut entries);
        }
        ring.log_threads(&entries);
    }

    /// The generation of the running window, if any (the ring notes it when made).
    #[cfg(not(flight_recorder_loom))]
    pub(crate) fn window_generation(&self) -> Option<u64> {
        lock(&self.consumers)
            .window
            .as_ref()
            .map(|w| w.start_state.generation())
    }
}

/// An engine is the sink of its threads' writers (the loom model's writers use it directly; the
/// process's go through `crate::engine::global`).
impl Sink for Engine {
    fn state(&self) -> State {
        self.state.load()
    }

    fn register_thread(&self) -> Option<Arc<ThreadShared>> {
        Some(Engine::register_thread(self))
    }

    fn unregister_thread(&self, id: u64) {
        Engine::unregister_thread(self, id);
    }

    fn new_chunk(&self, thread: u64, state: State, base_units: u64) -> Option<Arc<Chunk>> {
        Engine::new_chunk(self, thread, state, base_units)
    }

    fn seal(&self, chunk: Arc<Chunk>, now_units: u64) {
        Engine::seal(self, chunk, now_units);
    }
}

/// The calling thread's operating-system id.
fn os_thread_id() -> u64 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() as u64 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// Memory and thread figures of the recorder, for monitoring it and for tests of its bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
