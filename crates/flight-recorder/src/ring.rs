//! A recording that survives the crash: the process's chunks in a shared mapping (the *ring*),
//! and the recovery of the rings of processes that are gone.
//!
//! With [`RingConfig`] in a [`FlightRecorderConfig`](crate::FlightRecorderConfig) (automatic
//! capture turns it on by itself), the chunks threads write, the window's bookkeeping and the
//! string, location and thread tables live in a `MAP_SHARED` mapping of a file in a
//! memory-backed directory ([`default_ring_dir`]). However the process dies — `kill -9`, the OOM
//! killer, a segmentation fault, `abort()` — the file keeps every event published before the
//! death. [`recover_rings`] (the `flight-recorder recover` command, and automatic capture at
//! start) writes each dead process's ring as `executiontrace.<UTC time>.recovered.out` and removes
//! it. The layout and the guarantees are in docs/RELIABILITY.md.
//!
//! ```no_run
//! use flight_recorder::ring::RingConfig;
//! use flight_recorder::{FlightRecorder, FlightRecorderConfig};
//!
//! let fr = FlightRecorder::new(FlightRecorderConfig {
//!     ring: Some(RingConfig {
//!         dump_dir: "/var/tmp/traces".into(),
//!         ..Default::default()
//!     }),
//!     ..Default::default()
//! });
//! fr.start()?;
//! # Ok::<(), flight_recorder::Error>(())
//! ```

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read};
use std::mem::offset_of;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use flight_recorder_format::reader::RawChunk;
use flight_recorder_format::{
    tables, ClockCalibration, ClockSample, EventKind, Header, RecordType,
};

use crate::error::Error;
use crate::file::files;
use crate::file::process::process_info;
use crate::file::writer::TraceFileWriter;
use crate::record::chunk::{ChunkHeader, CHUNK_SIZE, HEADER_SIZE};
use crate::record::fatal::signal_name;
use crate::record::ring::{
    self as mapping, FatalArea, LogHead, RingHeader, RingParams, SegmentHeader, LAYOUT_VERSION,
    LOG_HEAD, MAGIC, NO_WINDOW, RING_SUFFIX, SEGMENT_MAGIC, STATUS_EXITED,
};

pub use crate::record::ring::default_ring_dir;

/// Where a flight recorder's ring goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingConfig {
    /// The directory of ring files (default [`default_ring_dir`]): memory-backed, so that the
    /// hot path's writes never wait on a disk. Made `0700` if missing; a directory that is not
    /// private to this user is refused.
    pub dir: PathBuf,
    /// Where a recovery of this process's ring writes its file, recorded in the ring (default
    /// `flight-recorder-dumps` in the current directory at start).
    pub dump_dir: PathBuf,
    /// Chunk slots beyond the window's `max_bytes`, for each recording thread's open chunk and
    /// for chunks a snapshot in progress pins (default 64). When every slot is taken, chunks go
    /// to the heap: they are in snapshots but not recovered.
    pub spare_chunks: usize,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            dir: default_ring_dir(),
            dump_dir: PathBuf::from(crate::capture::DUMP_DIR_NAME),
            spare_chunks: 64,
        }
    }
}

static SAID_NO_RING: AtomicBool = AtomicBool::new(false);

/// The process's ring's file, if it has one.
pub fn ring_path() -> Option<PathBuf> {
    mapping::ring().map(mapping::Ring::path)
}

/// The size of the process's ring's mapping, bytes (0 without one).
pub fn ring_size() -> usize {
    mapping::ring().map_or(0, mapping::Ring::size)
}

