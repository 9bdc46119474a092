//! Events in time order across threads, from a file whose chunks interleave threads.
//!
//! A file holds each thread's events in time order, but the chunks of different threads are
//! interleaved in the order the recorder sealed them, so a chunk can hold events earlier than the
//! chunk before it. [`OrderedEvents`] keeps a queue of chunks per thread and releases the
//! earliest head of all queues once more than [`MergeOptions::reorder_events`] events are held
//! (read a whole chunk at a time), or at the end of the file: a k-way merge over a bounded
//! lookahead. The chunks are held as the file has them and decoded in place, one event ahead;
//! memory is bounded by the lookahead, not by the file. An event that arrives after later events were already released (a thread that stayed
//! quiet longer than the lookahead) is released at once and counted in
//! [`OrderedEvents::late_events`]: analyses see time go backwards for it and must cope.

use std::collections::{HashMap, VecDeque};
use std::io::Read;

use flight_recorder_format::event::{KindArgs, MAX_ARGS};
use flight_recorder_format::reader::RawChunk;
use flight_recorder_format::{
    Error, Header, Location, NameTables, ThreadInfo, TimeConverter, TraceReader,
};

/// Lookahead of the merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergeOptions {
    /// Events held back, at most, to put the threads' events in time order (plus one chunk;
    /// held undecoded, a few bytes each).
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

    /// The arguments by name, for an event of kind `A::KIND`: e.g.
    /// `let args::PollEnd { task, result } = event.args_as();` (arguments the event lacks are 0).
    #[inline(always)]
    pub fn args_as<A: KindArgs>(&self) -> A {
        debug_assert_eq!(self.kind, A::KIND as u8);
        A::from_args(&self.args)
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
    /// All the tables read so far (stacks, modules and symbols included), when available.
    fn tables(&self) -> Option<&NameTables> {
        None
    }
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
    fn tables(&self) -> Option<&NameTables> {
        Some(TraceReader::tables(self))
    }
}

impl Names for NameTables {
    fn string(&self, id: u64) -> Option<&str> {
        NameTables::string(self, id)
    }
    fn location(&self, id: u64) -> Option<&Location> {
        NameTables::location(self, id)
    }
    fn thread(&self, id: u64) -> Option<&ThreadInfo> {
        self.threads().get(&id)
    }
    fn kind_name(&self, byte: u8) -> Option<&str> {
        self.kind_info(byte).map(|k| k.name.as_str())
    }
    fn header(&self) -> &Header {
        NameTables::header(self)
    }
    fn tables(&self) -> Option<&NameTables> {
        Some(self)
    }
}

/// The events of a trace in time order (within the lookahead); see the module docs.
///
/// The file is read a chunk at a time ([`TraceReader::next_raw_chunk`]) and each held chunk is
/// decoded in place, one event ahead: the lookahead holds chunk buffers (a few bytes per event),
/// not decoded events.
pub struct OrderedEvents<R> {
    reader: TraceReader<R>,
    converter: TimeConverter,
    options: MergeOptions,
    queues: Queues,
    input_done: bool,
    error: Option<Error>,
}

