//! Capture's CPU sampler thread: while `cpu_sample_hz` is set, it samples the runtime's threads
//! (`crate::stack::cpu`) and records every sample as a `cpu_sample` event, in batches, every
//! [`PERIOD`]: `[thread, stack, age, task]`, where `thread` is the recorder's id of the sampled
//! thread, `stack` an interned stack, `age` the units between the sample's instant and the
//! event's time, and `task` 0 (the analysis attributes the sample to the poll running on that
//! thread at that instant: neither source reads the poll mark at the sample's instant).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{report_error, Capture, CaptureSettings};
use crate::engine::engine;
use crate::raw::{self, EventKind};
use crate::record::clock;
use crate::record::stacks::intern_stack;
use crate::record::sync::lock;
use crate::stack::cpu::{choose_source, Sampler, Source};

/// How often the sampler drains the rings and follows the runtime's threads.
const PERIOD: Duration = Duration::from_millis(20);

/// Set by [`force_timer_source`]: use the CPU-time timers even where `perf_event_open` works.
static FORCE_TIMERS: AtomicBool = AtomicBool::new(false);

/// The source in use, for the start-up line and the status.
static SOURCE: Mutex<Option<Source>> = Mutex::new(None);
static THREADS: AtomicUsize = AtomicUsize::new(0);
static RING_BYTES: AtomicUsize = AtomicUsize::new(0);
static SAMPLES: AtomicU64 = AtomicU64::new(0);
static LOST: AtomicU64 = AtomicU64::new(0);
static UNKNOWN_THREAD: AtomicU64 = AtomicU64::new(0);

/// What CPU sampling is doing, for monitoring and tests ([`cpu_sample_status`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CpuSampleStatus {
    /// The source sampling now (`perf_event`, or `cpu-time timers: …` with the reason), `None`
    /// while sampling is off.
    pub source: Option<String>,
    /// The runtime threads sampled now.
    pub threads: usize,
    /// Bytes of ring buffers held for them.
    pub ring_bytes: usize,
    /// Samples recorded since the process started.
    pub samples: u64,
    /// Samples lost since the process started (a ring was full).
    pub lost: u64,
    /// Samples dropped because their thread had no recorder id yet (it had recorded nothing).
    pub unknown_thread: u64,
}

/// What CPU sampling is doing.
pub fn cpu_sample_status() -> CpuSampleStatus {
    CpuSampleStatus {
        source: lock(&SOURCE).as_ref().map(Source::describe),
        threads: THREADS.load(Ordering::Relaxed),
        ring_bytes: RING_BYTES.load(Ordering::Relaxed),
        samples: SAMPLES.load(Ordering::Relaxed),
        lost: LOST.load(Ordering::Relaxed),
        unknown_thread: UNKNOWN_THREAD.load(Ordering::Relaxed),
    }
}

/// Makes CPU sampling use the CPU-time timers even where `perf_event_open` works (for tests,
/// which run as root); takes effect when sampling next starts. The environment variable
/// `FLIGHT_RECORDER_CPU_SAMPLE_SOURCE=timer` does the same.
#[doc(hidden)]
pub fn force_timer_source(on: bool) {
    FORCE_TIMERS.store(on, Ordering::Relaxed);
}

fn timers_forced() -> bool {
    FORCE_TIMERS.load(Ordering::Relaxed)
        || std::env::var_os("FLIGHT_RECORDER_CPU_SAMPLE_SOURCE").is_some_and(|v| v == "timer")
}

/// Chooses the source for `hz` now, and describes it for the start-up line: `cpu samples 99 Hz
/// (perf_event)`. `None` when sampling is off.
pub(super) fn announce(settings: &CaptureSettings) -> Option<String> {
    let hz = settings.cpu_sample_hz;
    if hz == 0 {
        return None;
    }
    let source = choose_source(hz, timers_forced());
    let text = match &source {
        Some(source) => format!("cpu samples {hz} Hz ({})", source.describe()),
        None => format!("cpu samples {hz} Hz (not supported on this platform)"),
    };
    *lock(&SOURCE) = source;
    Some(text)
}