/// Makes the process's ring for a window of `max_bytes` (once per process; later calls keep the
/// first ring). When it cannot be made the recorder keeps its heap buffers, and says so once on
/// standard error.
pub(crate) fn enable(config: &RingConfig, max_bytes: usize, min_age_ns: u64) {
    if mapping::ring().is_none() {
        let dump_dir = if config.dump_dir.is_relative() {
            std::env::current_dir()
                .map(|cwd| cwd.join(&config.dump_dir))
                .unwrap_or_else(|_| config.dump_dir.clone())
        } else {
            config.dump_dir.clone()
        };
        let params = RingParams {
            dir: config.dir.clone(),
            dump_dir,
            slots: max_bytes.div_ceil(CHUNK_SIZE) + config.spare_chunks.max(2),
            chunk_size: CHUNK_SIZE,
        };
        let process = process_info();
        let text = mapping::ProcessText {
            program: &process.program,
            host: &process.host,
        };
        match mapping::create(&params, &text) {
            Ok(ring) => {
                crate::record::intern::log_all_to_ring(ring);
                ring.log_modules(&crate::file::writer::modules_table());
                let engine = crate::engine::engine();
                engine.log_threads_to_ring(ring);
                if let Some(generation) = engine.window_generation() {
                    ring.set_window_generation(generation);
                }
            }
            Err(e) => {
                if !SAID_NO_RING.swap(true, Ordering::Relaxed) {
                    crate::capture::log_line(&format!(
                        "flight-recorder: no ring in {} ({e}); recording in heap buffers, which \
                         do not survive a crash",
                        config.dir.display()
                    ));
                }
                return;
            }
        }
    }
    if let Some(ring) = mapping::ring() {
        ring.set_window_bounds(min_age_ns, max_bytes as u64);
    }
}

/// What became of one ring file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryOutcome {
    /// The trace file written, and the ring removed.
    Recovered {
        /// The file written.
        file: PathBuf,
        /// The dead process's id.
        pid: u64,
        /// Its program.
        program: String,
        /// How it ended, as far as known.
        ended: String,
        /// Chunks recovered.
        chunks: usize,
        /// Chunks found corrupt and left out.
        corrupt_chunks: usize,
    },
    /// The process exited normally and the ring held nothing: removed.
    Removed,
    /// The ring belongs to a live process: left alone.
    Live,
    /// The ring cannot be used (corrupt, another user's, unreadable): left alone.
    Skipped(String),
}

/// One ring file and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The ring file.
    pub ring: PathBuf,
    /// What was done.
    pub outcome: RecoveryOutcome,
}

/// Recovers the rings in `ring_dir` of processes that are gone: each becomes
/// `executiontrace.<UTC time>.recovered.out` in the dump directory recorded in the ring (or
/// `out_dir`), then the ring is removed. Rings of live processes are left alone; a corrupt ring
/// or another user's is reported and skipped. A missing directory holds no ring.
pub fn recover_rings(ring_dir: &Path, out_dir: Option<&Path>) -> io::Result<Vec<RecoveryReport>> {
    let entries = match std::fs::read_dir(ring_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(RING_SUFFIX) && !n.starts_with('.'))
        })
        .collect();
    paths.sort();
    let own = mapping::ring().map(mapping::Ring::path);
    let mut reports = Vec::new();
    for path in paths {
        if own.as_deref() == Some(path.as_path()) {
            continue;
        }
        let outcome =
            recover_one(&path, out_dir).unwrap_or_else(|e| RecoveryOutcome::Skipped(e.to_string()));
        reports.push(RecoveryReport {
            ring: path,
            outcome,
        });
    }
    Ok(reports)
}

fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    let b = bytes.get(offset..offset.checked_add(8)?)?;
    Some(u64::from_ne_bytes(b.try_into().ok()?))
}

fn text_at(bytes: &[u8], len_offset: usize, text_offset: usize, cap: usize) -> String {
    let len = u64_at(bytes, len_offset).unwrap_or(0).min(cap as u64) as usize;
    bytes
        .get(text_offset..text_offset + len)
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .unwrap_or_default()
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("corrupt ring: {what}"))
}

/// A chunk read back from a ring slot, checked whole.
struct SlotChunk {
    seq: u64,
    thread: u64,
    base_units: u64,
    events: Vec<u8>,
}

