//! What the model reports: the spans and intervals it closes, and the [`Observer`] that receives
//! them.

use crate::merge::{Ev, Names};

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
    /// Whether it happened inside a poll of the waker (or parent) on the same thread, the
    /// innermost poll open there: a timeline that shows that poll names the waker already.
    pub in_waker_poll: bool,
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
    /// The model's index of the polling thread, as [`Observer::event_on_thread`] gives it:
    /// threads are numbered from 0 in the order of their first events.
    pub thread_index: usize,
    /// The task.
    pub task: TaskRef,
    /// The model's index of the task (see [`TaskWoken::task_index`]).
    pub task_index: usize,
    /// When.
    pub time: u64,
    /// How long the task waited to be polled since it became runnable, when known.
    pub sched_wait: Option<u64>,
    /// The wake (or spawn) that made the task runnable, when seen.
    pub wake: Option<WakeRef>,
}

/// A wake of a task, as the model keeps it: the task is runnable from it, or already was (the
/// first wake since its last poll began is the one [`PollBegin::wake`] gives).
#[derive(Clone, Copy, Debug)]
pub struct TaskWoken {
    /// The woken task's id.
    pub task: u64,
    /// The model's index of the woken task: the tasks alive at once have distinct indices,
    /// numbered from 0, and an index is given to another task only after its task is done
    /// ([`Observer::task_done`]). An observer can keep per-task state in a vector by it.
    pub task_index: usize,
    /// The model's index of the waking thread, as [`Observer::event_on_thread`] gives it.
    pub thread_index: usize,
    /// The wake.
    pub wake: WakeRef,
}

/// A poll that ended (or was cut by the end of the window).
#[derive(Clone, Copy, Debug)]
pub struct PollEnd {
    /// The polling thread.
    pub thread: u64,
    /// The model's index of the polling thread, as [`Observer::event_on_thread`] gives it:
    /// threads are numbered from 0 in the order of their first events.
    pub thread_index: usize,
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

    /// Whether a stack taken on the poll's thread at `time` (while the thread was polling
    /// `task`, 0 if none) belongs to this poll: taken during it, or naming its task after it.
    /// The summary's long polls and the Parquet export attach stacks by this rule.
    pub fn owns_stack(&self, time: u64, task: u64) -> bool {
        (self.start..=self.end).contains(&time)
            || (task != 0 && task == self.task.id && time > self.end)
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
    /// The model's index of the task (see [`TaskWoken::task_index`]), free again from now on.
    pub task_index: usize,
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
    /// A task was woken (a `task_wake` event with its arguments).
    fn task_woken(&mut self, names: &dyn Names, woken: &TaskWoken) {}
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

/// Two observers as one: every call goes to the first, then to the second. Nest pairs to compose
/// more, `(A, (B, C))`. The calls are static, so an observer's hooks it does not implement cost
/// nothing: analyses can each be an observer of their own, run together in one pass.
impl<A: Observer, B: Observer> Observer for (A, B) {
    #[inline(always)]
    fn event(&mut self, names: &dyn Names, ev: &Ev) {
        self.0.event(names, ev);
        self.1.event(names, ev);
    }
    #[inline(always)]
    fn event_on_thread(&mut self, names: &dyn Names, ev: &Ev, thread_index: usize) {
        self.0.event_on_thread(names, ev, thread_index);
        self.1.event_on_thread(names, ev, thread_index);
    }
    #[inline(always)]
    fn task_woken(&mut self, names: &dyn Names, woken: &TaskWoken) {
        self.0.task_woken(names, woken);
        self.1.task_woken(names, woken);
    }
    #[inline(always)]
    fn poll_begin(&mut self, names: &dyn Names, poll: &PollBegin) {
        self.0.poll_begin(names, poll);
        self.1.poll_begin(names, poll);
    }
    #[inline(always)]
    fn poll_end(
        &mut self,
        names: &dyn Names,
        poll: &PollEnd,
        stack: &[OpenRegion],
        notes: &[Note],
    ) {
        self.0.poll_end(names, poll, stack, notes);
        self.1.poll_end(names, poll, stack, notes);
    }
    #[inline(always)]
    fn region_begin(&mut self, names: &dyn Names, region: &OpenRegion) {
        self.0.region_begin(names, region);
        self.1.region_begin(names, region);
    }
    #[inline(always)]
    fn region_end(&mut self, names: &dyn Names, region: &RegionSpan) {
        self.0.region_end(names, region);
        self.1.region_end(names, region);
    }
    #[inline(always)]
    fn user_task_begin(&mut self, names: &dyn Names, id: u64, parent: u64, name: u64, time: u64) {
        self.0.user_task_begin(names, id, parent, name, time);
        self.1.user_task_begin(names, id, parent, name, time);
    }
    #[inline(always)]
    fn user_task_end(&mut self, names: &dyn Names, task: &UserTaskSpan) {
        self.0.user_task_end(names, task);
        self.1.user_task_end(names, task);
    }
    #[inline(always)]
    fn task_done(&mut self, names: &dyn Names, task: &TaskDone) {
        self.0.task_done(names, task);
        self.1.task_done(names, task);
    }
    #[inline(always)]
    fn busy(&mut self, thread: u64, start: u64, end: u64) {
        self.0.busy(thread, start, end);
        self.1.busy(thread, start, end);
    }
    #[inline(always)]
    fn finish(&mut self, names: &dyn Names, window: Option<(u64, u64)>, edges: &EdgeStats) {
        self.0.finish(names, window, edges);
        self.1.finish(names, window, edges);
    }
}
