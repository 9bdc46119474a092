//! What the timeline exporters (Perfetto and Chrome JSON, built on this module) share: the
//! tracks, the slices on them, kept balanced, and the driver.
//!
//! Tracks: one per thread (its polls, regions, wakes, logs and marks), one per polled task
//! (its polls), one per user task (its life), one per counter. Slices on a thread track nest:
//! the exporter keeps a stack per thread, a poll's end closes what is still open inside it (a
//! region held across an `.await` is cut at the end of the poll), an end that matches nothing
//! open is dropped, and whatever is open at the end of the window is closed there. A wake is an
//! instant on the waking thread, linked by a flow to the poll it caused.

use std::io::{self, Read};

use flight_recorder_format::{args, Error, EventKind, Header, TraceReader};

use crate::drive::drive;
use crate::merge::{Ev, MergeOptions, Names, OrderedEvents};
use crate::model::{
    EdgeStats, IdMap, Note, Observer, OpenRegion, PollBegin, PollEnd, RegionSpan, TaskDone,
    UserTaskSpan,
};
pub use crate::symbols::ResolvedFrame;
use crate::symbols::Symbolizer;

/// A track of the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Track {
    /// A thread (recorder id).
    Thread(u64),
    /// A task incarnation (its uid).
    Task(u64),
    /// A user task (its id).
    UserTask(u64),
    /// A counter (its name's string id).
    Counter(u64),
}

/// A value of a slice's argument.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// An unsigned integer.
    Uint(u64),
    /// Text.
    Text(String),
}

/// An output format of the timeline. Calls come in time order, except wake instants, which
/// come when the poll they caused begins (their time is earlier).
pub trait Format {
    /// The process, once, first.
    fn process(&mut self, header: &Header, start_ns: u64) -> io::Result<()>;
    /// A thread's track, before its first use.
    fn thread_track(&mut self, thread: u64, os_tid: u64, name: &str) -> io::Result<()>;
    /// A task's track, before its first use.
    fn task_track(&mut self, uid: u64, label: &str) -> io::Result<()>;
    /// A user task's track, before its first use.
    fn user_task_track(&mut self, id: u64, label: &str) -> io::Result<()>;
    /// A counter's track, before its first use.
    fn counter_track(&mut self, name_id: u64, name: &str) -> io::Result<()>;
    /// A slice begins.
    #[allow(clippy::too_many_arguments)]
    fn begin(
        &mut self,
        track: Track,
        time: u64,
        name: &str,
        category: &str,
        args: &[(&str, Arg)],
        terminating_flow: Option<u64>,
    ) -> io::Result<()>;
    /// The innermost open slice of the track ends (`name` and `category` repeat its begin's).
    fn end(&mut self, track: Track, time: u64, name: &str, category: &str) -> io::Result<()>;
    /// An instant event, starting a flow when `flow` is given.
    fn instant(
        &mut self,
        track: Track,
        time: u64,
        name: &str,
        category: &str,
        args: &[(&str, Arg)],
        flow: Option<u64>,
    ) -> io::Result<()>;
    /// A counter's value.
    fn counter(&mut self, track: Track, time: u64, name: &str, value: u64) -> io::Result<()>;
    /// A stack of a thread at an instant (a CPU sample, or a stuck worker's stack), frames
    /// innermost first, resolved as far as possible. Ignored by default.
    #[allow(unused_variables)]
    fn stack_sample(
        &mut self,
        thread: u64,
        os_tid: u64,
        time: u64,
        frames: &[ResolvedFrame],
        kind: SampleKind,
    ) -> io::Result<()> {
        Ok(())
    }
    /// The modules of the recorded process, before the first [`Format::stack_sample`] that
    /// names them. Ignored by default.
    #[allow(unused_variables)]
    fn set_modules(&mut self, modules: &[flight_recorder_format::Module]) {}
    /// The end: flush.
    fn finish(&mut self) -> io::Result<()>;
}

/// What a [`Format::stack_sample`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleKind {
    /// A `cpu_sample` event.
    Cpu,
    /// A `thread_stack` event (a stuck worker, a fatal signal).
    Stuck,
}

