//! The recorder end to end inside the crate: threads record through the real hot path (the
//! thread-local writer, chunk refills, the window) while snapshots are taken, and the files read
//! back. Small enough for Miri, which runs these with the rest of the unit tests and checks the
//! unsafe code of the hot path, the chunk protocol and the snapshot on every access.

use std::collections::BTreeMap;
use std::time::Duration;

use flight_recorder_format::event::args;
use flight_recorder_format::{EventKind, TraceReader};

use crate::{FlightRecorder, FlightRecorderConfig};

/// Counter events per thread, few enough for Miri; with the payloads below they fill several
/// chunks, so refills and sealing into the window run too.
const EVENTS: u64 = if cfg!(miri) { 1_000 } else { 20_000 };
const THREADS: u64 = 2;

/// A log payload every `LOG_EVERY` counters, of `LOG_BYTES`: a chunk holds about 30 of them.
const LOG_EVERY: u64 = 10;
const LOG_BYTES: usize = 2_000;

/// The counter values of each thread in a file, in file order.
fn counters_by_thread(file: &[u8]) -> BTreeMap<u64, Vec<u64>> {
    let mut reader = TraceReader::new(file).expect("a trace file");
    let mut by_thread: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    while let Some(event) = reader.next_event().expect("an intact file") {
        if event.kind() == Some(EventKind::Counter) {
            let args::Counter { value, .. } = event.args_as();
            by_thread.entry(event.thread).or_default().push(value);
        }
    }
    assert!(reader.is_complete());
    by_thread
}

#[test]
fn threads_record_while_snapshots_are_taken() {
    let recorder = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(600),
        max_bytes: 64 << 20,
    });
    recorder.start().expect("no other recorder runs in the unit tests");
    let writers: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(|| {
                let payload = "x".repeat(LOG_BYTES);
                for i in 0..EVENTS {
                    crate::counter("sequence", i);
                    if i % LOG_EVERY == 0 {
                        let _region = crate::region("every tenth");
                        crate::log("test", &payload);
                    }
                }
            })
        })
        .collect();
    // A snapshot while the threads record: each thread's values are a gap-free run from 0.
    let mut during = Vec::new();
    recorder.write_to(&mut during).expect("a snapshot");
    for writer in writers {
        writer.join().expect("a writer thread");
    }
    for values in counters_by_thread(&during).values() {
        assert!(values.iter().copied().eq(0..values.len() as u64), "gap or duplicate");
    }
    // After they exited (their open chunks sealed into the window): everything, in order.
    let mut after = Vec::new();
    recorder.write_to(&mut after).expect("a snapshot");
    recorder.stop();
    let by_thread = counters_by_thread(&after);
    let mut reader = TraceReader::new(&after[..]).expect("a trace file");
    while reader.next_event().expect("an intact file").is_some() {}
    let (chunks, _) = reader.chunk_stats();
    assert!(chunks > 2 * THREADS, "the threads filled several chunks each");
    assert_eq!(by_thread.len(), THREADS as usize);
    for values in by_thread.values() {
        assert!(values.iter().copied().eq(0..EVENTS), "events lost or out of order");
    }
}
