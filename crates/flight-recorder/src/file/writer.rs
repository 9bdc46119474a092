//! Writes trace files: the header, the event kinds and the process's modules first, then chunks,
//! each preceded by the table entries (strings, locations, stacks, threads) it may refer to that
//! the file does not have yet, then the end record.

use std::collections::HashSet;
use std::io::{self, Write};
use std::time::Duration;

use flight_recorder_format::record::{RecordType, RecordWriter};
use flight_recorder_format::{
    compact, tables, varint, ClockCalibration, EventKind, Header, KindInfo, Location, Module,
    ThreadInfo,
};

use crate::file::process::{process_info, service_name};
use crate::record::chunk::{ChunkView, CHUNK_SIZE};
use crate::record::clock;
use crate::record::intern;
use crate::record::stacks;

/// Why a file is written and with which settings, for its header.
pub(crate) struct FileMeta<'a> {
    pub mode: &'a str,
    pub reason: &'a str,
    pub tag: &'a str,
    pub min_age: Duration,
    pub max_bytes: u64,
}

/// Header fields beyond [`FileMeta`], for files written by automatic capture: the program's
/// version, what triggered the file, and how many triggered dumps were suppressed before it.
#[derive(Default)]
pub(crate) struct FileExtra<'a> {
    pub program_version: &'a str,
    pub details: &'a [(String, String)],
    pub suppressed_triggers: u64,
}

/// Writes the modules mapped in the process (paths, executable ranges, load biases, build ids),
/// so that the stacks of the file can be symbolized later, on any machine that has the binaries.
fn write_modules<W: Write>(records: &mut RecordWriter<W>) -> io::Result<()> {
    let payload = modules_table();
    if payload.is_empty() {
        return Ok(());
    }
    records.write_record(RecordType::Modules, &[&payload])
}

/// The Modules table entries of the process's loaded modules (empty under Miri, which cannot
/// call the dynamic loader).
pub(crate) fn modules_table() -> Vec<u8> {
    let mut payload = Vec::new();
    if cfg!(miri) {
        return payload;
    }
    for (module, id) in crate::stack::loaded_modules().iter().zip(1..) {
        let start = module.executable.iter().map(|r| r.0).min();
        let end = module.executable.iter().map(|r| r.1).max();
        let (Some(start), Some(end)) = (start, end) else {
            continue;
        };
        let entry = Module {
            id,
            start: start as u64,
            end: end as u64,
            load_bias: module.load_bias as u64,
            path: module.path.to_string_lossy().into_owned(),
            build_id: module.build_id.clone().unwrap_or_default(),
        };
        tables::push_module(&entry, &mut payload);
    }
    payload
}

/// A trace file being written.
pub(crate) struct TraceFileWriter<W: Write> {
    records: RecordWriter<W>,
    strings_written: u64,
    locations_written: u64,
    stacks_written: u64,
    threads_written: HashSet<u64>,
    chunks: u64,
    scratch: Vec<u8>,
}

impl<W: Write> TraceFileWriter<W> {
    /// Writes the preamble, the header and the event kinds.
    pub(crate) fn new(out: W, meta: &FileMeta<'_>) -> io::Result<Self> {
        Self::with_extra(out, meta, &FileExtra::default())
    }

    /// Like [`TraceFileWriter::new`], with the extra header fields.
    pub(crate) fn with_extra(
        out: W,
        meta: &FileMeta<'_>,
        extra: &FileExtra<'_>,
    ) -> io::Result<Self> {
        let mut records = RecordWriter::new(out)?;
        let calibration = clock::calibration();
        let process = process_info();
        let header = Header {
            mode: meta.mode.to_string(),
            reason: meta.reason.to_string(),
            tag: meta.tag.to_string(),
            program: process.program.clone(),
            pid: process.pid,
            host: process.host.clone(),
            cmdline: process.cmdline.clone(),
            recorder_version: env!("CARGO_PKG_VERSION").to_string(),
            clock: ClockCalibration {
                source: calibration.source.to_string(),
                unit_shift: calibration.unit_shift as u8,
                start: calibration.start,
                end: clock::sample(),
            },
            min_age_ns: meta.min_age.as_nanos().min(u128::from(u64::MAX)) as u64,
            max_bytes: meta.max_bytes,
            chunk_size: CHUNK_SIZE as u64,
            program_version: extra.program_version.to_string(),
            details: extra.details.to_vec(),
            suppressed_triggers: extra.suppressed_triggers,
            service: service_name(),
        };
        records.write_record(RecordType::Header, &[&header.encode()])?;
        let mut kinds = Vec::new();
        for &kind in EventKind::ALL {
            tables::push_kind(&KindInfo::from(kind), &mut kinds);
        }
        for c in compact::COMPACT {
            tables::push_kind(&c.info(), &mut kinds);
        }
        records.write_record(RecordType::Kinds, &[&kinds])?;
        write_modules(&mut records)?;
        Ok(TraceFileWriter {
            records,
            strings_written: 0,
            locations_written: 0,
            stacks_written: 0,
            threads_written: HashSet::new(),
            chunks: 0,
            scratch: Vec::new(),
        })
    }

