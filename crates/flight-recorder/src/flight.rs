//! The flight recorder: events kept in memory in a rolling window, written out on demand.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flight_recorder_format::ThreadInfo;

use crate::engine::engine;
use crate::engine::shared::{WindowBounds, WindowOwner};
use crate::engine::snapshot_guard::SnapshotSlot;
use crate::error::{Error, ErrorKind};
use crate::file::files;
use crate::file::writer::{FileExtra, FileMeta, TraceFileWriter};
use crate::record::chunk::ChunkView;
use crate::record::clock;

/// The settings of a [`FlightRecorder`], after Go's `FlightRecorderConfig`.
///
/// New settings may come in later versions, each with a default that keeps today's behaviour:
/// write the settings you want and end with `..Default::default()`, so that your code still
/// builds then.
///
/// ```
/// use flight_recorder::FlightRecorderConfig;
/// use std::time::Duration;
///
/// let config = FlightRecorderConfig {
///     min_age: Duration::from_secs(30),
///     ..Default::default()
/// };
/// assert_eq!(config.max_bytes, 10 << 20);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlightRecorderConfig {
    /// Keep at least this much history (default 10 s). Older data is dropped soon after it ages
    /// out. Set it to about twice the span you want to look at.
    pub min_age: Duration,
    /// Keep at most about this many bytes of events (default 10 MiB); wins over `min_age`. A
    /// snapshot may hold a little more: the events still in each thread's open buffer.
    pub max_bytes: usize,
    /// Keep the chunks in a shared mapping that survives the process (`None`, the default:
    /// heap buffers). See [`ring`](crate::ring): after a crash, `flight-recorder recover` writes
    /// the last events. The process has one ring, made by the first recorder that asks for it.
    #[cfg(unix)]
    pub ring: Option<crate::ring::RingConfig>,
}

impl Default for FlightRecorderConfig {
    fn default() -> Self {
        FlightRecorderConfig {
            min_age: Duration::from_secs(10),
            max_bytes: 10 << 20,
            #[cfg(unix)]
            ring: None,
        }
    }
}

/// What a snapshot file says about why it was written, for [`FlightRecorder::write_to_with`]
/// and [`files::write_snapshot`](crate::files::write_snapshot).
///
/// ```
/// use flight_recorder::SnapshotMeta;
///
/// let meta = SnapshotMeta::new("deadline exceeded", "slow_request")
///     .program_version("my-service 1.4.2")
///     .detail("route", "/users/{id}")
///     .detail("elapsed_ms", "1520");
/// assert_eq!(meta.details.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// Why the file was written (`manual`, `periodic`, a trigger name, free text).
    pub reason: String,
    /// A short tag, empty or `[A-Za-z0-9_]{1,64}`; it also goes into the file name.
    pub tag: String,
    /// The version of the program, as it wants it shown (may be empty).
    pub program_version: String,
    /// Details of what triggered the file, as name/value pairs.
    pub details: Vec<(String, String)>,
    /// Triggered dumps suppressed since the previous file.
    pub suppressed_triggers: u64,
}

impl SnapshotMeta {
    /// A reason and a tag, with no other metadata.
    pub fn new(reason: impl Into<String>, tag: impl Into<String>) -> SnapshotMeta {
        SnapshotMeta {
            reason: reason.into(),
            tag: tag.into(),
            ..SnapshotMeta::default()
        }
    }

    /// Sets the program's version.
    pub fn program_version(mut self, version: impl Into<String>) -> SnapshotMeta {
        self.program_version = version.into();
        self
    }

    /// Adds one detail.
    pub fn detail(mut self, name: impl Into<String>, value: impl ToString) -> SnapshotMeta {
        self.details.push((name.into(), value.to_string()));
        self
    }

    fn extra(&self) -> FileExtra<'_> {
        FileExtra {
            program_version: &self.program_version,
            details: &self.details,
            suppressed_triggers: self.suppressed_triggers,
        }
    }
}