/// Checks a slot's header and events; `None` when it holds no chunk of the window, `Err` when
/// it is corrupt.
fn read_slot(
    bytes: &[u8],
    offset: usize,
    chunk_size: usize,
    window_generation: u64,
) -> Result<Option<SlotChunk>, &'static str> {
    let field = |name: usize| u64_at(bytes, offset + name).ok_or("slot past the file");
    let seq = field(offset_of!(ChunkHeader, seq))?;
    if seq == 0 {
        return Ok(None);
    }
    // The committed counter is the first field (`repr(C)`), a usize.
    let committed = field(0)?;
    let thread = field(offset_of!(ChunkHeader, thread))?;
    let state = field(offset_of!(ChunkHeader, state))?;
    let base_units = field(offset_of!(ChunkHeader, base_units))?;
    let capacity = field(offset_of!(ChunkHeader, capacity))?;
    if capacity != chunk_size as u64 || committed > capacity || thread == 0 {
        return Err("bad chunk header");
    }
    // State word: bit 0 enabled, the generation above bit 1 (`record::state`).
    if state & 1 == 0 || window_generation == NO_WINDOW || state >> 2 < window_generation {
        return Ok(None);
    }
    let start = offset + HEADER_SIZE;
    let events = bytes
        .get(start..start + committed as usize)
        .ok_or("chunk past the file")?
        .to_vec();
    // Every event must decode whole, to the published length: nothing torn is written out.
    let mut raw = RawChunk::new(thread, base_units, events);
    let (mut pos, mut units) = (0usize, base_units);
    while pos < raw.bytes().len() {
        raw.decode(&mut pos, &mut units)?;
    }
    Ok(Some(SlotChunk {
        seq,
        thread,
        base_units,
        events: raw.bytes().to_vec(),
    }))
}

/// The log at `offset` (its published entries), checked against the file.
fn read_log(bytes: &[u8], offset: u64, cap: u64) -> io::Result<&[u8]> {
    let offset = offset as usize;
    let len = u64_at(bytes, offset + offset_of!(LogHead, len)).ok_or_else(|| corrupt("log"))?;
    if len > cap {
        return Err(corrupt("log length"));
    }
    bytes
        .get(offset + LOG_HEAD..offset + LOG_HEAD + len as usize)
        .ok_or_else(|| corrupt("log past the file"))
}

fn process_alive(pid: u64, start_time: u64) -> bool {
    u32::try_from(pid)
        .ok()
        .and_then(mapping::process_start_time)
        .is_some_and(|t| t == start_time)
}

