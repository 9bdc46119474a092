//! The instrumented spawn: wraps a task's future and its waker to record its polls and every
//! wake, with the task (or thread) that woke it. It works without `--cfg tokio_unstable`; with
//! it, the runtime hooks record spawns and polls and the wrapper adds the wakes.

use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
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
    let handle = tokio::spawn(Instrumented::new(future));
    record_spawn(task_id(handle.id()), location, parent);
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
    let handle = set.spawn(Instrumented::new(future));
    record_spawn(task_id(handle.id()), location, parent);
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

/// Records the spawn (without the runtime hooks, which record it otherwise). The wrapper learns
/// the task's id at its first recorded poll, from tokio: a task that ends before any recorded
/// poll has no end event.
fn record_spawn(task: u64, location: &'static Location<'static>, parent: u64) {
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
/// only allocation besides the runtime's own, made only when the inner future first clones its
/// waker (see `Inline`): this `Arc` is both the state and, through `WAKER_VTABLE`, the waker
/// handed to the inner future (lent by each later poll with no count; a clone is a reference
/// count, not an allocation).
///
/// It cannot stay inline in the wrapper once the waker is cloned: the inner future may clone it
/// into anything `'static` (a channel, a timer, another task), and such clones outlive the
/// wrapper, which the runtime drops when the task ends or is aborted. The `Arc` keeps the state
/// alive while any clone exists. Before the first clone, the only waker is the one a poll lends,
/// which cannot outlive the poll: that one points inline (`Inline`).
///
/// Aligned to a cache line, so that no two tasks' states (their reference counts, taken and
/// dropped on every clone and wake) share one: tasks polled on different workers would otherwise
/// take the line from each other at each wake. Tasks that yield in a loop took up to 1.7 times
/// as long when the allocator put two tasks' states side by side. The `Arc` then takes 128 bytes
/// (its counts on one line, the state on the next) instead of 48; aligning to 128 bytes, as
/// tokio aligns its tasks against processors that fetch lines in pairs, measured the same and
/// would take 256.
#[repr(align(64))]
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
        // The task's id and, once the inner future has cloned its waker, its `WakeState`. Last,
        // so that it is dropped after the inner future (and its wakers' clones, if it owns any).
        ended: Inline,
    }
}

impl<F> Instrumented<F> {
    fn new(inner: F) -> Instrumented<F> {
        Instrumented {
            inner,
            wrapped: false,
            ended: Inline {
                task: AtomicU64::new(0),
                cx_waker: AtomicPtr::new(std::ptr::null_mut()),
                state: AtomicPtr::new(std::ptr::null_mut()),
                woken: AtomicBool::new(false),
            },
        }
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
        // Only shared from here on: the lent inline waker points to it during the inner poll.
        let inline: &Inline = this.ended;
        let mut task = inline.task.load(Ordering::Relaxed);
        if task == 0 {
            task = current_task();
            inline.task.store(task, Ordering::Relaxed);
        }
        let state = inline.state.load(Ordering::Acquire);
        let lent_inline = state.is_null();
        let raw = if lent_inline {
            // No clone of the task's waker exists: lend one over `inline`, which forwards to this
            // poll's waker (kept for the duration of the poll).
            inline
                .cx_waker
                .store(std::ptr::from_ref(cx.waker()).cast_mut(), Ordering::Relaxed);
            inline.woken.store(false, Ordering::Relaxed);
            RawWaker::new(std::ptr::from_ref(inline).cast(), &INLINE_VTABLE)
        } else {
            // SAFETY: `inline` owns one count of the state while it is not null (`Inline::drop`
            // releases it), and `self` is borrowed for the whole poll.
            let state = unsafe { &*state };
            // The common poll's waker is the one already stored: a comparison, nothing else.
            state.target.register(cx.waker());
            RawWaker::new(std::ptr::from_ref(state).cast(), &WAKER_VTABLE)
        };
        // SAFETY: the lent waker lives in this frame only: `inline` and the state it owns a count
        // of (held by `self`, pinned and borrowed for the whole poll) and `cx`'s waker outlive it.
        // Its vtables uphold `RawWaker`'s contract for those pointers (see each function).
        // `ManuallyDrop`, as it owns no count; the inner future keeps clones, which own theirs.
        let waker = ManuallyDrop::new(unsafe { Waker::from_raw(raw) });
        let mut cx = Context::from_waker(&waker);
        if WRAPPER_RECORDS_POLLS {
            raw::poll_start(task);
        }
        let result = this.inner.poll(&mut cx);
        if lent_inline && result.is_pending() && task != 0 && inline.lost_its_waker() {
            raw::record(EventKind::PendingWithoutWaker, &[task]);
        }
        if WRAPPER_RECORDS_POLLS {
            raw::poll_end(task, result.is_ready());
        }
        result
    }
}

