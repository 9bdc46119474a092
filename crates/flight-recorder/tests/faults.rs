//! Faults the recorder must survive (docs/RELIABILITY.md): thousands of threads created and
//! exiting while it records, a recorder stopped under writing threads, a snapshot whose writer
//! blocks while recording goes on, and a process killed with SIGKILL in the middle of writing a
//! snapshot file. (Failing writers, start/stop races, an unwritable directory and a full disk
//! are in `concurrency.rs`, `capture_faults.rs` and `snapshot.rs`.)

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{read_trace, serial, BlockingWriter};
use flight_recorder::raw::{self, EventKind};
use flight_recorder::{FlightRecorder, FlightRecorderConfig, FullTrace};
use flight_recorder_format::TraceReader;

/// Threads created and exiting while recording, in batches.
const THREADS: usize = 2_400;
const BATCH: usize = 200;

#[test]
fn thousands_of_threads_exit_while_recording_and_snapshots_run() {
    let _serial = serial();
    let max_bytes = 2 << 20;
    let fr = Arc::new(FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(60),
        max_bytes,
        ..Default::default()
    }));
    fr.start().unwrap();
    let before = flight_recorder::stats();
    let chunk = flight_recorder::chunk_size();
    // Snapshots run the whole time, each read back completely.
    let done = Arc::new(AtomicBool::new(false));
    let snapshotter = {
        let fr = fr.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut snapshots = 0;
            while !done.load(Ordering::Relaxed) {
                let mut bytes = Vec::new();
                fr.write_to(&mut bytes).unwrap();
                read_trace(bytes);
                snapshots += 1;
            }
            snapshots
        })
    };
    let mut peak = 0;
    for batch in 0..THREADS / BATCH {
        let start = Arc::new(Barrier::new(BATCH + 1));
        let end = Arc::new(Barrier::new(BATCH + 1));
        let threads: Vec<_> = (0..BATCH)
            .map(|t| {
                let start = start.clone();
                let end = end.clone();
                std::thread::Builder::new()
                    .name(format!("many-{batch}-{t}"))
                    .spawn(move || {
                        let _region = flight_recorder::region("short_life");
                        raw::record(EventKind::PollStart, &[t as u64]);
                        // Every thread of the batch is alive and registered at once.
                        start.wait();
                        for i in 0..200 {
                            raw::record(EventKind::PollStart, &[i]);
                        }
                        // Alive until the main thread has looked at the figures.
                        end.wait();
                        flight_recorder::log("exit", "bye");
                    })
                    .unwrap()
            })
            .collect();
        start.wait();
        let live = flight_recorder::stats();
        end.wait();
        assert!(
            live.live_threads >= before.live_threads + BATCH,
            "batch {batch}: {before:?} then {live:?}"
        );
        peak = peak.max(live.allocated_bytes);
        for t in threads {
            t.join().unwrap();
        }
    }
    done.store(true, Ordering::Relaxed);
    let snapshots = snapshotter.join().unwrap();
    assert!(snapshots > 0);

    let after = flight_recorder::stats();
    assert_eq!(
        after.live_threads, before.live_threads,
        "exited threads kept"
    );
    // The window, one chunk per live thread (the snapshotter's and the harness's), the pool.
    let bound = max_bytes + (after.live_threads + 16 + 1) * chunk;
    assert!(after.allocated_bytes <= bound, "{after:?} over {bound}");
    // At the peak a whole batch is alive, and a snapshot may pin what the window evicts.
    let peak_bound = 2 * max_bytes + (2 * (BATCH + before.live_threads + 2) + 17) * chunk;
    assert!(peak <= peak_bound, "peak {peak} over {peak_bound}");

    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).unwrap();
    fr.stop();
    let trace = read_trace(bytes);
    let last_batch = THREADS / BATCH - 1;
    let named = trace
        .reader
        .threads()
        .values()
        .filter(|t| t.name.starts_with(&format!("many-{last_batch}-")))
        .count();
    assert_eq!(named, BATCH, "the last batch's threads are described");
    let exits = trace
        .events
        .iter()
        .filter(|e| e.kind() == Some(EventKind::ThreadExit))
        .count();
    assert!(exits >= BATCH, "only {exits} thread exits in the window");
    eprintln!(
        "{THREADS} threads in batches of {BATCH}: {snapshots} snapshots during, peak {} KiB, \
         after {} KiB",
        peak >> 10,
        after.allocated_bytes >> 10
    );
}

