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

use std::path::{Path, PathBuf};
use std::time::Instant;

use flight_recorder_parquet::{export, read_snapshot, ExportOptions, TableOptions};
use flight_recorder_test_support::synthetic::write_trace;

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
        let stats = write_trace(
            &trace,
            env_number("FLIGHT_RECORDER_BENCH_MB", 50) * 1_000_000,
        );
        println!(
            "trace: {:.1} MB, {} chunks, {} chunks dropped by the recorder",
            stats.bytes as f64 / 1e6,
            stats.chunks,
            stats.dropped_chunks
        );
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
