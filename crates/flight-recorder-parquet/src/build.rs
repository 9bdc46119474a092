//! One trace file into tables: an [`Observer`] of the analysis model fills one [`Table`] per
//! table while the model runs over the file's events in time order (the summary's pass), and a
//! cheap first pass over the file's chunks gives each event its identity.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int64Builder, ListBuilder, StringBuilder, TimestampNanosecondBuilder,
    UInt32Builder, UInt64Builder,
};
use arrow::record_batch::RecordBatch;
use flight_recorder_analysis::drive::drive;
use flight_recorder_analysis::merge::{Ev, MergeOptions, Names, OrderedEvents};
use flight_recorder_analysis::model::{
    EdgeStats, IdMap, Note, Observer, OpenRegion, PollBegin, PollEnd, PollResult, RegionSpan,
    TaskDone, UserTaskSpan,
};
use flight_recorder_analysis::symbols::{short_path, ResolvedFrame, Symbolizer};
use flight_recorder_format::{args, EventKind, Header, TimeConverter, TraceReader};

use crate::schema::{self, Kind};
use crate::{Error, ErrorKind, SnapshotTables, TableOptions, TABLES};

/// The identity of an event in its process: the thread, the chunk (its base time, in the
/// trace's units) and the event's index in the chunk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Id {
    thread: u64,
    chunk_base: u64,
    index: u32,
}

/// A column being built.
enum Col {
    Str(StringBuilder),
    U64(UInt64Builder),
    I64(Int64Builder),
    U32(UInt32Builder),
    Ts(TimestampNanosecondBuilder),
    Bool(BooleanBuilder),
    List(ListBuilder<StringBuilder>),
    /// A stack column: the stack ids, resolved to frames when the table is finished (the file's
    /// symbols may come after the events).
    Stack(Vec<Option<u64>>),
    /// A column of a table not asked for (`TableOptions::only`): values are dropped.
    Skip,
}

/// The texts every row starts with, and the process of the identity.
struct Common {
    snapshot_id: String,
    service: String,
    host: String,
    date: String,
    pid: u64,
    process_start_ns: i64,
}

/// A table being built, column by column.
struct Table {
    name: &'static str,
    cols: Vec<Col>,
    kinds: Vec<(&'static str, Kind)>,
}

fn ns(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Table {
    /// A table to fill, or, when `keep` is false, one whose rows are dropped as they come (it
    /// finishes empty).
    fn new(name: &'static str, keep: bool) -> Table {
        let columns = schema::columns(name).expect("a known table");
        let cols = columns
            .iter()
            .map(|&(column, kind, _)| match kind {
                _ if !keep => Col::Skip,
                Kind::Str => Col::Str(StringBuilder::new()),
                Kind::U64 => Col::U64(UInt64Builder::new()),
                Kind::I64 => Col::I64(Int64Builder::new()),
                Kind::U32 => Col::U32(UInt32Builder::new()),
                Kind::Ts => Col::Ts(TimestampNanosecondBuilder::new().with_timezone("UTC")),
                Kind::Bool => Col::Bool(BooleanBuilder::new()),
                Kind::StrList if column == "stack" => Col::Stack(Vec::new()),
                Kind::StrList => Col::List(ListBuilder::new(StringBuilder::new())),
            })
            .collect();
        Table {
            name,
            cols,
            kinds: columns.iter().map(|&(c, k, _)| (c, k)).collect(),
        }
    }

    /// A new row, its common columns filled.
    fn row<'a>(&'a mut self, common: &Common) -> Row<'a> {
        let mut row = Row { table: self, at: 0 };
        row.s(&common.snapshot_id)
            .s(&common.service)
            .s(&common.host)
            .s(&common.date);
        row
    }

