//! Long polls: the polls at or above the threshold, the longest kept with the annotations active
//! on their thread then.

use super::{keep_top, location_name, string_or_id, thread_name};
use crate::merge::Names;
use crate::model::{IdMap, Note, Observer, OpenRegion, PollEnd, PollResult, UserTaskSpan};
use crate::summary::{LongPoll, LongPolls, SummaryOptions};

/// The analysis of long polls (see the module's docs).
pub(super) struct LongPollStats {
    options: SummaryOptions,
    long_polls: LongPolls,
    /// The names of the open user tasks, for the annotations.
    user_task_names: IdMap<u64>,
}

impl LongPollStats {
    pub(super) fn new(options: SummaryOptions) -> LongPollStats {
        LongPollStats {
            options,
            long_polls: LongPolls {
                threshold_ns: options.long_poll_ns,
                ..LongPolls::default()
            },
            user_task_names: IdMap::default(),
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
    fn poll_end(
        &mut self,
        names: &dyn Names,
        poll: &PollEnd,
        stack: &[OpenRegion],
        notes: &[Note],
    ) {
        let duration = poll.duration();
        if duration >= self.options.long_poll_ns {
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
                };
                keep_top(&mut self.long_polls.top, long, top, |p| p.duration_ns);
            }
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
    /// The long polls, the longest first.
    pub(super) fn finish(self) -> LongPolls {
        self.long_polls
    }
}
