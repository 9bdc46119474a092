//! The low-level recording API, for runtime integrations: record an event of any kind with its
//! arguments (see [`EventKind`] for each kind's arguments).
//!
//! ```
//! use flight_recorder::raw::{self, EventKind};
//!
//! let task_id = 42;
//! raw::record(EventKind::PollStart, &[task_id]);
//! ```

pub use flight_recorder_format::EventKind;

use crate::engine::global;
use crate::engine::STATE;
pub use crate::record::intern::{intern_location, intern_str};

/// Whether any recorder is running (events are being recorded).
#[inline(always)]
pub fn is_running() -> bool {
    STATE.load().enabled()
}

/// Records an event on the calling thread. `args` must hold exactly `kind.arg_count()` values and
/// the kind must carry no payload; otherwise nothing is recorded. With no recorder running this
/// is one relaxed load and a branch.
#[inline(always)]
pub fn record(kind: EventKind, args: &[u64]) {
    let state = STATE.load();
    if !state.enabled() {
        return;
    }
    if args.len() != kind.arg_count() || kind.has_payload() {
        return;
    }
    global::record(state, kind, args, &[]);
}

/// Records an event that carries a payload (a [`EventKind::Log`] message); a payload over 4 KiB is
/// cut. Nothing is recorded if `args` does not match the kind.
#[inline]
pub fn record_with_payload(kind: EventKind, args: &[u64], payload: &[u8]) {
    let state = STATE.load();
    if !state.enabled() {
        return;
    }
    if args.len() != kind.arg_count() || !kind.has_payload() {
        return;
    }
    global::record(state, kind, args, payload);
}

/// Records the start of a task's poll on the calling thread, and marks the thread as busy with
/// that task so that watchdogs (the slow-poll trigger) can see a poll that never ends. Pair it
/// with [`poll_end`] on the same thread.
#[inline(always)]
pub fn poll_start(task: u64) {
    let state = STATE.load();
    if !state.enabled() {
        return;
    }
    global::record_poll_start(state, task);
}

/// Records the end of a task's poll (`ready`: the task completed) and clears the thread's mark.
#[inline(always)]
pub fn poll_end(task: u64, ready: bool) {
    let state = STATE.load();
    if !state.enabled() {
        return;
    }
    global::record_poll_end(state, task, u64::from(ready));
}

/// Records the start of a task's poll with the time the task waited since it was scheduled, as
/// measured by the runtime, and marks the thread as busy with it (see [`poll_start`]).
#[inline(always)]
pub fn poll_start_scheduled(task: u64, waited_ns: u64) {
    let state = STATE.load();
    if !state.enabled() {
        return;
    }
    global::record_poll_start_scheduled(state, task, waited_ns);
}

/// Records the end of a poll whose result the runtime does not report (tokio's hooks), and clears
/// the thread's mark.
#[cfg(all(feature = "tokio", tokio_unstable))]
#[inline(always)]
pub(crate) fn poll_end_unreported(task: u64) {
    let state = STATE.load();
    if !state.enabled() {
        return;
    }
    global::record_poll_end(state, task, POLL_UNREPORTED);
}

/// The result argument of a `poll_end` whose result the runtime did not report.
#[cfg(all(feature = "tokio", tokio_unstable))]
pub(crate) const POLL_UNREPORTED: u64 = 2;
