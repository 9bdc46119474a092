//! The file's framing: magic, version, then records, each with its own checksum.
//!
//! ```text
//! file   := magic[8] major:u16le minor:u16le record*
//! record := type:u8 len:u32le payload[len] crc32:u32le
//! ```
//!
//! The CRC-32 (IEEE) covers the type byte, the length and the payload, so a torn or corrupt file
//! is detected at the first damaged record and everything before it stays readable.

use std::io::{self, Write};

/// The first eight bytes of every trace file.
pub const MAGIC: [u8; 8] = *b"FLTRECRD";

/// The format's major version: a reader refuses files of another major version.
pub const VERSION_MAJOR: u16 = 1;

/// The format's minor version: additions that older readers of the same major version can skip.
pub const VERSION_MINOR: u16 = 3;

/// Bytes before the first record: magic and version.
pub const PREAMBLE_LEN: usize = 12;

/// Bytes a record adds around its payload: type, length and checksum.
pub const RECORD_OVERHEAD: usize = 1 + 4 + 4;

/// The largest payload a record may declare; a larger length means a corrupt file.
pub const MAX_RECORD_LEN: u32 = 64 << 20;

/// The type of a record. The byte values are part of the file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    /// Process, clock, settings and reason: always the first record.
    Header = 1,
    /// The layout of the event kinds the file uses.
    Kinds = 2,
    /// Interned strings: `(id, len, bytes)*`.
    Strings = 3,
    /// Interned source locations: `(id, file len, file, line, column)*`.
    Locations = 4,
    /// Threads: `(id, os tid, name len, name)*`.
    Threads = 5,
    /// Events of one thread: `thread id, base time, events…`.
    Chunk = 6,
    /// Data the recorder had to drop: `chunks, bytes`.
    Dropped = 7,
    /// The file is complete: `chunk count`.
    End = 8,
    /// Call stacks that events refer to by id: `(id, frame count, first address, deltas…)*`.
    Stacks = 9,
    /// The modules (executable, shared libraries) mapped in the process, for symbolizing
    /// stacks: `(id, start, end, load bias, path, build id)*`.
    Modules = 10,
    /// Addresses resolved to functions, files and lines: `(address, frame count, frames…)*`.
    Symbols = 11,
}

impl RecordType {
    /// The record type with this byte, if this version defines it.
    pub fn from_byte(byte: u8) -> Option<RecordType> {
        Some(match byte {
            1 => RecordType::Header,
            2 => RecordType::Kinds,
            3 => RecordType::Strings,
            4 => RecordType::Locations,
            5 => RecordType::Threads,
            6 => RecordType::Chunk,
            7 => RecordType::Dropped,
            8 => RecordType::End,
            9 => RecordType::Stacks,
            10 => RecordType::Modules,
            11 => RecordType::Symbols,
            _ => return None,
        })
    }
}

/// Writes the framing of a trace file to any [`Write`], counting the bytes written.
#[derive(Debug)]
pub struct RecordWriter<W> {
    out: W,
    written: u64,
}

impl<W: Write> RecordWriter<W> {
    /// Writes the magic and version and returns the writer.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut preamble = [0u8; PREAMBLE_LEN];
        preamble[..8].copy_from_slice(&MAGIC);
        preamble[8..10].copy_from_slice(&VERSION_MAJOR.to_le_bytes());
        preamble[10..12].copy_from_slice(&VERSION_MINOR.to_le_bytes());
        out.write_all(&preamble)?;
        Ok(RecordWriter {
            out,
            written: PREAMBLE_LEN as u64,
        })
    }

    /// Writes one record whose payload is the concatenation of `parts` (so a chunk's events can
    /// be written straight from the recorder's buffer, after a small prefix, without a copy).
    pub fn write_record(&mut self, kind: RecordType, parts: &[&[u8]]) -> io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_RECORD_LEN)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
        let mut head = [0u8; 5];
        head[0] = kind as u8;
        head[1..].copy_from_slice(&len.to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        self.out.write_all(&head)?;
        for part in parts {
            crc.update(part);
            self.out.write_all(part)?;
        }
        self.out.write_all(&crc.finalize().to_le_bytes())?;
        self.written += RECORD_OVERHEAD as u64 + u64::from(len);
        Ok(())
    }

    /// Bytes written so far, preamble included.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}
