//! The drivers: they feed the events of a trace, in time order, through the model to an
//! [`Observer`], on the calling thread ([`drive`]) or in a two-thread pipeline
//! ([`drive_pipelined`]).

use std::io::Read;
use std::sync::mpsc;

use flight_recorder_format::event::MAX_ARGS;
use flight_recorder_format::{Error, TableEntry};

use crate::merge::{Ev, OrderedEvents};
use crate::model::{Model, Observer};

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

/// Events per batch handed from the reading thread to the analyzing one (at most 229 KB packed,
/// half that on most traces). Large enough that the analyzing thread is seldom put to sleep and
/// woken (two system calls) between batches, which cost the reading thread a fifth of its time
/// with batches of 1,024; small enough that the batches in flight (at most 1.4 MB) stay in the
/// processors' caches: batches of 16,384 were slower again.
const BATCH_EVENTS: usize = 4096;
/// Batches queued between the threads, at most: with the one each thread holds, this bounds the
/// memory of the pipeline.
const BATCHES_QUEUED: usize = 4;

/// Events in time order, handed from the reading thread to the analyzing one, packed: most
/// events have one or two arguments and come in runs from one thread, so a packed event takes
/// about 30 bytes where an [`Ev`] takes 72. The batch is written by one processor and read by
/// the other, and each of its cache lines crosses between them: fewer lines, less waiting.
struct Batch {
    /// Table entries the reader absorbed before it released the first event: applied to the
    /// analyzing thread's names first, so that every event sees the names the reader had when
    /// it released it (as [`drive`] does).
    entries: Vec<TableEntry>,
    /// Per event: a header word (kind, argument count, flags), the time, the arguments, then
    /// the thread if it differs from the event before's in the batch. `BATCH_WORDS` long, and
    /// written a whole event's worth of words at a time.
    words: Box<[u64]>,
    /// The words in use.
    len: usize,
    /// The events in the batch.
    events: usize,
    /// The thread of the batch's last event.
    thread: Option<u64>,
    /// The events' payloads, in order.
    payloads: Vec<Box<[u8]>>,
}

/// Where a packed event's header word holds its argument count (the kind byte is the low byte).
const ARG_COUNT_SHIFT: u32 = 8;
/// Header flag: the event's payload is the batch's next one.
const HAS_PAYLOAD: u64 = 1 << 16;
/// Header flag: the event's thread follows its arguments (else it is the event before's).
const NEW_THREAD: u64 = 1 << 17;
/// Words an event takes at most: header, time, arguments, thread.
const EVENT_WORDS: usize = 3 + MAX_ARGS;
/// Words a batch holds: `BATCH_EVENTS` events of the most words.
const BATCH_WORDS: usize = BATCH_EVENTS * EVENT_WORDS;

