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

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use flight_recorder_format::EventKind;

use crate::dense::DenseIds;
use crate::merge::{Ev, Names};

/// A fast hasher for integer keys (task and thread ids).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// A map keyed by ids.
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

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

/// What made a task runnable: a wake or its spawn, where and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WakeRef {
    /// When.
    pub time: u64,
    /// The thread that woke (or spawned) the task.
    pub thread: u64,
    /// The waking task (0: woken from outside a task, or a spawn).
    pub waker: u64,
    /// Whether this is the task's spawn rather than a wake.
    pub spawn: bool,
    /// A number unique in the trace, to link the wake to the poll it caused.
    pub flow: u64,
}

/// A task as the analyses name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskRef {
    /// The runtime's task id (reused after a task ends).
    pub id: u64,
    /// A number unique in the trace for this incarnation of the id, from 1.
    pub uid: u64,
    /// The spawn location id (0: unknown).
    pub location: u64,
}

/// How a poll ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollResult {
    /// The task is not done.
    Pending,
    /// The task completed.
    Ready,
    /// The runtime did not say (tokio's hooks); a terminate follows the last poll.
    Unreported,
    /// The window ended during the poll.
    Truncated,
}

/// A poll that began.
#[derive(Clone, Copy, Debug)]
pub struct PollBegin {
    /// The polling thread.
    pub thread: u64,
    /// The task.
    pub task: TaskRef,
    /// When.
    pub time: u64,
    /// How long the task waited to be polled since it became runnable, when known.
    pub sched_wait: Option<u64>,
    /// The wake (or spawn) that made the task runnable, when seen.
    pub wake: Option<WakeRef>,
}

/// A poll that ended (or was cut by the end of the window).
#[derive(Clone, Copy, Debug)]
pub struct PollEnd {
    /// The polling thread.
    pub thread: u64,
    /// The task.
    pub task: TaskRef,
    /// When it began.
    pub start: u64,
    /// When it ended.
    pub end: u64,
    /// How it ended.
    pub result: PollResult,
}

impl PollEnd {
    /// The poll's duration, ns.
    pub fn duration(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
}

/// A region open on a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenRegion {
    /// Name (string id).
    pub name: u64,
    /// User task (0: none).
    pub user_task: u64,
    /// When it began.
    pub begin: u64,
    /// The thread it began on.
    pub thread: u64,
    /// The task being polled on that thread when it began ([`TaskRef::uid`]; 0: none).
    pub task: u64,
}

/// Something that happened on a thread during a poll, for the annotations of long polls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// A region began or ended during the poll.
    Region {
        /// Name (string id).
        name: u64,
        /// User task (0: none).
        user_task: u64,
    },
    /// A log message during the poll.
    Log {
        /// Category (string id).
        category: u64,
        /// The message.
        message: String,
    },
}

/// A completed region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionSpan {
    /// Name (string id).
    pub name: u64,
    /// User task (0: none).
    pub user_task: u64,
    /// The thread it began on.
    pub thread: u64,
    /// The thread it ended on.
    pub end_thread: u64,
    /// When it began.
    pub begin: u64,
    /// When it ended (the window's end when truncated).
    pub end: u64,
    /// Still open at the end of the window.
    pub truncated: bool,
}

/// A completed user task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserTaskSpan {
    /// The user task id.
    pub id: u64,
    /// The parent user task (0: none).
    pub parent: u64,
    /// Name (string id).
    pub name: u64,
    /// The thread it began on.
    pub thread: u64,
    /// When it began.
    pub begin: u64,
    /// When it ended (the window's end when truncated).
    pub end: u64,
    /// Still open at the end of the window.
    pub truncated: bool,
}

/// A task's account for its life in the window, reported when it ends or the window does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskDone {
    /// The task.
    pub task: TaskRef,
    /// The parent task id (0: none or unknown).
    pub parent: u64,
    /// Whether its spawn is in the window.
    pub spawned: bool,
    /// Whether it ended in the window (else it was alive at the end).
    pub ended: bool,
    /// Its first moment in the window (spawn or first event).
    pub start: u64,
    /// Its last moment (end, or the window's end).
    pub end: u64,
    /// Time inside polls, ns.
    pub run: u64,
    /// Time runnable but not polled, ns.
    pub sched_wait: u64,
    /// Time waiting for a wake, ns.
    pub idle: u64,
    /// Polls (completed or cut by the window's end).
    pub polls: u64,
    /// The longest poll, ns.
    pub longest_poll: u64,
}

