//! The runtime threads whose stacks the slow-poll watchdog may capture: registered by the tokio
//! hooks when they start (or first park), while automatic capture wants stacks, and found again
//! by their kernel id (the recorder's thread table gives a recorder thread id's kernel id, so a
//! poll in progress leads to its worker's [`ThreadHandle`]).
//!
//! Each worker also carries the time it last unparked (set by the park and unpark hooks, which
//! exist without `--cfg tokio_unstable`): a worker that stays unparked past the threshold, with no
//! events recorded, is what the watchdog samples on a build without poll hooks.

// Registration comes from the tokio hooks; without them only the watchdog's side is used.
#![cfg_attr(not(feature = "tokio"), allow(dead_code))]

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use crate::record::clock;
use crate::record::sync::lock;
use crate::stack::{StackError, ThreadHandle};

/// A registered runtime thread.
#[derive(Debug)]
pub(crate) struct Worker {
    pub handle: ThreadHandle,
    /// When the thread last unparked, in clock ticks; 0 while it is parked, before it first
    /// parks, or while stacks are not wanted.
    busy_since: AtomicU64,
    /// Whether the thread has parked: a runtime worker (blocking-pool threads never park).
    parks: AtomicBool,
}

impl Worker {
    /// When the thread last unparked, in clock units, if it is a worker that is not parked now.
    pub(crate) fn busy_since_units(&self) -> Option<u64> {
        if !self.parks.load(Ordering::Relaxed) {
            return None;
        }
        match self.busy_since.load(Ordering::Relaxed) {
            0 => None,
            ticks => Some(ticks >> clock::calibration().unit_shift),
        }
    }
}

/// Whether capture wants stacks (stacks on and the slow-poll watchdog running).
static WANTED: AtomicBool = AtomicBool::new(false);

/// The registered threads, by kernel thread id.
static WORKERS: LazyLock<Mutex<HashMap<i32, Arc<Worker>>>> = LazyLock::new(Default::default);

/// The first registration failure, until the watchdog reports it.
static FAILURE: Mutex<Option<StackError>> = Mutex::new(None);
static FAILED: AtomicBool = AtomicBool::new(false);

/// The calling thread's registration; removed from [`WORKERS`] when the thread exits.
struct Current {
    tried: bool,
    worker: Option<Arc<Worker>>,
}

impl Drop for Current {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            let mut workers = lock(&WORKERS);
            if workers
                .get(&worker.handle.tid())
                .is_some_and(|w| Arc::ptr_eq(w, &worker))
            {
                workers.remove(&worker.handle.tid());
            }
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Current> = const {
        RefCell::new(Current {
            tried: false,
            worker: None,
        })
    };
}

/// Says whether capture wants stacks of the runtime threads (set when capture starts, changes
/// its settings or stops).
pub(crate) fn set_wanted(on: bool) {
    WANTED.store(on, Ordering::Relaxed);
}

/// Whether capture wants stacks.
pub(crate) fn wanted() -> bool {
    WANTED.load(Ordering::Relaxed)
}

/// Registers the calling runtime thread for stack captures, once, if stacks are wanted. A
/// failure is kept for the watchdog to report (once) and the thread goes on unregistered.
pub(crate) fn register_current_thread() {
    if !wanted() {
        return;
    }
    let _ = CURRENT.try_with(|current| {
        let Ok(mut current) = current.try_borrow_mut() else {
            return;
        };
        if current.tried {
            return;
        }
        current.tried = true;
        match crate::stack::register_current_thread() {
            Ok(handle) => {
                let worker = Arc::new(Worker {
                    handle,
                    busy_since: AtomicU64::new(0),
                    parks: AtomicBool::new(false),
                });
                lock(&WORKERS).insert(handle.tid(), Arc::clone(&worker));
                current.worker = Some(worker);
            }
            Err(error) => {
                if !FAILED.swap(true, Ordering::Relaxed) {
                    *lock(&FAILURE) = Some(error);
                }
            }
        }
    });
}

/// The calling thread is a worker about to park.
#[inline]
pub(crate) fn parking() {
    if !wanted() {
        return;
    }
    register_current_thread();
    let _ = CURRENT.try_with(|current| {
        if let Ok(current) = current.try_borrow() {
            if let Some(worker) = &current.worker {
                worker.parks.store(true, Ordering::Relaxed);
                worker.busy_since.store(0, Ordering::Relaxed);
            }
        }
    });
}

/// The calling thread is a worker that just unparked.
#[inline]
pub(crate) fn unparked() {
    if !wanted() {
        return;
    }
    let _ = CURRENT.try_with(|current| {
        if let Ok(current) = current.try_borrow() {
            if let Some(worker) = &current.worker {
                worker
                    .busy_since
                    .store(clock::now().max(1), Ordering::Relaxed);
            }
        }
    });
}

/// The registered thread with this kernel id.
pub(crate) fn by_tid(tid: i32) -> Option<Arc<Worker>> {
    lock(&WORKERS).get(&tid).cloned()
}

/// Every registered thread.
pub(crate) fn all() -> Vec<Arc<Worker>> {
    lock(&WORKERS).values().cloned().collect()
}

/// The first registration failure, once.
pub(crate) fn take_failure() -> Option<StackError> {
    lock(&FAILURE).take()
}
