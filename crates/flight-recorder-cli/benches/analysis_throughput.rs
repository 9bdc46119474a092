//! Analysis throughput: writes a trace of at least 200 MB with the real recorder (a full trace of
//! a synthetic runtime: worker threads polling, waking and spawning tasks, with regions, logs and
//! counters), then times the `flight-recorder` binary on it as child processes — `summary`,
//! `convert --to perfetto` and `convert --to chrome-json` — and prints MB/s, each child's peak
//! resident memory and the size of each export (deleted once measured). The bare reader's speed (decoding every event, nothing else) is the baseline.
//!
//! ```text
//! cargo bench -p flight-recorder-cli --bench analysis_throughput
//! FLIGHT_RECORDER_BENCH_MB=400 cargo bench -p flight-recorder-cli --bench analysis_throughput
//! ```
//!
//! `FLIGHT_RECORDER_BENCH_MB` sets the trace size (default 220); `FLIGHT_RECORDER_BENCH_TRACE`
//! names the trace file: used as it is when it exists, else written there and kept (by default
//! the trace goes to a temporary directory and is deleted).

use std::fs::File;
use std::io::BufWriter;
use std::panic::Location;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flight_recorder::raw::{self, EventKind};
use flight_recorder::FullTrace;
use flight_recorder_format::TraceReader;

const WORKERS: u64 = 3;

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

/// Runs the binary with `args`, returns (seconds, peak RSS in MiB).
fn run_child(binary: &Path, args: &[&str]) -> (f64, f64) {
    let start = Instant::now();
    // Waited for with wait4 below, for its resource usage.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(binary)
        .args(args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run flight-recorder");
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
        "flight-recorder {args:?} failed with status {status}"
    );
    (seconds, usage.ru_maxrss as f64 / 1024.0)
}

fn main() {
    // `cargo test` runs benches with `--bench` missing: only build them then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let trace: PathBuf = std::env::var_os("FLIGHT_RECORDER_BENCH_TRACE")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("bench.trace"));
    if !trace.exists() {
        let mb = std::env::var("FLIGHT_RECORDER_BENCH_MB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(220);
        let start = Instant::now();
        write_trace(&trace, mb);
        println!("recorded in {:.1}s", start.elapsed().as_secs_f64());
    }
    let size = std::fs::metadata(&trace).expect("trace size").len();
    let mb = size as f64 / 1e6;
    println!("trace file: {} ({mb:.1} MB)", trace.display());

    let start = Instant::now();
    let mut reader = TraceReader::open(&trace).expect("open the trace");
    let mut events = 0u64;
    while let Some(_event) = reader.next_event().expect("read the trace") {
        events += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{:<24} {:>8.2}s {:>8.1} MB/s   {events} events ({:.2} bytes/event)",
        "reader only (in-process)",
        seconds,
        mb / seconds,
        size as f64 / events as f64
    );

    let binary = Path::new(env!("CARGO_BIN_EXE_flight-recorder"));
    let trace_arg = trace.to_str().expect("a UTF-8 path");
    let perfetto = dir.path().join("out.perfetto-trace");
    let chrome = dir.path().join("out.json");
    let runs: [(&str, Vec<&str>); 5] = [
        ("summary", vec!["summary", trace_arg]),
        ("summary --json", vec!["summary", "--json", trace_arg]),
        ("diagnose", vec!["diagnose", trace_arg]),
        (
            "convert --to perfetto",
            vec![
                "convert",
                trace_arg,
                "--to",
                "perfetto",
                "-o",
                perfetto.to_str().unwrap(),
            ],
        ),
        (
            "convert --to chrome-json",
            vec![
                "convert",
                trace_arg,
                "--to",
                "chrome-json",
                "-o",
                chrome.to_str().unwrap(),
            ],
        ),
    ];
    for (name, args) in runs {
        let (seconds, rss) = run_child(binary, &args);
        // The export's size, in bytes written per byte of trace; the file goes at once (a
        // Chrome JSON export of the full trace is several GB).
        let output = args
            .iter()
            .position(|&a| a == "-o")
            .map(|i| PathBuf::from(args[i + 1]));
        let written = output
            .as_ref()
            .and_then(|path| std::fs::metadata(path).ok())
            .map(|m| {
                format!(
                    "   wrote {:.1} MB ({:.2} bytes per trace byte)",
                    m.len() as f64 / 1e6,
                    m.len() as f64 / size as f64
                )
            })
            .unwrap_or_default();
        if let Some(path) = output {
            let _ = std::fs::remove_file(path);
        }
        println!(
            "{name:<24} {seconds:>8.2}s {:>8.1} MB/s   peak RSS {rss:.0} MiB{written}",
            mb / seconds
        );
    }
}
