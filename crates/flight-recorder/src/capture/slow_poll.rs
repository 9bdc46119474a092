//! The slow-poll watchdog: a thread that looks at the polls in progress (the poll marks each
//! thread sets in `poll_start` and clears in `poll_end`, two plain stores) every quarter of the
//! threshold, and triggers a `slow_poll` dump for a poll running past the threshold. A fast poll
//! costs nothing more than those stores; detection comes between 1 and 1¼ thresholds after the
//! poll began (the check period is kept between 1 ms and 250 ms).
//!
//! **Stacks.** While the `stacks` setting is on, the watchdog captures the stack of the worker
//! running a slow poll (`crate::stack`: a real-time signal, a frame-pointer walk in the handler)
//! when it detects the poll, then again every threshold while the same poll goes on, at most
//! [`MAX_SAMPLES`] times, and records each as a `thread_stack` event (cause `SLOW_POLL`) from its
//! own thread: a signal handler never writes into the worker's chunk. The dump is written once
//! the poll ends or after the last sample, so that it holds the repeated stacks. A poll on a
//! thread the watchdog cannot reach (not a registered runtime thread) is written at once.
//!
//! **Stuck workers.** Without tokio's poll hooks (no `--cfg tokio_unstable`) there are no poll
//! marks. The watchdog then looks at the runtime's workers: one that has stayed unparked past the
//! threshold, with no poll mark and no event recorded since the previous look, is sampled every
//! threshold (a worker that records events is never interrupted); it is stuck when two samples in a
//! row are at the same place (their frame-pointer return addresses, the application's frames,
//! agree but for the innermost frames) and the thread recorded no event in between. Its stacks
//! (cause `STUCK_WORKER`) and a `stuck_worker` dump follow the same rules as a slow poll's. A
//! worker with a poll mark is left to the slow-poll path, so a stall is reported once.
//!
//! Each poll (and each stall) is reported once. The file holds the poll's `poll_start` (the
//! triggering event), the stacks and the details: task, thread, how long the poll had run, the
//! threshold, the number of stacks.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flight_recorder_format::event::stack_cause;

use super::workers::{self, Worker};
use super::{report_error, Capture, Trigger, TriggerKind};
use crate::engine::engine;
use crate::raw::{self, EventKind};
use crate::record::clock;
use crate::record::stacks::{self, intern_stack};
use crate::record::sync::lock;
use crate::stack::{self, FrameKind, ThreadHandle};

/// The shortest and longest time between two looks.
const MIN_PERIOD: Duration = Duration::from_millis(1);
const MAX_PERIOD: Duration = Duration::from_millis(250);

/// The most stacks captured for one slow poll or stuck worker.
pub(crate) const MAX_SAMPLES: u32 = 8;

/// How long the watchdog waits for one stack.
const CAPTURE_DEADLINE: Duration = Duration::from_millis(50);

/// How many more frames one of two samples at the same place may have (the innermost frames of
/// a loop that calls small functions).
const SAME_PLACE_SLACK: usize = 3;

/// Whether a capture failure was reported since the process started (reported once).
static CAPTURE_FAILURE_REPORTED: AtomicBool = AtomicBool::new(false);

/// A slow poll being sampled.
struct Watched {
    thread: u64,
    task: u64,
    started: u64,
    handle: ThreadHandle,
    samples: u32,
    next_units: u64,
    age_units: u64,
}

/// A worker that stayed unparked past the threshold (no poll hooks), being sampled.
struct Stuck {
    worker: Arc<Worker>,
    /// The recorder's id of its thread (0 if it never recorded).
    thread: u64,
    busy_since: u64,
    progress: Option<(u64, usize)>,
    /// The frame-pointer return addresses of the last sample.
    last_chain: Vec<u64>,
    /// Stacks taken before the stall was confirmed, not recorded yet.
    pending: Vec<u64>,
    confirmed: bool,
    samples: u32,
    next_units: u64,
}

/// What the watchdog keeps between two looks.
#[derive(Default)]
struct Watch {
    /// Polls already reported: (thread, task, start time).
    reported: HashSet<(u64, u64, u64)>,
    /// Slow polls being sampled.
    sampling: Vec<Watched>,
    /// Stuck workers being sampled, by kernel thread id.
    stuck: HashMap<i32, Stuck>,
    /// Stalls already reported: (kernel thread id, unpark time).
    stuck_reported: HashSet<(i32, u64)>,
}

