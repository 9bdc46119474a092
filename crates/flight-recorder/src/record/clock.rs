//! The trace clock: the CPU timestamp counter where it is invariant, else the OS monotonic clock,
//! calibrated against `CLOCK_MONOTONIC` and the wall clock so that trace times map to dates.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flight_recorder_format::ClockSample;

/// How long the first calibration measures the counter's rate. Every file refines it with a
/// second sample taken when the file is written.
const CALIBRATION_SPAN: Duration = Duration::from_millis(10);

static USE_TSC: AtomicBool = AtomicBool::new(false);
static CALIBRATION: OnceLock<Calibration> = OnceLock::new();

/// The clock's source and rate, measured once per process.
#[derive(Debug)]
pub(crate) struct Calibration {
    /// `"tsc"` or `"monotonic"`.
    pub source: &'static str,
    /// Stored times are `ticks >> unit_shift`: the largest shift that keeps a unit at or below
    /// one nanosecond, so deltas stay small without losing nanosecond resolution.
    pub unit_shift: u32,
    /// The first sample, the origin of the file's calibration.
    pub start: ClockSample,
    /// Ticks per nanosecond, as measured over the calibration span.
    pub ticks_per_ns: f64,
}

impl Calibration {
    /// The number of stored time units in `duration` (saturating).
    pub fn units_in(&self, duration: Duration) -> u64 {
        let ticks = duration.as_nanos() as f64 * self.ticks_per_ns;
        (ticks / (1u64 << self.unit_shift) as f64).min(u64::MAX as f64) as u64
    }

    /// The current time in stored units.
    pub fn now_units(&self) -> u64 {
        now() >> self.unit_shift
    }
}

/// The process's clock calibration; the first call measures it (about 10 ms, once), so it is
/// called when a recorder starts, never on the hot path.
#[cfg(not(flight_recorder_loom))]
pub(crate) fn calibration() -> &'static Calibration {
    CALIBRATION.get_or_init(calibrate)
}

/// The loom model's clock: a counter, one tick a nanosecond, read without touching the CPU
/// counter or the OS (the model explores interleavings, not times).
#[cfg(flight_recorder_loom)]
pub(crate) fn calibration() -> &'static Calibration {
    CALIBRATION.get_or_init(|| Calibration {
        source: "counter",
        unit_shift: 0,
        start: ClockSample {
            ticks: 0,
            monotonic_ns: 0,
            wall_ns: 0,
        },
        ticks_per_ns: 1.0,
    })
}

/// The loom model's clock reading: the next value of a counter.
#[cfg(flight_recorder_loom)]
pub(crate) fn now() -> u64 {
    static TICKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    TICKS.fetch_add(1, Ordering::Relaxed)
}

/// The current trace clock reading, in ticks.
#[cfg(not(flight_recorder_loom))]
#[inline(always)]
pub(crate) fn now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    if USE_TSC.load(Ordering::Relaxed) {
        // SAFETY: `rdtsc` exists on every x86_64 processor and has no memory effects; it is only
        // used once `invariant_tsc` found a constant, non-stop counter.
        return unsafe { core::arch::x86_64::_rdtsc() };
    }
    monotonic_ns()
}

/// `CLOCK_MONOTONIC` in nanoseconds.
pub(crate) fn monotonic_ns() -> u64 {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always supported.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
    #[cfg(not(unix))]
    {
        static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
        ORIGIN
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }
}

/// One reading of the three clocks, as close together as the machine allows.
pub(crate) fn sample() -> ClockSample {
    let before = now();
    let monotonic_ns = monotonic_ns();
    let after = now();
    let wall_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    ClockSample {
        ticks: before + (after.wrapping_sub(before)) / 2,
        monotonic_ns,
        wall_ns,
    }
}

fn calibrate() -> Calibration {
    let tsc = invariant_tsc();
    USE_TSC.store(tsc, Ordering::Relaxed);
    let start = sample();
    // The monotonic clock's ticks are nanoseconds by definition; measuring its rate against
    // itself would only add the jitter of the two samples' reads.
    let ticks_per_ns = if tsc {
        std::thread::sleep(CALIBRATION_SPAN);
        let end = sample();
        let ticks = end.ticks.saturating_sub(start.ticks) as f64;
        let nanos = end.monotonic_ns.saturating_sub(start.monotonic_ns) as f64;
        if ticks > 0.0 && nanos > 0.0 {
            ticks / nanos
        } else {
            1.0
        }
    } else {
        1.0
    };
    let unit_shift = if ticks_per_ns >= 2.0 {
        ticks_per_ns.log2().floor() as u32
    } else {
        0
    };
    Calibration {
        source: if tsc { "tsc" } else { "monotonic" },
        unit_shift,
        start,
        ticks_per_ns,
    }
}

/// Whether the timestamp counter runs at a constant rate through frequency changes and sleep
/// states, as the kernel reports it; only then is it a clock.
fn invariant_tsc() -> bool {
    let forced_monotonic =
        std::env::var_os("FLIGHT_RECORDER_CLOCK").is_some_and(|v| v == "monotonic");
    if !cfg!(target_arch = "x86_64") || forced_monotonic {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        std::fs::read_to_string("/proc/cpuinfo")
            .map(|info| {
                info.lines()
                    .find(|line| line.starts_with("flags"))
                    .is_some_and(|flags| {
                        let has = |w: &str| flags.split_whitespace().any(|f| f == w);
                        has("constant_tsc") && has("nonstop_tsc")
                    })
            })
            .unwrap_or(false)
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(all(test, not(flight_recorder_loom)))]
mod tests {
    use super::*;

    #[test]
    fn calibration_tracks_the_monotonic_clock() {
        let cal = calibration();
        assert!(cal.ticks_per_ns > 0.0);
        let a = sample();
        // A sample reads two clocks one after the other; under Miri each read takes a large and
        // varying time, so the interval is longer there to keep that gap well under 1 %.
        std::thread::sleep(Duration::from_millis(if cfg!(miri) { 300 } else { 20 }));
        let b = sample();
        let measured_ns = (b.ticks - a.ticks) as f64 / cal.ticks_per_ns;
        let real_ns = (b.monotonic_ns - a.monotonic_ns) as f64;
        assert!(
            (measured_ns - real_ns).abs() < real_ns * 0.01,
            "clock rate off: {measured_ns} vs {real_ns}"
        );
        // One unit is at most a nanosecond.
        assert!((1u64 << cal.unit_shift) as f64 <= cal.ticks_per_ns.max(1.0));
    }

    #[test]
    fn now_is_monotonic_on_one_thread() {
        calibration();
        let mut last = now();
        for _ in 0..10_000 {
            let t = now();
            assert!(t >= last);
            last = t;
        }
    }
}
