//! The instrumented spawn: wraps a task's future and its waker to record its polls and every
//! wake, with the task (or thread) that woke it. It works without `--cfg tokio_unstable`; with
//! it, the runtime hooks record spawns and polls and the wrapper adds the wakes.

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use tokio::task::{AbortHandle, JoinHandle, JoinSet};

use super::hooks::ROLE_BLOCKING;
use super::task_id::{current_task, task_id};
use crate::engine::global;
use crate::raw::{self, EventKind};
use crate::record::intern::intern_location;
use crate::record::sync::lock;

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
    state.task.store(task, Ordering::Relaxed);
    if WRAPPER_RECORDS_POLLS && raw::is_running() {
        raw::record(
            EventKind::TaskSpawn,
            &[task, intern_location(location), parent],
        );
    }
}

/// What a task's waker needs: the task's id and the runtime's waker to forward to.
struct WakeState {
    task: AtomicU64,
    target: Mutex<Option<Waker>>,
}

impl Wake for WakeState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let task = self.task.load(Ordering::Relaxed);
        if task != 0 {
            raw::record(EventKind::TaskWake, &[task, current_task()]);
        }
        if let Some(target) = lock(&self.target).as_ref() {
            target.wake_by_ref();
        }
    }
}

pin_project_lite::pin_project! {
    /// A future wrapped to record its polls and wakes; see [`spawn`].
    pub struct Instrumented<F> {
        #[pin]
        inner: F,
        state: Arc<WakeState>,
        // The waker handed to the inner future, made once per task so a poll allocates nothing.
        waker: Option<Waker>,
        ended: EndGuard,
    }
}

impl<F> Instrumented<F> {
    fn new(inner: F) -> (Instrumented<F>, Arc<WakeState>) {
        let state = Arc::new(WakeState {
            task: AtomicU64::new(0),
            target: Mutex::new(None),
        });
        let instrumented = Instrumented {
            inner,
            state: state.clone(),
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
        let mut task = this.state.task.load(Ordering::Relaxed);
        if task == 0 {
            task = current_task();
            this.state.task.store(task, Ordering::Relaxed);
        }
        {
            let mut target = lock(&this.state.target);
            if !target.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *target = Some(cx.waker().clone());
            }
        }
        let waker = this
            .waker
            .get_or_insert_with(|| Waker::from(this.state.clone()));
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

/// Records the task's end when its future is dropped: after completing, or when aborted.
struct EndGuard {
    state: Arc<WakeState>,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        let task = self.state.task.load(Ordering::Relaxed);
        if WRAPPER_RECORDS_POLLS && task != 0 {
            raw::record(EventKind::TaskTerminate, &[task]);
        }
    }
}