fn recover_one(path: &Path, out_dir: Option<&Path>) -> io::Result<RecoveryOutcome> {
    let mut file = std::fs::OpenOptions::new().read(true).open(path)?;
    let meta = file.metadata()?;
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    if meta.uid() != uid {
        return Ok(RecoveryOutcome::Skipped(format!(
            "owned by user {}, not {uid}",
            meta.uid()
        )));
    }
    // The live process holds this lock for its whole life; it is released when it dies.
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Ok(RecoveryOutcome::Live);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)?;
    let h = |name: usize| u64_at(&bytes, name).ok_or_else(|| corrupt("header past the file"));
    if bytes.get(..8) != Some(&MAGIC[..]) {
        return Ok(RecoveryOutcome::Skipped("not a ring (bad magic)".into()));
    }
    if h(offset_of!(RingHeader, layout_version))? != LAYOUT_VERSION
        || h(offset_of!(RingHeader, header_size))? != std::mem::size_of::<RingHeader>() as u64
    {
        return Ok(RecoveryOutcome::Skipped(
            "a ring of another layout version".into(),
        ));
    }
    if h(offset_of!(RingHeader, uid))? != u64::from(uid) {
        return Ok(RecoveryOutcome::Skipped("written by another user".into()));
    }
    let pid = h(offset_of!(RingHeader, pid))?;
    let start_time = h(offset_of!(RingHeader, start_time))?;
    if process_alive(pid, start_time) {
        return Ok(RecoveryOutcome::Live);
    }
    let chunk_size = h(offset_of!(RingHeader, chunk_size))?;
    let slot_count = h(offset_of!(RingHeader, slot_count))?;
    let slots_offset = h(offset_of!(RingHeader, slots_offset))?;
    let file_size = h(offset_of!(RingHeader, file_size))?;
    let slot_bytes = (HEADER_SIZE as u64).saturating_add(chunk_size);
    if file_size != bytes.len() as u64
        || chunk_size == 0
        || chunk_size > 64 << 20
        || slot_count
            .checked_mul(slot_bytes)
            .and_then(|n| n.checked_add(slots_offset))
            .is_none_or(|end| end > file_size)
    {
        return Ok(RecoveryOutcome::Skipped(
            "corrupt ring: sizes do not match the file".into(),
        ));
    }
    let strings = read_log(
        &bytes,
        h(offset_of!(RingHeader, strings_offset))?,
        h(offset_of!(RingHeader, strings_cap))?,
    )?;
    let locations = read_log(
        &bytes,
        h(offset_of!(RingHeader, locations_offset))?,
        h(offset_of!(RingHeader, locations_cap))?,
    )?;
    let threads_log = read_log(
        &bytes,
        h(offset_of!(RingHeader, threads_offset))?,
        h(offset_of!(RingHeader, threads_cap))?,
    )?;
    let modules = read_log(
        &bytes,
        h(offset_of!(RingHeader, modules_offset))?,
        h(offset_of!(RingHeader, modules_cap))?,
    )?;
    let window_generation = h(offset_of!(RingHeader, window_generation))?;
    let mut chunks = Vec::new();
    let mut corrupt_chunks = 0;
    for slot in 0..slot_count {
        let offset = (slots_offset + slot * slot_bytes) as usize;
        match read_slot(&bytes, offset, chunk_size as usize, window_generation) {
            Ok(Some(chunk)) => chunks.push(chunk),
            Ok(None) => {}
            Err(_) => corrupt_chunks += 1,
        }
    }
    // The segments added as the ring grew, `<ring>.seg1`, `.seg2`, … in order.
    let mut segment_files = Vec::new();
    let mut corrupt_segments = 0;
    for index in 1..mapping::MAX_SEGMENTS {
        let segment = mapping::segment_path(path, index);
        let Ok(seg) = std::fs::read(&segment) else {
            break;
        };
        segment_files.push(segment);
        let g = |name: usize| u64_at(&seg, name).unwrap_or(u64::MAX);
        let count = g(offset_of!(SegmentHeader, slot_count));
        let fits = count
            .checked_mul(slot_bytes)
            .and_then(|n| n.checked_add(4096))
            .is_some_and(|end| end <= seg.len() as u64);
        if seg.get(..8) != Some(&SEGMENT_MAGIC[..])
            || g(offset_of!(SegmentHeader, layout_version)) != LAYOUT_VERSION
            || g(offset_of!(SegmentHeader, pid)) != pid
            || g(offset_of!(SegmentHeader, start_time)) != start_time
            || g(offset_of!(SegmentHeader, index)) != index as u64
            || g(offset_of!(SegmentHeader, chunk_size)) != chunk_size
            || g(offset_of!(SegmentHeader, file_size)) != seg.len() as u64
            || !fits
        {
            corrupt_segments += 1;
            continue;
        }
        for slot in 0..count {
            let offset = (4096 + slot * slot_bytes) as usize;
            match read_slot(&seg, offset, chunk_size as usize, window_generation) {
                Ok(Some(chunk)) => chunks.push(chunk),
                Ok(None) => {}
                Err(_) => corrupt_chunks += 1,
            }
        }
    }
    chunks.sort_by_key(|c| (c.base_units, c.seq));

    let status = h(offset_of!(RingHeader, status))?;
    let fatal_offset = h(offset_of!(RingHeader, fatal_offset))? as usize;
    let f = |name: usize| u64_at(&bytes, fatal_offset + name).unwrap_or(0);
    let fatal_state = f(offset_of!(FatalArea, state));
    if chunks.is_empty() && fatal_state == 0 && status == STATUS_EXITED {
        for segment in &segment_files {
            std::fs::remove_file(segment)?;
        }
        std::fs::remove_file(path)?;
        return Ok(RecoveryOutcome::Removed);
    }
    let program = text_at(
        &bytes,
        offset_of!(RingHeader, program_len),
        offset_of!(RingHeader, program),
        mapping::PROGRAM_CAP,
    );
    let host = text_at(
        &bytes,
        offset_of!(RingHeader, host_len),
        offset_of!(RingHeader, host),
        mapping::HOST_CAP,
    );
    let dump_dir = PathBuf::from(text_at(
        &bytes,
        offset_of!(RingHeader, dump_dir_len),
        offset_of!(RingHeader, dump_dir),
        mapping::DIR_CAP,
    ));

    // What the threads log says about each thread, for the crashing thread's name.
    let mut thread_names = BTreeMap::new();
    {
        let file = table_file(threads_log);
        let mut log = flight_recorder_format::TraceReader::new(file.as_slice())
            .map_err(|e| corrupt(&e.to_string()))?;
        while log.next_event().ok().flatten().is_some() {}
        for (id, info) in log.threads() {
            thread_names.insert(*id, (info.os_tid, info.name.clone()));
        }
    }

    let mut details = vec![
        ("recovered_from".to_string(), path.display().to_string()),
        ("pid".to_string(), pid.to_string()),
        ("program".to_string(), program.clone()),
    ];
    let mut stack_chunk = None;
    let ended = if fatal_state == 2 {
        let signal = f(offset_of!(FatalArea, signal));
        let last = f(offset_of!(FatalArea, last_signal));
        let address = f(offset_of!(FatalArea, address));
        let os_tid = f(offset_of!(FatalArea, os_tid));
        let thread = f(offset_of!(FatalArea, thread));
        let name = signal_name(signal);
        details.push(("signal".into(), name.clone()));
        details.push(("signal_number".into(), signal.to_string()));
        details.push(("si_code".into(), f(offset_of!(FatalArea, code)).to_string()));
        details.push(("fault_address".into(), format!("{address:#x}")));
        details.push(("os_tid".into(), os_tid.to_string()));
        details.push(("thread".into(), thread.to_string()));
        if let Some((_, thread_name)) = thread_names.get(&thread) {
            details.push(("thread_name".into(), thread_name.clone()));
        }
        if last != signal && last != 0 {
            details.push(("last_signal".into(), signal_name(last)));
        }
        let count = f(offset_of!(FatalArea, frame_count)).min(mapping::FATAL_FRAMES as u64);
        let frames: Vec<u64> = (0..count as usize)
            .map(|i| f(offset_of!(FatalArea, frames) + 8 * i))
            .collect();
        if thread != 0 && thread_names.contains_key(&thread) {
            stack_chunk = Some((thread, f(offset_of!(FatalArea, ticks)), frames));
        }
        let mut ended = format!("fatal signal {name} at address {address:#x} on thread {os_tid}");
        if last != signal && last != 0 {
            ended.push_str(&format!(", then {}", signal_name(last)));
        }
        ended
    } else if fatal_state == 1 {
        "fatal signal (its handler did not finish)".to_string()
    } else if status == STATUS_EXITED {
        "exited".to_string()
    } else {
        "killed without a catchable signal (SIGKILL, the OOM killer) or the handler was not \
         installed"
            .to_string()
    };
    details.push(("ended".into(), ended.clone()));
    if corrupt_chunks > 0 {
        details.push(("corrupt_chunks".into(), corrupt_chunks.to_string()));
    }
    if corrupt_segments > 0 {
        details.push(("corrupt_segments".into(), corrupt_segments.to_string()));
    }
    if !segment_files.is_empty() {
        details.push(("segments".into(), (segment_files.len() + 1).to_string()));
    }

    let latest = {
        let index = h(offset_of!(RingHeader, sample_index))? % 2;
        let at = offset_of!(RingHeader, samples) + index as usize * 24;
        ClockSample {
            ticks: h(at)?,
            monotonic_ns: h(at + 8)?,
            wall_ns: h(at + 16)?,
        }
    };
    let start_sample = offset_of!(RingHeader, start_sample);
    let unit_shift = h(offset_of!(RingHeader, unit_shift))?.min(32);
    let header = Header {
        mode: "flight-recorder".into(),
        reason: "recovered".into(),
        tag: "recovered".into(),
        program: program.clone(),
        pid,
        host,
        recorder_version: env!("CARGO_PKG_VERSION").to_string(),
        clock: ClockCalibration {
            source: if h(offset_of!(RingHeader, clock_source))? == 1 {
                "tsc".into()
            } else {
                "monotonic".into()
            },
            unit_shift: unit_shift as u8,
            start: ClockSample {
                ticks: h(start_sample)?,
                monotonic_ns: h(start_sample + 8)?,
                wall_ns: h(start_sample + 16)?,
            },
            end: latest,
        },
        min_age_ns: h(offset_of!(RingHeader, min_age_ns))?,
        max_bytes: h(offset_of!(RingHeader, max_bytes))?,
        chunk_size,
        details,
        // The ring does not keep the service: a program recovering its own ring names its own
        // service; any other file says none, and readers then name the program.
        service: if program == crate::file::process::process_info().program {
            crate::service_name()
        } else {
            String::new()
        },
        ..Header::default()
    };
    let dir = out_dir.map(Path::to_path_buf).unwrap_or(dump_dir);
    if dir.as_os_str().is_empty() {
        return Ok(RecoveryOutcome::Skipped(
            "no dump directory recorded; give one".into(),
        ));
    }
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let written = files::write_trace_file(&dir, now_ns, "recovered", |file| {
        let mut writer = TraceFileWriter::with_header(BufWriter::new(file), &header)?;
        writer.write_table(RecordType::Strings, strings)?;
        writer.write_table(RecordType::Locations, locations)?;
        writer.write_table(RecordType::Threads, threads_log)?;
        writer.write_table(RecordType::Modules, modules)?;
        for chunk in &chunks {
            writer.write_raw_chunk(chunk.thread, chunk.base_units, &chunk.events)?;
        }
        if let Some((thread, ticks, frames)) = &stack_chunk {
            let mut stack = Vec::new();
            tables::push_stack(1, frames, &mut stack);
            writer.write_table(RecordType::Stacks, &stack)?;
            let mut event = [0u8; 64];
            let n = flight_recorder_format::event::encode_event(
                EventKind::ThreadStack,
                0,
                &[*thread, 0, u64::from(!frames.is_empty()), 3],
                &[],
                &mut event,
            );
            writer.write_raw_chunk(*thread, ticks >> unit_shift, &event[..n])?;
        }
        let (_, bytes) = writer.finish()?;
        Ok(bytes)
    });
    let file = match written {
        Ok(file) => file,
        Err(e) => return Err(io::Error::other(Error::to_string(&e))),
    };
    for segment in &segment_files {
        std::fs::remove_file(segment)?;
    }
    std::fs::remove_file(path)?;
    Ok(RecoveryOutcome::Recovered {
        file,
        pid,
        program,
        ended,
        chunks: chunks.len(),
        corrupt_chunks,
    })
}

/// A minimal trace file holding just `threads` (a Threads table payload), for reading the
/// entries back with the format's reader.
fn table_file(threads: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let result = (|| -> io::Result<()> {
        let mut records = flight_recorder_format::RecordWriter::new(&mut out)?;
        records.write_record(RecordType::Header, &[&Header::default().encode()])?;
        if !threads.is_empty() {
            records.write_record(RecordType::Threads, &[threads])?;
        }
        records.write_record(RecordType::End, &[&[0u8]])?;
        records.flush()
    })();
    debug_assert!(result.is_ok());
    out
}
