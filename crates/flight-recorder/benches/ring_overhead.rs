//! What the crash-surviving ring costs against heap buffers, in one process: a flight recorder
//! with heap buffers, one with its ring in a memory-backed directory (`/dev/shm`) and one with
//! its ring in a disk-backed directory (under the target directory), each started and stopped in
//! turn, interleaved and rotated round by round, on
//!
//! - the hot path: `poll_start` events, ns per event against a bare timestamp read (rdtsc);
//! - `yield`: 100 tasks x 5k `yield_now` on a 2-worker runtime instrumented with
//!   `flight_recorder::tokio::instrument`;
//! - `ping-pong`: 100 pairs x 1k round trips over `mpsc(1)`, same runtime.
//!
//! Each figure is the median of the per-round ratios ring / heap (1.00 = no cost). Run with
//! `cargo bench -p flight-recorder --bench ring_overhead` (`BENCH_ROUNDS`, default 21;
//! `BENCH_ITERS`, hot-path events per round, default 2M; `BENCH_DISK_DIR`, the disk-backed
//! directory, default under the target directory).

mod common;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use flight_recorder::raw::{self, EventKind};
use flight_recorder::ring::RingConfig;
use flight_recorder::{FlightRecorder, FlightRecorderConfig};

use common::{env_or, median, ping_pong, timestamp, yield_heavy};

fn ns_per(iters: u64, work: impl FnOnce()) -> f64 {
    let start = Instant::now();
    work();
    start.elapsed().as_nanos() as f64 / iters as f64
}

/// One round of one configuration: hot path ns/event, rdtsc ns/read, yield ms, ping-pong ms.
fn round(ring: Option<&PathBuf>, rt: &tokio::runtime::Runtime, iters: u64) -> [f64; 4] {
    let fr = FlightRecorder::new(FlightRecorderConfig {
        max_bytes: 64 << 20,
        ring: ring.map(|dir| RingConfig {
            dir: dir.clone(),
            dump_dir: dir.join("dumps"),
            ..RingConfig::default()
        }),
        ..Default::default()
    });
    fr.start().expect("start");
    if ring.is_some() {
        assert!(flight_recorder::ring::ring_path().is_some(), "a ring");
    }
    let tsc = ns_per(iters, || {
        for _ in 0..iters {
            black_box(timestamp());
        }
    });
    let event = ns_per(iters, || {
        for i in 0..iters {
            raw::record(EventKind::PollStart, &[black_box(i & 0xff)]);
        }
    });
    let start = Instant::now();
    rt.block_on(yield_heavy());
    let yields = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    rt.block_on(ping_pong());
    let pings = start.elapsed().as_secs_f64() * 1e3;
    fr.stop();
    [event, tsc, yields, pings]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("ring_overhead: bench");
        return;
    }
    let rounds = env_or("BENCH_ROUNDS", 21) as usize;
    let iters = env_or("BENCH_ITERS", 2_000_000);
    let shm = tempfile::tempdir_in("/dev/shm").expect("a directory in /dev/shm");
    let disk_parent = std::env::var_os("BENCH_DISK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    std::fs::create_dir_all(&disk_parent).unwrap();
    let disk = tempfile::tempdir_in(&disk_parent).expect("a disk-backed directory");
    let dirs = [
        None,
        Some(shm.path().join("rings")),
        Some(disk.path().join("rings")),
    ];
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    flight_recorder::tokio::instrument(&mut builder);
    let rt = builder.build().unwrap();

    // results[config][round] = [event ns, tsc ns, yield ms, ping-pong ms]
    let mut results = vec![Vec::new(); dirs.len()];
    round(None, &rt, iters / 10); // warm-up
    for r in 0..rounds {
        for k in 0..dirs.len() {
            let c = (r + k) % dirs.len();
            results[c].push(round(dirs[c].as_ref(), &rt, iters));
        }
    }
    let med = |c: usize, i: usize| median(results[c].iter().map(|x| x[i]).collect());
    let ratio = |c: usize, i: usize| {
        median(
            (0..rounds)
                .map(|r| results[c][r][i] / results[0][r][i])
                .collect(),
        )
    };
    println!(
        "ring against heap buffers: {rounds} rounds, rotated; medians, and the median of the \
         per-round ratios to heap"
    );
    println!(
        "{:<14} {:>10} {:>9} {:>10} {:>7} {:>10} {:>7} {:>10} {:>7}",
        "chunks in",
        "event ns",
        "x rdtsc",
        "vs heap",
        "",
        "yield ms",
        "vs heap",
        "pingpong",
        "vs heap"
    );
    for (c, name) in ["heap", "ring /dev/shm", "ring disk"].iter().enumerate() {
        println!(
            "{:<14} {:>10.2} {:>9.2} {:>10.3} {:>7} {:>10.1} {:>7.3} {:>10.1} {:>7.3}",
            name,
            med(c, 0),
            median(results[c].iter().map(|x| x[0] / x[1]).collect()),
            ratio(c, 0),
            "",
            med(c, 2),
            ratio(c, 2),
            med(c, 3),
            ratio(c, 3),
        );
    }
    println!("disk-backed ring directory: {}", disk.path().display());
}
