//! The recorder's overhead on tokio workloads: each workload runs on a 2-worker runtime in three
//! configurations, interleaved round by round, and the median round of each is reported:
//!
//! - `bare`: a runtime without instrumentation;
//! - `off`: the runtime instrumented with `flight_recorder::tokio::instrument`, no recorder
//!   running (what a service pays for having the hooks compiled in);
//! - `on`: instrumented, with a flight recorder running;
//! - `spawn` (the micro workloads only): as `on`, with every task started by
//!   `flight_recorder::tokio::spawn` (the instrumented spawn, which adds each wake with its waker);
//! - `forward` (the micro workloads only): as `on`, with every task wrapped in the least a wrapper
//!   that sees a task's wakes must do: its waker is an `Arc` of its own that forwards each wake to
//!   tokio's waker by reference, records nothing, and is made at the first poll (tokio's waker of
//!   a task never changes, so it registers nothing after). `spawn/forward*` is what the
//!   instrumented spawn pays above that floor: the wake event, the waker slot, the lazy state;
//! - `forward-wake` (the micro workloads only): `forward`, whose waker also records one wake
//!   event (the woken task and the waking one) before it forwards: the floor of a wrapper that
//!   records each wake, which is what the instrumented spawn's target asks for;
//! - `floor`: the floor of the hooks path, tokio's hook dispatch with the same hooks installed as
//!   `instrument` installs (thread start, park, unpark, task spawn, terminate, before and after
//!   poll), each doing nothing but the two poll hooks, which read the recorder's clock once each
//!   (`black_box`ed): what any recorder of timed polls through tokio's hooks pays.
//! - `store` (the micro workloads only): `floor`, whose two poll hooks also keep what they read,
//!   the time and the task's id, in a thread-local ring of words: the least a recorder that keeps
//!   each poll's start and end can do, with no encoding, no chunk and no check. `on − store` is
//!   what the recorder's events cost above merely storing their data.
//!
//! The task polls of each workload are counted in separate, untimed runs (config `count`: the
//! floor's hooks with a shared counter), so that the recording's cost above the floor is given per
//! poll: (time on - time floor) / polls, per round, paired. Ratios are
//! given with 95% intervals over the paired rounds (the median with a bootstrap interval, the mean
//! with a t-interval).
//!
//! Built with the workspace's `--cfg tokio_unstable`, so the runtime hooks record every task's
//! spawn, polls and end. The trace rate of each workload is measured in a separate round with a
//! full trace into a byte counter.
//!
//! Run with `cargo bench -p flight-recorder --bench tokio_overhead` (`BENCH_ROUNDS`, default 7,
//! and at least 21 for intervals worth quoting;
//! `BENCH_HTTP_SECS`, default 2; `BENCH_WINDOW_MB`, the recorder's window, default 64; `BENCH_STORE_MB`, when set, the size of each
//! worker's ring of config `store` instead of 64 KiB (rounded up to a power of two, its memory
//! mapped before the runs), and with it `BENCH_STORE_BYTES`, the bytes each poll hook keeps
//! there (default 16: the time and the task's id);
//! `BENCH_ONLY=micro` or `BENCH_ONLY=http` runs one part,
//! `BENCH_ONLY=spawn`, `yield` or `ping-pong` one micro workload). The micro workloads are small
//! by default (100k spawns, 100 tasks x 5k yields, 100 pairs x 1k round trips);
//! `BENCH_SIZE=large` runs the overhead study's large sizes (3 M spawns in batches of 1000, 1000 tasks x
//! 10k yields, 1000 pairs x 4000 round trips over `mpsc(1)`).

mod common;

use std::cell::Cell;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flight_recorder::{FlightRecorder, FlightRecorderConfig, FullTrace};

use common::{
    env_or, http_load_counted, init_recorder_clock, mean_ci, median, median_ci, recorder_clock,
};