    /// Writes the preamble, `header` as given (a file made from another process's data: a
    /// recovered ring) and the event kinds; no modules (the other process's are not known).
    pub(crate) fn with_header(out: W, header: &Header) -> io::Result<Self> {
        let mut records = RecordWriter::new(out)?;
        records.write_record(RecordType::Header, &[&header.encode()])?;
        let mut kinds = Vec::new();
        for &kind in EventKind::ALL {
            tables::push_kind(&KindInfo::from(kind), &mut kinds);
        }
        for c in compact::COMPACT {
            tables::push_kind(&c.info(), &mut kinds);
        }
        records.write_record(RecordType::Kinds, &[&kinds])?;
        Ok(TraceFileWriter {
            records,
            strings_written: 0,
            locations_written: 0,
            stacks_written: 0,
            threads_written: HashSet::new(),
            chunks: 0,
            scratch: Vec::new(),
        })
    }

    /// Writes a table record of already encoded entries (a recovered ring's logs).
    pub(crate) fn write_table(&mut self, kind: RecordType, entries: &[u8]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.records.write_record(kind, &[entries])
    }

    /// Writes one chunk of `thread` starting at `base_units` from its encoded events.
    pub(crate) fn write_raw_chunk(
        &mut self,
        thread: u64,
        base_units: u64,
        events: &[u8],
    ) -> io::Result<()> {
        let mut prefix = [0u8; 2 * varint::MAX_LEN];
        let mut n = varint::encode(thread, &mut prefix);
        n += varint::encode(base_units, &mut prefix[n..]);
        self.records
            .write_record(RecordType::Chunk, &[&prefix[..n], events])?;
        self.chunks += 1;
        Ok(())
    }

    /// Writes the interned strings and locations added since the last call.
    fn write_new_interned(&mut self) -> io::Result<()> {
        let strings = intern::strings_after(self.strings_written);
        if let Some(&(last, _)) = strings.last() {
            self.scratch.clear();
            for (id, text) in strings {
                tables::push_string(id, text, &mut self.scratch);
            }
            self.records
                .write_record(RecordType::Strings, &[&self.scratch])?;
            self.strings_written = last;
        }
        let locations = intern::locations_after(self.locations_written);
        if let Some(&(last, _)) = locations.last() {
            self.scratch.clear();
            for (id, location) in locations {
                let location = Location {
                    file: location.file().to_string(),
                    line: location.line(),
                    column: location.column(),
                };
                tables::push_location(id, &location, &mut self.scratch);
            }
            self.records
                .write_record(RecordType::Locations, &[&self.scratch])?;
            self.locations_written = last;
        }
        let new_stacks = stacks::stacks_after(self.stacks_written);
        if let Some((last, _)) = new_stacks.last() {
            let last = *last;
            self.scratch.clear();
            for (id, frames) in &new_stacks {
                tables::push_stack(*id, frames, &mut self.scratch);
            }
            self.records
                .write_record(RecordType::Stacks, &[&self.scratch])?;
            self.stacks_written = last;
        }
        Ok(())
    }

    /// Writes the descriptions of the threads of `views` not described yet, as `thread_info`
    /// gives them.
    fn write_new_threads<'a>(
        &mut self,
        views: impl IntoIterator<Item = &'a ChunkView>,
        thread_info: impl Fn(u64) -> Option<ThreadInfo>,
    ) -> io::Result<()> {
        self.scratch.clear();
        for view in views {
            let id = view.chunk.thread;
            if self.threads_written.insert(id) {
                let info = thread_info(id).unwrap_or(ThreadInfo {
                    id,
                    os_tid: 0,
                    name: String::new(),
                });
                tables::push_thread(&info, &mut self.scratch);
            }
        }
        if !self.scratch.is_empty() {
            self.records
                .write_record(RecordType::Threads, &[&self.scratch])?;
        }
        Ok(())
    }

    /// Writes chunks, with the table entries they need before them; `thread_info` describes their
    /// threads (the engine's thread table).
    pub(crate) fn write_chunks(
        &mut self,
        views: &[ChunkView],
        thread_info: impl Fn(u64) -> Option<ThreadInfo>,
    ) -> io::Result<()> {
        self.write_new_interned()?;
        self.write_new_threads(views, thread_info)?;
        for view in views {
            let mut prefix = [0u8; 2 * varint::MAX_LEN];
            let mut n = varint::encode(view.chunk.thread, &mut prefix);
            n += varint::encode(view.chunk.base_units, &mut prefix[n..]);
            let records = &mut self.records;
            view.chunk.with_prefix(view.len, |events| {
                records.write_record(RecordType::Chunk, &[&prefix[..n], events])
            })?;
            self.chunks += 1;
        }
        Ok(())
    }

    /// Flushes what was written so far to the writer.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.records.flush()
    }

    /// Records that data was lost.
    pub(crate) fn write_dropped(&mut self, chunks: u64, bytes: u64) -> io::Result<()> {
        let mut payload = Vec::new();
        varint::push(chunks, &mut payload);
        varint::push(bytes, &mut payload);
        self.records.write_record(RecordType::Dropped, &[&payload])
    }

    /// Writes the end record, flushes, and returns the writer and the file's size.
    pub(crate) fn finish(mut self) -> io::Result<(W, u64)> {
        let mut payload = Vec::new();
        varint::push(self.chunks, &mut payload);
        self.records.write_record(RecordType::End, &[&payload])?;
        self.records.flush()?;
        let bytes = self.records.bytes_written();
        Ok((self.records.into_inner(), bytes))
    }
}