    /// A new row of an event's table, its common and identity columns filled.
    fn event_row<'a>(&'a mut self, common: &Common, id: &Id) -> Row<'a> {
        let mut row = self.row(common);
        row.u(common.pid)
            .i(common.process_start_ns)
            .u(id.thread)
            .u(id.chunk_base)
            .u32(id.index);
        row
    }

    /// The table's columns, or `None` for a table whose rows were dropped.
    fn finish(self, resolve: &mut dyn FnMut(u64) -> Arc<Vec<String>>) -> Option<Vec<ArrayRef>> {
        if self.cols.iter().any(|col| matches!(col, Col::Skip)) {
            return None;
        }
        let arrays = self
            .cols
            .into_iter()
            .map(|col| -> ArrayRef {
                match col {
                    Col::Str(mut b) => Arc::new(b.finish()),
                    Col::U64(mut b) => Arc::new(b.finish()),
                    Col::I64(mut b) => Arc::new(b.finish()),
                    Col::U32(mut b) => Arc::new(b.finish()),
                    Col::Ts(mut b) => Arc::new(b.finish()),
                    Col::Bool(mut b) => Arc::new(b.finish()),
                    Col::List(mut b) => Arc::new(b.finish()),
                    Col::Stack(ids) => {
                        let mut b = ListBuilder::new(StringBuilder::new());
                        for id in ids {
                            match id {
                                Some(id) => {
                                    for frame in resolve(id).iter() {
                                        b.values().append_value(frame);
                                    }
                                    b.append(true);
                                }
                                None => b.append(false),
                            }
                        }
                        Arc::new(b.finish())
                    }
                    Col::Skip => unreachable!("a dropped table is not finished"),
                }
            })
            .collect();
        Some(arrays)
    }
}

/// One row being appended: each call fills the next column, whose type must match.
struct Row<'a> {
    table: &'a mut Table,
    at: usize,
}

impl Row<'_> {
    fn next(&mut self) -> &mut Col {
        let at = self.at;
        self.at += 1;
        match self.table.cols.get_mut(at) {
            Some(col) => col,
            None => panic!("too many values for a row of {}", self.table.name),
        }
    }

    fn mismatch(&self, wanted: &str) -> ! {
        let (column, kind) = self.table.kinds[self.at - 1];
        panic!("{}.{column} is {kind:?}, not {wanted}", self.table.name)
    }

    fn os(&mut self, value: Option<&str>) -> &mut Self {
        match self.next() {
            Col::Str(b) => b.append_option(value),
            Col::Skip => {}
            _ => self.mismatch("text"),
        }
        self
    }
    fn s(&mut self, value: &str) -> &mut Self {
        self.os(Some(value))
    }
    /// Text, null when empty.
    fn se(&mut self, value: &str) -> &mut Self {
        self.os(Some(value).filter(|v| !v.is_empty()))
    }
    fn ou(&mut self, value: Option<u64>) -> &mut Self {
        match self.next() {
            Col::U64(b) => b.append_option(value),
            Col::Skip => {}
            _ => self.mismatch("u64"),
        }
        self
    }
    fn u(&mut self, value: u64) -> &mut Self {
        self.ou(Some(value))
    }
    /// An id, null when 0.
    fn u0(&mut self, value: u64) -> &mut Self {
        self.ou(Some(value).filter(|&v| v != 0))
    }
    fn oi(&mut self, value: Option<i64>) -> &mut Self {
        match self.next() {
            Col::I64(b) => b.append_option(value),
            Col::Skip => {}
            _ => self.mismatch("i64"),
        }
        self
    }
    fn i(&mut self, value: i64) -> &mut Self {
        self.oi(Some(value))
    }
    /// Nanoseconds.
    fn n(&mut self, value: u64) -> &mut Self {
        self.i(ns(value))
    }
    fn u32(&mut self, value: u32) -> &mut Self {
        match self.next() {
            Col::U32(b) => b.append_value(value),
            Col::Skip => {}
            _ => self.mismatch("u32"),
        }
        self
    }
    fn ots(&mut self, value: Option<u64>) -> &mut Self {
        match self.next() {
            Col::Ts(b) => b.append_option(value.map(ns)),
            Col::Skip => {}
            _ => self.mismatch("timestamp"),
        }
        self
    }
    fn ts(&mut self, value: u64) -> &mut Self {
        self.ots(Some(value))
    }
    fn b(&mut self, value: bool) -> &mut Self {
        match self.next() {
            Col::Bool(b) => b.append_value(value),
            Col::Skip => {}
            _ => self.mismatch("bool"),
        }
        self
    }
    fn list(&mut self, values: &[String]) -> &mut Self {
        match self.next() {
            Col::List(b) => {
                for v in values {
                    b.values().append_value(v);
                }
                b.append(true);
            }
            Col::Skip => {}
            _ => self.mismatch("list"),
        }
        self
    }
    fn stack(&mut self, id: Option<u64>) -> &mut Self {
        match self.next() {
            Col::Stack(ids) => ids.push(id),
            Col::Skip => {}
            _ => self.mismatch("stack"),
        }
        self
    }
    /// Checks that every column got a value.
    fn done(&mut self) {
        if self.at != self.table.cols.len() {
            panic!(
                "a row of {} has {} values for {} columns",
                self.table.name,
                self.at,
                self.table.cols.len()
            );
        }
    }
}

