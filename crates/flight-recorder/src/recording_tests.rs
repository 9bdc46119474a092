//! The recorder end to end inside the crate: threads record through the real hot path (the
//! thread-local writer, chunk refills, the window) while snapshots are taken, and the files read
//! back. Small enough for Miri, which runs these with the rest of the unit tests and checks the
//! unsafe code of the hot path, the chunk protocol and the snapshot on every access.

use std::collections::BTreeMap;
use std::time::Duration;

use flight_recorder_format::event::args;
use flight_recorder_format::{EventKind, TraceReader};

use crate::{FlightRecorder, FlightRecorderConfig};

/// Events per thread: enough to fill several chunks, few enough for Miri.
const EVENTS: u64 = if cfg!(miri) { 20_000 } else { 200_000 };
const THREADS: u64 = 2;

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
        ..Default::default()
    });
    recorder.start().expect("no other recorder runs in the unit tests");
    let writers: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(|| {
                for i in 0..EVENTS {
                    crate::counter("sequence", i);
                    if i % 1000 == 0 {
                        let _region = crate::region("every thousandth");
                        crate::log("test", "a payload that takes the payload path");
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
    assert_eq!(by_thread.len(), THREADS as usize);
    for values in by_thread.values() {
        assert!(values.iter().copied().eq(0..EVENTS), "events lost or out of order");
    }
}
