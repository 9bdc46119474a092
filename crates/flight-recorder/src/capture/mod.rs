//! Automatic capture, after CockroachDB's automatic execution tracer: an always-on flight
//! recorder whose window is written to a dump directory periodically and when something goes
//! wrong, with the directory kept under a size budget.
//!
//! - **Periodic traces**: every `interval` (0 = off), a file covering the last `duration`.
//! - **Triggers**: [`dump_now`] for the application (a failed health check, a request past its
//!   deadline), a poll longer than a threshold (a watchdog thread, no cost for fast polls), a
//!   panic (the panic hook, chained), a signal (`SIGUSR2` by default), a rule on a watched tokio
//!   runtime (scheduling delay, alive tasks growing, blocking pool full: [`RuleSettings`],
//!   `watch_runtime`). Triggered dumps are rate
//!   limited: at most one per `min_dump_interval` (10 s), concurrent requests coalesce into one
//!   file, and what was suppressed is counted in the next file.
//! - **Files**: `executiontrace.<UTC 2006-01-02T15_04_05.000>[.<tag>].out` in the dump
//!   directory, written to a temporary name and renamed, owner-only; after every write the
//!   oldest are deleted while the total passes `total_dump_size_limit` (the newest is kept).
//! - **Metadata** in every file's header: reason, tag, wall-clock time, host, pid, program
//!   version, the trigger's details and the suppressed count.
//!
//! Settings come from [`CaptureSettings`] or from environment variables ([`init_from_env`],
//! or the [`capture_from_env!`](crate::capture_from_env) macro, one line at start-up); they can
//! be changed while the program runs with [`update_settings`]. `docs/CAPTURE.md` has the whole
//! story.
//!
//! ```
//! use flight_recorder::capture::{self, CaptureSettings, DumpOutcome};
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir()?;
//! capture::start(CaptureSettings {
//!     dump_dir: dir.path().to_path_buf(),
//!     interval: Duration::from_secs(60),
//!     announce: false,
//!     ..CaptureSettings::default()
//! })?;
//! flight_recorder::log("health", "check failed: db unreachable");
//! match capture::dump_now("health check failed", "health")? {
//!     DumpOutcome::Written(path) => println!("trace in {}", path.display()),
//!     other => println!("no new file: {other:?}"),
//! }
//! capture::stop();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! One capture runs per process, and it owns the process's flight recorder: starting it fails
//! while another [`FlightRecorder`] runs.

mod cpu_sampler;
mod dump_dir;
mod env;
mod panic_hook;
mod periodic;
#[cfg(unix)]
pub mod ring;
mod rules;
mod settings;
#[cfg(all(unix, feature = "signal"))]
mod signal;
mod slow_poll;
mod trigger;
#[cfg(feature = "upload")]
mod upload;
pub(crate) mod workers;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[doc(hidden)]
pub use cpu_sampler::force_timer_source;
pub use cpu_sampler::{cpu_sample_status, CpuSampleStatus};
pub use dump_dir::{
    collect_garbage, list_dumps, parse_dump_name, upload_marker, DumpFile, GcReport,
    TEMP_FILE_MAX_AGE,
};
pub use env::{config_from_env, config_from_vars, init_from_env, EnvConfig, ENV_VARS};
#[cfg(feature = "tokio")]
pub use rules::{watch_runtime, RuleWatcher};
pub use rules::{AliveTasksRule, RuleSettings, SchedDelayRule};
pub use settings::{CaptureSettings, DUMP_DIR_NAME};
pub use trigger::{DumpOutcome, TriggerKind};
#[cfg(feature = "upload")]
pub use upload::{
    UploadSettings, UploadStatus, DEFAULT_BUDGET_MARGIN_PERCENT, MAX_BUDGET_MARGIN_PERCENT,
};

use crate::error::{Error, ErrorKind};
use crate::flight::{FlightRecorder, FlightRecorderConfig, SnapshotMeta};
use crate::record::sync::lock;
#[cfg(feature = "http")]
pub(crate) use env::{parse_duration, parse_signal, parse_size};
pub(crate) use settings::duration_text;
#[cfg(feature = "http")]
pub(crate) use settings::{dump_signals_text, signal_name};
use trigger::{InDump, RateLimiter, Trigger, WriterSlot};

