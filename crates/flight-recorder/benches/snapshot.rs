//! `write_to` of a full flight-recorder window: throughput to a file and to a sink, and the worst
//! stall a recording thread sees while the snapshot runs (against the same thread with no
//! snapshot running, over the same time). The stall is measured during both snapshots: to a file
//! it includes what the kernel's write path costs the machine, to a sink only the recorder's.
//!
//! Run with `cargo bench -p flight-recorder --bench snapshot` (`BENCH_WINDOW_MIB`, default 64;
//! `BENCH_ROUNDS`, default 7).

mod common;

use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flight_recorder::raw::{self, EventKind};
use flight_recorder::{FlightRecorder, FlightRecorderConfig};

use common::{env_or, median};

/// Records events until told to stop; returns the longest time one `record` call took and the
/// number of calls over 10 µs.
fn record_and_time(stop: &AtomicBool) -> (Duration, u64) {
    let mut worst = Duration::ZERO;
    let mut slow = 0;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        raw::record(EventKind::PollStart, &[i & 0xff]);
        let took = start.elapsed();
        if took > Duration::from_micros(10) {
            slow += 1;
        }
        worst = worst.max(took);
        i += 1;
    }
    (worst, slow)
}

/// Runs `during` while a thread records and times its events.
fn with_recording_thread(during: impl FnOnce()) -> (Duration, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let recorder = {
        let stop = stop.clone();
        std::thread::spawn(move || record_and_time(&stop))
    };
    std::thread::sleep(Duration::from_millis(5));
    during();
    stop.store(true, Ordering::Relaxed);
    recorder.join().unwrap()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("snapshot: bench");
        return;
    }
    let window_mib = env_or("BENCH_WINDOW_MIB", 64) as usize;
    let rounds = env_or("BENCH_ROUNDS", 7) as usize;
    let max_bytes = window_mib << 20;
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(3600),
        max_bytes,
        ..Default::default()
    });
    fr.start().expect("start");
    let chunk = flight_recorder::chunk_size();
    let mut i = 0u64;
    while flight_recorder::stats().window_bytes + chunk <= max_bytes {
        for _ in 0..100_000 {
            raw::record(EventKind::PollStart, &[i & 0xff]);
            i += 1;
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut to_file = Vec::new();
    let mut file_ms = Vec::new();
    let mut to_sink = Vec::new();
    let mut sizes = Vec::new();
    let mut stalls_snapshot = Vec::new();
    let mut stalls_sink = Vec::new();
    let mut stalls_idle = Vec::new();
    for round in 0..rounds {
        let path = dir.path().join(format!("snapshot-{round}.out"));
        let mut elapsed = Duration::ZERO;
        let mut size = 0;
        let stall = with_recording_thread(|| {
            let mut file = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
            let start = Instant::now();
            size = fr.write_to(&mut file).expect("snapshot");
            file.flush().unwrap();
            elapsed = start.elapsed();
        });
        stalls_snapshot.push(stall);
        to_file.push(size as f64 / elapsed.as_secs_f64() / 1e9);
        file_ms.push(elapsed.as_secs_f64() * 1e3);
        sizes.push(size);
        std::fs::remove_file(&path).unwrap();

        let mut sink_elapsed = Duration::ZERO;
        let stall = with_recording_thread(|| {
            let start = Instant::now();
            let size = fr.write_to(&mut io::sink()).expect("snapshot");
            sink_elapsed = start.elapsed();
            to_sink.push(size as f64 / sink_elapsed.as_secs_f64() / 1e9);
        });
        stalls_sink.push(stall);

        // The same recording thread for the same time, with no snapshot.
        stalls_idle.push(with_recording_thread(|| std::thread::sleep(elapsed)));
    }
    fr.stop();
    let worst = |s: &[(Duration, u64)]| s.iter().map(|x| x.0).max().unwrap();
    let median_worst =
        |s: &[(Duration, u64)]| median(s.iter().map(|x| x.0.as_secs_f64() * 1e6).collect());
    let slow = |s: &[(Duration, u64)]| s.iter().map(|x| x.1).sum::<u64>();
    println!("snapshot of a full {window_mib} MiB window, median of {rounds} rounds");
    println!(
        "  snapshot size: {:.1} MB",
        median(sizes.iter().map(|&s| s as f64 / 1e6).collect())
    );
    println!(
        "  write_to a file (page cache): {:.2} GB/s, {:.1} ms",
        median(to_file),
        median(file_ms)
    );
    println!(
        "  write_to io::sink():          {:.2} GB/s",
        median(to_sink)
    );
    println!(
        "  recording thread during snapshots: worst event {:.1} us (median of rounds' worst {:.1} us), {} events over 10 us",
        worst(&stalls_snapshot).as_secs_f64() * 1e6,
        median_worst(&stalls_snapshot),
        slow(&stalls_snapshot)
    );
    println!(
        "  recording thread during snapshots to io::sink(): worst event {:.1} us (median of rounds' worst {:.1} us), {} events over 10 us",
        worst(&stalls_sink).as_secs_f64() * 1e6,
        median_worst(&stalls_sink),
        slow(&stalls_sink)
    );
    println!(
        "  same thread without snapshots:     worst event {:.1} us (median of rounds' worst {:.1} us), {} events over 10 us",
        worst(&stalls_idle).as_secs_f64() * 1e6,
        median_worst(&stalls_idle),
        slow(&stalls_idle)
    );
}
