//! The recorder's overhead on tokio workloads: each workload runs on a 2-worker runtime in three
//! configurations, interleaved round by round, and the median round of each is reported:
//!
//! - `bare`: a runtime without instrumentation;
//! - `off`: the runtime instrumented with `flight_recorder::tokio::instrument`, no recorder
//!   running (what a service pays for having the hooks compiled in);
//! - `on`: instrumented, with a flight recorder running;
//! - `spawn` (the micro workloads only): as `on`, with every task started by
//!   `flight_recorder::tokio::spawn` (the instrumented spawn, which adds each wake with its waker).
//!
//! Built with the workspace's `--cfg tokio_unstable`, so the runtime hooks record every task's
//! spawn, polls and end. The trace rate of each workload is measured in a separate round with a
//! full trace into a byte counter.
//!
//! Run with `cargo bench -p flight-recorder --bench tokio_overhead` (`BENCH_ROUNDS`, default 7;
//! `BENCH_HTTP_SECS`, default 2; `BENCH_ONLY=micro` or `BENCH_ONLY=http` runs one part,
//! `BENCH_ONLY=spawn`, `yield` or `ping-pong` one micro workload). The micro workloads are small
//! by default (100k spawns, 100 tasks x 5k yields, 100 pairs x 1k round trips);
//! `BENCH_SIZE=large` runs the overhead study's large sizes (3 M spawns in batches of 1000, 1000 tasks x
//! 10k yields, 1000 pairs x 4000 round trips over `mpsc(1)`).

mod common;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flight_recorder::{FlightRecorder, FlightRecorderConfig, FullTrace};

use common::{env_or, http_load, median};

#[derive(Clone, Copy, PartialEq)]
enum Config {
    Bare,
    Off,
    On,
    /// `On`, with the workload's tasks started by `flight_recorder::tokio::spawn`.
    Spawn,
}

/// Whether the workloads start their tasks with the instrumented spawn (config `Spawn`).
static INSTRUMENTED_SPAWN: AtomicBool = AtomicBool::new(false);

/// Spawns `future` with `tokio::spawn`, or with the instrumented spawn in config `Spawn`.
fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    if INSTRUMENTED_SPAWN.load(Ordering::Relaxed) {
        flight_recorder::tokio::spawn(future)
    } else {
        tokio::spawn(future)
    }
}

/// The sizes of the micro workloads.
struct Sizes {
    spawns: u64,
    spawn_batch: u64,
    yield_tasks: u64,
    yields: u64,
    pairs: u64,
    round_trips: u32,
}

fn sizes() -> &'static Sizes {
    static SIZES: std::sync::OnceLock<Sizes> = std::sync::OnceLock::new();
    SIZES.get_or_init(|| {
        if std::env::var("BENCH_SIZE").as_deref() == Ok("large") {
            Sizes {
                spawns: 3_000_000,
                spawn_batch: 1000,
                yield_tasks: 1000,
                yields: 10_000,
                pairs: 1000,
                round_trips: 4000,
            }
        } else {
            Sizes {
                spawns: 100_000,
                spawn_batch: 100_000,
                yield_tasks: 100,
                yields: 5_000,
                pairs: 100,
                round_trips: 1000,
            }
        }
    })
}

fn runtime(config: Config) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    if config != Config::Bare {
        flight_recorder::tokio::instrument(&mut builder);
    }
    builder.build().unwrap()
}

async fn spawn_heavy() {
    let sizes = sizes();
    let mut i = 0u64;
    while i < sizes.spawns {
        let end = (i + sizes.spawn_batch).min(sizes.spawns);
        let tasks: Vec<_> = (i..end)
            .map(|i| spawn(async move { std::hint::black_box(i) }))
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        i = end;
    }
}

