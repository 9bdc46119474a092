//! The settings of automatic capture, their defaults and checks, and the one-line description
//! printed when capture starts.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use flight_recorder_format::units::format_size;

use super::rules::RuleSettings;
use crate::error::Error;

/// The name of the dump directory inside the log directory.
pub const DUMP_DIR_NAME: &str = "executiontrace_dump";

/// The settings of automatic capture (after CockroachDB's `obs.execution_tracer.*`). Every field
/// but `ring` and `ring_dir` (read when capture starts) can be changed while capture runs with
/// [`update_settings`](super::update_settings); a change takes effect at the next tick of the
/// thread that uses it, never at restart.
///
/// ```
/// use flight_recorder::capture::CaptureSettings;
/// use std::time::Duration;
///
/// let settings = CaptureSettings {
///     interval: Duration::from_secs(60),
///     slow_poll_threshold: Duration::from_millis(100),
///     ..CaptureSettings::default()
/// };
/// assert_eq!(settings.duration, Duration::from_secs(10));
/// assert_eq!(settings.total_dump_size_limit, 4 << 30);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureSettings {
    /// How often a periodic trace is written; zero (the default) turns periodic capture off.
    pub interval: Duration,
    /// How much history each file covers (default 10 s): the in-memory window's `min_age`.
    /// Must not be zero.
    pub duration: Duration,
    /// Soft limit on the total size of the trace files in the dump directory (default 4 GiB);
    /// enforced after every write by deleting the oldest files, always keeping the newest.
    pub total_dump_size_limit: u64,
    /// Where files are written. The default, `executiontrace_dump`, is relative to the current
    /// directory (the log directory); a relative path is made absolute when capture starts.
    pub dump_dir: PathBuf,
    /// The in-memory window's size bound (default 10 MiB, Go's default); it wins over
    /// `duration`, so a busy program's files may cover less than `duration`.
    pub max_bytes: usize,
    /// The minimum time between two triggered dumps (default 10 s). Triggers that come sooner,
    /// or while a triggered dump is being written, are suppressed, counted and reported in the
    /// next file. Periodic files are not rate limited.
    pub min_dump_interval: Duration,
    /// A poll running longer than this writes a `slow_poll` dump; zero (the default) turns the
    /// watchdog off. 100 ms is a good start for a tokio service.
    pub slow_poll_threshold: Duration,
    /// How long to wait after detecting a slow poll before writing, so that the file also shows
    /// what happened just after (default zero: write at once). At most 60 s.
    pub slow_poll_delay: Duration,
    /// Capture the stack of a worker running a slow poll, while it runs (default on; only while
    /// the slow-poll watchdog runs): the watchdog interrupts the worker with the stack signal
    /// ([`crate::stack::signal`], `SIGRTMIN+4` by default) and records its stack in the dump.
    /// Code and the environment may change it, not HTTP. `docs/STACKS.md` says what the
    /// application may notice (some calls return `EINTR`).
    pub stacks: bool,
    /// Write a `panic` dump from the panic hook (default on).
    pub panic: bool,
    /// The signal that writes a `signal` dump, `None` for none. Default `SIGUSR2` where signals
    /// are supported (Unix, with the `signal` cargo feature).
    ///
    /// Only `SIGUSR1`, `SIGUSR2` and the real-time signals `SIGRTMIN()..=SIGRTMAX()` (taken at
    /// run time: the C library keeps the first few for itself) are accepted, so that a dump
    /// signal never takes away a signal the program or its supervisor relies on (`SIGTERM`,
    /// `SIGINT`, `SIGPIPE`, the fatal signals, …). Code and the environment may choose it; over
    /// HTTP it can only be turned off or set back to the one given to [`start`](super::start).
    pub signal: Option<i32>,
    /// The program's version, written into every file (for example
    /// `concat!(env!("CARGO_PKG_NAME"), " ", env!("CARGO_PKG_VERSION"))`).
    pub program_version: String,
    /// CPU samples of the runtime's threads, per second of CPU time each thread uses; 0 (the
    /// default) turns them off, else 1 to 1000 (99 is a good start). Each sample is a
    /// `cpu_sample` event with the thread's stack; see `docs/STACKS.md` (CPU samples) for the
    /// sources (`perf_event_open`, else CPU-time timers and a signal) and their costs.
    pub cpu_sample_hz: u32,
    /// Print one line on standard error when capture starts, saying what is recorded and where
    /// (default on).
    pub announce: bool,
    /// Keep the recorder's chunks in a crash-surviving ring, a memory-mapped file in `ring_dir`
    /// that the next start (or `flight-recorder recover`) turns into a trace after a crash,
    /// `kill -9` or OOM kill (default on, Unix only; see `docs/RELIABILITY.md`, §5). Code and the
    /// environment may change it, not HTTP; it is read when capture starts.
    pub ring: bool,
    /// The ring directory; `None` (the default) is [`crate::ring::default_ring_dir`]
    /// (`/dev/shm/flight-recorder` on Linux). Code and the environment may change it, not HTTP;
    /// it is read when capture starts.
    pub ring_dir: Option<PathBuf>,
    /// The rule triggers (scheduling delay, alive tasks growing, blocking pool full), all off
    /// by default; evaluated for the runtimes given to `watch_runtime` (cargo feature `tokio`).
    /// Code and the environment may change them, not HTTP (which shows them).
    pub rules: RuleSettings,
    /// Upload every file written to S3-compatible object storage (cargo feature `upload`);
    /// `None` (the default) for no uploads. Code and the environment set it
    /// (`FLIGHT_RECORDER_UPLOAD`); HTTP neither shows nor changes it; it is read when capture
    /// starts, and [`update_settings`](super::update_settings) refuses to change it. Rescans
    /// look at the `dump_dir` given at start (files written after a change of `dump_dir` are
    /// still queued as they are written).
    #[cfg(feature = "upload")]
    pub upload: Option<super::UploadSettings>,
}

