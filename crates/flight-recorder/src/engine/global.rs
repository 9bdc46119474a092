//! The process's recorder: its state word, its engine and every thread's writer, as statics.
//! These are the entry points the public API calls; the code behind them (`crate::record::local`,
//! `super::shared`) takes them as explicit arguments, so the loom model can run it on instances
//! of its own.

use std::sync::LazyLock;

use flight_recorder_format::EventKind;

use crate::engine::shared::{Engine, RecorderStats};
use crate::record::chunk::{Chunk, CHUNK_SIZE};
use crate::record::clock;
use crate::record::local::{Local, Sink, ThreadShared};
use crate::record::state::{AtomicState, State};
use crate::record::sync::Arc;

/// The process's state word (see `crate::record::state`): the one load of every instrumentation
/// point.
pub(crate) static STATE: AtomicState = AtomicState::new();

static ENGINE: LazyLock<Engine> = LazyLock::new(|| Engine::new(CHUNK_SIZE, &STATE));

/// The process's engine.
pub(crate) fn engine() -> &'static Engine {
    &ENGINE
}

thread_local! {
    static LOCAL: Local = const { Local::new() };
    static EXIT_HOOK: ExitHook = const { ExitHook };
}

/// Runs when the thread exits, if it ever recorded (registration touches it, which makes the
/// runtime register its destructor).
struct ExitHook;

impl Drop for ExitHook {
    fn drop(&mut self) {
        let _ = LOCAL.try_with(|local| local.exit(Process));
    }
}

/// The process's engine as the writers see it. A unit type, passed by value, so that the hot
/// path, generic over its [`Sink`], compiles to the code it would be with the statics written in,
/// and reaches the engine only when it changes chunks.
#[derive(Clone, Copy)]
struct Process;

impl Sink for Process {
    #[inline(always)]
    fn state(&self) -> State {
        STATE.load()
    }

    fn register_thread(&self) -> Option<Arc<ThreadShared>> {
        // Without a destructor slot (the thread is already exiting) the thread cannot be
        // cleaned up, so it does not record.
        if EXIT_HOOK.try_with(|_| ()).is_err() {
            return None;
        }
        Some(engine().register_thread())
    }

    fn unregister_thread(&self, id: u64) {
        engine().unregister_thread(id);
    }

    fn new_chunk(&self, thread: u64, state: State, base_units: u64) -> Option<Arc<Chunk>> {
        engine().new_chunk(thread, state, base_units)
    }

    fn seal(&self, chunk: Arc<Chunk>, now_units: u64) {
        engine().seal(chunk, now_units);
    }
}

/// Records one event on the calling thread. `state` is the value of [`STATE`] the caller loaded
/// and found enabled.
#[inline(always)]
pub(crate) fn record(state: State, kind: EventKind, args: &[u64], payload: &[u8]) {
    let ticks = clock::now();
    local().record(Process, state, ticks, kind, args, payload);
}

/// The calling thread's writer. Taking the address in a tiny closure lets the compiler inline
/// all of `Local::record` at the call site, where the kind and the argument count are constants.
#[inline(always)]
fn local() -> &'static Local {
    let local: *const Local = LOCAL.with(|local| local as *const Local);
    // SAFETY: `LOCAL` is const-initialized and has no destructor, so it lives as long as the
    // thread. The reference is `'static` only in name: it never leaves this module, whose callers
    // use it on this thread within one call.
    unsafe { &*local }
}

/// Tags the calling thread as serving `runtime` (named by the string id `name`) in `role`, and
/// records it when it changes. Cheap when the tag is already set.
#[cfg(feature = "tokio")]
#[inline]
pub(crate) fn set_runtime(runtime: u64, role: u64, name: u64) {
    let changed =
        LOCAL.with(|local| local.replace_runtime((runtime, role, name)) != (runtime, role, name));
    let state = STATE.load();
    if changed && state.enabled() {
        record(state, EventKind::RuntimeThread, &[runtime, role], &[]);
        record(state, EventKind::RuntimeName, &[runtime, name], &[]);
    }
}

/// The runtime tag of the calling thread: (runtime, role, name id).
#[cfg(feature = "tokio")]
#[inline]
pub(crate) fn runtime() -> (u64, u64, u64) {
    LOCAL.with(Local::runtime)
}

/// Records the start of a task's poll and, while a watchdog reads them, marks the thread as
/// polling it.
#[inline(always)]
pub(crate) fn record_poll_start(state: State, task: u64) {
    let local = local();
    local.record(
        Process,
        state,
        clock::now(),
        EventKind::PollStart,
        &[task],
        &[],
    );
    if state.watches_polls() {
        local.mark_poll(task);
    }
}

/// Records the start of a task's poll with the time it waited since it was scheduled, and marks
/// the thread as polling it.
#[inline(always)]
pub(crate) fn record_poll_start_scheduled(state: State, task: u64, waited_ns: u64) {
    let local = local();
    local.record(
        Process,
        state,
        clock::now(),
        EventKind::PollStartScheduled,
        &[task, waited_ns],
        &[],
    );
    if state.watches_polls() {
        local.mark_poll(task);
    }
}

/// Records the end of a task's poll (`result`: 1 ready, 0 pending, 2 not reported) and clears
/// the thread's poll mark.
#[inline(always)]
pub(crate) fn record_poll_end(state: State, task: u64, result: u64) {
    let local = local();
    if state.watches_polls() {
        local.mark_poll(0);
    }
    local.record(
        Process,
        state,
        clock::now(),
        EventKind::PollEnd,
        &[task, result],
        &[],
    );
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
