//! Long polls: the polls at or above the threshold, the longest kept with the annotations active
//! on their thread then.

use super::{keep_top, location_name, string_or_id, thread_name};
use crate::merge::Ev;
use crate::merge::Names;
use crate::model::{IdMap, Note, Observer, OpenRegion, PollEnd, PollResult, UserTaskSpan};
use crate::summary::{LongPoll, LongPolls, SummaryOptions, ThreadStack};
use flight_recorder_format::{args, EventKind};

/// The analysis of long polls (see the module's docs).
pub(super) struct LongPollStats {
    options: SummaryOptions,
    long_polls: LongPolls,
    /// The names of the open user tasks, for the annotations.
    user_task_names: IdMap<u64>,
    /// Stacks recorded for each thread (`thread_stack` events, by the stack's thread) since its
    /// last poll ended, at most [`MAX_STACKS`] each.
    pending_stacks: IdMap<Vec<ThreadStack>>,
    /// Stacks taken outside any poll, the latest [`MAX_STACKS`].
    other_stacks: Vec<ThreadStack>,
}

/// Stacks kept per poll (a watchdog captures at most 8 per poll).
const MAX_STACKS: usize = 8;

impl LongPollStats {
    pub(super) fn new(options: SummaryOptions) -> LongPollStats {
        LongPollStats {
            options,
            long_polls: LongPolls {
                threshold_ns: options.long_poll_ns,
                ..LongPolls::default()
            },
            user_task_names: IdMap::default(),
            pending_stacks: IdMap::default(),
            other_stacks: Vec::new(),
        }
    }

    /// The annotations of a poll of the task with uid `task`: the regions open at its end (but
    /// not those begun inside polls of other tasks: a future's region left open across an
    /// `.await` on this thread), then what happened during it.
    fn annotations(
        &self,
        names: &dyn Names,
        task: u64,
        stack: &[OpenRegion],
        notes: &[Note],
    ) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |text: String| {
            if !out.contains(&text) {
                out.push(text);
            }
        };
        let region = |name: u64, user_task: u64| {
            let name = string_or_id(names, name);
            if user_task == 0 {
                format!("region {name}")
            } else {
                match self.user_task_names.get(&user_task) {
                    Some(&task_name) => format!(
                        "region {name} in user task {} #{user_task}",
                        string_or_id(names, task_name)
                    ),
                    None => format!("region {name} in user task #{user_task}"),
                }
            }
        };
        for r in stack.iter().filter(|r| r.task == 0 || r.task == task) {
            push(region(r.name, r.user_task));
        }
        for note in notes {
            match note {
                Note::Region { name, user_task } => push(region(*name, *user_task)),
                Note::Log { category, message } => {
                    push(format!("log {}: {message}", string_or_id(names, *category)))
                }
            }
        }
        out
    }
}

impl Observer for LongPollStats {
    #[inline]
    fn event(&mut self, _names: &dyn Names, ev: &Ev) {
        if ev.kind == EventKind::ThreadStack as u8 {
            let args::ThreadStack {
                thread,
                task,
                stack,
                cause,
            } = ev.args_as();
            let list = self.pending_stacks.entry(thread).or_default();
            if list.len() == MAX_STACKS {
                let old = list.remove(0);
                push_latest(&mut self.other_stacks, old);
            }
            list.push(ThreadStack {
                time_ns: ev.time,
                thread,
                task,
                cause,
                stack,
                frames: Vec::new(),
            });
        }
    }

    fn poll_end(
        &mut self,
        names: &dyn Names,
        poll: &PollEnd,
        stack: &[OpenRegion],
        notes: &[Note],
    ) {
        // Most polls are short and have no stack waiting: nothing is made or dropped for them.
        let long = poll.duration() >= self.options.long_poll_ns;
        let stacks = if self.pending_stacks.is_empty() {
            if !long {
                return;
            }
            Vec::new()
        } else {
            self.stacks_during(poll)
        };
        if long {
            self.long_poll(names, poll, stack, notes, stacks);
        }
    }

    fn user_task_begin(&mut self, _names: &dyn Names, id: u64, _parent: u64, name: u64, _t: u64) {
        self.user_task_names.insert(id, name);
    }

    fn user_task_end(&mut self, _names: &dyn Names, task: &UserTaskSpan) {
        self.user_task_names.remove(&task.id);
    }
}

impl LongPollStats {
    /// Takes the stacks waiting for the poll's thread: those taken during the poll (or of its
    /// task, after it) are returned, the others kept among the stacks taken outside polls.
    #[cold]
    fn stacks_during(&mut self, poll: &PollEnd) -> Vec<ThreadStack> {
        let mut stacks = Vec::new();
        if let Some(list) = self.pending_stacks.remove(&poll.thread) {
            for s in list {
                if poll.owns_stack(s.time_ns, s.task) {
                    stacks.push(s);
                } else {
                    push_latest(&mut self.other_stacks, s);
                }
            }
        }
        stacks
    }

    /// Counts a long poll, and keeps it if it is among the longest.
    #[cold]
    fn long_poll(
        &mut self,
        names: &dyn Names,
        poll: &PollEnd,
        stack: &[OpenRegion],
        notes: &[Note],
        stacks: Vec<ThreadStack>,
    ) {
        let duration = poll.duration();
        self.long_polls.count += 1;
        self.long_polls.total_ns = self.long_polls.total_ns.saturating_add(duration);
        let top = self.options.top;
        let worth = top > 0
            && (self.long_polls.top.len() < top
                || duration > self.long_polls.top[top - 1].duration_ns);
        if worth {
            let long = LongPoll {
                task: poll.task.id,
                location: location_name(names, poll.task.location),
                thread: poll.thread,
                thread_name: thread_name(names, poll.thread),
                start_ns: poll.start,
                duration_ns: duration,
                result: match poll.result {
                    PollResult::Pending => "pending",
                    PollResult::Ready => "ready",
                    PollResult::Unreported => "unreported",
                    PollResult::Truncated => "running at window end",
                }
                .to_string(),
                annotations: self.annotations(names, poll.task.uid, stack, notes),
                stacks,
            };
            keep_top(&mut self.long_polls.top, long, top, |p| p.duration_ns);
        }
    }

    /// The long polls, the longest first, and the stacks taken outside polls (unresolved).
    pub(super) fn finish(mut self) -> (LongPolls, Vec<ThreadStack>) {
        let mut rest: Vec<ThreadStack> = self.pending_stacks.into_values().flatten().collect();
        rest.sort_by_key(|s| s.time_ns);
        for s in rest {
            push_latest(&mut self.other_stacks, s);
        }
        (self.long_polls, self.other_stacks)
    }
}

fn push_latest(list: &mut Vec<ThreadStack>, stack: ThreadStack) {
    if list.len() == MAX_STACKS {
        list.remove(0);
    }
    list.push(stack);
}