static NEXT_RECORDER_ID: AtomicU64 = AtomicU64::new(1);
/// The process's one snapshot slot.
static SNAPSHOT: SnapshotSlot = SnapshotSlot::new();
/// Snapshots written whole since the process started.
static SNAPSHOTS_WRITTEN: AtomicU64 = AtomicU64::new(0);

/// An always-on recorder keeping the last seconds of events in memory, so that the moments
/// before an incident can be written out after it.
///
/// ```
/// use flight_recorder::{FlightRecorder, FlightRecorderConfig};
/// use std::time::Duration;
///
/// let fr = FlightRecorder::new(FlightRecorderConfig {
///     min_age: Duration::from_secs(10),
///     max_bytes: 64 << 20,
///     ..Default::default()
/// });
/// fr.start()?;
/// flight_recorder::log("demo", "something happened");
/// let mut snapshot = Vec::new();
/// let bytes = fr.write_to(&mut snapshot)?;
/// assert_eq!(bytes as usize, snapshot.len());
/// fr.stop();
/// # Ok::<(), flight_recorder::Error>(())
/// ```
///
/// One flight recorder runs at a time in a process, beside at most one [`FullTrace`](crate::FullTrace).
pub struct FlightRecorder {
    config: FlightRecorderConfig,
    id: u64,
    running: AtomicBool,
}

impl FlightRecorder {
    /// A stopped flight recorder with these settings.
    pub fn new(config: FlightRecorderConfig) -> FlightRecorder {
        FlightRecorder {
            config,
            id: NEXT_RECORDER_ID.fetch_add(1, Ordering::Relaxed),
            running: AtomicBool::new(false),
        }
    }

    /// How many snapshots flight recorders have written whole in this process since it started
    /// (by every write method, for files, capture's dumps and the HTTP endpoint alike); a
    /// snapshot that failed is not counted. One relaxed atomic load, for monitoring and tests.
    pub fn snapshots_written() -> u64 {
        SNAPSHOTS_WRITTEN.load(Ordering::Relaxed)
    }

    /// The recorder's settings.
    pub fn config(&self) -> &FlightRecorderConfig {
        &self.config
    }

    /// Starts recording. Fails if this recorder is running or another flight recorder is.
    pub fn start(&self) -> Result<(), Error> {
        let calibration = clock::calibration();
        self.enable_ring();
        let bounds = WindowBounds {
            max_bytes: self.config.max_bytes,
            min_age_units: calibration.units_in(self.config.min_age),
        };
        engine().start_window(self.owner(), bounds)
    }

    /// Starts this recorder in place of `previous`, which must be running: the window's chunks
    /// move to this recorder's window (then bounded by this recorder's settings), so changing
    /// `min_age` or `max_bytes` loses no history. `previous` is stopped.
    pub(crate) fn start_replacing(&self, previous: &FlightRecorder) -> Result<(), Error> {
        let calibration = clock::calibration();
        self.enable_ring();
        let bounds = WindowBounds {
            max_bytes: self.config.max_bytes,
            min_age_units: calibration.units_in(self.config.min_age),
        };
        let now = calibration.now_units();
        engine().replace_window(previous.owner(), self.owner(), bounds, now)
    }

    /// Makes the process's ring if the config asks for one (see [`crate::ring`]).
    fn enable_ring(&self) {
        #[cfg(all(unix, not(flight_recorder_loom)))]
        if let Some(ring) = &self.config.ring {
            let min_age_ns = self.config.min_age.as_nanos().min(u128::from(u64::MAX)) as u64;
            crate::ring::enable(ring, self.config.max_bytes, min_age_ns);
        }
    }

    /// Stops recording and frees the window. Does nothing if the recorder is not running.
    pub fn stop(&self) {
        engine().stop_window(self.id);
        self.running.store(false, Ordering::SeqCst);
    }