// Indices of the tables in `TABLES`.
const SNAPSHOTS: usize = 0;
const POLLS: usize = 1;
const TASKS: usize = 2;
const LONG_POLLS: usize = 3;
const REGIONS: usize = 4;
const USER_TASKS: usize = 5;
const LOGS: usize = 6;
const COUNTERS: usize = 7;
const WAKES: usize = 8;
const SAMPLES: usize = 9;

/// The chunks of one thread in file order, and where the next event of the thread is.
#[derive(Default)]
struct ThreadChunks {
    chunks: VecDeque<(u64, u32)>,
    index: u32,
}

/// A stack taken on a thread (`thread_stack`), waiting for the poll it belongs to.
#[derive(Clone, Copy)]
struct PendingStack {
    time: u64,
    task: u64,
    stack: u64,
}

/// A CPU sample waiting for the poll it was taken in.
#[derive(Clone, Copy)]
struct PendingSample {
    id: Id,
    time: u64,
    thread: u64,
    task: u64,
    stack: u64,
}

/// Polls remembered per thread, to attribute samples that arrive late (in batches), as the
/// summary does.
const RECENT_POLLS: usize = 64;

/// The latest polls of a thread `(start, end, task, location)`, oldest first, and the samples
/// taken on it after its latest poll ended.
#[derive(Default)]
struct SampledThread {
    recent: VecDeque<(u64, u64, u64, u64)>,
    pending: Vec<PendingSample>,
}

/// The poll a sample taken at `time` belongs to: the one running then on its thread, else the
/// latest poll of the task it names; `(task, location)`.
fn poll_at(recent: &VecDeque<(u64, u64, u64, u64)>, time: u64, task: u64) -> Option<(u64, u64)> {
    recent
        .iter()
        .rev()
        .find(|&&(start, end, _, _)| (start..=end).contains(&time))
        .or_else(|| recent.iter().rev().find(|p| task != 0 && p.2 == task))
        .map(|p| (p.2, p.3))
}

/// Stacks kept per thread between polls (a watchdog captures at most 8 per poll), as the
/// summary does.
const MAX_STACKS: usize = 8;

/// The observer that fills the tables.
struct Builder {
    common: Common,
    tables: Vec<Table>,
    threshold_ns: u64,
    converter: TimeConverter,
    /// Chunks of each thread, from the first pass, by thread index (the model's numbering),
    /// taken from `by_thread` at a thread's first event.
    threads: Vec<Option<ThreadChunks>>,
    by_thread: IdMap<ThreadChunks>,
    /// The identity of the event being handled.
    current: Id,
    /// Polls open per thread: the identity of their start, and how they began.
    open_polls: IdMap<Vec<(Id, PollBegin)>>,
    /// The identity of each live task's first event (its spawn when in the window).
    task_first: IdMap<Id>,
    /// The spawn location of each task spawned in the window.
    task_locations: IdMap<u64>,
    /// The task being polled on each thread, with its location.
    running: IdMap<(u64, u64)>,
    pending_stacks: IdMap<Vec<PendingStack>>,
    regions: HashMap<(u64, u64, u64, u64), Vec<Id>>,
    user_tasks: IdMap<(Id, u64)>,
    locations: IdMap<Option<Arc<str>>>,
    /// CPU samples seen, and what attributes them to polls.
    samples: u64,
    sampled: IdMap<SampledThread>,
    /// Samples naming a task whose poll is not remembered: attributed at its next poll's end.
    samples_by_task: IdMap<Vec<PendingSample>>,
    window: Option<(u64, u64)>,
    events: u64,
}