#[derive(Clone, Debug)]
struct Open {
    name: String,
    category: &'static str,
    /// The task of a poll, the name id of a region.
    key: OpenKey,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpenKey {
    Poll(u64),
    Region(u64, u64),
}

/// The timeline builder: an [`Observer`] that drives a [`Format`].
pub struct Timeline<F: Format> {
    format: F,
    started: bool,
    threads: IdMap<Vec<Open>>,
    tasks: IdMap<String>,
    user_tasks: IdMap<String>,
    counters: IdMap<String>,
    labels: IdMap<std::rc::Rc<str>>,
    error: Option<io::Error>,
    symbolizer: Option<Symbolizer>,
    modules_seen: usize,
}

impl<F: Format> Timeline<F> {
    /// A timeline writing to `format`.
    pub fn new(format: F) -> Timeline<F> {
        Timeline {
            format,
            started: false,
            threads: IdMap::default(),
            tasks: IdMap::default(),
            user_tasks: IdMap::default(),
            counters: IdMap::default(),
            labels: IdMap::default(),
            error: None,
            symbolizer: None,
            modules_seen: 0,
        }
    }

    fn check(&mut self, result: io::Result<()>) {
        if let Err(e) = result {
            if self.error.is_none() {
                self.error = Some(e);
            }
        }
    }

    fn thread(&mut self, names: &dyn Names, thread: u64) {
        if self.threads.contains_key(&thread) {
            return;
        }
        self.threads.insert(thread, Vec::new());
        let (os_tid, name) = match names.thread(thread) {
            Some(t) => (t.os_tid, t.name.clone()),
            None => (thread, String::new()),
        };
        let name = if name.is_empty() {
            format!("thread {thread}")
        } else {
            name
        };
        let r = self.format.thread_track(thread, os_tid, &name);
        self.check(r);
    }

    /// Ends the slices of `thread` from stack position `pos` up.
    fn close_from(&mut self, thread: u64, pos: usize, time: u64) {
        let Some(stack) = self.threads.get_mut(&thread) else {
            return;
        };
        let closing: Vec<Open> = stack.drain(pos..).rev().collect();
        for open in closing {
            let r = self
                .format
                .end(Track::Thread(thread), time, &open.name, open.category);
            self.check(r);
        }
    }

    /// The label of a spawn location (cached: one per location).
    fn label(&mut self, names: &dyn Names, location: u64) -> std::rc::Rc<str> {
        self.labels
            .entry(location)
            .or_insert_with(|| location_label(names, location).into())
            .clone()
    }

    fn stack_event(&mut self, names: &dyn Names, kind: EventKind, ev: &Ev) {
        if ev.arg_count != 4 {
            return;
        }
        let (thread, stack, time, sample) = if kind == EventKind::CpuSample {
            let args::CpuSample {
                thread, stack, age, ..
            } = ev.args_as();
            let age = names.header().clock.converter().units_to_ns(age);
            (thread, stack, ev.time.saturating_sub(age), SampleKind::Cpu)
        } else {
            let args::ThreadStack { thread, stack, .. } = ev.args_as();
            (thread, stack, ev.time, SampleKind::Stuck)
        };
        let Some(tables) = names.tables() else {
            return;
        };
        let Some(addresses) = tables.stack(stack) else {
            return;
        };
        self.thread(names, thread);
        let os_tid = names.thread(thread).map_or(thread, |t| t.os_tid);
        if self.symbolizer.is_none() || self.modules_seen != tables.modules().len() {
            self.modules_seen = tables.modules().len();
            let modules: Vec<_> = tables.modules().values().cloned().collect();
            self.format.set_modules(&modules);
        }
        let frames = self
            .symbolizer
            .get_or_insert_with(Symbolizer::with_default_binaries)
            .resolve_stack(tables, addresses);
        let r = self
            .format
            .stack_sample(thread, os_tid, time, &frames, sample);
        self.check(r);
    }

