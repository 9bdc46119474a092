//! The instrumented spawn: wraps a task's future and its waker to record its polls and every
//! wake, with the task (or thread) that woke it. It works without `--cfg tokio_unstable`; with
//! it, the runtime hooks record spawns and polls and the wrapper adds the wakes.

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use tokio::task::{AbortHandle, JoinHandle, JoinSet};

use super::hooks::ROLE_BLOCKING;
use super::task_id::{current_task, task_id};
use super::waker_slot::WakerSlot;
use crate::engine::global;
use crate::raw::{self, EventKind};
use crate::record::intern::intern_location;

/// Whether the wrapper records spawns, polls and terminations itself: only when the runtime
/// hooks, which record them for every task, are not compiled in.
const WRAPPER_RECORDS_POLLS: bool = !cfg!(tokio_unstable);

/// Spawns `future` on the current runtime like `tokio::spawn`, recording its spawn (with the
/// caller's location and the spawning task), its polls, its wakes with the task that woke it,
/// and its end.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let handle = flight_recorder::tokio::spawn(async { 1 + 1 });
/// assert_eq!(handle.await.unwrap(), 2);
/// # }
/// ```
///
/// # Panics
///
/// Like `tokio::spawn`, when called outside a runtime.
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let location = Location::caller();
    let parent = current_task();
    let (instrumented, state) = Instrumented::new(future);
    let handle = tokio::spawn(instrumented);
    record_spawn(&state, task_id(handle.id()), location, parent);
    handle
}

/// Spawns `future` into `set` like `JoinSet::spawn`, instrumented as [`spawn`] does.
#[track_caller]
pub fn spawn_in<F>(set: &mut JoinSet<F::Output>, future: F) -> AbortHandle
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let location = Location::caller();
    let parent = current_task();
    let (instrumented, state) = Instrumented::new(future);
    let handle = set.spawn(instrumented);
    record_spawn(&state, task_id(handle.id()), location, parent);
    handle
}

/// Runs `f` on the blocking pool like `tokio::task::spawn_blocking`, recording the spawn, the
/// run as one poll on the blocking thread, and the thread's role.
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let location = Location::caller();
    let parent = current_task();
    let handle = tokio::task::spawn_blocking(move || {
        let (runtime, _, name) = global::runtime();
        if runtime != 0 {
            global::set_runtime(runtime, ROLE_BLOCKING, name);
        }
        let task = current_task();
        raw::poll_start(task);
        let result = f();
        raw::poll_end(task, true);
        if WRAPPER_RECORDS_POLLS {
            raw::record(EventKind::TaskTerminate, &[task]);
        }
        result
    });
    if raw::is_running() {
        raw::record(
            EventKind::TaskSpawn,
            &[task_id(handle.id()), intern_location(location), parent],
        );
    }
    handle
}

fn record_spawn(state: &WakeState, task: u64, location: &'static Location<'static>, parent: u64) {
    // Only if neither the first poll (which reads the id from tokio) nor the end came first: a
    // task that already ended keeps `ENDED`, so its late wakes record nothing.
    let _ = state
        .task
        .compare_exchange(0, task, Ordering::Relaxed, Ordering::Relaxed);
    if WRAPPER_RECORDS_POLLS && raw::is_running() {
        raw::record(
            EventKind::TaskSpawn,
            &[task, intern_location(location), parent],
        );
    }
}

/// The task id of a task whose future was dropped (completed or aborted): its wakers may live on,
/// and their wakes record nothing.
const ENDED: u64 = u64::MAX;

/// What a task's waker needs: the task's id and the runtime's waker to forward to. The task's
/// only allocation besides the runtime's own: this `Arc` is both the wrapper's state and, through
/// `Wake`, the waker handed to the inner future (a clone of it is a reference count, not an
/// allocation).
///
/// It cannot live inline in the wrapper: the inner future may clone the waker into anything
/// `'static` (a channel, a timer, another task), and such clones outlive the wrapper, which the
/// runtime drops when the task ends or is aborted. The `Arc` keeps the state alive while any
/// clone exists.
struct WakeState {
    /// The task's id: 0 until known, then tokio's id, then `ENDED`.
    task: AtomicU64,
    /// The runtime's waker of the task, registered on each poll (with no clone nor atomic
    /// operation when it is the same as before) and woken by each wake, with no lock.
    target: WakerSlot,
}

impl Wake for WakeState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    /// One `task_wake` event per call, whichever clone and however it is called (`wake`,
    /// `wake_by_ref`), then the runtime's waker is woken by reference.
    fn wake_by_ref(self: &Arc<Self>) {
        let task = self.task.load(Ordering::Relaxed);
        if task != 0 && task != ENDED {
            raw::record(EventKind::TaskWake, &[task, current_task()]);
        }
        self.target.wake();
    }
}

pin_project_lite::pin_project! {
    /// A future wrapped to record its polls and wakes; see [`spawn`].
    pub struct Instrumented<F> {
        #[pin]
        inner: F,
        // The waker handed to the inner future, over the task's `WakeState`, made once per task
        // (from the same `Arc`, so no allocation) on the first recorded poll.
        waker: Option<Waker>,
        ended: EndGuard,
    }
}

impl<F> Instrumented<F> {
    fn new(inner: F) -> (Instrumented<F>, Arc<WakeState>) {
        let state = Arc::new(WakeState {
            task: AtomicU64::new(0),
            target: WakerSlot::new(),
        });
        let instrumented = Instrumented {
            inner,
            waker: None,
            ended: EndGuard {
                state: state.clone(),
            },
        };
        (instrumented, state)
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if !raw::is_running() && this.waker.is_none() {
            return this.inner.poll(cx);
        }
        let state = &this.ended.state;
        let mut task = state.task.load(Ordering::Relaxed);
        if task == 0 {
            task = current_task();
            state.task.store(task, Ordering::Relaxed);
        }
        // The common poll's waker is the one already stored: a comparison, nothing else.
        state.target.register(cx.waker());
        let waker = this.waker.get_or_insert_with(|| Waker::from(state.clone()));
        let mut cx = Context::from_waker(waker);
        if WRAPPER_RECORDS_POLLS {
            raw::poll_start(task);
        }
        let result = this.inner.poll(&mut cx);
        if WRAPPER_RECORDS_POLLS {
            raw::poll_end(task, result.is_ready());
        }
        result
    }
}

/// Records the task's end when its future is dropped: after completing, or when aborted. Later
/// wakes of the wakers left behind find `ENDED` and record nothing.
struct EndGuard {
    state: Arc<WakeState>,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        let task = self.state.task.swap(ENDED, Ordering::Relaxed);
        if WRAPPER_RECORDS_POLLS && task != 0 {
            raw::record(EventKind::TaskTerminate, &[task]);
        }
    }
}