impl Builder {
    fn location(&mut self, names: &dyn Names, id: u64) -> Option<Arc<str>> {
        if id == 0 {
            return None;
        }
        self.locations
            .entry(id)
            .or_insert_with(|| {
                Some(Arc::from(match names.location(id) {
                    Some(l) => format!("{}:{}:{}", short_path(&l.file), l.line, l.column),
                    None => format!("location #{id}"),
                }))
            })
            .clone()
    }

    /// A row of `samples`, attributed to a poll `(task, location)` or to none.
    fn sample_row(&mut self, names: &dyn Names, s: PendingSample, poll: Option<(u64, u64)>) {
        let (task, location) = match poll {
            Some((task, location)) => (task, self.location(names, location)),
            None => (s.task, None),
        };
        let common = &self.common;
        self.tables[SAMPLES]
            .event_row(common, &s.id)
            .ts(s.time)
            .u(s.thread)
            .os(thread_name(names, s.thread))
            .u0(task)
            .os(location.as_deref())
            .u(s.stack)
            .stack(Some(s.stack))
            .done();
    }

    /// Attributes a sample now that the polls around it are known, as the summary does.
    fn attribute(&mut self, names: &dyn Names, s: PendingSample, poll: Option<(u64, u64)>) {
        if poll.is_none() && s.task != 0 {
            self.samples_by_task.entry(s.task).or_default().push(s);
        } else {
            self.sample_row(names, s, poll);
        }
    }

    fn identity(&mut self, ev: &Ev, thread_index: usize) -> Id {
        if self.threads.len() <= thread_index {
            self.threads.resize_with(thread_index + 1, || None);
        }
        let chunks = self.threads[thread_index]
            .get_or_insert_with(|| self.by_thread.remove(&ev.thread).unwrap_or_default());
        // The merge releases each thread's events in file order: the next event of the thread
        // is the next one of its current chunk.
        while let Some(&(_, count)) = chunks.chunks.front() {
            if chunks.index < count {
                break;
            }
            chunks.chunks.pop_front();
            chunks.index = 0;
        }
        let base = chunks.chunks.front().map_or(0, |&(base, _)| base);
        let id = Id {
            thread: ev.thread,
            chunk_base: base,
            index: chunks.index,
        };
        chunks.index += 1;
        id
    }
}

fn text_or_id(names: &dyn Names, id: u64) -> String {
    names
        .string(id)
        .map_or_else(|| format!("#{id}"), str::to_string)
}

fn thread_name(names: &dyn Names, id: u64) -> Option<&str> {
    names
        .thread(id)
        .map(|t| t.name.as_str())
        .filter(|n| !n.is_empty())
}