    /// The format and the first write error, if any.
    pub fn into_parts(self) -> (F, Option<io::Error>) {
        (self.format, self.error)
    }
}

fn location_label(names: &dyn Names, id: u64) -> String {
    if id == 0 {
        return "unknown location".to_string();
    }
    match names.location(id) {
        Some(l) => format!("{}:{}:{}", l.file, l.line, l.column),
        None => format!("location #{id}"),
    }
}

fn string(names: &dyn Names, id: u64) -> String {
    names
        .string(id)
        .map_or_else(|| format!("#{id}"), str::to_string)
}

impl<F: Format> Observer for Timeline<F> {
    fn event(&mut self, names: &dyn Names, ev: &Ev) {
        if !self.started {
            self.started = true;
            let r = self.format.process(names_header(names), ev.time);
            self.check(r);
        }
        self.thread(names, ev.thread);
        let Some(kind) = EventKind::from_byte(ev.kind) else {
            return;
        };
        let track = Track::Thread(ev.thread);
        let r = match kind {
            EventKind::Log => {
                let message = ev
                    .payload
                    .as_deref()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .unwrap_or_default();
                let args::Log {
                    category,
                    user_task,
                } = ev.args_as();
                let mut args = vec![("message", Arg::Text(message))];
                if user_task != 0 {
                    args.push(("user_task", Arg::Uint(user_task)));
                }
                let name = format!("log {}", string(names, category));
                self.format
                    .instant(track, ev.time, &name, "log", &args, None)
            }
            EventKind::Mark => {
                let args::Mark { name, .. } = ev.args_as();
                let name = string(names, name);
                self.format
                    .instant(track, ev.time, &name, "mark", &[], None)
            }
            EventKind::Counter => {
                let args::Counter { name: id, value } = ev.args_as();
                if !self.counters.contains_key(&id) {
                    let name = string(names, id);
                    let r = self.format.counter_track(id, &name);
                    self.check(r);
                    self.counters.insert(id, name);
                }
                let name = self.counters[&id].clone();
                self.format
                    .counter(Track::Counter(id), ev.time, &name, value)
            }
            EventKind::ThreadStack | EventKind::CpuSample => {
                self.stack_event(names, kind, ev);
                Ok(())
            }
            _ => Ok(()),
        };
        self.check(r);
    }

    fn poll_begin(&mut self, names: &dyn Names, poll: &PollBegin) {
        let name = self.label(names, poll.task.location);
        if let Some(wake) = poll.wake {
            self.thread(names, wake.thread);
            let what = if wake.spawn { "spawn" } else { "wake" };
            let mut args = vec![("task", Arg::Uint(poll.task.id))];
            if wake.waker != 0 {
                args.push((
                    if wake.spawn { "parent" } else { "waker" },
                    Arg::Uint(wake.waker),
                ));
            }
            let r = self.format.instant(
                Track::Thread(wake.thread),
                wake.time,
                what,
                what,
                &args,
                Some(wake.flow),
            );
            self.check(r);
        }
        let mut args = vec![("task", Arg::Uint(poll.task.id))];
        if let Some(wait) = poll.sched_wait {
            args.push(("sched_wait_ns", Arg::Uint(wait)));
        }
        let flow = poll.wake.map(|w| w.flow);
        let r = self.format.begin(
            Track::Thread(poll.thread),
            poll.time,
            &name,
            "poll",
            &args,
            flow,
        );
        self.check(r);
        self.threads.entry(poll.thread).or_default().push(Open {
            name: name.to_string(),
            category: "poll",
            key: OpenKey::Poll(poll.task.id),
        });
        if poll.task.uid != 0 {
            if !self.tasks.contains_key(&poll.task.uid) {
                let label = format!("task {} {name}", poll.task.id);
                let r = self.format.task_track(poll.task.uid, &label);
                self.check(r);
                self.tasks.insert(poll.task.uid, label);
            }
            let r = self.format.begin(
                Track::Task(poll.task.uid),
                poll.time,
                &name,
                "poll",
                &args[..1],
                None,
            );
            self.check(r);
        }
    }

