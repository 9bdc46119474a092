//! The slow-poll watchdog: a thread that looks at the polls in progress (the poll marks each
//! thread sets in `poll_start` and clears in `poll_end`, two plain stores) every quarter of the
//! threshold, and triggers a `slow_poll` dump for a poll running past the threshold. A fast poll
//! costs nothing more than those stores; detection comes between 1 and 1¼ thresholds after the
//! poll began (the check period is kept between 1 ms and 250 ms).
//!
//! Each poll is reported once. The file holds the poll's `poll_start` (the triggering event) and
//! the details: task, thread, how long the poll had run, the threshold.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Capture, Trigger, TriggerKind};
use crate::engine::engine;
use crate::record::clock;
use crate::record::sync::lock;

/// The shortest and longest time between two looks.
const MIN_PERIOD: Duration = Duration::from_millis(1);
const MAX_PERIOD: Duration = Duration::from_millis(250);

/// The watchdog's loop, until capture stops.
pub(super) fn run(capture: Arc<Capture>) {
    // Polls already reported: (thread, task, start time).
    let mut reported: HashSet<(u64, u64, u64)> = HashSet::new();
    loop {
        let mut control = capture.control();
        if control.stopping {
            return;
        }
        let threshold = control.settings.slow_poll_threshold;
        if threshold.is_zero() {
            reported.clear();
            drop(
                capture
                    .wake
                    .wait(control)
                    .unwrap_or_else(|e| e.into_inner()),
            );
            continue;
        }
        let period = (threshold / 4).clamp(MIN_PERIOD, MAX_PERIOD);
        control = match capture.wake.wait_timeout(control, period) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        };
        if control.stopping {
            return;
        }
        // The threshold may have changed while waiting.
        let threshold = control.settings.slow_poll_threshold;
        drop(control);
        if !threshold.is_zero() {
            check(&capture, threshold, &mut reported);
        }
    }
}

/// Whether polls mark their thread for this watchdog.
static WATCHING: Mutex<bool> = Mutex::new(false);

/// Turns the engine's poll marks on while a slow-poll threshold is set, and off otherwise; called
/// with the settings when capture starts, when they change and when capture stops, so that a poll
/// beginning right after `start` returns is already watched.
pub(super) fn watch(on: bool) {
    let mut watching = lock(&WATCHING);
    if *watching != on {
        engine().watch_polls(on);
        *watching = on;
    }
}

/// One look at the polls in progress.
fn check(capture: &Capture, threshold: Duration, reported: &mut HashSet<(u64, u64, u64)>) {
    let calibration = clock::calibration();
    let threshold_units = calibration.units_in(threshold).max(1);
    let polls = engine().polls_in_progress();
    let now = calibration.now_units();
    reported.retain(|&(thread, task, started)| {
        polls
            .iter()
            .any(|p| (p.thread, p.task, p.started_units) == (thread, task, started))
    });
    for poll in polls {
        let age_units = now.saturating_sub(poll.started_units);
        if age_units < threshold_units
            || !reported.insert((poll.thread, poll.task, poll.started_units))
        {
            continue;
        }
        let ns_per_unit = (1u64 << calibration.unit_shift) as f64 / calibration.ticks_per_ns;
        let running_ms = age_units as f64 * ns_per_unit / 1e6;
        let info = engine().thread_info(poll.thread);
        let thread_name = info.as_ref().map(|i| i.name.clone()).unwrap_or_default();
        let os_tid = info.as_ref().map_or(0, |i| i.os_tid);
        let trigger = Trigger {
            kind: TriggerKind::SlowPoll,
            reason: "slow_poll".into(),
            tag: "slow_poll".into(),
            details: vec![
                ("task".into(), poll.task.to_string()),
                ("thread".into(), poll.thread.to_string()),
                ("thread_name".into(), thread_name),
                ("os_tid".into(), os_tid.to_string()),
                ("poll_ms".into(), format!("{running_ms:.3}")),
                (
                    "threshold_ms".into(),
                    format!("{:.3}", threshold.as_secs_f64() * 1e3),
                ),
            ],
        };
        // Errors are reported by the write; a suppressed trigger is counted.
        let _ = capture.trigger(trigger, None);
        if lock(&capture.control).stopping {
            return;
        }
    }
}