impl Observer for Builder {
    fn event_on_thread(&mut self, names: &dyn Names, ev: &Ev, thread_index: usize) {
        self.events += 1;
        let id = self.identity(ev, thread_index);
        self.current = id;
        let Some(kind) = EventKind::from_byte(ev.kind) else {
            return;
        };
        match kind {
            EventKind::TaskSpawn => {
                let args::TaskSpawn { task, location, .. } = ev.args_as();
                self.task_first.insert(task, id);
                if location != 0 {
                    self.task_locations.insert(task, location);
                }
            }
            EventKind::PollStart
            | EventKind::PollStartScheduled
            | EventKind::PollEnd
            | EventKind::TaskTerminate => {
                self.task_first.entry(ev.arg(0)).or_insert(id);
            }
            EventKind::TaskWake => {
                let args::TaskWake { task, waker } = ev.args_as();
                self.task_first.entry(task).or_insert(id);
                let location = self.task_locations.get(&task).copied().unwrap_or(0);
                let location = self.location(names, location);
                let common = &self.common;
                self.tables[WAKES]
                    .event_row(common, &id)
                    .ts(ev.time)
                    .u(task)
                    .os(location.as_deref())
                    .u0(waker)
                    .done();
            }
            EventKind::Log => {
                let args::Log {
                    category,
                    user_task,
                } = ev.args_as();
                let (task, location) = match self.running.get(&ev.thread) {
                    Some(&(task, location)) => (Some(task), self.location(names, location)),
                    None => (None, None),
                };
                let message = ev
                    .payload
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                let common = &self.common;
                self.tables[LOGS]
                    .event_row(common, &id)
                    .ts(ev.time)
                    .os(thread_name(names, ev.thread))
                    .s(&text_or_id(names, category))
                    .u0(user_task)
                    .ou(task)
                    .os(location.as_deref())
                    .s(&message)
                    .done();
            }
            EventKind::Counter => {
                let args::Counter { name, value } = ev.args_as();
                let common = &self.common;
                self.tables[COUNTERS]
                    .event_row(common, &id)
                    .ts(ev.time)
                    .s(&text_or_id(names, name))
                    .u(value)
                    .done();
            }
            EventKind::CpuSample => {
                let args::CpuSample {
                    thread,
                    stack,
                    age,
                    task,
                } = ev.args_as();
                self.samples += 1;
                let sample = PendingSample {
                    id,
                    time: ev.time.saturating_sub(self.converter.units_to_ns(age)),
                    thread,
                    task,
                    stack,
                };
                let polls = self.sampled.entry(thread).or_default();
                match polls.recent.back() {
                    Some(&(_, end, _, _)) if sample.time <= end => {
                        let poll = poll_at(&polls.recent, sample.time, task);
                        self.attribute(names, sample, poll);
                    }
                    _ => polls.pending.push(sample),
                }
            }
            EventKind::ThreadStack => {
                let args::ThreadStack {
                    thread,
                    task,
                    stack,
                    ..
                } = ev.args_as();
                let list = self.pending_stacks.entry(thread).or_default();
                if list.len() == MAX_STACKS {
                    list.remove(0);
                }
                list.push(PendingStack {
                    time: ev.time,
                    task,
                    stack,
                });
            }
            _ => {}
        }
    }

    fn poll_begin(&mut self, _names: &dyn Names, poll: &PollBegin) {
        self.open_polls
            .entry(poll.thread)
            .or_default()
            .push((self.current, *poll));
        self.running
            .insert(poll.thread, (poll.task.id, poll.task.location));
    }

    fn poll_end(
        &mut self,
        names: &dyn Names,
        poll: &PollEnd,
        stack: &[OpenRegion],
        notes: &[Note],
    ) {
        self.running.remove(&poll.thread);
        let begun = self.open_polls.get_mut(&poll.thread).and_then(|open| {
            let at = open
                .iter()
                .rposition(|(_, b)| b.task.uid == poll.task.uid)?;
            Some(open.remove(at))
        });
        let (id, begin) = match begun {
            Some((id, begin)) => (id, Some(begin)),
            None => (self.current, None),
        };
        let location = self.location(names, poll.task.location);
        let duration = poll.duration();
        let result = match poll.result {
            PollResult::Pending => "pending",
            PollResult::Ready => "ready",
            PollResult::Unreported => "unreported",
            PollResult::Truncated => "truncated",
        };
        let wake = begin.and_then(|b| b.wake);
        let woken_by = wake.map(|w| {
            if w.spawn {
                "spawn"
            } else if w.waker != 0 {
                "task"
            } else {
                "outside"
            }
        });
        let waker = wake.filter(|w| !w.spawn).map_or(0, |w| w.waker);
        let thread = names.thread(poll.thread);
        let common = &self.common;
        self.tables[POLLS]
            .event_row(common, &id)
            .u(poll.task.id)
            .u(poll.task.uid)
            .os(location.as_deref())
            .os(None)
            .os(thread.map(|t| t.name.as_str()).filter(|n| !n.is_empty()))
            .ou(thread.map(|t| t.os_tid))
            .ts(poll.start)
            .ts(poll.end)
            .n(duration)
            .oi(begin.and_then(|b| b.sched_wait).map(ns))
            .os(woken_by)
            .u0(waker)
            .s(result)
            .done();

        if self.samples > 0 {
            self.samples_seen_poll_end(names, poll);
        }

        // The stacks taken on the thread during the poll (or naming its task after it), as the
        // summary attaches them.
        let mut stacks = Vec::new();
        if let Some(list) = self.pending_stacks.remove(&poll.thread) {
            for s in list {
                if poll.owns_stack(s.time, s.task) {
                    stacks.push(s);
                }
            }
        }
        if duration >= self.threshold_ns {
            let annotations = annotations(names, &self.user_tasks, poll.task.uid, stack, notes);
            let first = stacks.first().copied();
            let common = &self.common;
            self.tables[LONG_POLLS]
                .event_row(common, &id)
                .u(poll.task.id)
                .u(poll.task.uid)
                .os(location.as_deref())
                .os(None)
                .os(thread.map(|t| t.name.as_str()).filter(|n| !n.is_empty()))
                .ts(poll.start)
                .ts(poll.end)
                .n(duration)
                .n(self.threshold_ns)
                .s(result)
                .list(&annotations)
                .u32(stacks.len() as u32)
                .ots(first.map(|s| s.time))
                .stack(first.map(|s| s.stack).filter(|&s| s != 0))
                .done();
        }
    }

