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
//! ([`drive_pipelined`](crate::drive::drive_pipelined), [`SummaryOptions::pipeline`]); the
//! summary is the same either way.
//!
//! Computing is kept apart from presenting: the analyses (`summary/build/`, one observer of the
//! model each: events and utilization, tasks, long polls, user tasks and regions) only fill the
//! types of this module; [`Summary::render_text`] (`summary/text.rs`) and [`Summary::to_json`]
//! (`summary/json.rs`) only read them.

use std::fmt;

use flight_recorder_format::{Dropped, Error, Header};

use crate::histogram::{Histogram, Percentiles};
use crate::merge::MergeOptions;
use crate::model::EdgeStats;

pub(crate) mod build;
pub(crate) use build::raw_frame_name;
mod json;
pub(crate) mod stacks_text;
mod text;

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
    /// The thresholds of the diagnosis rules.
    pub diagnose: crate::diagnose::DiagnoseOptions,
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
            diagnose: crate::diagnose::DiagnoseOptions::default(),
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
    /// What is wrong in the window (findings, the most severe first) and where the slowest
    /// user tasks waited.
    pub diagnosis: crate::diagnose::Diagnosis,
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
    /// Stacks of threads taken outside any poll (a stuck worker with no poll events), the
    /// latest 8.
    pub other_stacks: Vec<ThreadStack>,
    /// Where CPU time went, per spawn location, most samples first (empty without samples).
    pub cpu: Vec<CpuLocation>,
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
    /// How long this location's polls ran, the polls that ended in the window (`unknown` is 0).
    pub poll_duration: Latency,
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
    /// The stacks of the polling thread taken during the poll (`thread_stack` events on that
    /// thread, or naming that task), in time order; at most 8.
    pub stacks: Vec<ThreadStack>,
}

/// A stack of a thread, from a `thread_stack` event, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadStack {
    /// When it was recorded, Unix ns.
    pub time_ns: u64,
    /// The thread whose stack it is.
    pub thread: u64,
    /// The task that thread was polling (0: none or unknown).
    pub task: u64,
    /// Why: 1 a poll past the slow-poll threshold, 2 a worker busy with no events, 3 a fatal
    /// signal.
    pub cause: u64,
    /// The stack id in the file (0: the capture failed).
    pub stack: u64,
    /// The frames, innermost first.
    pub frames: Vec<crate::symbols::ResolvedFrame>,
}

impl ThreadStack {
    /// Whether the stack looks cut short: its outermost frame is not a thread's entry
    /// (`start_thread`, `clone`, `thread_start`, `main`, `_start`).
    pub fn looks_truncated(&self) -> bool {
        crate::symbols::looks_truncated(&self.frames)
    }
}

/// Where CPU time went for one spawn location, from `cpu_sample` events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuLocation {
    /// The spawn location (`unknown`; `outside polls` for samples of no poll).
    pub location: String,
    /// Samples attributed to it.
    pub samples: u64,
    /// The functions seen in its samples, highest total first (at most `top`).
    pub functions: Vec<CpuFunction>,
    /// Its samples as folded stacks (`outermost;…;innermost`, with counts), for flame graphs.
    pub folded: Vec<(String, u64)>,
    /// The first application function (`function at file:line`) of its most frequent stack
    /// that has one: what a location inside a library ran.
    pub app_frame: Option<String>,
}

/// One function of a [`CpuLocation`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuFunction {
    /// The function (its name, or `module+0xoffset` when unresolved).
    pub function: String,
    /// Where (short path and line of its innermost occurrence), if known.
    pub location: String,
    /// Samples whose innermost frame is in it.
    pub self_samples: u64,
    /// Samples with it anywhere on the stack.
    pub total_samples: u64,
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

impl Summary {
    /// When the file has a runtime's worker threads but none of its tasks (no spawn or poll
    /// event at all), a sentence saying so and which build setting would record them.
    pub fn unrecorded_tasks_note(&self) -> Option<String> {
        if self.tasks.tasks > 0 || self.tasks.polls > 0 {
            return None;
        }
        let rt = self.runtimes.iter().find(|r| !r.workers.is_empty())?;
        let name = if rt.name.is_empty() {
            format!("runtime {}", rt.id)
        } else {
            rt.name.clone()
        };
        Some(format!(
            "{name}'s worker threads were recorded but none of its tasks (no spawn or poll \
             events): build with RUSTFLAGS=\"--cfg tokio_unstable\" to record every task, or \
             spawn them with flight_recorder::tokio::spawn"
        ))
    }

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
}

fn ratio(bytes: u64, events: u64) -> Option<f64> {
    (events > 0).then(|| bytes as f64 / events as f64)
}