/// The examples of `docs/CAPTURE.md`, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/CAPTURE.md")]
pub struct CaptureDocs;

/// The running capture, if any.
static ACTIVE: Mutex<Option<Arc<Capture>>> = Mutex::new(None);

/// Errors reported since the process started, and the last one.
static ERRORS: AtomicU64 = AtomicU64::new(0);
static LAST_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// How long a dump from the panic hook or from `stop` waits for a file being written.
const BOUNDED_WAIT: Duration = Duration::from_secs(5);

/// The state of a running capture, shared by its threads.
pub(crate) struct Capture {
    control: Mutex<Control>,
    /// Signalled when the settings change or capture stops.
    wake: Condvar,
    recorder: Mutex<Arc<FlightRecorder>>,
    writer: WriterSlot,
    limiter: RateLimiter,
    /// Serializes `update_settings` calls.
    updating: Mutex<()>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    #[cfg(all(unix, feature = "signal"))]
    signal: Mutex<Option<signal::SignalListener>>,
    files_written: AtomicU64,
    failed_writes: AtomicU64,
    files_deleted: AtomicU64,
    last_file: Mutex<Option<PathBuf>>,
    /// The dump signal given to `start`: the only one HTTP may set.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    start_signal: Option<i32>,
    /// The upload thread, when uploads are on.
    #[cfg(feature = "upload")]
    uploader: Mutex<Option<Arc<upload::Uploader>>>,
}

struct Control {
    settings: CaptureSettings,
    stopping: bool,
}

/// What automatic capture has done, for monitoring and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CaptureStatus {
    /// Whether capture is running.
    pub running: bool,
    /// Files written since capture started.
    pub files_written: u64,
    /// Files that could not be written since capture started.
    pub failed_writes: u64,
    /// Triggered dumps suppressed (rate limited or coalesced) since capture started.
    pub suppressed_triggers: u64,
    /// Files deleted by garbage collection since capture started.
    pub files_deleted: u64,
    /// The last file written.
    pub last_file: Option<PathBuf>,
    /// Errors reported on standard error since the process started.
    pub errors: u64,
    /// The last of them.
    pub last_error: Option<String>,
    /// What the uploader has done (cargo feature `upload`), `None` when uploads are off.
    #[cfg(feature = "upload")]
    pub upload: Option<UploadStatus>,
}

/// Starts automatic capture: the flight recorder (window `settings.duration`, at most
/// `settings.max_bytes`), the periodic and slow-poll threads, the signal listener and the panic
/// hook, then prints the start-up line (unless `announce` is off). With uploads on (cargo
/// feature `upload`), it also starts the upload thread, which first queues the files of the dump
/// directory not uploaded yet; an `upload` without `endpoint` or `region` takes them from
/// `AWS_ENDPOINT_URL` and `AWS_REGION` when those are set.
///
/// Fails if capture is running, if the settings are wrong, if another flight recorder runs, or if
/// a thread or the signal handler cannot be set up (then nothing is left running).
pub fn start(settings: CaptureSettings) -> Result<(), Error> {
    settings.validate()?;
    #[allow(unused_mut)]
    let mut settings = absolute_dir(settings);
    #[cfg(feature = "upload")]
    if let Some(upload) = &mut settings.upload {
        upload.fill_from_env();
    }
    let mut active = lock(&ACTIVE);
    if active.is_some() {
        return Err(Error::new(ErrorKind::AlreadyStarted));
    }
    #[cfg(unix)]
    ring::recover_at_start(&settings);
    let recorder = FlightRecorder::new(recorder_config(&settings));
    recorder.start()?;
    let cpu_line = cpu_sampler::announce(&settings);
    let capture = Arc::new(Capture {
        control: Mutex::new(Control {
            settings: settings.clone(),
            stopping: false,
        }),
        wake: Condvar::new(),
        recorder: Mutex::new(Arc::new(recorder)),
        writer: WriterSlot::new(),
        limiter: RateLimiter::new(),
        updating: Mutex::new(()),
        threads: Mutex::new(Vec::new()),
        #[cfg(all(unix, feature = "signal"))]
        signal: Mutex::new(None),
        files_written: AtomicU64::new(0),
        failed_writes: AtomicU64::new(0),
        files_deleted: AtomicU64::new(0),
        last_file: Mutex::new(None),
        start_signal: settings.signal,
        #[cfg(feature = "upload")]
        uploader: Mutex::new(None),
    });
    if let Err(e) = capture.start_threads(&settings) {
        capture.shut_down();
        return Err(e);
    }
    if settings.panic {
        panic_hook::install();
    }
    *active = Some(capture);
    drop(active);
    if settings.announce {
        let mut line = settings.describe();
        if let Some(cpu) = cpu_line {
            line = format!("{line}; {cpu}");
        }
        log_line(&line);
    }
    Ok(())
}