#[derive(Clone, Copy, PartialEq)]
enum Config {
    Bare,
    Off,
    On,
    /// `On`, with the workload's tasks started by `flight_recorder::tokio::spawn`.
    Spawn,
    /// `On`, with the workload's tasks wrapped in [`Forwarding`].
    Forward,
    /// `Forward`, whose wakers record a wake event each.
    ForwardWake,
    /// Tokio's hook dispatch with hooks that do nothing but read the clock once per poll hook.
    Floor,
    /// `Floor`, counting the polls into [`POLLS`] (untimed: the shared counter is contended).
    Count,
    /// `Floor`, whose poll hooks keep the time and the task's id in [`KEPT`].
    Store,
}

/// Words in [`KEPT`]: 64 KiB, as large as the recorder's chunks, so that the stores leave the
/// first-level cache as the recorder's do (a power of two: the position wraps with a mask).
const KEPT_WORDS: usize = 8192;

thread_local! {
    /// Where config `Store`'s poll hooks keep the time and the task's id: a ring of words and
    /// the next position, initialized at compile time (no lazy initialization on access) and
    /// without a destructor to register.
    static KEPT: (Cell<usize>, [Cell<u64>; KEPT_WORDS]) =
        const { (Cell::new(0), [const { Cell::new(0) }; KEPT_WORDS]) };
}

/// The large rings not in use (config `Store` with `BENCH_STORE_MB`): made and written once
/// through in `main`, before any run, so that every run writes to memory already mapped, as a
/// recorder's recycled chunks are (a fresh ring's first write to each page would take a page
/// fault and measure the kernel). A worker takes one at its first poll and gives it back when it
/// stops ([`give_back_large_ring`]).
static RINGS: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

thread_local! {
    /// Config `Store`'s ring when `BENCH_STORE_MB` asks for one as large as a recorder's window:
    /// the next position and the ring's address (null until the thread's first poll). Plain
    /// cells, initialized at compile time, with no destructor: reached as cheaply as [`KEPT`].
    static KEPT_LARGE: (Cell<usize>, Cell<*mut u8>) =
        const { (Cell::new(0), Cell::new(std::ptr::null_mut())) };
}

/// Gives this thread's large ring back to [`RINGS`] (the thread-stop hook of config `Store`).
fn give_back_large_ring() {
    KEPT_LARGE.with(|(pos, ring)| {
        let taken = ring.replace(std::ptr::null_mut());
        pos.set(0);
        if !taken.is_null() {
            RINGS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(taken as usize);
        }
    });
}

/// A large ring for this thread: one of [`RINGS`], or a new one if none is left.
#[cold]
fn take_large_ring(size: usize) -> *mut u8 {
    let taken = RINGS.lock().unwrap_or_else(|e| e.into_inner()).pop();
    taken.map_or_else(|| new_large_ring(size), |ring| ring as *mut u8)
}

/// A ring of `size` bytes and 16 more (each store is of whole words), written once through so
/// that its pages are mapped. Never freed: the bench makes a few and reuses them.
fn new_large_ring(size: usize) -> *mut u8 {
    let mut bytes = vec![0u8; size + 16].into_boxed_slice();
    for page in bytes.chunks_mut(4096) {
        page[0] = 1;
    }
    Box::leak(bytes).as_mut_ptr()
}

/// The size of each large ring ([`KEPT_LARGE`]) in bytes (a power of two), or 0 to keep in [`KEPT`].
static KEPT_LARGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// With [`KEPT_LARGE`]: the bytes each poll hook keeps, 16 for the time and the task's id, fewer
/// for as many of the time's lowest bytes. A recorder writes about 3 bytes per poll hook
/// (`BENCH_STORE_BYTES=3`): the floor of keeping that much in a window.
static KEPT_BYTES_PER_HOOK: AtomicUsize = AtomicUsize::new(16);

/// Makes `count` rings of `size` bytes (a power of two) for [`KEPT_LARGE`].
fn make_large_rings(size: usize, count: usize) {
    let mut rings = RINGS.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..count {
        rings.push(new_large_ring(size) as usize);
    }
    KEPT_LARGE_SIZE.store(size, Ordering::Relaxed);
}