/// The sampler's loop, until capture stops.
pub(super) fn run(capture: Arc<Capture>) {
    let mut sampler: Option<Sampler> = None;
    let mut ids: HashMap<u64, u64> = HashMap::new();
    loop {
        let control = capture.control();
        if control.stopping {
            break;
        }
        let hz = control.settings.cpu_sample_hz;
        if hz == 0 {
            if sampler.take().is_some() {
                publish(None);
            }
            drop(
                capture
                    .wake
                    .wait(control)
                    .unwrap_or_else(|e| e.into_inner()),
            );
            continue;
        }
        drop(control);
        if sampler.as_ref().map(Sampler::hz) != Some(hz) {
            // Drain what the old sampler holds before its rings go.
            if let Some(old) = sampler.as_mut() {
                drain(old, &mut ids);
            }
            sampler = None;
            let source = lock(&SOURCE)
                .clone()
                .or_else(|| choose_source(hz, timers_forced()));
            match source {
                Some(source) => sampler = Some(Sampler::new(source, hz)),
                None => {
                    // Not supported here: wait for a change of settings.
                    let control = capture.control();
                    if control.stopping {
                        break;
                    }
                    drop(
                        capture
                            .wake
                            .wait(control)
                            .unwrap_or_else(|e| e.into_inner()),
                    );
                    continue;
                }
            }
        }
        if let Some(s) = sampler.as_mut() {
            // Drained first: a thread that exited leaves its last samples in its ring.
            drain(s, &mut ids);
            for (tid, errno) in s.sync_threads() {
                report_error(
                    &format!("sampling the CPU time of thread {tid}"),
                    &std::io::Error::from_raw_os_error(errno),
                );
            }
            publish(Some(s));
        }
        if !capture.sleep(PERIOD) {
            break;
        }
    }
    if let Some(s) = sampler.as_mut() {
        drain(s, &mut ids);
    }
    drop(sampler);
    publish(None);
}

fn publish(sampler: Option<&Sampler>) {
    match sampler {
        Some(s) => {
            let mut source = lock(&SOURCE);
            if source.as_ref() != Some(s.source()) {
                *source = Some(s.source().clone());
            }
            THREADS.store(s.thread_count(), Ordering::Relaxed);
            RING_BYTES.store(s.ring_bytes(), Ordering::Relaxed);
        }
        None => {
            *lock(&SOURCE) = None;
            THREADS.store(0, Ordering::Relaxed);
            RING_BYTES.store(0, Ordering::Relaxed);
        }
    }
}

/// Records every sample the sampler holds. `ids` (reused between calls) maps kernel tids to
/// the recorder's thread ids.
fn drain(sampler: &mut Sampler, ids: &mut HashMap<u64, u64>) {
    let calibration = clock::calibration();
    // Kernel tids are reused: the map is read again for every batch.
    ids.clear();
    ids.extend(
        engine()
            .live_threads()
            .into_iter()
            .map(|t| (t.os_tid, t.id)),
    );
    let mut recorded = 0u64;
    let lost = sampler.drain(&mut |tid, sample_ns, frames| {
        let tid = tid as u64;
        let Some(&thread) = ids.get(&tid) else {
            UNKNOWN_THREAD.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let stack = intern_stack(frames);
        let age_ns = clock::monotonic_ns().saturating_sub(sample_ns);
        let age = calibration.units_in(Duration::from_nanos(age_ns));
        raw::record(EventKind::CpuSample, &[thread, stack, age, 0]);
        recorded += 1;
    });
    SAMPLES.fetch_add(recorded, Ordering::Relaxed);
    LOST.fetch_add(lost, Ordering::Relaxed);
}
