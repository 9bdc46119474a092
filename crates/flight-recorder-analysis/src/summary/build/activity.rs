//! Events, threads and their busy time: the events by kind and thread, the runtimes, the logs
//! and counters (the events the model does not report), and the worker utilization.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;

use flight_recorder_format::{args, EventKind, TraceReader};

use super::{string_or_id, thread_name};
use crate::dense::DenseIds;
use crate::merge::{Ev, Names};
use crate::model::{role, EdgeStats, IdMap, Note, Observer, OpenRegion, PollEnd};
use crate::summary::{
    CounterSummary, KindCount, LogLine, Logs, RuntimeSummary, SummaryOptions, ThreadSummary,
    ThreadUtilization, Utilization, Window,
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

/// The analysis of events, threads and busy time (see the module's docs).
pub(super) struct Activity {
    options: SummaryOptions,
    by_kind: Vec<u64>,
    events: u64,
    runtimes: BTreeMap<u64, RuntimeSummary>,
    /// Thread ids to indices in `threads`: every thread with an event has one.
    thread_ids: DenseIds,
    threads: Vec<ThreadAcc>,
    slices: TimeSlices,
    logs: Logs,
    log_categories: IdMap<u64>,
    recent_logs: VecDeque<LogLine>,
    counters: BTreeMap<u64, CounterSummary>,
    window: Option<(u64, u64)>,
    edges: EdgeStats,
}

/// What [`Activity`] found, for the summary.
pub(super) struct ActivityParts {
    pub(super) events: u64,
    pub(super) kinds: Vec<KindCount>,
    pub(super) threads: Vec<ThreadSummary>,
    pub(super) window: Option<Window>,
    pub(super) runtimes: Vec<RuntimeSummary>,
    pub(super) utilization: Utilization,
    pub(super) logs: Logs,
    pub(super) counters: Vec<CounterSummary>,
    pub(super) edges: EdgeStats,
}

impl Activity {
    pub(super) fn new(options: SummaryOptions) -> Activity {
        Activity {
            options,
            by_kind: vec![0; 256],
            events: 0,
            runtimes: BTreeMap::new(),
            thread_ids: DenseIds::default(),
            threads: Vec::new(),
            slices: TimeSlices::new(options.max_slices),
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

    /// The thread's index in `threads`.
    #[inline]
    fn thread(&mut self, id: u64) -> usize {
        let (th, new) = self.thread_ids.index(id);
        if new {
            self.threads.push(ThreadAcc::default());
        }
        th
    }

    /// The index in `threads` of the thread the model numbers `index`, whose id is `id`: the
    /// same number, as the model numbers threads as `thread_ids` does (by first event), which
    /// saves the lookup.
    #[inline]
    fn thread_at(&mut self, index: usize, id: u64) -> usize {
        if self.thread_ids.ids().get(index) == Some(&id) {
            index
        } else {
            self.thread(id)
        }
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

impl Observer for Activity {
    fn event(&mut self, names: &dyn Names, ev: &Ev) {
        let th = self.thread(ev.thread);
        self.event_at(names, ev, th);
    }

    #[inline]
    fn event_on_thread(&mut self, names: &dyn Names, ev: &Ev, thread_index: usize) {
        let th = self.thread_at(thread_index, ev.thread);
        self.event_at(names, ev, th);
    }

    fn poll_end(
        &mut self,
        _names: &dyn Names,
        poll: &PollEnd,
        _stack: &[OpenRegion],
        _notes: &[Note],
    ) {
        let duration = poll.duration();
        let th = self.thread_at(poll.thread_index, poll.thread);
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

impl Activity {
    /// The events, threads, runtimes, utilization, logs and counters, with the names of `reader`.
    pub(super) fn finish<R: Read>(self, reader: &TraceReader<R>) -> ActivityParts {
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

        ActivityParts {
            events: self.events,
            kinds,
            threads: threads.into_values().collect(),
            window,
            runtimes: self.runtimes.into_values().collect(),
            utilization: Utilization {
                start_ns: slices.origin.unwrap_or(0),
                slice_ns: slices.width,
                slices: slice_count,
                threads: util_threads,
            },
            logs,
            counters: self.counters.into_values().collect(),
            edges: self.edges,
        }
    }
}
