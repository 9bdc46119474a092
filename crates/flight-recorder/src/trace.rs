//! The full trace: every event, streamed to a writer from `start` to `stop`, like Go's
//! `trace.Start` / `trace.Stop`.

use std::collections::HashSet;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::engine;
use crate::engine::sink::{Lost, TraceMessage};
use crate::error::{Error, ErrorKind};
use crate::file::writer::{FileMeta, TraceFileWriter};
use crate::record::chunk::ChunkView;
use crate::record::clock;
use crate::record::state::State;

/// Sealed chunks waiting for the writer thread; beyond this the writer is too slow and chunks are
/// dropped (and counted in the file) rather than block recording threads or grow memory.
const QUEUE_CHUNKS: usize = 64;

/// What a full trace wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TraceStats {
    /// Bytes written.
    pub bytes: u64,
    /// Chunks of events written.
    pub chunks: u64,
    /// Chunks dropped because the writer could not keep up.
    pub dropped_chunks: u64,
    /// Bytes of events in the dropped chunks.
    pub dropped_bytes: u64,
}

/// A running full trace: every event from [`FullTrace::start`] to [`FullTrace::stop`] is written
/// to the writer, by a background thread.
///
/// ```
/// let mut file = tempfile::tempfile()?;
/// let trace = flight_recorder::FullTrace::start(file.try_clone()?)?;
/// {
///     let _region = flight_recorder::region("work");
/// }
/// let stats = trace.stop()?;
/// assert!(stats.bytes > 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// One full trace runs at a time, beside at most one [`FlightRecorder`](crate::FlightRecorder).
/// Dropping it stops it (errors are then lost: call `stop` to see them).
pub struct FullTrace {
    sender: Option<SyncSender<TraceMessage>>,
    thread: Option<JoinHandle<io::Result<TraceStats>>>,
    start_state: State,
}

impl FullTrace {
    /// Writes the file's header to `out` and starts sending every event to it.
    pub fn start<W: Write + Send + 'static>(out: W) -> Result<FullTrace, Error> {
        clock::calibration();
        let meta = FileMeta {
            mode: "trace",
            reason: "trace",
            tag: "",
            min_age: Duration::ZERO,
            max_bytes: 0,
        };
        let mut writer = TraceFileWriter::new(BufWriter::with_capacity(32 << 10, out), &meta)?;
        // A writer that cannot take the header fails here, not silently later.
        writer.flush()?;
        let (sender, receiver) = sync_channel(QUEUE_CHUNKS);
        let lost = Arc::new(Lost::default());
        let start_state = engine().start_trace(sender.clone(), lost.clone())?;
        let spawned = std::thread::Builder::new()
            .name("flight-recorder-trace".into())
            .spawn(move || write_trace(writer, receiver, &lost));
        match spawned {
            Ok(thread) => Ok(FullTrace {
                sender: Some(sender),
                thread: Some(thread),
                start_state,
            }),
            Err(e) => {
                engine().stop_trace();
                Err(Error::from(e))
            }
        }
    }

    /// Stops the trace: writes the events still in threads' buffers and the end record, flushes,
    /// and returns what was written.
    pub fn stop(mut self) -> Result<TraceStats, Error> {
        self.finish()
    }

    fn finish(&mut self) -> Result<TraceStats, Error> {
        let (Some(sender), Some(thread)) = (self.sender.take(), self.thread.take()) else {
            return Err(Error::new(ErrorKind::NotStarted));
        };
        // The open chunks first, then detach: a chunk sealed in between reaches the writer both
        // ways, and the writer keeps the sealed one (see `cut`).
        let views = engine().cut_open_chunks(self.start_state);
        engine().stop_trace();
        let _ = sender.send(TraceMessage::Finish(views));
        drop(sender);
        match thread.join() {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::from(io::Error::other(
                "the trace writer thread panicked",
            ))),
        }
    }
}

impl Drop for FullTrace {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.finish();
        }
    }
}

/// The writer thread: writes chunks as they are sealed, then the rest at `Finish`.
fn write_trace<W: Write>(
    mut writer: TraceFileWriter<W>,
    receiver: Receiver<TraceMessage>,
    lost: &Lost,
) -> io::Result<TraceStats> {
    let thread_info = |id| engine().thread_info(id);
    let mut written: HashSet<u64> = HashSet::new();
    let mut stats = TraceStats::default();
    let mut error: Option<io::Error> = None;
    let write_lost = |writer: &mut TraceFileWriter<W>, stats: &mut TraceStats| {
        let chunks = lost.chunks.load(Ordering::Relaxed);
        let bytes = lost.bytes.load(Ordering::Relaxed);
        if chunks > stats.dropped_chunks {
            let result =
                writer.write_dropped(chunks - stats.dropped_chunks, bytes - stats.dropped_bytes);
            stats.dropped_chunks = chunks;
            stats.dropped_bytes = bytes;
            return result;
        }
        Ok(())
    };
    for message in receiver {
        match message {
            TraceMessage::Chunk(chunk) => {
                if error.is_none() {
                    written.insert(chunk.seq);
                    let view = ChunkView {
                        len: chunk.committed(),
                        chunk,
                    };
                    let result = writer
                        .write_chunks(std::slice::from_ref(&view), thread_info)
                        .and_then(|()| write_lost(&mut writer, &mut stats));
                    engine().recycle([view.chunk]);
                    if let Err(e) = result {
                        error = Some(e);
                    }
                } else {
                    engine().recycle([chunk]);
                }
            }
            TraceMessage::Finish(mut views) => {
                if let Some(e) = error {
                    return Err(e);
                }
                views.retain(|v| !written.contains(&v.chunk.seq));
                views.sort_by_key(|v| v.chunk.base_units);
                writer.write_chunks(&views, thread_info)?;
                let chunks = (written.len() + views.len()) as u64;
                engine().recycle(views.into_iter().map(|v| v.chunk));
                write_lost(&mut writer, &mut stats)?;
                let (_, bytes) = writer.finish()?;
                stats.bytes = bytes;
                stats.chunks = chunks;
                return Ok(stats);
            }
        }
    }
    Err(error.unwrap_or_else(|| io::Error::other("the trace ended without being stopped")))
}
