//! The cost of recording one event, against a bare read of the timestamp counter in the same
//! process: one thread, then both cores recording at once.
//!
//! Each variant runs in interleaved rounds and the median round is reported, so a noisy
//! neighbour slows all variants alike. Run with `cargo bench -p flight-recorder --bench hot_path`
//! (`BENCH_ROUNDS`, `BENCH_ITERS` override the defaults; `BENCH_RING=1` keeps the chunks in a
//! ring, a shared mapping in the default ring directory, instead of heap buffers).

mod common;

use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

use flight_recorder::raw::{self, EventKind};
use flight_recorder::{FlightRecorder, FlightRecorderConfig};

use common::{env_or, median, timestamp};

fn bare_timestamps(iters: u64) {
    for _ in 0..iters {
        black_box(timestamp());
    }
}

fn poll_starts(iters: u64) {
    for i in 0..iters {
        raw::record(EventKind::PollStart, &[black_box(i & 0xff)]);
    }
}

fn region_pairs(iters: u64) {
    for _ in 0..iters / 2 {
        let _region = flight_recorder::region("bench_region");
    }
}

/// Nanoseconds per operation of `work(iters)` run on `threads` threads at once (the slowest
/// thread's time).
fn measure(threads: usize, iters: u64, work: fn(u64)) -> f64 {
    if threads == 1 {
        let start = Instant::now();
        work(iters);
        return start.elapsed().as_nanos() as f64 / iters as f64;
    }
    let barrier = Barrier::new(threads);
    let worst = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    work(iters);
                    start.elapsed().as_nanos()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap()
    });
    worst as f64 / iters as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("hot_path: bench");
        return;
    }
    let rounds = env_or("BENCH_ROUNDS", 15) as usize;
    let iters = env_or("BENCH_ITERS", 2_000_000);
    let cores = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);

    let disabled = median(
        (0..rounds)
            .map(|_| measure(1, iters, poll_starts))
            .collect(),
    );

    let ring = std::env::var_os("BENCH_RING").is_some_and(|v| v == "1");
    let fr = FlightRecorder::new(FlightRecorderConfig {
        max_bytes: 64 << 20,
        ring: ring.then(flight_recorder::ring::RingConfig::default),
        ..Default::default()
    });
    fr.start().expect("start");
    if ring {
        println!(
            "chunks in the ring {:?}",
            flight_recorder::ring::ring_path().expect("a ring")
        );
    }
    let mut tsc_1 = Vec::new();
    let mut event_1 = Vec::new();
    let mut region_1 = Vec::new();
    let mut tsc_n = Vec::new();
    let mut event_n = Vec::new();
    for _ in 0..rounds {
        tsc_1.push(measure(1, iters, bare_timestamps));
        event_1.push(measure(1, iters, poll_starts));
        region_1.push(measure(1, iters, region_pairs));
        tsc_n.push(measure(cores, iters, bare_timestamps));
        event_n.push(measure(cores, iters, poll_starts));
    }
    fr.stop();
    let (tsc_1, event_1, region_1) = (median(tsc_1), median(event_1), median(region_1));
    let (tsc_n, event_n) = (median(tsc_n), median(event_n));

    println!("hot path: median of {rounds} rounds x {iters} operations (ns per operation)");
    println!("{:<44} {:>8} {:>8}", "operation", "ns", "ratio");
    println!(
        "{:<44} {:>8.2} {:>8}",
        "bare timestamp read (rdtsc), 1 thread", tsc_1, "1.00"
    );
    println!(
        "{:<44} {:>8.2} {:>8.2}",
        "poll_start event, recorder off",
        disabled,
        disabled / tsc_1
    );
    println!(
        "{:<44} {:>8.2} {:>8.2}",
        "poll_start event, 1 thread",
        event_1,
        event_1 / tsc_1
    );
    println!(
        "{:<44} {:>8.2} {:>8.2}",
        "region begin or end event, 1 thread",
        region_1,
        region_1 / tsc_1
    );
    println!(
        "{:<44} {:>8.2} {:>8}",
        format!("bare timestamp read, {cores} threads"),
        tsc_n,
        "1.00"
    );
    println!(
        "{:<44} {:>8.2} {:>8.2}",
        format!("poll_start event, {cores} threads"),
        event_n,
        event_n / tsc_n
    );
}
