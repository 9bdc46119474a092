//! The synchronization primitives of the recording protocol: `std`'s in a normal build, `loom`'s
//! when the protocol is model-checked (`--cfg flight_recorder_loom`).

#[cfg(flight_recorder_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
#[cfg(flight_recorder_loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};

#[cfg(not(flight_recorder_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
// Only the instrumented spawn's waker slot uses it.
#[cfg(all(not(flight_recorder_loom), feature = "tokio"))]
pub(crate) use std::sync::atomic::AtomicPtr;
#[cfg(not(flight_recorder_loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

/// Locks `mutex`, recovering the data if a thread panicked while holding it: the recorder's state
/// stays consistent at every point where a panic could happen, and the recorder must keep working
/// for the rest of the program.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(not(flight_recorder_loom))]
    {
        mutex
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
    #[cfg(flight_recorder_loom)]
    {
        mutex.lock().unwrap()
    }
}