impl Default for CaptureSettings {
    fn default() -> Self {
        CaptureSettings {
            interval: Duration::ZERO,
            duration: Duration::from_secs(10),
            total_dump_size_limit: 4 << 30,
            dump_dir: PathBuf::from(DUMP_DIR_NAME),
            max_bytes: 10 << 20,
            min_dump_interval: Duration::from_secs(10),
            slow_poll_threshold: Duration::ZERO,
            slow_poll_delay: Duration::ZERO,
            stacks: true,
            panic: true,
            signal: default_signal(),
            program_version: String::new(),
            cpu_sample_hz: 0,
            announce: true,
            ring: cfg!(unix),
            ring_dir: None,
            rules: RuleSettings::default(),
            #[cfg(feature = "upload")]
            upload: None,
        }
    }
}

/// `SIGUSR2` where signal capture is built in.
fn default_signal() -> Option<i32> {
    #[cfg(all(unix, feature = "signal"))]
    {
        Some(signal_hook::consts::SIGUSR2)
    }
    #[cfg(not(all(unix, feature = "signal")))]
    {
        None
    }
}

/// The highest CPU sampling rate accepted, per second.
pub(crate) const MAX_CPU_SAMPLE_HZ: u32 = 1000;

/// The longest slow-poll delay accepted.
pub(crate) const MAX_SLOW_POLL_DELAY: Duration = Duration::from_secs(60);

