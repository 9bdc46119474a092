//! Who a slow request waited on: the time of each open user task split, as its task's events
//! arrive, into running, waiting for a worker, waiting on other tasks, blocked in
//! `spawn_blocking` and idle; the slowest kept.

use super::workers::{WakeChain, Workers};
use super::{Blame, RequestWaits};
use crate::merge::Names;
use crate::model::{IdMap, WakeRef};
use crate::summary::build::{location_name, string_or_id};

/// Distinct causes kept per request and category (the rest are added to the last).
const MAX_BLAME: usize = 8;
/// A worker wait at least this long gets its holders named.
const HOLDERS_MIN_NS: u64 = 1_000_000;

/// A user task still open, with its breakdown so far.
struct Open {
    waits: RequestWaits,
    /// Accounted up to this time.
    acc: u64,
    /// Whether its task is being polled now.
    in_poll: bool,
    holders: IdMap<Blame>,
    task_waits: IdMap<Blame>,
    blocking: IdMap<Blame>,
}

/// The open user tasks and the slowest finished ones.
#[derive(Default)]
pub(super) struct Requests {
    open: IdMap<Open>,
    /// Open user task ids by the async task they run in.
    by_task: IdMap<Vec<u64>>,
    /// The slowest, slowest first (at most `keep`).
    pub slowest: Vec<RequestWaits>,
    keep: usize,
}

impl Requests {
    pub fn new(keep: usize) -> Requests {
        Requests {
            keep,
            ..Requests::default()
        }
    }

    /// A user task began at `time`, inside a poll of `task` (0: outside any poll).
    pub fn begin(
        &mut self,
        names: &dyn Names,
        id: u64,
        name: u64,
        task: u64,
        location: u64,
        time: u64,
    ) {
        let waits = RequestWaits {
            name: string_or_id(names, name),
            id,
            task,
            location: if task == 0 {
                String::new()
            } else {
                location_name(names, location)
            },
            start_ns: time,
            ..RequestWaits::default()
        };
        self.open.insert(
            id,
            Open {
                waits,
                acc: time,
                in_poll: task != 0,
                holders: IdMap::default(),
                task_waits: IdMap::default(),
                blocking: IdMap::default(),
            },
        );
        if task != 0 {
            self.by_task.entry(task).or_default().push(id);
        }
    }

    /// Whether any open user task runs in `task` (the common case, none, is one lookup).
    #[inline]
    pub fn tracks(&self, task: u64) -> bool {
        !self.by_task.is_empty() && self.by_task.contains_key(&task)
    }

    /// `task`'s poll begins at `start`: the time since its last event was a wait. `woken`
    /// says who woke it (from a blocking-pool thread or not) and the wakes behind that one.
    #[allow(clippy::too_many_arguments)]
    pub fn poll_begin(
        &mut self,
        names: &dyn Names,
        workers: &Workers,
        task: u64,
        start: u64,
        wake: Option<WakeRef>,
        sched_wait: Option<u64>,
        woken: WakeChain,
    ) {
        let Some(ids) = self.by_task.get(&task) else {
            return;
        };
        for id in ids {
            let Some(open) = self.open.get_mut(id) else {
                continue;
            };
            let from = open.acc.min(start);
            // Split [from, start) into idle (up to the wake) and runnable (after it).
            let ready = match (wake, sched_wait) {
                (Some(w), _) => w.time.clamp(from, start),
                (None, Some(wait)) => start.saturating_sub(wait).max(from),
                (None, None) => start,
            };
            let idle = ready - from;
            let runnable = start - ready;
            open.waits.wakes_recorded |= wake.is_some_and(|w| !w.spawn);
            match (wake.filter(|w| !w.spawn), woken[0]) {
                (Some(w), Some(by)) if by.blocking => {
                    open.waits.blocking_ns = open.waits.blocking_ns.saturating_add(idle);
                    add_blame(
                        &mut open.blocking,
                        names,
                        w.waker,
                        by.location,
                        idle,
                        Vec::new,
                    );
                }
                (Some(w), Some(by)) if w.waker != 0 && w.waker != task => {
                    add_blame(
                        &mut open.task_waits,
                        names,
                        w.waker,
                        by.location,
                        idle,
                        || chain(names, &woken),
                    );
                }
                _ => open.waits.idle_ns = open.waits.idle_ns.saturating_add(idle),
            }
            open.waits.worker_wait_ns = open.waits.worker_wait_ns.saturating_add(runnable);
            if runnable >= HOLDERS_MIN_NS {
                let (holders, _) = workers.holders(ready, start, u64::MAX);
                for h in holders {
                    add_blame(&mut open.holders, names, h.task, h.location, h.ns, Vec::new);
                }
            }
            open.acc = start;
            open.in_poll = true;
        }
    }

