//! Computing the summary: the builder, an [`Observer`] of the model that fills the summary's
//! types. Nothing here formats text or JSON.

use std::collections::BTreeMap;
use std::io::Read;

use flight_recorder_format::{args, Error, EventKind, TraceReader};

use super::*;
use crate::dense::DenseIds;
use crate::drive::{drive, drive_pipelined};
use crate::histogram::Histogram;
use crate::merge::{Ev, Names, OrderedEvents};
use crate::model::{
    role, IdMap, Note, Observer, OpenRegion, PollEnd, PollResult, RegionSpan, TaskDone,
    UserTaskSpan,
};

/// Busy time per thread and per time slice; slices double in width when the window outgrows
/// them, so their number stays bounded.
#[derive(Debug, Default)]
struct TimeSlices {
    origin: Option<u64>,
    width: u64,
    max: usize,
    rows: Vec<Vec<u64>>,
    /// Per row, the slot last added to alone and its bounds `[start, end)`: most polls fall in
    /// the slot of the previous one, found then without a division. Cleared when the slots
    /// widen.
    recent: Vec<(u64, u64, usize)>,
}

impl TimeSlices {
    fn new(max: usize) -> TimeSlices {
        TimeSlices {
            origin: None,
            width: 1_000_000,
            max: max.max(2),
            rows: Vec::new(),
            recent: Vec::new(),
        }
    }

    fn new_row(&mut self) -> usize {
        self.rows.push(Vec::new());
        // An empty range: no poll falls in it.
        self.recent.push((1, 0, 0));
        self.rows.len() - 1
    }

    #[inline(always)]
    fn add(&mut self, row: usize, start: u64, end: u64) {
        if let Some(&(low, high, slot)) = self.recent.get(row) {
            // The origin is set and at most `low`, so `start` is not before it.
            if start >= low && end <= high && end > start {
                if let Some(cell) = self.rows.get_mut(row).and_then(|r| r.get_mut(slot)) {
                    *cell = cell.saturating_add(end - start);
                    return;
                }
            }
        }
        self.add_slow(row, start, end);
    }

    #[inline(never)]
    fn add_slow(&mut self, row: usize, start: u64, end: u64) {
        let Some(origin) = self.origin else {
            return;
        };
        let start = start.max(origin);
        if end <= start {
            return;
        }
        // Within one slot the row already has (rows never outgrow `max`): no coarsening.
        let slot = (start - origin) / self.width;
        if (end - origin - 1) / self.width == slot {
            if let Some(cell) = usize::try_from(slot)
                .ok()
                .and_then(|slot| self.rows[row].get_mut(slot))
            {
                *cell = cell.saturating_add(end - start);
                let low = origin.saturating_add(slot.saturating_mul(self.width));
                let high = low.saturating_add(self.width);
                if let Some(recent) = self.recent.get_mut(row) {
                    *recent = (low, high, slot as usize);
                }
                return;
            }
        }
        while (end - origin - 1) / self.width >= self.max as u64 {
            self.coarsen();
        }
        let mut t = start;
        while t < end {
            let slot = ((t - origin) / self.width) as usize;
            let slot_end = origin.saturating_add((slot as u64 + 1).saturating_mul(self.width));
            let upto = end.min(slot_end);
            let cells = &mut self.rows[row];
            if cells.len() <= slot {
                cells.resize(slot + 1, 0);
            }
            cells[slot] = cells[slot].saturating_add(upto - t);
            t = upto;
        }
    }

    fn coarsen(&mut self) {
        self.width = self.width.saturating_mul(2);
        for recent in &mut self.recent {
            *recent = (1, 0, 0);
        }
        for row in &mut self.rows {
            let merged: Vec<u64> = row
                .chunks(2)
                .map(|pair| pair.iter().fold(0u64, |sum, &v| sum.saturating_add(v)))
                .collect();
            *row = merged;
        }
    }
}

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
}

#[derive(Debug, Default)]
struct SpanAcc {
    count: u64,
    unfinished: u64,
    latency: Histogram,
    slowest: Vec<SpanInstance>,
}

impl SpanAcc {
    fn add(&mut self, instance: SpanInstance, top: usize) {
        if instance.unfinished {
            self.unfinished += 1;
        } else {
            self.count += 1;
            self.latency.record(instance.duration_ns);
        }
        keep_top(&mut self.slowest, instance, top, |i| i.duration_ns);
    }
}