impl Batch {
    fn new() -> Batch {
        Batch {
            entries: Vec::new(),
            words: vec![0; BATCH_WORDS].into_boxed_slice(),
            len: 0,
            events: 0,
            thread: None,
            payloads: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.events == 0
    }

    fn is_full(&self) -> bool {
        self.events >= BATCH_EVENTS
    }

    fn clear(&mut self) {
        self.len = 0;
        self.events = 0;
        self.thread = None;
        self.payloads.clear();
    }

    /// Appends `ev`, taking its payload; `false` (and nothing appended) when the batch is full.
    #[inline(always)]
    fn push(&mut self, ev: &mut Ev) -> bool {
        if self.is_full() {
            return false;
        }
        let at = self.len;
        // Never short: `BATCH_WORDS` holds `BATCH_EVENTS` events of the most words.
        let Some(slot) = self.words.get_mut(at..at + EVENT_WORDS) else {
            return false;
        };
        let argc = usize::from(ev.arg_count).min(MAX_ARGS);
        let new_thread = self.thread != Some(ev.thread);
        let mut header = u64::from(ev.kind) | u64::from(ev.arg_count) << ARG_COUNT_SHIFT;
        if let Some(payload) = ev.payload.take() {
            header |= HAS_PAYLOAD;
            self.payloads.push(payload);
        }
        if new_thread {
            header |= NEW_THREAD;
            self.thread = Some(ev.thread);
        }
        // Every word an event may take, at once (the ones past this event's are overwritten by
        // the next); the arguments a word at a time, as the decoder stored them, which the
        // processor forwards from its pending stores (a wider load would wait for them).
        slot[0] = header;
        slot[1] = ev.time;
        slot[2] = ev.args[0];
        slot[3] = ev.args[1];
        slot[4] = ev.args[2];
        slot[5] = ev.args[3];
        slot[2 + argc] = ev.thread;
        self.len = at + 2 + argc + usize::from(new_thread);
        self.events += 1;
        true
    }

    /// Calls `f` with each event in order; their payloads are moved out.
    #[inline(always)]
    fn for_each(&mut self, mut f: impl FnMut(&Ev)) {
        let mut ev = Ev {
            time: 0,
            thread: 0,
            kind: 0,
            arg_count: 0,
            args: [0; MAX_ARGS],
            payload: None,
        };
        let mut payloads = self.payloads.drain(..);
        let mut at = 0;
        for _ in 0..self.events {
            let Some(slot) = self.words.get(at..at + EVENT_WORDS) else {
                return;
            };
            let header = slot[0];
            ev.time = slot[1];
            ev.kind = header as u8;
            ev.arg_count = (header >> ARG_COUNT_SHIFT) as u8;
            let argc = usize::from(ev.arg_count).min(MAX_ARGS);
            // The words past the arguments belong to the thread or the next event: 0 instead.
            for (i, arg) in ev.args.iter_mut().enumerate() {
                *arg = if i < argc { slot[2 + i] } else { 0 };
            }
            at += 2 + argc;
            if header & NEW_THREAD != 0 {
                ev.thread = slot[2 + argc];
                at += 1;
            }
            ev.payload = if header & HAS_PAYLOAD != 0 {
                payloads.next()
            } else {
                None
            };
            f(&ev);
        }
    }
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
                batch.for_each(|ev| model.step(&names, ev, analyzer));
                batch.clear();
                // The reading thread may be done: the batch is then dropped.
                let _ = empty.send(batch);
            }
            model
        });
        let fresh = || empty_rx.try_recv().unwrap_or_else(|_| Batch::new());
        let mut batch = fresh();
        let mut n = 0u32;
        while let Some((ev, reader)) = events.next_event_mut() {
            if reader.has_table_entries() {
                if !batch.is_empty() {
                    let next = fresh();
                    if full.send(std::mem::replace(&mut batch, next)).is_err() {
                        break;
                    }
                }
                batch.entries = reader.take_table_entries();
            }
            // Never full here: a full batch is sent at once.
            let pushed = batch.push(ev);
            debug_assert!(pushed);
            n = n.wrapping_add(1);
            if n & 0xffff == 0 {
                progress(reader.bytes_read());
            }
            if batch.is_full() {
                let next = fresh();
                if full.send(std::mem::replace(&mut batch, next)).is_err() {
                    break;
                }
            }
        }
        if !batch.is_empty() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(thread: u64, time: u64, kind: u8, args: &[u64], payload: Option<&[u8]>) -> Ev {
        let mut all = [0; MAX_ARGS];
        all[..args.len()].copy_from_slice(args);
        Ev {
            time,
            thread,
            kind,
            arg_count: args.len() as u8,
            args: all,
            payload: payload.map(Box::from),
        }
    }

    #[test]
    fn a_batch_gives_back_the_events_it_was_given() {
        let mut events = Vec::new();
        for i in 0..BATCH_EVENTS as u64 {
            // Threads in runs and alone, every argument count, payloads now and then, and
            // values that use every bit.
            let thread = if i % 7 == 0 { u64::MAX - i } else { i / 100 };
            let args: Vec<u64> = (0..(i % 5)).map(|a| u64::MAX - i * 31 - a).collect();
            let payload = (i % 11 == 3).then(|| format!("message {i}").into_bytes());
            events.push(ev(
                thread,
                i * 1_000_003,
                (i % 256) as u8,
                &args,
                payload.as_deref(),
            ));
        }
        events.push(ev(0, 0, 0, &[], Some(b"")));
        let mut batch = Batch::new();
        for round in 0..2 {
            for e in &events[..BATCH_EVENTS] {
                assert!(!batch.is_full());
                assert!(batch.push(&mut e.clone()));
            }
            assert!(batch.is_full(), "round {round}");
            assert!(!batch.push(&mut events[BATCH_EVENTS].clone()));
            let mut seen = Vec::new();
            batch.for_each(|e| seen.push(e.clone()));
            assert_eq!(seen.len(), BATCH_EVENTS);
            for (i, (seen, sent)) in seen.iter().zip(&events).enumerate() {
                assert_eq!(seen, sent, "event {i}, round {round}");
            }
            // Reused, as the pipeline reuses its batches.
            batch.clear();
            assert!(batch.is_empty());
        }
        // An empty payload stays an empty payload, and the next batch starts with its thread.
        let mut last = events[BATCH_EVENTS].clone();
        assert!(batch.push(&mut last));
        assert!(last.payload.is_none(), "the payload is taken");
        let mut seen = Vec::new();
        batch.for_each(|e| seen.push(e.clone()));
        assert_eq!(seen, vec![events[BATCH_EVENTS].clone()]);
    }
}
