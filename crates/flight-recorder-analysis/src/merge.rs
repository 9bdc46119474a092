//! Events in time order across threads, from a file whose chunks interleave threads.
//!
//! A file holds each thread's events in time order, but the chunks of different threads are
//! interleaved in the order the recorder sealed them, so a chunk can hold events earlier than the
//! chunk before it. [`OrderedEvents`] keeps a queue per thread and releases the earliest head of
//! all queues once more than [`MergeOptions::reorder_events`] events are held, or at the end of
//! the file: a k-way merge over a bounded lookahead. Memory is bounded by that number, not by the
//! file. An event that arrives after later events were already released (a thread that stayed
//! quiet longer than the lookahead) is released at once and counted in
//! [`OrderedEvents::late_events`]: analyses see time go backwards for it and must cope.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::Read;

use flight_recorder_format::event::MAX_ARGS;
use flight_recorder_format::{Error, Event, Header, Location, ThreadInfo, TraceReader};

/// Lookahead of the merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergeOptions {
    /// Events held back, at most, to put the threads' events in time order (about 64 bytes
    /// each).
    pub reorder_events: usize,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            reorder_events: 1 << 19,
        }
    }
}

/// One event, as the analyses see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ev {
    /// When, nanoseconds since the Unix epoch.
    pub time: u64,
    /// The recorder's thread id.
    pub thread: u64,
    /// The kind byte.
    pub kind: u8,
    /// How many arguments the event has.
    pub arg_count: u8,
    /// The arguments (only the first `arg_count` are meaningful; the others are 0).
    pub args: [u64; MAX_ARGS],
    /// The payload (a log message), if any.
    pub payload: Option<Box<[u8]>>,
}

impl Ev {
    /// The `i`-th argument, or 0.
    #[inline]
    pub fn arg(&self, i: usize) -> u64 {
        if i < usize::from(self.arg_count) {
            self.args[i]
        } else {
            0
        }
    }

    fn from_event(event: Event) -> Ev {
        let mut args = [0; MAX_ARGS];
        let n = usize::from(event.arg_count).min(MAX_ARGS);
        args[..n].copy_from_slice(&event.args[..n]);
        Ev {
            time: event.time_ns,
            thread: event.thread,
            kind: event.kind_byte,
            arg_count: event.arg_count,
            args,
            payload: if event.payload.is_empty() {
                None
            } else {
                Some(event.payload.into_boxed_slice())
            },
        }
    }
}

/// Names of the ids that events carry, as far as the file has been read.
pub trait Names {
    /// The interned string with this id.
    fn string(&self, id: u64) -> Option<&str>;
    /// The source location with this id.
    fn location(&self, id: u64) -> Option<&Location>;
    /// The thread with this recorder id.
    fn thread(&self, id: u64) -> Option<&ThreadInfo>;
    /// The name of a kind byte.
    fn kind_name(&self, byte: u8) -> Option<&str>;
    /// The file's header.
    fn header(&self) -> &Header;
}

impl<R: Read> Names for TraceReader<R> {
    fn string(&self, id: u64) -> Option<&str> {
        TraceReader::string(self, id)
    }
    fn location(&self, id: u64) -> Option<&Location> {
        TraceReader::location(self, id)
    }
    fn thread(&self, id: u64) -> Option<&ThreadInfo> {
        self.threads().get(&id)
    }
    fn kind_name(&self, byte: u8) -> Option<&str> {
        self.kind_info(byte).map(|k| k.name.as_str())
    }
    fn header(&self) -> &Header {
        TraceReader::header(self)
    }
}

/// The events of a trace in time order (within the lookahead); see the module docs.
pub struct OrderedEvents<R> {
    reader: TraceReader<R>,
    options: MergeOptions,
    queues: Queues,
    input_done: bool,
    error: Option<Error>,
}

impl<R: Read> OrderedEvents<R> {
    /// Merges the events `reader` has not returned yet.
    pub fn new(reader: TraceReader<R>, options: MergeOptions) -> OrderedEvents<R> {
        OrderedEvents {
            reader,
            options: MergeOptions {
                reorder_events: options.reorder_events.max(1),
            },
            queues: Queues::default(),
            input_done: false,
            error: None,
        }
    }

    /// The reader (for its tables, header and statistics).
    pub fn reader(&self) -> &TraceReader<R> {
        &self.reader
    }

    /// Events released after a later event had been released already.
    pub fn late_events(&self) -> u64 {
        self.queues.late
    }

    /// The error that ended the file, once every event before it has been released.
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    /// The next event in time order, `None` at the end of the file or at the first error (see
    /// [`OrderedEvents::take_error`]): the events before a damaged part are all released.
    pub fn next_event(&mut self) -> Option<Ev> {
        while !self.input_done && self.queues.held <= self.options.reorder_events {
            match self.reader.next_event() {
                Ok(Some(event)) => self.queues.push(Ev::from_event(event)),
                Ok(None) => self.input_done = true,
                Err(e) => {
                    self.error = Some(e);
                    self.input_done = true;
                }
            }
        }
        self.queues.pop()
    }
}

