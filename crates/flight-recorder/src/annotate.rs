//! User annotations, after Go's `runtime/trace`: user tasks (logical operations that may span
//! many async tasks and threads), regions (timed sections), logs, instant marks and counters.
//!
//! Every call starts with one relaxed load and a branch, and does nothing more when no recorder
//! runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use flight_recorder_format::EventKind;

use crate::engine::global;
use crate::engine::STATE;
use crate::record::intern::intern_str;
use crate::record::state::State;

/// User task ids, unique for the process's life (0 means "no task"); `tracing` spans take theirs
/// from the same counter.
static NEXT_USER_TASK: AtomicU64 = AtomicU64::new(1);

/// A fresh user task id.
pub(crate) fn next_user_task_id() -> u64 {
    NEXT_USER_TASK.fetch_add(1, Ordering::Relaxed)
}

/// Loads the recorder state; `Some(state)` when recording.
#[inline(always)]
fn recording() -> Option<State> {
    let state = STATE.load();
    state.enabled().then_some(state)
}

/// Records a log message under a category. Messages longer than 4 KiB are cut.
///
/// ```
/// flight_recorder::log("http", "GET /health returned 503");
/// ```
#[inline]
pub fn log(category: &'static str, message: &str) {
    log_in(0, category, message);
}

#[inline]
fn log_in(task: u64, category: &'static str, message: &str) {
    if let Some(state) = recording() {
        let category = intern_str(category);
        global::record(state, EventKind::Log, &[category, task], message.as_bytes());
    }
}

/// Records an instant mark.
///
/// ```
/// flight_recorder::mark("cache_flushed");
/// ```
#[inline]
pub fn mark(name: &'static str) {
    mark_in(0, name);
}

#[inline]
fn mark_in(task: u64, name: &'static str) {
    if let Some(state) = recording() {
        global::record(state, EventKind::Mark, &[intern_str(name), task], &[]);
    }
}

/// Records a counter's value (a queue length, bytes in use, …).
///
/// ```
/// flight_recorder::counter("pending_jobs", 17);
/// ```
#[inline]
pub fn counter(name: &'static str, value: u64) {
    if let Some(state) = recording() {
        global::record(state, EventKind::Counter, &[intern_str(name), value], &[]);
    }
}

/// Begins a region named `name` on this thread; it ends when the returned guard is dropped.
/// For a section of async code that awaits, use [`InRegion::in_region`] instead, which follows
/// the future across polls and threads.
///
/// ```
/// fn handle() {
///     let _region = flight_recorder::region("parse_request");
///     // ... the work measured as `parse_request` ...
/// }
/// ```
#[inline]
pub fn region(name: &'static str) -> Region {
    Region::begin(0, name)
}

/// A region in progress; see [`region`] and [`UserTask::region`].
#[must_use = "a region ends when this guard is dropped"]
pub struct Region {
    /// The name's string id; 0 when the beginning was not recorded.
    name: u64,
    task: u64,
}

impl Region {
    #[inline]
    fn begin(task: u64, name: &'static str) -> Region {
        let Some(state) = recording() else {
            return Region { name: 0, task };
        };
        let name = intern_str(name);
        global::record(state, EventKind::RegionBegin, &[name, task], &[]);
        Region { name, task }
    }
}

impl Drop for Region {
    #[inline]
    fn drop(&mut self) {
        if self.name == 0 {
            return;
        }
        if let Some(state) = recording() {
            global::record(state, EventKind::RegionEnd, &[self.name, self.task], &[]);
        }
    }
}

/// A user task: a logical operation, such as one request, that may cross async tasks and threads.
/// It begins when created and ends when [`UserTask::end`] is called or its last clone is dropped.
/// Clones are handles to the same task, so it can be carried into spawned tasks and annotated
/// from there; sub-tasks name their parent.
///
/// ```
/// let request = flight_recorder::UserTask::new("request");
/// let _parse = request.region("parse");
/// request.log("http", "GET /users/42");
/// let lookup = request.child("db_lookup");
/// lookup.end();
/// request.end();
/// ```
///
/// A task created while nothing records is inert: its annotations record nothing, even if a
/// recorder starts later.
#[derive(Clone, Default)]
pub struct UserTask {
    inner: Option<Arc<TaskInner>>,
}