    fn region_begin(&mut self, _names: &dyn Names, region: &OpenRegion) {
        self.regions
            .entry((region.thread, region.begin, region.name, region.user_task))
            .or_default()
            .push(self.current);
    }

    fn region_end(&mut self, names: &dyn Names, region: &RegionSpan) {
        let key = (region.thread, region.begin, region.name, region.user_task);
        let id = match self.regions.get_mut(&key) {
            Some(ids) => {
                let id = ids.pop().unwrap_or(self.current);
                if ids.is_empty() {
                    self.regions.remove(&key);
                }
                id
            }
            None => self.current,
        };
        let common = &self.common;
        self.tables[REGIONS]
            .event_row(common, &id)
            .s(&text_or_id(names, region.name))
            .u0(region.user_task)
            .u(region.end_thread)
            .ts(region.begin)
            .ts(region.end)
            .n(region.end.saturating_sub(region.begin))
            .b(region.truncated)
            .done();
    }

    fn user_task_begin(&mut self, _names: &dyn Names, id: u64, _parent: u64, name: u64, _t: u64) {
        self.user_tasks.insert(id, (self.current, name));
    }

    fn user_task_end(&mut self, names: &dyn Names, task: &UserTaskSpan) {
        let id = self
            .user_tasks
            .remove(&task.id)
            .map_or(self.current, |(id, _)| id);
        let common = &self.common;
        self.tables[USER_TASKS]
            .event_row(common, &id)
            .u(task.id)
            .u0(task.parent)
            .s(&text_or_id(names, task.name))
            .ts(task.begin)
            .ts(task.end)
            .n(task.end.saturating_sub(task.begin))
            .b(task.truncated)
            .done();
    }

    fn task_done(&mut self, names: &dyn Names, task: &TaskDone) {
        let id = self
            .task_first
            .remove(&task.task.id)
            .unwrap_or(self.current);
        self.task_locations.remove(&task.task.id);
        let location = self.location(names, task.task.location);
        let common = &self.common;
        self.tables[TASKS]
            .event_row(common, &id)
            .u(task.task.id)
            .u(task.task.uid)
            .os(location.as_deref())
            .os(None)
            .u0(task.parent)
            .b(task.spawned)
            .b(task.ended)
            .ts(task.start)
            .ts(task.end)
            .u(task.polls)
            .n(task.run)
            .n(task.sched_wait)
            .n(task.idle)
            .n(task.longest_poll)
            .done();
    }

    fn finish(&mut self, names: &dyn Names, window: Option<(u64, u64)>, _edges: &EdgeStats) {
        self.window = window;
        let mut threads: Vec<u64> = self.sampled.keys().copied().collect();
        threads.sort_unstable();
        for thread in threads {
            let Some(polls) = self.sampled.get_mut(&thread) else {
                continue;
            };
            let pending = std::mem::take(&mut polls.pending);
            let found: Vec<_> = pending
                .iter()
                .map(|s| poll_at(&polls.recent, s.time, s.task))
                .collect();
            for (s, poll) in pending.into_iter().zip(found) {
                self.attribute(names, s, poll);
            }
        }
        let mut by_task: Vec<PendingSample> = std::mem::take(&mut self.samples_by_task)
            .into_values()
            .flatten()
            .collect();
        by_task.sort_by_key(|s| (s.time, s.id.thread, s.id.chunk_base, s.id.index));
        for s in by_task {
            self.sample_row(names, s, None);
        }
    }
}

