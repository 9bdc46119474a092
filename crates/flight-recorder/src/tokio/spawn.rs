//! The instrumented spawn: wraps a task's future and its waker to record its polls and every
//! wake, with the task (or thread) that woke it. It works without `--cfg tokio_unstable`; with
//! it, the runtime hooks record spawns and polls and the wrapper adds the wakes.

use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

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
    record_spawn(state, task_id(handle.id()), location, parent);
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
    record_spawn(state, task_id(handle.id()), location, parent);
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

fn record_spawn(
    state: Option<Arc<WakeState>>,
    task: u64,
    location: &'static Location<'static>,
    parent: u64,
) {
    // Without the runtime hooks, the id is known from here, for the end of a task that is never
    // polled while recording. Only if neither the first poll (which reads the id from tokio) nor
    // the end came first: a task that already ended keeps `ENDED`, so its late wakes record
    // nothing. (With the hooks, the first poll sets it, before any waker of the task exists.)
    if let Some(state) = state {
        let _ = state
            .task
            .compare_exchange(0, task, Ordering::Relaxed, Ordering::Relaxed);
    }
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
/// `WAKER_VTABLE`, the waker handed to the inner future (lent by each poll with no count; a clone
/// is a reference count, not an allocation).
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

impl WakeState {
    /// One `task_wake` event per call, whichever clone and however it is called (`wake`,
    /// `wake_by_ref`), then the runtime's waker is woken by reference.
    fn wake(&self) {
        let task = self.task.load(Ordering::Relaxed);
        if task != 0 && task != ENDED {
            raw::record(EventKind::TaskWake, &[task, current_task()]);
        }
        self.target.wake();
    }
}

/// The task's wakers: `RawWaker`s over `Arc::<WakeState>::as_ptr`, each owning one strong count
/// of the `Arc`, except the one a poll lends to the inner future (see `Instrumented::poll`). A
/// clone is one count more, a drop one less: the state lives while any waker exists.
static WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

/// A waker over `state`'s allocation, not owning a count.
///
/// # Safety
///
/// The returned waker must not be used (nor dropped: wrap it in `ManuallyDrop`) after the
/// caller's `state` is dropped; its clones own their counts and have no such limit.
unsafe fn borrowed_waker(state: &Arc<WakeState>) -> Waker {
    let raw = RawWaker::new(Arc::as_ptr(state).cast(), &WAKER_VTABLE);
    // SAFETY: the vtable's functions uphold `RawWaker`'s contract for a pointer of a live
    // `Arc<WakeState>` (below); the caller keeps `state` alive while this waker is used.
    unsafe { Waker::from_raw(raw) }
}

/// # Safety
///
/// `data` is the pointer of an `Arc<WakeState>` that is alive: the waker being cloned holds a
/// count of it, or is lent by a poll that holds one (all the vtable's functions have this
/// contract, `Waker`'s for its data pointer).
unsafe fn waker_clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` is the pointer of a live `Arc<WakeState>` (above); the new waker owns the
    // count added here.
    unsafe { Arc::increment_strong_count(data.cast::<WakeState>()) };
    RawWaker::new(data, &WAKER_VTABLE)
}

/// # Safety
///
/// As `waker_clone`; called through an owning waker (`Waker::wake` consumes its waker, and the
/// lent one is never owned by anyone but the poll, which does not wake it by value).
unsafe fn waker_wake(data: *const ()) {
    // SAFETY: `data` is live (above) until the count this waker owns is released just after.
    unsafe { (*data.cast::<WakeState>()).wake() };
    // SAFETY: this waker owns one count (above), released once, as `Waker::wake` consumes it.
    unsafe { Arc::decrement_strong_count(data.cast::<WakeState>()) };
}

/// # Safety
///
/// As `waker_clone`.
unsafe fn waker_wake_by_ref(data: *const ()) {
    // SAFETY: `data` is the pointer of a live `Arc<WakeState>` (above).
    unsafe { (*data.cast::<WakeState>()).wake() };
}

/// # Safety
///
/// As `waker_wake`: called only for owning wakers (the lent one is in a `ManuallyDrop`).
unsafe fn waker_drop(data: *const ()) {
    // SAFETY: this waker owns one count of the live `Arc` (above), released once.
    unsafe { Arc::decrement_strong_count(data.cast::<WakeState>()) };
}

pin_project_lite::pin_project! {
    /// A future wrapped to record its polls and wakes; see [`spawn`].
    pub struct Instrumented<F> {
        #[pin]
        inner: F,
        // Whether a poll has lent the task's waker: from then on polls go through the wrapper
        // even if the recorder stops, so that wakes keep reaching the runtime.
        wrapped: bool,
        // Holds the task's `WakeState`, which the wakers point to.
        ended: EndGuard,
    }
}

impl<F> Instrumented<F> {
    /// The wrapper, and (without the runtime hooks) a count of its state for `record_spawn`.
    fn new(inner: F) -> (Instrumented<F>, Option<Arc<WakeState>>) {
        let state = Arc::new(WakeState {
            task: AtomicU64::new(0),
            target: WakerSlot::new(),
        });
        let for_spawn = WRAPPER_RECORDS_POLLS.then(|| state.clone());
        let instrumented = Instrumented {
            inner,
            wrapped: false,
            ended: EndGuard { state },
        };
        (instrumented, for_spawn)
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if !*this.wrapped && !raw::is_running() {
            return this.inner.poll(cx);
        }
        *this.wrapped = true;
        let state = &this.ended.state;
        let mut task = state.task.load(Ordering::Relaxed);
        if task == 0 {
            task = current_task();
            state.task.store(task, Ordering::Relaxed);
        }
        // The common poll's waker is the one already stored: a comparison, nothing else.
        state.target.register(cx.waker());
        // SAFETY: the lent waker lives in this frame only, and `state` (held by `self`, pinned and
        // borrowed for the whole poll) outlives it; `ManuallyDrop`, as it owns no count. The inner
        // future keeps clones, which own theirs.
        let waker = ManuallyDrop::new(unsafe { borrowed_waker(state) });
        let mut cx = Context::from_waker(&waker);
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
        // A load and a store: the only other writer, `record_spawn`, writes only over 0.
        let task = self.state.task.load(Ordering::Relaxed);
        self.state.task.store(ENDED, Ordering::Relaxed);
        if WRAPPER_RECORDS_POLLS && task != 0 {
            raw::record(EventKind::TaskTerminate, &[task]);
        }
    }
}