/// The wrapper's own state, inline in the task: a task whose future never clones its waker (it
/// completes or waits on nothing that keeps a waker) allocates nothing of ours and registers
/// nothing. The first clone of the lent waker allocates the `WakeState` (with this poll's waker
/// of the runtime registered), which every later waker and poll uses.
struct Inline {
    /// The task's id: 0 until the first recorded poll.
    task: AtomicU64,
    /// The waker of the poll in progress, while a waker over this `Inline` is lent (else stale).
    cx_waker: AtomicPtr<Waker>,
    /// The task's `WakeState` once made (`Arc::into_raw`, owning one count), else null.
    state: AtomicPtr<WakeState>,
    /// Whether the waker lent over this `Inline` was woken during the poll in progress.
    woken: AtomicBool,
}

impl Inline {
    /// After a pending poll that lent a waker over `self`: whether that waker was neither cloned
    /// (no `WakeState` was made, so no waker of the task exists any more) nor woken during the
    /// poll. Then nothing can wake the task: its future returned pending without arranging a
    /// wake.
    fn lost_its_waker(&self) -> bool {
        self.state.load(Ordering::Acquire).is_null() && !self.woken.load(Ordering::Relaxed)
    }

    /// The task's `WakeState`, made on the first call. Called only during a poll that lent a
    /// waker over `self` (from any thread the inner future passes it to).
    fn state(&self) -> *const WakeState {
        let state = self.state.load(Ordering::Acquire);
        if !state.is_null() {
            return state;
        }
        // SAFETY: a waker over `self` is lent, so `cx_waker` points to the poll's waker, alive
        // until the poll returns, which is after this call.
        let target = unsafe { &*self.cx_waker.load(Ordering::Relaxed) }.clone();
        let made = Arc::into_raw(Arc::new(WakeState {
            task: AtomicU64::new(self.task.load(Ordering::Relaxed)),
            target: WakerSlot::with_waker(target),
        }))
        .cast_mut();
        match self.state.compare_exchange(
            std::ptr::null_mut(),
            made,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => made,
            Err(theirs) => {
                // Another thread's clone made it first (during the same poll).
                // SAFETY: `made` came from `Arc::into_raw` above and was not published.
                drop(unsafe { Arc::from_raw(made) });
                theirs
            }
        }
    }
}

/// Records the task's end when its future is dropped: after completing, or when aborted. Later
/// wakes of the wakers left behind find `ENDED` and record nothing.
impl Drop for Inline {
    fn drop(&mut self) {
        let task = *self.task.get_mut();
        let state = *self.state.get_mut();
        if !state.is_null() {
            // SAFETY: a non-null `state` came from `Arc::into_raw`, owning one count, released
            // here once (`&mut self`: no lent waker exists any more).
            let state = unsafe { Arc::from_raw(state) };
            state.task.store(ENDED, Ordering::Relaxed);
        }
        if WRAPPER_RECORDS_POLLS && task != 0 {
            raw::record(EventKind::TaskTerminate, &[task]);
        }
    }
}

/// The waker a poll lends while the task has no `WakeState`: its data pointer is the task's
/// `Inline`, valid for the duration of that poll only, which is as long as a lent `&Waker` may be
/// used. Never owned: a clone is an owning waker of `WAKER_VTABLE`; dropping or waking by value
/// cannot happen (no one owns it), and are harmless no-ops and a wake by reference.
static INLINE_VTABLE: RawWakerVTable = RawWakerVTable::new(
    inline_waker_clone,
    inline_waker_wake_by_ref,
    inline_waker_wake_by_ref,
    inline_waker_drop,
);