impl CaptureSettings {
    /// Checks the settings; the error says which one is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: String| Err(Error::invalid_settings(what));
        if self.duration.is_zero() {
            return bad("duration must be more than zero".into());
        }
        if self.max_bytes == 0 {
            return bad("max_bytes must be more than zero".into());
        }
        if self.slow_poll_delay > MAX_SLOW_POLL_DELAY {
            return bad(format!(
                "slow_poll_delay must be at most {}",
                duration_text(MAX_SLOW_POLL_DELAY)
            ));
        }
        if self.cpu_sample_hz > MAX_CPU_SAMPLE_HZ {
            return bad(format!(
                "cpu_sample_hz must be at most {MAX_CPU_SAMPLE_HZ} (0 turns CPU samples off), \
                 not {}",
                self.cpu_sample_hz
            ));
        }
        if self.cpu_sample_hz > 0
            && self.signal.is_some()
            && self.signal == crate::stack::cpu::timer_signal()
        {
            return bad(format!(
                "signal {} is the signal of CPU samples' timers: choose another dump signal",
                signal_name(self.signal.unwrap_or(0))
            ));
        }
        if self.dump_dir.as_os_str().is_empty() {
            return bad("dump_dir must not be empty".into());
        }
        if self
            .ring_dir
            .as_ref()
            .is_some_and(|dir| dir.as_os_str().is_empty())
        {
            return bad("ring_dir must not be empty (None is the default directory)".into());
        }
        if let Some(signal) = self.signal {
            check_dump_signal(signal).map_err(Error::invalid_settings)?;
        }
        self.rules.validate().map_err(Error::invalid_settings)?;
        #[cfg(feature = "upload")]
        if let Some(upload) = &self.upload {
            upload.validate()?;
        }
        Ok(())
    }

    /// One line saying what is recorded and where, as printed when capture starts.
    pub fn describe(&self) -> String {
        let mut line = format!(
            "flight-recorder: recording the last {} in memory (at most {}); ",
            duration_text(self.duration),
            format_size(self.max_bytes as u64)
        );
        if self.interval.is_zero() {
            line.push_str("periodic traces off; ");
        } else {
            let _ = write!(
                line,
                "a periodic trace every {}; ",
                duration_text(self.interval)
            );
        }
        let mut triggers = vec!["dump_now".to_string()];
        if !self.slow_poll_threshold.is_zero() {
            let mut slow = format!("slow poll > {}", duration_text(self.slow_poll_threshold));
            if !self.slow_poll_delay.is_zero() {
                let _ = write!(slow, " (+{})", duration_text(self.slow_poll_delay));
            }
            if self.stacks {
                slow.push_str(" with stacks");
            }
            triggers.push(slow);
        }
        if self.panic {
            triggers.push("panic".into());
        }
        if let Some(signal) = self.signal {
            triggers.push(signal_name(signal));
        }
        triggers.extend(self.rules.describe());
        let _ = write!(
            line,
            "triggers: {} (at most one dump per {}); files in {} (total limit {})",
            triggers.join(", "),
            duration_text(self.min_dump_interval),
            self.dump_dir.display(),
            format_size(self.total_dump_size_limit)
        );
        if self.ring && cfg!(unix) {
            let _ = write!(line, "; ring in {}", self.ring_dir_or_default().display());
        }
        #[cfg(feature = "upload")]
        if let Some(upload) = &self.upload {
            let _ = write!(
                line,
                "; uploads to {} (files not uploaded kept up to {} over the limit)",
                upload.describe(),
                format_size(
                    upload
                        .hard_limit(self.total_dump_size_limit)
                        .saturating_sub(self.total_dump_size_limit)
                )
            );
        }
        line
    }

    /// The ring directory: `ring_dir`, else [`crate::ring::default_ring_dir`].
    pub fn ring_dir_or_default(&self) -> PathBuf {
        self.ring_dir
            .clone()
            .unwrap_or_else(crate::record::ring::default_ring_dir)
    }
}

/// The signals that may trigger dumps, for messages: `SIGUSR1, SIGUSR2 or a real-time signal
/// (SIGRTMIN..=SIGRTMAX, 34..=64 here)`.
#[cfg_attr(
    not(any(feature = "http", all(unix, feature = "signal"))),
    allow(dead_code)
)]
pub(crate) fn dump_signals_text() -> String {
    match realtime_signals() {
        Some((min, max)) => format!(
            "SIGUSR1, SIGUSR2 or a real-time signal (SIGRTMIN..=SIGRTMAX, {min}..={max} here)"
        ),
        None => "SIGUSR1 or SIGUSR2".into(),
    }
}

/// The real-time signals of this system, `SIGRTMIN()..=SIGRTMAX()` at run time.
pub(crate) fn realtime_signals() -> Option<(i32, i32)> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        Some((libc::SIGRTMIN(), libc::SIGRTMAX()))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        None
    }
}

