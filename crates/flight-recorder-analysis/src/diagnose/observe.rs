//! The rules' observer of the model: what each rule needs from one pass, kept in memory bounded
//! by the live tasks and threads (and a few fixed-size lists), never by the file.

use flight_recorder_format::{args, EventKind};

use super::imbalance::{Slices, Streak};
use super::waits::Requests;
use super::workers::{Current, Holder, PastPoll, WakeChain, WokenBy, Workers};
use super::DiagnoseOptions;
use crate::merge::{Ev, Names};
use crate::model::{
    EdgeStats, IdMap, Note, Observer, OpenRegion, PollBegin, PollEnd, PollResult, TaskDone,
    TaskWoken, UserTaskSpan, WakeRef,
};

/// Delays whose holders are looked up, at most (the longest).
const TOP_DELAYS: usize = 16;
/// The width of a spawn-storm bucket.
pub(super) const STORM_BUCKET_NS: u64 = 100_000_000;
/// Tasks that lost their wake kept, at most.
const MAX_LOST: usize = 1_000;

/// A poll, as a rule's evidence.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct PollAt {
    pub task: u64,
    pub location: u64,
    pub thread: u64,
    pub start: u64,
    pub ns: u64,
}

/// Totals of one kind of long wait or poll, with the worst one.
#[derive(Clone, Debug, Default)]
pub(super) struct Tally {
    pub count: u64,
    pub total: u64,
    pub first: u64,
    pub last: u64,
    pub worst: PollAt,
    /// By spawn location: (count, total ns).
    pub locations: IdMap<(u64, u64)>,
}

impl Tally {
    fn add(&mut self, at: PollAt) {
        if self.count == 0 || at.start < self.first {
            self.first = at.start;
        }
        self.last = self.last.max(at.start.saturating_add(at.ns));
        self.count += 1;
        self.total = self.total.saturating_add(at.ns);
        if at.ns > self.worst.ns {
            self.worst = at;
        }
        let e = self.locations.entry(at.location).or_default();
        e.0 += 1;
        e.1 = e.1.saturating_add(at.ns);
    }

    /// Locations by total time, the most first.
    pub fn top_locations(&self) -> Vec<(u64, u64, u64)> {
        let mut v: Vec<(u64, u64, u64)> = self
            .locations
            .iter()
            .map(|(l, (c, t))| (*l, *c, *t))
            .collect();
        v.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        v
    }
}

/// A spawn storm: adjacent buckets with many spawns.
#[derive(Clone, Debug, Default)]
pub(super) struct Storm {
    pub start: u64,
    pub end: u64,
    pub spawns: u64,
    /// The location that spawned the most, and how many.
    pub location: u64,
    pub location_spawns: u64,
    /// The longest scheduling wait of other locations' tasks during the storm, ns.
    pub others_max_wait: u64,
    /// Their polls that waited at least the scheduling-delay threshold.
    pub others_delayed: u64,
    /// An example of the delayed others: (task, location).
    pub victim: (u64, u64),
    /// The latest first poll of its tasks so far: it drains until then.
    pub drained: u64,
}

/// The open storm bucket.
#[derive(Default)]
struct Bucket {
    index: u64,
    spawns: u64,
    by_location: IdMap<u64>,
}

/// A wake not yet followed by a poll of the task.
#[derive(Clone, Copy, Debug)]
struct WakeNote {
    time: u64,
    /// Who woke it, and the wakes behind that one.
    chain: WakeChain,
}

/// The first wake of each runnable task since its last poll began, by the model's index of the
/// task: a vector rather than a map keyed by task id, as one is noted at a task's wake and taken
/// at its next poll, for nearly every poll.
#[derive(Default)]
struct PendingWakes {
    /// Per task index: the task's id and its wake, while one is pending.
    by_index: Vec<Option<(u64, WakeNote)>>,
}

impl PendingWakes {
    /// Notes `note()` for `task` at `index`, unless a wake of it is pending already (an entry
    /// of another task there is stale: that task is done, and its index was given to `task`).
    #[inline]
    fn note(&mut self, index: usize, task: u64, note: impl FnOnce() -> WakeNote) {
        if index >= self.by_index.len() {
            self.by_index.resize(index + 1, None);
        }
        match &mut self.by_index[index] {
            Some((pending, _)) if *pending == task => {}
            entry => *entry = Some((task, note())),
        }
    }