    /// `task`'s poll that began at `start` ended at `end`.
    pub fn poll_end(&mut self, task: u64, start: u64, end: u64) {
        let Some(ids) = self.by_task.get(&task) else {
            return;
        };
        for id in ids {
            if let Some(open) = self.open.get_mut(id) {
                let from = open.acc.max(start).min(end);
                open.waits.running_ns = open.waits.running_ns.saturating_add(end - from);
                open.acc = end;
                open.in_poll = false;
            }
        }
    }

    /// A user task ended (or the window did).
    pub fn end(&mut self, id: u64, end: u64, truncated: bool) {
        let Some(mut open) = self.open.remove(&id) else {
            return;
        };
        let task = open.waits.task;
        if let Some(ids) = self.by_task.get_mut(&task) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_task.remove(&task);
            }
        }
        let from = open.acc.min(end);
        if open.in_poll {
            open.waits.running_ns = open.waits.running_ns.saturating_add(end - from);
        } else {
            open.waits.idle_ns = open.waits.idle_ns.saturating_add(end - from);
        }
        let mut waits = open.waits;
        waits.duration_ns = end.saturating_sub(waits.start_ns);
        waits.unfinished = truncated;
        if waits.task == 0 {
            // No task to follow: the whole time is unexplained.
            waits.idle_ns = waits.duration_ns;
            waits.running_ns = 0;
        }
        waits.worker_holders = sorted(open.holders);
        waits.task_waits = sorted(open.task_waits);
        waits.blocking = sorted(open.blocking);
        if self.keep > 0 {
            crate::summary::build::keep_top(&mut self.slowest, waits, self.keep, |w| w.duration_ns);
        }
    }
}

fn sorted(map: IdMap<Blame>) -> Vec<Blame> {
    let mut out: Vec<Blame> = map.into_values().collect();
    out.sort_by(|a, b| b.ns.cmp(&a.ns).then(a.task.cmp(&b.task)));
    out
}

fn add_blame(
    map: &mut IdMap<Blame>,
    names: &dyn Names,
    task: u64,
    location: u64,
    ns: u64,
    chain: impl FnOnce() -> Vec<String>,
) {
    if ns == 0 {
        return;
    }
    let key = if map.len() >= MAX_BLAME && !map.contains_key(&task) {
        // Full: the rest goes to the smallest key already there, so nothing is lost.
        map.keys().copied().min().unwrap_or(task)
    } else {
        task
    };
    let entry = map.entry(key).or_insert_with(|| Blame {
        task,
        location: location_name(names, location),
        ns: 0,
        chain: chain(),
    });
    entry.ns = entry.ns.saturating_add(ns);
}

/// What the task that woke the request's task had itself been woken by, and so on: one line per
/// link of `woken` (its first entry is the waking task).
fn chain(names: &dyn Names, woken: &WakeChain) -> Vec<String> {
    let mut out = Vec::new();
    for pair in woken.windows(2) {
        let (Some(task), behind) = (pair[0], pair[1]) else {
            break;
        };
        if task.waker == 0 || task.blocking {
            break;
        }
        let who = format!(
            "task {} ({})",
            task.waker,
            location_name(names, task.location)
        );
        let line = match behind {
            None => format!("{who} had no recorded wake before (first poll since its spawn, or wakes not recorded)"),
            Some(b) if b.blocking => format!("{who} had been woken by spawn_blocking work"),
            Some(b) if b.waker == 0 => format!(
                "{who} had been woken by a timer, I/O or from outside the runtime"
            ),
            Some(b) => format!(
                "{who} had been woken by task {} ({})",
                b.waker,
                location_name(names, b.location)
            ),
        };
        out.push(line);
    }
    out
}
