//! A summary of one trace file: the questions an engineer asks after an incident.
//!
//! - what the file is, its window (UTC), threads, runtimes, events, sizes and dropped data;
//! - tasks grouped by spawn location: count, run time, scheduling wait, idle time, polls and the
//!   longest poll (Go's goroutine analysis: run + scheduling wait + idle = the tasks' time in the
//!   window, without overlap);
//! - scheduling latency (wake or spawn to poll): percentiles and a histogram, overall and per
//!   location;
//! - long polls (at or above a threshold, 10 ms by default): the longest, with their task,
//!   location, thread, time and the annotations active on the thread then;
//! - worker utilization: each worker's busy share, over the window and per time slice;
//! - user tasks and regions by name: count, latency percentiles, the slowest instances; logs;
//!   counters.
//!
//! [`Summary::from_reader`] reads the events once, in time order (see [`crate::merge`]), and keeps
//! state per live task, thread and open span only, so memory does not grow with the file. A
//! damaged file is summarized up to the damage, with the error. By default the file is read,
//! checked, merged and decoded on the calling thread while a second thread analyzes the events
//! ([`drive_pipelined`], [`SummaryOptions::pipeline`]); the summary is the same either way.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io::Read;
use std::sync::mpsc;

use flight_recorder_format::time::format_utc_millis;
use flight_recorder_format::{Dropped, Error, EventKind, Header, TableEntry, TraceReader};
use serde_json::{json, Value};

use crate::dense::DenseIds;
use crate::histogram::{display_labels, Histogram, Percentiles};
use crate::merge::{Ev, MergeOptions, Names, OrderedEvents};
use crate::model::{
    role, EdgeStats, IdMap, Model, Note, Observer, OpenRegion, PollEnd, PollResult, RegionSpan,
    TaskDone, UserTaskSpan,
};

/// Settings of a summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SummaryOptions {
    /// A poll at least this long is a long poll, ns (default 10 ms).
    pub long_poll_ns: u64,
    /// How many items the top lists keep: long polls, slowest instances, locations shown as
    /// text (default 10).
    pub top: usize,
    /// Time slices of the utilization chart, at most (default 60).
    pub max_slices: usize,
    /// Log messages kept (the latest ones; default 20).
    pub logs: usize,
    /// The lookahead that puts events in time order.
    pub merge: MergeOptions,
    /// Reads, checks, merges and decodes the file on a second thread while the calling thread
    /// analyzes the events (default true); the summary is the same either way.
    pub pipeline: bool,
}

impl Default for SummaryOptions {
    fn default() -> Self {
        SummaryOptions {
            long_poll_ns: 10_000_000,
            top: 10,
            max_slices: 60,
            logs: 20,
            merge: MergeOptions::default(),
            pipeline: true,
        }
    }
}

/// The summary of a trace file (or of the intact prefix of a damaged one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The file's path, if the caller sets it (the reader does not know it); shown first.
    pub path: Option<String>,
    /// The file's header: mode, reason, tag, process, recorder version, clock and settings.
    pub header: Header,
    /// Whether the file ends with its end record (it was written completely).
    pub complete: bool,
    /// The error that ended reading, if any: a torn or corrupt file. Everything else in the
    /// summary covers the events before it.
    pub error: Option<String>,
    /// The time span of the events, `None` when there are none.
    pub window: Option<Window>,
    /// The number of events.
    pub events: u64,
    /// Events by kind, the most frequent first (ties by kind byte).
    pub kinds: Vec<KindCount>,
    /// The threads, by id: those of the threads table and any that recorded events without
    /// being described.
    pub threads: Vec<ThreadSummary>,
    /// Bytes of the file read: the whole file when it is complete, else up to the damage.
    pub file_bytes: u64,
    /// The number of chunk records.
    pub chunks: u64,
    /// Bytes of encoded events in the chunks (without the chunks' framing and prefixes).
    pub event_bytes: u64,
    /// Data the recorder reported as dropped.
    pub dropped: Dropped,
    /// The settings the summary was made with.
    pub options: SummaryOptions,
    /// The runtimes named or seen in the file, by id.
    pub runtimes: Vec<RuntimeSummary>,
    /// All tasks together.
    pub tasks: TaskTotals,
    /// Tasks grouped by spawn location, the most run time first.
    pub locations: Vec<LocationSummary>,
    /// Scheduling latency of every poll whose wait is known.
    pub sched_latency: Latency,
    /// Polls at or above [`SummaryOptions::long_poll_ns`].
    pub long_polls: LongPolls,
    /// Worker utilization.
    pub utilization: Utilization,
    /// User tasks by name, the slowest p99 first.
    pub user_tasks: Vec<SpanGroup>,
    /// Regions by name, the slowest p99 first.
    pub regions: Vec<SpanGroup>,
    /// Log messages.
    pub logs: Logs,
    /// Counters by name.
    pub counters: Vec<CounterSummary>,
    /// What could not be paired at the window's edges.
    pub edges: EdgeStats,
    /// Events that arrived too late to be put in time order (their thread stayed quiet longer
    /// than the merge's lookahead); figures across threads may be off for them.
    pub late_events: u64,
}

/// The time span covered by a file's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The earliest event's time, nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// The latest event's time, nanoseconds since the Unix epoch.
    pub end_ns: u64,
}

impl Window {
    /// The window's length in nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns - self.start_ns
    }
}

/// The number of events of one kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindCount {
    /// The kind byte.
    pub byte: u8,
    /// The kind's name, from the file's kinds table (so kinds this version does not know are
    /// named too).
    pub name: String,
    /// How many events of this kind the file holds.
    pub count: u64,
}

/// One thread of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadSummary {
    /// The recorder's thread id.
    pub id: u64,
    /// The operating system's thread id, `None` if the threads table does not describe the
    /// thread.
    pub os_tid: Option<u64>,
    /// The thread's name (empty when unnamed or not described).
    pub name: String,
    /// How many events the thread recorded.
    pub events: u64,
}

/// A runtime: its name and threads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeSummary {
    /// The runtime id.
    pub id: u64,
    /// Its name (empty if not named in the window).
    pub name: String,
    /// Worker threads (recorder ids).
    pub workers: Vec<u64>,
    /// Blocking-pool threads.
    pub blocking: Vec<u64>,
    /// Other threads.
    pub other: Vec<u64>,
}

