//! The rules: what the observer saw, turned into findings with a severity scored by their
//! impact, the evidence, an explanation and what to do; then ranked, a consequence below its
//! cause.

use flight_recorder_format::time::format_utc_millis;
use flight_recorder_format::units::format_duration as dur;

use super::observe::{DiagnosisStats, Lost, Storm, Tally};
use super::{Diagnosis, Evidence, Finding, FindingKind, RequestWaits, Severity};
use crate::merge::Names;
use crate::summary::build::location_name;
use crate::summary::stacks_text::{first_app_frame, lines};
use crate::summary::Summary;

/// Locations and tasks named in a finding's evidence, at most.
const NAMED: usize = 5;

/// The severity of something whose worst instance took `worst` and whose total cost was
/// `impact`, out of `capacity` (worker time in the window): critical from `critical` or a
/// quarter of the capacity, a warning from `warning` or a twentieth, else info.
fn grade(worst: u64, impact: u64, capacity: u64, warning: u64, critical: u64) -> Severity {
    let capacity = capacity.max(1);
    if worst >= critical || impact.saturating_mul(4) >= capacity {
        Severity::Critical
    } else if worst >= warning || impact.saturating_mul(20) >= capacity {
        Severity::Warning
    } else {
        Severity::Info
    }
}

fn thread_label(summary: &Summary, id: u64) -> String {
    match summary.thread_name(id) {
        "" => format!("thread {id}"),
        name => name.to_string(),
    }
}

fn values(items: &[(&str, u64)]) -> Vec<(String, u64)> {
    items.iter().map(|(n, v)| ((*n).to_string(), *v)).collect()
}

