//! A synthetic workload recorded by the real recorder, and a child process's time and memory: the
//! throughput benches of the CLI, the Parquet export and the query engine share them (feature
//! `recorder`).

use std::fs::File;
use std::io::BufWriter;
use std::panic::Location;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flight_recorder::raw::{self, EventKind};
use flight_recorder::{FullTrace, TraceStats};

/// The synthetic runtime's worker threads.
pub const WORKERS: u64 = 3;

#[track_caller]
fn location() -> u64 {
    raw::intern_location(Location::caller())
}

/// One synthetic worker: a runtime thread that polls its tasks, wakes tasks of other workers,
/// spawns and completes tasks, with regions, logs and counters now and then.
fn worker(index: u64, stop: Arc<AtomicBool>) {
    let locations = [location(), location(), location(), location()];
    let region_names = [raw::intern_str("parse"), raw::intern_str("render")];
    let log_category = raw::intern_str("handler");
    let counter = raw::intern_str("queue_depth");
    raw::record(EventKind::RuntimeThread, &[1, 0]);
    let mut next_task = index << 40 | 1;
    let mut tasks: Vec<u64> = Vec::new();
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        raw::record(EventKind::WorkerUnpark, &[]);
        for _ in 0..64 {
            round += 1;
            if tasks.len() < 256 {
                let task = next_task;
                next_task += 1;
                raw::record(
                    EventKind::TaskSpawn,
                    &[task, locations[(task % 4) as usize], 0],
                );
                tasks.push(task);
            }
            let slot = (round * 7919) as usize % tasks.len();
            let task = tasks[slot];
            if round.is_multiple_of(2) {
                raw::record(
                    EventKind::PollStartScheduled,
                    &[task, 1_000 + round % 50_000],
                );
            } else {
                raw::poll_start(task);
            }
            if round.is_multiple_of(8) {
                let name = region_names[(round / 8 % 2) as usize];
                raw::record(EventKind::RegionBegin, &[name, 0]);
                raw::record(EventKind::RegionEnd, &[name, 0]);
            }
            if round.is_multiple_of(1024) {
                raw::record_with_payload(EventKind::Log, &[log_category, 0], b"request done");
                raw::record(EventKind::Counter, &[counter, tasks.len() as u64]);
            }
            let other = ((index + 1) % WORKERS) << 40 | (round % 200 + 1);
            raw::record(EventKind::TaskWake, &[other, task]);
            let ready = round.is_multiple_of(16);
            raw::poll_end(task, ready);
            if ready {
                raw::record(EventKind::TaskTerminate, &[task]);
                tasks.swap_remove(slot);
            }
        }
        raw::record(EventKind::WorkerPark, &[]);
        // Let the trace writer keep up (a full trace drops chunks rather than block).
        std::thread::yield_now();
    }
}

/// Writes a full trace of at least `bytes` bytes into `path`, from [`WORKERS`] threads of a
/// synthetic runtime: polls, wakes across workers, spawns and ends, with regions, logs and
/// counters now and then. Returns the recorder's figures of the trace.
pub fn write_trace(path: &Path, bytes: u64) -> TraceStats {
    let file = File::create(path).expect("create the trace file");
    let trace = FullTrace::start(BufWriter::new(file)).expect("start the trace");
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..WORKERS)
        .map(|i| {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("bench-worker-{i}"))
                .spawn(move || worker(i, stop))
                .expect("spawn a worker")
        })
        .collect();
    wait_for_size(path, bytes);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("worker");
    }
    trace.stop().expect("stop the trace")
}

/// Returns once the file at `path` (a trace being written) holds at least `bytes`.
pub fn wait_for_size(path: &Path, bytes: u64) {
    while std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) < bytes {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `binary` with `args`, its standard output discarded, and returns its wall time in seconds
/// and its peak resident memory in MiB. Panics when it fails.
pub fn run_child(binary: &Path, args: &[&str]) -> (f64, f64) {
    let start = Instant::now();
    // Waited for with wait4 below, for its resource usage.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(binary)
        .args(args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", binary.display()));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for the kernel to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for; both pointers are valid for the call.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(waited, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{} {args:?} failed with status {status}",
        binary.display()
    );
    (seconds, usage.ru_maxrss as f64 / 1024.0)
}