struct TaskInner {
    id: u64,
    ended: AtomicBool,
}

impl UserTask {
    /// Begins a top-level user task named `name`.
    #[inline]
    pub fn new(name: &'static str) -> UserTask {
        UserTask::begin(0, name)
    }

    /// Begins a sub-task of this task.
    #[inline]
    pub fn child(&self, name: &'static str) -> UserTask {
        UserTask::begin(self.id(), name)
    }

    #[inline]
    fn begin(parent: u64, name: &'static str) -> UserTask {
        let Some(state) = recording() else {
            return UserTask { inner: None };
        };
        let id = next_user_task_id();
        global::record(
            state,
            EventKind::UserTaskBegin,
            &[id, parent, intern_str(name)],
            &[],
        );
        UserTask {
            inner: Some(Arc::new(TaskInner {
                id,
                ended: AtomicBool::new(false),
            })),
        }
    }

    /// The task's id in traces (0 for an inert task).
    pub fn id(&self) -> u64 {
        self.inner.as_ref().map_or(0, |inner| inner.id)
    }

    /// Ends the task now (later calls, and dropping the last clone, do nothing more).
    pub fn end(&self) {
        if let Some(inner) = &self.inner {
            inner.end();
        }
    }

    /// Begins a region of this task on the calling thread; it ends when the guard is dropped.
    #[inline]
    pub fn region(&self, name: &'static str) -> Region {
        Region::begin(self.id(), name)
    }

    /// Records a log message of this task.
    #[inline]
    pub fn log(&self, category: &'static str, message: &str) {
        log_in(self.id(), category, message);
    }

    /// Records an instant mark of this task.
    #[inline]
    pub fn mark(&self, name: &'static str) {
        mark_in(self.id(), name);
    }
}

impl TaskInner {
    fn end(&self) {
        if self.ended.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some(state) = recording() {
            global::record(state, EventKind::UserTaskEnd, &[self.id], &[]);
        }
    }
}

impl Drop for TaskInner {
    fn drop(&mut self) {
        self.end();
    }
}

/// Wraps a future in a region that begins at its first poll and ends when it completes (or is
/// dropped unfinished), whichever threads poll it: a region across `.await`s.
///
/// ```
/// use flight_recorder::InRegion;
///
/// # async fn fetch() {}
/// async fn handle() {
///     fetch().in_region("fetch_user").await;
/// }
/// ```
pub trait InRegion: Future + Sized {
    /// This future inside a region named `name`.
    fn in_region(self, name: &'static str) -> RegionFuture<Self> {
        RegionFuture::new(self, 0, name)
    }

    /// This future inside a region named `name` of the user task `task`.
    fn in_task_region(self, task: &UserTask, name: &'static str) -> RegionFuture<Self> {
        RegionFuture::new(self, task.id(), name)
    }
}

impl<F: Future> InRegion for F {}

pin_project_lite::pin_project! {
    /// A future inside a region; see [`InRegion`].
    pub struct RegionFuture<F> {
        #[pin]
        inner: F,
        name: &'static str,
        region: Option<Region>,
        task: u64,
    }
}

impl<F> RegionFuture<F> {
    fn new(inner: F, task: u64, name: &'static str) -> RegionFuture<F> {
        RegionFuture {
            inner,
            name,
            region: None,
            task,
        }
    }
}

impl<F: Future> Future for RegionFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if this.region.is_none() {
            *this.region = Some(Region::begin(*this.task, this.name));
        }
        let result = this.inner.poll(cx);
        if result.is_ready() {
            // Ends the region here, on the thread that completed it.
            this.region.take();
        }
        result
    }
}