impl<R: Read> OrderedEvents<R> {
    /// Merges the events `reader` has not returned yet.
    pub fn new(reader: TraceReader<R>, options: MergeOptions) -> OrderedEvents<R> {
        OrderedEvents {
            converter: *reader.time_converter(),
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

    /// The reader, to change what it keeps.
    pub(crate) fn reader_mut(&mut self) -> &mut TraceReader<R> {
        &mut self.reader
    }

    /// Events released after a later event had been released already.
    pub fn late_events(&self) -> u64 {
        self.queues.late
    }

    /// The error that ended the file, once every event before it has been released.
    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    /// Reads chunks until the lookahead is full or the input ends.
    #[inline(always)]
    fn fill(&mut self) {
        if !self.input_done && self.queues.held <= self.options.reorder_events
            || self.queues.spent.is_some()
        {
            self.fill_slow();
        }
    }

    /// [`OrderedEvents::fill`] when there is something to do (once per chunk).
    #[inline(never)]
    fn fill_slow(&mut self) {
        while !self.input_done && self.queues.held <= self.options.reorder_events {
            match self.reader.next_raw_chunk() {
                Ok(Some(chunk)) => {
                    let (count, valid, error) = chunk.validate();
                    if count == 0 {
                        self.reader.recycle_chunk(chunk);
                    } else if let Some(cursor) = Cursor::new(chunk, valid, count, &self.converter) {
                        self.queues.push(cursor);
                    }
                    if let Some(e) = error {
                        self.error = Some(e);
                        self.input_done = true;
                    }
                }
                Ok(None) => self.input_done = true,
                Err(e) => {
                    self.error = Some(e);
                    self.input_done = true;
                }
            }
        }
        if let Some(chunk) = self.queues.spent.take() {
            self.reader.recycle_chunk(chunk);
        }
    }

    /// The next event in time order, `None` at the end of the file or at the first error (see
    /// [`OrderedEvents::take_error`]): the events before a damaged part are all released.
    pub fn next_event(&mut self) -> Option<Ev> {
        self.next_event_ref().cloned()
    }

    /// Like [`OrderedEvents::next_event`], without copying the event: it is decoded in place in
    /// the merge's buffers and valid until the next call.
    #[inline]
    pub fn next_event_ref(&mut self) -> Option<&Ev> {
        self.next_with_reader().map(|(ev, _)| ev)
    }

    /// Like [`OrderedEvents::next_with_reader`], the event to be taken apart: its payload can be
    /// moved out (the next call decodes the following event over it); and the reader, to take
    /// the table entries it absorbed.
    #[inline]
    pub(crate) fn next_event_mut(&mut self) -> Option<(&mut Ev, &mut TraceReader<R>)> {
        self.queues.advance(&self.converter);
        self.fill();
        let ev = self.queues.pop_mut()?;
        Some((ev, &mut self.reader))
    }

    /// Like [`OrderedEvents::next_event_ref`], with the reader (for its tables).
    #[inline]
    pub fn next_with_reader(&mut self) -> Option<(&Ev, &TraceReader<R>)> {
        self.next_event_mut().map(|(ev, reader)| (&*ev, &*reader))
    }
}

/// A held chunk: its next event decoded, the rest undecoded.
struct Cursor {
    chunk: RawChunk,
    /// The next event to release.
    head: Ev,
    /// Where the event after the head starts in the chunk's bytes.
    pos: usize,
    /// The end of the chunk's intact events.
    end: usize,
    /// The head's time in stored units.
    units: u64,
    /// The chunk's intact events.
    count: usize,
}

impl Cursor {
    /// A cursor at the first of the `count` intact events (`valid` bytes) of `chunk`; `None`
    /// when it has none.
    fn new(
        chunk: RawChunk,
        valid: usize,
        count: usize,
        converter: &TimeConverter,
    ) -> Option<Cursor> {
        if count == 0 {
            return None;
        }
        let mut cursor = Cursor {
            head: Ev {
                time: 0,
                thread: chunk.thread,
                kind: 0,
                arg_count: 0,
                args: [0; MAX_ARGS],
                payload: None,
            },
            units: chunk.base_units,
            chunk,
            pos: 0,
            end: valid,
            count,
        };
        cursor.advance(converter).then_some(cursor)
    }

    /// Decodes the next event into the head; `false` when the chunk has no more.
    #[inline(always)]
    fn advance(&mut self, converter: &TimeConverter) -> bool {
        // The intact events end where the check of the chunk stopped.
        if self.pos >= self.end {
            return false;
        }
        // Validated when the chunk arrived, so this cannot fail; if it did, the chunk ends.
        match self.chunk.decode(&mut self.pos, &mut self.units) {
            Ok(event) => {
                let head = &mut self.head;
                head.time = converter.unix_ns(self.units);
                head.kind = event.kind_byte;
                head.arg_count = event.arg_count;
                head.args = event.args;
                head.payload = if event.payload.is_empty() {
                    None
                } else {
                    Some(Box::from(&self.chunk.bytes()[event.payload]))
                };
                true
            }
            Err(_) => {
                self.end = 0;
                false
            }
        }
    }
}

/// A thread's held chunks, in file order: the first one apart, for a quick look at its head.
struct Queue {
    front: Option<Cursor>,
    rest: VecDeque<Cursor>,
}

/// A min-heap of the queues' heads: (time, arrival order, queue). The arrival orders are all
/// distinct, so time and arrival order alone decide, compared as one 128-bit key; replacing the
/// top is one sift down (less work than the standard heap's pop and push).
#[derive(Default)]
struct Heads {
    items: Vec<(u128, usize)>,
}

impl Heads {
    #[inline]
    fn key(time: u64, arrival: u64) -> u128 {
        u128::from(time) << 64 | u128::from(arrival)
    }

    #[inline]
    fn item((key, queue): (u128, usize)) -> (u64, u64, usize) {
        ((key >> 64) as u64, key as u64, queue)
    }

    /// The earliest head's time.
    #[inline]
    fn first_time(&self) -> Option<u64> {
        self.items.first().map(|&(key, _)| (key >> 64) as u64)
    }

    #[cfg(test)]
    fn peek(&self) -> Option<(u64, u64, usize)> {
        self.items.first().map(|&item| Self::item(item))
    }

    fn push(&mut self, (time, arrival, queue): (u64, u64, usize)) {
        self.items.push((Self::key(time, arrival), queue));
        let mut i = self.items.len() - 1;
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.items[parent].0 <= self.items[i].0 {
                break;
            }
            self.items.swap(parent, i);
            i = parent;
        }
    }

    fn pop(&mut self) -> Option<(u64, u64, usize)> {
        if self.items.is_empty() {
            return None;
        }
        let top = self.items.swap_remove(0);
        self.sift_down();
        Some(Self::item(top))
    }

    /// If `(time, arrival)` comes after the top, puts it in the top's place with `queue` and
    /// returns the top; else `None` and nothing changes.
    #[inline]
    fn replace_top_if_later(
        &mut self,
        (time, arrival, queue): (u64, u64, usize),
    ) -> Option<(u64, u64, usize)> {
        let key = Self::key(time, arrival);
        let top = self.items.first_mut()?;
        if key <= top.0 {
            return None;
        }
        let old = std::mem::replace(top, (key, queue));
        self.sift_down();
        Some(Self::item(old))
    }

    #[inline]
    fn sift_down(&mut self) {
        let items = &mut self.items[..];
        let mut i = 0;
        loop {
            let left = 2 * i + 1;
            if left >= items.len() {
                break;
            }
            let right = left + 1;
            let child = if right < items.len() && items[right].0 < items[left].0 {
                right
            } else {
                left
            };
            if items[i].0 <= items[child].0 {
                break;
            }
            items.swap(i, child);
            i = child;
        }
    }
}

/// One queue per thread and a heap of their heads. The queue that gave the last event keeps
/// giving while its head is not later than the earliest head in the heap (a run), without heap
/// operations: threads' events come in long runs (a chunk holds thousands).
#[derive(Default)]
struct Queues {
    queues: Vec<Queue>,
    queue_of: HashMap<u64, usize>,
    last_thread: Option<(u64, usize)>,
    /// Heads of the non-empty queues other than the current one: (time, arrival order, queue).
    heads: Heads,
    /// The queue of the current run, if any, and the time its head must not pass.
    current: Option<(usize, u64)>,
    held: usize,
    arrivals: u64,
    released_up_to: u64,
    late: u64,
    /// A chunk whose events were all released, for its buffer to be reused.
    spent: Option<RawChunk>,
    /// The queue whose head was released last and is to be advanced.
    released: Option<usize>,
}

impl Queues {
    fn push(&mut self, cursor: Cursor) {
        let thread = cursor.chunk.thread;
        let queue = match self.last_thread {
            Some((last, queue)) if last == thread => queue,
            _ => {
                let next = self.queues.len();
                let queue = *self.queue_of.entry(thread).or_insert(next);
                if queue == next {
                    self.queues.push(Queue {
                        front: None,
                        rest: VecDeque::new(),
                    });
                }
                self.last_thread = Some((thread, queue));
                queue
            }
        };
        let time = cursor.head.time;
        if self.queues[queue].front.is_none() {
            match &mut self.current {
                Some((q, _)) if *q == queue => {}
                Some((_, limit)) => {
                    *limit = (*limit).min(time);
                    self.heads.push((time, self.arrivals, queue));
                }
                None => self.heads.push((time, self.arrivals, queue)),
            }
        }
        // Arrival numbers only order heads of equal time: they grow with every push.
        self.arrivals += cursor.count as u64;
        self.held += cursor.count;
        let q = &mut self.queues[queue];
        match q.front {
            None => q.front = Some(cursor),
            Some(_) => q.rest.push_back(cursor),
        }
    }