    /// This recorder as the owner of the engine's window.
    fn owner(&self) -> WindowOwner<'_> {
        WindowOwner {
            id: self.id,
            running: &self.running,
        }
    }

    /// Whether the recorder is running.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Writes a snapshot of the window to `out` and returns the bytes written. The snapshot is a
    /// complete trace file (reason `manual`); recording goes on while it is written. Only one
    /// snapshot is written at a time: a call while another runs fails at once with
    /// [`ErrorKind::SnapshotInProgress`].
    ///
    /// To write a snapshot file into a directory, see
    /// [`files::write_snapshot`](crate::files::write_snapshot).
    pub fn write_to<W: Write>(&self, out: &mut W) -> Result<u64, Error> {
        self.snapshot(out, "manual", "", &FileExtra::default())
    }

    /// Like [`FlightRecorder::write_to`], with all of `meta` in the file's header: the reason,
    /// the tag (not checked: it is only a header field here), the program's version and the
    /// details.
    pub fn write_to_with<W: Write>(&self, out: &mut W, meta: &SnapshotMeta) -> Result<u64, Error> {
        self.snapshot(out, &meta.reason, &meta.tag, &meta.extra())
    }

    fn snapshot<W: Write>(
        &self,
        out: &mut W,
        reason: &str,
        tag: &str,
        extra: &FileExtra<'_>,
    ) -> Result<u64, Error> {
        if !self.is_running() {
            return Err(Error::new(ErrorKind::NotStarted));
        }
        let _busy = SNAPSHOT
            .try_acquire()
            .ok_or(Error::new(ErrorKind::SnapshotInProgress))?;
        let engine = engine();
        let now = clock::calibration().now_units();
        let mut views = engine
            .take_window_cut(self.id, now)
            .ok_or(Error::new(ErrorKind::NotStarted))?;
        views.sort_by_key(|v| v.chunk.base_units);
        let meta = FileMeta {
            mode: "flight-recorder",
            reason,
            tag,
            min_age: self.config.min_age,
            max_bytes: self.config.max_bytes as u64,
        };
        let result = write_views(out, &meta, extra, &views, |id| engine.thread_info(id));
        engine.recycle(views.into_iter().map(|v| v.chunk));
        if result.is_ok() {
            SNAPSHOTS_WRITTEN.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

impl Drop for FlightRecorder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes a whole trace file made of `views`.
fn write_views<W: Write>(
    out: &mut W,
    meta: &FileMeta<'_>,
    extra: &FileExtra<'_>,
    views: &[ChunkView],
    thread_info: impl Fn(u64) -> Option<ThreadInfo>,
) -> Result<u64, Error> {
    let mut writer =
        TraceFileWriter::with_extra(BufWriter::with_capacity(32 << 10, out), meta, extra)?;
    writer.write_chunks(views, thread_info)?;
    let (_, bytes) = writer.finish()?;
    Ok(bytes)
}

/// Writes a snapshot of `recorder`'s window into `dir` (created owner-only if missing) as
/// `executiontrace.<UTC time>[.<tag>].out`, through a temporary file renamed once complete, and
/// returns its path. The file is readable by the owner only; `meta.tag` must be empty or
/// `[A-Za-z0-9_]{1,64}` (it goes into the file name).
///
/// ```
/// use flight_recorder::{files, FlightRecorder, FlightRecorderConfig, SnapshotMeta};
///
/// let fr = FlightRecorder::new(FlightRecorderConfig::default());
/// fr.start()?;
/// let dir = tempfile::tempdir()?;
/// let path = files::write_snapshot(&fr, dir.path(), &SnapshotMeta::new("slow", "slow_request"))?;
/// assert!(path.starts_with(dir.path()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_snapshot(
    recorder: &FlightRecorder,
    dir: impl AsRef<Path>,
    meta: &SnapshotMeta,
) -> Result<PathBuf, Error> {
    files::validate_tag(&meta.tag)?;
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    files::write_trace_file(dir.as_ref(), now_ns, &meta.tag, |file| {
        recorder.write_to_with(file, meta)
    })
}
