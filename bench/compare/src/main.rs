//! One measurement of one tokio workload under one recorder, printed as a JSON line.
//!
//! ```text
//! flight-recorder-compare --workload spawn|yield|pingpong|http \
//!     --config none|fr-hooks|fr-flight|fr-spawn|fr-trace|console|dial9|dial9-disk \
//!     [--size small|large] [--trace-dir DIR]
//! ```
//!
//! Sizes (the same as the Go programs in `bench/go`): `small` (the default) spawns 100,000 tasks
//! in one batch, yields 100 tasks × 5,000 times and runs 1,000 ping-pong pairs × 200 round
//! trips; `large` spawns 3,000,000 tasks in batches of 1,000, yields 1,000 tasks × 10,000 times
//! and runs 1,000 pairs × 4,000 round trips (the large sizes of
//! `crates/flight-recorder/benches/tokio_overhead.rs`).
//!
//! Every configuration runs the same code on a 2-worker multi-thread runtime; only what is
//! attached to the runtime differs:
//!
//! - `none`: nothing;
//! - `fr-hooks`: `flight_recorder::tokio::instrument` with no recorder running (what having the
//!   hooks installed costs);
//! - `fr-flight`: `flight_recorder::tokio::instrument` and a running `FlightRecorder` (10 s,
//!   64 MiB window); after the workload the window is written out to a byte counter, and its
//!   size and the time `write_to` took are reported;
//! - `fr-spawn`: `fr-flight`, with the micro workloads' tasks started by
//!   `flight_recorder::tokio::spawn` (the instrumented spawn, which records every wake with its
//!   waker) instead of `tokio::spawn`;
//! - `fr-trace`: `flight_recorder::tokio::instrument` and a `FullTrace` into a file;
//! - `console`: `console_subscriber` as its README shows (`console_subscriber::init()`), which
//!   needs tokio's `tracing` feature and `--cfg tokio_unstable`;
//! - `dial9`: dial9's recorder with its in-memory ring (`MemoryBuffer`, 64 MiB) attached to the
//!   runtime with task tracking, as its README shows;
//! - `dial9-disk`: the same with dial9's rotating files (`DiskBuffer`) in the trace directory.
//!
//! The micro workloads print `{"workload","config","seconds","trace_bytes","snapshot_seconds",
//! "cpu_seconds"}` once they finish (`cpu_seconds`: the process's user and system time over the
//! same region as `seconds`). `http` serves `GET /` on loopback, prints `{"listening":"ADDR"}`, serves
//! until standard input reaches end of file (the driver closes it when its load generator is
//! done) and then prints the same line as the micro workloads, `seconds` being the serving time.
//! One process runs one measurement, because the peers install process-wide state (a global
//! `tracing` subscriber, a global dial9 handle) that cannot be taken down again.

use std::future::Future;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dial9::{Dial9HandleTokioExt, DiskBuffer, MemoryBuffer, TokioAttachOptions};
use flight_recorder::{FlightRecorder, FlightRecorderConfig, FullTrace};

/// The amount of work of each micro workload, the same as the Go programs in `bench/go`.
struct Sizes {
    spawn_tasks: u64,
    /// Tasks spawned before they are awaited, batch after batch.
    spawn_batch: u64,
    yield_tasks: usize,
    yields_per_task: usize,
    ping_pong_pairs: usize,
    round_trips: u32,
}

/// `--size small`, the default.
const SMALL: Sizes = Sizes {
    spawn_tasks: 100_000,
    spawn_batch: 100_000,
    yield_tasks: 100,
    yields_per_task: 5_000,
    ping_pong_pairs: 1_000,
    round_trips: 200,
};

/// `--size large`.
const LARGE: Sizes = Sizes {
    spawn_tasks: 3_000_000,
    spawn_batch: 1_000,
    yield_tasks: 1_000,
    yields_per_task: 10_000,
    ping_pong_pairs: 1_000,
    round_trips: 4_000,
};

const WORKERS: usize = 2;
const WINDOW_BYTES: usize = 64 << 20;

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Spawn,
    Yield,
    PingPong,
    Http,
}

#[derive(Clone, Copy, PartialEq)]
enum Config {
    None,
    FrHooks,
    FrFlight,
    FrSpawn,
    FrTrace,
    Console,
    Dial9,
    Dial9Disk,
}

