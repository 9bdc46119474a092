//! A slot holding the waker a wrapped task forwards its wakes to, with no lock and no
//! read-modify-write on a wake: the instrumented spawn's task registers the runtime's waker on
//! each poll and every wake of the wrapper's waker wakes it.
//!
//! - **Register** runs only inside the task's poll, so polls of one task never overlap (they are
//!   ordered by the runtime), and the poller is the slot's only writer. The common poll, whose
//!   waker `will_wake` like the stored one, only reads the slot: no atomic operation, no clone.
//! - **A different waker** is stored in a node of its own, published with one release store. A
//!   node that stops being current is kept, not freed, until the slot is dropped (when no waker
//!   of the task is left, so no wake can be reading it), and is made current again, with no new
//!   node, when its waker comes back. So the slot keeps one node per distinct waker, not per
//!   change. Tokio gives every poll of a task the same waker (one static vtable, so that
//!   `will_wake` holds), so under it the slot holds the one waker it was made with.
//! - **Wake** loads the current waker (acquire) and wakes it by reference: one load, which the
//!   processor does not order against other work as it orders a read-modify-write.
//! - **The race.** A wake that loaded the replaced waker just before the register stored the new
//!   one wakes the replaced one, and the register cannot tell. So a register of a different
//!   waker also wakes it, once, after storing it: every wake either reaches the new waker or is
//!   followed by the register's wake of it, and no wake is lost. The cost is one extra poll per
//!   change of waker, which tokio never makes. (A runtime whose `will_wake` failed for the same
//!   waker on every poll would be polled again after each poll, and the slot would keep a node
//!   per poll: `will_wake` is what the runtime keeps reliable for exactly this use, as tokio's
//!   comments say, and the instrumented spawn runs its tasks on tokio alone.)
//! - **Ordering.** A wake that reaches the current waker gives the poll it causes the runtime's
//!   own ordering (tokio's wake is a read-modify-write of the task's state, which the poll
//!   acquires). A wake that raced a change of waker reached the replaced one, and the poll the
//!   register's wake causes is not ordered after it by the slot: the resource that woke orders
//!   it, as every resource does between its wake and the next registration of a waker (tokio's
//!   channels, timers and I/O register wakers with a read-modify-write that the wake's own
//!   acquires).
//!
//! Model-checked with loom (`loom_tests.rs`, the `loom_waker_slot_*` models), on this code.

use std::task::Waker;

use crate::record::sync::{AtomicPtr, Ordering};

#[cfg(flight_recorder_loom)]
use loom::cell::UnsafeCell;

/// `std`'s `UnsafeCell` with loom's access API, so that the same code runs in both builds.
#[cfg(not(flight_recorder_loom))]
#[derive(Debug)]
struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(flight_recorder_loom))]
impl<T> UnsafeCell<T> {
    fn new(value: T) -> UnsafeCell<T> {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    #[inline]
    fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline]
    fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// A waker registered that differs from `WakerSlot::first`.
struct Node {
    /// Written once, when the node is made, before it is published; only read after.
    waker: UnsafeCell<Waker>,
    /// The node made before this one (null for the first node): the slot's nodes, newest first,
    /// kept until the slot is dropped.
    older: *mut Node,
}

/// The waker a task's wakes are forwarded to. See the module's documentation.
pub(crate) struct WakerSlot {
    /// The waker the slot was made with, current while `current` is null. Never changed.
    first: Waker,
    /// The current waker's node, null while `first` is current. Written only by `register`
    /// (release), read by wakes (acquire).
    current: AtomicPtr<Node>,
    /// The newest node (`Box::into_raw`, owned by the slot, with the older ones behind it), null
    /// while there is none. Read and written only by `register` and `drop`.
    newest: UnsafeCell<*mut Node>,
}

// SAFETY: the `Waker`s inside are `Send + Sync`; a node's waker is written once before the node
// is published (release store of `current`) and only read after (acquire load), `first` is never
// written after the slot is made, `newest` is touched only by the one poller and by `drop`, and
// nodes are freed only by `drop` (`&mut self`). The raw pointers are the slot's own nodes, which
// it owns as a `Box` would.
unsafe impl Send for WakerSlot {}
// SAFETY: as above.
unsafe impl Sync for WakerSlot {}

impl WakerSlot {
    /// A slot holding `waker`, made when the task's first waker is known.
    pub(crate) fn with_waker(waker: Waker) -> WakerSlot {
        WakerSlot {
            first: waker,
            current: AtomicPtr::new(std::ptr::null_mut()),
            newest: UnsafeCell::new(std::ptr::null_mut()),
        }
    }