/// Stops automatic capture: waits (at most 5 s) for a file being written, stops the threads and
/// the flight recorder. The panic hook stays installed but does nothing until capture starts
/// again. Does nothing if capture is not running.
pub fn stop() {
    let Some(capture) = lock(&ACTIVE).take() else {
        return;
    };
    capture.shut_down();
}

/// Whether automatic capture is running.
pub fn is_running() -> bool {
    lock(&ACTIVE).is_some()
}

/// The current settings, if capture is running.
pub fn settings() -> Option<CaptureSettings> {
    active().map(|c| c.settings())
}

/// Changes the settings while capture runs; each thread sees the change at its next tick
/// (a new `interval` restarts the periodic schedule from now, `0` turns it off). A change of
/// `duration` or `max_bytes` resizes the in-memory window without losing what it holds; a change
/// of `signal` moves the listener to the new signal.
///
/// ```
/// use flight_recorder::capture::{self, CaptureSettings};
/// use std::time::Duration;
///
/// # let dir = tempfile::tempdir()?;
/// capture::start(CaptureSettings {
///     dump_dir: dir.path().to_path_buf(),
///     announce: false,
///     ..CaptureSettings::default()
/// })?;
/// capture::update_settings(|s| {
///     s.interval = Duration::from_secs(30);
///     s.duration = Duration::from_secs(5);
/// })?;
/// assert_eq!(capture::settings().unwrap().duration, Duration::from_secs(5));
/// capture::stop();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn update_settings(change: impl FnOnce(&mut CaptureSettings)) -> Result<(), Error> {
    let capture = active().ok_or(Error::new(ErrorKind::NotStarted))?;
    capture.update(change)
}

/// Asks for a dump now, for the application (a failed health check, a request past its
/// deadline). `reason` is free text written into the file's header; `tag` goes into the file
/// name (`executiontrace.<time>.<tag>.out`; empty means `app`) and must be `[A-Za-z0-9_]{1,64}`.
///
/// The rate limit applies: the result says whether a file was written or why not. Writing takes
/// the time of a snapshot (milliseconds for a few MiB); it happens on the calling thread.
pub fn dump_now(reason: &str, tag: &str) -> Result<DumpOutcome, Error> {
    let tag = if tag.is_empty() { "app" } else { tag };
    crate::file::files::validate_tag(tag)?;
    let capture = active().ok_or(Error::new(ErrorKind::NotStarted))?;
    capture.trigger(
        Trigger {
            kind: TriggerKind::Application,
            reason: reason.to_string(),
            tag: tag.to_string(),
            details: Vec::new(),
        },
        None,
    )
}

/// Writes a snapshot of the window that capture records to `out` (not a file of the dump
/// directory: no rate limit, no garbage collection, nothing counted in [`status`]), with the
/// settings' `program_version` in its header, and returns the bytes written. Used by the HTTP
/// endpoint; handy for tools.
///
/// It waits at most `wait` for a dump being written (or a settings change resizing the window),
/// then fails with [`ErrorKind::SnapshotInProgress`], as it does when another snapshot is being
/// written; it fails with [`ErrorKind::NotStarted`] when capture is not running.
pub fn write_snapshot<W: std::io::Write>(
    out: &mut W,
    meta: &SnapshotMeta,
    wait: Duration,
) -> Result<u64, Error> {
    let capture = active().ok_or(Error::new(ErrorKind::NotStarted))?;
    let Some(_writing) = capture.writer.acquire(Some(wait)) else {
        return Err(Error::new(ErrorKind::SnapshotInProgress));
    };
    let mut meta = meta.clone();
    meta.program_version = capture.settings().program_version;
    let recorder = Arc::clone(&lock(&capture.recorder));
    recorder.write_to_with(out, &meta)
}