/// Inserts `item` into `list` (sorted by `key`, largest first) if it is among the `top`.
fn keep_top<T>(list: &mut Vec<T>, item: T, top: usize, key: impl Fn(&T) -> u64) {
    if top == 0 {
        return;
    }
    if list.len() == top && key(&item) <= key(&list[top - 1]) {
        return;
    }
    let pos = list.partition_point(|x| key(x) >= key(&item));
    list.insert(pos, item);
    list.truncate(top);
}

#[derive(Debug, Default)]
struct ThreadAcc {
    /// Events on the thread.
    events: u64,
    busy: u64,
    polling: u64,
    polls: u64,
    parks: bool,
    worker: bool,
    busy_row: Option<usize>,
    poll_row: Option<usize>,
}

struct Builder {
    options: SummaryOptions,
    by_kind: Vec<u64>,
    events: u64,
    runtimes: BTreeMap<u64, RuntimeSummary>,
    tasks: TaskTotals,
    /// Spawn location ids to indices in `locations`.
    location_ids: DenseIds,
    locations: Vec<LocationAcc>,
    latency: Histogram,
    latency_unknown: u64,
    long_polls: LongPolls,
    /// Thread ids to indices in `threads`: every thread with an event has one.
    thread_ids: DenseIds,
    threads: Vec<ThreadAcc>,
    slices: TimeSlices,
    user_task_names: IdMap<u64>,
    user_tasks: IdMap<SpanAcc>,
    regions: IdMap<SpanAcc>,
    logs: Logs,
    log_categories: IdMap<u64>,
    recent_logs: std::collections::VecDeque<LogLine>,
    counters: BTreeMap<u64, CounterSummary>,
    window: Option<(u64, u64)>,
    edges: EdgeStats,
}

impl Builder {
    fn new(options: SummaryOptions) -> Builder {
        Builder {
            options,
            by_kind: vec![0; 256],
            events: 0,
            runtimes: BTreeMap::new(),
            tasks: TaskTotals::default(),
            location_ids: DenseIds::default(),
            locations: Vec::new(),
            latency: Histogram::new(),
            latency_unknown: 0,
            long_polls: LongPolls {
                threshold_ns: options.long_poll_ns,
                ..LongPolls::default()
            },
            thread_ids: DenseIds::default(),
            threads: Vec::new(),
            slices: TimeSlices::new(options.max_slices),
            user_task_names: IdMap::default(),
            user_tasks: IdMap::default(),
            regions: IdMap::default(),
            logs: Logs::default(),
            log_categories: IdMap::default(),
            recent_logs: Default::default(),
            counters: BTreeMap::new(),
            window: None,
            edges: EdgeStats::default(),
        }
    }

