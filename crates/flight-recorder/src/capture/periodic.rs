//! The periodic tracer: every `interval`, a file covering the last `duration` (the flight
//! recorder's window, whose `min_age` is `duration`), then garbage collection.
//!
//! The thread sleeps until the next tick or a settings change. A change of `interval` restarts
//! the schedule from the change (so turning it on writes the first file one interval later);
//! `0` turns it off. A tick that comes while a write runs late is skipped, not queued.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Capture;

/// The periodic thread's loop, until capture stops.
pub(super) fn run(capture: Arc<Capture>) {
    let mut schedule: Option<(Duration, Instant)> = None;
    let mut control = capture.control();
    loop {
        if control.stopping {
            return;
        }
        let interval = control.settings.interval;
        if interval.is_zero() {
            schedule = None;
            control = capture
                .wake
                .wait(control)
                .unwrap_or_else(|e| e.into_inner());
            continue;
        }
        let now = Instant::now();
        let due = match schedule {
            Some((scheduled_interval, due)) if scheduled_interval == interval => due,
            _ => {
                let due = now + interval;
                schedule = Some((interval, due));
                due
            }
        };
        if now < due {
            control = match capture.wake.wait_timeout(control, due - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
            continue;
        }
        let settings = control.settings.clone();
        drop(control);
        // Errors are reported by `write`; the next tick tries again.
        let _ = capture.write_periodic(&settings);
        let after = Instant::now();
        let next = due + interval;
        schedule = Some((interval, if next > after { next } else { after + interval }));
        control = capture.control();
    }
}