/// Writing threads that count their events and publish how far they got.
struct Writers {
    stop: Arc<AtomicBool>,
    progress: Arc<Vec<AtomicU64>>,
    handles: Vec<std::thread::JoinHandle<u64>>,
}

impl Writers {
    /// Starts `n` threads recording `PollStart(i)` for i = 0, 1, 2, …; returns once each has
    /// recorded at least one event.
    fn start(n: usize) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let progress: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
        let started = Arc::new(Barrier::new(n + 1));
        let handles = (0..n)
            .map(|t| {
                let stop = stop.clone();
                let progress = progress.clone();
                let started = started.clone();
                std::thread::spawn(move || {
                    raw::record(EventKind::PollStart, &[0]);
                    progress[t].store(0, Ordering::SeqCst);
                    started.wait();
                    let mut i = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        raw::record(EventKind::PollStart, &[i]);
                        if i.is_multiple_of(64) {
                            raw::record_with_payload(EventKind::Log, &[1], b"a log message");
                        }
                        progress[t].store(i, Ordering::SeqCst);
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        started.wait();
        Writers {
            stop,
            progress,
            handles,
        }
    }

    fn progress(&self) -> Vec<u64> {
        self.progress
            .iter()
            .map(|p| p.load(Ordering::SeqCst))
            .collect()
    }

    /// Waits until every thread has recorded `more` events past `from`.
    fn advance(&self, from: &[u64], more: u64) {
        for (p, &f) in self.progress.iter().zip(from) {
            while p.load(Ordering::SeqCst) < f + more {
                std::thread::yield_now();
            }
        }
    }

    fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect()
    }
}

#[test]
fn a_recorder_stopped_while_threads_write() {
    let _serial = serial();
    let chunk = flight_recorder::chunk_size();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.trace");
    let trace = FullTrace::start(std::fs::File::create(&path).unwrap()).unwrap();
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(60),
        max_bytes: 1 << 20,
        ..Default::default()
    });
    fr.start().unwrap();
    let writers = Writers::start(4);
    let from = writers.progress();
    writers.advance(&from, 50_000);
    // Both consumers stop under the writers' feet.
    fr.stop();
    let stats = trace.stop().unwrap();
    assert!(!raw::is_running());
    let stopped_at = writers.progress();
    writers.advance(&stopped_at, 50_000);
    assert_eq!(flight_recorder::stats().window_bytes, 0);

    // The full trace is complete and readable; each thread's events are in order.
    let mut reader = TraceReader::open(&path).unwrap();
    let events = reader.read_all_events().unwrap();
    assert!(reader.is_complete());
    assert!(stats.bytes > 0);
    let mut last = std::collections::HashMap::new();
    for e in events
        .iter()
        .filter(|e| e.kind() == Some(EventKind::PollStart))
    {
        let prev = last.insert(e.thread, e.arg(0));
        if stats.dropped_chunks == 0 {
            if let Some(prev) = prev {
                assert_eq!(e.arg(0), prev + 1, "gap on thread {}", e.thread);
            }
        }
    }

    // A recorder started now holds nothing from before its start.
    let before_restart = writers.progress();
    let fr2 = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(60),
        max_bytes: 1 << 20,
        ..Default::default()
    });
    fr2.start().unwrap();
    writers.advance(&before_restart, 10_000);
    let mut bytes = Vec::new();
    fr2.write_to(&mut bytes).unwrap();
    let snapshot = read_trace(bytes);
    let floor = *before_restart.iter().min().unwrap();
    for e in snapshot
        .events
        .iter()
        .filter(|e| e.kind() == Some(EventKind::PollStart))
    {
        assert!(
            e.arg(0) > floor,
            "event {} from before the restart",
            e.arg(0)
        );
    }
    fr2.stop();
    writers.finish();
    // With nothing recording and the writers gone, only free buffers remain.
    let end = flight_recorder::stats();
    assert!(
        end.allocated_bytes <= (end.live_threads + 16 + 1) * chunk,
        "{end:?}"
    );
}

