//! Where CPU time went: `cpu_sample` events counted per spawn location and stack. A sample is
//! attributed to the poll running on its thread at the sample's instant (the event's time minus
//! its `age`), or to the poll of the task it names; samples of no poll count under
//! `outside polls`. Stacks are resolved at the end ([`super::build`]).

use std::collections::VecDeque;

use flight_recorder_format::{args, EventKind, TimeConverter};

use crate::ids::IdMap;
use crate::merge::{Ev, Names};
use crate::model::{Note, Observer, OpenRegion, PollEnd};

/// The location key of samples outside any poll.
pub(super) const OUTSIDE_POLLS: u64 = u64::MAX;

/// Polls remembered per thread, to attribute samples that arrive late (in batches).
const RECENT_POLLS: usize = 64;

#[derive(Default)]
struct ThreadPolls {
    /// `(start, end, task, location)` of its latest polls, oldest first.
    recent: VecDeque<(u64, u64, u64, u64)>,
    /// Samples `(time, task, stack)` taken after its latest poll ended.
    pending: Vec<(u64, u64, u64)>,
}

/// The analysis of CPU samples (see the module's docs).
#[derive(Default)]
pub(super) struct CpuStats {
    converter: Option<TimeConverter>,
    threads: IdMap<ThreadPolls>,
    /// Samples per location id and stack id.
    counts: IdMap<IdMap<u64>>,
    samples: u64,
    /// Samples naming a task whose poll is not remembered (taken before the first sample was
    /// seen): attributed at that task's next poll end, by its stack id.
    by_task: IdMap<Vec<u64>>,
}

impl CpuStats {
    fn attribute(&mut self, location: u64, task: u64, stack: u64) {
        if location == OUTSIDE_POLLS && task != 0 {
            self.by_task.entry(task).or_default().push(stack);
            return;
        }
        *self
            .counts
            .entry(location)
            .or_default()
            .entry(stack)
            .or_default() += 1;
    }

    /// Samples per location id (`OUTSIDE_POLLS` for none) and stack id.
    pub(super) fn finish(mut self) -> IdMap<IdMap<u64>> {
        let pending: Vec<(u64, u64, u64)> = self
            .threads
            .values_mut()
            .flat_map(|t| {
                let recent = &t.recent;
                t.pending
                    .drain(..)
                    .map(|(time, task, stack)| (find(recent, time, task), task, stack))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (location, task, stack) in pending {
            self.attribute(location, task, stack);
        }
        for stack in std::mem::take(&mut self.by_task).into_values().flatten() {
            self.attribute(OUTSIDE_POLLS, 0, stack);
        }
        self.counts
    }
}

fn find(recent: &VecDeque<(u64, u64, u64, u64)>, time: u64, task: u64) -> u64 {
    recent
        .iter()
        .rev()
        .find(|&&(start, end, _, _)| (start..=end).contains(&time))
        .or_else(|| recent.iter().rev().find(|p| task != 0 && p.2 == task))
        .map_or(OUTSIDE_POLLS, |p| p.3)
}

impl Observer for CpuStats {
    #[inline]
    fn event(&mut self, names: &dyn Names, ev: &Ev) {
        if ev.kind == EventKind::CpuSample as u8 {
            let args::CpuSample {
                thread,
                stack,
                age,
                task,
            } = ev.args_as();
            let converter = self
                .converter
                .get_or_insert_with(|| names.header().clock.converter());
            let time = ev.time.saturating_sub(converter.units_to_ns(age));
            self.samples += 1;
            let polls = self.threads.entry(thread).or_default();
            match polls.recent.back() {
                Some(&(_, end, _, _)) if time <= end => {
                    let location = find(&polls.recent, time, task);
                    self.attribute(location, task, stack);
                }
                _ => polls.pending.push((time, task, stack)),
            }
        }
    }

    fn poll_end(&mut self, _names: &dyn Names, poll: &PollEnd, _: &[OpenRegion], _: &[Note]) {
        if self.samples == 0 {
            // No samples yet: nothing to attribute, and files without samples pay nothing. (A
            // batch's samples refer back at most to polls after the previous batch.)
            return;
        }
        if !self.by_task.is_empty() {
            if let Some(stacks) = self.by_task.remove(&poll.task.id) {
                for stack in stacks {
                    self.attribute(poll.task.location, 0, stack);
                }
            }
        }
        let polls = self.threads.entry(poll.thread).or_default();
        if polls.recent.len() == RECENT_POLLS {
            polls.recent.pop_front();
        }
        polls
            .recent
            .push_back((poll.start, poll.end, poll.task.id, poll.task.location));
        if polls.pending.is_empty() {
            return;
        }
        let mut done = Vec::new();
        polls.pending.retain(|&(time, task, stack)| {
            if time > poll.end {
                return true;
            }
            done.push((find(&polls.recent, time, task), task, stack));
            false
        });
        for (location, task, stack) in done {
            self.attribute(location, task, stack);
        }
    }
}