    /// Takes the wake pending for `task` at `index`, if any.
    #[inline]
    fn take(&mut self, index: usize, task: u64) -> Option<WakeNote> {
        let entry = self.by_index.get_mut(index)?;
        match entry {
            Some((pending, _)) if *pending == task => entry.take().map(|(_, note)| note),
            _ => None,
        }
    }
}

/// A task that lost its wake: (task, location, since, unwakeable).
#[derive(Clone, Copy, Debug)]
pub(super) struct Lost {
    pub task: u64,
    pub location: u64,
    pub since: u64,
    /// Its poll returned pending without keeping its waker (else: woken, never polled).
    pub unwakeable: bool,
}

/// Per spawn location, for the leak rule: spawned in the window, and of those, alive at the
/// end in each quarter of the window by spawn time.
#[derive(Clone, Debug, Default)]
pub(super) struct Spawned {
    pub spawned: u64,
    pub alive_by_quarter: [u64; 4],
    pub example: u64,
}

/// The observer of the rules.
pub(crate) struct DiagnosisStats {
    pub(super) options: DiagnoseOptions,
    pub(super) workers: Workers,
    slices: Slices,
    /// The longest imbalance, found at the end.
    pub(super) imbalance: Option<Streak>,
    pub(super) requests: Requests,
    pub(super) first_time: Option<u64>,
    pub(super) window: Option<(u64, u64)>,
    /// Polls on workers at or above the blocking threshold.
    pub(super) blocking_polls: Tally,
    /// Polls on workers that waited at least the scheduling-delay threshold.
    pub(super) delays: Tally,
    /// The longest delays so far, with who held the workers meanwhile.
    pub(super) top_delays: Vec<(u64, Vec<Holder>)>,
    /// Work on blocking-pool threads that waited at least the queue threshold.
    pub(super) blocking_queue: Tally,
    /// Samples of `blocking_queue_depth` counters above 0: (count, deepest, first, last).
    pub(super) queue_depth: (u64, u64, u64, u64),
    /// Counter name ids: whether each is a blocking queue depth.
    queue_counters: IdMap<bool>,
    bucket: Option<Bucket>,
    /// The storm whose tasks are still being polled for the first time: polls that became
    /// runnable while it drains are delayed by it.
    active_storm: Option<Storm>,
    pub(super) storms: Vec<Storm>,
    /// Wakes not followed by a poll yet, by the model's index of the task.
    pending_wakes: PendingWakes,
    /// Pending polls that kept no waker: task → time.
    unwakeable: IdMap<u64>,
    pub(super) lost: Vec<Lost>,
    pub(super) spawned: IdMap<Spawned>,
    pub(super) wakes: u64,
    pub(super) spawns: u64,
    pub(super) polls: u64,
}

impl DiagnosisStats {
    pub(crate) fn new(options: DiagnoseOptions) -> DiagnosisStats {
        DiagnosisStats {
            options,
            workers: Workers::default(),
            slices: Slices::default(),
            imbalance: None,
            requests: Requests::new(options.waits.max(1).saturating_mul(4)),
            first_time: None,
            window: None,
            blocking_polls: Tally::default(),
            delays: Tally::default(),
            top_delays: Vec::new(),
            blocking_queue: Tally::default(),
            queue_depth: (0, 0, 0, 0),
            queue_counters: IdMap::default(),
            bucket: None,
            active_storm: None,
            storms: Vec::new(),
            pending_wakes: PendingWakes::default(),
            unwakeable: IdMap::default(),
            lost: Vec::new(),
            spawned: IdMap::default(),
            wakes: 0,
            spawns: 0,
            polls: 0,
        }
    }

    /// The storm bucket of `time`, closing the one before when it is over.
    fn bucket(&mut self, time: u64) -> &mut Bucket {
        let index = time / STORM_BUCKET_NS;
        if self.bucket.as_ref().is_some_and(|b| b.index < index) {
            self.close_bucket();
        }
        self.bucket.get_or_insert_with(|| Bucket {
            index,
            ..Bucket::default()
        })
    }