/// The dump signal given to [`start`] (by code or the environment), if capture runs: over HTTP
/// the signal can only be turned off or set back to it.
#[cfg(feature = "http")]
pub(crate) fn start_signal() -> Option<Option<i32>> {
    active().map(|c| c.start_signal)
}

/// What capture has done since it started.
pub fn status() -> CaptureStatus {
    let mut status = match active() {
        Some(c) => CaptureStatus {
            running: true,
            files_written: c.files_written.load(Ordering::Relaxed),
            failed_writes: c.failed_writes.load(Ordering::Relaxed),
            suppressed_triggers: c.limiter.total_suppressed(),
            files_deleted: c.files_deleted.load(Ordering::Relaxed),
            last_file: lock(&c.last_file).clone(),
            #[cfg(feature = "upload")]
            upload: lock(&c.uploader).as_ref().map(|u| u.status()),
            ..CaptureStatus::default()
        },
        None => CaptureStatus::default(),
    };
    status.errors = ERRORS.load(Ordering::Relaxed);
    status.last_error = lock(&LAST_ERROR).clone();
    status
}

/// Reports an error of automatic capture: one line on standard error,
/// `flight-recorder: <context>: <error>`, also kept for [`status`]. Capture never panics or
/// stops the program over its own failures.
pub(crate) fn report_error(context: &str, error: &dyn std::fmt::Display) {
    let line = format!("{context}: {error}");
    log_line(&format!("flight-recorder: {line}"));
    ERRORS.fetch_add(1, Ordering::Relaxed);
    *lock(&LAST_ERROR) = Some(line);
}

/// Prints one line on standard error; a failure to print is ignored (`eprintln!` would panic).
pub(crate) fn log_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The running capture.
fn active() -> Option<Arc<Capture>> {
    lock(&ACTIVE).clone()
}

/// The running capture, for the panic hook: never waits long for the lock (its holder could be
/// the panicking thread).
fn active_for_panic() -> Option<Arc<Capture>> {
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        match ACTIVE.try_lock() {
            Ok(active) => return active.clone(),
            Err(TryLockError::Poisoned(p)) => return p.into_inner().clone(),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(TryLockError::WouldBlock) => return None,
        }
    }
}

fn recorder_config(settings: &CaptureSettings) -> FlightRecorderConfig {
    FlightRecorderConfig {
        min_age: settings.duration,
        max_bytes: settings.max_bytes,
        #[cfg(unix)]
        ring: ring::config(settings),
    }
}

/// Makes a relative dump directory absolute, so that a later `chdir` does not move it.
fn absolute_dir(mut settings: CaptureSettings) -> CaptureSettings {
    if settings.dump_dir.is_relative() {
        if let Ok(cwd) = std::env::current_dir() {
            settings.dump_dir = cwd.join(&settings.dump_dir);
        }
    }
    settings
}

impl Capture {
    fn settings(&self) -> CaptureSettings {
        lock(&self.control).settings.clone()
    }