    /// Calls `f` with the current waker.
    #[inline]
    fn with_current<R>(&self, ordering: Ordering, f: impl FnOnce(&Waker) -> R) -> R {
        let current = self.current.load(ordering);
        if current.is_null() {
            return f(&self.first);
        }
        // SAFETY: a non-null `current` is a node published by `register` (its waker written
        // before the release store this acquire load reads, or before the poll that reads it
        // with a relaxed load, which the runtime orders after the poll that stored it) and
        // freed only when the slot is dropped; its waker is never written again, so reads may
        // share it.
        unsafe { (*current).waker.with(|waker| f(&*waker)) }
    }

    /// Makes `waker` the one that later wakes reach. Called only from the task's poll: two
    /// registers of one slot never run at the same time (the caller holds the task's
    /// `Pin<&mut _>`, and the runtime orders its polls), which is what the protocol relies on.
    ///
    /// After it returns, `waker` is stored and every wake from now on reaches it; if it differs
    /// from the waker stored before, it has also been woken once (the task will be polled, and
    /// register, again).
    #[inline]
    pub(crate) fn register(&self, waker: &Waker) {
        // Relaxed: only polls write `current`, and the runtime orders a task's polls one after
        // the other (on whichever threads), so this reads the last store.
        let same = self.with_current(Ordering::Relaxed, |stored| stored.will_wake(waker));
        if !same {
            self.register_slow(waker);
        }
    }

    #[cold]
    fn register_slow(&self, waker: &Waker) {
        // SAFETY: only the poller (this call; registers never overlap) and `drop` touch `newest`.
        let newest = self.newest.with(|newest| unsafe { *newest });
        let node = if self.first.will_wake(waker) {
            std::ptr::null_mut()
        } else if let Some(kept) = self.kept_node(newest, waker) {
            kept
        } else {
            let node = Box::into_raw(Box::new(Node {
                waker: UnsafeCell::new(waker.clone()),
                older: newest,
            }));
            // SAFETY: as above; no reader reads `newest`.
            self.newest.with_mut(|newest| unsafe { *newest = node });
            node
        };
        // Release: a wake that loads the node sees its waker written.
        self.current.store(node, Ordering::Release);
        // A wake may have loaded the waker this one replaced just before the store, and woken
        // only that one: wake the new one for it.
        waker.wake_by_ref();
    }

    /// The node among `newest` and those older whose waker `will_wake` like `waker`, if any.
    fn kept_node(&self, newest: *mut Node, waker: &Waker) -> Option<*mut Node> {
        let mut node = newest;
        while !node.is_null() {
            // SAFETY: the slot's nodes live until it is dropped, and their wakers are never
            // written after they are made.
            let (same, older) = unsafe {
                let same = (*node).waker.with(|kept| (*kept).will_wake(waker));
                (same, (*node).older)
            };
            if same {
                return Some(node);
            }
            node = older;
        }
        None
    }

    /// Wakes the stored waker by reference (it stays stored for later wakes). Any thread, any
    /// number at once.
    #[inline]
    pub(crate) fn wake(&self) {
        // Acquire: the node's waker, written before `register` published it.
        self.with_current(Ordering::Acquire, Waker::wake_by_ref);
    }
}

impl Drop for WakerSlot {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no register or wake runs.
        let mut node = self.newest.with_mut(|newest| unsafe { *newest });
        while !node.is_null() {
            // SAFETY: every node came from `Box::into_raw` in `register_slow` and is reachable
            // once, from `newest` or from the node made after it; `&mut self` means no wake
            // reads it now.
            let owned = unsafe { Box::from_raw(node) };
            node = owned.older;
        }
    }
}

/// Wakers that count their wakes, for the slot's tests and loom models.
#[cfg(test)]
pub(crate) mod counting {
    use std::sync::Arc;
    use std::task::{RawWaker, RawWakerVTable, Waker};

    use crate::record::sync::{AtomicUsize, Ordering};