    fn close_bucket(&mut self) {
        let Some(b) = self.bucket.take() else {
            return;
        };
        if b.spawns < self.options.storm_spawns {
            return;
        }
        let (location, location_spawns) = b
            .by_location
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map_or((0, 0), |(l, n)| (*l, *n));
        let start = b.index * STORM_BUCKET_NS;
        match self.active_storm.as_mut() {
            Some(s) if s.location == location && s.end.saturating_add(STORM_BUCKET_NS) >= start => {
                s.end = s.end.max(start.saturating_add(STORM_BUCKET_NS));
                s.spawns += b.spawns;
                s.location_spawns += location_spawns;
            }
            _ => {
                self.end_storm();
                self.active_storm = Some(Storm {
                    start,
                    end: start.saturating_add(STORM_BUCKET_NS),
                    spawns: b.spawns,
                    location,
                    location_spawns,
                    ..Storm::default()
                });
            }
        }
    }

    /// A poll that waited `wait` began: while a storm drains (its tasks are still being polled
    /// for the first time), the other tasks that became runnable meanwhile waited behind it.
    fn storm_poll(&mut self, task: u64, location: u64, time: u64, wait: u64) {
        let Some(s) = self.active_storm.as_mut() else {
            return;
        };
        let ready = time.saturating_sub(wait);
        if location == s.location {
            if ready >= s.start {
                s.drained = s.drained.max(time);
            }
        } else if ready >= s.start && ready <= s.drained.max(s.end) {
            if wait >= self.options.sched_delay_ns {
                s.others_delayed += 1;
            }
            if wait > s.others_max_wait {
                s.others_max_wait = wait;
                s.victim = (task, location);
            }
        }
        if time > s.drained.max(s.end).saturating_add(STORM_BUCKET_NS) {
            self.end_storm();
        }
    }

    fn end_storm(&mut self) {
        if let Some(s) = self.active_storm.take() {
            if self.storms.len() < 64 {
                self.storms.push(s);
            }
        }
    }

    /// A poll on a worker waited `at.ns`, at least the scheduling-delay threshold: counted, and
    /// among the longest, who held the workers meanwhile.
    fn delayed(&mut self, at: PollAt, poll_time: u64) {
        self.delays.add(at);
        let smallest = if self.top_delays.len() < TOP_DELAYS {
            0
        } else {
            self.top_delays.last().map_or(0, |d| d.0)
        };
        if at.ns > smallest {
            let (holders, _) =
                self.workers
                    .holders(at.start, poll_time, self.options.blocking_poll_ns);
            crate::summary::build::keep_top(
                &mut self.top_delays,
                (at.ns, holders),
                TOP_DELAYS,
                |d| d.0,
            );
        }
    }

    /// An event of a kind in `WATCHED`.
    #[inline(never)]
    fn watched_event(&mut self, names: &dyn Names, ev: &Ev, thread_index: usize) {
        const TASK_WAKE: u8 = EventKind::TaskWake as u8;
        const TASK_SPAWN: u8 = EventKind::TaskSpawn as u8;
        const USER_TASK_BEGIN: u8 = EventKind::UserTaskBegin as u8;
        const RUNTIME_THREAD: u8 = EventKind::RuntimeThread as u8;
        const WORKER_PARK: u8 = EventKind::WorkerPark as u8;
        const COUNTER: u8 = EventKind::Counter as u8;
        const PENDING_WITHOUT_WAKER: u8 = EventKind::PendingWithoutWaker as u8;
        match ev.kind {
            // Noted in `task_woken`.
            TASK_WAKE => self.wakes += 1,
            TASK_SPAWN => {
                self.spawns += 1;
                let args::TaskSpawn { location, .. } = ev.args_as();
                let b = self.bucket(ev.time);
                b.spawns += 1;
                *b.by_location.entry(location).or_default() += 1;
            }
            USER_TASK_BEGIN => {
                let args::UserTaskBegin {
                    user_task, name, ..
                } = ev.args_as();
                let current = &mut self.workers.thread(thread_index, ev.thread).current;
                let (task, location) = match current {
                    Some(c) => {
                        c.tracked = true;
                        (c.task, c.location)
                    }
                    None => (0, 0),
                };
                self.requests
                    .begin(names, user_task, name, task, location, ev.time);
            }
            RUNTIME_THREAD => {
                let args::RuntimeThread { role, .. } = ev.args_as();
                self.workers.thread(thread_index, ev.thread).role = Some(role);
            }
            WORKER_PARK => {
                self.workers.parks_seen = true;
                self.workers.last_park = self.workers.last_park.max(ev.time);
            }
            COUNTER => {
                let args::Counter { name, value } = ev.args_as();
                let is_queue = *self.queue_counters.entry(name).or_insert_with(|| {
                    names
                        .string(name)
                        .is_some_and(|n| n.ends_with(".blocking_queue_depth"))
                });
                if is_queue && value > 0 {
                    let q = &mut self.queue_depth;
                    if q.0 == 0 {
                        q.2 = ev.time;
                    }
                    q.0 += 1;
                    q.1 = q.1.max(value);
                    q.3 = ev.time;
                }
            }
            PENDING_WITHOUT_WAKER => {
                let args::PendingWithoutWaker { task } = ev.args_as();
                self.unwakeable.insert(task, ev.time);
            }
            _ => {}
        }
    }