/// Checks that `signal` may trigger dumps: `SIGUSR1`, `SIGUSR2` or a real-time signal, never a
/// signal the recorder uses for anything else (the stack signal, [`crate::stack::signal`]), and
/// signal capture is built in. The error names the signal and what is accepted.
pub(crate) fn check_dump_signal(signal: i32) -> Result<(), String> {
    check_dump_signal_beside(signal, crate::stack::signal())
}

/// [`check_dump_signal`] with the stack signal `stack_signal` (0 = none).
pub(crate) fn check_dump_signal_beside(signal: i32, stack_signal: i32) -> Result<(), String> {
    #[cfg(all(unix, feature = "signal"))]
    {
        if signal == stack_signal && stack_signal != 0 {
            return Err(format!(
                "signal {} cannot trigger dumps: stacks use it (FLIGHT_RECORDER_STACK_SIGNAL, \
                 flight_recorder::stack::set_signal); use another of {}",
                signal_name(signal),
                dump_signals_text()
            ));
        }
        let realtime = realtime_signals().is_some_and(|(min, max)| (min..=max).contains(&signal));
        if signal == libc::SIGUSR1 || signal == libc::SIGUSR2 || realtime {
            return Ok(());
        }
        Err(format!(
            "signal {} cannot trigger dumps; use {}",
            signal_name(signal),
            dump_signals_text()
        ))
    }
    #[cfg(not(all(unix, feature = "signal")))]
    {
        let _ = stack_signal;
        Err(format!(
            "signal {signal} cannot trigger dumps: signal capture is not built in (Unix, cargo \
             feature `signal`)"
        ))
    }
}

/// A signal's usual name (`SIGUSR2`, `SIGRTMIN+2`), or its number.
pub(crate) fn signal_name(signal: i32) -> String {
    #[cfg(all(unix, feature = "signal"))]
    if let Some(name) = signal_hook::low_level::signal_name(signal) {
        return name.to_string();
    }
    if let Some((min, max)) = realtime_signals() {
        if signal == min {
            return "SIGRTMIN".into();
        }
        if signal == max {
            return "SIGRTMAX".into();
        }
        if (min..max).contains(&signal) {
            return format!("SIGRTMIN+{}", signal - min);
        }
    }
    format!("signal {signal}")
}