    fn runtime(&mut self, id: u64) -> &mut RuntimeSummary {
        self.runtimes.entry(id).or_insert_with(|| RuntimeSummary {
            id,
            name: String::new(),
            workers: Vec::new(),
            blocking: Vec::new(),
            other: Vec::new(),
        })
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

fn string_or_id(names: &dyn Names, id: u64) -> String {
    names
        .string(id)
        .map_or_else(|| format!("#{id}"), str::to_string)
}

fn location_name(names: &dyn Names, id: u64) -> String {
    if id == 0 {
        return "unknown".to_string();
    }
    match names.location(id) {
        Some(l) => format!("{}:{}:{}", l.file, l.line, l.column),
        None => format!("location #{id}"),
    }
}

fn thread_name(names: &dyn Names, id: u64) -> String {
    names.thread(id).map(|t| t.name.clone()).unwrap_or_default()
}

impl Builder {
    /// The thread's index in `threads`.
    #[inline]
    fn thread(&mut self, id: u64) -> usize {
        let (th, new) = self.thread_ids.index(id);
        if new {
            self.threads.push(ThreadAcc::default());
        }
        th
    }

    /// The spawn location's index in `locations`.
    #[inline]
    fn location(&mut self, id: u64) -> usize {
        let (index, new) = self.location_ids.index(id);
        if new {
            self.locations.push(LocationAcc::default());
        }
        index
    }

    /// [`Observer::event`] for the thread with index `th`.
    #[inline]
    fn event_at(&mut self, names: &dyn Names, ev: &Ev, th: usize) {
        self.events += 1;
        self.by_kind[usize::from(ev.kind)] += 1;
        self.threads[th].events += 1;
        if self.slices.origin.is_none() {
            self.slices.origin = Some(ev.time);
        }
        // Most events are about tasks, which the model reports; only these are counted here.
        const RUNTIME_THREAD: u8 = EventKind::RuntimeThread as u8;
        const RUNTIME_NAME: u8 = EventKind::RuntimeName as u8;
        const WORKER_PARK: u8 = EventKind::WorkerPark as u8;
        const WORKER_UNPARK: u8 = EventKind::WorkerUnpark as u8;
        const LOG: u8 = EventKind::Log as u8;
        const COUNTER: u8 = EventKind::Counter as u8;
        match ev.kind {
            RUNTIME_THREAD | RUNTIME_NAME | WORKER_PARK | WORKER_UNPARK | LOG | COUNTER => {
                self.rare_event(names, ev, th)
            }
            _ => {}
        }
    }

    /// The events the summary counts itself (runtimes, parks, logs, counters); `th` is the
    /// thread's index.
    #[cold]
    fn rare_event(&mut self, names: &dyn Names, ev: &Ev, th: usize) {
        let Some(kind) = EventKind::from_byte(ev.kind) else {
            return;
        };
        match kind {
            EventKind::RuntimeThread => {
                let args::RuntimeThread { runtime, role } = ev.args_as();
                let rt = self.runtime(runtime);
                let list = match role {
                    role::WORKER => &mut rt.workers,
                    role::BLOCKING => &mut rt.blocking,
                    _ => &mut rt.other,
                };
                if !list.contains(&ev.thread) {
                    list.push(ev.thread);
                }
                if role == role::WORKER {
                    self.threads[th].worker = true;
                }
            }
            EventKind::RuntimeName => {
                let args::RuntimeName { runtime, name } = ev.args_as();
                let name = string_or_id(names, name);
                self.runtime(runtime).name = name;
            }
            EventKind::WorkerPark | EventKind::WorkerUnpark => {
                self.threads[th].parks = true;
            }
            EventKind::Log => {
                let args::Log {
                    category,
                    user_task,
                } = ev.args_as();
                self.logs.total += 1;
                *self.log_categories.entry(category).or_default() += 1;
                if self.options.logs > 0 {
                    if self.recent_logs.len() == self.options.logs {
                        self.recent_logs.pop_front();
                    }
                    self.recent_logs.push_back(LogLine {
                        time_ns: ev.time,
                        thread: ev.thread,
                        category: string_or_id(names, category),
                        user_task,
                        message: ev
                            .payload
                            .as_deref()
                            .map(|p| String::from_utf8_lossy(p).into_owned())
                            .unwrap_or_default(),
                    });
                }
            }
            EventKind::Counter => {
                let args::Counter { name, value } = ev.args_as();
                let counter = self.counters.entry(name).or_insert_with(|| CounterSummary {
                    name: string_or_id(names, name),
                    samples: 0,
                    min: value,
                    max: value,
                    last: value,
                });
                counter.samples += 1;
                counter.min = counter.min.min(value);
                counter.max = counter.max.max(value);
                counter.last = value;
            }
            _ => {}
        }
    }
}

impl Observer for Builder {
    fn event(&mut self, names: &dyn Names, ev: &Ev) {
        let th = self.thread(ev.thread);
        self.event_at(names, ev, th);
    }

    #[inline]
    fn event_on_thread(&mut self, names: &dyn Names, ev: &Ev, thread_index: usize) {
        // The model numbers threads as `thread_ids` does (by first event): its index saves the
        // lookup.
        let th = if self.thread_ids.ids().get(thread_index) == Some(&ev.thread) {
            thread_index
        } else {
            self.thread(ev.thread)
        };
        self.event_at(names, ev, th);
    }

    fn poll_begin(&mut self, _names: &dyn Names, poll: &crate::model::PollBegin) {
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
        names: &dyn Names,
        poll: &PollEnd,
        stack: &[OpenRegion],
        notes: &[Note],
    ) {
        let duration = poll.duration();
        let th = self.thread(poll.thread);
        let thread = &mut self.threads[th];
        let row = match thread.poll_row {
            Some(row) => row,
            None => {
                let row = self.slices.new_row();
                thread.poll_row = Some(row);
                row
            }
        };
        // Saturating: a corrupt file can hold any times (found by fuzzing).
        thread.polling = thread.polling.saturating_add(duration);
        thread.polls += 1;
        self.slices.add(row, poll.start, poll.end);
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

    fn region_end(&mut self, _names: &dyn Names, region: &RegionSpan) {
        let top = self.options.top;
        self.regions.entry(region.name).or_default().add(
            SpanInstance {
                id: region.user_task,
                thread: region.thread,
                start_ns: region.begin,
                duration_ns: region.end.saturating_sub(region.begin),
                unfinished: region.truncated,
            },
            top,
        );
    }

    fn user_task_begin(&mut self, _names: &dyn Names, id: u64, _parent: u64, name: u64, _t: u64) {
        self.user_task_names.insert(id, name);
    }

    fn user_task_end(&mut self, _names: &dyn Names, task: &UserTaskSpan) {
        self.user_task_names.remove(&task.id);
        let top = self.options.top;
        self.user_tasks.entry(task.name).or_default().add(
            SpanInstance {
                id: task.id,
                thread: task.thread,
                start_ns: task.begin,
                duration_ns: task.end.saturating_sub(task.begin),
                unfinished: task.truncated,
            },
            top,
        );
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

    fn busy(&mut self, thread: u64, start: u64, end: u64) {
        let th = self.thread(thread);
        let acc = &mut self.threads[th];
        acc.busy = acc.busy.saturating_add(end.saturating_sub(start));
        let row = match acc.busy_row {
            Some(row) => row,
            None => {
                let row = self.slices.new_row();
                acc.busy_row = Some(row);
                row
            }
        };
        self.slices.add(row, start, end);
    }

    fn finish(&mut self, _names: &dyn Names, window: Option<(u64, u64)>, edges: &EdgeStats) {
        self.window = window;
        // The slices cover the whole window, so the chart's rows stay within `max` cells however
        // far the window's end is from the busy times (found by fuzzing: a corrupt time made a
        // row of billions of cells).
        if let (Some(origin), Some((_, end))) = (self.slices.origin, window) {
            while end.saturating_sub(origin) / self.slices.width >= self.slices.max as u64 {
                self.slices.coarsen();
            }
        }
        self.edges = *edges;
    }
}

impl Summary {
    /// Reads the rest of `reader`'s events and summarizes the file with the default settings.
    ///
    /// A file that is torn, corrupt or lacks its end record gives a [`DamagedTrace`]: the
    /// summary of the events before the damage, and the error.
    pub fn from_reader<R: Read>(reader: TraceReader<R>) -> Result<Summary, DamagedTrace> {
        Summary::from_reader_with(reader, SummaryOptions::default(), &mut |_| {})
    }

    /// Like [`Summary::from_reader`] with settings, calling `progress` with the bytes read now
    /// and then (for a progress bar).
    pub fn from_reader_with<R: Read>(
        reader: TraceReader<R>,
        options: SummaryOptions,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Summary, DamagedTrace> {
        let mut events = OrderedEvents::new(reader, options.merge);
        let mut builder = Builder::new(options);
        let error = if options.pipeline {
            let (merged, error) = drive_pipelined(events, &mut builder, progress);
            events = merged;
            error
        } else {
            drive(&mut events, &mut builder, progress)
        };
        let late_events = events.late_events();
        let summary = builder.build(events.reader(), error.as_ref(), late_events);
        match error {
            None => Ok(summary),
            Some(error) => Err(DamagedTrace {
                summary: Box::new(summary),
                error,
            }),
        }
    }
}

impl Builder {
    fn build<R: Read>(self, reader: &TraceReader<R>, error: Option<&Error>, late: u64) -> Summary {
        let names: &dyn Names = reader;
        let mut kinds: Vec<KindCount> = (0..=u8::MAX)
            .filter(|&byte| self.by_kind[usize::from(byte)] > 0)
            .map(|byte| KindCount {
                byte,
                name: reader
                    .kind_info(byte)
                    .map_or_else(|| format!("kind_{byte}"), |info| info.name.clone()),
                count: self.by_kind[usize::from(byte)],
            })
            .collect();
        kinds.sort_by(|a, b| b.count.cmp(&a.count).then(a.byte.cmp(&b.byte)));

        let mut threads: BTreeMap<u64, ThreadSummary> = reader
            .threads()
            .values()
            .map(|t| {
                let summary = ThreadSummary {
                    id: t.id,
                    os_tid: Some(t.os_tid),
                    name: t.name.clone(),
                    events: 0,
                };
                (t.id, summary)
            })
            .collect();
        for (&id, acc) in self.thread_ids.ids().iter().zip(&self.threads) {
            let count = acc.events;
            threads
                .entry(id)
                .or_insert_with(|| ThreadSummary {
                    id,
                    os_tid: None,
                    name: String::new(),
                    events: 0,
                })
                .events = count;
        }

        let window = self
            .window
            .map(|(start_ns, end_ns)| Window { start_ns, end_ns });

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
            })
            .collect();
        locations.sort_by(|a, b| {
            b.run_ns
                .cmp(&a.run_ns)
                .then(b.tasks.cmp(&a.tasks))
                .then(a.location.cmp(&b.location))
        });

        let slices = &self.slices;
        let slice_count = match (slices.origin, self.window) {
            (Some(origin), Some((_, end))) => {
                ((end.saturating_sub(origin)) / slices.width + 1) as usize
            }
            _ => 0,
        };
        let row = |r: Option<usize>| -> Vec<u64> {
            let mut cells = r.map(|r| slices.rows[r].clone()).unwrap_or_default();
            cells.resize(slice_count, 0);
            cells
        };
        let mut util_threads: Vec<ThreadUtilization> = self
            .thread_ids
            .ids()
            .iter()
            .zip(&self.threads)
            .filter(|(_, t)| t.parks || t.worker || t.polls > 0)
            .map(|(&id, t)| {
                let unparked = t.parks || (t.worker && t.busy > 0);
                ThreadUtilization {
                    thread: id,
                    name: thread_name(names, id),
                    basis: if unparked { "unparked" } else { "polling" }.to_string(),
                    busy_ns: if unparked { t.busy } else { t.polling },
                    polling_ns: t.polling,
                    polls: t.polls,
                    busy_per_slice: row(if unparked { t.busy_row } else { t.poll_row }),
                }
            })
            .collect();
        // Workers first, then the others; by id within each.
        util_threads.sort_by_key(|t| (t.basis != "unparked", t.thread));

        let groups = |map: &IdMap<SpanAcc>| -> Vec<SpanGroup> {
            let mut out: Vec<SpanGroup> = map
                .iter()
                .map(|(&name, acc)| SpanGroup {
                    name: string_or_id(names, name),
                    count: acc.count,
                    unfinished: acc.unfinished,
                    latency: acc.latency.percentiles(),
                    slowest: acc.slowest.clone(),
                })
                .collect();
            out.sort_by(|a, b| b.latency.p99.cmp(&a.latency.p99).then(a.name.cmp(&b.name)));
            out
        };
        let user_tasks = groups(&self.user_tasks);
        let regions = groups(&self.regions);

        let mut by_category: Vec<(String, u64)> = self
            .log_categories
            .iter()
            .map(|(&id, &n)| (string_or_id(names, id), n))
            .collect();
        by_category.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let logs = Logs {
            total: self.logs.total,
            by_category,
            recent: self.recent_logs.into_iter().collect(),
        };

        let (chunks, event_bytes) = reader.chunk_stats();
        Summary {
            path: None,
            header: reader.header().clone(),
            complete: reader.is_complete(),
            error: error.map(Error::to_string),
            window,
            events: self.events,
            kinds,
            threads: threads.into_values().collect(),
            file_bytes: reader.bytes_read(),
            chunks,
            event_bytes,
            dropped: reader.dropped(),
            options: self.options,
            runtimes: self.runtimes.into_values().collect(),
            tasks: self.tasks,
            locations,
            sched_latency: Latency::from_histogram(&self.latency, self.latency_unknown),
            long_polls: self.long_polls,
            utilization: Utilization {
                start_ns: slices.origin.unwrap_or(0),
                slice_ns: slices.width,
                slices: slice_count,
                threads: util_threads,
            },
            user_tasks,
            regions,
            logs,
            counters: self.counters.into_values().collect(),
            edges: self.edges,
            late_events: late,
        }
    }
}