struct Args {
    workload: Workload,
    workload_name: String,
    config: Config,
    config_name: String,
    sizes: &'static Sizes,
    trace_dir: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut workload = None;
    let mut config = None;
    let mut size = String::from("small");
    let mut trace_dir = std::env::temp_dir();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--workload" => workload = Some(value()?),
            "--config" => config = Some(value()?),
            "--size" => size = value()?,
            "--trace-dir" => trace_dir = PathBuf::from(value()?),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    let workload_name = workload.ok_or("--workload is required")?;
    let config_name = config.ok_or("--config is required")?;
    Ok(Args {
        workload: match workload_name.as_str() {
            "spawn" => Workload::Spawn,
            "yield" => Workload::Yield,
            "pingpong" => Workload::PingPong,
            "http" => Workload::Http,
            other => return Err(format!("unknown workload {other:?}")),
        },
        config: match config_name.as_str() {
            "none" => Config::None,
            "fr-hooks" => Config::FrHooks,
            "fr-flight" => Config::FrFlight,
            "fr-spawn" => Config::FrSpawn,
            "fr-trace" => Config::FrTrace,
            "console" => Config::Console,
            "dial9" => Config::Dial9,
            "dial9-disk" => Config::Dial9Disk,
            other => return Err(format!("unknown config {other:?}")),
        },
        sizes: match size.as_str() {
            "small" => &SMALL,
            "large" => &LARGE,
            other => return Err(format!("unknown size {other:?} (want small or large)")),
        },
        workload_name,
        config_name,
        trace_dir,
    })
}

/// Whether the micro workloads start their tasks with the instrumented spawn (`fr-spawn`).
static INSTRUMENTED_SPAWN: AtomicBool = AtomicBool::new(false);

/// Starts a micro workload's task: `tokio::spawn`, or the instrumented spawn in `fr-spawn`.
fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if INSTRUMENTED_SPAWN.load(Ordering::Relaxed) {
        flight_recorder::tokio::spawn(future)
    } else {
        tokio::spawn(future)
    }
}

async fn spawn_heavy(sizes: &Sizes) {
    let mut next = 0;
    while next < sizes.spawn_tasks {
        let end = (next + sizes.spawn_batch).min(sizes.spawn_tasks);
        let tasks: Vec<_> = (next..end)
            .map(|i| spawn(async move { std::hint::black_box(i) }))
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        next = end;
    }
}

async fn yield_heavy(sizes: &Sizes) {
    let yields = sizes.yields_per_task;
    let tasks: Vec<_> = (0..sizes.yield_tasks)
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

async fn ping_pong(sizes: &Sizes) {
    let round_trips = sizes.round_trips;
    let pairs: Vec<_> = (0..sizes.ping_pong_pairs)
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

/// Serves `GET /` until standard input is closed.
async fn http_server() -> io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!(
        "{}",
        serde_json::json!({ "listening": listener.local_addr()?.to_string() })
    );
    io::stdout().flush()?;
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello, world\n" }));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        // Any line or the end of input ends serving; the driver closes stdin.
        let mut sink = Vec::new();
        let _ = io::stdin().lock().read_until(0, &mut sink);
        let _ = stop_tx.send(());
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = stop_rx.await;
        })
        .await
}

async fn run_workload(workload: Workload, sizes: &Sizes) -> io::Result<()> {
    match workload {
        Workload::Spawn => spawn_heavy(sizes).await,
        Workload::Yield => yield_heavy(sizes).await,
        Workload::PingPong => ping_pong(sizes).await,
        Workload::Http => http_server().await?,
    }
    Ok(())
}

fn builder() -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(WORKERS).enable_all();
    builder
}

/// What was attached, kept alive until the measurement ends.
enum Attached {
    Nothing,
    Flight(FlightRecorder),
    Trace(FullTrace, PathBuf),
    Dial9(dial9::Recorder),
}