impl Builder {
    /// A poll ended while samples are being recorded: attributes the samples that wait for it.
    fn samples_seen_poll_end(&mut self, names: &dyn Names, poll: &PollEnd) {
        if let Some(samples) = self.samples_by_task.remove(&poll.task.id) {
            for s in samples {
                self.sample_row(names, s, Some((poll.task.id, poll.task.location)));
            }
        }
        let polls = self.sampled.entry(poll.thread).or_default();
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
        polls.pending.retain(|s| {
            if s.time > poll.end {
                return true;
            }
            done.push((*s, poll_at(&polls.recent, s.time, s.task)));
            false
        });
        for (s, found) in done {
            self.attribute(names, s, found);
        }
    }
}

/// The annotations of a long poll, as the summary words them: the regions open at its end (but
/// not those begun inside polls of other tasks), then what happened during it.
fn annotations(
    names: &dyn Names,
    user_tasks: &IdMap<(Id, u64)>,
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
        let name = text_or_id(names, name);
        if user_task == 0 {
            format!("region {name}")
        } else {
            match user_tasks.get(&user_task) {
                Some(&(_, task_name)) => format!(
                    "region {name} in user task {} #{user_task}",
                    text_or_id(names, task_name)
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
                push(format!("log {}: {message}", text_or_id(names, *category)))
            }
        }
    }
    out
}

/// A frame as text: `function at file:line` for each function at the address (innermost
/// inlined first), else `module+0xoffset`, else the address.
fn frame_texts(frame: &ResolvedFrame, out: &mut Vec<String>) {
    if frame.functions.is_empty() {
        out.push(match &frame.module {
            Some(m) => format!("{}+{:#x}", m.rsplit('/').next().unwrap_or(m), frame.offset),
            None => format!("{:#x}", frame.address),
        });
        return;
    }
    for f in &frame.functions {
        let function = if f.function.is_empty() {
            "?"
        } else {
            &f.function
        };
        out.push(match (f.file.is_empty(), f.line) {
            (true, _) => function.to_string(),
            (false, 0) => format!("{function} at {}", short_path(&f.file)),
            (false, line) => format!("{function} at {}:{line}", short_path(&f.file)),
        });
    }
}

/// The snapshot id of a file with this header (see [`crate::snapshot_id`]).
pub(crate) fn snapshot_id(header: &Header) -> String {
    let host: String = host_of(header)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let written = header.clock.end.wall_ns;
    let micros = flight_recorder_format::time::format_utc_micros(written);
    let stamp: String = micros
        .trim_end_matches('Z')
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    format!("{host}_{}_{stamp}{:03}Z", header.pid, written % 1000)
}

fn host_of(header: &Header) -> &str {
    if header.host.is_empty() {
        "unknown"
    } else {
        &header.host
    }
}

/// The service of a file: the header's, else the program's name (files written before the
/// header had one, [`Header::service_name`]), else `unknown`.
fn service_of(header: &Header) -> String {
    match header.service_name() {
        "" => "unknown".to_string(),
        service => service.to_string(),
    }
}

/// The file's first pass: each thread's chunks in file order, with their intact events, as the
/// merge will release them.
fn chunks_of(bytes: &[u8]) -> IdMap<ThreadChunks> {
    let mut threads: IdMap<ThreadChunks> = IdMap::default();
    let Ok(mut reader) = TraceReader::new(bytes) else {
        return threads;
    };
    while let Ok(Some(chunk)) = reader.next_raw_chunk() {
        let (count, _, error) = chunk.validate();
        if count > 0 {
            threads
                .entry(chunk.thread)
                .or_default()
                .chunks
                .push_back((chunk.base_units, count as u32));
        }
        reader.recycle_chunk(chunk);
        if error.is_some() {
            break;
        }
    }
    threads
}

