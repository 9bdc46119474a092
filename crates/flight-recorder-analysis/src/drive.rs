//! The drivers: they feed the events of a trace, in time order, through the model to an
//! [`Observer`], on the calling thread ([`drive`]) or in a two-thread pipeline
//! ([`drive_pipelined`]).

use std::io::Read;
use std::sync::mpsc;

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

/// Events per batch handed from the reading thread to the analyzing one (about 295 KB). Large
/// enough that the analyzing thread is seldom put to sleep and woken (two system calls) between
/// batches, which cost the reading thread a fifth of its time with batches of 1,024; small enough
/// that the batches in flight (about 2 MB) stay in the processors' caches: batches of 16,384 were
/// slower again.
const BATCH_EVENTS: usize = 4096;
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
