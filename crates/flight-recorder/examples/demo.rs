//! The demo: a small service on a tokio runtime runs with the flight recorder on, notices one of
//! its own requests was slow, writes a snapshot of the seconds before into `./traces/`, and prints
//! what the snapshot shows.
//!
//! ```text
//! cargo run --release --example demo
//! ```
//!
//! The service has three kinds of work: request handlers (parse, a simulated database query that
//! waits on a timer, render), a cache refresher and a metrics reporter, on a tokio runtime
//! instrumented with `flight_recorder::tokio` (task spawns, polls, wakes, worker park and unpark,
//! runtime counters). Every few hundred
//! requests one handler blocks its worker thread for 60 ms (a synchronous call in async code, the
//! classic stall). The handler times itself; the first request over its 50 ms budget triggers the
//! snapshot.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flight_recorder::{FlightRecorder, FlightRecorderConfig, InRegion, SnapshotMeta, UserTask};
use flight_recorder_analysis::summary::Summary;
use flight_recorder_format::TraceReader;

/// A request slower than this writes a snapshot.
const SLOW_REQUEST: Duration = Duration::from_millis(50);

/// One request in this many blocks its worker (about every 1.5 s).
const BLOCKING_EVERY: u64 = 3000;

/// One request: a user task with its regions; the simulated query is a region across an
/// `.await`, the blocking call a region on the worker it stalls.
async fn handle_request(id: u64) {
    let request = UserTask::new("request");
    {
        let _parse = request.region("parse");
        std::hint::black_box((0..200u64).sum::<u64>());
    }
    tokio::time::sleep(Duration::from_micros(300 + id % 700))
        .in_task_region(&request, "db_query")
        .await;
    if id % BLOCKING_EVERY == BLOCKING_EVERY - 1 {
        let _stall = request.region("blocking_call");
        request.log("handler", "calling the legacy client synchronously");
        std::thread::sleep(Duration::from_millis(60));
    }
    let _render = request.region("render");
    std::hint::black_box((0..500u64).product::<u64>());
}

async fn cache_refresher(stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        {
            let _refresh = flight_recorder::region("cache_refresh");
            std::hint::black_box((0..2_000u64).sum::<u64>());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn metrics_reporter(stop: Arc<AtomicBool>, served: Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let _report = flight_recorder::region("metrics_report");
        let _ = served.load(Ordering::Relaxed);
    }
}

/// The size of the snapshot's events: the "bytes per event" figure of docs/BENCHMARKS.md.
fn print_bytes_per_event(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut reader = TraceReader::open(path)?;
    let mut events = 0;
    while let Some(chunk) = reader.next_raw_chunk()? {
        events += chunk.validate().0 as u64;
        reader.recycle_chunk(chunk);
    }
    let (_, bytes) = reader.chunk_stats();
    let file = std::fs::metadata(path)?.len();
    println!(
        "{events} events in {bytes} bytes of events: {:.2} bytes per event ({:.2} counting the \
         whole file, {file} bytes)",
        bytes as f64 / events.max(1) as f64,
        file as f64 / events.max(1) as f64
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let recorder = Arc::new(FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(5),
        max_bytes: 16 << 20,
        ..Default::default()
    }));
    recorder.start()?;
    println!("flight recorder on: keeping the last 5 s (at most 16 MiB) in memory");

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(2)
        .thread_name("demo-worker")
        .enable_all();
    flight_recorder::tokio::Instrumentation::new()
        .name("demo")
        .apply(&mut builder);
    let runtime = builder.build()?;
    let _metrics = flight_recorder::tokio::record_runtime_metrics(
        runtime.handle(),
        "demo",
        Duration::from_millis(100),
    );

    let snapshot: Option<PathBuf> = runtime.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let background = [
            flight_recorder::tokio::spawn(cache_refresher(stop.clone())),
            flight_recorder::tokio::spawn(metrics_reporter(stop.clone(), served.clone())),
        ];
        let (slow_tx, mut slow_rx) = tokio::sync::mpsc::channel::<(u64, Duration)>(16);
        let mut id = 0u64;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut interval = tokio::time::interval(Duration::from_micros(500));
        let slow = loop {
            tokio::select! {
                _ = interval.tick() => {
                    let slow_tx = slow_tx.clone();
                    let served = served.clone();
                    flight_recorder::tokio::spawn(async move {
                        let start = Instant::now();
                        handle_request(id).await;
                        let took = start.elapsed();
                        served.fetch_add(1, Ordering::Relaxed);
                        if took > SLOW_REQUEST {
                            let _ = slow_tx.try_send((id, took));
                        }
                    });
                    id += 1;
                }
                Some(slow) = slow_rx.recv() => break Some(slow),
            }
            if Instant::now() > deadline {
                break None;
            }
        };
        let path = match slow {
            Some((id, took)) => {
                println!(
                    "request {id} took {:.1} ms (budget {} ms): writing a snapshot",
                    took.as_secs_f64() * 1e3,
                    SLOW_REQUEST.as_millis()
                );
                flight_recorder::log("demo", "slow request noticed, writing a snapshot");
                // Let the service run a little more so the file also shows what came after.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let recorder = recorder.clone();
                let written = flight_recorder::tokio::spawn_blocking(move || {
                    let meta = SnapshotMeta::new("slow_request", "slow_request");
                    flight_recorder::files::write_snapshot(&recorder, "traces", &meta)
                })
                .await
                .expect("the snapshot task panicked");
                match written {
                    Ok(path) => Some(path),
                    Err(e) => {
                        eprintln!("demo: could not write the snapshot: {e}");
                        None
                    }
                }
            }
            None => {
                eprintln!("demo: no request was slow within 10 s");
                None
            }
        };
        stop.store(true, Ordering::Relaxed);
        for task in background {
            let _ = task.await;
        }
        println!("requests served: {}", served.load(Ordering::Relaxed));
        path
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    recorder.stop();

    let Some(path) = snapshot else {
        return Err("no snapshot was written".into());
    };
    println!("snapshot written to {}", path.display());
    print_bytes_per_event(&path)?;
    println!();
    let summary = match Summary::from_reader(TraceReader::open(&path)?) {
        Ok(summary) => summary,
        Err(damaged) => return Err(format!("the snapshot is damaged: {damaged}").into()),
    };
    print!("{}", summary.render_text());
    println!(
        "\nsee every event with: cargo run --release -p flight-recorder-cli -- dump {}",
        path.display()
    );
    Ok(())
}
