//! What the timeline exporters (Perfetto and Chrome JSON, built on this module) share: the
//! tracks, the slices on them, kept balanced, and the driver.
//!
//! Tracks: one per thread (its polls, regions, wakes, logs and marks), one per polled task
//! (its polls, without arguments: the track's name gives the task), one per user task (its
//! life), one per counter. Slices on a thread track nest:
//! the exporter keeps a stack per thread, a poll's end closes what is still open inside it (a
//! region held across an `.await` is cut at the end of the poll), an end that matches nothing
//! open is dropped, and whatever is open at the end of the window is closed there. A wake is an
//! instant on the waking thread, linked by a flow to the poll it caused; its `waker` argument
//! (a spawn's `parent`) is left out when the wake sits in a poll of the waker on that thread,
//! whose slice names it.
//!
//! [`export`] reads the file on the calling thread and drives the model, the timeline and the
//! format on a second one ([`drive_pipelined`]).

use std::collections::HashMap;
use std::io::{self, Read};

use flight_recorder_format::{args, Error, EventKind, Header, TraceReader};

use crate::dense::DenseIds;
use crate::drive::drive_pipelined;
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

/// The name of a slice or instant: its text, and the number the timeline gives that text (the
/// same text always has the same number; numbers count from 0 in order of first use), so that a
/// format can intern names without hashing them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Name<'a> {
    /// The number of the text, from 0.
    pub id: u32,
    /// The text.
    pub text: &'a str,
}

/// The category of a slice or instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// A poll (on a thread's track and on its task's).
    Poll,
    /// A region.
    Region,
    /// A user task's life.
    UserTask,
    /// A wake, linked by a flow to the poll it caused.
    Wake,
    /// A spawn, linked by a flow to the task's first poll.
    Spawn,
    /// A log message.
    Log,
    /// A mark.
    Mark,
}

impl Category {
    /// Every category, in the order of [`Category::index`].
    pub const ALL: [Category; 7] = [
        Category::Poll,
        Category::Region,
        Category::UserTask,
        Category::Wake,
        Category::Spawn,
        Category::Log,
        Category::Mark,
    ];

    /// The category's text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Category::Poll => "poll",
            Category::Region => "region",
            Category::UserTask => "user_task",
            Category::Wake => "wake",
            Category::Spawn => "spawn",
            Category::Log => "log",
            Category::Mark => "mark",
        }
    }

    /// The category's position in [`Category::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The name of a slice's or instant's argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgName {
    /// The task (its runtime id).
    Task,
    /// How long the task waited to be polled, ns.
    SchedWaitNs,
    /// The task that woke the polled task.
    Waker,
    /// The task that spawned the polled task, or a user task's parent.
    Parent,
    /// A log's message.
    Message,
    /// The user task of a region or log.
    UserTask,
    /// A user task's id.
    Id,
}

impl ArgName {
    /// Every argument name, in the order of [`ArgName::index`].
    pub const ALL: [ArgName; 7] = [
        ArgName::Task,
        ArgName::SchedWaitNs,
        ArgName::Waker,
        ArgName::Parent,
        ArgName::Message,
        ArgName::UserTask,
        ArgName::Id,
    ];

    /// The argument's name as written.
    pub const fn as_str(self) -> &'static str {
        match self {
            ArgName::Task => "task",
            ArgName::SchedWaitNs => "sched_wait_ns",
            ArgName::Waker => "waker",
            ArgName::Parent => "parent",
            ArgName::Message => "message",
            ArgName::UserTask => "user_task",
            ArgName::Id => "id",
        }
    }

    /// The name's position in [`ArgName::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A value of a slice's argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg<'a> {
    /// An unsigned integer.
    Uint(u64),
    /// Text.
    Text(&'a str),
}