async fn yield_heavy() {
    let yields = sizes().yields;
    let tasks: Vec<_> = (0..sizes().yield_tasks)
        .map(|_| {
            spawn(async move {
                for _ in 0..yields {
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

async fn ping_pong() {
    let round_trips = sizes().round_trips;
    let pairs: Vec<_> = (0..sizes().pairs)
        .map(|_| {
            let (to_pong, mut pong_rx) = tokio::sync::mpsc::channel::<u32>(1);
            let (to_ping, mut ping_rx) = tokio::sync::mpsc::channel::<u32>(1);
            let pong = spawn(async move {
                while let Some(n) = pong_rx.recv().await {
                    if to_ping.send(n).await.is_err() {
                        break;
                    }
                }
            });
            let ping = spawn(async move {
                for n in 0..round_trips {
                    to_pong.send(n).await.unwrap();
                    ping_rx.recv().await.unwrap();
                }
            });
            (ping, pong)
        })
        .collect();
    for (ping, pong) in pairs {
        ping.await.unwrap();
        pong.await.unwrap();
    }
}

/// Seconds one run of `workload` takes on a fresh runtime of `config`.
fn time_workload<F: std::future::Future<Output = ()>>(config: Config, workload: fn() -> F) -> f64 {
    let rt = runtime(config);
    // Warm the runtime's threads up first.
    rt.block_on(async { tokio::spawn(async {}).await.unwrap() });
    INSTRUMENTED_SPAWN.store(config == Config::Spawn, Ordering::Relaxed);
    let start = Instant::now();
    rt.block_on(workload());
    let elapsed = start.elapsed().as_secs_f64();
    INSTRUMENTED_SPAWN.store(false, Ordering::Relaxed);
    elapsed
}

/// Serves `GET /` with a short body on a 2-worker runtime of `config`; returns the address and a
/// handle that shuts the server down when dropped.
fn http_server(config: Config) -> (SocketAddr, tokio::runtime::Runtime) {
    let rt = runtime(config);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello, world\n" }));
    rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, rt)
}

/// Counts the bytes a full trace writes.
#[derive(Clone, Default)]
struct ByteCounter(Arc<AtomicU64>);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Trace bytes per second while `run` runs, from a full trace into a counter.
fn trace_rate(run: impl FnOnce()) -> f64 {
    let counter = ByteCounter::default();
    let trace = FullTrace::start(counter.clone()).unwrap();
    let start = Instant::now();
    run();
    let elapsed = start.elapsed().as_secs_f64();
    let stats = trace.stop().unwrap();
    assert_eq!(stats.dropped_chunks, 0, "the trace dropped data");
    counter.0.load(Ordering::Relaxed) as f64 / elapsed
}

struct Row {
    name: &'static str,
    unit: &'static str,
    bare: f64,
    off: f64,
    on: f64,
    higher_is_better: bool,
    bytes_per_sec: f64,
    /// The median over rounds of each round's on/off slowdown (paired, so slow drifts of the
    /// machine cancel out).
    paired_on_off: f64,
    /// The `spawn` configuration (micro workloads): its median, and the median over rounds of
    /// each round's spawn/on and spawn/bare slowdowns.
    spawn: Option<(f64, f64, f64)>,
}

/// The configurations of one round with their sample index, rotated from round to round so
/// that no configuration always runs first or last (the machine drifts within a round too).
fn round_order(round: usize, count: usize) -> impl Iterator<Item = (usize, Config)> {
    let configs = [Config::Bare, Config::Off, Config::On, Config::Spawn];
    (0..count).map(move |k| {
        let i = (k + round) % count;
        (i, configs[i])
    })
}

/// The median of the per-round slowdowns of `on` against `off`.
fn paired(off: &[f64], on: &[f64], higher_is_better: bool) -> f64 {
    median(
        off.iter()
            .zip(on)
            .map(|(off, on)| if higher_is_better { off / on } else { on / off })
            .collect(),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("tokio_overhead: bench");
        return;
    }
    let rounds = env_or("BENCH_ROUNDS", 7) as usize;
    let http_secs = Duration::from_secs(env_or("BENCH_HTTP_SECS", 2));
    let recorder = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(10),
        max_bytes: 64 << 20,
        ..Default::default()
    });
    let run_config = |config: Config, f: &mut dyn FnMut(Config) -> f64| -> f64 {
        if config == Config::On || config == Config::Spawn {
            recorder.start().unwrap();
        }
        let value = f(config);
        recorder.stop();
        value
    };

    type Workload = (&'static str, fn(Config) -> f64);
    let micro: [Workload; 3] = [
        ("spawn-heavy", |c| time_workload(c, spawn_heavy)),
        ("yield-heavy", |c| time_workload(c, yield_heavy)),
        ("ping-pong", |c| time_workload(c, ping_pong)),
    ];
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let mut rows = Vec::new();
    for (name, workload) in micro {
        let selected = match only.as_str() {
            "" | "micro" => true,
            "http" => false,
            one => name.starts_with(one),
        };
        if !selected {
            continue;
        }
        let mut samples = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        for round in 0..rounds {
            for (i, config) in round_order(round, 4) {
                samples[i].push(run_config(config, &mut |c| workload(c)));
            }
        }
        let bytes_per_sec = trace_rate(|| {
            workload(Config::Off);
        });
        rows.push(Row {
            name,
            unit: "ms",
            bare: median(samples[0].clone()) * 1e3,
            off: median(samples[1].clone()) * 1e3,
            on: median(samples[2].clone()) * 1e3,
            higher_is_better: false,
            bytes_per_sec,
            paired_on_off: paired(&samples[1], &samples[2], false),
            spawn: Some((
                median(samples[3].clone()) * 1e3,
                paired(&samples[2], &samples[3], false),
                paired(&samples[0], &samples[3], false),
            )),
        });
    }

    let mut http = [Vec::new(), Vec::new(), Vec::new()];
    let http_runs = only.is_empty() || only == "http";
    for round in 0..if http_runs { rounds } else { 0 } {
        for (i, config) in round_order(round, 3) {
            http[i].push(run_config(config, &mut |c| {
                let (addr, rt) = http_server(c);
                let rps = http_load(addr, 16, http_secs);
                rt.shutdown_timeout(Duration::from_secs(1));
                rps
            }));
        }
    }
    let http_bytes = if !http_runs {
        0.0
    } else {
        let (addr, rt) = http_server(Config::Off);
        let rate = trace_rate(|| {
            http_load(addr, 16, http_secs);
        });
        rt.shutdown_timeout(Duration::from_secs(1));
        rate
    };
    if http_runs {
        rows.push(Row {
            name: "HTTP server (axum, 16 keep-alive clients)",
            unit: "req/s",
            bare: median(http[0].clone()),
            off: median(http[1].clone()),
            on: median(http[2].clone()),
            higher_is_better: true,
            bytes_per_sec: http_bytes,
            paired_on_off: paired(&http[1], &http[2], true),
            spawn: None,
        });
    }

    println!("tokio workloads on 2 workers, median of {rounds} interleaved rounds");
    let z = sizes();
    println!(
        "sizes: spawn {} tasks in batches of {}; yield {} tasks x {}; ping-pong {} pairs x {}",
        z.spawns, z.spawn_batch, z.yield_tasks, z.yields, z.pairs, z.round_trips
    );
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>10}",
        "workload", "bare", "off", "on", "off/bare", "on/bare", "on/off*", "trace MB/s"
    );
    for row in &rows {
        let ratio = |x: f64| {
            if row.higher_is_better {
                row.bare / x
            } else {
                x / row.bare
            }
        };
        println!(
            "{:<44} {:>10.1} {:>10.1} {:>10.1} {:>8.3}x {:>8.3}x {:>8.3}x {:>10.2}   ({})",
            row.name,
            row.bare,
            row.off,
            row.on,
            ratio(row.off),
            ratio(row.on),
            row.paired_on_off,
            row.bytes_per_sec / 1e6,
            row.unit
        );
    }
    println!("ratios are slowdowns: time / bare time, or bare throughput / throughput");
    println!("* on/off: the median of each round's on/off slowdown");
    if rows.iter().any(|row| row.spawn.is_some()) {
        println!();
        println!(
            "instrumented spawn (config spawn: hooks + recorder + flight_recorder::tokio::spawn)"
        );
        println!(
            "{:<44} {:>10} {:>10} {:>10} {:>9} {:>9}",
            "workload", "bare", "on", "spawn", "spawn/on*", "spawn/bare*"
        );
        for row in &rows {
            if let Some((spawn, spawn_on, spawn_bare)) = row.spawn {
                println!(
                    "{:<44} {:>10.1} {:>10.1} {:>10.1} {:>8.3}x {:>10.3}x   ({})",
                    row.name, row.bare, row.on, spawn, spawn_on, spawn_bare, row.unit
                );
            }
        }
        println!("* the median of each round's paired slowdown");
    }
}
