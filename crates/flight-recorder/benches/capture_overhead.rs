//! What stacks and CPU samples cost under automatic capture (`flight_recorder::capture`):
//!
//! - `watchdog`: the tokio micro workloads (yield-heavy, ping-pong, spawn-heavy) on a 2-worker
//!   runtime instrumented with `flight_recorder::tokio::Instrumentation`, under capture without
//!   the slow-poll watchdog (`slow_poll_threshold: 0`) against capture with the watchdog and
//!   stacks (`slow_poll_threshold: 100 ms`, `stacks: true`); no poll is slow, so this is the
//!   watchdog's standing cost;
//! - `cpu`: an axum HTTP server (16 keep-alive clients) under capture without CPU samples, with
//!   `cpu_sample_hz: 99`, and a third configuration identical to the first (an A/A pair, to show
//!   the noise of the ratio);
//! - `rules`: the same HTTP server under capture without rule triggers, with the three rules on
//!   (`sched_delay` 50ms/1s, `alive_tasks` +1000/10s, `blocking_queue` 1s) and the server's
//!   runtime watched (`capture::watch_runtime`, a scheduling-delay probe every 100 ms), the same
//!   with a probe every 1 ms (a hundred times the default, to bound the cost), and without
//!   rules again (A/A); no rule fires;
//! - `stack`: one `flight_recorder::stack::capture_thread_stack` round trip to a registered
//!   thread that sleeps and to one that spins, and the time a spinning thread loses to captures
//!   at 100 Hz (its loops per CPU second with captures against without; the CPU time is read from
//!   `/proc/self/task/TID/schedstat`, so other programs' load is not counted as lost).
//!
//! Configurations are interleaved round by round, their order rotated from round to round; the
//! figures are medians of per-round paired ratios. Run with
//! `cargo bench -p flight-recorder --bench capture_overhead` (`BENCH_ROUNDS`, default 7, for the
//! watchdog and spin rounds; `BENCH_HTTP_ROUNDS`, default 11; `BENCH_HTTP_SECS`, default 2;
//! `BENCH_CAPTURES`, default 1000; `BENCH_ONLY=watchdog`, `cpu`, `rules` or `stack` runs one
//! part).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flight_recorder::capture::{self, AliveTasksRule, CaptureSettings, RuleSettings};
use flight_recorder::stack;

use common::{env_or, http_load, median, ping_pong, yield_heavy};

/// Capture settings writing into `dir`, no periodic files, no announcement.
fn settings(dir: &std::path::Path) -> CaptureSettings {
    CaptureSettings {
        dump_dir: dir.to_path_buf(),
        interval: Duration::ZERO,
        slow_poll_threshold: Duration::ZERO,
        announce: false,
        ..Default::default()
    }
}

/// A 2-worker runtime instrumented for automatic capture.
fn runtime() -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    flight_recorder::tokio::Instrumentation::new()
        .name("bench")
        .apply(&mut builder);
    builder.build().unwrap()
}