/// What the model could not pair at the edges of the window, or dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EdgeStats {
    /// Poll ends without a poll start (the start was before the window).
    pub poll_ends_without_start: u64,
    /// Polls still running at the end of the window (closed there).
    pub polls_open_at_end: u64,
    /// Region ends without a matching begin.
    pub region_ends_without_begin: u64,
    /// Regions still open at the end of the window (closed there).
    pub regions_open_at_end: u64,
    /// Region begins dropped because a thread's region stack was too deep.
    pub regions_too_deep: u64,
    /// User task ends without a begin.
    pub user_task_ends_without_begin: u64,
    /// User tasks still open at the end of the window (closed there).
    pub user_tasks_open_at_end: u64,
    /// Tasks alive at the end of the window.
    pub tasks_alive_at_end: u64,
}

/// Receives what the model derives. Every method has an empty default.
#[allow(unused_variables)]
pub trait Observer {
    /// Every event, before the model handles it.
    fn event(&mut self, names: &dyn Names, ev: &Ev) {}
    /// Every event, before the model handles it, with the index of its thread: the model
    /// numbers threads from 0 in the order of their first events. The model calls this one;
    /// by default it calls [`Observer::event`].
    #[inline]
    fn event_on_thread(&mut self, names: &dyn Names, ev: &Ev, thread_index: usize) {
        self.event(names, ev)
    }
    /// A poll began.
    fn poll_begin(&mut self, names: &dyn Names, poll: &PollBegin) {}
    /// A poll ended; `stack` is the thread's open regions at its end, `notes` what happened on
    /// the thread during it (regions begun or ended, logs; at most 16).
    fn poll_end(
        &mut self,
        names: &dyn Names,
        poll: &PollEnd,
        stack: &[OpenRegion],
        notes: &[Note],
    ) {
    }
    /// A region began on a thread.
    fn region_begin(&mut self, names: &dyn Names, region: &OpenRegion) {}
    /// A region ended (or was closed at the window's end).
    fn region_end(&mut self, names: &dyn Names, region: &RegionSpan) {}
    /// A user task began.
    fn user_task_begin(&mut self, names: &dyn Names, id: u64, parent: u64, name: u64, time: u64) {}
    /// A user task ended (or was closed at the window's end).
    fn user_task_end(&mut self, names: &dyn Names, task: &UserTaskSpan) {}
    /// A task's account, when it ends or the window does.
    fn task_done(&mut self, names: &dyn Names, task: &TaskDone) {}
    /// A worker thread was busy (unparked) from `start` to `end`.
    fn busy(&mut self, thread: u64, start: u64, end: u64) {}
    /// The end of the events; everything open has been closed.
    fn finish(&mut self, names: &dyn Names, window: Option<(u64, u64)>, edges: &EdgeStats) {}
}

/// An observer that ignores everything.
pub struct Ignore;