/// Totals over all tasks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskTotals {
    /// Tasks seen (each reuse of an id counts again).
    pub tasks: u64,
    /// Tasks whose spawn is in the window.
    pub spawned: u64,
    /// Tasks that ended in the window.
    pub ended: u64,
    /// Tasks alive at the end of the window.
    pub alive_at_end: u64,
    /// Polls.
    pub polls: u64,
    /// Time inside polls, ns.
    pub run_ns: u64,
    /// Time runnable, waiting to be polled, ns.
    pub sched_wait_ns: u64,
    /// Time waiting for a wake, ns.
    pub idle_ns: u64,
}

/// Tasks of one spawn location (Go's goroutine analysis).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocationSummary {
    /// `file:line:column`, or `unknown` for tasks without a spawn in the window.
    pub location: String,
    /// Tasks (each reuse of an id counts again).
    pub tasks: u64,
    /// Tasks alive at the end of the window.
    pub alive_at_end: u64,
    /// Polls.
    pub polls: u64,
    /// The tasks' time in the window, ns: run + scheduling wait + idle.
    pub total_ns: u64,
    /// Time inside polls, ns.
    pub run_ns: u64,
    /// Time runnable, waiting to be polled, ns.
    pub sched_wait_ns: u64,
    /// Time waiting for a wake, ns.
    pub idle_ns: u64,
    /// The longest poll, ns.
    pub longest_poll_ns: u64,
    /// Scheduling latency of this location's polls.
    pub sched_latency: Latency,
}

/// A latency distribution: percentiles and counts in the display buckets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Count, p50, p90, p99, max and mean, ns.
    pub percentiles: Percentiles,
    /// Counts below 10 µs, 10–100 µs, …, 100 ms–1 s, 1 s and more
    /// ([`crate::histogram::display_labels`]).
    pub histogram: Vec<u64>,
    /// Polls whose wait is unknown (no wake seen and no runtime measure).
    pub unknown: u64,
}

impl Latency {
    fn from_histogram(h: &Histogram, unknown: u64) -> Latency {
        Latency {
            percentiles: h.percentiles(),
            histogram: h.display_counts(),
            unknown,
        }
    }
}

/// The long polls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LongPolls {
    /// The threshold, ns.
    pub threshold_ns: u64,
    /// How many polls reached it.
    pub count: u64,
    /// Their total time, ns.
    pub total_ns: u64,
    /// The longest, longest first.
    pub top: Vec<LongPoll>,
}

/// One long poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LongPoll {
    /// The task id.
    pub task: u64,
    /// The task's spawn location (`unknown` when not seen).
    pub location: String,
    /// The polling thread (recorder id).
    pub thread: u64,
    /// The thread's name.
    pub thread_name: String,
    /// When the poll began, Unix ns.
    pub start_ns: u64,
    /// How long it ran, ns.
    pub duration_ns: u64,
    /// `pending`, `ready`, `unreported`, or `running at window end` (a poll that was still
    /// stuck when the file was written).
    pub result: String,
    /// The annotations active on the thread during the poll: open regions (`region NAME`),
    /// user tasks (`user task NAME #ID`), logs (`log CATEGORY: MESSAGE`).
    pub annotations: Vec<String>,
}

/// Worker utilization: busy time per worker, over the window and per time slice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Utilization {
    /// The start of the first slice, Unix ns.
    pub start_ns: u64,
    /// The width of a slice, ns.
    pub slice_ns: u64,
    /// The number of slices covering the window.
    pub slices: usize,
    /// The workers (threads with park/unpark events or a worker role), then other threads
    /// that polled tasks.
    pub threads: Vec<ThreadUtilization>,
}

/// One thread's utilization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadUtilization {
    /// The recorder's thread id.
    pub thread: u64,
    /// The thread's name.
    pub name: String,
    /// What busy means for this thread: `unparked` for workers with park/unpark events, else
    /// `polling` (inside polls).
    pub basis: String,
    /// Busy time, ns.
    pub busy_ns: u64,
    /// Time inside polls, ns.
    pub polling_ns: u64,
    /// Polls.
    pub polls: u64,
    /// Busy time per slice, ns.
    pub busy_per_slice: Vec<u64>,
}

/// Spans of one name: user tasks or regions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanGroup {
    /// The name.
    pub name: String,
    /// Completed spans.
    pub count: u64,
    /// Spans still open at the window's end (closed there; not in the percentiles).
    pub unfinished: u64,
    /// Latency of the completed spans, ns.
    pub latency: Percentiles,
    /// The slowest (completed or not), slowest first.
    pub slowest: Vec<SpanInstance>,
}

/// One user task or region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanInstance {
    /// The user task id (for a region: its user task, 0 if none).
    pub id: u64,
    /// The thread it began on.
    pub thread: u64,
    /// When it began, Unix ns.
    pub start_ns: u64,
    /// How long it lasted, ns (up to the window's end when unfinished).
    pub duration_ns: u64,
    /// Still open at the window's end.
    pub unfinished: bool,
}

/// Log messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Logs {
    /// Messages in the window.
    pub total: u64,
    /// Messages by category, the most first.
    pub by_category: Vec<(String, u64)>,
    /// The latest messages, oldest first.
    pub recent: Vec<LogLine>,
}

/// One log message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// When, Unix ns.
    pub time_ns: u64,
    /// The thread (recorder id).
    pub thread: u64,
    /// The category.
    pub category: String,
    /// The user task (0: none).
    pub user_task: u64,
    /// The message.
    pub message: String,
}

/// One counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterSummary {
    /// Its name.
    pub name: String,
    /// Samples in the window.
    pub samples: u64,
    /// The smallest value.
    pub min: u64,
    /// The largest value.
    pub max: u64,
    /// The last value.
    pub last: u64,
}

/// A trace that could not be read to its end: the summary of its intact prefix and the error.
#[derive(Debug)]
pub struct DamagedTrace {
    /// The summary of the events before the damage; its [`Summary::error`] holds the error's
    /// message.
    pub summary: Box<Summary>,
    /// The error that ended reading, with its byte offset.
    pub error: Error,
}