/// An output format of the timeline. Calls come in time order, except wake and spawn instants
/// ([`Category::Wake`], [`Category::Spawn`]), which come when the poll they caused begins (their
/// time is earlier).
pub trait Format {
    /// The process, once, first.
    fn process(&mut self, header: &Header, start_ns: u64) -> io::Result<()>;
    /// A thread's track, before its first use.
    fn thread_track(&mut self, thread: u64, os_tid: u64, name: &str) -> io::Result<()>;
    /// A task's track, before its first use: the incarnation `uid` of the task `task`, spawned
    /// at `location` (its label).
    fn task_track(&mut self, uid: u64, task: u64, location: Name<'_>) -> io::Result<()>;
    /// A user task's track, before its first use.
    fn user_task_track(&mut self, id: u64, label: &str) -> io::Result<()>;
    /// A counter's track, before its first use.
    fn counter_track(&mut self, name_id: u64, name: &str) -> io::Result<()>;
    /// A slice begins.
    fn begin(
        &mut self,
        track: Track,
        time: u64,
        name: Name<'_>,
        category: Category,
        args: &[(ArgName, Arg<'_>)],
        terminating_flow: Option<u64>,
    ) -> io::Result<()>;
    /// The innermost open slice of the track ends (`name` and `category` repeat its begin's).
    fn end(
        &mut self,
        track: Track,
        time: u64,
        name: Name<'_>,
        category: Category,
    ) -> io::Result<()>;
    /// An instant event, starting a flow when `flow` is given.
    fn instant(
        &mut self,
        track: Track,
        time: u64,
        name: Name<'_>,
        category: Category,
        args: &[(ArgName, Arg<'_>)],
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

#[derive(Clone, Copy, Debug)]
struct Open {
    /// The slice's name (its number in the timeline's names).
    name: u32,
    category: Category,
    /// The task of a poll, the name id of a region.
    key: OpenKey,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpenKey {
    Poll(u64),
    Region(u64, u64),
}

/// The texts of slice names, numbered in order of first use.
#[derive(Default)]
struct NameTable {
    texts: Vec<Box<str>>,
    ids: HashMap<Box<str>, u32>,
}

impl NameTable {
    fn intern(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.ids.get(text) {
            return id;
        }
        let id = self.texts.len() as u32;
        self.texts.push(text.into());
        self.ids.insert(text.into(), id);
        id
    }

    fn get(&self, id: u32) -> Name<'_> {
        Name {
            id,
            text: &self.texts[id as usize],
        }
    }
}

/// A thread's track: its recorder id and the slices open on it, innermost last.
struct ThreadTrack {
    id: u64,
    stack: Vec<Open>,
}

/// Keeps the first write error.
fn note(error: &mut Option<io::Error>, result: io::Result<()>) {
    if let Err(e) = result {
        if error.is_none() {
            *error = Some(e);
        }
    }
}

/// The number given to the names "wake" and "spawn" (the first two).
const WAKE_NAME: u32 = 0;
const SPAWN_NAME: u32 = 1;
/// The number of the name "poll": the name of the poll slices on a task's track, whose own name
/// says which task and spawn location they are of. Named by location, each poll would count
/// twice under it where slices are added up by name, and a Chrome JSON file, which cannot intern
/// a name, would repeat the location in every line of a task's track.
const POLL_NAME: u32 = 2;

/// The timeline builder: an [`Observer`] that drives a [`Format`].
pub struct Timeline<F: Format> {
    format: F,
    started: bool,
    names: NameTable,
    thread_ids: DenseIds,
    threads: Vec<ThreadTrack>,
    /// Tasks with a track, by uid (a bit each; uids count from 1).
    task_tracks: Vec<u64>,
    user_tasks: IdMap<u32>,
    counters: IdMap<Box<str>>,
    /// Spawn locations by dense index, and the number of each one's label.
    location_ids: DenseIds,
    location_names: Vec<u32>,
    /// Names of strings (region names, marks) and of log categories, once resolved.
    strings: IdMap<u32>,
    log_names: IdMap<u32>,
    error: Option<io::Error>,
    symbolizer: Option<Symbolizer>,
    modules_seen: usize,
}

impl<F: Format> Timeline<F> {
    /// A timeline writing to `format`.
    pub fn new(format: F) -> Timeline<F> {
        let mut names = NameTable::default();
        names.intern("wake");
        names.intern("spawn");
        names.intern("poll");
        Timeline {
            format,
            started: false,
            names,
            thread_ids: DenseIds::default(),
            threads: Vec::new(),
            task_tracks: Vec::new(),
            user_tasks: IdMap::default(),
            counters: IdMap::default(),
            location_ids: DenseIds::default(),
            location_names: Vec::new(),
            strings: IdMap::default(),
            log_names: IdMap::default(),
            error: None,
            symbolizer: None,
            modules_seen: 0,
        }
    }

    fn check(&mut self, result: io::Result<()>) {
        note(&mut self.error, result);
    }

    /// The index of `thread`'s track, declared to the format on first use.
    #[inline]
    fn thread(&mut self, names: &dyn Names, thread: u64) -> usize {
        let (index, new) = self.thread_ids.index(thread);
        if new {
            self.new_thread(names, thread);
        }
        index
    }

    #[cold]
    #[inline(never)]
    fn new_thread(&mut self, names: &dyn Names, thread: u64) {
        self.threads.push(ThreadTrack {
            id: thread,
            stack: Vec::new(),
        });
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

    /// Ends the slices of the thread track `index` from stack position `pos` up, innermost
    /// first.
    fn close_from(&mut self, index: usize, pos: usize, time: u64) {
        let ThreadTrack { id, stack } = &mut self.threads[index];
        while stack.len() > pos {
            let Some(open) = stack.pop() else { break };
            let r = self.format.end(
                Track::Thread(*id),
                time,
                self.names.get(open.name),
                open.category,
            );
            note(&mut self.error, r);
        }
    }

    /// The name of a spawn location's label (one per location).
    #[inline]
    fn label(&mut self, names: &dyn Names, location: u64) -> u32 {
        let (index, new) = self.location_ids.index(location);
        if new {
            let id = self.names.intern(&location_label(names, location));
            self.location_names.push(id);
        }
        self.location_names[index]
    }

    /// The name of a string id: cached once the string is known.
    fn string_name(&mut self, names: &dyn Names, id: u64) -> u32 {
        if let Some(&name) = self.strings.get(&id) {
            return name;
        }
        match names.string(id) {
            Some(text) => {
                let name = self.names.intern(text);
                self.strings.insert(id, name);
                name
            }
            None => self.names.intern(&format!("#{id}")),
        }
    }

    fn log_name(&mut self, names: &dyn Names, category: u64) -> u32 {
        if let Some(&name) = self.log_names.get(&category) {
            return name;
        }
        match names.string(category) {
            Some(text) => {
                let name = self.names.intern(&format!("log {text}"));
                self.log_names.insert(category, name);
                name
            }
            None => self.names.intern(&format!("log #{category}")),
        }
    }

    fn has_task_track(&self, uid: u64) -> bool {
        let word = (uid / 64) as usize;
        word < self.task_tracks.len() && self.task_tracks[word] & (1 << (uid % 64)) != 0
    }

    fn set_task_track(&mut self, uid: u64, on: bool) {
        let word = (uid / 64) as usize;
        if word >= self.task_tracks.len() {
            if !on {
                return;
            }
            self.task_tracks.resize(word + 1, 0);
        }
        if on {
            self.task_tracks[word] |= 1 << (uid % 64);
        } else {
            self.task_tracks[word] &= !(1 << (uid % 64));
        }
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

    #[cold]
    #[inline(never)]
    fn other_event(&mut self, names: &dyn Names, kind: EventKind, ev: &Ev) {
        let track = Track::Thread(ev.thread);
        let r = match kind {
            EventKind::Log => {
                let message = ev
                    .payload
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                let args::Log {
                    category,
                    user_task,
                } = ev.args_as();
                let args = [
                    (ArgName::Message, Arg::Text(&message)),
                    (ArgName::UserTask, Arg::Uint(user_task)),
                ];
                let n = if user_task != 0 { 2 } else { 1 };
                let name = self.log_name(names, category);
                self.format.instant(
                    track,
                    ev.time,
                    self.names.get(name),
                    Category::Log,
                    &args[..n],
                    None,
                )
            }
            EventKind::Mark => {
                let args::Mark { name, .. } = ev.args_as();
                let name = self.string_name(names, name);
                self.format.instant(
                    track,
                    ev.time,
                    self.names.get(name),
                    Category::Mark,
                    &[],
                    None,
                )
            }
            EventKind::Counter => {
                let args::Counter { name: id, value } = ev.args_as();
                if !self.counters.contains_key(&id) {
                    let name = string(names, id);
                    let r = self.format.counter_track(id, &name);
                    self.check(r);
                    self.counters.insert(id, name.into());
                }
                let name = &self.counters[&id];
                self.format
                    .counter(Track::Counter(id), ev.time, name, value)
            }
            EventKind::ThreadStack | EventKind::CpuSample => {
                self.stack_event(names, kind, ev);
                Ok(())
            }
            _ => Ok(()),
        };
        self.check(r);
    }

    /// The format and the first write error, if any.
    pub fn into_parts(self) -> (F, Option<io::Error>) {
        (self.format, self.error)
    }
}

/// A spawn location as the summary names it (a dependency's file from its crate's directory:
/// `axum-0.8.9/src/serve/mod.rs:389:5`), which a slice of every poll repeats in formats that
/// cannot intern it.
fn location_label(names: &dyn Names, id: u64) -> String {
    if id == 0 {
        return "unknown location".to_string();
    }
    crate::summary::build::location_name(names, id)
}

fn string(names: &dyn Names, id: u64) -> String {
    names
        .string(id)
        .map_or_else(|| format!("#{id}"), str::to_string)
}

impl<F: Format> Observer for Timeline<F> {
    #[inline]
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
        if matches!(
            kind,
            EventKind::Log
                | EventKind::Mark
                | EventKind::Counter
                | EventKind::ThreadStack
                | EventKind::CpuSample
        ) {
            self.other_event(names, kind, ev);
        }
    }

    fn poll_begin(&mut self, names: &dyn Names, poll: &PollBegin) {
        let name = self.label(names, poll.task.location);
        let task = (ArgName::Task, Arg::Uint(poll.task.id));
        if let Some(wake) = poll.wake {
            self.thread(names, wake.thread);
            let (what, category, by) = if wake.spawn {
                (SPAWN_NAME, Category::Spawn, ArgName::Parent)
            } else {
                (WAKE_NAME, Category::Wake, ArgName::Waker)
            };
            // The waker is named by the poll the wake sits in, when there is one on its track.
            let args = [task, (by, Arg::Uint(wake.waker))];
            let n = if wake.waker != 0 && !wake.in_waker_poll {
                2
            } else {
                1
            };
            let r = self.format.instant(
                Track::Thread(wake.thread),
                wake.time,
                self.names.get(what),
                category,
                &args[..n],
                Some(wake.flow),
            );
            self.check(r);
        }
        let args = [
            task,
            (
                ArgName::SchedWaitNs,
                Arg::Uint(poll.sched_wait.unwrap_or(0)),
            ),
        ];
        let n = if poll.sched_wait.is_some() { 2 } else { 1 };
        let flow = poll.wake.map(|w| w.flow);
        let r = self.format.begin(
            Track::Thread(poll.thread),
            poll.time,
            self.names.get(name),
            Category::Poll,
            &args[..n],
            flow,
        );
        self.check(r);
        let index = self.thread(names, poll.thread);
        self.threads[index].stack.push(Open {
            name,
            category: Category::Poll,
            key: OpenKey::Poll(poll.task.id),
        });
        let uid = poll.task.uid;
        if uid != 0 {
            if !self.has_task_track(uid) {
                let r = self
                    .format
                    .task_track(uid, poll.task.id, self.names.get(name));
                self.check(r);
                self.set_task_track(uid, true);
            }
            // No arguments and no location: the track says which task it is, and where it was
            // spawned.
            let r = self.format.begin(
                Track::Task(uid),
                poll.time,
                self.names.get(POLL_NAME),
                Category::Poll,
                &[],
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
        let index = self.thread(names, poll.thread);
        if let Some(pos) = self.threads[index].stack.iter().rposition(|o| o.key == key) {
            self.close_from(index, pos, poll.end);
        }
        let uid = poll.task.uid;
        if uid != 0 && self.has_task_track(uid) {
            let r = self.format.end(
                Track::Task(uid),
                poll.end,
                self.names.get(POLL_NAME),
                Category::Poll,
            );
            self.check(r);
        }
    }

    fn task_done(&mut self, _names: &dyn Names, task: &TaskDone) {
        self.set_task_track(task.task.uid, false);
    }

    fn region_begin(&mut self, names: &dyn Names, region: &OpenRegion) {
        let name = self.string_name(names, region.name);
        let args = [(ArgName::UserTask, Arg::Uint(region.user_task))];
        let n = usize::from(region.user_task != 0);
        let r = self.format.begin(
            Track::Thread(region.thread),
            region.begin,
            self.names.get(name),
            Category::Region,
            &args[..n],
            None,
        );
        self.check(r);
        let index = self.thread(names, region.thread);
        self.threads[index].stack.push(Open {
            name,
            category: Category::Region,
            key: OpenKey::Region(region.name, region.begin),
        });
    }

    fn region_end(&mut self, names: &dyn Names, region: &RegionSpan) {
        let key = OpenKey::Region(region.name, region.begin);
        let index = self.thread(names, region.thread);
        if let Some(pos) = self.threads[index].stack.iter().rposition(|o| o.key == key) {
            self.close_from(index, pos, region.end);
        }
    }

    fn user_task_begin(&mut self, names: &dyn Names, id: u64, parent: u64, name: u64, time: u64) {
        let name = self.string_name(names, name);
        if !self.user_tasks.contains_key(&id) {
            let label = format!("user task {id} {}", self.names.get(name).text);
            let r = self.format.user_task_track(id, &label);
            self.check(r);
        }
        let args = [
            (ArgName::Id, Arg::Uint(id)),
            (ArgName::Parent, Arg::Uint(parent)),
        ];
        let n = if parent != 0 { 2 } else { 1 };
        let r = self.format.begin(
            Track::UserTask(id),
            time,
            self.names.get(name),
            Category::UserTask,
            &args[..n],
            None,
        );
        self.check(r);
        self.user_tasks.insert(id, name);
    }

    fn user_task_end(&mut self, _names: &dyn Names, task: &UserTaskSpan) {
        if let Some(name) = self.user_tasks.remove(&task.id) {
            let r = self.format.end(
                Track::UserTask(task.id),
                task.end,
                self.names.get(name),
                Category::UserTask,
            );
            self.check(r);
        }
    }

    fn finish(&mut self, _names: &dyn Names, window: Option<(u64, u64)>, _edges: &EdgeStats) {
        let end = window.map_or(0, |w| w.1);
        // In thread order, so that the same trace always gives the same file.
        let mut order: Vec<usize> = (0..self.threads.len()).collect();
        order.sort_unstable_by_key(|&i| self.threads[i].id);
        for index in order {
            self.close_from(index, 0, end);
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
pub fn export<R: Read, F: Format + Send>(
    reader: TraceReader<R>,
    format: F,
    merge: MergeOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<F, ExportError> {
    let events = OrderedEvents::new(reader, merge);
    let mut timeline = Timeline::new(format);
    let (_, error) = drive_pipelined(events, &mut timeline, progress);
    let (format, write_error) = timeline.into_parts();
    if let Some(e) = write_error {
        return Err(ExportError::Output(e));
    }
    match error {
        Some(e) => Err(ExportError::Trace(e)),
        None => Ok(format),
    }
}