/// Keeps `time` and `task` in this thread's [`KEPT`], or in its [`KEPT_LARGE`] when one is asked
/// for.
#[inline(always)]
fn keep(time: u64, task: u64) {
    let size = KEPT_LARGE_SIZE.load(Ordering::Relaxed);
    if size != 0 {
        let advance = KEPT_BYTES_PER_HOOK.load(Ordering::Relaxed);
        KEPT_LARGE.with(|(pos, ring)| {
            let mut base = ring.get();
            if base.is_null() {
                base = take_large_ring(size);
                ring.set(base);
            }
            let at = pos.get() & (size - 1);
            // SAFETY: `base` is this thread's ring of `size + 16` bytes (no other thread has it
            // until this one gives it back), and `at < size`.
            unsafe {
                base.add(at).cast::<u64>().write_unaligned(time);
                if advance >= 16 {
                    base.add(at + 8).cast::<u64>().write_unaligned(task);
                }
            }
            pos.set(at + advance);
        });
        return;
    }
    KEPT.with(|(pos, words)| {
        let at = pos.get();
        words[at & (KEPT_WORDS - 1)].set(time);
        words[(at + 1) & (KEPT_WORDS - 1)].set(task);
        pos.set(at.wrapping_add(2));
    });
}

/// The polls made on runtimes of config `Count`.
static POLLS: AtomicU64 = AtomicU64::new(0);

/// Whether the workloads start their tasks with the instrumented spawn (config `Spawn`).
static INSTRUMENTED_SPAWN: AtomicBool = AtomicBool::new(false);

/// Whether the workloads wrap their tasks in [`Forwarding`] (config `Forward`).
static FORWARDING_SPAWN: AtomicBool = AtomicBool::new(false);

/// Whether the [`Forwarding`] wakers record each wake (config `ForwardWake`).
static FORWARDING_RECORDS_WAKES: AtomicBool = AtomicBool::new(false);

/// Spawns `future` with `tokio::spawn`, with the instrumented spawn in config `Spawn`, or wrapped
/// in [`Forwarding`] in config `Forward`.
fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    if INSTRUMENTED_SPAWN.load(Ordering::Relaxed) {
        flight_recorder::tokio::spawn(future)
    } else if FORWARDING_SPAWN.load(Ordering::Relaxed) {
        tokio::spawn(Forwarding {
            inner: future,
            waker: None,
            records_wakes: FORWARDING_RECORDS_WAKES.load(Ordering::Relaxed),
        })
    } else {
        tokio::spawn(future)
    }
}

pin_project_lite::pin_project! {
    /// The floor of a wrapper that sees its task's wakes (config `Forward`): the inner future gets
    /// a waker of the wrapper's own, an `Arc` made at the first poll that forwards every wake to
    /// tokio's waker by reference. It never registers again (tokio's waker of a task is always
    /// the same) and records nothing, except one wake event per wake when `records_wakes` (config
    /// `ForwardWake`): what the instrumented spawn pays beyond that is its waker slot and its
    /// lazy state.
    struct Forwarding<F> {
        #[pin]
        inner: F,
        waker: Option<std::task::Waker>,
        records_wakes: bool,
    }
}

/// What a [`Forwarding`] waker holds: tokio's waker of the task, and the task's id if each wake
/// is recorded (0: none is). Aligned to a cache line as the instrumented spawn's state is, so
/// that no two tasks' counts share one (see `WakeState` in `src/tokio/spawn.rs`).
#[repr(align(64))]
struct Forward {
    waker: std::task::Waker,
    task: u64,
}

impl Forward {
    fn forward(&self) {
        if self.task != 0 {
            flight_recorder::raw::record(
                flight_recorder::raw::EventKind::TaskWake,
                &[self.task, tokio::task::try_id().map_or(0, task_number)],
            );
        }
        self.waker.wake_by_ref();
    }
}

impl std::task::Wake for Forward {
    fn wake(self: Arc<Self>) {
        self.forward();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.forward();
    }
}

/// The number of a tokio task id, as the recorder reads it: tokio's `Id` hashes its number alone.
fn task_number(id: tokio::task::Id) -> u64 {
    struct Last(u64);
    impl std::hash::Hasher for Last {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, _: &[u8]) {}
        fn write_u64(&mut self, value: u64) {
            self.0 = value;
        }
    }
    let mut hasher = Last(0);
    std::hash::Hash::hash(&id, &mut hasher);
    hasher.0
}