    #[inline]
    fn front_time(&self, queue: usize) -> Option<u64> {
        self.queues[queue].front.as_ref().map(|c| c.head.time)
    }

    /// Moves past the event released last.
    #[inline(always)]
    fn advance(&mut self, converter: &TimeConverter) {
        if let Some(q) = self.released.take() {
            if let Some(queue) = self.queues.get_mut(q) {
                if let Some(cursor) = &mut queue.front {
                    if !cursor.advance(converter) {
                        self.next_chunk(q);
                    }
                }
            }
        }
    }

    /// The front chunk of queue `q` is spent: the next one takes its place.
    #[inline(never)]
    fn next_chunk(&mut self, q: usize) {
        let queue = &mut self.queues[q];
        let next = queue.rest.pop_front();
        self.spent = std::mem::replace(&mut queue.front, next).map(|c| c.chunk);
    }

    /// The earliest event (within the lookahead), to be read or taken apart; it stays at the
    /// head of its queue until [`Queues::advance`].
    #[inline]
    fn pop_mut(&mut self) -> Option<&mut Ev> {
        let queue = self.pop_queue()?;
        self.queues[queue].front.as_mut().map(|c| &mut c.head)
    }

    /// Ends the current run (if any) and starts the next: the queue with the earliest head.
    #[inline(never)]
    fn end_run(&mut self) -> Option<usize> {
        // End the run: its queue goes back to the heap. Its head is later than the
        // limit, which is the earliest time in the heap, so it cannot be the minimum:
        // it takes the top's place (one sift down) instead of a push and a pop, the
        // same order either way (the keys are unique). Threads whose events interleave
        // finely end a run every event or two.
        let mut next = None;
        if let Some((q, _)) = self.current.take() {
            if let Some(front) = self.front_time(q) {
                let entry = (front, self.arrivals, q);
                self.arrivals += 1;
                next = self.heads.replace_top_if_later(entry);
                if next.is_none() {
                    self.heads.push(entry);
                }
            }
        }
        let (_, _, q) = match next {
            Some(top) => top,
            None => self.heads.pop()?,
        };
        let limit = self.heads.first_time().unwrap_or(u64::MAX);
        self.current = Some((q, limit));
        Some(q)
    }