/// Builds the tables of one trace file (see [`crate::read_snapshot_bytes`]).
pub(crate) fn tables(
    name: &str,
    bytes: &[u8],
    options: &TableOptions,
) -> Result<SnapshotTables, Error> {
    let fail = |e| Error::new(name, ErrorKind::Trace(e));
    let reader = TraceReader::new(bytes).map_err(fail)?;
    let header = reader.header().clone();
    let written = header.clock.end.wall_ns;
    let date = flight_recorder_format::time::format_utc_micros(written)[..10].to_string();
    let common = Common {
        snapshot_id: snapshot_id(&header),
        service: service_of(&header),
        host: host_of(&header).to_string(),
        date,
        pid: header.pid,
        process_start_ns: ns(header.clock.start.wall_ns),
    };
    let threshold_ns = u64::try_from(options.long_poll_threshold.as_nanos()).unwrap_or(u64::MAX);
    let mut builder = Builder {
        common,
        tables: TABLES
            .iter()
            .map(|t| Table::new(t, options.only.is_none_or(|only| only == *t)))
            .collect(),
        threshold_ns,
        converter: *reader.time_converter(),
        threads: Vec::new(),
        by_thread: chunks_of(bytes),
        current: Id::default(),
        open_polls: IdMap::default(),
        task_first: IdMap::default(),
        task_locations: IdMap::default(),
        running: IdMap::default(),
        pending_stacks: IdMap::default(),
        regions: HashMap::new(),
        user_tasks: IdMap::default(),
        locations: IdMap::default(),
        samples: 0,
        sampled: IdMap::default(),
        samples_by_task: IdMap::default(),
        window: None,
        events: 0,
    };
    let mut events = OrderedEvents::new(reader, MergeOptions::default());
    let error = match drive(&mut events, &mut builder, &mut |_| {}) {
        Some(error) if !options.accept_damaged => return Err(fail(error)),
        error => error,
    };
    let reader = events.reader();
    let details = header
        .details
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let (chunks, _) = reader.chunk_stats();
    let dropped = reader.dropped();
    let file_name = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let window = builder.window;
    let common = &builder.common;
    builder.tables[SNAPSHOTS]
        .row(common)
        .u(header.pid)
        .i(common.process_start_ns)
        .s(&header.program)
        .se(&header.program_version)
        .s(&header.cmdline)
        .s(&header.mode)
        .s(&header.reason)
        .se(&header.tag)
        .se(&details)
        .s(&header.recorder_version)
        .s(&header.clock.source)
        .ts(written)
        .ots(window.map(|w| w.0))
        .ots(window.map(|w| w.1))
        .s(file_name)
        .u(bytes.len() as u64)
        .b(reader.is_complete() && error.is_none())
        .os(error.as_ref().map(|e| e.to_string()).as_deref())
        .u(builder.events)
        .u(chunks)
        .u(dropped.chunks)
        .u(dropped.bytes)
        .u(header.suppressed_triggers)
        .n(header.min_age_ns)
        .u(header.max_bytes)
        .n(threshold_ns)
        .done();

    let tables_names = reader.name_tables();
    let mut symbolizer: Option<Symbolizer> = None;
    let mut resolved: IdMap<Arc<Vec<String>>> = IdMap::default();
    let mut resolve = |stack: u64| -> Arc<Vec<String>> {
        resolved
            .entry(stack)
            .or_insert_with(|| {
                let mut out = Vec::new();
                if let Some(addresses) = tables_names.stack(stack) {
                    let symbolizer =
                        symbolizer.get_or_insert_with(Symbolizer::with_default_binaries);
                    for frame in symbolizer.resolve_stack(&tables_names, addresses) {
                        frame_texts(&frame, &mut out);
                    }
                }
                Arc::new(out)
            })
            .clone()
    };
    let mut out = Vec::with_capacity(TABLES.len());
    let common = builder.common;
    for (table, name_of) in builder.tables.into_iter().zip(TABLES) {
        let schema = crate::schema(name_of).expect("a known table");
        let batch = match table.finish(&mut resolve) {
            Some(arrays) => RecordBatch::try_new(schema, arrays)
                .map_err(|e| Error::new(name, ErrorKind::Arrow(e)))?,
            None => RecordBatch::new_empty(schema),
        };
        out.push((*name_of, batch));
    }
    Ok(SnapshotTables {
        snapshot_id: common.snapshot_id,
        service: common.service,
        host: common.host,
        date: common.date,
        tables: out,
    })
}