    fn push_lost(&mut self, lost: Lost) {
        if self.lost.len() < MAX_LOST {
            self.lost.push(lost);
        }
    }

    fn note_lost(&mut self, task: u64, task_index: usize, location: u64) {
        let unwakeable = self.unwakeable.remove(&task);
        let woken = self.pending_wakes.take(task_index, task).map(|n| n.time);
        if let Some(since) = unwakeable {
            self.push_lost(Lost {
                task,
                location,
                since,
                unwakeable: true,
            });
        } else if let Some(since) = woken {
            // Lost only if a worker went idle well after the wake: it could have polled it.
            let parked_after = self.workers.parks_seen
                && self.workers.last_park > since.saturating_add(self.options.sched_delay_ns);
            if parked_after {
                self.push_lost(Lost {
                    task,
                    location,
                    since,
                    unwakeable: false,
                });
            }
        }
    }
}

/// Whether the rules look at events of this kind byte beyond the model's spans: a table, so
/// that the common events (polls, regions) cost one load.
static WATCHED: [bool; 256] = {
    let mut watched = [false; 256];
    watched[EventKind::TaskWake as usize] = true;
    watched[EventKind::TaskSpawn as usize] = true;
    watched[EventKind::UserTaskBegin as usize] = true;
    watched[EventKind::RuntimeThread as usize] = true;
    watched[EventKind::WorkerPark as usize] = true;
    watched[EventKind::Counter as usize] = true;
    watched[EventKind::PendingWithoutWaker as usize] = true;
    watched
};

impl Observer for DiagnosisStats {
    #[inline]
    fn event_on_thread(&mut self, names: &dyn Names, ev: &Ev, thread_index: usize) {
        if self.first_time.is_none() {
            self.first_time = Some(ev.time);
            self.slices.set_origin(ev.time);
        }
        if WATCHED[usize::from(ev.kind)] {
            self.watched_event(names, ev, thread_index);
        }
    }

    fn task_woken(&mut self, _names: &dyn Names, woken: &TaskWoken) {
        let WakeRef {
            time,
            thread,
            waker,
            ..
        } = woken.wake;
        // Who woke it, and what had woken the waker: the waker is polled on this thread now,
        // and may have ended by the woken task's next poll.
        let thread = self.workers.thread(woken.thread_index, thread);
        let blocking = thread.is_blocking();
        let (location, behind) = match thread.current {
            Some(c) if c.task == waker => (c.location, c.woken_by),
            _ => (0, [None, None]),
        };
        let by = WokenBy {
            waker,
            location,
            blocking,
        };
        self.pending_wakes
            .note(woken.task_index, woken.task, || WakeNote {
                time,
                chain: [Some(by), behind[0], behind[1]],
            });
    }

