//! Parquet export throughput: writes a trace with the real recorder (a full trace of a synthetic
//! runtime: worker threads polling, waking and spawning tasks, with regions, logs and counters,
//! as the CLI's `analysis_throughput` bench does), then exports it to Parquet several times in
//! this process and prints the MB/s of trace input of each run and their median, with the rows,
//! the size of the Parquet files and the process's peak RSS (the tables of a file are built in
//! memory).
//!
//! ```text
//! cargo bench -p flight-recorder-parquet --bench export_throughput
//! FLIGHT_RECORDER_BENCH_MB=100 FLIGHT_RECORDER_BENCH_RUNS=7 cargo bench -p flight-recorder-parquet --bench export_throughput
//! ```
//!
//! `FLIGHT_RECORDER_BENCH_MB` sets the trace size (default 50: a file is turned into tables in
//! memory, as a snapshot of a flight recorder's window is); `FLIGHT_RECORDER_BENCH_RUNS` the
//! number of exports (default 5); `FLIGHT_RECORDER_BENCH_TRACE` names the trace file: used as it
//! is when it exists, else written there and kept.

use std::fs::File;
use std::io::BufWriter;
use std::panic::Location;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flight_recorder::raw::{self, EventKind};
use flight_recorder::FullTrace;
use flight_recorder_parquet::{export, read_snapshot, ExportOptions, TableOptions};

const WORKERS: u64 = 3;

#[track_caller]
fn location() -> u64 {
    raw::intern_location(Location::caller())
}

/// One synthetic worker: polls its tasks, wakes tasks of other workers, spawns and completes
/// tasks, with regions, logs and counters now and then.
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

/// Writes a full trace of at least `mb` megabytes into `path`.
fn write_trace(path: &Path, mb: u64) {
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
    let target = mb * 1_000_000;
    while std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) < target {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("worker");
    }
    let stats = trace.stop().expect("stop the trace");
    println!(
        "trace: {:.1} MB, {} chunks, {} chunks dropped by the recorder",
        stats.bytes as f64 / 1e6,
        stats.chunks,
        stats.dropped_chunks
    );
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn dir_size(dir: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    for entry in std::fs::read_dir(dir).expect("read the output") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            let (f, b) = dir_size(&path);
            files += f;
            bytes += b;
        } else {
            files += 1;
            bytes += std::fs::metadata(&path).map_or(0, |m| m.len());
        }
    }
    (files, bytes)
}

fn main() {
    // `cargo test` runs benches with `--bench` missing: only build them then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let trace: PathBuf = std::env::var_os("FLIGHT_RECORDER_BENCH_TRACE")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("bench.out"));
    if !trace.exists() {
        let start = Instant::now();
        write_trace(&trace, env_number("FLIGHT_RECORDER_BENCH_MB", 50));
        println!("recorded in {:.1}s", start.elapsed().as_secs_f64());
    }
    let size = std::fs::metadata(&trace).expect("trace size").len();
    let mb = size as f64 / 1e6;
    println!("trace file: {} ({mb:.1} MB)", trace.display());

    // Turning the file into tables alone (no Parquet), once.
    let start = Instant::now();
    let tables = read_snapshot(&trace, &TableOptions::default()).expect("tables");
    let seconds = start.elapsed().as_secs_f64();
    println!("tables only: {seconds:.2}s, {:.1} MB/s", mb / seconds);
    for (name, batch) in &tables.tables {
        println!("  {name:<11} {:>10} rows", batch.num_rows());
    }
    drop(tables);

    let runs = env_number("FLIGHT_RECORDER_BENCH_RUNS", 5).max(1);
    let mut speeds = Vec::new();
    for run in 1..=runs {
        let out = dir.path().join(format!("out-{run}"));
        let start = Instant::now();
        let report = export(
            std::slice::from_ref(&trace),
            &out,
            &ExportOptions::default(),
        )
        .expect("export");
        let seconds = start.elapsed().as_secs_f64();
        assert_eq!((report.files_done, report.files_failed), (1, 0));
        let (files, bytes) = dir_size(&out);
        println!(
            "export run {run}: {seconds:.2}s, {:.1} MB/s of trace, {files} Parquet files, {:.1} MB",
            mb / seconds,
            bytes as f64 / 1e6
        );
        speeds.push(mb / seconds);
        let _ = std::fs::remove_dir_all(&out);
    }
    // SAFETY: an all-zero rusage is a valid value for the kernel to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is valid for the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    println!(
        "peak RSS of the process: {:.0} MiB",
        usage.ru_maxrss as f64 / 1024.0
    );
    speeds.sort_by(f64::total_cmp);
    println!(
        "parquet export: median {:.1} MB/s of trace input over {runs} runs (min {:.1}, max {:.1})",
        speeds[speeds.len() / 2],
        speeds[0],
        speeds[speeds.len() - 1]
    );
}
