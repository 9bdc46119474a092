//! User annotations: log messages and timed regions, recorded on the calling thread.

use std::sync::atomic::Ordering;

use flight_recorder_format::EventKind;

use crate::engine::{ENABLED, STATE};
use crate::intern::intern_str;
use crate::local;

/// Records a log message under a category. Messages longer than 4 KiB are cut. Costs a load and a
/// branch when nothing is recording.
///
/// ```
/// flight_recorder::log("http", "GET /health returned 503");
/// ```
#[inline]
pub fn log(category: &'static str, message: &str) {
    let state = STATE.load(Ordering::Relaxed);
    if state & ENABLED == 0 {
        return;
    }
    let category = intern_str(category);
    local::record(state, EventKind::Log, &[category, 0], message.as_bytes());
}

/// Begins a region named `name` on this thread; it ends when the returned guard is dropped.
///
/// ```
/// fn handle() {
///     let _region = flight_recorder::region("parse_request");
///     // ... the work measured as `parse_request` ...
/// }
/// ```
#[inline]
pub fn region(name: &'static str) -> Region {
    let state = STATE.load(Ordering::Relaxed);
    if state & ENABLED == 0 {
        return Region { name: 0 };
    }
    let name = intern_str(name);
    local::record(state, EventKind::RegionBegin, &[name, 0], &[]);
    Region { name }
}

/// A region in progress; see [`region`].
#[must_use = "a region ends when this guard is dropped"]
pub struct Region {
    /// The name's string id; 0 when the beginning was not recorded.
    name: u64,
}

impl Drop for Region {
    #[inline]
    fn drop(&mut self) {
        if self.name == 0 {
            return;
        }
        let state = STATE.load(Ordering::Relaxed);
        if state & ENABLED != 0 {
            local::record(state, EventKind::RegionEnd, &[self.name, 0], &[]);
        }
    }
}