    /// A waker's count of wakes.
    pub(crate) struct Count(AtomicUsize);

    impl Count {
        /// The wakes so far.
        pub(crate) fn wakes(&self) -> usize {
            self.0.load(Ordering::Relaxed)
        }
    }

    /// One static vtable, as tokio's task wakers have, so that `will_wake` holds between a waker
    /// and its clones (`Waker::from` an `Arc` uses a constant vtable, which Miri gives a new
    /// address at each use).
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

    /// # Safety
    ///
    /// `data` is an `Arc<Count>`'s pointer the waker owns one count of (every function of
    /// `VTABLE` has this contract).
    unsafe fn clone(data: *const ()) -> RawWaker {
        // SAFETY: `data` is a live `Arc<Count>` (above); the clone owns the count added here.
        unsafe { Arc::increment_strong_count(data.cast::<Count>()) };
        RawWaker::new(data, &VTABLE)
    }

    /// # Safety
    ///
    /// As `clone`.
    unsafe fn wake(data: *const ()) {
        // SAFETY: as `clone`; the waker's count is released once, as `wake` consumes it.
        unsafe {
            wake_by_ref(data);
            drop_waker(data);
        }
    }

    /// # Safety
    ///
    /// As `clone`.
    unsafe fn wake_by_ref(data: *const ()) {
        // SAFETY: `data` is a live `Arc<Count>` (above).
        unsafe { (*data.cast::<Count>()).0.fetch_add(1, Ordering::Relaxed) };
    }

    /// # Safety
    ///
    /// As `clone`.
    unsafe fn drop_waker(data: *const ()) {
        // SAFETY: the waker owns one count (above), released once.
        drop(unsafe { Arc::from_raw(data.cast::<Count>()) });
    }

    /// A count and a waker that adds to it.
    pub(crate) fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let raw = RawWaker::new(Arc::into_raw(count.clone()).cast(), &VTABLE);
        // SAFETY: `VTABLE`'s functions uphold `RawWaker`'s contract for an `Arc<Count>`'s
        // pointer owning one count, which `raw` is.
        (count, unsafe { Waker::from_raw(raw) })
    }
}

#[cfg(all(test, not(flight_recorder_loom)))]
mod tests {
    use std::sync::Arc;

    use super::counting::counting;
    use super::*;

    /// The real (non-loom) build: wakes from other threads reach the current waker, a register of
    /// a different waker wakes it once, a waker that comes back takes its kept node again, and
    /// every waker the slot kept is released with it (Miri runs this test, and reports a node
    /// leaked or read after being freed).
    #[test]
    fn wakes_reach_the_current_waker_and_the_slot_releases_every_waker_it_kept() {
        let (first, first_waker) = counting();
        let slot = Arc::new(WakerSlot::with_waker(first_waker.clone()));
        slot.register(&first_waker);
        assert_eq!(
            first.wakes(),
            0,
            "the same waker registers with nothing to do"
        );
        let wake_twice = |slot: &Arc<WakerSlot>| {
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let slot = slot.clone();
                    std::thread::spawn(move || slot.wake())
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
        };
        let mut kept = Vec::new();
        for round in 0..3 {
            let (count, waker) = counting();
            slot.register(&waker);
            assert_eq!(count.wakes(), 1, "round {round}: a new waker is woken once");
            slot.register(&waker);
            wake_twice(&slot);
            assert_eq!(
                count.wakes(),
                3,
                "round {round}: both wakes reach the current one"
            );
            kept.push((count, waker));
        }
        assert_eq!(first.wakes(), 0, "a replaced waker is not woken");
        // Wakers that come back: the first, then the second kept.
        slot.register(&first_waker);
        wake_twice(&slot);
        assert_eq!(first.wakes(), 3, "the first waker, current again");
        let (second, second_waker) = &kept[0];
        slot.register(second_waker);
        wake_twice(&slot);
        assert_eq!(second.wakes(), 6, "a kept waker, current again");
        drop(first_waker);
        let counts: Vec<_> = kept.into_iter().map(|(count, _)| count).collect();
        drop(Arc::into_inner(slot));
        assert_eq!(Arc::strong_count(&first), 1, "the first waker released");
        for (i, count) in counts.iter().enumerate() {
            assert_eq!(Arc::strong_count(count), 1, "kept waker {i} released");
        }
    }
}