#[test]
fn a_blocked_snapshot_does_not_stop_recording_or_grow_memory() {
    let _serial = serial();
    let max_bytes = 1 << 20;
    let chunk = flight_recorder::chunk_size();
    let fr = Arc::new(FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(60),
        max_bytes,
        ..Default::default()
    }));
    fr.start().unwrap();
    let writers = Writers::start(3);
    let from = writers.progress();
    writers.advance(&from, 20_000);
    let (mut writer, reached_rx, release_tx) = BlockingWriter::new();
    let snapshot = {
        let fr = fr.clone();
        std::thread::spawn(move || fr.write_to(&mut writer).map(|_| writer.bytes))
    };
    reached_rx.recv().unwrap();
    // The snapshot is stuck in its writer. The threads record many times the window meanwhile
    // (a PollStart is about 4 bytes): memory stays within the window, the chunks the stuck
    // snapshot pins (at most a window and an open chunk per thread), one chunk per live thread
    // and the pool.
    let live = flight_recorder::stats().live_threads;
    let bound = 2 * max_bytes + (2 * live + 16 + 1) * chunk;
    let mut peak = 0;
    let mut at = writers.progress();
    for _ in 0..20 {
        writers.advance(&at, 100_000);
        at = writers.progress();
        peak = peak.max(flight_recorder::stats().allocated_bytes);
    }
    assert!(peak <= bound, "peak {peak} over {bound}");
    release_tx.send(()).unwrap();
    let bytes = snapshot.join().unwrap().unwrap();
    read_trace(bytes);
    // Recording went on: a new snapshot has each thread's recent events.
    let recent = writers.progress();
    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).unwrap();
    let trace = read_trace(bytes);
    let newest = trace
        .events
        .iter()
        .filter(|e| e.kind() == Some(EventKind::PollStart))
        .map(|e| e.arg(0))
        .max()
        .unwrap();
    assert!(newest >= *recent.iter().min().unwrap(), "recording stalled");
    writers.finish();
    fr.stop();
    eprintln!(
        "blocked snapshot: 2,000,000 events per thread recorded meanwhile, peak {} KiB (bound {} KiB)",
        peak >> 10,
        bound >> 10
    );
}

/// The environment variable that makes [`kill_9_child`] write a snapshot into a directory.
const CHILD_DIR: &str = "FLIGHT_RECORDER_FAULTS_KILL_DIR";

/// In the child process of [`kill_9_during_a_snapshot_leaves_no_final_file`]: fills a large
/// window, then writes one snapshot of it to the directory. In a normal test run, does nothing.
#[test]
fn kill_9_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(600),
        max_bytes: 256 << 20,
        ..Default::default()
    });
    fr.start().unwrap();
    for i in 0..40_000_000u64 {
        raw::record(EventKind::PollStart, &[i]);
    }
    flight_recorder::files::write_snapshot(
        &fr,
        dir,
        &flight_recorder::SnapshotMeta::new("manual", ""),
    )
    .unwrap();
}

fn is_final_name(name: &str) -> bool {
    name.starts_with("executiontrace.") && name.ends_with(".out")
}

#[test]
fn kill_9_during_a_snapshot_leaves_no_final_file() {
    // The child is this test binary, running only `kill_9_child`.
    let exe = std::env::current_exe().unwrap();
    for attempt in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "kill_9_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait for the temporary file to hold some bytes, then freeze the child and look: the
        // snapshot must still be in progress for the attempt to count.
        let in_progress = loop {
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            let temp = std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(Result::ok)
                .find(|e| e.file_name().to_string_lossy().ends_with(".tmp"));
            if temp.is_some_and(|e| e.metadata().is_ok_and(|m| m.len() > 0)) {
                // SAFETY: plain signals to our own child process.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGSTOP) };
                let names = names_in(dir.path());
                break !names.iter().any(|n| is_final_name(n));
            }
            std::thread::yield_now();
        };
        // SAFETY: as above.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        let _ = child.wait();
        if !in_progress {
            eprintln!("attempt {attempt}: the snapshot finished first, again");
            continue;
        }
        let names = names_in(dir.path());
        assert!(
            !names.iter().any(|n| is_final_name(n)),
            "a file under a final name after SIGKILL: {names:?}"
        );
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].starts_with(".executiontrace.") && names[0].ends_with(".tmp"));
        // The torn temporary file reads as torn, without a panic.
        let torn = dir.path().join(&names[0]);
        if let Ok(mut reader) = TraceReader::open(&torn) {
            assert!(reader.read_all_events().is_err());
        }
        return;
    }
    panic!("the child's snapshot never was caught in progress");
}

fn names_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}
