//! The recorder under concurrency and faults: snapshots while threads record, concurrent
//! snapshots, a full trace beside the flight recorder, failing writers, many threads.

mod common;

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{read_trace, serial, BlockingWriter, ReadTrace};
use flight_recorder::raw::{self, EventKind};
use flight_recorder::{ErrorKind, FlightRecorder, FlightRecorderConfig, FullTrace};

/// Per thread, the sequence numbers carried by `PollStart` events.
fn sequences(trace: &ReadTrace) -> std::collections::BTreeMap<u64, Vec<u64>> {
    let mut by_thread = std::collections::BTreeMap::<u64, Vec<u64>>::new();
    for event in &trace.events {
        if event.kind() == Some(EventKind::PollStart) {
            by_thread
                .entry(event.thread)
                .or_default()
                .push(event.arg(0));
        }
    }
    by_thread
}

fn assert_contiguous(seqs: &[u64]) {
    for pair in seqs.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "gap or duplicate in {:?}..",
            &seqs[..4.min(seqs.len())]
        );
    }
}

#[test]
fn snapshots_while_threads_record_are_gap_free() {
    let _serial = serial();
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(60),
        max_bytes: 8 << 20,
        ..Default::default()
    });
    fr.start().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let recorders: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    raw::record(EventKind::PollStart, &[i]);
                    i += 1;
                }
                i
            })
        })
        .collect();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(20));
        let mut bytes = Vec::new();
        fr.write_to(&mut bytes).unwrap();
        let trace = read_trace(bytes);
        let seqs = sequences(&trace);
        assert!(!seqs.is_empty());
        for seq in seqs.values() {
            assert_contiguous(seq);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in recorders {
        assert!(r.join().unwrap() > 0);
    }
    fr.stop();
}

#[test]
fn a_second_concurrent_snapshot_fails_at_once() {
    let _serial = serial();
    let fr = Arc::new(FlightRecorder::new(FlightRecorderConfig::default()));
    fr.start().unwrap();
    raw::record(EventKind::PollStart, &[1]);
    let (mut writer, reached_rx, release_tx) = BlockingWriter::new();
    let first = {
        let fr = fr.clone();
        std::thread::spawn(move || fr.write_to(&mut writer))
    };
    reached_rx.recv().unwrap();
    // The first snapshot is stuck in its writer: the second is refused, and recording goes on.
    let second = fr.write_to(&mut Vec::new());
    assert!(
        matches!(second, Err(ref e) if e.kind() == ErrorKind::SnapshotInProgress),
        "{second:?}"
    );
    assert!(second
        .unwrap_err()
        .to_string()
        .contains("already being written"));
    for i in 0..100_000 {
        raw::record(EventKind::PollStart, &[i]);
    }
    release_tx.send(()).unwrap();
    assert!(first.join().unwrap().is_ok());
    // Once it is done, snapshots work again.
    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).unwrap();
    read_trace(bytes);
    fr.stop();
}

/// A writer that fails after some bytes, like a full disk.
struct FailingWriter {
    left: usize,
}

impl Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device",
            ));
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_writer_reports_an_error_and_recording_goes_on() {
    let _serial = serial();
    let fr = FlightRecorder::new(FlightRecorderConfig::default());
    fr.start().unwrap();
    for i in 0..50_000 {
        raw::record(EventKind::PollStart, &[i]);
    }
    let result = fr.write_to(&mut FailingWriter { left: 1000 });
    match result {
        Err(e) if e.kind() == ErrorKind::Io => {
            assert_eq!(e.io_error().unwrap().kind(), io::ErrorKind::StorageFull)
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert!(fr.is_running());
    raw::record(EventKind::PollStart, &[7_777_777]);
    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).unwrap();
    let trace = read_trace(bytes);
    assert!(trace.events.iter().any(|e| e.arg(0) == 7_777_777));
    fr.stop();

    // A full trace whose writer fails: stop reports it; the process is unharmed.
    let trace = FullTrace::start(FailingWriter { left: 100_000 }).unwrap();
    for i in 0..200_000 {
        raw::record(EventKind::PollStart, &[i]);
    }
    assert!(matches!(trace.stop(), Err(e) if e.kind() == ErrorKind::Io));
    // And a failure on the header is reported by start.
    assert!(matches!(
        FullTrace::start(FailingWriter { left: 3 }),
        Err(e) if e.kind() == ErrorKind::Io
    ));
    assert!(!raw::is_running());
}

/// A `Write` into shared memory, so the test can read what a full trace wrote.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn full_trace_and_flight_recorder_run_together() {
    let _serial = serial();
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(60),
        max_bytes: 64 << 20,
        ..Default::default()
    });
    fr.start().unwrap();
    let out = SharedBuffer::default();
    let trace = FullTrace::start(out.clone()).unwrap();
    assert!(matches!(
        FullTrace::start(SharedBuffer::default()),
        Err(e) if e.kind() == ErrorKind::AnotherRecorderRunning
    ));
    let threads = 2;
    let per_thread = 300_000u64;
    let start = Arc::new(Barrier::new(threads));
    let recorded = Arc::new(Barrier::new(threads + 1));
    let release = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (start, recorded, release) = (start.clone(), recorded.clone(), release.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..per_thread {
                    raw::record(EventKind::PollStart, &[i]);
                }
                // Stay alive until the trace stops, so the last chunk is still open then.
                recorded.wait();
                release.wait();
            })
        })
        .collect();
    // Stop once the workers have recorded everything but are still alive: the trace must take
    // their last chunks from the open buffers.
    recorded.wait();
    let stats = trace.stop().unwrap();
    release.wait();
    let full = read_trace(out.0.lock().unwrap().clone());
    assert_eq!(full.reader.header().mode, "trace");
    let seqs = sequences(&full);
    assert_eq!(seqs.len(), threads);
    for seq in seqs.values() {
        // Every event from the start, nothing lost or repeated (nothing was dropped).
        assert_eq!(stats.dropped_chunks, 0);
        assert_eq!(seq.len() as u64, per_thread);
        assert_contiguous(seq);
    }
    for w in workers {
        w.join().unwrap();
    }
    // The flight recorder saw the same events.
    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).unwrap();
    fr.stop();
    let window = read_trace(bytes);
    for seq in sequences(&window).values() {
        assert_eq!(*seq.last().unwrap(), per_thread - 1);
        assert_contiguous(seq);
    }
}