/// The watchdog's loop, until capture stops.
pub(super) fn run(capture: Arc<Capture>) {
    let mut watch = Watch::default();
    loop {
        let mut control = capture.control();
        if control.stopping {
            return;
        }
        let threshold = control.settings.slow_poll_threshold;
        if threshold.is_zero() {
            watch = Watch::default();
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
        let stacks = control.settings.stacks;
        drop(control);
        if !threshold.is_zero() {
            check(&capture, threshold, stacks, &mut watch);
        }
    }
}

/// Whether polls mark their thread for this watchdog.
static WATCHING: Mutex<bool> = Mutex::new(false);

/// Turns the engine's poll marks on while a slow-poll threshold is set, and off otherwise, and
/// says whether runtime threads should register for stacks; called with the settings when
/// capture starts, when they change and when capture stops, so that a poll beginning right after
/// `start` returns is already watched.
pub(super) fn watch(on: bool, stacks: bool) {
    let mut watching = lock(&WATCHING);
    workers::set_wanted(on && stacks);
    if *watching != on {
        engine().watch_polls(on);
        *watching = on;
    }
}

/// One look at the polls in progress and the runtime's workers.
fn check(capture: &Capture, threshold: Duration, stacks: bool, watch: &mut Watch) {
    if let Some(error) = workers::take_failure() {
        report_error("registering a runtime thread for stacks", &error);
    }
    let calibration = clock::calibration();
    let threshold_units = calibration.units_in(threshold).max(1);
    let polls = engine().polls_in_progress();
    let now = calibration.now_units();
    let key = |p: &crate::engine::shared::PollInProgress| (p.thread, p.task, p.started_units);
    watch
        .reported
        .retain(|&k| polls.iter().any(|p| key(p) == k));

    // Slow polls being sampled: the poll ended, or another sample is due.
    let mut finished = Vec::new();
    let mut i = 0;
    while i < watch.sampling.len() {
        let w = &mut watch.sampling[i];
        let running = polls
            .iter()
            .any(|p| key(p) == (w.thread, w.task, w.started));
        if running {
            w.age_units = now.saturating_sub(w.started);
            if stacks && now >= w.next_units {
                sample_poll(w, threshold_units, now);
            }
        }
        if !running || w.samples >= MAX_SAMPLES || !stacks {
            finished.push(watch.sampling.swap_remove(i));
        } else {
            i += 1;
        }
    }
    for w in finished {
        write_slow_poll(capture, threshold, w.thread, w.task, w.age_units, w.samples);
        if stopping(capture) {
            return;
        }
    }

    for poll in &polls {
        let age_units = now.saturating_sub(poll.started_units);
        if age_units < threshold_units || !watch.reported.insert(key(poll)) {
            continue;
        }
        let handle = if stacks { handle_of(poll.thread) } else { None };
        let Some(handle) = handle else {
            write_slow_poll(capture, threshold, poll.thread, poll.task, age_units, 0);
            if stopping(capture) {
                return;
            }
            continue;
        };
        let mut w = Watched {
            thread: poll.thread,
            task: poll.task,
            started: poll.started_units,
            handle,
            samples: 0,
            next_units: now,
            age_units,
        };
        sample_poll(&mut w, threshold_units, now);
        watch.sampling.push(w);
    }

    if stacks {
        check_workers(capture, threshold, threshold_units, now, &polls, watch);
    } else {
        watch.stuck.clear();
    }
}

fn stopping(capture: &Capture) -> bool {
    lock(&capture.control).stopping
}

/// The handle of the runtime thread the recorder knows as `thread`.
fn handle_of(thread: u64) -> Option<ThreadHandle> {
    let os_tid = engine().thread_info(thread)?.os_tid;
    let tid = i32::try_from(os_tid).ok()?;
    Some(workers::by_tid(tid)?.handle)
}

/// Captures a stack: its id in the stack table (0 when the capture failed) and its frame-pointer
/// return addresses.
fn capture_stack(handle: &ThreadHandle) -> (u64, Vec<u64>) {
    match stack::capture_thread_stack(handle, Instant::now() + CAPTURE_DEADLINE) {
        Ok(stack) => {
            let addresses: Vec<u64> = stack.frames.iter().map(|f| f.address as u64).collect();
            let chain = stack
                .frames
                .iter()
                .filter(|f| f.kind == FrameKind::FramePointer)
                .map(|f| f.address as u64)
                .collect();
            (intern_stack(&addresses), chain)
        }
        Err(error) => {
            if error != stack::StackError::Gone
                && !CAPTURE_FAILURE_REPORTED.swap(true, Ordering::Relaxed)
            {
                report_error(
                    &format!("capturing the stack of thread {}", handle.tid()),
                    &error,
                );
            }
            (0, Vec::new())
        }
    }
}

fn record_stack(thread: u64, task: u64, stack: u64, cause: u64) {
    raw::record(EventKind::ThreadStack, &[thread, task, stack, cause]);
}

fn sample_poll(w: &mut Watched, threshold_units: u64, now: u64) {
    let (stack, _) = capture_stack(&w.handle);
    record_stack(w.thread, w.task, stack, stack_cause::SLOW_POLL);
    w.samples += 1;
    w.next_units = now + threshold_units;
}

/// Writes a slow poll's dump (rate limited like every trigger).
fn write_slow_poll(
    capture: &Capture,
    threshold: Duration,
    thread: u64,
    task: u64,
    age_units: u64,
    stacks: u32,
) {
    let info = engine().thread_info(thread);
    let thread_name = info.as_ref().map(|i| i.name.clone()).unwrap_or_default();
    let os_tid = info.as_ref().map_or(0, |i| i.os_tid);
    let trigger = Trigger {
        kind: TriggerKind::SlowPoll,
        reason: "slow_poll".into(),
        tag: "slow_poll".into(),
        details: vec![
            ("task".into(), task.to_string()),
            ("thread".into(), thread.to_string()),
            ("thread_name".into(), thread_name),
            ("os_tid".into(), os_tid.to_string()),
            ("poll_ms".into(), format!("{:.3}", units_ms(age_units))),
            (
                "threshold_ms".into(),
                format!("{:.3}", threshold.as_secs_f64() * 1e3),
            ),
            ("stacks".into(), stacks.to_string()),
        ],
    };
    // Errors are reported by the write; a suppressed trigger is counted.
    let _ = capture.trigger(with_dropped(trigger), None);
}

fn units_ms(units: u64) -> f64 {
    let calibration = clock::calibration();
    let ns_per_unit = (1u64 << calibration.unit_shift) as f64 / calibration.ticks_per_ns;
    units as f64 * ns_per_unit / 1e6
}

/// Whether two samples' frame-pointer chains are at the same place: one ends with the other, at
/// most a few frames deeper.
fn same_place(a: &[u64], b: &[u64]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    !short.is_empty() && long.ends_with(short) && long.len() - short.len() <= SAME_PLACE_SLACK
}

/// The stable-tokio path: workers unparked past the threshold with no poll mark.
fn check_workers(
    capture: &Capture,
    threshold: Duration,
    threshold_units: u64,
    now: u64,
    polls: &[crate::engine::shared::PollInProgress],
    watch: &mut Watch,
) {
    let progress = engine().threads_progress();
    let mut seen = HashSet::new();
    let mut finished = Vec::new();
    for worker in workers::all() {
        let tid = worker.handle.tid();
        let Some(busy_since) = worker.busy_since_units() else {
            continue;
        };
        let (thread, progress) = progress
            .iter()
            .find(|p| p.os_tid == tid as u64)
            .map_or((0, None), |p| (p.thread, p.progress));
        if thread != 0 && polls.iter().any(|p| p.thread == thread) {
            // A poll mark: the slow-poll path reports it.
            continue;
        }
        if now.saturating_sub(busy_since) < threshold_units
            || watch.stuck_reported.contains(&(tid, busy_since))
        {
            continue;
        }
        seen.insert((tid, busy_since));
        let entry = watch.stuck.remove(&tid);
        let mut s = match entry {
            Some(s) if s.busy_since == busy_since && s.progress == progress => s,
            other => {
                // It moved on (parked, or recorded events): a confirmed stall ends here.
                if let Some(old) = other.filter(|o| o.confirmed) {
                    finished.push(old);
                }
                Stuck {
                    worker: Arc::clone(&worker),
                    thread,
                    busy_since,
                    progress,
                    last_chain: Vec::new(),
                    pending: Vec::new(),
                    confirmed: false,
                    samples: 0,
                    // Sampled from the next look on, if it records nothing until then: a busy
                    // worker that records events (poll hooks) is never interrupted.
                    next_units: now + 1,
                }
            }
        };
        if now >= s.next_units {
            let (stack, chain) = capture_stack(&s.worker.handle);
            s.next_units = now + threshold_units;
            if s.confirmed {
                if same_place(&s.last_chain, &chain) {
                    record_stack(s.thread, 0, stack, stack_cause::STUCK_WORKER);
                    s.samples += 1;
                    s.last_chain = chain;
                } else {
                    // It moved: the stall ended.
                    finished.push(s);
                    continue;
                }
            } else if same_place(&s.last_chain, &chain) {
                s.confirmed = true;
                s.pending.push(stack);
                for stack in std::mem::take(&mut s.pending) {
                    record_stack(s.thread, 0, stack, stack_cause::STUCK_WORKER);
                    s.samples += 1;
                }
                s.last_chain = chain;
            } else {
                // The first sample, or not at the same place: start over from this one.
                s.pending = vec![stack];
                s.last_chain = chain;
            }
        }
        if s.samples >= MAX_SAMPLES {
            finished.push(s);
        } else {
            watch.stuck.insert(tid, s);
        }
    }
    // Workers that parked (or recorded events and left the list): a confirmed stall ends.
    let gone: Vec<i32> = watch
        .stuck
        .iter()
        .filter(|(&tid, s)| !seen.contains(&(tid, s.busy_since)))
        .map(|(&tid, _)| tid)
        .collect();
    for tid in gone {
        if let Some(s) = watch.stuck.remove(&tid) {
            if s.confirmed {
                finished.push(s);
            }
        }
    }
    watch.stuck_reported.retain(|&(tid, busy)| {
        workers::by_tid(tid).and_then(|w| w.busy_since_units()) == Some(busy)
    });
    for s in finished {
        let tid = s.worker.handle.tid();
        watch.stuck_reported.insert((tid, s.busy_since));
        write_stuck_worker(capture, threshold, &s, now);
        if stopping(capture) {
            return;
        }
    }
}

/// Writes a stuck worker's dump (rate limited as a slow poll).
fn write_stuck_worker(capture: &Capture, threshold: Duration, s: &Stuck, now: u64) {
    let info = (s.thread != 0)
        .then(|| engine().thread_info(s.thread))
        .flatten();
    let thread_name = info.as_ref().map(|i| i.name.clone()).unwrap_or_default();
    let trigger = Trigger {
        kind: TriggerKind::SlowPoll,
        reason: "stuck_worker".into(),
        tag: "stuck_worker".into(),
        details: vec![
            ("cause".into(), "stuck_worker".into()),
            ("thread".into(), s.thread.to_string()),
            ("thread_name".into(), thread_name),
            ("os_tid".into(), s.worker.handle.tid().to_string()),
            (
                "busy_ms".into(),
                format!("{:.3}", units_ms(now.saturating_sub(s.busy_since))),
            ),
            (
                "threshold_ms".into(),
                format!("{:.3}", threshold.as_secs_f64() * 1e3),
            ),
            ("stacks".into(), s.samples.to_string()),
        ],
    };
    let _ = capture.trigger(with_dropped(trigger), None);
}

/// Adds the count of stacks the full stack table could not keep, if any.
fn with_dropped(mut trigger: Trigger) -> Trigger {
    let dropped = stacks::dropped();
    if dropped > 0 {
        trigger
            .details
            .push(("stacks_dropped".into(), dropped.to_string()));
    }
    trigger
}

#[cfg(test)]
mod tests {
    use super::same_place;

    #[test]
    fn samples_at_the_same_place() {
        assert!(same_place(&[1, 2, 3], &[1, 2, 3]));
        assert!(same_place(&[9, 1, 2, 3], &[1, 2, 3]));
        assert!(same_place(&[2, 3], &[7, 8, 2, 3]));
        assert!(!same_place(&[5, 2, 3], &[6, 2, 3]));
        assert!(!same_place(&[], &[]));
        assert!(!same_place(&[1, 2, 3, 4, 5, 6], &[6]));
    }
}