/// One queue per thread and a heap of their heads. The queue that gave the last event keeps
/// giving while its head is not later than the earliest head in the heap (a run), without heap
/// operations: threads' events come in long runs (a chunk holds thousands).
#[derive(Default)]
struct Queues {
    queues: Vec<VecDeque<Ev>>,
    queue_of: HashMap<u64, usize>,
    last_thread: Option<(u64, usize)>,
    /// Heads of the non-empty queues other than the current one: (time, arrival order, queue).
    heads: BinaryHeap<Reverse<(u64, u64, usize)>>,
    /// The queue of the current run, if any, and the time its head must not pass.
    current: Option<(usize, u64)>,
    held: usize,
    arrivals: u64,
    released_up_to: u64,
    late: u64,
}

impl Queues {
    fn push(&mut self, ev: Ev) {
        let queue = match self.last_thread {
            Some((thread, queue)) if thread == ev.thread => queue,
            _ => {
                let next = self.queues.len();
                let queue = *self.queue_of.entry(ev.thread).or_insert(next);
                if queue == next {
                    self.queues.push(VecDeque::new());
                }
                self.last_thread = Some((ev.thread, queue));
                queue
            }
        };
        if self.queues[queue].is_empty() {
            match &mut self.current {
                Some((q, _)) if *q == queue => {}
                Some((_, limit)) => {
                    *limit = (*limit).min(ev.time);
                    self.heads.push(Reverse((ev.time, self.arrivals, queue)));
                }
                None => self.heads.push(Reverse((ev.time, self.arrivals, queue))),
            }
        }
        self.arrivals += 1;
        self.queues[queue].push_back(ev);
        self.held += 1;
    }

    fn pop(&mut self) -> Option<Ev> {
        let queue = match self.current {
            Some((q, limit)) if self.queues[q].front().is_some_and(|e| e.time <= limit) => q,
            _ => {
                // End the run: its queue goes back to the heap.
                if let Some((q, _)) = self.current.take() {
                    if let Some(front) = self.queues[q].front() {
                        self.heads.push(Reverse((front.time, self.arrivals, q)));
                        self.arrivals += 1;
                    }
                }
                let Reverse((_, _, q)) = self.heads.pop()?;
                let limit = self.heads.peek().map_or(u64::MAX, |Reverse(h)| h.0);
                self.current = Some((q, limit));
                q
            }
        };
        let ev = self.queues[queue].pop_front()?;
        self.held -= 1;
        if ev.time < self.released_up_to {
            self.late += 1;
        } else {
            self.released_up_to = ev.time;
        }
        Some(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(time: u64, thread: u64) -> Ev {
        Ev {
            time,
            thread,
            kind: 17,
            arg_count: 1,
            args: [0; MAX_ARGS],
            payload: None,
        }
    }

    /// Drives the merge without a reader: pushes `input`, popping whenever over `cap`.
    fn merge(input: &[(u64, u64)], cap: usize) -> (Vec<u64>, u64) {
        let mut queues = Queues::default();
        let mut out = Vec::new();
        for &(t, th) in input {
            queues.push(ev(t, th));
            while queues.held > cap {
                out.push(queues.pop().unwrap().time);
            }
        }
        while let Some(e) = queues.pop() {
            out.push(e.time);
        }
        (out, queues.late)
    }

    #[test]
    fn interleaved_chunks_come_out_in_time_order() {
        // Thread 2's chunk (times 1..3) comes after thread 1's (times 2..6).
        let input = [(2, 1), (4, 1), (6, 1), (1, 2), (3, 2), (5, 2)];
        assert_eq!(merge(&input, 100), (vec![1, 2, 3, 4, 5, 6], 0));
    }

    #[test]
    fn runs_stop_at_the_next_head_and_new_queues_shorten_them() {
        let mut queues = Queues::default();
        for t in [1, 2, 3, 10, 11] {
            queues.push(ev(t, 1));
        }
        queues.push(ev(5, 2));
        let mut out = vec![queues.pop().unwrap().time, queues.pop().unwrap().time];
        // A new thread's head at 2 arrives during the run of thread 1.
        queues.push(ev(2, 3));
        while let Some(e) = queues.pop() {
            out.push(e.time);
        }
        assert_eq!(out, [1, 2, 2, 3, 5, 10, 11]);
        assert_eq!(queues.late, 0);
    }

    #[test]
    fn a_small_lookahead_releases_late_events_and_counts_them() {
        let input = [(2, 1), (4, 1), (6, 1), (1, 2), (3, 2), (5, 2)];
        let (out, late) = merge(&input, 2);
        assert_eq!(out.len(), 6);
        assert!(late > 0);
    }
}