    /// The queue of the earliest event.
    #[inline(always)]
    fn pop_queue(&mut self) -> Option<usize> {
        let queue = match self.current {
            Some((q, limit)) if self.front_time(q).is_some_and(|t| t <= limit) => q,
            _ => self.end_run()?,
        };
        let time = self.front_time(queue)?;
        self.released = Some(queue);
        self.held -= 1;
        if time < self.released_up_to {
            self.late += 1;
        } else {
            self.released_up_to = time;
        }
        Some(queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn converter() -> TimeConverter {
        flight_recorder_format::Header::decode(&[])
            .unwrap()
            .clock
            .converter()
    }

    /// A chunk of one `poll_start` at `time` on `thread`.
    fn ev(time: u64, thread: u64) -> Cursor {
        let chunk = RawChunk::new(thread, time, vec![17, 0, 0]);
        Cursor::new(chunk, 3, 1, &converter()).unwrap()
    }

    /// Drives the merge without a reader: pushes `input`, popping whenever over `cap`.
    fn merge(input: &[(u64, u64)], cap: usize) -> (Vec<u64>, u64) {
        let c = converter();
        let mut queues = Queues::default();
        let mut out = Vec::new();
        for &(t, th) in input {
            queues.push(ev(t, th));
            while queues.held > cap {
                out.push(queues.pop_mut().unwrap().time);
                queues.advance(&c);
            }
        }
        while let Some(e) = queues.pop_mut() {
            out.push(e.time);
            queues.advance(&c);
        }
        (out, queues.late)
    }

    #[test]
    fn the_heads_heap_pops_in_order() {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut heads = Heads::default();
        let mut reference = BinaryHeap::new();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for arrival in 0..20_000u64 {
            let item = (next() % 64, arrival, (next() % 7) as usize);
            match next() % 3 {
                0 if !reference.is_empty() => {
                    assert_eq!(heads.pop(), reference.pop().map(|Reverse(h)| h));
                }
                1 => {
                    let later = reference.peek().is_some_and(|Reverse(top)| item > *top);
                    let replaced = heads.replace_top_if_later(item);
                    if later {
                        let Reverse(top) = reference.pop().unwrap();
                        reference.push(Reverse(item));
                        assert_eq!(replaced, Some(top));
                    } else {
                        assert_eq!(replaced, None);
                    }
                }
                _ => {
                    heads.push(item);
                    reference.push(Reverse(item));
                }
            }
            assert_eq!(heads.peek(), reference.peek().map(|Reverse(h)| *h));
        }
        while let Some(Reverse(h)) = reference.pop() {
            assert_eq!(heads.pop(), Some(h));
        }
        assert_eq!(heads.pop(), None);
    }

    #[test]
    fn interleaved_chunks_come_out_in_time_order() {
        // Thread 2's chunk (times 1..3) comes after thread 1's (times 2..6).
        let input = [(2, 1), (4, 1), (6, 1), (1, 2), (3, 2), (5, 2)];
        assert_eq!(merge(&input, 100), (vec![1, 2, 3, 4, 5, 6], 0));
    }

    #[test]
    fn runs_stop_at_the_next_head_and_new_queues_shorten_them() {
        let c = converter();
        let mut queues = Queues::default();
        for t in [1, 2, 3, 10, 11] {
            queues.push(ev(t, 1));
        }
        queues.push(ev(5, 2));
        let mut out = vec![queues.pop_mut().unwrap().time];
        queues.advance(&c);
        out.push(queues.pop_mut().unwrap().time);
        queues.advance(&c);
        // A new thread's head at 2 arrives during the run of thread 1.
        queues.push(ev(2, 3));
        while let Some(e) = queues.pop_mut() {
            out.push(e.time);
            queues.advance(&c);
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