impl fmt::Display for DamagedTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for DamagedTrace {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Drives the model over `events`, calling `progress` with the bytes read now and then, and
/// returns the error that ended the file, if any.
pub fn drive<R: Read, O: Observer + ?Sized>(
    events: &mut OrderedEvents<R>,
    observer: &mut O,
    progress: &mut dyn FnMut(u64),
) -> Option<Error> {
    let mut model = Model::new();
    let mut n = 0u32;
    while let Some((ev, reader)) = events.next_with_reader() {
        model.step(reader, ev, observer);
        n = n.wrapping_add(1);
        if n & 0xffff == 0 {
            progress(reader.bytes_read());
        }
    }
    model.finish(events.reader(), observer);
    progress(events.reader().bytes_read());
    events.take_error()
}

/// Events per batch handed from the reading thread to the analyzing one (about 74 KB).
const BATCH_EVENTS: usize = 1024;
/// Batches queued between the threads, at most: with the one each thread holds, this bounds the
/// memory of the pipeline.
const BATCHES_QUEUED: usize = 4;

/// Events in time order, handed from the reading thread to the analyzing one.
#[derive(Default)]
struct Batch {
    /// Table entries the reader absorbed before it released the first event: applied to the
    /// analyzing thread's names first, so that every event sees the names the reader had when
    /// it released it (as [`drive`] does).
    entries: Vec<TableEntry>,
    events: Vec<Ev>,
}

/// Like [`drive`], in two threads: the calling thread reads the file and releases its events in
/// time order (reading, checking, merging and decoding cost about as much as the analysis) and
/// hands them in batches through a bounded queue to a scoped thread that drives the model. The
/// analyzing thread sees the names as they were when each event was released, so the result is
/// the same as [`drive`]'s. Returns the merge (with its reader at the end of the file) and the
/// error that ended the file, if any.
///
/// The reading stays on the calling thread so that the buffers it frees (the lookahead's chunks)
/// are reused by what the caller allocates next, such as the summary's text or JSON.
pub fn drive_pipelined<R: Read, O: Observer + Send + ?Sized>(
    mut events: OrderedEvents<R>,
    observer: &mut O,
    progress: &mut dyn FnMut(u64),
) -> (OrderedEvents<R>, Option<Error>) {
    let mut names = events.reader().name_tables();
    events.reader_mut().log_table_entries(true);
    let (full, full_rx) = mpsc::sync_channel::<Batch>(BATCHES_QUEUED);
    let (empty, empty_rx) = mpsc::channel::<Batch>();
    let analyzer = &mut *observer;
    let mut model = std::thread::scope(|scope| {
        let analyzing = scope.spawn(move || {
            let mut model = Model::new();
            for mut batch in full_rx.iter() {
                for entry in batch.entries.drain(..) {
                    names.apply(entry);
                }
                for ev in &batch.events {
                    model.step(&names, ev, analyzer);
                }
                batch.events.clear();
                // The reading thread may be done: the batch is then dropped.
                let _ = empty.send(batch);
            }
            model
        });
        let fresh = || {
            empty_rx.try_recv().unwrap_or_else(|_| Batch {
                events: Vec::with_capacity(BATCH_EVENTS),
                ..Batch::default()
            })
        };
        let mut batch = fresh();
        let mut n = 0u32;
        while let Some(ev) = events.next_event_mut() {
            // Moved, not cloned: the merge decodes the next event over it.
            let ev = Ev {
                payload: ev.payload.take(),
                ..*ev
            };
            if events.reader().has_table_entries() {
                if !batch.events.is_empty() {
                    let next = fresh();
                    if full.send(std::mem::replace(&mut batch, next)).is_err() {
                        break;
                    }
                }
                batch.entries = events.reader_mut().take_table_entries();
            }
            batch.events.push(ev);
            n = n.wrapping_add(1);
            if n & 0xffff == 0 {
                progress(events.reader().bytes_read());
            }
            if batch.events.len() >= BATCH_EVENTS {
                let next = fresh();
                if full.send(std::mem::replace(&mut batch, next)).is_err() {
                    break;
                }
            }
        }
        if !batch.events.is_empty() {
            let _ = full.send(batch);
        }
        drop(full);
        events.reader_mut().log_table_entries(false);
        match analyzing.join() {
            Ok(model) => model,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    model.finish(events.reader(), observer);
    progress(events.reader().bytes_read());
    let error = events.take_error();
    (events, error)
}

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
                let (runtime, role) = (ev.arg(0), ev.arg(1));
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
                let name = string_or_id(names, ev.arg(1));
                self.runtime(ev.arg(0)).name = name;
            }
            EventKind::WorkerPark | EventKind::WorkerUnpark => {
                self.threads[th].parks = true;
            }
            EventKind::Log => {
                self.logs.total += 1;
                *self.log_categories.entry(ev.arg(0)).or_default() += 1;
                if self.options.logs > 0 {
                    if self.recent_logs.len() == self.options.logs {
                        self.recent_logs.pop_front();
                    }
                    self.recent_logs.push_back(LogLine {
                        time_ns: ev.time,
                        thread: ev.thread,
                        category: string_or_id(names, ev.arg(0)),
                        user_task: ev.arg(1),
                        message: ev
                            .payload
                            .as_deref()
                            .map(|p| String::from_utf8_lossy(p).into_owned())
                            .unwrap_or_default(),
                    });
                }
            }
            EventKind::Counter => {
                let value = ev.arg(1);
                let counter = self
                    .counters
                    .entry(ev.arg(0))
                    .or_insert_with(|| CounterSummary {
                        name: string_or_id(names, ev.arg(0)),
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

impl Summary {
    /// The number of events of the kind with this name (0 if none).
    pub fn count_of(&self, kind_name: &str) -> u64 {
        self.kinds
            .iter()
            .filter(|k| k.name == kind_name)
            .map(|k| k.count)
            .sum()
    }

    /// Average encoded bytes per event, `None` without events.
    pub fn event_bytes_per_event(&self) -> Option<f64> {
        ratio(self.event_bytes, self.events)
    }

    /// Average file bytes per event (everything counted: header, tables, framing), `None`
    /// without events.
    pub fn file_bytes_per_event(&self) -> Option<f64> {
        ratio(self.file_bytes, self.events)
    }

    /// The location summary for `location` (`file:line:column`), if any.
    pub fn location(&self, location: &str) -> Option<&LocationSummary> {
        self.locations.iter().find(|l| l.location == location)
    }

    /// The user task group named `name`, if any.
    pub fn user_task(&self, name: &str) -> Option<&SpanGroup> {
        self.user_tasks.iter().find(|g| g.name == name)
    }

    /// The region group named `name`, if any.
    pub fn region(&self, name: &str) -> Option<&SpanGroup> {
        self.regions.iter().find(|g| g.name == name)
    }

    /// The name of a thread (empty if unnamed).
    pub fn thread_name(&self, id: u64) -> &str {
        self.threads
            .iter()
            .find(|t| t.id == id)
            .map_or("", |t| t.name.as_str())
    }

    /// The header's details as one line: the `trigger` detail first, then the others as
    /// `name=value` (the `suppressed.KIND` counts go to the `suppressed` line instead). `None`
    /// without details.
    fn trigger_text(&self) -> Option<String> {
        let details = &self.header.details;
        let trigger: Vec<&str> = details
            .iter()
            .filter(|(k, _)| k == "trigger")
            .map(|(_, v)| v.as_str())
            .collect();
        let others: Vec<String> = details
            .iter()
            .filter(|(k, _)| k != "trigger" && !k.starts_with("suppressed."))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        match (trigger.is_empty(), others.is_empty()) {
            (true, true) => None,
            (true, false) => Some(others.join(", ")),
            (false, true) => Some(trigger.join(", ")),
            (false, false) => Some(format!("{} ({})", trigger.join(", "), others.join(", "))),
        }
    }

    /// `N triggered dumps since the previous file (KIND N, ...)`.
    fn suppressed_text(&self) -> String {
        let kinds: Vec<String> = self
            .header
            .details
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("suppressed.")
                    .map(|kind| format!("{kind} {v}"))
            })
            .collect();
        let mut text = format!(
            "{} triggered dumps suppressed since the previous file",
            self.header.suppressed_triggers
        );
        if !kinds.is_empty() {
            let _ = write!(text, " ({})", kinds.join(", "));
        }
        text
    }

    fn edge_notes(&self) -> Vec<String> {
        let e = &self.edges;
        let mut notes = Vec::new();
        let mut note = |n: u64, what: &str| {
            if n > 0 {
                notes.push(format!("{n} {what}"));
            }
        };
        note(
            e.poll_ends_without_start,
            "poll ends without start (dropped)",
        );
        note(
            e.polls_open_at_end,
            "polls running at the end (closed there)",
        );
        note(
            e.region_ends_without_begin,
            "region ends without begin (dropped)",
        );
        note(
            e.regions_open_at_end,
            "regions open at the end (closed there)",
        );
        note(e.regions_too_deep, "region begins past depth 256 (dropped)");
        note(
            e.user_task_ends_without_begin,
            "user task ends without begin (dropped)",
        );
        note(
            e.user_tasks_open_at_end,
            "user tasks open at the end (closed there)",
        );
        notes
    }

    /// The summary as aligned text for people: facts, then the analyses (tasks by location,
    /// scheduling latency, long polls, worker utilization, user tasks, regions, logs,
    /// counters), then tables of the event kinds and the threads. Ends with a newline.
    pub fn render_text(&self) -> String {
        let h = &self.header;
        let mut facts: Vec<(&str, String)> = Vec::new();
        if let Some(path) = &self.path {
            facts.push(("trace", path.clone()));
        }
        facts.push(("mode", h.mode.clone()));
        facts.push(("reason", h.reason.clone()));
        if !h.tag.is_empty() {
            facts.push(("tag", h.tag.clone()));
        }
        facts.push(("program", format!("{} (pid {})", h.program, h.pid)));
        if !h.program_version.is_empty() {
            facts.push(("version", h.program_version.clone()));
        }
        facts.push(("host", h.host.clone()));
        if !h.cmdline.is_empty() {
            facts.push(("command", h.cmdline.clone()));
        }
        facts.push(("recorder", h.recorder_version.clone()));
        if let Some(trigger) = self.trigger_text() {
            facts.push(("trigger", trigger));
        }
        if h.suppressed_triggers != 0 {
            facts.push(("suppressed", self.suppressed_text()));
        }
        facts.push(("clock", h.clock.source.clone()));
        if h.min_age_ns != 0 || h.max_bytes != 0 {
            facts.push((
                "settings",
                format!(
                    "min_age {}, max_bytes {}, chunk_size {}",
                    format_duration(h.min_age_ns),
                    h.max_bytes,
                    h.chunk_size
                ),
            ));
        } else if h.chunk_size != 0 {
            facts.push(("settings", format!("chunk_size {}", h.chunk_size)));
        }
        facts.push((
            "complete",
            if self.complete { "yes" } else { "no" }.to_string(),
        ));
        if let Some(error) = &self.error {
            facts.push(("error", error.clone()));
        }
        match &self.window {
            Some(w) => {
                facts.push((
                    "window",
                    format!(
                        "{} .. {}",
                        format_utc_millis(w.start_ns),
                        format_utc_millis(w.end_ns)
                    ),
                ));
                facts.push(("duration", format_duration(w.duration_ns())));
            }
            None => facts.push(("window", "no events".to_string())),
        }
        facts.push(("events", self.events.to_string()));
        let workers = self
            .utilization
            .threads
            .iter()
            .filter(|t| t.basis == "unparked")
            .count();
        facts.push((
            "threads",
            format!("{} ({workers} with park/unpark)", self.threads.len()),
        ));
        for rt in &self.runtimes {
            let name = if rt.name.is_empty() {
                format!("runtime {}", rt.id)
            } else {
                format!("{} (id {})", rt.name, rt.id)
            };
            facts.push((
                "runtime",
                format!(
                    "{name}: {} workers, {} blocking, {} other threads",
                    rt.workers.len(),
                    rt.blocking.len(),
                    rt.other.len()
                ),
            ));
        }
        let t = &self.tasks;
        facts.push((
            "tasks",
            format!(
                "{} ({} spawned in the window, {} ended, {} alive at the end), {} polls",
                t.tasks, t.spawned, t.ended, t.alive_at_end, t.polls
            ),
        ));
        facts.push((
            "chunks",
            format!(
                "{} holding {} event bytes{}",
                self.chunks,
                self.event_bytes,
                per_event(self.event_bytes_per_event())
            ),
        ));
        facts.push((
            "file size",
            format!(
                "{} bytes{}",
                self.file_bytes,
                per_event(self.file_bytes_per_event())
            ),
        ));
        facts.push((
            "dropped",
            if self.dropped == Dropped::default() {
                "nothing".to_string()
            } else {
                format!(
                    "{} chunks, {} bytes",
                    self.dropped.chunks, self.dropped.bytes
                )
            },
        ));
        for note in self.edge_notes() {
            facts.push(("edges", note));
        }
        if self.late_events > 0 {
            facts.push((
                "late",
                format!(
                    "{} events out of time order (a thread quiet for longer than the lookahead)",
                    self.late_events
                ),
            ));
        }

        let mut out = String::new();
        let key_width = facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (key, value) in &facts {
            let _ = writeln!(out, "{key:<key_width$}  {value}");
        }

        self.render_locations(&mut out);
        self.render_latency(&mut out);
        self.render_long_polls(&mut out);
        self.render_utilization(&mut out);
        for (title, groups) in [("user tasks", &self.user_tasks), ("regions", &self.regions)] {
            render_groups(&mut out, title, groups, self.options.top);
        }
        self.render_logs(&mut out);
        if !self.counters.is_empty() {
            out.push_str("\ncounters\n");
            let rows: Vec<Vec<String>> = self
                .counters
                .iter()
                .map(|c| {
                    vec![
                        c.name.clone(),
                        c.samples.to_string(),
                        c.min.to_string(),
                        c.max.to_string(),
                        c.last.to_string(),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["name", "samples", "min", "max", "last"],
                &rows,
                &[false, true, true, true, true],
            );
        }

        if !self.kinds.is_empty() {
            out.push_str("\nevents by kind\n");
            let rows: Vec<Vec<String>> = self
                .kinds
                .iter()
                .map(|k| {
                    vec![
                        k.name.clone(),
                        k.count.to_string(),
                        percent(k.count, self.events),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["kind", "events", "share"],
                &rows,
                &[false, true, true],
            );
        }
        if !self.threads.is_empty() {
            out.push_str("\nthreads\n");
            let rows: Vec<Vec<String>> = self
                .threads
                .iter()
                .map(|t| {
                    vec![
                        t.id.to_string(),
                        t.os_tid
                            .map_or_else(|| "?".to_string(), |tid| tid.to_string()),
                        t.name.clone(),
                        t.events.to_string(),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["id", "os tid", "name", "events"],
                &rows,
                &[true, true, false, true],
            );
        }
        out
    }

    fn render_locations(&self, out: &mut String) {
        if self.locations.is_empty() {
            return;
        }
        let shown = self.locations.len().min(self.options.top.max(1) * 2);
        let _ = writeln!(
            out,
            "\ntasks by spawn location (run + scheduling wait + idle = the tasks' time in the window){}",
            if shown < self.locations.len() {
                format!(", the {shown} with the most run time of {}", self.locations.len())
            } else {
                String::new()
            }
        );
        let rows: Vec<Vec<String>> = self.locations[..shown]
            .iter()
            .map(|l| {
                vec![
                    l.location.clone(),
                    l.tasks.to_string(),
                    l.alive_at_end.to_string(),
                    l.polls.to_string(),
                    format_duration(l.total_ns),
                    format_duration(l.run_ns),
                    format_duration(l.sched_wait_ns),
                    format_duration(l.idle_ns),
                    format_duration(l.longest_poll_ns),
                    if l.sched_latency.percentiles.count > 0 {
                        format_duration(l.sched_latency.percentiles.p99)
                    } else {
                        "-".to_string()
                    },
                ]
            })
            .collect();
        table(
            out,
            &[
                "location",
                "tasks",
                "alive",
                "polls",
                "total",
                "run",
                "sched wait",
                "idle",
                "longest poll",
                "sched p99",
            ],
            &rows,
            &[false, true, true, true, true, true, true, true, true, true],
        );
    }

    fn render_latency(&self, out: &mut String) {
        let l = &self.sched_latency;
        if l.percentiles.count == 0 && l.unknown == 0 {
            return;
        }
        let p = &l.percentiles;
        let _ = writeln!(
            out,
            "\nscheduling latency (wake or spawn to poll): {} polls{}",
            p.count,
            if l.unknown > 0 {
                format!(", {} more with no wake seen", l.unknown)
            } else {
                String::new()
            }
        );
        if p.count == 0 {
            return;
        }
        let _ = writeln!(
            out,
            "  p50 {}  p90 {}  p99 {}  max {}  mean {}",
            format_duration(p.p50),
            format_duration(p.p90),
            format_duration(p.p99),
            format_duration(p.max),
            format_duration(p.mean)
        );
        let most = l.histogram.iter().copied().max().unwrap_or(0).max(1);
        let rows: Vec<Vec<String>> = display_labels()
            .into_iter()
            .zip(&l.histogram)
            .map(|(label, &n)| {
                let bar = (n * 40).div_ceil(most) as usize;
                vec![label, n.to_string(), "#".repeat(bar)]
            })
            .collect();
        table(out, &["wait", "polls", ""], &rows, &[false, true, false]);
        let mut by_location: Vec<&LocationSummary> = self
            .locations
            .iter()
            .filter(|l| l.sched_latency.percentiles.count > 0)
            .collect();
        if by_location.len() > 1 {
            by_location.sort_by(|a, b| {
                b.sched_latency
                    .percentiles
                    .p99
                    .cmp(&a.sched_latency.percentiles.p99)
            });
            by_location.truncate(self.options.top.max(1));
            out.push_str("  by location, the highest p99 first\n");
            let rows: Vec<Vec<String>> = by_location
                .iter()
                .map(|l| {
                    let p = &l.sched_latency.percentiles;
                    vec![
                        l.location.clone(),
                        p.count.to_string(),
                        format_duration(p.p50),
                        format_duration(p.p90),
                        format_duration(p.p99),
                        format_duration(p.max),
                    ]
                })
                .collect();
            let mut text = String::new();
            table(
                &mut text,
                &["location", "polls", "p50", "p90", "p99", "max"],
                &rows,
                &[false, true, true, true, true, true],
            );
            for line in text.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }

    fn render_long_polls(&self, out: &mut String) {
        let lp = &self.long_polls;
        let _ = writeln!(
            out,
            "\nlong polls (at least {}): {}{}",
            format_duration(lp.threshold_ns),
            lp.count,
            if lp.count > 0 {
                format!(", {} in total", format_duration(lp.total_ns))
            } else {
                String::new()
            }
        );
        if lp.top.is_empty() {
            return;
        }
        let rows: Vec<Vec<String>> = lp
            .top
            .iter()
            .map(|p| {
                vec![
                    format_duration(p.duration_ns),
                    p.task.to_string(),
                    p.location.clone(),
                    thread_label(p.thread, &p.thread_name),
                    format_utc_micros(p.start_ns),
                    p.result.clone(),
                ]
            })
            .collect();
        let mut text = String::new();
        table(
            &mut text,
            &["duration", "task", "location", "thread", "start", "result"],
            &rows,
            &[true, true, false, false, false, false],
        );
        let mut lines = text.lines();
        if let Some(header) = lines.next() {
            let _ = writeln!(out, "{header}");
        }
        for (line, poll) in lines.zip(&lp.top) {
            let _ = writeln!(out, "{line}");
            if !poll.annotations.is_empty() {
                let _ = writeln!(out, "      during: {}", poll.annotations.join("; "));
            }
        }
    }

    fn render_utilization(&self, out: &mut String) {
        let u = &self.utilization;
        if u.threads.is_empty() {
            return;
        }
        let Some(window) = self.window else {
            return;
        };
        let span = window.duration_ns().max(1);
        let _ = writeln!(
            out,
            "\nworker utilization (busy share; over time in slices of {} from {})",
            format_duration(u.slice_ns),
            format_utc_millis(u.start_ns)
        );
        let rows: Vec<Vec<String>> = u
            .threads
            .iter()
            .map(|t| {
                vec![
                    thread_label(t.thread, &t.name),
                    t.basis.clone(),
                    format!("{:.1}%", t.busy_ns as f64 * 100.0 / span as f64),
                    format!("{:.1}%", t.polling_ns as f64 * 100.0 / span as f64),
                    t.polls.to_string(),
                    sparkline(&t.busy_per_slice, u, window),
                ]
            })
            .collect();
        table(
            out,
            &[
                "thread",
                "busy when",
                "busy",
                "polling",
                "polls",
                "over time",
            ],
            &rows,
            &[false, false, true, true, true, false],
        );
    }

    fn render_logs(&self, out: &mut String) {
        let logs = &self.logs;
        if logs.total == 0 {
            return;
        }
        let categories: Vec<String> = logs
            .by_category
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "\nlogs: {} messages ({})",
            logs.total,
            categories.join(", ")
        );
        if logs.recent.len() as u64 != logs.total {
            let _ = writeln!(out, "  the latest {}:", logs.recent.len());
        }
        for line in &logs.recent {
            let task = if line.user_task != 0 {
                format!(" [user task {}]", line.user_task)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {}  {}  {}{task}: {}",
                format_utc_micros(line.time_ns),
                thread_label(line.thread, self.thread_name(line.thread)),
                line.category,
                line.message
            );
        }
    }

    /// The summary as JSON. The keys are stable:
    ///
    /// ```text
    /// {
    ///   "path": string | null,
    ///   "file": { "mode", "reason", "tag", "program", "host", "cmdline", "recorder_version",
    ///             "program_version", "clock_source": string,
    ///             "details": [ { "name", "value": string } ] (the header's details, in order,
    ///                          all of them: `trigger`, the trigger's own, `suppressed.KIND`),
    ///             "pid", "min_age_ns", "max_bytes", "chunk_size",
    ///             "suppressed_triggers": number },
    ///   "complete": bool,
    ///   "error": string | null,
    ///   "window": { "start_ns", "end_ns", "duration_ns": number,
    ///               "start", "end": string (RFC 3339 UTC, milliseconds) } | null,
    ///   "events": { "total": number, "by_kind": { kind name: number } },
    ///   "threads": [ { "id": number, "os_tid": number | null, "name": string, "events": number } ],
    ///   "size": { "file_bytes", "chunks", "event_bytes": number,
    ///             "event_bytes_per_event", "file_bytes_per_event": number | null },
    ///   "dropped": { "chunks", "bytes": number },
    ///   "options": { "long_poll_ns", "top", "max_slices", "logs", "reorder_events": number },
    ///   "runtimes": [ { "id", "name", "workers", "blocking", "other" } ],
    ///   "tasks": { "tasks", "spawned", "ended", "alive_at_end", "polls", "run_ns",
    ///              "sched_wait_ns", "idle_ns": number },
    ///   "locations": [ { "location": string, "tasks", "alive_at_end", "polls", "total_ns",
    ///                    "run_ns", "sched_wait_ns", "idle_ns", "longest_poll_ns": number,
    ///                    "sched_latency": LATENCY } ],
    ///   "sched_latency": LATENCY,
    ///   "long_polls": { "threshold_ns", "count", "total_ns": number,
    ///                   "top": [ { "task", "location", "thread", "thread_name", "start_ns",
    ///                              "start", "duration_ns", "result", "annotations": [string] } ] },
    ///   "utilization": { "start_ns", "slice_ns", "slices": number,
    ///                    "threads": [ { "thread", "name", "basis", "busy_ns", "polling_ns",
    ///                                   "polls", "busy_share": number,
    ///                                   "busy_per_slice_ns": [number] } ] },
    ///   "user_tasks", "regions": [ { "name", "count", "unfinished",
    ///                                "latency": PERCENTILES,
    ///                                "slowest": [ { "id", "thread", "start_ns", "duration_ns",
    ///                                               "unfinished" } ] } ],
    ///   "logs": { "total", "by_category": { category: number },
    ///             "recent": [ { "time_ns", "time", "thread", "category", "user_task", "message" } ] },
    ///   "counters": [ { "name", "samples", "min", "max", "last" } ],
    ///   "edges": { "poll_ends_without_start", "polls_open_at_end", "region_ends_without_begin",
    ///              "regions_open_at_end", "regions_too_deep", "user_task_ends_without_begin",
    ///              "user_tasks_open_at_end", "tasks_alive_at_end": number },
    ///   "late_events": number
    /// }
    /// LATENCY := { "count", "p50_ns", "p90_ns", "p99_ns", "max_ns", "mean_ns", "unknown": number,
    ///              "histogram": [ { "bucket": string, "count": number } ] }
    /// PERCENTILES := { "count", "p50_ns", "p90_ns", "p99_ns", "max_ns", "mean_ns": number }
    /// ```
    ///
    /// Times are nanoseconds since the Unix epoch; `threads` is ordered by id. Two kinds of one
    /// name (possible only in a hand-made file) add up under that name in `by_kind`.
    pub fn to_json(&self) -> Value {
        let h = &self.header;
        let mut by_kind = serde_json::Map::new();
        for k in &self.kinds {
            let total = by_kind.get(&k.name).and_then(Value::as_u64).unwrap_or(0) + k.count;
            by_kind.insert(k.name.clone(), json!(total));
        }
        let window = self.window.map(|w| {
            json!({
                "start_ns": w.start_ns,
                "end_ns": w.end_ns,
                "duration_ns": w.duration_ns(),
                "start": format_utc_millis(w.start_ns),
                "end": format_utc_millis(w.end_ns),
            })
        });
        let threads: Vec<Value> = self
            .threads
            .iter()
            .map(|t| {
                json!({
                    "id": t.id,
                    "os_tid": t.os_tid,
                    "name": t.name,
                    "events": t.events,
                })
            })
            .collect();
        let span = self.window.map_or(1, |w| w.duration_ns().max(1));
        let t = &self.tasks;
        let o = &self.options;
        let e = &self.edges;
        let mut categories = serde_json::Map::new();
        for (c, n) in &self.logs.by_category {
            categories.insert(c.clone(), json!(n));
        }
        json!({
            "path": self.path,
            "file": {
                "mode": h.mode,
                "reason": h.reason,
                "tag": h.tag,
                "program": h.program,
                "pid": h.pid,
                "host": h.host,
                "cmdline": h.cmdline,
                "recorder_version": h.recorder_version,
                "program_version": h.program_version,
                "details": h.details.iter().map(|(name, value)| json!({
                    "name": name,
                    "value": value,
                })).collect::<Vec<_>>(),
                "suppressed_triggers": h.suppressed_triggers,
                "clock_source": h.clock.source,
                "min_age_ns": h.min_age_ns,
                "max_bytes": h.max_bytes,
                "chunk_size": h.chunk_size,
            },
            "complete": self.complete,
            "error": self.error,
            "window": window,
            "events": {
                "total": self.events,
                "by_kind": by_kind,
            },
            "threads": threads,
            "size": {
                "file_bytes": self.file_bytes,
                "chunks": self.chunks,
                "event_bytes": self.event_bytes,
                "event_bytes_per_event": self.event_bytes_per_event(),
                "file_bytes_per_event": self.file_bytes_per_event(),
            },
            "dropped": {
                "chunks": self.dropped.chunks,
                "bytes": self.dropped.bytes,
            },
            "options": {
                "long_poll_ns": o.long_poll_ns,
                "top": o.top,
                "max_slices": o.max_slices,
                "logs": o.logs,
                "reorder_events": o.merge.reorder_events,
            },
            "runtimes": self.runtimes.iter().map(|r| json!({
                "id": r.id,
                "name": r.name,
                "workers": r.workers,
                "blocking": r.blocking,
                "other": r.other,
            })).collect::<Vec<_>>(),
            "tasks": {
                "tasks": t.tasks,
                "spawned": t.spawned,
                "ended": t.ended,
                "alive_at_end": t.alive_at_end,
                "polls": t.polls,
                "run_ns": t.run_ns,
                "sched_wait_ns": t.sched_wait_ns,
                "idle_ns": t.idle_ns,
            },
            "locations": self.locations.iter().map(|l| json!({
                "location": l.location,
                "tasks": l.tasks,
                "alive_at_end": l.alive_at_end,
                "polls": l.polls,
                "total_ns": l.total_ns,
                "run_ns": l.run_ns,
                "sched_wait_ns": l.sched_wait_ns,
                "idle_ns": l.idle_ns,
                "longest_poll_ns": l.longest_poll_ns,
                "sched_latency": latency_json(&l.sched_latency),
            })).collect::<Vec<_>>(),
            "sched_latency": latency_json(&self.sched_latency),
            "long_polls": {
                "threshold_ns": self.long_polls.threshold_ns,
                "count": self.long_polls.count,
                "total_ns": self.long_polls.total_ns,
                "top": self.long_polls.top.iter().map(|p| json!({
                    "task": p.task,
                    "location": p.location,
                    "thread": p.thread,
                    "thread_name": p.thread_name,
                    "start_ns": p.start_ns,
                    "start": format_utc_micros(p.start_ns),
                    "duration_ns": p.duration_ns,
                    "result": p.result,
                    "annotations": p.annotations,
                })).collect::<Vec<_>>(),
            },
            "utilization": {
                "start_ns": self.utilization.start_ns,
                "slice_ns": self.utilization.slice_ns,
                "slices": self.utilization.slices,
                "threads": self.utilization.threads.iter().map(|u| json!({
                    "thread": u.thread,
                    "name": u.name,
                    "basis": u.basis,
                    "busy_ns": u.busy_ns,
                    "polling_ns": u.polling_ns,
                    "polls": u.polls,
                    "busy_share": u.busy_ns as f64 / span as f64,
                    "busy_per_slice_ns": u.busy_per_slice,
                })).collect::<Vec<_>>(),
            },
            "user_tasks": self.user_tasks.iter().map(group_json).collect::<Vec<_>>(),
            "regions": self.regions.iter().map(group_json).collect::<Vec<_>>(),
            "logs": {
                "total": self.logs.total,
                "by_category": categories,
                "recent": self.logs.recent.iter().map(|l| json!({
                    "time_ns": l.time_ns,
                    "time": format_utc_micros(l.time_ns),
                    "thread": l.thread,
                    "category": l.category,
                    "user_task": l.user_task,
                    "message": l.message,
                })).collect::<Vec<_>>(),
            },
            "counters": self.counters.iter().map(|c| json!({
                "name": c.name,
                "samples": c.samples,
                "min": c.min,
                "max": c.max,
                "last": c.last,
            })).collect::<Vec<_>>(),
            "edges": {
                "poll_ends_without_start": e.poll_ends_without_start,
                "polls_open_at_end": e.polls_open_at_end,
                "region_ends_without_begin": e.region_ends_without_begin,
                "regions_open_at_end": e.regions_open_at_end,
                "regions_too_deep": e.regions_too_deep,
                "user_task_ends_without_begin": e.user_task_ends_without_begin,
                "user_tasks_open_at_end": e.user_tasks_open_at_end,
                "tasks_alive_at_end": e.tasks_alive_at_end,
            },
            "late_events": self.late_events,
        })
    }
}

fn percentiles_json(p: &Percentiles) -> Value {
    json!({
        "count": p.count,
        "p50_ns": p.p50,
        "p90_ns": p.p90,
        "p99_ns": p.p99,
        "max_ns": p.max,
        "mean_ns": p.mean,
    })
}

fn latency_json(l: &Latency) -> Value {
    let mut value = percentiles_json(&l.percentiles);
    value["unknown"] = json!(l.unknown);
    value["histogram"] = display_labels()
        .into_iter()
        .zip(&l.histogram)
        .map(|(bucket, n)| json!({"bucket": bucket, "count": n}))
        .collect();
    value
}

fn group_json(g: &SpanGroup) -> Value {
    json!({
        "name": g.name,
        "count": g.count,
        "unfinished": g.unfinished,
        "latency": percentiles_json(&g.latency),
        "slowest": g.slowest.iter().map(|s| json!({
            "id": s.id,
            "thread": s.thread,
            "start_ns": s.start_ns,
            "duration_ns": s.duration_ns,
            "unfinished": s.unfinished,
        })).collect::<Vec<_>>(),
    })
}

fn render_groups(out: &mut String, title: &str, groups: &[SpanGroup], top: usize) {
    if groups.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title}");
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            let p = &g.latency;
            let dash = |v: u64| {
                if p.count > 0 {
                    format_duration(v)
                } else {
                    "-".to_string()
                }
            };
            let slowest: Vec<String> = g
                .slowest
                .iter()
                .take(3)
                .map(|s| {
                    let id = if s.id != 0 {
                        format!("#{} ", s.id)
                    } else {
                        String::new()
                    };
                    format!(
                        "{id}{}{}",
                        format_duration(s.duration_ns),
                        if s.unfinished { "+" } else { "" }
                    )
                })
                .collect();
            vec![
                g.name.clone(),
                g.count.to_string(),
                g.unfinished.to_string(),
                dash(p.p50),
                dash(p.p90),
                dash(p.p99),
                dash(p.max),
                slowest.join(", "),
            ]
        })
        .take(top.max(1) * 2)
        .collect();
    table(
        out,
        &[
            "name",
            "count",
            "unfinished",
            "p50",
            "p90",
            "p99",
            "max",
            "slowest (+: unfinished)",
        ],
        &rows,
        &[false, true, true, true, true, true, true, false],
    );
}

fn thread_label(id: u64, name: &str) -> String {
    if name.is_empty() {
        id.to_string()
    } else {
        format!("{id}:{name}")
    }
}

/// Busy share per slice as a line of block characters (a space for an idle slice).
fn sparkline(cells: &[u64], u: &Utilization, window: Window) -> String {
    const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    cells
        .iter()
        .enumerate()
        .map(|(i, &busy)| {
            let slice_start = u
                .start_ns
                .saturating_add((i as u64).saturating_mul(u.slice_ns));
            let slice_end = slice_start
                .saturating_add(u.slice_ns)
                .min(window.end_ns.max(slice_start.saturating_add(1)));
            let width = (slice_end - slice_start).max(1);
            let share = (busy as f64 / width as f64).min(1.0);
            if busy == 0 {
                ' '
            } else {
                LEVELS[((share * 8.0).ceil() as usize).clamp(1, 8) - 1]
            }
        })
        .collect()
}

/// `2026-11-22T02:35:36.123456Z`: a UTC date to the microsecond.
pub fn format_utc_micros(unix_ns: u64) -> String {
    let millis = format_utc_millis(unix_ns);
    let micros = unix_ns / 1_000 % 1_000;
    match millis.strip_suffix('Z') {
        Some(stem) => format!("{stem}{micros:03}Z"),
        None => millis,
    }
}

fn ratio(bytes: u64, events: u64) -> Option<f64> {
    (events > 0).then(|| bytes as f64 / events as f64)
}

fn per_event(ratio: Option<f64>) -> String {
    ratio.map_or_else(String::new, |r| format!(" ({r:.2} bytes/event)"))
}

fn percent(part: u64, total: u64) -> String {
    if total == 0 {
        return String::new();
    }
    format!("{:.1}%", part as f64 * 100.0 / total as f64)
}

/// A duration for people: `950ns`, `12.345µs`, `1.500ms`, `10.000s`.
pub fn format_duration(ns: u64) -> String {
    let ns_f = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.3}µs", ns_f / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.3}ms", ns_f / 1e6)
    } else {
        format!("{:.3}s", ns_f / 1e9)
    }
}

/// Appends an indented table with a header row; `right[i]` aligns column `i` to the right.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>], right: &[bool]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            // The formatter takes widths up to u16::MAX (a longer one panics); a longer cell is
            // printed whole anyway (found by fuzzing).
            let width = widths[i].min(usize::from(u16::MAX));
            if right[i] {
                let _ = write!(line, "  {cell:>width$}");
            } else {
                let _ = write!(line, "  {cell:<width$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_a_unit() {
        assert_eq!(format_duration(0), "0ns");
        assert_eq!(format_duration(999), "999ns");
        assert_eq!(format_duration(12_345), "12.345µs");
        assert_eq!(format_duration(1_500_000), "1.500ms");
        assert_eq!(format_duration(10_000_000_000), "10.000s");
    }

    #[test]
    fn tables_align_columns() {
        let mut out = String::new();
        let rows = vec![
            vec!["poll_start".to_string(), "7".to_string()],
            vec!["log".to_string(), "12345".to_string()],
        ];
        table(&mut out, &["kind", "events"], &rows, &[false, true]);
        assert_eq!(
            out,
            "  kind        events\n  poll_start       7\n  log          12345\n"
        );
    }
}