/// # Safety
///
/// `data` is the `Inline` of a task whose poll, lending this waker, is in progress (all of
/// `INLINE_VTABLE`'s functions have this contract: `Waker`'s for its data pointer).
unsafe fn inline_waker_clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` is a live `Inline` during its poll (above).
    let inline = unsafe { &*data.cast::<Inline>() };
    let state = inline.state();
    // SAFETY: `state` is a live `Arc<WakeState>` (the `Inline` owns a count); the new waker owns
    // the count added here.
    unsafe { Arc::increment_strong_count(state) };
    RawWaker::new(state.cast(), &WAKER_VTABLE)
}

/// # Safety
///
/// As `inline_waker_clone`.
unsafe fn inline_waker_wake_by_ref(data: *const ()) {
    // SAFETY: `data` is a live `Inline` during its poll (above).
    let inline = unsafe { &*data.cast::<Inline>() };
    inline.woken.store(true, Ordering::Relaxed);
    let task = inline.task.load(Ordering::Relaxed);
    if task != 0 {
        raw::record(EventKind::TaskWake, &[task, current_task()]);
    }
    // SAFETY: the poll lending this waker is in progress, so `cx_waker` points to its waker.
    unsafe { &*inline.cx_waker.load(Ordering::Relaxed) }.wake_by_ref();
}

/// # Safety
///
/// As `inline_waker_clone`.
unsafe fn inline_waker_drop(_data: *const ()) {}

#[cfg(all(test, not(flight_recorder_loom)))]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Waker};

    use super::Instrumented;
    use crate::tokio::waker_slot::counting::counting;

    /// Under tokio a task's waker never changes; another runtime (or an executor polling by hand)
    /// may give a poll a different one. The wakes of the waker the future kept must then reach
    /// the waker of the latest poll, whatever the polls before it registered.
    #[test]
    fn wakes_reach_the_waker_of_the_latest_poll() {
        let kept: Arc<Mutex<Option<Waker>>> = Arc::default();
        let inner = {
            let kept = kept.clone();
            std::future::poll_fn(move |cx: &mut Context<'_>| {
                kept.lock()
                    .unwrap()
                    .get_or_insert_with(|| cx.waker().clone());
                Poll::<()>::Pending
            })
        };
        let mut task = Box::pin(Instrumented::new(inner));
        // As after a poll with the recorder on: the wrapper lends its own waker from now on
        // (the recorder itself is not needed, and with none running no event is recorded).
        task.wrapped = true;
        let ((a, waker_a), (b, waker_b)) = (counting(), counting());
        let mut poll_with = |waker: &Waker| {
            let pending = Pin::as_mut(&mut task)
                .poll(&mut Context::from_waker(waker))
                .is_pending();
            assert!(pending);
        };
        let wake_kept = || kept.lock().unwrap().as_ref().expect("kept").wake_by_ref();
        let counts = || (a.wakes(), b.wakes());

        poll_with(&waker_a);
        poll_with(&waker_a);
        wake_kept();
        assert_eq!(counts(), (1, 0), "the first waker");
        poll_with(&waker_b);
        assert_eq!(
            counts(),
            (1, 1),
            "a new waker is woken once when registered"
        );
        wake_kept();
        wake_kept();
        assert_eq!(counts(), (1, 3), "the wakes reach the latest poll's waker");
        poll_with(&waker_a.clone());
        assert_eq!(counts(), (2, 3), "the first waker, back, is woken once");
        poll_with(&waker_a);
        wake_kept();
        assert_eq!(
            counts(),
            (3, 3),
            "a poll with the same waker registers nothing"
        );
        drop(task);
        wake_kept();
        assert_eq!(counts(), (4, 3), "the kept waker outlives its task");
        drop(kept);
        drop((waker_a, waker_b));
        assert_eq!(
            (Arc::strong_count(&a), Arc::strong_count(&b)),
            (1, 1),
            "every waker the wrapper kept is released"
        );
    }
}