async fn spawn_heavy() {
    let tasks: Vec<_> = (0..100_000u64)
        .map(|i| tokio::spawn(async move { std::hint::black_box(i) }))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Seconds one run of `workload` takes on a fresh instrumented runtime.
fn time_workload<F: std::future::Future<Output = ()>>(workload: fn() -> F) -> f64 {
    let rt = runtime();
    rt.block_on(async { tokio::spawn(async {}).await.unwrap() });
    let start = Instant::now();
    rt.block_on(workload());
    start.elapsed().as_secs_f64()
}

/// The index order of one round: `count` configurations rotated by `round`.
fn round_order(round: usize, count: usize) -> impl Iterator<Item = usize> {
    (0..count).map(move |k| (k + round) % count)
}

/// `value` measured with capture running under `settings`, capture stopped after.
fn under_capture<T>(settings: CaptureSettings, run: impl FnOnce() -> T) -> T {
    capture::start(settings).expect("capture starts");
    let value = run();
    capture::stop();
    value
}

/// The spread of per-round ratios: (min, max).
fn spread(ratios: &[f64]) -> (f64, f64) {
    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

fn watchdog_part(dir: &std::path::Path, rounds: usize) {
    type Workload = (&'static str, fn() -> f64);
    let workloads: [Workload; 3] = [
        ("yield-heavy (100 tasks x 5k yields)", || {
            time_workload(yield_heavy)
        }),
        ("ping-pong (100 pairs x 1k round trips)", || {
            time_workload(ping_pong)
        }),
        ("spawn-heavy (100k spawns)", || time_workload(spawn_heavy)),
    ];
    let configs = [
        settings(dir),
        CaptureSettings {
            slow_poll_threshold: Duration::from_millis(100),
            stacks: true,
            ..settings(dir)
        },
    ];
    println!("watchdog on, no slow poll: capture without watchdog (off) against with watchdog and stacks (on), {rounds} rounds");
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>17}",
        "workload", "off ms", "on ms", "on/off*", "per-round min..max"
    );
    for (name, workload) in workloads {
        let mut samples = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            for i in round_order(round, 2) {
                samples[i].push(under_capture(configs[i].clone(), workload));
            }
        }
        let ratios: Vec<f64> = samples[0]
            .iter()
            .zip(&samples[1])
            .map(|(off, on)| on / off)
            .collect();
        let (lo, hi) = spread(&ratios);
        println!(
            "{:<40} {:>9.1} {:>9.1} {:>8.3}x {:>8.3}..{:.3}",
            name,
            median(samples[0].clone()) * 1e3,
            median(samples[1].clone()) * 1e3,
            median(ratios),
            lo,
            hi
        );
    }
    println!("* the median of each round's on/off time ratio (above 1: the watchdog costs)");
}

