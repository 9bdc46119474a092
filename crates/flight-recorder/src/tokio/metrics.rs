//! Runtime counters sampled into the trace.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeMetrics};

use crate::raw::{self, EventKind};
use crate::record::intern::intern_name;

/// Samples `handle`'s runtime metrics every `period` while a recorder runs, as counters named
/// `tokio.<runtime>.<metric>`: `alive_tasks`, `global_queue_depth`, `busy_workers_permille`
/// (worker busy time over the period, 1000 = one worker busy all along) and `workers`; with
/// `--cfg tokio_unstable` also `blocking_threads`, `blocking_queue_depth` and `spawned_tasks`.
///
/// The sampler is a thread of its own (so it needs no timer on the runtime and is not delayed by
/// a blocked worker); it stops when the returned handle is dropped.
///
/// ```
/// let runtime = tokio::runtime::Builder::new_multi_thread().build()?;
/// let sampler = flight_recorder::tokio::record_runtime_metrics(
///     runtime.handle(),
///     "api",
///     std::time::Duration::from_millis(100),
/// );
/// drop(sampler); // stops sampling
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn record_runtime_metrics(handle: &Handle, runtime: &str, period: Duration) -> MetricsSampler {
    let names = CounterNames::new(runtime);
    let metrics = handle.metrics();
    let stop = Arc::new(AtomicBool::new(false));
    let period = period.max(Duration::from_millis(1));
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("flight-recorder-metrics".into())
            .spawn(move || sample(&metrics, &names, period, &stop))
            .ok()
    };
    MetricsSampler { stop, thread }
}

/// A running metrics sampler; dropping it stops the sampling thread.
pub struct MetricsSampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for MetricsSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

fn sample(metrics: &RuntimeMetrics, names: &CounterNames, period: Duration, stop: &AtomicBool) {
    let mut last_busy = total_busy(metrics);
    let mut last_time = Instant::now();
    let mut next = last_time + period;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < next {
            std::thread::park_timeout(next - now);
            continue;
        }
        next += period;
        if next < now {
            next = now + period;
        }
        let busy = total_busy(metrics);
        let elapsed = now.duration_since(last_time).as_nanos().max(1);
        let busy_permille = busy.saturating_sub(last_busy).as_nanos() * 1000 / elapsed;
        (last_busy, last_time) = (busy, now);
        if !raw::is_running() {
            continue;
        }
        let counter = |name: u64, value: u64| raw::record(EventKind::Counter, &[name, value]);
        counter(names.alive_tasks, metrics.num_alive_tasks() as u64);
        counter(
            names.global_queue_depth,
            metrics.global_queue_depth() as u64,
        );
        counter(names.busy_workers_permille, busy_permille as u64);
        counter(names.workers, metrics.num_workers() as u64);
        #[cfg(tokio_unstable)]
        {
            counter(
                names.blocking_threads,
                metrics.num_blocking_threads() as u64,
            );
            counter(
                names.blocking_queue_depth,
                metrics.blocking_queue_depth() as u64,
            );
            counter(names.spawned_tasks, metrics.spawned_tasks_count());
        }
    }
}

fn total_busy(metrics: &RuntimeMetrics) -> Duration {
    (0..metrics.num_workers())
        .map(|w| metrics.worker_total_busy_duration(w))
        .sum()
}

/// The interned names of one runtime's counters.
struct CounterNames {
    alive_tasks: u64,
    global_queue_depth: u64,
    busy_workers_permille: u64,
    workers: u64,
    #[cfg(tokio_unstable)]
    blocking_threads: u64,
    #[cfg(tokio_unstable)]
    blocking_queue_depth: u64,
    #[cfg(tokio_unstable)]
    spawned_tasks: u64,
}

impl CounterNames {
    fn new(runtime: &str) -> CounterNames {
        let name = |metric: &str| intern_name(&format!("tokio.{runtime}.{metric}"));
        CounterNames {
            alive_tasks: name("alive_tasks"),
            global_queue_depth: name("global_queue_depth"),
            busy_workers_permille: name("busy_workers_permille"),
            workers: name("workers"),
            #[cfg(tokio_unstable)]
            blocking_threads: name("blocking_threads"),
            #[cfg(tokio_unstable)]
            blocking_queue_depth: name("blocking_queue_depth"),
            #[cfg(tokio_unstable)]
            spawned_tasks: name("spawned_tasks"),
        }
    }
}