impl<F: std::future::Future> std::future::Future for Forwarding<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        let records_wakes = *this.records_wakes;
        let waker = this.waker.get_or_insert_with(|| {
            let task = if records_wakes {
                tokio::task::try_id().map_or(0, task_number)
            } else {
                0
            };
            Arc::new(Forward {
                waker: cx.waker().clone(),
                task,
            })
            .into()
        });
        this.inner.poll(&mut std::task::Context::from_waker(waker))
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
    match config {
        Config::Bare => {}
        Config::Floor => {
            floor_hooks(&mut builder);
        }
        Config::Store => {
            floor_hooks(&mut builder)
                .on_thread_stop(give_back_large_ring)
                .on_before_task_poll(|meta| keep(recorder_clock(), task_number(meta.id())))
                .on_after_task_poll(|meta| keep(recorder_clock(), task_number(meta.id())));
        }
        Config::Count => {
            floor_hooks(&mut builder).on_before_task_poll(|_| {
                POLLS.fetch_add(1, Ordering::Relaxed);
            });
        }
        Config::Off | Config::On | Config::Spawn | Config::Forward | Config::ForwardWake => {
            flight_recorder::tokio::instrument(&mut builder);
        }
    }
    builder.build().unwrap()
}

/// The floor of the hooks path: every hook `instrument` installs, dispatched by tokio, doing
/// nothing but two reads of the recorder's clock per poll (one before, one after).
fn floor_hooks(builder: &mut tokio::runtime::Builder) -> &mut tokio::runtime::Builder {
    builder
        .on_thread_start(|| {})
        .on_thread_park(|| {})
        .on_thread_unpark(|| {})
        .on_task_spawn(|_| {})
        .on_task_terminate(|_| {})
        .on_before_task_poll(|_| {
            std::hint::black_box(recorder_clock());
        })
        .on_after_task_poll(|_| {
            std::hint::black_box(recorder_clock());
        })
}

/// The task polls made so far on runtimes of config `Count` (tokio's `worker_poll_count` lags:
/// a worker publishes it when it parks).
fn polls() -> u64 {
    POLLS.load(Ordering::Relaxed)
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

/// One run of a workload: its seconds (or requests per second) and the task polls it made.
#[derive(Clone, Copy)]
struct Sample {
    value: f64,
    polls: f64,
}

/// One run of `workload` on a fresh runtime of `config`.
fn time_workload<F: std::future::Future<Output = ()>>(
    config: Config,
    workload: fn() -> F,
) -> Sample {
    let rt = runtime(config);
    // Warm the runtime's threads up first.
    rt.block_on(async { tokio::spawn(async {}).await.unwrap() });
    INSTRUMENTED_SPAWN.store(config == Config::Spawn, Ordering::Relaxed);
    FORWARDING_SPAWN.store(
        matches!(config, Config::Forward | Config::ForwardWake),
        Ordering::Relaxed,
    );
    FORWARDING_RECORDS_WAKES.store(config == Config::ForwardWake, Ordering::Relaxed);
    let polls_before = polls();
    let start = Instant::now();
    rt.block_on(workload());
    let elapsed = start.elapsed().as_secs_f64();
    let polls = polls() - polls_before;
    INSTRUMENTED_SPAWN.store(false, Ordering::Relaxed);
    FORWARDING_SPAWN.store(false, Ordering::Relaxed);
    FORWARDING_RECORDS_WAKES.store(false, Ordering::Relaxed);
    Sample {
        value: elapsed,
        polls: polls as f64,
    }
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
    higher_is_better: bool,
    bytes_per_sec: f64,
    bare: Vec<Sample>,
    off: Vec<Sample>,
    on: Vec<Sample>,
    floor: Vec<Sample>,
    /// The `spawn` configuration (micro workloads only).
    spawn: Option<Vec<Sample>>,
    /// The `forward` configuration (micro workloads only).
    forward: Option<Vec<Sample>>,
    /// The `forward-wake` configuration (micro workloads only).
    forward_wake: Option<Vec<Sample>>,
    /// The `store` configuration (micro workloads only).
    store: Option<Vec<Sample>>,
}

impl Row {
    fn med(&self, samples: &[Sample]) -> f64 {
        median(samples.iter().map(|s| s.value).collect())
    }

    /// Each round's slowdown of `x` against `base`: time / base time, or base throughput /
    /// throughput.
    fn slowdowns(&self, base: &[Sample], x: &[Sample]) -> Vec<f64> {
        base.iter()
            .zip(x)
            .map(|(b, x)| {
                if self.higher_is_better {
                    b.value / x.value
                } else {
                    x.value / b.value
                }
            })
            .collect()
    }

    /// Seconds per unit of work (a run, or a request).
    fn seconds(&self, s: &Sample) -> f64 {
        if self.higher_is_better {
            1.0 / s.value
        } else {
            s.value
        }
    }

    /// Each round's cost of `x` above `base` per poll, ns: the difference in time per unit of
    /// work over the polls of `x`'s unit of work.
    fn per_poll_ns(&self, base: &[Sample], x: &[Sample]) -> Vec<f64> {
        base.iter()
            .zip(x)
            .map(|(b, x)| (self.seconds(x) - self.seconds(b)) / x.polls * 1e9)
            .collect()
    }
}

/// The configurations of one round with their sample index, rotated from round to round so
/// that no configuration always runs first or last (the machine drifts within a round too).
fn round_order(round: usize, configs: &[Config]) -> impl Iterator<Item = (usize, Config)> + '_ {
    let count = configs.len();
    (0..count).map(move |k| {
        let i = (k + round) % count;
        (i, configs[i])
    })
}