#[test]
fn memory_stays_bounded_with_many_short_lived_threads() {
    let _serial = serial();
    let max_bytes = 4 << 20;
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(60),
        max_bytes,
        ..Default::default()
    });
    fr.start().unwrap();
    let before = flight_recorder::stats();
    let mut peak = 0;
    for batch in 0..10 {
        let threads: Vec<_> = (0..50)
            .map(|t| {
                std::thread::Builder::new()
                    .name(format!("short-{batch}-{t}"))
                    .spawn(|| {
                        for i in 0..2_000 {
                            raw::record(EventKind::PollStart, &[i]);
                        }
                    })
                    .unwrap()
            })
            .collect();
        peak = peak.max(flight_recorder::stats().allocated_bytes);
        for t in threads {
            t.join().unwrap();
        }
    }
    let after = flight_recorder::stats();
    let chunk = flight_recorder::chunk_size();
    // The bound: the window, one chunk per live thread, the pool of free buffers (16).
    let bound = max_bytes + (after.live_threads + 16 + 1) * chunk;
    assert!(after.allocated_bytes <= bound, "{after:?} over {bound}");
    assert!(after.window_bytes <= max_bytes, "{after:?}");
    assert_eq!(
        after.live_threads, before.live_threads,
        "exited threads still registered"
    );
    assert!(
        peak <= max_bytes + (50 + before.live_threads + 16 + 1) * chunk,
        "peak {peak}"
    );

    // The exited threads' events are in the window, with their names.
    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).unwrap();
    fr.stop();
    let trace = read_trace(bytes);
    let exits = trace
        .events
        .iter()
        .filter(|e| e.kind() == Some(EventKind::ThreadExit))
        .count();
    assert!(exits >= 100, "only {exits} thread exits in the window");
    let named = trace
        .reader
        .threads()
        .values()
        .filter(|t| t.name.starts_with("short-9-"))
        .count();
    assert_eq!(named, 50);
    // Stopping frees the window.
    assert!(flight_recorder::stats().allocated_bytes <= (after.live_threads + 16 + 1) * chunk);
}

#[test]
fn start_and_stop_race_with_recording_threads() {
    let _serial = serial();
    let stop = Arc::new(AtomicBool::new(false));
    let recorders: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    raw::record(EventKind::PollStart, &[i]);
                    let _region = flight_recorder::region("race");
                    i += 1;
                }
            })
        })
        .collect();
    let togglers: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(|| {
                let fr = FlightRecorder::new(FlightRecorderConfig::default());
                for _ in 0..200 {
                    if fr.start().is_ok() {
                        let _ = fr.write_to(&mut Vec::new());
                        fr.stop();
                    }
                }
            })
        })
        .collect();
    for t in togglers {
        t.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in recorders {
        r.join().unwrap();
    }
    assert!(!raw::is_running());
    // Everything still works afterwards.
    let fr = FlightRecorder::new(FlightRecorderConfig::default());
    fr.start().unwrap();
    raw::record(EventKind::PollStart, &[5]);
    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).unwrap();
    fr.stop();
    assert!(read_trace(bytes)
        .events
        .iter()
        .any(|e| e.kind() == Some(EventKind::PollStart) && e.arg(0) == 5));
}