fn attach(args: &Args) -> io::Result<(tokio::runtime::Runtime, Attached)> {
    let other = |e: String| io::Error::other(e);
    Ok(match args.config {
        Config::None => (builder().build()?, Attached::Nothing),
        Config::FrHooks => {
            let mut b = builder();
            flight_recorder::tokio::instrument(&mut b);
            (b.build()?, Attached::Nothing)
        }
        Config::FrFlight | Config::FrSpawn => {
            INSTRUMENTED_SPAWN.store(args.config == Config::FrSpawn, Ordering::Relaxed);
            let mut b = builder();
            flight_recorder::tokio::instrument(&mut b);
            let rt = b.build()?;
            let recorder = FlightRecorder::new(FlightRecorderConfig {
                min_age: Duration::from_secs(10),
                max_bytes: WINDOW_BYTES,
                ..Default::default()
            });
            recorder.start().map_err(|e| other(e.to_string()))?;
            (rt, Attached::Flight(recorder))
        }
        Config::FrTrace => {
            let mut b = builder();
            flight_recorder::tokio::instrument(&mut b);
            let rt = b.build()?;
            let path = args.trace_dir.join(format!(
                "compare-{}-{}.trace",
                args.workload_name,
                std::process::id()
            ));
            let file = std::fs::File::create(&path)?;
            let trace = FullTrace::start(io::BufWriter::with_capacity(1 << 20, file))
                .map_err(|e| other(e.to_string()))?;
            (rt, Attached::Trace(trace, path))
        }
        Config::Console => {
            console_subscriber::init();
            (builder().build()?, Attached::Nothing)
        }
        Config::Dial9 | Config::Dial9Disk => {
            let recorder = if args.config == Config::Dial9 {
                dial9::recorder(MemoryBuffer::new(WINDOW_BYTES as u64)?).build()
            } else {
                let dir = args
                    .trace_dir
                    .join(format!("compare-dial9-{}", std::process::id()));
                let writer = DiskBuffer::builder()
                    .base_path(dir)
                    .max_total_size(1 << 30)
                    .build()?;
                dial9::recorder(writer).build()
            };
            let rt = recorder.handle().attach_tokio_runtime(
                builder(),
                TokioAttachOptions::builder()
                    .task_tracking_enabled(true)
                    .build(),
            )?;
            (rt, Attached::Dial9(recorder))
        }
    })
}

/// Stops what was attached; returns the trace bytes and, for the flight recorder, the seconds
/// its snapshot took.
fn detach(attached: Attached, rt: tokio::runtime::Runtime, args: &Args) -> io::Result<(u64, f64)> {
    let result = match attached {
        Attached::Nothing => (0, 0.0),
        Attached::Flight(recorder) => {
            let start = Instant::now();
            let bytes = recorder
                .write_to(&mut io::sink())
                .map_err(|e| io::Error::other(e.to_string()))?;
            let seconds = start.elapsed().as_secs_f64();
            recorder.stop();
            (bytes, seconds)
        }
        Attached::Trace(trace, path) => {
            trace.stop().map_err(|e| io::Error::other(e.to_string()))?;
            let bytes = std::fs::metadata(&path)?.len();
            std::fs::remove_file(&path)?;
            (bytes, 0.0)
        }
        Attached::Dial9(recorder) => {
            drop(rt);
            recorder.graceful_shutdown(Duration::from_secs(5));
            let bytes = if args.config == Config::Dial9Disk {
                let dir = args
                    .trace_dir
                    .join(format!("compare-dial9-{}", std::process::id()));
                let bytes = dir_size(&dir);
                let _ = std::fs::remove_dir_all(&dir);
                bytes
            } else {
                0
            };
            return Ok((bytes, 0.0));
        }
    };
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(result)
}

/// The user and system CPU time the process has used, all threads together.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` fills the `rusage` it is given; a zeroed one is a valid value to start
    // from, and on failure it is left zeroed.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Bytes of all files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

fn run(args: &Args) -> io::Result<()> {
    let (rt, attached) = attach(args)?;
    // Warm the runtime's threads up first.
    rt.block_on(async { tokio::spawn(async {}).await })
        .map_err(io::Error::other)?;
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    rt.block_on(run_workload(args.workload, args.sizes))?;
    let cpu = cpu_seconds() - cpu_start;
    let seconds = start.elapsed().as_secs_f64();
    let (trace_bytes, snapshot_seconds) = detach(attached, rt, args)?;
    println!(
        "{}",
        serde_json::json!({
            "workload": args.workload_name,
            "config": args.config_name,
            "seconds": seconds,
            "trace_bytes": trace_bytes,
            "snapshot_seconds": snapshot_seconds,
            "cpu_seconds": cpu,
        })
    );
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("flight-recorder-compare: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("flight-recorder-compare: {e}");
        std::process::exit(1);
    }
}
