//! Who a slow request waited on: the time of each open user task split, as its task's events
//! arrive, into running, waiting for a worker, waiting on other tasks, blocked in
//! `spawn_blocking` and idle; the slowest kept.

use super::workers::Workers;
use super::{Blame, RequestWaits};
use crate::merge::Names;
use crate::model::{IdMap, WakeRef};
use crate::summary::build::{location_name, string_or_id};

/// Distinct causes kept per request and category (the rest are added to the last).
const MAX_BLAME: usize = 8;
/// Links followed from a waking task to what it waited on.
const MAX_CHAIN: usize = 4;
/// A worker wait at least this long gets its holders named.
const HOLDERS_MIN_NS: u64 = 1_000_000;

/// What a live task waited on before its latest poll, for the chains.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct LastWait {
    /// The task that woke it (0: none recorded, a timer, I/O or outside).
    pub waker: u64,
    /// Woken from a blocking-pool thread.
    pub blocking: bool,
    /// How long it was idle before the wake, ns.
    pub idle_ns: u64,
    /// How long it then waited for a worker, ns (0 when unknown).
    pub worker_ns: u64,
}

/// A live task as the chains and blames need it.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TaskInfo {
    pub location: u64,
    /// The end of its latest poll (0: none seen).
    pub last_end: u64,
    pub last: Option<LastWait>,
}

/// A user task still open, with its breakdown so far.
struct Open {
    waits: RequestWaits,
    /// Accounted up to this time.
    acc: u64,
    /// Whether its task is being polled now.
    in_poll: bool,
    /// The latest wake of its task: the waking task, its spawn location and what it had been
    /// waiting on, noted at the wake (the waker may have ended by the next poll).
    woken_by: Option<(u64, u64, Vec<String>)>,
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
                woken_by: None,
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

    /// `task` was woken by `waker` (spawned at `location`), polled on the waking thread now.
    pub fn note_wake(
        &mut self,
        names: &dyn Names,
        tasks: &IdMap<TaskInfo>,
        task: u64,
        waker: u64,
        location: u64,
    ) {
        let Some(ids) = self.by_task.get(&task) else {
            return;
        };
        let chain = chain(names, tasks, waker);
        for id in ids {
            if let Some(open) = self.open.get_mut(id) {
                open.woken_by = Some((waker, location, chain.clone()));
            }
        }
    }

    /// `task`'s poll begins at `start`: the time since its last event was a wait.
    #[allow(clippy::too_many_arguments)]
    pub fn poll_begin(
        &mut self,
        names: &dyn Names,
        workers: &Workers,
        tasks: &IdMap<TaskInfo>,
        task: u64,
        start: u64,
        wake: Option<WakeRef>,
        sched_wait: Option<u64>,
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
            match wake.filter(|w| !w.spawn) {
                Some(w) if workers.is_blocking(w.thread) => {
                    open.waits.blocking_ns = open.waits.blocking_ns.saturating_add(idle);
                    let location = tasks.get(&w.waker).map_or(0, |t| t.location);
                    add_blame(&mut open.blocking, names, w.waker, location, idle, Vec::new);
                }
                Some(w) if w.waker != 0 && w.waker != task => {
                    let noted = open.woken_by.take().filter(|(waker, ..)| *waker == w.waker);
                    let (location, links) = match noted {
                        Some((_, location, links)) => (location, links),
                        None => (
                            tasks.get(&w.waker).map_or(0, |t| t.location),
                            chain(names, tasks, w.waker),
                        ),
                    };
                    add_blame(&mut open.task_waits, names, w.waker, location, idle, || {
                        links
                    });
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

/// What `task` was waiting on before it woke the request's task, and so on.
fn chain(names: &dyn Names, tasks: &IdMap<TaskInfo>, task: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = task;
    let mut seen = Vec::new();
    while out.len() < MAX_CHAIN && !seen.contains(&current) {
        seen.push(current);
        let Some(info) = tasks.get(&current) else {
            break;
        };
        let Some(last) = info.last else {
            break;
        };
        let who = format!("task {current} ({})", location_name(names, info.location));
        let idle = flight_recorder_format::units::format_duration(last.idle_ns);
        let line = if last.blocking {
            format!("{who} waited {idle} on spawn_blocking work")
        } else if last.waker != 0 && last.waker != current {
            let location = tasks.get(&last.waker).map_or(0, |t| t.location);
            format!(
                "{who} waited {idle} on task {} ({})",
                last.waker,
                location_name(names, location)
            )
        } else {
            format!("{who} waited {idle}: idle, no recorded cause (a timer, I/O or outside the runtime)")
        };
        out.push(line);
        if last.worker_ns > 0 {
            if let Some(l) = out.last_mut() {
                l.push_str(&format!(
                    ", then {} for a worker",
                    flight_recorder_format::units::format_duration(last.worker_ns)
                ));
            }
        }
        if last.waker == 0 || last.blocking || last.waker == current {
            break;
        }
        current = last.waker;
    }
    out
}