impl Observer for Ignore {}

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
        let slot = self.slot(id)?;
        self.slots.get_mut(slot)?.as_mut()
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

    fn remove(&mut self, id: u64) -> Option<TaskState> {
        let slot = self.index.remove(&id)?;
        let state = self.slots.get_mut(slot)?.take();
        if state.is_some() {
            self.free.push(slot);
        }
        state
    }

    /// Every task, in no particular order; the table is left empty.
    fn drain(&mut self) -> Vec<TaskState> {
        self.index.clear();
        self.free.clear();
        self.slots.drain(..).flatten().collect()
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

impl Model {
    /// A model that has seen nothing.
    pub fn new() -> Model {
        Model {
            tasks: TaskTable::default(),
            threads: Vec::new(),
            thread_ids: DenseIds::default(),
            user_tasks: IdMap::default(),
            next_uid: 1,
            next_flow: 1,
            window_start: u64::MAX,
            window_end: 0,
            edges: EdgeStats::default(),
        }
    }

    /// The time span of the events seen so far.
    pub fn window(&self) -> Option<(u64, u64)> {
        (self.window_start <= self.window_end).then_some((self.window_start, self.window_end))
    }

    /// What could not be paired so far.
    pub fn edges(&self) -> &EdgeStats {
        &self.edges
    }

    #[inline]
    fn thread(&mut self, id: u64, time: u64) -> usize {
        let (index, new) = self.thread_ids.index(id);
        if new {
            self.threads.push(ThreadState {
                id,
                polls: Vec::new(),
                regions: Vec::new(),
                notes: Vec::new(),
                worker: None,
                first: time,
            });
        }
        index
    }

    fn new_task(&mut self, id: u64, start: u64, phase: Phase) -> TaskState {
        let uid = self.next_uid;
        self.next_uid += 1;
        TaskState {
            task: TaskRef {
                id,
                uid,
                location: 0,
            },
            parent: 0,
            spawned: false,
            start,
            phase,
            woken_while_running: None,
            terminate_after_poll: false,
            run: 0,
            sched_wait: 0,
            idle: 0,
            polls: 0,
            longest_poll: 0,
        }
    }

    fn flow(&mut self) -> u64 {
        let flow = self.next_flow;
        self.next_flow += 1;
        flow
    }

    /// Handles one event.
    pub fn step<O: Observer + ?Sized>(&mut self, names: &dyn Names, ev: &Ev, obs: &mut O) {
        let t = ev.time;
        let th = self.thread(ev.thread, t);
        obs.event_on_thread(names, ev, th);
        self.window_start = self.window_start.min(t);
        self.window_end = self.window_end.max(t);
        // The kinds of nearly every event, here; the others apart, out of this path. A kind
        // with fewer arguments than this version knows goes there too, to be ignored.
        const POLL_START: u8 = EventKind::PollStart as u8;
        const POLL_START_SCHEDULED: u8 = EventKind::PollStartScheduled as u8;
        const POLL_END: u8 = EventKind::PollEnd as u8;
        const TASK_WAKE: u8 = EventKind::TaskWake as u8;
        match ev.kind {
            POLL_START if ev.arg_count >= 1 => self.poll_start(names, th, ev.args[0], t, None, obs),
            POLL_START_SCHEDULED if ev.arg_count >= 2 => {
                self.poll_start(names, th, ev.args[0], t, Some(ev.args[1]), obs)
            }
            POLL_END if ev.arg_count >= 2 => {
                self.poll_end(names, th, ev.args[0], ev.args[1], t, obs)
            }
            TASK_WAKE if ev.arg_count >= 2 => self.wake(ev.args[0], ev.args[1], ev.thread, t),
            _ => self.step_other(names, ev, th, obs),
        }
    }

    /// [`Model::step`] for the kinds other than poll starts and ends and wakes.
    #[inline(never)]
    fn step_other<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        ev: &Ev,
        th: usize,
        obs: &mut O,
    ) {
        let t = ev.time;
        let Some(kind) = EventKind::from_byte(ev.kind) else {
            return;
        };
        if usize::from(ev.arg_count) < kind.arg_count() {
            return; // a layout this version does not know; counted by kind only
        }
        match kind {
            EventKind::PollStart => self.poll_start(names, th, ev.arg(0), t, None, obs),
            EventKind::PollStartScheduled => {
                self.poll_start(names, th, ev.arg(0), t, Some(ev.arg(1)), obs)
            }
            EventKind::PollEnd => self.poll_end(names, th, ev.arg(0), ev.arg(1), t, obs),
            EventKind::TaskWake => self.wake(ev.arg(0), ev.arg(1), ev.thread, t),
            EventKind::TaskSpawn => {
                self.spawn(names, ev.arg(0), ev.arg(1), ev.arg(2), ev.thread, t, obs)
            }
            EventKind::TaskTerminate => {
                let id = ev.arg(0);
                if let Some(state) = self.tasks.get_mut(id) {
                    if matches!(state.phase, Phase::Running) {
                        state.terminate_after_poll = true;
                    } else {
                        let state = self.tasks.remove(id).expect("present");
                        self.done(names, state, t, true, obs);
                    }
                }
            }
            EventKind::WorkerPark => {
                let thread = &mut self.threads[th];
                match thread.worker {
                    Some(WorkerPhase::Busy(since)) => obs.busy(thread.id, since, t),
                    // A worker runs from its start until it first parks (the runtime may tell
                    // the thread's role late).
                    None | Some(WorkerPhase::Unknown) => obs.busy(thread.id, thread.first, t),
                    Some(WorkerPhase::Idle) => {}
                }
                thread.worker = Some(WorkerPhase::Idle);
            }
            EventKind::WorkerUnpark => {
                let thread = &mut self.threads[th];
                if let Some(WorkerPhase::Busy(_)) = thread.worker {
                    return;
                }
                thread.worker = Some(WorkerPhase::Busy(t));
            }
            EventKind::RuntimeThread => {
                let thread = &mut self.threads[th];
                if ev.arg(1) == role::WORKER && thread.worker.is_none() {
                    thread.worker = Some(WorkerPhase::Unknown);
                }
            }
            EventKind::ThreadExit => {
                let thread = &mut self.threads[th];
                match thread.worker {
                    Some(WorkerPhase::Busy(since)) => obs.busy(thread.id, since, t),
                    Some(WorkerPhase::Unknown) => obs.busy(thread.id, thread.first, t),
                    _ => {}
                }
                if thread.worker.is_some() {
                    thread.worker = Some(WorkerPhase::Idle);
                }
            }
            EventKind::RegionBegin => {
                let thread = &mut self.threads[th];
                if thread.regions.len() >= MAX_REGION_DEPTH {
                    self.edges.regions_too_deep += 1;
                    return;
                }
                let region = OpenRegion {
                    name: ev.arg(0),
                    user_task: ev.arg(1),
                    begin: t,
                    thread: ev.thread,
                    task: thread.polls.last().map_or(0, |p| p.uid),
                };
                thread.regions.push(region);
                if !thread.polls.is_empty() && thread.notes.len() < MAX_POLL_NOTES {
                    thread.notes.push(Note::Region {
                        name: region.name,
                        user_task: region.user_task,
                    });
                }
                obs.region_begin(names, &region);
            }
            EventKind::RegionEnd => self.region_end(names, th, ev.arg(0), ev.arg(1), t, obs),
            EventKind::Log => {
                let thread = &mut self.threads[th];
                if !thread.polls.is_empty() && thread.notes.len() < MAX_POLL_NOTES {
                    let message = ev
                        .payload
                        .as_deref()
                        .map(|p| String::from_utf8_lossy(&p[..p.len().min(200)]).into_owned())
                        .unwrap_or_default();
                    thread.notes.push(Note::Log {
                        category: ev.arg(0),
                        message,
                    });
                }
            }
            EventKind::UserTaskBegin => {
                let span = UserTaskSpan {
                    id: ev.arg(0),
                    parent: ev.arg(1),
                    name: ev.arg(2),
                    thread: ev.thread,
                    begin: t,
                    end: t,
                    truncated: false,
                };
                if let Some(previous) = self.user_tasks.insert(span.id, span) {
                    // A begin again for an open id: close the first one here.
                    let mut previous = previous;
                    previous.end = t;
                    obs.user_task_end(names, &previous);
                }
                obs.user_task_begin(names, span.id, span.parent, span.name, t);
            }
            EventKind::UserTaskEnd => match self.user_tasks.remove(&ev.arg(0)) {
                Some(mut span) => {
                    span.end = t.max(span.begin);
                    obs.user_task_end(names, &span);
                }
                None => self.edges.user_task_ends_without_begin += 1,
            },
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        id: u64,
        location: u64,
        parent: u64,
        thread: u64,
        t: u64,
        obs: &mut O,
    ) {
        let wake = WakeRef {
            time: t,
            thread,
            waker: parent,
            spawn: true,
            flow: self.flow(),
        };
        if let Some(existing) = self.tasks.get_mut(id) {
            if !existing.spawned && existing.start >= t {
                // The spawn arrived after the task's first events (a late chunk): same task.
                existing.spawned = true;
                existing.task.location = location;
                existing.parent = parent;
                existing.start = t;
                return;
            }
            // The id was reused: the old task ended without a terminate in the window.
            let old = self.tasks.remove(id).expect("present");
            self.done(names, old, t, true, obs);
        }
        let mut state = self.new_task(id, t, Phase::Runnable(t, Some(wake)));
        state.spawned = true;
        state.task.location = location;
        state.parent = parent;
        self.tasks.insert(id, state);
    }

    fn wake(&mut self, id: u64, waker: u64, thread: u64, t: u64) {
        let flow = self.flow();
        let wake = WakeRef {
            time: t,
            thread,
            waker,
            spawn: false,
            flow,
        };
        match self.tasks.get_mut(id) {
            Some(state) => match state.phase {
                Phase::Idle(since) => {
                    state.idle += t.saturating_sub(since);
                    state.phase = Phase::Runnable(t, Some(wake));
                }
                Phase::Running => {
                    if state.woken_while_running.is_none() {
                        state.woken_while_running = Some(wake);
                    }
                }
                Phase::Runnable(..) => {}
            },
            None => {
                let state = self.new_task(id, t, Phase::Runnable(t, Some(wake)));
                self.tasks.insert(id, state);
            }
        }
    }

    /// Makes a task ready for a poll that is not the common case: closes a poll of it still open
    /// somewhere (its end was lost) and creates the task when it was never seen. Returns its slot.
    fn prepare_poll<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        id: u64,
        t: u64,
        latency: Option<u64>,
        obs: &mut O,
    ) -> usize {
        if let Some(Phase::Running) = self.tasks.get_mut(id).map(|s| s.phase) {
            for index in 0..self.threads.len() {
                if let Some(pos) = self.threads[index].polls.iter().rposition(|p| p.task == id) {
                    self.close_polls(names, index, pos, t, PollResult::Truncated, obs);
                    break;
                }
            }
        }
        if let Some(slot) = self.tasks.slot(id) {
            return slot;
        }
        let window_start = self.window().map_or(t, |w| w.0);
        let start = latency.map_or(t, |l| t.saturating_sub(l).max(window_start));
        let state = self.new_task(id, start, Phase::Idle(start));
        self.tasks.insert(id, state)
    }

    fn poll_start<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        th: usize,
        id: u64,
        t: u64,
        latency: Option<u64>,
        obs: &mut O,
    ) {
        // The common case, in one lookup: a known task that is not running.
        let known = self.tasks.slot(id);
        let running = known
            .and_then(|slot| self.tasks.at(slot))
            .is_some_and(|state| matches!(state.phase, Phase::Running));
        let slot = match known {
            Some(slot) if !running => slot,
            _ => self.prepare_poll(names, id, t, latency, obs),
        };
        if let Some(state) = self.tasks.at(slot) {
            Self::begin_poll(
                state,
                slot,
                &mut self.threads[th],
                names,
                id,
                t,
                latency,
                obs,
            );
        }
    }

    /// The poll of `state`'s task starts on `thread`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn begin_poll<O: Observer + ?Sized>(
        state: &mut TaskState,
        slot: usize,
        thread: &mut ThreadState,
        names: &dyn Names,
        id: u64,
        t: u64,
        latency: Option<u64>,
        obs: &mut O,
    ) {
        let (sched_wait, wake) = match state.phase {
            Phase::Runnable(since, wake) => {
                let gap = t.saturating_sub(since);
                let wait = latency.map_or(gap, |l| l.min(gap));
                state.idle += gap - wait;
                (Some(wait), wake)
            }
            Phase::Idle(since) => {
                let gap = t.saturating_sub(since);
                match latency {
                    Some(l) => {
                        let wait = l.min(gap);
                        state.idle += gap - wait;
                        (Some(wait), None)
                    }
                    None => {
                        state.idle += gap;
                        (None, None)
                    }
                }
            }
            Phase::Running => (latency, None),
        };
        // With a runtime measure, it is the wait (even when it reaches before the window).
        let sched_wait = match (latency, sched_wait) {
            (Some(l), Some(_)) => Some(l),
            (_, other) => other,
        };
        if let Some(wait) = sched_wait {
            let counted = match state.phase {
                Phase::Runnable(since, _) | Phase::Idle(since) => wait.min(t.saturating_sub(since)),
                Phase::Running => 0,
            };
            state.sched_wait += counted;
        }
        state.phase = Phase::Running;
        state.woken_while_running = None;
        let task = state.task;
        let thread_id = thread.id;
        if thread.polls.is_empty() {
            thread.notes.clear();
        }
        thread.polls.push(OpenPoll {
            task: id,
            uid: task.uid,
            start: t,
            slot,
        });
        obs.poll_begin(
            names,
            &PollBegin {
                thread: thread_id,
                task,
                time: t,
                sched_wait,
                wake,
            },
        );
    }

    fn poll_end<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        th: usize,
        id: u64,
        result: u64,
        t: u64,
        obs: &mut O,
    ) {
        let result = match result {
            0 => PollResult::Pending,
            1 => PollResult::Ready,
            _ => PollResult::Unreported,
        };
        match self.threads[th].polls.iter().rposition(|p| p.task == id) {
            Some(pos) => self.close_polls(names, th, pos, t, result, obs),
            None => {
                self.edges.poll_ends_without_start += 1;
                // The task's state still moves on.
                let window_start = self.window().map_or(t, |w| w.0);
                match self.tasks.get_mut(id) {
                    Some(state) => state.phase = Phase::Running,
                    None => {
                        let state = self.new_task(id, window_start, Phase::Running);
                        self.tasks.insert(id, state);
                    }
                }
                self.after_poll(names, id, t, result, obs);
            }
        }
    }

    /// Ends the polls of thread `th` from stack position `pos` up (inner ones first; those above
    /// `pos` lost their end and are cut at `t`).
    fn close_polls<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        th: usize,
        pos: usize,
        t: u64,
        result: PollResult,
        obs: &mut O,
    ) {
        while self.threads[th].polls.len() > pos {
            let open = self.threads[th].polls.pop().expect("non-empty");
            let this_result = if self.threads[th].polls.len() == pos {
                result
            } else {
                PollResult::Truncated
            };
            let end = t.max(open.start);
            let duration = end - open.start;
            let mut state = self.tasks.get_mut_at(open.task, open.slot);
            let task = match &mut state {
                Some((_, state)) => {
                    state.run += duration;
                    state.polls += 1;
                    state.longest_poll = state.longest_poll.max(duration);
                    state.task
                }
                None => TaskRef {
                    id: open.task,
                    uid: 0,
                    location: 0,
                },
            };
            let thread = &self.threads[th];
            obs.poll_end(
                names,
                &PollEnd {
                    thread: thread.id,
                    task,
                    start: open.start,
                    end,
                    result: this_result,
                },
                &thread.regions,
                &thread.notes,
            );
            // What `after_poll` does, without looking the task up again.
            if let Some((_, state)) = state {
                if this_result == PollResult::Ready || state.terminate_after_poll {
                    let state = self.tasks.remove(open.task).expect("present");
                    self.done(names, state, end, true, obs);
                } else {
                    state.phase = match state.woken_while_running.take() {
                        Some(wake) => Phase::Runnable(end, Some(wake)),
                        None => Phase::Idle(end),
                    };
                }
            }
        }
    }

    fn after_poll<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        id: u64,
        t: u64,
        result: PollResult,
        obs: &mut O,
    ) {
        let Some(state) = self.tasks.get_mut(id) else {
            return;
        };
        if result == PollResult::Ready || state.terminate_after_poll {
            let state = self.tasks.remove(id).expect("present");
            self.done(names, state, t, true, obs);
            return;
        }
        state.phase = match state.woken_while_running.take() {
            Some(wake) => Phase::Runnable(t, Some(wake)),
            None => Phase::Idle(t),
        };
    }

    fn region_end<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        th: usize,
        name: u64,
        user_task: u64,
        t: u64,
        obs: &mut O,
    ) {
        let thread_id = self.threads[th].id;
        // The task being polled now on this thread (uid; 0: none).
        let polled = self.threads[th].polls.last().map_or(0, |p| p.uid);
        let same = |r: &OpenRegion| r.name == name && r.user_task == user_task;
        let mut found = self.threads[th]
            .regions
            .iter()
            .rposition(|r| same(r) && (r.task == 0 || polled == 0 || r.task == polled))
            .map(|pos| (th, pos));
        let elsewhere = |threads: &[ThreadState], ok: &dyn Fn(&OpenRegion) -> bool| {
            threads.iter().enumerate().find_map(|(index, thread)| {
                thread.regions.iter().rposition(ok).map(|pos| (index, pos))
            })
        };
        if found.is_none() && user_task != 0 {
            found = elsewhere(&self.threads, &same);
        }
        if found.is_none() && polled != 0 {
            found = elsewhere(&self.threads, &|r: &OpenRegion| same(r) && r.task == polled);
        }
        let Some((index, pos)) = found else {
            self.edges.region_ends_without_begin += 1;
            return;
        };
        let open = self.threads[index].regions.remove(pos);
        let thread = &mut self.threads[th];
        if !thread.polls.is_empty() && thread.notes.len() < MAX_POLL_NOTES {
            thread.notes.push(Note::Region { name, user_task });
        }
        obs.region_end(
            names,
            &RegionSpan {
                name,
                user_task,
                thread: open.thread,
                end_thread: thread_id,
                begin: open.begin,
                end: t.max(open.begin),
                truncated: false,
            },
        );
    }

    fn done<O: Observer + ?Sized>(
        &mut self,
        names: &dyn Names,
        mut state: TaskState,
        t: u64,
        ended: bool,
        obs: &mut O,
    ) {
        match state.phase {
            Phase::Idle(since) => state.idle += t.saturating_sub(since),
            Phase::Runnable(since, _) => state.sched_wait += t.saturating_sub(since),
            Phase::Running => {}
        }
        obs.task_done(
            names,
            &TaskDone {
                task: state.task,
                parent: state.parent,
                spawned: state.spawned,
                ended,
                start: state.start,
                end: t.max(state.start),
                run: state.run,
                sched_wait: state.sched_wait,
                idle: state.idle,
                polls: state.polls,
                longest_poll: state.longest_poll,
            },
        );
    }

    /// Closes everything still open at the end of the window and reports the end.
    pub fn finish<O: Observer + ?Sized>(&mut self, names: &dyn Names, obs: &mut O) {
        let end = self.window().map_or(0, |w| w.1);
        for th in 0..self.threads.len() {
            let open = self.threads[th].polls.len() as u64;
            if open > 0 {
                self.edges.polls_open_at_end += open;
                self.close_polls(names, th, 0, end, PollResult::Truncated, obs);
            }
            let thread = &mut self.threads[th];
            match thread.worker {
                Some(WorkerPhase::Busy(since)) => obs.busy(thread.id, since, end),
                Some(WorkerPhase::Unknown) => obs.busy(thread.id, thread.first, end),
                _ => {}
            }
            if thread.worker.is_some() {
                thread.worker = Some(WorkerPhase::Idle);
            }
            let regions = std::mem::take(&mut thread.regions);
            let thread_id = thread.id;
            for open in regions.into_iter().rev() {
                self.edges.regions_open_at_end += 1;
                obs.region_end(
                    names,
                    &RegionSpan {
                        name: open.name,
                        user_task: open.user_task,
                        thread: open.thread,
                        end_thread: thread_id,
                        begin: open.begin,
                        end: end.max(open.begin),
                        truncated: true,
                    },
                );
            }
        }
        let mut user_tasks: Vec<UserTaskSpan> = self.user_tasks.drain().map(|(_, s)| s).collect();
        user_tasks.sort_by_key(|s| (s.begin, s.id));
        for mut span in user_tasks {
            self.edges.user_tasks_open_at_end += 1;
            span.end = end.max(span.begin);
            span.truncated = true;
            obs.user_task_end(names, &span);
        }
        let mut tasks: Vec<TaskState> = self.tasks.drain();
        tasks.sort_by_key(|s| s.task.uid);
        for state in tasks {
            self.edges.tasks_alive_at_end += 1;
            self.done(names, state, end, false, obs);
        }
        obs.finish(names, self.window(), &self.edges);
    }
}
