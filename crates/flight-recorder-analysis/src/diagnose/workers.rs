//! The workers as the rules see them: each thread's role, its poll in progress and its recent
//! polls (to name the tasks that held the workers while others waited).

use std::collections::VecDeque;

use crate::model::{role, IdMap};

/// Recent polls kept per thread to find who held it during a wait.
const RECENT_POLLS: usize = 1024;

/// A poll that ended, as the holder search needs it.
#[derive(Clone, Copy, Debug)]
pub(super) struct PastPoll {
    pub start: u64,
    pub end: u64,
    pub task: u64,
    pub location: u64,
}

/// A wake: the waking task (0: none, a timer, I/O or outside the runtime), its spawn location,
/// and whether it came from a blocking-pool thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct WokenBy {
    pub waker: u64,
    pub location: u64,
    pub blocking: bool,
}

/// A wake and the two wakes behind it: who woke the task, what had woken that one for the poll
/// in which it woke the task, and what had woken that one in turn.
pub(super) type WakeChain = [Option<WokenBy>; 3];

/// The poll in progress on a thread.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Current {
    pub task: u64,
    pub location: u64,
    pub start: u64,
    /// Whether a user task is open in it (its polls feed a breakdown).
    pub tracked: bool,
    /// What woke the task for this poll, and what had woken its waker in turn (`None`: no wake
    /// recorded).
    pub woken_by: [Option<WokenBy>; 2],
}

/// One thread.
#[derive(Debug, Default)]
pub(super) struct Worker {
    /// Its id (`None` for an index the model gave a thread this never saw).
    pub id: Option<u64>,
    /// Its role from `runtime_thread` (`None`: not said).
    pub role: Option<u64>,
    /// The poll in progress.
    pub current: Option<Current>,
    /// Its latest polls, oldest first.
    pub recent: VecDeque<PastPoll>,
    /// Whether it polled at all (a worker that never polls is idle, not absent).
    pub polled: bool,
    /// Whether a poll on it ended otherwise than ready: an async task's poll (a blocking-pool
    /// thread runs each `spawn_blocking` closure as one poll that ends ready). Runtimes tag
    /// their threads as blocking-pool threads until they first park, so this tells a worker
    /// that never parked from the pool's threads.
    pub async_polls: bool,
}

impl Worker {
    /// Whether it runs async tasks: a worker by role, or a thread that polls and is not a
    /// blocking-pool or other runtime thread.
    pub fn is_worker(&self) -> bool {
        match self.role {
            Some(r) if r == role::WORKER => true,
            Some(r) if r == role::BLOCKING => self.async_polls,
            Some(_) => false,
            None => self.polled,
        }
    }

    /// Whether it belongs to the blocking pool.
    pub fn is_blocking(&self) -> bool {
        self.role == Some(role::BLOCKING) && !self.async_polls
    }

    /// A poll ended on it.
    pub fn poll_end(&mut self, poll: PastPoll) {
        self.current = None;
        if !self.is_worker() {
            // Only workers' polls can hold up tasks (and the pool's threads come and go).
            return;
        }
        if self.recent.len() == RECENT_POLLS {
            self.recent.pop_front();
        }
        self.recent.push_back(poll);
    }
}

/// All threads, by the model's index of each (threads numbered densely in the order of their
/// first events), so that no thread is looked up by its id again.
#[derive(Default)]
pub(super) struct Workers {
    list: Vec<Worker>,
    /// The time of the latest `worker_park`.
    pub last_park: u64,
    pub parks_seen: bool,
}

impl Workers {
    /// The thread the model numbers `index`, whose id is `id`.
    #[inline]
    pub fn thread(&mut self, index: usize, id: u64) -> &mut Worker {
        if index >= self.list.len() {
            self.grow(index);
        }
        let worker = &mut self.list[index];
        worker.id = Some(id);
        worker
    }

    #[cold]
    fn grow(&mut self, index: usize) {
        self.list.resize_with(index + 1, Worker::default);
    }

    /// Every thread seen, with its id.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Worker)> {
        self.list.iter().filter_map(|w| Some((w.id?, w)))
    }

    /// The time each spawn location held a worker during `[from, to)`: the overlap of the
    /// workers' recent and current polls with it. Returns (location, an example task, ns, of
    /// which in polls of `long_ns` or more) and whether the recent polls covered the whole range.
    pub fn holders(&self, from: u64, to: u64, long_ns: u64) -> (Vec<Holder>, bool) {
        let mut by_location: IdMap<Holder> = IdMap::default();
        let mut covered = true;
        for w in &self.list {
            if !w.is_worker() {
                continue;
            }
            let mut add = |task: u64, location: u64, start: u64, end: u64, long: bool| {
                let overlap = end.min(to).saturating_sub(start.max(from));
                if overlap > 0 {
                    let h = by_location.entry(location).or_insert(Holder {
                        location,
                        task,
                        ns: 0,
                        long_ns: 0,
                    });
                    h.ns = h.ns.saturating_add(overlap);
                    if long {
                        h.long_ns = h.long_ns.saturating_add(overlap);
                    }
                }
            };
            if let Some(c) = w.current {
                add(
                    c.task,
                    c.location,
                    c.start,
                    to,
                    to.saturating_sub(c.start) >= long_ns,
                );
            }
            for p in w.recent.iter().rev() {
                if p.end <= from {
                    break;
                }
                add(
                    p.task,
                    p.location,
                    p.start,
                    p.end,
                    p.end.saturating_sub(p.start) >= long_ns,
                );
            }
            if w.recent.len() == RECENT_POLLS && w.recent.front().is_some_and(|p| p.end > from) {
                covered = false;
            }
        }
        let mut out: Vec<Holder> = by_location.into_values().collect();
        out.sort_by(|a, b| b.ns.cmp(&a.ns).then(a.location.cmp(&b.location)));
        (out, covered)
    }
}

/// The time one spawn location held the workers during a wait.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Holder {
    pub location: u64,
    /// One of its tasks.
    pub task: u64,
    pub ns: u64,
    /// Of which in polls at or above the blocking threshold.
    pub long_ns: u64,
}