/// The diagnosis of a trace from its observer and its summary (window, threads, long polls
/// with their stacks, user task groups).
pub(crate) fn diagnose(stats: DiagnosisStats, names: &dyn Names, summary: &Summary) -> Diagnosis {
    let o = stats.options;
    let window = summary.window.map_or(0, |w| w.duration_ns());
    let workers = summary
        .runtimes
        .iter()
        .map(|r| r.workers.len() as u64)
        .sum::<u64>()
        .max(stats.workers.iter().filter(|(_, w)| w.is_worker()).count() as u64)
        .max(1);
    let capacity = window.saturating_mul(workers);
    let mut d = Diagnosis {
        options: o,
        ..Diagnosis::default()
    };
    let loc = |id: u64| location_name(names, id);
    let top_locations = |t: &Tally| -> Vec<String> {
        t.top_locations()
            .into_iter()
            .take(NAMED)
            .map(|(l, _, _)| loc(l))
            .collect()
    };

    // blocking_poll
    let bp = &stats.blocking_polls;
    if bp.count > 0 {
        let w = bp.worst;
        let severity = grade(
            w.ns,
            bp.total,
            capacity,
            o.blocking_poll_ns.saturating_mul(5),
            o.blocking_poll_ns.saturating_mul(50),
        );
        let stack: Vec<String> = summary
            .long_polls
            .top
            .iter()
            .find(|p| p.task == w.task && p.start_ns == w.start)
            .and_then(|p| p.stacks.iter().find(|s| !s.frames.is_empty()))
            .map(|s| {
                lines(&s.frames)
                    .into_iter()
                    .take(16)
                    .map(|l| {
                        if l.at.is_empty() {
                            l.function
                        } else {
                            format!("{} at {}", l.function, l.at)
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let app_frame = summary
            .long_polls
            .top
            .iter()
            .find(|p| p.task == w.task && p.start_ns == w.start)
            .and_then(|p| p.stacks.iter().find_map(|s| first_app_frame(&s.frames)));
        let more = if bp.count > 1 {
            format!(
                " (and {} more polls of {} or more)",
                bp.count - 1,
                dur(o.blocking_poll_ns)
            )
        } else {
            String::new()
        };
        let mut why = format!(
            "{} on workers ran {} or longer, {} of worker time in a {} window; the \
             longest ran {} from {}",
            count(bp.count, "poll", "polls"),
            dur(o.blocking_poll_ns),
            dur(bp.total),
            dur(window),
            dur(w.ns),
            format_utc_millis(w.start),
        );
        if let Some(frame) = &app_frame {
            why.push_str(&format!("; it was in {frame}"));
        }
        d.findings.push(Finding {
            kind: FindingKind::BlockingPoll,
            severity,
            impact_ns: bp.total,
            summary: format!(
                "a poll of task {} ({}) held worker {} for {}{more}",
                w.task,
                loc(w.location),
                thread_label(summary, w.thread),
                dur(w.ns)
            ),
            why,
            advice: "Blocking code (a lock, a blocking syscall, CPU-heavy work) stalls every task \
                     queued on that worker: move it to spawn_blocking or block_in_place, or split \
                     it with yield points; the stack shows where it blocked."
                .into(),
            evidence: Evidence {
                start_ns: w.start,
                end_ns: w.start.saturating_add(w.ns),
                tasks: vec![w.task],
                locations: top_locations(bp),
                threads: vec![thread_label(summary, w.thread)],
                stack,
                values: values(&[
                    ("polls", bp.count),
                    ("total_ns", bp.total),
                    ("longest_ns", w.ns),
                    ("threshold_ns", o.blocking_poll_ns),
                ]),
            },
        });
    }

    // spawn_storm (before scheduling_delay, which it may explain)
    let storm: Option<&Storm> = stats.storms.iter().max_by(|a, b| {
        a.others_max_wait
            .cmp(&b.others_max_wait)
            .then(a.spawns.cmp(&b.spawns))
    });
    if let Some(s) = storm {
        let severity = if s.others_max_wait >= o.sched_delay_ns.saturating_mul(10) {
            Severity::Critical
        } else if s.others_max_wait >= o.sched_delay_ns {
            Severity::Warning
        } else {
            Severity::Info
        };
        let len = s.end.saturating_sub(s.start);
        d.findings.push(Finding {
            kind: FindingKind::SpawnStorm,
            severity,
            impact_ns: s.others_max_wait.saturating_mul(s.others_delayed.max(1)),
            summary: format!(
                "{} tasks spawned within {} ({} of them at {}), other tasks waited up to {} to be polled",
                s.spawns,
                dur(len),
                s.location_spawns,
                loc(s.location),
                dur(s.others_max_wait)
            ),
            why: format!(
                "from {}, {} spawns ({}/s) queued ahead of the other tasks: {} of their polls \
                 waited {} or more for a worker; {} such bursts in the window",
                format_utc_millis(s.start),
                s.spawns,
                s.spawns.saturating_mul(1_000_000_000) / len.max(1),
                s.others_delayed,
                dur(o.sched_delay_ns),
                stats.storms.len()
            ),
            advice: "Spawning many tasks at once queues them ahead of the others: bound the \
                     concurrency (a JoinSet or a semaphore), spawn in batches with yields between, \
                     or process the items in fewer tasks."
                .into(),
            evidence: Evidence {
                start_ns: s.start,
                end_ns: s.end,
                tasks: [s.victim.0].into_iter().filter(|t| *t != 0).collect(),
                locations: vec![loc(s.location), loc(s.victim.1)],
                threads: Vec::new(),
                stack: Vec::new(),
                values: values(&[
                    ("spawns", s.spawns),
                    ("location_spawns", s.location_spawns),
                    ("duration_ns", len),
                    ("others_max_wait_ns", s.others_max_wait),
                    ("others_delayed_polls", s.others_delayed),
                    ("storms", stats.storms.len() as u64),
                ]),
            },
        });
    }

    // scheduling_delay
    let sd = &stats.delays;
    if sd.count > 0 {
        let w = sd.worst;
        let mut severity = grade(
            w.ns,
            sd.total,
            capacity,
            o.sched_delay_ns.saturating_mul(2),
            o.sched_delay_ns.saturating_mul(10),
        );
        // Who held the workers during the longest delays, by location: (location, task, ns,
        // of which in long polls).
        let mut holders: Vec<(u64, u64, u64, u64)> = Vec::new();
        for (_, hs) in &stats.top_delays {
            for h in hs {
                match holders.iter_mut().find(|x| x.0 == h.location) {
                    Some(x) => {
                        x.2 = x.2.saturating_add(h.ns);
                        x.3 = x.3.saturating_add(h.long_ns);
                    }
                    None => holders.push((h.location, h.task, h.ns, h.long_ns)),
                }
            }
        }
        holders.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        let held: Vec<String> = holders
            .iter()
            .take(3)
            .map(|(l, t, ns, _)| format!("{} (task {t}, {})", loc(*l), dur(*ns)))
            .collect();
        let mut why = format!(
            "{} waited {} or more between their wake (or spawn) and their poll, {} in \
             all; the longest waited {} from {}",
            count(sd.count, "poll", "polls"),
            dur(o.sched_delay_ns),
            dur(sd.total),
            dur(w.ns),
            format_utc_millis(w.start)
        );
        if !held.is_empty() {
            why.push_str(&format!("; meanwhile the workers ran {}", held.join(", ")));
        }
        // A consequence ranks below its cause: delays while blocking polls held the workers
        // (most of the holders' time in long polls), or of a spawn storm's own tasks.
        let held_total: u64 = holders.iter().map(|h| h.2).fold(0, u64::saturating_add);
        let held_long: u64 = holders.iter().map(|h| h.3).fold(0, u64::saturating_add);
        let caused_by_blocking = held_total > 0 && held_long.saturating_mul(2) >= held_total;
        let storm_of_worst = stats.storms.iter().find(|s| {
            w.start < s.end.saturating_add(2 * super::observe::STORM_BUCKET_NS)
                && w.start.saturating_add(w.ns) >= s.start
        });
        let in_imbalance = stats
            .imbalance
            .as_ref()
            .is_some_and(|i| w.start >= i.start && w.start < i.end);
        if caused_by_blocking {
            why.push_str(" (the blocking polls held them)");
            severity = severity.lower();
        } else if in_imbalance {
            why.push_str(" (while another worker stayed idle: see the imbalance)");
            severity = severity.lower();
        } else if let Some(s) = storm_of_worst {
            why.push_str(" (during a spawn storm)");
            severity = if s.location == w.location {
                // The storm's own tasks waiting for each other: the storm is the finding.
                Severity::Info
            } else {
                severity.lower()
            };
        }
        let mut tasks = vec![w.task];
        tasks.extend(holders.iter().take(3).map(|h| h.1).filter(|t| *t != 0));
        let mut locations = top_locations(sd);
        locations.extend(holders.iter().take(3).map(|h| loc(h.0)));
        d.findings.push(Finding {
            kind: FindingKind::SchedulingDelay,
            severity,
            impact_ns: sd.total,
            summary: format!(
                "task {} ({}) waited {} for a worker",
                w.task,
                loc(w.location),
                dur(w.ns)
            ),
            why,
            advice: "The workers were busy with other tasks when these became runnable: shorten \
                     or split what held them (named above), move CPU-heavy work off the workers, \
                     or add workers."
                .into(),
            evidence: Evidence {
                start_ns: w.start,
                end_ns: w.start.saturating_add(w.ns),
                tasks,
                locations,
                threads: Vec::new(),
                stack: Vec::new(),
                values: values(&[
                    ("polls", sd.count),
                    ("total_ns", sd.total),
                    ("longest_ns", w.ns),
                    ("threshold_ns", o.sched_delay_ns),
                ]),
            },
        });
    }

    // imbalance
    if let Some(s) = &stats.imbalance {
        let len = s.end.saturating_sub(s.start);
        let severity =
            if len >= o.imbalance_ns.saturating_mul(10) || len.saturating_mul(2) >= window {
                Severity::Critical
            } else {
                Severity::Warning
            };
        let ran: Vec<String> = s
            .locations
            .iter()
            .take(3)
            .map(|(l, ns)| format!("{} ({})", loc(*l), dur(*ns)))
            .collect();
        d.findings.push(Finding {
            kind: FindingKind::Imbalance,
            severity,
            impact_ns: len,
            summary: format!(
                "one worker was busy for {} while another stayed idle (worker {} busy, {} idle \
                 at first)",
                dur(len),
                thread_label(summary, s.busy),
                thread_label(summary, s.idle)
            ),
            why: format!(
                "from {}, in every 100 ms one worker was busy (unparked, outside polls of {} or \
                 more) at least 90% of the time while another was busy at most 20% (on average \
                 {}.{}%); the work was {}",
                format_utc_millis(s.start),
                dur(o.blocking_poll_ns),
                s.idle_per_mille / 10,
                s.idle_per_mille % 10,
                if ran.is_empty() {
                    "no recorded poll".to_string()
                } else {
                    ran.join(", ")
                }
            ),
            advice: "The work stayed on one worker: tasks that wake each other in turn keep \
                     running on the same worker (tokio's LIFO slot), and a chain of spawns and \
                     awaits does too. Spread independent work over tasks, or try \
                     Builder::disable_lifo_slot."
                .into(),
            evidence: Evidence {
                start_ns: s.start,
                end_ns: s.end,
                tasks: Vec::new(),
                locations: s
                    .locations
                    .iter()
                    .take(NAMED)
                    .map(|(l, _)| loc(*l))
                    .collect(),
                threads: vec![thread_label(summary, s.busy), thread_label(summary, s.idle)],
                stack: Vec::new(),
                values: values(&[
                    ("duration_ns", len),
                    ("idle_worker_busy_per_mille", s.idle_per_mille),
                ]),
            },
        });
    }

    // task_leak
    let mut leaks: Vec<(u64, u64, [u64; 4], u64, u64)> = stats
        .spawned
        .iter()
        .filter_map(|(l, s)| {
            let alive: u64 = s.alive_by_quarter.iter().sum();
            let quarters = s.alive_by_quarter.iter().filter(|n| **n > 0).count();
            (alive >= o.leak_tasks.max(1) && alive.saturating_mul(2) >= s.spawned && quarters >= 3)
                .then_some((*l, alive, s.alive_by_quarter, s.spawned, s.example))
        })
        .collect();
    leaks.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (l, alive, q, spawned, example) in leaks.into_iter().take(NAMED) {
        let severity = if alive >= o.leak_tasks.saturating_mul(10) {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let per_s = alive.saturating_mul(1_000_000_000) / window.max(1);
        d.findings.push(Finding {
            kind: FindingKind::TaskLeak,
            severity,
            impact_ns: alive.saturating_mul(window / 2),
            summary: format!(
                "{alive} tasks spawned at {} are alive at the window's end, about {per_s} more \
                 every second",
                loc(l)
            ),
            why: format!(
                "of the {spawned} tasks spawned there in the window, {alive} did not end; by \
                 quarter of the window they were spawned in: {}, {}, {}, {}",
                q[0], q[1], q[2], q[3]
            ),
            advice: "Tasks that never end keep their memory and anything they hold: check that \
                     they finish or are cancelled (dropping a JoinHandle does not cancel a task; \
                     abort it or use a cancellation token) and that what they wait on completes."
                .into(),
            evidence: Evidence {
                start_ns: summary.window.map_or(0, |w| w.start_ns),
                end_ns: summary.window.map_or(0, |w| w.end_ns),
                tasks: vec![example],
                locations: vec![loc(l)],
                threads: Vec::new(),
                stack: Vec::new(),
                values: values(&[
                    ("alive", alive),
                    ("spawned", spawned),
                    ("alive_q1", q[0]),
                    ("alive_q2", q[1]),
                    ("alive_q3", q[2]),
                    ("alive_q4", q[3]),
                ]),
            },
        });
    }

    // lost_wake
    let end = summary.window.map_or(0, |w| w.end_ns);
    for unwakeable in [true, false] {
        let mut lost: Vec<&Lost> = stats
            .lost
            .iter()
            .filter(|l| l.unwakeable == unwakeable)
            .filter(|l| unwakeable || end.saturating_sub(l.since) >= o.lost_wake_ns)
            .collect();
        if lost.is_empty() {
            continue;
        }
        lost.sort_by_key(|l| (l.since, l.task));
        let first = lost[0];
        let stuck = end.saturating_sub(first.since);
        let impact: u64 = lost
            .iter()
            .map(|l| end.saturating_sub(l.since))
            .fold(0, u64::saturating_add);
        let severity = if stuck >= o.lost_wake_ns {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let (summary_line, why, advice) = if unwakeable {
            (
                format!(
                    "task {} ({}) returned Pending without keeping its waker: nothing can wake it",
                    first.task,
                    loc(first.location)
                ),
                format!(
                    "its poll at {} neither cloned nor woke the waker it was given, and it was \
                     not polled again in the {} to the window's end; {} in all",
                    format_utc_millis(first.since),
                    dur(stuck),
                    count(lost.len() as u64, "task", "tasks")
                ),
                "A future that returns Poll::Pending must arrange to be woken: store \
                 cx.waker().clone() where the awaited event fires, or call wake_by_ref to yield. \
                 A hand-written future that forgets it hangs its task forever.",
            )
        } else {
            (
                format!(
                    "task {} ({}) was woken {} before the window's end and never polled",
                    first.task,
                    loc(first.location),
                    dur(stuck)
                ),
                format!(
                    "it was woken at {} and workers went idle afterwards, yet it was not polled; \
                     {} in all",
                    format_utc_millis(first.since),
                    count(lost.len() as u64, "task", "tasks")
                ),
                "A wake that does not lead to a poll points at a runtime that is shutting down \
                 or a task woken through a stale waker; check how the task is driven.",
            )
        };
        d.findings.push(Finding {
            kind: FindingKind::LostWake,
            severity,
            impact_ns: impact,
            summary: summary_line,
            why,
            advice: advice.into(),
            evidence: Evidence {
                start_ns: first.since,
                end_ns: end,
                tasks: lost.iter().take(10).map(|l| l.task).collect(),
                locations: dedup(lost.iter().map(|l| loc(l.location))),
                threads: Vec::new(),
                stack: Vec::new(),
                values: values(&[
                    ("tasks", lost.len() as u64),
                    ("stuck_ns", stuck),
                    ("unwakeable", u64::from(unwakeable)),
                ]),
            },
        });
    }

    // blocking_pool_saturated
    let bq = &stats.blocking_queue;
    let (depth_samples, deepest, depth_first, depth_last) = stats.queue_depth;
    if bq.count > 0 || depth_samples >= 2 {
        let w = bq.worst;
        let severity = if w.ns >= o.blocking_queue_ns.saturating_mul(100) {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let mut why = String::new();
        if bq.count > 0 {
            why.push_str(&format!(
                "{} waited {} or more before a pool thread ran them, {} in \
                 all; the longest waited {} from {}",
                count(bq.count, "spawn_blocking call", "spawn_blocking calls"),
                dur(o.blocking_queue_ns),
                dur(bq.total),
                dur(w.ns),
                format_utc_millis(w.start)
            ));
        }
        if depth_samples > 0 {
            if !why.is_empty() {
                why.push_str("; ");
            }
            why.push_str(&format!(
                "the runtime's blocking_queue_depth was above 0 in {depth_samples} samples, up \
                 to {deepest}"
            ));
        }
        let (start, stop) = if bq.count > 0 {
            (bq.first, bq.last)
        } else {
            (depth_first, depth_last)
        };
        d.findings.push(Finding {
            kind: FindingKind::BlockingPoolSaturated,
            severity,
            impact_ns: bq.total,
            summary: if bq.count > 0 {
                format!(
                    "spawn_blocking work at {} waited up to {} for a blocking-pool thread",
                    loc(w.location),
                    dur(w.ns)
                )
            } else {
                format!("spawn_blocking work queued behind a full blocking pool (depth up to {deepest})")
            },
            why,
            advice: "Every blocking-pool thread was busy (max_blocking_threads): bound the \
                     blocking work's concurrency with a semaphore, make each call shorter, or \
                     raise the limit if the machine has room."
                .into(),
            evidence: Evidence {
                start_ns: start,
                end_ns: stop,
                tasks: [w.task].into_iter().filter(|t| *t != 0).collect(),
                locations: top_locations(bq),
                threads: Vec::new(),
                stack: Vec::new(),
                values: values(&[
                    ("queued", bq.count),
                    ("total_ns", bq.total),
                    ("longest_ns", w.ns),
                    ("depth_samples", depth_samples),
                    ("max_depth", deepest),
                    ("threshold_ns", o.blocking_queue_ns),
                ]),
            },
        });
    }

    // slow_request
    let mut waits = stats.requests.slowest;
    let outlier = |w: &RequestWaits| {
        if w.duration_ns < o.slow_request_ns {
            return false;
        }
        match summary.user_task(&w.name) {
            Some(g) if g.count >= 5 => w.duration_ns >= g.latency.p50.saturating_mul(5),
            _ => true,
        }
    };
    let mut named: Vec<&str> = Vec::new();
    for w in waits.iter().filter(|w| outlier(w)) {
        if named.contains(&w.name.as_str()) {
            continue;
        }
        named.push(&w.name);
        let same: Vec<&RequestWaits> = waits
            .iter()
            .filter(|x| x.name == w.name && outlier(x))
            .collect();
        let severity = if w.duration_ns >= o.slow_request_ns.saturating_mul(10) {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let (cause, advice) = main_cause(w);
        let median = summary
            .user_task(&w.name)
            .filter(|g| g.count >= 5)
            .map(|g| {
                format!(
                    " ({}× the median of {})",
                    w.duration_ns / g.latency.p50.max(1),
                    dur(g.latency.p50)
                )
            })
            .unwrap_or_default();
        let mut tasks = vec![w.task];
        let mut locations = vec![w.location.clone()];
        for b in w
            .task_waits
            .iter()
            .chain(&w.blocking)
            .chain(&w.worker_holders)
            .take(3)
        {
            if b.task != 0 {
                tasks.push(b.task);
            }
            locations.push(b.location.clone());
        }
        d.findings.push(Finding {
            kind: FindingKind::SlowRequest,
            severity,
            impact_ns: same
                .iter()
                .map(|x| x.duration_ns)
                .fold(0, u64::saturating_add),
            summary: format!(
                "{} #{} took {}{median}: {cause}",
                w.name,
                w.id,
                dur(w.duration_ns)
            ),
            why: format!(
                "running {}, waiting for a worker {}, waiting on other tasks {}, in \
                 spawn_blocking {}, idle {}{}",
                dur(w.running_ns),
                dur(w.worker_wait_ns),
                dur(w
                    .task_waits
                    .iter()
                    .map(|b| b.ns)
                    .fold(0, u64::saturating_add)),
                dur(w.blocking_ns),
                dur(w.idle_ns),
                if same.len() > 1 {
                    format!("; {} slow instances of {}", same.len(), w.name)
                } else {
                    String::new()
                }
            ),
            advice,
            evidence: Evidence {
                start_ns: w.start_ns,
                end_ns: w.start_ns.saturating_add(w.duration_ns),
                tasks: tasks.into_iter().filter(|t| *t != 0).collect(),
                locations: dedup(locations.into_iter().filter(|l| !l.is_empty())),
                threads: Vec::new(),
                stack: Vec::new(),
                values: values(&[
                    ("duration_ns", w.duration_ns),
                    ("running_ns", w.running_ns),
                    ("worker_wait_ns", w.worker_wait_ns),
                    (
                        "task_wait_ns",
                        w.task_waits
                            .iter()
                            .map(|b| b.ns)
                            .fold(0, u64::saturating_add),
                    ),
                    ("blocking_ns", w.blocking_ns),
                    ("idle_ns", w.idle_ns),
                    ("instances", same.len() as u64),
                ]),
            },
        });
    }
    waits.truncate(o.waits);
    d.waits = waits;

    if stats.polls > 0 && stats.wakes == 0 {
        d.limits.push(
            "no wakes are recorded (tasks spawned with tokio::spawn, runtime hooks only): waits \
             on other tasks count as idle, scheduling delay is measured from spawn to first poll \
             (or by tokio where it measures it), and lost wakes cannot be seen; spawn with \
             flight_recorder::tokio::spawn to record them"
                .into(),
        );
    }
    if stats.polls == 0 {
        d.limits.push(
            "no polls are recorded: the task rules (blocking polls, scheduling delay, leaks, \
             storms, request breakdowns) have nothing to look at"
                .into(),
        );
    } else if !stats.workers.parks_seen {
        d.limits.push(
            "no worker park or unpark is recorded (flight_recorder::tokio::instrument): \
             imbalance cannot be seen"
                .into(),
        );
    }
    d.rank();
    d
}

/// The main part of a slow request's time, in words, and what to do about it.
fn main_cause(w: &RequestWaits) -> (String, String) {
    let task_wait: u64 = w
        .task_waits
        .iter()
        .map(|b| b.ns)
        .fold(0, u64::saturating_add);
    let parts = [
        (w.running_ns, 0),
        (w.worker_wait_ns, 1),
        (task_wait, 2),
        (w.blocking_ns, 3),
        (w.idle_ns, 4),
    ];
    let (ns, which) = parts
        .into_iter()
        .max_by_key(|p| (p.0, 5 - p.1))
        .unwrap_or((0, 4));
    let share = ns.saturating_mul(100) / w.duration_ns.max(1);
    match which {
        0 => (
            format!("{share}% running in its own polls"),
            "It spent its time computing: profile its task (CPU samples) or split the work.".into(),
        ),
        1 => {
            let by = w
                .worker_holders
                .first()
                .map(|b| format!(", workers held by {}", b.location))
                .unwrap_or_default();
            (
                format!("{share}% waiting for a worker{by}"),
                "The workers were busy elsewhere when it was runnable: see what held them (the \
                 scheduling and blocking findings)."
                    .into(),
            )
        }
        2 => {
            let b = &w.task_waits[0];
            let chain = if b.chain.is_empty() {
                String::new()
            } else {
                format!(" ({})", b.chain.join("; "))
            };
            (
                format!(
                    "{share}% waiting on task {} ({}), {}",
                    b.task,
                    b.location,
                    dur(b.ns)
                ),
                format!(
                    "It waited for task {} at {} to wake it (a lock, a semaphore, a channel \
                     held or fed there){chain}: look at what that task was doing.",
                    b.task, b.location
                ),
            )
        }
        3 => (
            format!("{share}% waiting for spawn_blocking work"),
            "It waited for blocking-pool work: see whether the pool was saturated or the work \
             itself was slow."
                .into(),
        ),
        _ => (
            format!("{share}% idle with no recorded cause"),
            if w.wakes_recorded {
                "It waited on a timer, I/O or something outside the runtime (a wake from no task)."
                    .into()
            } else {
                "Wakes are not recorded for its task: spawn it with flight_recorder::tokio::spawn \
                 to see which task it waited on."
                    .into()
            },
        ),
    }
}

/// `1 poll`, `3 polls`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) && out.len() < NAMED * 2 {
            out.push(item);
        }
    }
    out
}