    fn control(&self) -> MutexGuard<'_, Control> {
        lock(&self.control)
    }

    fn start_threads(self: &Arc<Self>, settings: &CaptureSettings) -> Result<(), Error> {
        let spawn = |name: &str, run: fn(Arc<Capture>)| {
            let capture = Arc::clone(self);
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || run(capture))
        };
        let periodic = spawn("flight-recorder-periodic", periodic::run)?;
        lock(&self.threads).push(periodic);
        slow_poll::watch(!settings.slow_poll_threshold.is_zero(), settings.stacks);
        let watchdog = spawn("flight-recorder-watchdog", slow_poll::run)?;
        lock(&self.threads).push(watchdog);
        let sampler = spawn("flight-recorder-cpu-sampler", cpu_sampler::run)?;
        lock(&self.threads).push(sampler);
        #[cfg(all(unix, feature = "signal"))]
        if let Some(number) = settings.signal {
            *lock(&self.signal) = Some(signal::SignalListener::start(number)?);
        }
        #[cfg(feature = "upload")]
        if let Some(upload) = &settings.upload {
            let uploader = upload::Uploader::start(upload.clone(), settings.dump_dir.clone())?;
            *lock(&self.uploader) = Some(Arc::new(uploader));
        }
        #[cfg(not(all(unix, feature = "signal")))]
        let _ = settings;
        Ok(())
    }

    /// Stops the threads and the recorder.
    fn shut_down(&self) {
        self.control().stopping = true;
        self.wake.notify_all();
        #[cfg(all(unix, feature = "signal"))]
        if let Some(listener) = lock(&self.signal).take() {
            listener.stop();
        }
        let me = std::thread::current().id();
        let threads: Vec<_> = lock(&self.threads).drain(..).collect();
        for thread in threads {
            if thread.thread().id() != me {
                let _ = thread.join();
            }
        }
        let _writing = self.writer.acquire(Some(BOUNDED_WAIT));
        lock(&self.recorder).stop();
        slow_poll::watch(false, false);
        #[cfg(feature = "upload")]
        if let Some(uploader) = lock(&self.uploader).take() {
            uploader.stop(BOUNDED_WAIT);
        }
    }

    /// Sleeps for `duration` unless capture stops first; returns whether it is still running.
    fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut control = self.control();
        while !control.stopping {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            control = match self.wake.wait_timeout(control, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        false
    }

    fn update(&self, change: impl FnOnce(&mut CaptureSettings)) -> Result<(), Error> {
        let _updating = lock(&self.updating);
        let old = self.settings();
        let mut new = old.clone();
        change(&mut new);
        new.validate()?;
        let new = absolute_dir(new);
        #[cfg(feature = "upload")]
        if new.upload != old.upload {
            return Err(Error::invalid_settings(
                "upload is read when capture starts; stop and start capture to change it",
            ));
        }
        if new.duration != old.duration || new.max_bytes != old.max_bytes {
            // Between two files, so that no snapshot sees the recorder change under it.
            let _writing = self.writer.acquire(None);
            let mut current = lock(&self.recorder);
            let resized = FlightRecorder::new(recorder_config(&new));
            resized.start_replacing(&current)?;
            *current = Arc::new(resized);
        }
        #[cfg(all(unix, feature = "signal"))]
        if new.signal != old.signal {
            let mut listener = lock(&self.signal);
            if let Some(old_listener) = listener.take() {
                old_listener.stop();
            }
            if let Some(number) = new.signal {
                *listener = Some(signal::SignalListener::start(number)?);
            }
        }
        if new.panic && !old.panic {
            panic_hook::install();
        }
        slow_poll::watch(!new.slow_poll_threshold.is_zero(), new.stacks);
        self.control().settings = new;
        self.wake.notify_all();
        Ok(())
    }

    /// Handles a trigger: records it in the trace, applies the rate limit, waits the slow-poll
    /// delay, and writes the file. `wait` bounds the wait for a file being written (the panic
    /// hook must not hang); `None` waits as long as it takes.
    fn trigger(&self, trigger: Trigger, wait: Option<Duration>) -> Result<DumpOutcome, Error> {
        // The triggering event itself, on the triggering thread: it shows in this file, or in a
        // later one when this request is suppressed.
        crate::log("flight_recorder.trigger", &trigger.describe());
        let settings = self.settings();
        let permit = match self.limiter.admit(trigger.kind, settings.min_dump_interval) {
            Ok(permit) => permit,
            Err(outcome) => {
                if let Some(wait) = wait {
                    // A panicking thread waits for the dump it was folded into, so that the
                    // file is complete before the program goes on to abort.
                    self.limiter.wait_idle(wait);
                }
                return Ok(outcome);
            }
        };
        if trigger.kind == TriggerKind::SlowPoll
            && !settings.slow_poll_delay.is_zero()
            && !self.sleep(settings.slow_poll_delay)
        {
            return Err(Error::new(ErrorKind::NotStarted));
        }
        let mut meta =
            SnapshotMeta::new(trigger.reason, trigger.tag).detail("trigger", trigger.kind);
        meta.details.extend(trigger.details);
        let result = self.write(meta, wait);
        drop(permit);
        result.map(DumpOutcome::Written)
    }

    /// Writes a periodic file.
    fn write_periodic(&self, settings: &CaptureSettings) -> Result<PathBuf, Error> {
        let meta = SnapshotMeta::new("periodic", "")
            .detail("trigger", "periodic")
            .detail("interval", duration_text(settings.interval))
            .detail("duration", duration_text(settings.duration));
        self.write(meta, None)
    }

    /// Writes one file into the dump directory, then collects garbage. Errors are reported on
    /// standard error and returned.
    fn write(&self, mut meta: SnapshotMeta, wait: Option<Duration>) -> Result<PathBuf, Error> {
        let _in_dump = InDump::enter();
        let Some(_writing) = self.writer.acquire(wait) else {
            let error = Error::new(ErrorKind::SnapshotInProgress);
            report_error(&format!("writing a trace ({})", meta.reason), &error);
            return Err(error);
        };
        let settings = self.settings();
        meta.program_version = settings.program_version.clone();
        let suppressed = self.limiter.take_pending();
        meta.suppressed_triggers = suppressed.values().sum();
        for (kind, n) in &suppressed {
            meta.details
                .push((format!("suppressed.{kind}"), n.to_string()));
        }
        let recorder = Arc::clone(&lock(&self.recorder));
        let result = crate::files::write_snapshot(&recorder, &settings.dump_dir, &meta);
        match &result {
            Ok(path) => {
                self.files_written.fetch_add(1, Ordering::Relaxed);
                *lock(&self.last_file) = Some(path.clone());
                #[cfg(feature = "upload")]
                if let Some(uploader) = lock(&self.uploader).as_ref() {
                    uploader.enqueue(path.clone());
                }
            }
            Err(e) => {
                self.limiter.restore_pending(suppressed);
                self.failed_writes.fetch_add(1, Ordering::Relaxed);
                report_error(
                    &format!(
                        "writing a trace ({}) to {}",
                        meta.reason,
                        settings.dump_dir.display()
                    ),
                    e,
                );
            }
        }
        match self.collect_garbage(&settings) {
            Ok(report) => {
                self.files_deleted
                    .fetch_add(report.deleted.len() as u64, Ordering::Relaxed);
            }
            Err(e) => report_error(&format!("cleaning up {}", settings.dump_dir.display()), &e),
        }
        result
    }

    /// Keeps the dump directory within its budget; with uploads on, keeps the files not yet
    /// uploaded up to the margin, and reports those deleted past it.
    fn collect_garbage(&self, settings: &CaptureSettings) -> std::io::Result<GcReport> {
        #[cfg(feature = "upload")]
        if let Some(uploader) = lock(&self.uploader).clone() {
            let limit = settings.total_dump_size_limit;
            let hard_limit = uploader.settings().hard_limit(limit);
            let report =
                dump_dir::collect_garbage_keeping_pending(&settings.dump_dir, limit, hard_limit)?;
            if report.deleted_before_upload > 0 {
                let n = report.deleted_before_upload as u64;
                let total = uploader.count_deleted_before_upload(n);
                report_error(
                    &format!("cleaning up {}", settings.dump_dir.display()),
                    &format!(
                        "deleted {n} file(s) not yet uploaded: files waiting for upload passed \
                         the limit ({}) by more than the margin ({}%); {total} so far",
                        flight_recorder_format::units::format_size(limit),
                        uploader.settings().budget_margin_percent
                    ),
                );
            }
            return Ok(report);
        }
        collect_garbage(&settings.dump_dir, settings.total_dump_size_limit)
    }
}

/// Starts automatic capture as the environment says, with the calling crate's name and version
/// as the program version: the one line a service adds at start-up. Expands to
/// [`capture::init_from_env`](crate::capture::init_from_env)`("<crate> <version>")` and returns
/// whether capture runs.
///
/// ```no_run
/// flight_recorder::capture_from_env!();
/// // … the service …
/// ```
#[macro_export]
macro_rules! capture_from_env {
    () => {
        $crate::capture::init_from_env(concat!(
            env!("CARGO_PKG_NAME"),
            " ",
            env!("CARGO_PKG_VERSION")
        ))
    };
}
