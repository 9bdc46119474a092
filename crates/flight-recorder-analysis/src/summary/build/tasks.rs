//! Tasks: the totals, the tasks by spawn location (run, scheduling wait, idle, polls, poll
//! durations) and the scheduling latency, overall and per location.

use super::location_name;
use crate::dense::DenseIds;
use crate::histogram::Histogram;
use crate::merge::Names;
use crate::model::{IdMap, Note, Observer, OpenRegion, PollBegin, PollEnd, TaskDone};
use crate::summary::{Latency, LocationSummary, TaskTotals};

#[derive(Debug, Default)]
struct LocationAcc {
    tasks: u64,
    alive_at_end: u64,
    polls: u64,
    total: u64,
    run: u64,
    sched_wait: u64,
    idle: u64,
    longest_poll: u64,
    latency: Histogram,
    unknown: u64,
    durations: Histogram,
}

/// The analysis of tasks (see the module's docs).
#[derive(Default)]
pub(super) struct TaskStats {
    tasks: TaskTotals,
    /// Spawn location ids to indices in `locations`.
    location_ids: DenseIds,
    locations: Vec<LocationAcc>,
    latency: Histogram,
    latency_unknown: u64,
}

impl TaskStats {
    /// The spawn location's index in `locations`.
    #[inline]
    fn location(&mut self, id: u64) -> usize {
        let (index, new) = self.location_ids.index(id);
        if new {
            self.locations.push(LocationAcc::default());
        }
        index
    }
}

impl Observer for TaskStats {
    fn poll_begin(&mut self, _names: &dyn Names, poll: &PollBegin) {
        let index = self.location(poll.task.location);
        let location = &mut self.locations[index];
        match poll.sched_wait {
            Some(wait) => {
                self.latency.record(wait);
                location.latency.record(wait);
            }
            None => {
                self.latency_unknown += 1;
                location.unknown += 1;
            }
        }
    }

    fn poll_end(
        &mut self,
        _names: &dyn Names,
        poll: &PollEnd,
        _stack: &[OpenRegion],
        _notes: &[Note],
    ) {
        let index = self.location(poll.task.location);
        self.locations[index].durations.record(poll.duration());
    }

    fn task_done(&mut self, _names: &dyn Names, task: &TaskDone) {
        let t = &mut self.tasks;
        t.tasks += 1;
        t.spawned += u64::from(task.spawned);
        t.ended += u64::from(task.ended);
        t.alive_at_end += u64::from(!task.ended);
        // Saturating: a corrupt file can hold any times (found by fuzzing).
        t.polls = t.polls.saturating_add(task.polls);
        t.run_ns = t.run_ns.saturating_add(task.run);
        t.sched_wait_ns = t.sched_wait_ns.saturating_add(task.sched_wait);
        t.idle_ns = t.idle_ns.saturating_add(task.idle);
        let index = self.location(task.task.location);
        let l = &mut self.locations[index];
        l.tasks += 1;
        l.alive_at_end += u64::from(!task.ended);
        l.polls = l.polls.saturating_add(task.polls);
        l.total = l.total.saturating_add(task.end.saturating_sub(task.start));
        l.run = l.run.saturating_add(task.run);
        l.sched_wait = l.sched_wait.saturating_add(task.sched_wait);
        l.idle = l.idle.saturating_add(task.idle);
        l.longest_poll = l.longest_poll.max(task.longest_poll);
    }
}

impl TaskStats {
    /// The totals, the locations (the most run time first) and the scheduling latency.
    pub(super) fn finish(self, names: &dyn Names) -> (TaskTotals, Vec<LocationSummary>, Latency) {
        // Listed in the order of a hash map of the ids, as before the accumulators were kept by
        // index: the sort below leaves locations of equal names (corrupt files) in that order.
        // Inserted one by one, in the same order, for the same layout (no reservation ahead).
        let mut location_order: IdMap<&LocationAcc> = IdMap::default();
        for (&id, acc) in self.location_ids.ids().iter().zip(&self.locations) {
            location_order.insert(id, acc);
        }
        let mut locations: Vec<LocationSummary> = location_order
            .iter()
            .filter(|(_, l)| l.tasks > 0 || l.latency.count() > 0 || l.unknown > 0)
            .map(|(&id, &l)| LocationSummary {
                location: location_name(names, id),
                tasks: l.tasks,
                alive_at_end: l.alive_at_end,
                polls: l.polls,
                total_ns: l.total,
                run_ns: l.run,
                sched_wait_ns: l.sched_wait,
                idle_ns: l.idle,
                longest_poll_ns: l.longest_poll,
                sched_latency: Latency::from_histogram(&l.latency, l.unknown),
                poll_duration: Latency::from_histogram(&l.durations, 0),
            })
            .collect();
        locations.sort_by(|a, b| {
            b.run_ns
                .cmp(&a.run_ns)
                .then(b.tasks.cmp(&a.tasks))
                .then(a.location.cmp(&b.location))
        });
        let latency = Latency::from_histogram(&self.latency, self.latency_unknown);
        (self.tasks, locations, latency)
    }
}
