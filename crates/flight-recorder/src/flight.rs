//! The flight recorder: events kept in memory in a rolling window, written out on demand.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::chunk::ChunkView;
use crate::clock;
use crate::engine::engine;
use crate::error::Error;
use crate::file_writer::{FileMeta, TraceFileWriter};
use crate::files;
use crate::window::Window;

/// The settings of a [`FlightRecorder`], after Go's `FlightRecorderConfig`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlightRecorderConfig {
    /// Keep at least this much history (default 10 s). Older data is dropped soon after it ages
    /// out. Set it to about twice the span you want to look at.
    pub min_age: Duration,
    /// Keep at most about this many bytes of events (default 10 MiB); wins over `min_age`. A
    /// snapshot may hold a little more: the events still in each thread's open buffer.
    pub max_bytes: usize,
}

impl Default for FlightRecorderConfig {
    fn default() -> Self {
        FlightRecorderConfig {
            min_age: Duration::from_secs(10),
            max_bytes: 10 << 20,
        }
    }
}

static NEXT_RECORDER_ID: AtomicU64 = AtomicU64::new(1);
static SNAPSHOT_BUSY: AtomicBool = AtomicBool::new(false);

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

    /// The recorder's settings.
    pub fn config(&self) -> &FlightRecorderConfig {
        &self.config
    }

    /// Starts recording. Fails if this recorder is running or another flight recorder is.
    pub fn start(&self) -> Result<(), Error> {
        let calibration = clock::calibration();
        let min_age_units = calibration.units_in(self.config.min_age);
        engine().update_consumers(|consumers, state| match &consumers.window {
            Some(window) if window.owner == self.id => Err(Error::AlreadyStarted),
            Some(_) => Err(Error::AnotherRecorderRunning("flight recorder")),
            None => {
                consumers.window = Some(Window::new(
                    self.config.max_bytes,
                    min_age_units,
                    state,
                    self.id,
                ));
                self.running.store(true, Ordering::SeqCst);
                Ok(())
            }
        })
    }

    /// Stops recording and frees the window. Does nothing if the recorder is not running.
    pub fn stop(&self) {
        let drained = engine().update_consumers(|consumers, _| {
            match consumers.window.take_if(|w| w.owner == self.id) {
                Some(mut window) => window.drain(),
                None => Vec::new(),
            }
        });
        self.running.store(false, Ordering::SeqCst);
        engine().recycle(drained);
    }

    /// Whether the recorder is running.
    pub fn enabled(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Writes a snapshot of the window to `out` and returns the bytes written. The snapshot is a
    /// complete trace file (reason `manual`); recording goes on while it is written. Only one
    /// snapshot is written at a time: a call while another runs fails at once with
    /// [`Error::SnapshotInProgress`].
    pub fn write_to<W: Write>(&self, out: &mut W) -> Result<u64, Error> {
        self.write_snapshot(out, "manual", "")
    }

    /// Like [`FlightRecorder::write_to`], with the reason and tag recorded in the file's header.
    pub fn write_snapshot<W: Write>(
        &self,
        out: &mut W,
        reason: &str,
        tag: &str,
    ) -> Result<u64, Error> {
        if !self.enabled() {
            return Err(Error::NotStarted);
        }
        let _busy = SnapshotGuard::acquire()?;
        let calibration = clock::calibration();
        let now = calibration.now_units();
        let mut expired = Vec::new();
        let mut start_generation = None;
        let mut views = engine().cut(|| {
            engine().with_consumers(|consumers| match consumers.window.as_mut() {
                Some(window) if window.owner == self.id => {
                    window.expire(now, &mut expired);
                    start_generation = Some(window.start_generation);
                    window.chunks()
                }
                _ => Vec::new(),
            })
        });
        engine().recycle(expired);
        let Some(start_generation) = start_generation else {
            return Err(Error::NotStarted);
        };
        // Open chunks taken before the recorder started hold only older events.
        views.retain(|v| v.chunk.generation >= start_generation);
        views.sort_by_key(|v| v.chunk.base_units);
        let meta = FileMeta {
            mode: "flight-recorder",
            reason,
            tag,
            min_age: self.config.min_age,
            max_bytes: self.config.max_bytes as u64,
        };
        let result = write_views(out, &meta, &views);
        engine().recycle(views.into_iter().map(|v| v.chunk));
        result
    }

    /// Writes a snapshot into `dir` (created owner-only if missing) as
    /// `executiontrace.<UTC time>[.<tag>].out`, through a temporary file renamed once complete,
    /// and returns its path. `tag` is empty or `[A-Za-z0-9_]{1,64}`.
    pub fn write_to_dir(
        &self,
        dir: impl AsRef<Path>,
        reason: &str,
        tag: &str,
    ) -> Result<PathBuf, Error> {
        files::validate_tag(tag)?;
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        files::write_trace_file(dir.as_ref(), now_ns, tag, |file| {
            self.write_snapshot(file, reason, tag)
        })
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
    views: &[ChunkView],
) -> Result<u64, Error> {
    let mut writer = TraceFileWriter::new(BufWriter::with_capacity(32 << 10, out), meta)?;
    writer.write_chunks(views)?;
    let (_, bytes) = writer.finish()?;
    Ok(bytes)
}

/// Holds the process's one snapshot slot.
struct SnapshotGuard;

impl SnapshotGuard {
    fn acquire() -> Result<SnapshotGuard, Error> {
        SNAPSHOT_BUSY
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .map(|_| SnapshotGuard)
            .map_err(|_| Error::SnapshotInProgress)
    }
}

impl Drop for SnapshotGuard {
    fn drop(&mut self) {
        SNAPSHOT_BUSY.store(false, Ordering::Release);
    }
}