    fn poll_begin(&mut self, names: &dyn Names, poll: &PollBegin) {
        self.polls += 1;
        let id = poll.task.id;
        let location = poll.task.location;
        let note = self.pending_wakes.take(poll.task_index, id);
        if !self.unwakeable.is_empty() {
            self.unwakeable.remove(&id);
        }
        if self
            .bucket
            .as_ref()
            .is_some_and(|b| poll.time >= (b.index + 1).saturating_mul(STORM_BUCKET_NS))
        {
            self.close_bucket();
        }
        let chain = note.map_or([None; 3], |n| n.chain);
        let tracked = self.requests.tracks(id);
        let worker = self.workers.thread(poll.thread_index, poll.thread);
        worker.polled = true;
        worker.current = Some(Current {
            task: id,
            location,
            start: poll.time,
            tracked,
            woken_by: [chain[0], chain[1]],
        });
        let blocking = worker.is_blocking();
        if let Some(wait) = poll.sched_wait {
            let at = PollAt {
                task: id,
                location,
                thread: poll.thread,
                start: poll.time.saturating_sub(wait),
                ns: wait,
            };
            if blocking {
                if wait >= self.options.blocking_queue_ns {
                    self.blocking_queue.add(at);
                }
            } else {
                self.slices.waited(poll.thread, poll.time, wait);
                if wait >= self.options.sched_delay_ns {
                    self.delayed(at, poll.time);
                }
                self.storm_poll(id, location, poll.time, wait);
            }
        }
        if tracked {
            self.requests.poll_begin(
                names,
                &self.workers,
                id,
                poll.time,
                poll.wake,
                poll.sched_wait,
                chain,
            );
        }
    }

    fn poll_end(&mut self, _names: &dyn Names, poll: &PollEnd, _: &[OpenRegion], _: &[Note]) {
        let ns = poll.duration();
        let long = ns >= self.options.blocking_poll_ns;
        let worker = self.workers.thread(poll.thread_index, poll.thread);
        let tracked = worker
            .current
            .is_some_and(|c| c.tracked && c.task == poll.task.id);
        if poll.result != PollResult::Ready && poll.result != PollResult::Truncated {
            worker.async_polls = true;
        }
        let blocking = worker.is_blocking();
        worker.poll_end(PastPoll {
            start: poll.start,
            end: poll.end,
            task: poll.task.id,
            location: poll.task.location,
        });
        if !blocking {
            if long {
                self.blocking_polls.add(PollAt {
                    task: poll.task.id,
                    location: poll.task.location,
                    thread: poll.thread,
                    start: poll.start,
                    ns,
                });
            }
            self.slices
                .poll(poll.thread, poll.task.location, poll.start, poll.end, long);
        }
        if tracked {
            self.requests.poll_end(poll.task.id, poll.start, poll.end);
        }
    }

    fn busy(&mut self, thread: u64, start: u64, end: u64) {
        self.slices.busy(thread, start, end);
    }

    fn user_task_end(&mut self, _names: &dyn Names, task: &UserTaskSpan) {
        self.requests.end(task.id, task.end, task.truncated);
    }

    fn task_done(&mut self, _names: &dyn Names, task: &TaskDone) {
        let id = task.task.id;
        let location = task.task.location;
        if !task.ended {
            self.note_lost(id, task.task_index, location);
            if task.spawned {
                let first = self.first_time.unwrap_or(task.start);
                let span = task.end.saturating_sub(first).max(1);
                let quarter =
                    (task.start.saturating_sub(first).saturating_mul(4) / span).min(3) as usize;
                let s = self.spawned.entry(location).or_default();
                s.alive_by_quarter[quarter] += 1;
                if s.example == 0 {
                    s.example = id;
                }
            }
        } else {
            self.pending_wakes.take(task.task_index, id);
            if let Some(since) = self.unwakeable.remove(&id) {
                // Stuck until it was dropped (aborted): still a lost wake.
                if task.end.saturating_sub(since) >= self.options.lost_wake_ns {
                    self.push_lost(Lost {
                        task: id,
                        location,
                        since,
                        unwakeable: true,
                    });
                }
            }
        }
        if task.spawned {
            self.spawned.entry(location).or_default().spawned += 1;
        }
    }

    fn finish(&mut self, _names: &dyn Names, window: Option<(u64, u64)>, _edges: &EdgeStats) {
        self.close_bucket();
        self.end_storm();
        let mut workers: Vec<u64> = self
            .workers
            .iter()
            .filter(|(_, w)| w.is_worker())
            .map(|(id, _)| id)
            .collect();
        workers.sort_unstable();
        self.imbalance = self.slices.longest(&workers, self.options.imbalance_ns);
        self.window = window;
    }
}