/// Serves `GET /` with a short body on an instrumented 2-worker runtime.
fn http_server() -> (SocketAddr, tokio::runtime::Runtime) {
    let rt = runtime();
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

fn cpu_part(dir: &std::path::Path, rounds: usize, secs: Duration) {
    let configs = [
        settings(dir),
        CaptureSettings {
            cpu_sample_hz: 99,
            ..settings(dir)
        },
        settings(dir),
    ];
    // Once, to show which source the CPU samples use.
    under_capture(
        CaptureSettings {
            announce: true,
            ..configs[1].clone()
        },
        || {},
    );
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds {
        for i in round_order(round, 3) {
            samples[i].push(under_capture(configs[i].clone(), || {
                let (addr, rt) = http_server();
                let rps = http_load(addr, 16, secs);
                rt.shutdown_timeout(Duration::from_secs(1));
                rps
            }));
        }
    }
    // Slowdowns: throughput without / throughput with.
    let ratio = |base: &[f64], other: &[f64]| -> Vec<f64> {
        base.iter().zip(other).map(|(b, o)| b / o).collect()
    };
    let cpu = ratio(&samples[0], &samples[1]);
    let aa = ratio(&samples[0], &samples[2]);
    println!();
    println!(
        "CPU samples at 99 Hz, axum HTTP server, 16 keep-alive clients, {rounds} rounds of {} s",
        secs.as_secs_f64()
    );
    println!(
        "req/s medians: off {:.0}, 99 Hz {:.0}, off again (A/A) {:.0}",
        median(samples[0].clone()),
        median(samples[1].clone()),
        median(samples[2].clone())
    );
    println!(
        "{:<28} {:>9} {:>17}",
        "pair", "slowdown*", "per-round min..max"
    );
    for (name, ratios) in [("off / 99 Hz", cpu), ("off / off again (A/A)", aa)] {
        let (lo, hi) = spread(&ratios);
        println!(
            "{:<28} {:>8.3}x {:>8.3}..{:.3}",
            name,
            median(ratios),
            lo,
            hi
        );
    }
    println!("* the median of each round's throughput ratio (above 1: the second is slower)");
}

fn rules_part(dir: &std::path::Path, rounds: usize, secs: Duration) {
    let rules = RuleSettings {
        sched_delay: Some("50ms/1s".parse().expect("a rule")),
        alive_tasks: Some(AliveTasksRule {
            growth: 1000,
            over: Duration::from_secs(10),
        }),
        blocking_queue: Some(Duration::from_secs(1)),
        ..RuleSettings::default()
    };
    // (name, settings, whether the server's runtime is watched)
    let configs = [
        ("off", settings(dir), false),
        (
            "rules, probe 100ms",
            CaptureSettings {
                rules: rules.clone(),
                ..settings(dir)
            },
            true,
        ),
        (
            "rules, probe 1ms",
            CaptureSettings {
                rules: RuleSettings {
                    probe_interval: Duration::from_millis(1),
                    ..rules
                },
                ..settings(dir)
            },
            true,
        ),
        ("off again (A/A)", settings(dir), false),
    ];
    let mut samples = vec![Vec::new(); configs.len()];
    for round in 0..rounds {
        for i in round_order(round, configs.len()) {
            let (_, settings, watch) = &configs[i];
            samples[i].push(under_capture(settings.clone(), || {
                let (addr, rt) = http_server();
                let watcher = watch.then(|| capture::watch_runtime(rt.handle(), "bench"));
                let rps = http_load(addr, 16, secs);
                drop(watcher);
                rt.shutdown_timeout(Duration::from_secs(1));
                rps
            }));
        }
    }
    println!();
    println!(
        "rule triggers, axum HTTP server, 16 keep-alive clients, {rounds} rounds of {} s",
        secs.as_secs_f64()
    );
    let medians: Vec<String> = configs
        .iter()
        .zip(&samples)
        .map(|((name, _, _), s)| format!("{name} {:.0}", median(s.clone())))
        .collect();
    println!("req/s medians: {}", medians.join(", "));
    println!(
        "{:<32} {:>9} {:>17}",
        "pair", "slowdown*", "per-round min..max"
    );
    for (i, (name, _, _)) in configs.iter().enumerate().skip(1) {
        // Throughput without rules / throughput with.
        let ratios: Vec<f64> = samples[0]
            .iter()
            .zip(&samples[i])
            .map(|(b, o)| b / o)
            .collect();
        let (lo, hi) = spread(&ratios);
        println!(
            "{:<32} {:>8.3}x {:>8.3}..{:.3}",
            format!("off / {name}"),
            median(ratios),
            lo,
            hi
        );
    }
    println!("* the median of each round's throughput ratio (above 1: the second is slower)");
}

/// A registered thread that sleeps (`spin` false) or spins counting loops until `stop`.
fn target_thread(
    spin: bool,
    stop: Arc<AtomicBool>,
    loops: Arc<AtomicU64>,
) -> (stack::ThreadHandle, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        tx.send(stack::register_current_thread().expect("registration"))
            .unwrap();
        while !stop.load(Ordering::Relaxed) {
            if spin {
                let mut x = 0u64;
                for i in 0..1000u64 {
                    x = x.wrapping_add(std::hint::black_box(i));
                }
                std::hint::black_box(x);
                loops.fetch_add(1, Ordering::Relaxed);
            } else {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    (rx.recv().unwrap(), thread)
}

/// The CPU time thread `tid` of this process has used, in ns (`/proc/self/task/TID/schedstat`,
/// first field): the spinning thread's rate is per CPU second, so that the other programs on the
/// machine do not count as time lost, while a signal handler running on the thread does.
fn thread_cpu_ns(tid: i32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .expect("the thread's schedstat");
    text.split_whitespace()
        .next()
        .and_then(|field| field.parse().ok())
        .expect("schedstat's first field")
}

/// The median and 90th percentile of `captures` round trips to `handle`, in µs.
fn round_trips(handle: &stack::ThreadHandle, captures: usize) -> (f64, f64, usize) {
    let mut times = Vec::with_capacity(captures);
    let mut frames = Vec::with_capacity(captures);
    for _ in 0..captures {
        let start = Instant::now();
        let stack =
            stack::capture_thread_stack(handle, start + Duration::from_secs(1)).expect("a capture");
        times.push(start.elapsed().as_secs_f64() * 1e6);
        frames.push(stack.frames.len() as f64);
    }
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let p90 = sorted[sorted.len() * 9 / 10];
    (median(times), p90, median(frames) as usize)
}

fn stack_part(rounds: usize, captures: usize) {
    println!();
    println!("one stack capture: capture_thread_stack round trip, {captures} captures");
    println!(
        "{:<28} {:>10} {:>10} {:>7}",
        "target thread", "median µs", "p90 µs", "frames"
    );
    for (name, spin) in [("sleeping", false), ("spinning", true)] {
        let stop = Arc::new(AtomicBool::new(false));
        let loops = Arc::new(AtomicU64::new(0));
        let (handle, thread) = target_thread(spin, stop.clone(), loops);
        // Warm up.
        round_trips(&handle, 10);
        let (med, p90, frames) = round_trips(&handle, captures);
        println!("{name:<28} {med:>10.1} {p90:>10.1} {frames:>7}");
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
    }

    // The spinning thread's loops per second, without captures (0) and with captures at
    // 100 Hz (1), one second each, interleaved.
    let stop = Arc::new(AtomicBool::new(false));
    let loops = Arc::new(AtomicU64::new(0));
    let (handle, thread) = target_thread(true, stop.clone(), loops.clone());
    let window = Duration::from_secs(1);
    let mut samples = [Vec::new(), Vec::new()];
    let mut taken = 0u64;
    for round in 0..rounds {
        for i in round_order(round, 2) {
            let start_loops = loops.load(Ordering::Relaxed);
            let start_cpu = thread_cpu_ns(handle.tid());
            let start = Instant::now();
            let mut next = start;
            while start.elapsed() < window {
                if i == 1 {
                    stack::capture_thread_stack(&handle, Instant::now() + Duration::from_secs(1))
                        .expect("a capture");
                    taken += 1;
                }
                next += Duration::from_millis(10);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            let cpu_ns = thread_cpu_ns(handle.tid()) - start_cpu;
            let rate = (loops.load(Ordering::Relaxed) - start_loops) as f64 / (cpu_ns as f64 / 1e9);
            samples[i].push(rate);
        }
    }
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
    let lost: Vec<f64> = samples[0]
        .iter()
        .zip(&samples[1])
        .map(|(none, with)| 1.0 - with / none)
        .collect();
    let (lo, hi) = spread(&lost);
    let per_second = taken as f64 / (rounds as f64 * window.as_secs_f64());
    let lost_median = median(lost);
    println!(
        "spinning thread, {rounds} rounds of 1 s: {:.4e} loops per CPU second without captures, \
         {:.4e} with {per_second:.0} captures/s",
        median(samples[0].clone()),
        median(samples[1].clone())
    );
    println!(
        "time lost*: {:.3}% of its CPU time (per-round {:.3}%..{:.3}%), about {:.1} µs of the \
         target's time per capture",
        lost_median * 100.0,
        lo * 100.0,
        hi * 100.0,
        lost_median * 1e6 / per_second
    );
    println!("* the median of each round's 1 - with/without loops per CPU second");
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("capture_overhead: bench");
        return;
    }
    let rounds = env_or("BENCH_ROUNDS", 7) as usize;
    let http_rounds = env_or("BENCH_HTTP_ROUNDS", 11) as usize;
    let http_secs = Duration::from_secs(env_or("BENCH_HTTP_SECS", 2));
    let captures = env_or("BENCH_CAPTURES", 1000) as usize;
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let dir = tempfile::tempdir().unwrap();
    if only.is_empty() || only == "watchdog" {
        watchdog_part(dir.path(), rounds);
    }
    if only.is_empty() || only == "cpu" {
        cpu_part(dir.path(), http_rounds, http_secs);
    }
    if only.is_empty() || only == "rules" {
        rules_part(dir.path(), http_rounds, http_secs);
    }
    if only.is_empty() || only == "stack" {
        stack_part(rounds, captures);
    }
    let dumps = capture::list_dumps(dir.path())
        .map(|d| d.len())
        .unwrap_or(0);
    println!();
    println!("dump files written during the run: {dumps}");
}
