//! A slot holding the waker a wrapped task forwards its wakes to, with no lock: the instrumented
//! spawn's task registers the runtime's waker on each poll and every wake of the wrapper's waker
//! wakes it.
//!
//! - **Register** runs only inside the task's poll, so polls of one task never overlap (they are
//!   ordered by the runtime), and the poller is the slot's only writer. The common poll, whose
//!   waker `will_wake` like the stored one, only reads the slot: no atomic operation, no clone.
//!   A different waker is written under the `REGISTERING` bit, taken only while no waker reads.
//! - **Wake** counts itself in as a reader, wakes the stored waker by reference, and counts itself
//!   out: two uncontended read-modify-writes, and readers never wait for each other.
//! - **The race.** A wake that meets a register writing is still counted when the register ends,
//!   or has left `PENDING_WAKE`: the register sees either and wakes the new waker once stored. A register that meets readers does not wait:
//!   it wakes the new waker itself, so the task is polled again and registers again. Either way
//!   no wake is lost: every wake either reaches a stored waker, or is forwarded by a register
//!   whose task will be polled after it.
//!
//! Model-checked with loom (`loom_tests.rs`, the `loom_waker_slot_*` models), on this code.

use std::task::Waker;

use crate::record::sync::{AtomicUsize, Ordering};

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

/// A register is writing the slot; readers do not read it.
const REGISTERING: usize = 1;
/// A wake met a register writing; the register wakes the new waker when it is done.
const PENDING_WAKE: usize = 2;
/// One waker reading the slot (the count of readers is in the bits above the flags).
const READER: usize = 4;

/// The waker a task's wakes are forwarded to. See the module's documentation.
pub(crate) struct WakerSlot {
    /// `REGISTERING | PENDING_WAKE | readers × READER`.
    state: AtomicUsize,
    /// Written only by `register`, with `REGISTERING` set and no reader; read by readers
    /// (counted in `state`, `REGISTERING` clear) and by `register` (the only writer).
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: the `Waker` inside is `Send + Sync`; the accesses to the cell follow the protocol
// documented on the fields: one writer at a time (the poller, under `REGISTERING`), never
// while a reader reads, and readers only share `&Waker`, which is `Sync`.
unsafe impl Send for WakerSlot {}
// SAFETY: as above.
unsafe impl Sync for WakerSlot {}

impl Default for WakerSlot {
    fn default() -> WakerSlot {
        WakerSlot::new()
    }
}

impl WakerSlot {
    pub(crate) fn new() -> WakerSlot {
        WakerSlot {
            state: AtomicUsize::new(0),
            waker: UnsafeCell::new(None),
        }
    }

    /// A slot holding `waker`, for a slot made when its first waker is known.
    #[cfg_attr(flight_recorder_loom, allow(dead_code))]
    pub(crate) fn with_waker(waker: Waker) -> WakerSlot {
        WakerSlot {
            state: AtomicUsize::new(0),
            waker: UnsafeCell::new(Some(waker)),
        }
    }

    /// Makes `waker` the one that later wakes reach. Called only from the task's poll: two
    /// registers of one slot never run at the same time (the caller holds the task's
    /// `Pin<&mut _>`, and the runtime orders its polls), which is what the protocol relies on.
    ///
    /// After it returns, either `waker` is stored and every wake from now on reaches it, or
    /// `waker` has been woken (the task will be polled, and register, again).
    #[inline]
    pub(crate) fn register(&self, waker: &Waker) {
        // SAFETY: the only writer of the cell is `register`, and registers never overlap (see
        // above), so nothing writes the cell during this read; readers may read it too, which is
        // a shared read.
        let same = self.waker.with(|stored| unsafe {
            (*stored)
                .as_ref()
                .is_some_and(|stored| stored.will_wake(waker))
        });
        if !same {
            self.register_slow(waker);
        }
    }

    #[cold]
    fn register_slow(&self, waker: &Waker) {
        // Acquire: the readers that left (their `fetch_sub`) are done with the old waker, and
        // what they published before waking is visible to the poll that follows.
        if self
            .state
            .compare_exchange(0, REGISTERING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // A wake is reading the old waker (or another register runs, which the caller rules
            // out). Do not wait: have the task polled again, and register then.
            waker.wake_by_ref();
            return;
        }
        let new = Some(waker.clone());
        // SAFETY: `REGISTERING` is set and no reader was counted when it was set; readers that
        // come now see it and do not touch the cell; registers never overlap. This is the only
        // access to the cell.
        let old = self
            .waker
            .with_mut(|stored| unsafe { std::mem::replace(&mut *stored, new) });
        // Release: the new waker is visible to the readers that see `REGISTERING` clear.
        // Acquire: the wakes counted in since `REGISTERING` was set published their data before.
        let state = self
            .state
            .fetch_and(!(REGISTERING | PENDING_WAKE), Ordering::AcqRel);
        drop(old);
        // Every wake that came while `REGISTERING` was set is either still counted as a reader
        // (it saw `REGISTERING` and has not left) or left `PENDING_WAKE`: forward it.
        if state & !REGISTERING != 0 {
            waker.wake_by_ref();
        }
    }

    /// Wakes the stored waker, if any, by reference (it stays stored for later wakes). Any thread,
    /// any number at once.
    #[inline]
    pub(crate) fn wake(&self) {
        // AcqRel: release what the waking thread published before this wake to the register
        // that acquires the state; acquire the stored waker from the last register.
        let state = self.state.fetch_add(READER, Ordering::AcqRel);
        if state & REGISTERING == 0 {
            // SAFETY: this reader is counted and `REGISTERING` was clear when it was, so no
            // register writes the cell until it leaves (a register sets `REGISTERING` only from
            // a state with no reader). Readers only read.
            self.waker.with(|stored| unsafe {
                if let Some(waker) = &*stored {
                    waker.wake_by_ref();
                }
            });
        } else {
            // A register is writing: it wakes the new waker for this wake, having seen this
            // reader counted or `PENDING_WAKE`.
            let state = self.state.fetch_or(PENDING_WAKE, Ordering::AcqRel);
            if state & REGISTERING == 0 {
                // The register ended in between and saw this reader counted: it has woken for
                // this wake. The flag just set is stale, and no register can start while this
                // reader is counted, so no other wake can have set it: clear it, or the next
                // register would find the state busy.
                self.state.fetch_and(!PENDING_WAKE, Ordering::Relaxed);
            }
        }
        self.state.fetch_sub(READER, Ordering::Release);
    }
}
