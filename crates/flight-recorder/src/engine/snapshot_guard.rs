//! The process's one snapshot slot: a snapshot runs only while it holds the slot, so two never
//! run at once (a second fails at once, as Go's `WriteTo` does). Model-checked with loom
//! (`loom_tests`): of two overlapping snapshots exactly one proceeds, and what one snapshot did is
//! visible to the next.

use crate::record::sync::{AtomicBool, Ordering};

/// A slot that one holder at a time may take.
pub(crate) struct SnapshotSlot {
    busy: AtomicBool,
}

/// Holds the slot until dropped.
pub(crate) struct SnapshotGuard<'a> {
    slot: &'a SnapshotSlot,
}

impl SnapshotSlot {
    /// A free slot.
    #[cfg(not(flight_recorder_loom))]
    pub(crate) const fn new() -> SnapshotSlot {
        SnapshotSlot {
            busy: AtomicBool::new(false),
        }
    }

    /// A free slot (loom's atomics have no `const` constructor).
    #[cfg(flight_recorder_loom)]
    pub(crate) fn new() -> SnapshotSlot {
        SnapshotSlot {
            busy: AtomicBool::new(false),
        }
    }

    /// Takes the slot, or `None` at once if someone holds it. Acquire pairs with the release in
    /// the previous holder's drop, so its writes happen before the new holder's.
    pub(crate) fn try_acquire(&self) -> Option<SnapshotGuard<'_>> {
        self.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SnapshotGuard { slot: self })
    }
}

impl Drop for SnapshotGuard<'_> {
    fn drop(&mut self) {
        self.slot.busy.store(false, Ordering::Release);
    }
}
