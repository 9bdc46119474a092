//! Computing the summary. Each analysis is an [`Observer`] of the model with its own state,
//! in its own module: events, threads and utilization ([`activity`]), tasks and scheduling
//! latency ([`tasks`]), long polls ([`long_polls`]), user tasks and regions ([`spans`]). The
//! driver runs them together in one pass, composed statically as nested pairs (see the pair
//! impl of [`Observer`]): a hook an analysis does not implement costs nothing, and a new
//! analysis is one more observer. Nothing here formats text or JSON.

use std::io::Read;

use flight_recorder_format::{Error, TraceReader};

use super::{DamagedTrace, Summary, SummaryOptions, ThreadStack};
use crate::diagnose::DiagnosisStats;
use crate::drive::{drive, drive_pipelined};
use crate::merge::{Names, OrderedEvents};
use crate::symbols::Symbolizer;

mod activity;
mod cpu;
mod long_polls;
mod spans;
mod stacks;
mod tasks;

use activity::Activity;
use cpu::CpuStats;
use long_polls::LongPollStats;
use spans::SpanStats;
use tasks::TaskStats;

/// The summary's analyses, as one observer.
type Analyses = (
    Activity,
    (
        TaskStats,
        (LongPollStats, (SpanStats, (CpuStats, DiagnosisStats))),
    ),
);

fn analyses(options: SummaryOptions) -> Analyses {
    (
        Activity::new(options),
        (
            TaskStats::default(),
            (
                LongPollStats::new(options),
                (
                    SpanStats::new(options.top),
                    (CpuStats::default(), DiagnosisStats::new(options.diagnose)),
                ),
            ),
        ),
    )
}

/// Inserts `item` into `list` (sorted by `key`, largest first) if it is among the `top`.
pub(crate) fn keep_top<T>(list: &mut Vec<T>, item: T, top: usize, key: impl Fn(&T) -> u64) {
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

pub(crate) fn string_or_id(names: &dyn Names, id: u64) -> String {
    names
        .string(id)
        .map_or_else(|| format!("#{id}"), str::to_string)
}

pub(crate) fn location_name(names: &dyn Names, id: u64) -> String {
    if id == 0 {
        return "unknown".to_string();
    }
    match names.location(id) {
        Some(l) => format!(
            "{}:{}:{}",
            crate::symbols::short_path(&l.file),
            l.line,
            l.column
        ),
        None => format!("location #{id}"),
    }
}

fn thread_name(names: &dyn Names, id: u64) -> String {
    names.thread(id).map(|t| t.name.clone()).unwrap_or_default()
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
        let mut analyses = analyses(options);
        let error = if options.pipeline {
            let (merged, error) = drive_pipelined(events, &mut analyses, progress);
            events = merged;
            error
        } else {
            drive(&mut events, &mut analyses, progress)
        };
        let late_events = events.late_events();
        let summary = build(
            analyses,
            options,
            events.reader(),
            error.as_ref(),
            late_events,
        );
        match error {
            None => Ok(summary),
            Some(error) => Err(DamagedTrace {
                summary: Box::new(summary),
                error,
            }),
        }
    }
}

/// The summary from what the analyses found and the reader at the end of the events.
fn build<R: Read>(
    (activity, (tasks, (long_polls, (spans, (cpu, diagnosis))))): Analyses,
    options: SummaryOptions,
    reader: &TraceReader<R>,
    error: Option<&Error>,
    late: u64,
) -> Summary {
    let names: &dyn Names = reader;
    let activity = activity.finish(reader);
    let (task_totals, locations, sched_latency) = tasks.finish(names);
    let (user_tasks, regions) = spans.finish(names);
    let (chunks, event_bytes) = reader.chunk_stats();
    let (mut long_polls, mut other_stacks) = long_polls.finish();
    let cpu_counts = cpu.finish();
    let mut cpu = Vec::new();
    let has_stacks =
        long_polls.top.iter().any(|p| !p.stacks.is_empty()) || !other_stacks.is_empty();
    if has_stacks || !cpu_counts.is_empty() {
        let tables = reader.name_tables();
        let mut symbolizer = Symbolizer::with_default_binaries();
        let mut resolve = |s: &mut ThreadStack| {
            if let Some(addresses) = tables.stack(s.stack) {
                s.frames = symbolizer.resolve_stack(&tables, addresses);
            }
        };
        long_polls
            .top
            .iter_mut()
            .flat_map(|p| p.stacks.iter_mut())
            .for_each(&mut resolve);
        other_stacks.iter_mut().for_each(&mut resolve);
        cpu = stacks::cpu_locations(names, &tables, &mut symbolizer, cpu_counts, options.top);
    }
    let mut summary = Summary {
        path: None,
        header: reader.header().clone(),
        complete: reader.is_complete(),
        error: error.map(Error::to_string),
        window: activity.window,
        events: activity.events,
        kinds: activity.kinds,
        threads: activity.threads,
        file_bytes: reader.bytes_read(),
        chunks,
        event_bytes,
        dropped: reader.dropped(),
        options,
        runtimes: activity.runtimes,
        tasks: task_totals,
        locations,
        sched_latency,
        long_polls,
        other_stacks,
        cpu,
        utilization: activity.utilization,
        user_tasks,
        regions,
        logs: activity.logs,
        counters: activity.counters,
        edges: activity.edges,
        late_events: late,
        diagnosis: crate::diagnose::Diagnosis::default(),
    };
    summary.diagnosis = crate::diagnose::diagnose(diagnosis, names, &summary);
    summary
}

/// `module+0xoffset` for a frame that did not resolve.
pub(crate) fn raw_frame_name(frame: &crate::symbols::ResolvedFrame) -> String {
    stacks::raw_name(frame)
}
