//! The state machine of threads, tasks, regions and user tasks: it turns the events of a trace,
//! in time order, into the spans and intervals that analyses and exporters use.
//!
//! For each async task (from its spawn, or from its first event in the window):
//!
//! ```text
//!   spawn / wake            poll_start              poll_end(pending)        wake
//!  ───────────► runnable ──────────────► running ─────────────────► idle ──────────► runnable …
//!                (scheduling wait)         (run)                     (idle)
//! ```
//!
//! A task's life in the window is split without overlap into **run** (inside polls),
//! **scheduling wait** (woken or spawned, not yet polled) and **idle** (waiting for a wake), as
//! in Go's goroutine analysis. A wake during a poll (a task that wakes itself, `yield_now`) makes
//! the task runnable from the poll's end. A `poll_start_scheduled` carries the runtime's own
//! measure of the wait: it is the scheduling wait of that poll, and any time before it since the
//! last event counts as idle. A poll that starts with no wake seen (the runtime has no wake hook,
//! or the wake was lost) has an unknown wait, and the gap counts as idle.
//!
//! Edges of the window: an end without its beginning (a poll end, a region end, a user task end)
//! is dropped and counted in [`EdgeStats`]; what is still open at the end of the window (a poll,
//! a region, a user task, a task) is closed there and marked `truncated`.
//!
//! Regions nest per thread. An end closes, in this order of preference: the innermost open region
//! of that name and user task on its thread (skipping regions begun inside a poll of another
//! task than the one being polled now); else the open region of that name and the same nonzero
//! user task on any thread; else an open region of that name begun inside a poll of the task
//! being polled now, on any thread (a future's region held across an `.await` that resumed on
//! another worker).

use flight_recorder_format::EventKind;

use crate::dense::DenseIds;
pub use crate::ids::{IdHasher, IdMap};
use crate::merge::{Ev, Names};

mod observer;
mod step;

pub use observer::{
    EdgeStats, Ignore, Note, Observer, OpenRegion, PollBegin, PollEnd, PollResult, RegionSpan,
    TaskDone, TaskRef, TaskWoken, UserTaskSpan, WakeRef,
};

/// Roles of a runtime thread (`runtime_thread` events).
pub mod role {
    /// A worker thread.
    pub const WORKER: u64 = 0;
    /// A blocking-pool thread.
    pub const BLOCKING: u64 = 1;
    /// Another thread of the runtime.
    pub const OTHER: u64 = 2;
}

/// Deepest region stack kept per thread; deeper begins are dropped (and counted).
const MAX_REGION_DEPTH: usize = 256;
/// Notes kept per poll for the annotations of long polls.
const MAX_POLL_NOTES: usize = 16;

#[derive(Clone, Copy, Debug)]
enum Phase {
    Idle(u64),
    Runnable(u64, Option<WakeRef>),
    Running,
}

#[derive(Clone, Debug)]
struct TaskState {
    task: TaskRef,
    parent: u64,
    spawned: bool,
    start: u64,
    phase: Phase,
    woken_while_running: Option<WakeRef>,
    terminate_after_poll: bool,
    run: u64,
    sched_wait: u64,
    idle: u64,
    polls: u64,
    longest_poll: u64,
}

/// The live tasks: their states in a slab (a freed slot is reused), found by id through a map
/// of small entries (the states stay put when the map grows), so that a poll's end reaches its
/// task through the slot noted at the poll's start.
#[derive(Default)]
struct TaskTable {
    slots: Vec<Option<TaskState>>,
    free: Vec<usize>,
    index: IdMap<usize>,
}

impl TaskTable {
    /// The slot of the task with this id.
    #[inline]
    fn slot(&self, id: u64) -> Option<usize> {
        self.index.get(&id).copied()
    }

    #[inline]
    fn get_mut(&mut self, id: u64) -> Option<&mut TaskState> {
        self.find(id).map(|(_, state)| state)
    }

    /// The task with this id, and its slot.
    #[inline]
    fn find(&mut self, id: u64) -> Option<(usize, &mut TaskState)> {
        let slot = self.slot(id)?;
        Some((slot, self.slots.get_mut(slot)?.as_mut()?))
    }

    #[inline]
    fn at(&mut self, slot: usize) -> Option<&mut TaskState> {
        self.slots.get_mut(slot)?.as_mut()
    }

    /// The task with this id: the one in `slot` when it is still there (the common case, no
    /// lookup), else looked up.
    #[inline]
    fn get_mut_at(&mut self, id: u64, slot: usize) -> Option<(usize, &mut TaskState)> {
        let slot = match self.slots.get(slot) {
            Some(Some(state)) if state.task.id == id => slot,
            _ => self.slot(id)?,
        };
        Some((slot, self.slots.get_mut(slot)?.as_mut()?))
    }

    /// Stores the task with this id (replacing any), returns its slot.
    fn insert(&mut self, id: u64, state: TaskState) -> usize {
        if let Some(slot) = self.slot(id) {
            if let Some(old) = self.slots.get_mut(slot) {
                *old = Some(state);
                return slot;
            }
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(state);
                slot
            }
            None => {
                self.slots.push(Some(state));
                self.slots.len() - 1
            }
        };
        self.index.insert(id, slot);
        slot
    }

    /// Takes the task with this id out, with its slot (free again).
    fn remove(&mut self, id: u64) -> Option<(usize, TaskState)> {
        let slot = self.index.remove(&id)?;
        let state = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        Some((slot, state))
    }

    /// Every task with its slot, in no particular order; the table is left empty.
    fn drain(&mut self) -> Vec<(usize, TaskState)> {
        self.index.clear();
        self.free.clear();
        self.slots
            .drain(..)
            .enumerate()
            .filter_map(|(slot, state)| Some((slot, state?)))
            .collect()
    }
}

#[derive(Clone, Copy, Debug)]
enum WorkerPhase {
    Unknown,
    Busy(u64),
    Idle,
}

#[derive(Clone, Copy, Debug)]
struct OpenPoll {
    task: u64,
    uid: u64,
    start: u64,
    /// The task's slot in the task table at the poll's start.
    slot: usize,
}

#[derive(Debug)]
struct ThreadState {
    id: u64,
    polls: Vec<OpenPoll>,
    regions: Vec<OpenRegion>,
    notes: Vec<Note>,
    worker: Option<WorkerPhase>,
    first: u64,
}

/// The state machine; feed it events in time order with [`Model::step`], then call
/// [`Model::finish`].
pub struct Model {
    tasks: TaskTable,
    threads: Vec<ThreadState>,
    /// Thread ids to indices in `threads`.
    thread_ids: DenseIds,
    user_tasks: IdMap<UserTaskSpan>,
    next_uid: u64,
    next_flow: u64,
    /// The earliest and latest times seen (`u64::MAX, 0` before the first event: no window).
    window_start: u64,
    window_end: u64,
    edges: EdgeStats,
}

impl Default for Model {
    fn default() -> Self {
        Model::new()
    }
}