    fn poll_end(
        &mut self,
        names: &dyn Names,
        poll: &PollEnd,
        _stack: &[OpenRegion],
        _notes: &[Note],
    ) {
        let key = OpenKey::Poll(poll.task.id);
        if let Some(pos) = self
            .threads
            .get(&poll.thread)
            .and_then(|s| s.iter().rposition(|o| o.key == key))
        {
            self.close_from(poll.thread, pos, poll.end);
        }
        if poll.task.uid != 0 && self.tasks.contains_key(&poll.task.uid) {
            let name = self.label(names, poll.task.location);
            let r = self
                .format
                .end(Track::Task(poll.task.uid), poll.end, &name, "poll");
            self.check(r);
        }
    }

    fn task_done(&mut self, _names: &dyn Names, task: &TaskDone) {
        self.tasks.remove(&task.task.uid);
    }

    fn region_begin(&mut self, names: &dyn Names, region: &OpenRegion) {
        let name = string(names, region.name);
        let args: Vec<(&str, Arg)> = if region.user_task != 0 {
            vec![("user_task", Arg::Uint(region.user_task))]
        } else {
            Vec::new()
        };
        let r = self.format.begin(
            Track::Thread(region.thread),
            region.begin,
            &name,
            "region",
            &args,
            None,
        );
        self.check(r);
        self.threads.entry(region.thread).or_default().push(Open {
            name,
            category: "region",
            key: OpenKey::Region(region.name, region.begin),
        });
    }

    fn region_end(&mut self, _names: &dyn Names, region: &RegionSpan) {
        let key = OpenKey::Region(region.name, region.begin);
        if let Some(pos) = self
            .threads
            .get(&region.thread)
            .and_then(|s| s.iter().rposition(|o| o.key == key))
        {
            self.close_from(region.thread, pos, region.end);
        }
    }

    fn user_task_begin(&mut self, names: &dyn Names, id: u64, parent: u64, name: u64, time: u64) {
        let name = string(names, name);
        let label = format!("user task {id} {name}");
        if !self.user_tasks.contains_key(&id) {
            let r = self.format.user_task_track(id, &label);
            self.check(r);
        }
        let mut args = vec![("id", Arg::Uint(id))];
        if parent != 0 {
            args.push(("parent", Arg::Uint(parent)));
        }
        let r = self
            .format
            .begin(Track::UserTask(id), time, &name, "user_task", &args, None);
        self.check(r);
        self.user_tasks.insert(id, name);
    }

    fn user_task_end(&mut self, _names: &dyn Names, task: &UserTaskSpan) {
        if let Some(name) = self.user_tasks.remove(&task.id) {
            let r = self
                .format
                .end(Track::UserTask(task.id), task.end, &name, "user_task");
            self.check(r);
        }
    }

    fn finish(&mut self, _names: &dyn Names, window: Option<(u64, u64)>, _edges: &EdgeStats) {
        let end = window.map_or(0, |w| w.1);
        // In thread order, so that the same trace always gives the same file.
        let mut threads: Vec<u64> = self.threads.keys().copied().collect();
        threads.sort_unstable();
        for thread in threads {
            self.close_from(thread, 0, end);
        }
        let r = self.format.finish();
        self.check(r);
    }
}

/// The header, through the names (the reader is behind `dyn Names`).
fn names_header(names: &dyn Names) -> &Header {
    names.header()
}

/// Why an export failed.
#[derive(Debug)]
pub enum ExportError {
    /// The trace is damaged; everything before the damage was exported (and the output is
    /// complete and valid).
    Trace(Error),
    /// The output could not be written.
    Output(io::Error),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Trace(e) => e.fmt(f),
            ExportError::Output(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl std::error::Error for ExportError {}

/// Exports the rest of `reader`'s events through `format`, calling `progress` with the bytes
/// read now and then.
pub fn export<R: Read, F: Format>(
    reader: TraceReader<R>,
    format: F,
    merge: MergeOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<F, ExportError> {
    let mut events = OrderedEvents::new(reader, merge);
    let mut timeline = Timeline::new(format);
    let error = drive(&mut events, &mut timeline, progress);
    let (format, write_error) = timeline.into_parts();
    if let Some(e) = write_error {
        return Err(ExportError::Output(e));
    }
    match error {
        Some(e) => Err(ExportError::Trace(e)),
        None => Ok(format),
    }
}