/// A duration setting as it is written and read back (`parse_duration`): in its largest whole
/// unit, `90s`, `5m`, `1h`, `250ms`, `0s`. The one form for settings, in start-up lines, file
/// details and over HTTP; measured durations use `flight_recorder_format::units`.
pub(crate) fn duration_text(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    for (unit, unit_ns) in [
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if nanos.is_multiple_of(unit_ns) {
            return format!("{}{unit}", nanos / unit_ns);
        }
    }
    format!("{nanos}ns")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn defaults_follow_the_design() {
        let s = CaptureSettings::default();
        assert_eq!(s.interval, Duration::ZERO);
        assert_eq!(s.duration, Duration::from_secs(10));
        assert_eq!(s.total_dump_size_limit, 4 << 30);
        assert_eq!(s.min_dump_interval, Duration::from_secs(10));
        assert_eq!(s.dump_dir, PathBuf::from("executiontrace_dump"));
        assert_eq!(s.ring, cfg!(unix));
        assert_eq!(s.ring_dir, None);
        assert!(s.validate().is_ok());
        let empty_ring_dir = CaptureSettings {
            ring_dir: Some(PathBuf::new()),
            ..CaptureSettings::default()
        };
        let error = empty_ring_dir.validate().unwrap_err().to_string();
        assert!(error.contains("ring_dir"), "{error}");
    }

    #[test]
    fn bad_settings_are_refused() {
        let zero = CaptureSettings {
            duration: Duration::ZERO,
            ..CaptureSettings::default()
        };
        assert!(matches!(zero.validate(), Err(e) if e.kind() == ErrorKind::InvalidSettings));
        let long_delay = CaptureSettings {
            slow_poll_delay: Duration::from_secs(61),
            ..CaptureSettings::default()
        };
        assert!(long_delay.validate().is_err());
        for signal in [9, 1, 2, 3, 6, 11, 13, 15, 17, 0, -1, 1000] {
            let bad_signal = CaptureSettings {
                signal: Some(signal),
                ..CaptureSettings::default()
            };
            assert!(bad_signal.validate().is_err(), "{signal}");
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "SIGRTMIN() calls the C library")]
    fn cpu_sample_rates_are_bounded_and_errors_name_the_value() {
        for hz in [0, 1, 99, 1000] {
            let ok = CaptureSettings {
                cpu_sample_hz: hz,
                ..CaptureSettings::default()
            };
            assert!(ok.validate().is_ok(), "{hz}");
        }
        let too_high = CaptureSettings {
            cpu_sample_hz: 5000,
            ..CaptureSettings::default()
        };
        let error = too_high.validate().unwrap_err().to_string();
        assert!(
            error.contains("cpu_sample_hz") && error.contains("5000"),
            "{error}"
        );
        if let Some(timer_signal) = crate::stack::cpu::timer_signal() {
            let clash = CaptureSettings {
                cpu_sample_hz: 99,
                signal: Some(timer_signal),
                ..CaptureSettings::default()
            };
            assert!(clash.validate().is_err());
        }
    }

    #[cfg(all(target_os = "linux", feature = "signal"))]
    #[test]
    fn only_user_and_realtime_signals_trigger_dumps() {
        let (min, max) = realtime_signals().unwrap();
        for signal in [libc::SIGUSR1, libc::SIGUSR2, min, min + 1, max] {
            assert_eq!(check_dump_signal(signal), Ok(()), "{signal}");
        }
        let error = check_dump_signal(libc::SIGTERM).unwrap_err();
        assert!(
            error.contains("SIGTERM") && error.contains("SIGUSR1"),
            "{error}"
        );
        assert_eq!(signal_name(min + 2), "SIGRTMIN+2");
        // Never the stack signal.
        let stacks = crate::stack::signal();
        let error = check_dump_signal(stacks).unwrap_err();
        assert!(error.contains("stacks use it"), "{error}");
        assert_eq!(check_dump_signal_beside(stacks, stacks + 1), Ok(()));
        assert_eq!(signal_name(max), "SIGRTMAX");
    }

    #[test]
    fn human_units() {
        assert_eq!(duration_text(Duration::from_secs(90)), "90s");
        assert_eq!(duration_text(Duration::from_secs(120)), "2m");
        assert_eq!(duration_text(Duration::from_secs(3600)), "1h");
        assert_eq!(duration_text(Duration::from_millis(250)), "250ms");
        assert_eq!(duration_text(Duration::from_micros(1500)), "1500us");
        assert_eq!(duration_text(Duration::ZERO), "0s");
    }

    #[test]
    fn description_names_what_and_where() {
        let s = CaptureSettings {
            interval: Duration::from_secs(60),
            slow_poll_threshold: Duration::from_millis(100),
            dump_dir: PathBuf::from("/var/log/app/executiontrace_dump"),
            ..CaptureSettings::default()
        };
        let line = s.describe();
        assert!(line.contains("last 10s in memory"), "{line}");
        assert!(line.contains("a periodic trace every 1m"), "{line}");
        assert!(line.contains("slow poll > 100ms"), "{line}");
        assert!(line.contains("panic"), "{line}");
        assert!(line.contains("/var/log/app/executiontrace_dump"), "{line}");
        assert!(line.contains("4.0 GiB"), "{line}");
        assert!(!line.contains("rule"), "{line}");
        let with_rules = CaptureSettings {
            rules: RuleSettings {
                sched_delay: Some("50ms/1s".parse().unwrap()),
                alive_tasks: Some("+1000/10s".parse().unwrap()),
                ..RuleSettings::default()
            },
            ..s
        };
        let line = with_rules.describe();
        assert!(
            line.contains(
                "rule sched_delay 50ms/1s, rule alive_tasks +1000/10s (watched runtimes, every \
                 100ms) (at most one dump per 10s)"
            ),
            "{line}"
        );
    }
}