fn fmt_ci((mid, lo, hi): (f64, f64, f64), digits: usize) -> String {
    format!("{mid:.digits$} [{lo:.digits$}, {hi:.digits$}]")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("tokio_overhead: bench");
        return;
    }
    let store_bytes = match env_or("BENCH_STORE_KB", 0) as usize {
        0 => (env_or("BENCH_STORE_MB", 0) as usize) << 20,
        kb => kb << 10,
    };
    if store_bytes != 0 {
        let per_hook = env_or("BENCH_STORE_BYTES", 16).clamp(1, 16) as usize;
        KEPT_BYTES_PER_HOOK.store(per_hook, Ordering::Relaxed);
        // One ring per worker, and one for a thread that polls while another runtime's worker
        // has not given its ring back yet.
        make_large_rings(store_bytes.next_power_of_two(), 3);
    }
    let clock = init_recorder_clock();
    let rounds = env_or("BENCH_ROUNDS", 7) as usize;
    let http_secs = Duration::from_secs(env_or("BENCH_HTTP_SECS", 2));
    let recorder = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(10),
        max_bytes: (env_or("BENCH_WINDOW_MB", 64) as usize) << 20,
        ..Default::default()
    });
    let run_config = |config: Config, f: &mut dyn FnMut(Config) -> Sample| -> Sample {
        if matches!(
            config,
            Config::On | Config::Spawn | Config::Forward | Config::ForwardWake
        ) {
            recorder.start().unwrap();
        }
        let value = f(config);
        recorder.stop();
        value
    };

    type Workload = (&'static str, fn(Config) -> Sample);
    let micro: [Workload; 3] = [
        ("spawn-heavy", |c| time_workload(c, spawn_heavy)),
        ("yield-heavy", |c| time_workload(c, yield_heavy)),
        ("ping-pong", |c| time_workload(c, ping_pong)),
    ];
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let mut rows = Vec::new();
    let micro_configs = [
        Config::Bare,
        Config::Off,
        Config::On,
        Config::Spawn,
        Config::Floor,
        Config::Forward,
        Config::ForwardWake,
        Config::Store,
    ];
    for (name, workload) in micro {
        let selected = match only.as_str() {
            "" | "micro" => true,
            "http" => false,
            one => name.starts_with(one),
        };
        if !selected {
            continue;
        }
        let mut samples = vec![Vec::new(); micro_configs.len()];
        for round in 0..rounds {
            for (i, config) in round_order(round, &micro_configs) {
                samples[i].push(run_config(config, &mut |c| workload(c)));
            }
        }
        let bytes_per_sec = trace_rate(|| {
            workload(Config::Off);
        });
        let polls = median((0..3).map(|_| workload(Config::Count).polls).collect());
        for s in samples.iter_mut().flatten() {
            s.polls = polls;
        }
        let mut samples = samples.into_iter();
        let mut next = || samples.next().unwrap();
        rows.push(Row {
            name,
            unit: "ms",
            higher_is_better: false,
            bytes_per_sec,
            bare: next(),
            off: next(),
            on: next(),
            spawn: Some(next()),
            floor: next(),
            forward: Some(next()),
            forward_wake: Some(next()),
            store: Some(next()),
        });
    }

    let http_configs = [Config::Bare, Config::Off, Config::On, Config::Floor];
    let mut http = vec![Vec::new(); http_configs.len()];
    let http_runs = only.is_empty() || only == "http";
    for round in 0..if http_runs { rounds } else { 0 } {
        for (i, config) in round_order(round, &http_configs) {
            http[i].push(run_config(config, &mut |c| {
                let (addr, rt) = http_server(c);
                let polls_before = polls();
                let (rps, requests) = http_load_counted(addr, 16, http_secs);
                let polls = polls() - polls_before;
                rt.shutdown_timeout(Duration::from_secs(1));
                Sample {
                    value: rps,
                    polls: polls as f64 / requests.max(1) as f64,
                }
            }));
        }
    }
    let http_bytes = if !http_runs {
        0.0
    } else {
        let (addr, rt) = http_server(Config::Off);
        let rate = trace_rate(|| {
            http_load_counted(addr, 16, http_secs);
        });
        rt.shutdown_timeout(Duration::from_secs(1));
        rate
    };
    if http_runs {
        let (addr, rt) = http_server(Config::Count);
        let polls_before = polls();
        let (_, requests) = http_load_counted(addr, 16, http_secs);
        let per_request = (polls() - polls_before) as f64 / requests.max(1) as f64;
        rt.shutdown_timeout(Duration::from_secs(1));
        for s in http.iter_mut().flatten() {
            s.polls = per_request;
        }
        let mut http = http.into_iter();
        let mut next = || http.next().unwrap();
        rows.push(Row {
            name: "HTTP server (axum, 16 keep-alive clients)",
            unit: "req/s",
            higher_is_better: true,
            bytes_per_sec: http_bytes,
            bare: next(),
            off: next(),
            on: next(),
            floor: next(),
            spawn: None,
            forward: None,
            forward_wake: None,
            store: None,
        });
    }

    println!("tokio workloads on 2 workers, median of {rounds} interleaved rounds");
    let z = sizes();
    println!(
        "sizes: spawn {} tasks in batches of {}; yield {} tasks x {}; ping-pong {} pairs x {}",
        z.spawns, z.spawn_batch, z.yield_tasks, z.yields, z.pairs, z.round_trips
    );
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>10}",
        "workload", "bare", "floor", "off", "on", "off/bare", "on/bare", "on/off*", "trace MB/s"
    );
    let scale = |row: &Row| if row.higher_is_better { 1.0 } else { 1e3 };
    for row in &rows {
        let k = scale(row);
        let ratio = |x: f64| {
            let bare = row.med(&row.bare);
            if row.higher_is_better {
                bare / x
            } else {
                x / bare
            }
        };
        println!(
            "{:<44} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>8.3}x {:>8.3}x {:>8.3}x {:>10.2}   ({})",
            row.name,
            row.med(&row.bare) * k,
            row.med(&row.floor) * k,
            row.med(&row.off) * k,
            row.med(&row.on) * k,
            ratio(row.med(&row.off)),
            ratio(row.med(&row.on)),
            median(row.slowdowns(&row.off, &row.on)),
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
            if let Some(spawn) = &row.spawn {
                let k = scale(row);
                println!(
                    "{:<44} {:>10.1} {:>10.1} {:>10.1} {:>8.3}x {:>10.3}x   ({})",
                    row.name,
                    row.med(&row.bare) * k,
                    row.med(&row.on) * k,
                    row.med(spawn) * k,
                    median(row.slowdowns(&row.on, spawn)),
                    median(row.slowdowns(&row.bare, spawn)),
                    row.unit
                );
            }
        }
        println!("* the median of each round's paired slowdown");
        println!();
        println!(
            "the instrumented spawn against the floor of wrapping wakers (config forward: hooks + \
             recorder + a waker that only forwards)"
        );
        println!(
            "{:<44} {:>8} {:>8} {:>8} {:>8} {:>11} {:>11} {:>13} {:>14}",
            "workload",
            "on",
            "forward",
            "fwd-wake",
            "spawn",
            "forward/on*",
            "fwd-wake/on*",
            "spawn/forward*",
            "spawn/fwd-wake*"
        );
        for row in &rows {
            if let (Some(spawn), Some(forward), Some(forward_wake)) =
                (&row.spawn, &row.forward, &row.forward_wake)
            {
                let k = scale(row);
                println!(
                    "{:<44} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>10.3}x {:>11.3}x {:>13.3}x {:>14.3}x   ({})",
                    row.name,
                    row.med(&row.on) * k,
                    row.med(forward) * k,
                    row.med(forward_wake) * k,
                    row.med(spawn) * k,
                    median(row.slowdowns(&row.on, forward)),
                    median(row.slowdowns(&row.on, forward_wake)),
                    median(row.slowdowns(forward, spawn)),
                    median(row.slowdowns(forward_wake, spawn)),
                    row.unit
                );
            }
        }
        println!(
            "spawn-heavy: the forwarding wrapper allocates at every task's first poll, the \
             instrumented spawn only at a task's first waker clone"
        );
    }

    println!();
    println!(
        "the hooks path against its floor (floor: tokio's dispatch of no-op hooks + two reads of \
         the recorder's clock ({clock}) per poll)"
    );
    println!(
        "{:<44} {:>12} {:>9} {:>26} {:>26}",
        "workload", "polls", "on/floor*", "on-floor ns/poll [95%]", "floor-bare ns/poll [95%]"
    );
    for row in &rows {
        let polls = median(row.on.iter().map(|s| s.polls).collect());
        println!(
            "{:<44} {:>12.2} {:>8.3}x {:>26} {:>26}   (polls per {})",
            row.name,
            polls,
            median(row.slowdowns(&row.floor, &row.on)),
            fmt_ci(median_ci(&row.per_poll_ns(&row.floor, &row.on)), 2),
            fmt_ci(median_ci(&row.per_poll_ns(&row.bare, &row.floor)), 2),
            if row.higher_is_better {
                "request"
            } else {
                "run"
            },
        );
    }
    println!(
        "* per round, paired; ns/poll: (time on - time floor) / polls, wall time per run (or per \
         request) over the polls counted (config count); medians with bootstrap 95% intervals"
    );
    if rows.iter().any(|row| row.store.is_some()) {
        println!();
        println!(
            "the hooks path against storing each poll hook's time and task id (config store: the \
             floor + two words into a thread-local ring per poll hook)"
        );
        println!(
            "{:<44} {:>26} {:>26}",
            "workload", "store-floor ns/poll [95%]", "on-store ns/poll [95%]"
        );
        for row in &rows {
            if let Some(store) = &row.store {
                println!(
                    "{:<44} {:>26} {:>26}",
                    row.name,
                    fmt_ci(median_ci(&row.per_poll_ns(&row.floor, store)), 2),
                    fmt_ci(median_ci(&row.per_poll_ns(store, &row.on)), 2),
                );
            }
        }
    }

    println!();
    println!("paired on/bare slowdowns over {rounds} rounds, 95% intervals");
    println!(
        "{:<44} {:>28} {:>28} {:>28}",
        "workload", "on/bare median [bootstrap]", "on/bare mean [t]", "floor/bare median [boot]"
    );
    for row in &rows {
        let on_bare = row.slowdowns(&row.bare, &row.on);
        println!(
            "{:<44} {:>28} {:>28} {:>28}",
            row.name,
            fmt_ci(median_ci(&on_bare), 3),
            fmt_ci(mean_ci(&on_bare), 3),
            fmt_ci(median_ci(&row.slowdowns(&row.bare, &row.floor)), 3),
        );
    }
}
