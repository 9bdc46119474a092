//! SQL over traces: writes about 1 GB of trace files with the real recorder (full traces of a
//! synthetic runtime: worker threads polling, waking, spawning and ending tasks, with regions,
//! logs and counters; `FLIGHT_RECORDER_BENCH_DISTINCT` distinct files of
//! `FLIGHT_RECORDER_BENCH_FILE_MB` each, linked under more names up to
//! `FLIGHT_RECORDER_BENCH_MB`), then times the `flight-recorder-query` binary on it as a child
//! process: each query `FLIGHT_RECORDER_BENCH_RUNS` times (default 3), the median, MB/s of
//! trace and the child's peak resident memory. Then the same over the Parquet export of the
//! corpus.
//!
//! ```text
//! cargo bench -p flight-recorder-query --bench sql_over_traces
//! FLIGHT_RECORDER_BENCH_MB=200 cargo bench -p flight-recorder-query --bench sql_over_traces
//! ```
//!
//! `FLIGHT_RECORDER_BENCH_DIR` keeps the corpus there (reused when it holds trace files).

use std::path::{Path, PathBuf};
use std::time::Instant;

use flight_recorder_test_support::synthetic::{run_child, write_trace};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The corpus: distinct files, then hard links to them up to `total` bytes.
fn write_corpus(dir: &Path) -> (usize, u64) {
    let total = env_u64("FLIGHT_RECORDER_BENCH_MB", 1000) * 1_000_000;
    let file_bytes = env_u64("FLIGHT_RECORDER_BENCH_FILE_MB", 10) * 1_000_000;
    let distinct = env_u64("FLIGHT_RECORDER_BENCH_DISTINCT", 10).max(1);
    let mut originals = Vec::new();
    for i in 0..distinct {
        let path = dir.join(format!("executiontrace.2026-12-02T00_00_00.{i:03}.out"));
        write_trace(&path, file_bytes);
        originals.push(path);
    }
    let mut files = originals.len();
    let mut bytes: u64 = originals
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    while bytes < total {
        let original = &originals[files % originals.len()];
        let link = dir.join(format!("executiontrace.2026-12-02T00_00_01.{files:03}.out"));
        std::fs::hard_link(original, &link).expect("link");
        bytes += std::fs::metadata(original).unwrap().len();
        files += 1;
    }
    (files, bytes)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

const QUERIES: &[(&str, &str)] = &[
    ("count polls", "SELECT count(*) FROM polls"),
    (
        "polls by location",
        "SELECT location, count(*), sum(duration_ns), max(duration_ns), \
         sum(sched_wait_ns) FROM polls GROUP BY location",
    ),
    (
        "p99 by location",
        "SELECT location, approx_percentile_cont(duration_ns, 0.99) FROM polls GROUP BY location",
    ),
    ("snapshots", "SELECT count(*), sum(events) FROM snapshots"),
];

fn main() {
    // `cargo test` runs benches with `--bench` missing: only build them then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let temp = tempfile::tempdir().expect("temporary directory");
    let dir: PathBuf = std::env::var_os("FLIGHT_RECORDER_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| temp.path().join("traces"));
    std::fs::create_dir_all(&dir).expect("corpus directory");
    let existing = std::fs::read_dir(&dir).expect("corpus").count();
    if existing == 0 {
        let start = Instant::now();
        let (files, bytes) = write_corpus(&dir);
        println!(
            "corpus: {files} files, {:.1} MB, written in {:.1}s",
            bytes as f64 / 1e6,
            start.elapsed().as_secs_f64()
        );
    }
    let bytes: u64 = std::fs::read_dir(&dir)
        .expect("corpus")
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let mb = bytes as f64 / 1e6;
    let files = std::fs::read_dir(&dir).expect("corpus").count();
    println!("corpus: {} ({files} files, {mb:.1} MB)", dir.display());
    let runs = env_u64("FLIGHT_RECORDER_BENCH_RUNS", 3).max(1);
    let binary = Path::new(env!("CARGO_BIN_EXE_flight-recorder-query"));
    let dir_arg = dir.to_str().expect("a UTF-8 path");

    run_queries(binary, dir_arg, "traces", mb, runs);

    let export = temp.path().join("parquet");
    let start = Instant::now();
    let inputs: Vec<PathBuf> = vec![dir.clone()];
    let report = flight_recorder_parquet::export(
        &inputs,
        &export,
        &flight_recorder_parquet::ExportOptions::default(),
    )
    .expect("export to Parquet");
    let export_seconds = start.elapsed().as_secs_f64();
    let parquet_bytes = dir_size(&export);
    println!(
        "export to Parquet (in-process, one thread): {:.2}s ({:.1} MB/s), {} files, {:.1} MB of Parquet",
        export_seconds,
        mb / export_seconds,
        report.parquet_files,
        parquet_bytes as f64 / 1e6
    );
    run_queries(
        binary,
        export.to_str().expect("a UTF-8 path"),
        "parquet",
        mb,
        runs,
    );
}

/// Runs each query `runs` times on `input` and prints the median, MB/s of trace and peak RSS.
fn run_queries(binary: &Path, input: &str, label: &str, mb: f64, runs: u64) {
    for (name, sql) in QUERIES {
        let mut times = Vec::new();
        let mut peak: f64 = 0.0;
        for _ in 0..runs {
            let (seconds, rss) = run_child(binary, &[sql, input, "--format", "csv"]);
            times.push(seconds);
            peak = peak.max(rss);
        }
        let seconds = median(times.clone());
        println!(
            "{label:<8} {name:<20} median {seconds:>7.2}s {:>8.1} MB/s of trace   \
             peak RSS {peak:.0} MiB   runs {}",
            mb / seconds,
            times
                .iter()
                .map(|t| format!("{t:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("entry");
        let meta = entry.metadata().expect("metadata");
        total += if meta.is_dir() {
            dir_size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}
