//! The runtime threads that CPU samples cover: tokio's workers and blocking-pool threads, noted by
//! the runtime hooks when they start (and by a worker's first park: the thread running a
//! current-thread runtime's `block_on` is not started by the runtime). A thread leaves the list
//! when it exits (a thread-local destructor).

use std::cell::Cell;
use std::sync::Mutex;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A runtime thread as the samplers need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RuntimeThread {
    /// Its kernel id.
    pub tid: i32,
    /// Its CPU-time clock (`pthread_getcpuclockid`), for the timer source.
    pub cpu_clock: libc::clockid_t,
    /// Its stack, `[stack_lo, stack_hi)`, for the timer source's walk.
    pub stack_lo: usize,
    pub stack_hi: usize,
}

static THREADS: Mutex<Vec<RuntimeThread>> = Mutex::new(Vec::new());

/// Removes the thread from the list when it exits.
struct Noted {
    tid: Cell<i32>,
}

impl Drop for Noted {
    fn drop(&mut self) {
        let tid = self.tid.get();
        if tid != 0 {
            lock(&THREADS).retain(|t| t.tid != tid);
        }
    }
}

thread_local! {
    static NOTED: Noted = const { Noted { tid: Cell::new(0) } };
}

#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
/// Notes the calling thread as a runtime thread whose CPU time is sampled (when sampling is on).
/// Cheap after the first call on a thread.
pub(crate) fn note_runtime_thread() {
    let tid = super::super::linux::gettid();
    let _ = NOTED.try_with(|noted| {
        // A child after `fork` inherits the parent's thread-locals: compare the tid.
        if noted.tid.get() == tid {
            return;
        }
        let Ok((stack_lo, stack_hi)) = super::super::linux::stack_bounds() else {
            return;
        };
        let mut cpu_clock: libc::clockid_t = 0;
        // SAFETY: pthread_self is the calling thread; the out-pointer is valid.
        if unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut cpu_clock) } != 0 {
            return;
        }
        let mut threads = lock(&THREADS);
        threads.retain(|t| t.tid != tid);
        threads.push(RuntimeThread {
            tid,
            cpu_clock,
            stack_lo,
            stack_hi,
        });
        noted.tid.set(tid);
    });
}

/// The runtime threads alive now.
pub(crate) fn runtime_threads() -> Vec<RuntimeThread> {
    lock(&THREADS).clone()
}
