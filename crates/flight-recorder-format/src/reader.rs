//! A streaming reader: records are read one at a time, events decoded one at a time, so memory
//! stays bounded by the largest record whatever the file's size.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::event::{EventKind, KindInfo, MAX_ARGS};
use crate::header::{Header, TimeConverter};
use crate::record::{
    RecordType, MAGIC, MAX_RECORD_LEN, PREAMBLE_LEN, VERSION_MAJOR, VERSION_MINOR,
};
use crate::tables::{EntryReader, Location, ThreadInfo};
use crate::varint;

/// What went wrong while reading a trace file.
#[derive(Debug)]
pub enum ErrorKind {
    /// The operating system failed to read the file.
    Io(io::Error),
    /// The file does not start with the trace magic: it is not a trace file.
    BadMagic,
    /// The file was written by an incompatible version of the format.
    UnsupportedVersion {
        /// The file's major version.
        major: u16,
        /// The file's minor version.
        minor: u16,
    },
    /// The file ends in the middle of something.
    Truncated(&'static str),
    /// A record's checksum does not match its contents.
    Checksum,
    /// The contents are not valid for the format.
    Malformed(&'static str),
}

/// An error while reading a trace file, with the byte offset where it was found.
#[derive(Debug)]
pub struct Error {
    /// The byte offset in the file where the problem was found.
    pub offset: u64,
    /// What the problem is.
    pub kind: ErrorKind,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.offset;
        match &self.kind {
            ErrorKind::Io(e) => write!(f, "read error at byte {at}: {e}"),
            ErrorKind::BadMagic => write!(f, "not a flight-recorder trace (bad magic at byte {at})"),
            ErrorKind::UnsupportedVersion { major, minor } => write!(
                f,
                "unsupported trace format version {major}.{minor} (this reader reads {VERSION_MAJOR}.x)"
            ),
            ErrorKind::Truncated(what) => write!(f, "truncated trace at byte {at}: {what}"),
            ErrorKind::Checksum => write!(f, "corrupt trace at byte {at}: record checksum mismatch"),
            ErrorKind::Malformed(what) => write!(f, "corrupt trace at byte {at}: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// One decoded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When the event happened, nanoseconds since the Unix epoch (UTC).
    pub time_ns: u64,
    /// The thread that recorded it (an id of the threads table).
    pub thread: u64,
    /// The kind byte; see [`Event::kind`].
    pub kind_byte: u8,
    /// The arguments; only the first [`Event::arg_count`] are meaningful.
    pub args: [u64; MAX_ARGS],
    /// How many arguments the event has.
    pub arg_count: u8,
    /// The payload (a log message), empty for kinds without one.
    pub payload: Vec<u8>,
}

impl Event {
    /// The event's kind, if this version of the format knows it.
    pub fn kind(&self) -> Option<EventKind> {
        EventKind::from_byte(self.kind_byte)
    }

    /// The `i`-th argument, or 0 when the event has fewer.
    pub fn arg(&self, i: usize) -> u64 {
        if i < usize::from(self.arg_count) {
            self.args[i]
        } else {
            0
        }
    }
}

/// Data the recorder reported as dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Chunks of events lost.
    pub chunks: u64,
    /// Bytes of events lost.
    pub bytes: u64,
}

/// Reads a trace file record by record and event by event.
pub struct TraceReader<R> {
    input: R,
    offset: u64,
    converter: TimeConverter,
    /// The header and the tables absorbed so far.
    names: NameTables,
    dropped: Dropped,
    complete: bool,
    done: bool,
    chunks: u64,
    chunk_bytes: u64,
    record: Vec<u8>,
    chunk: Chunk,
    /// A buffer handed back by [`TraceReader::recycle_chunk`], for the next record.
    spare: Vec<u8>,
    /// The table entries absorbed since they were last taken, when asked to keep them.
    table_log: Option<Vec<TableEntry>>,
}

/// One entry of a table record, as the reader absorbed it: with [`NameTables::apply`], a copy of
/// the reader's names follows the reader (see [`TraceReader::log_table_entries`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableEntry {
    /// An event kind's layout and name.
    Kind(KindInfo),
    /// An interned string.
    String(u64, String),
    /// A source location.
    Location(u64, Location),
    /// A thread.
    Thread(ThreadInfo),
}

/// The names a trace defines (its header, event kinds, strings, source locations and threads),
/// copied from a [`TraceReader`] ([`TraceReader::name_tables`]) and kept up to date with the
/// entries it absorbs later ([`TraceReader::take_table_entries`]): for a consumer on another
/// thread that must see the names as they were at a given point of the file.
#[derive(Clone, Debug)]
pub struct NameTables {
    header: Header,
    kinds: Vec<Option<KindInfo>>,
    strings: HashMap<u64, String>,
    locations: HashMap<u64, Location>,
    threads: BTreeMap<u64, ThreadInfo>,
}

impl NameTables {
    /// Absorbs one entry, as the reader did.
    pub fn apply(&mut self, entry: TableEntry) {
        match entry {
            TableEntry::Kind(info) => {
                let byte = usize::from(info.byte);
                self.kinds[byte] = Some(info);
            }
            TableEntry::String(id, text) => {
                self.strings.insert(id, text);
            }
            TableEntry::Location(id, location) => {
                self.locations.insert(id, location);
            }
            TableEntry::Thread(info) => {
                self.threads.insert(info.id, info);
            }
        }
    }

    /// The file's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The interned string with this id.
    pub fn string(&self, id: u64) -> Option<&str> {
        self.strings.get(&id).map(String::as_str)
    }

    /// The source location with this id.
    pub fn location(&self, id: u64) -> Option<&Location> {
        self.locations.get(&id)
    }

    /// The threads, by id.
    pub fn threads(&self) -> &BTreeMap<u64, ThreadInfo> {
        &self.threads
    }

    /// The layout and name of an event kind.
    #[inline]
    pub fn kind_info(&self, byte: u8) -> Option<&KindInfo> {
        self.kinds[usize::from(byte)].as_ref()
    }
}

/// The chunk whose events are being decoded.
#[derive(Default)]
struct Chunk {
    data: Vec<u8>,
    pos: usize,
    thread: u64,
    units: u64,
    /// File offset of `data[0]`.
    offset: u64,
}

impl TraceReader<BufReader<File>> {
    /// Opens a trace file and reads its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let file = File::open(path).map_err(|e| Error {
            offset: 0,
            kind: ErrorKind::Io(e),
        })?;
        TraceReader::new(BufReader::with_capacity(256 << 10, file))
    }
}

impl<R: Read> TraceReader<R> {
    /// Reads the magic, version and header record from `input`.
    pub fn new(mut input: R) -> Result<Self, Error> {
        let mut preamble = [0u8; PREAMBLE_LEN];
        let got = read_up_to(&mut input, &mut preamble).map_err(|e| Error {
            offset: 0,
            kind: ErrorKind::Io(e),
        })?;
        if got < MAGIC.len() || preamble[..8] != MAGIC {
            if got < MAGIC.len() && preamble[..got] == MAGIC[..got] {
                return Err(Error {
                    offset: got as u64,
                    kind: ErrorKind::Truncated("file ends inside the magic"),
                });
            }
            return Err(Error {
                offset: 0,
                kind: ErrorKind::BadMagic,
            });
        }
        if got < PREAMBLE_LEN {
            return Err(Error {
                offset: got as u64,
                kind: ErrorKind::Truncated("file ends inside the version"),
            });
        }
        let major = u16::from_le_bytes([preamble[8], preamble[9]]);
        let minor = u16::from_le_bytes([preamble[10], preamble[11]]);
        if major != VERSION_MAJOR {
            return Err(Error {
                offset: 8,
                kind: ErrorKind::UnsupportedVersion { major, minor },
            });
        }
        let _ = VERSION_MINOR;
        let mut reader = TraceReader {
            input,
            offset: PREAMBLE_LEN as u64,
            converter: crate::header::ClockCalibration {
                source: String::new(),
                unit_shift: 0,
                start: Default::default(),
                end: Default::default(),
            }
            .converter(),
            names: NameTables {
                header: Header::decode(&[]).expect("an empty header decodes"),
                kinds: vec![None; 256],
                strings: HashMap::new(),
                locations: HashMap::new(),
                threads: BTreeMap::new(),
            },
            dropped: Dropped::default(),
            complete: false,
            done: false,
            chunks: 0,
            chunk_bytes: 0,
            record: Vec::new(),
            chunk: Chunk::default(),
            spare: Vec::new(),
            table_log: None,
        };
        for &kind in EventKind::ALL {
            reader.names.kinds[kind as usize] = Some(KindInfo::from(kind));
        }
        let start = reader.offset;
        match reader.read_record()? {
            Some(RecordType::Header) => {
                reader.names.header = Header::decode(&reader.record).map_err(|what| Error {
                    offset: start,
                    kind: ErrorKind::Malformed(what),
                })?;
                reader.converter = reader.names.header.clock.converter();
                Ok(reader)
            }
            Some(_) => Err(Error {
                offset: start,
                kind: ErrorKind::Malformed("the first record is not a header"),
            }),
            None => Err(Error {
                offset: start,
                kind: ErrorKind::Truncated("file ends before the header"),
            }),
        }
    }

    /// The file's header.
    pub fn header(&self) -> &Header {
        self.names.header()
    }

    /// A copy of the names read so far (header, kinds, strings, locations, threads).
    pub fn name_tables(&self) -> NameTables {
        self.names.clone()
    }

    /// From now on (`true`), keeps a copy of every table entry absorbed, in order, until taken
    /// with [`TraceReader::take_table_entries`]; `false` stops and drops them.
    pub fn log_table_entries(&mut self, on: bool) {
        self.table_log = on.then(Vec::new);
    }

    /// Whether table entries were absorbed since they were last taken (when kept).
    #[inline]
    pub fn has_table_entries(&self) -> bool {
        self.table_log.as_ref().is_some_and(|log| !log.is_empty())
    }

    /// The table entries absorbed since the last call, in order (when kept).
    pub fn take_table_entries(&mut self) -> Vec<TableEntry> {
        self.table_log
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The converter from stored time units to Unix nanoseconds.
    pub fn time_converter(&self) -> &TimeConverter {
        &self.converter
    }

    /// The interned string with this id, as far as the file has been read.
    pub fn string(&self, id: u64) -> Option<&str> {
        self.names.string(id)
    }

    /// The source location with this id, as far as the file has been read.
    pub fn location(&self, id: u64) -> Option<&Location> {
        self.names.location(id)
    }

    /// The threads described so far, by id.
    pub fn threads(&self) -> &BTreeMap<u64, ThreadInfo> {
        self.names.threads()
    }

    /// The layout and name of an event kind, as far as the file has been read.
    #[inline]
    pub fn kind_info(&self, byte: u8) -> Option<&KindInfo> {
        self.names.kind_info(byte)
    }

    /// Data the recorder reported as dropped, as far as the file has been read.
    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    /// Whether the end record has been read (the file is complete).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Bytes of the file read so far.
    pub fn bytes_read(&self) -> u64 {
        self.offset
    }

    /// Chunk records read so far and the event bytes they held.
    pub fn chunk_stats(&self) -> (u64, u64) {
        (self.chunks, self.chunk_bytes)
    }

    /// The next event in file order (events of one thread are in time order; threads' chunks
    /// are interleaved). `Ok(None)` at the end of a complete file; an error for a damaged one,
    /// after every intact event before the damage.
    pub fn next_event(&mut self) -> Result<Option<Event>, Error> {
        loop {
            if self.chunk.pos < self.chunk.data.len() {
                return self.decode_event().map(Some);
            }
            if self.done {
                return Ok(None);
            }
            let start = self.offset;
            match self.read_record() {
                Ok(Some(kind)) => self.absorb_record(kind, start)?,
                Ok(None) => {
                    self.done = true;
                    if !self.complete {
                        return Err(Error {
                            offset: self.offset,
                            kind: ErrorKind::Truncated("file ends without its end record"),
                        });
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
    }

    /// The next chunk's events, undecoded, in file order: for consumers that decode events in
    /// place ([`RawChunk::decode`]) rather than as an owned [`Event`] each. Tables, dropped and
    /// end records are absorbed on the way, as by [`TraceReader::next_event`]; if `next_event`
    /// returned part of a chunk, the rest of it comes first. `Ok(None)` at the end of a complete
    /// file; an error for a damaged record, after every chunk before it. The events inside the
    /// chunk are not checked: [`RawChunk::validate`] finds the first malformed one.
    pub fn next_raw_chunk(&mut self) -> Result<Option<RawChunk>, Error> {
        loop {
            if self.chunk.pos < self.chunk.data.len() {
                let start = self.chunk.pos;
                self.chunk.pos = 0;
                return Ok(Some(RawChunk {
                    thread: self.chunk.thread,
                    base_units: self.chunk.units,
                    offset: self.chunk.offset + start as u64,
                    data: std::mem::take(&mut self.chunk.data),
                    start,
                    layouts: self.layouts(),
                }));
            }
            if self.done {
                return Ok(None);
            }
            let start = self.offset;
            match self.read_record() {
                Ok(Some(RecordType::Chunk)) => {
                    let payload_offset = start + 5;
                    let prefix = {
                        let mut entries = EntryReader::new(&self.record);
                        let mut prefix = || -> Result<(u64, u64, usize), &'static str> {
                            let thread = entries.varint()?;
                            let units = entries.varint()?;
                            Ok((thread, units, entries.remaining()))
                        };
                        prefix()
                    };
                    let (thread, units, remaining) =
                        prefix.map_err(|what| self.fail(payload_offset, what))?;
                    let header_len = self.record.len() - remaining;
                    self.chunks += 1;
                    self.chunk_bytes += remaining as u64;
                    let data = std::mem::replace(&mut self.record, std::mem::take(&mut self.spare));
                    return Ok(Some(RawChunk {
                        thread,
                        base_units: units,
                        offset: payload_offset + header_len as u64,
                        data,
                        start: header_len,
                        layouts: self.layouts(),
                    }));
                }
                Ok(Some(kind)) => self.absorb_record(kind, start)?,
                Ok(None) => {
                    self.done = true;
                    if !self.complete {
                        return Err(Error {
                            offset: self.offset,
                            kind: ErrorKind::Truncated("file ends without its end record"),
                        });
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
    }

    /// Gives back a chunk's buffer, to be reused for a later record (saves an allocation).
    pub fn recycle_chunk(&mut self, chunk: RawChunk) {
        if chunk.data.capacity() > self.spare.capacity() {
            self.spare = chunk.data;
            self.spare.clear();
        }
    }

    /// The kinds' layouts as [`RawChunk`] keeps them.
    fn layouts(&self) -> [u8; 256] {
        let mut layouts = [0u8; 256];
        for (layout, info) in layouts.iter_mut().zip(&self.names.kinds) {
            if let Some(info) = info {
                *layout = LAYOUT_KNOWN | u8::from(info.has_payload) << 4 | info.arg_count;
            }
        }
        layouts
    }

    /// Reads the rest of the file and returns every event, or the first error.
    pub fn read_all_events(&mut self) -> Result<Vec<Event>, Error> {
        let mut events = Vec::new();
        while let Some(event) = self.next_event()? {
            events.push(event);
        }
        Ok(events)
    }

    fn fail(&mut self, offset: u64, what: &'static str) -> Error {
        self.done = true;
        self.chunk.data.clear();
        self.chunk.pos = 0;
        Error {
            offset,
            kind: ErrorKind::Malformed(what),
        }
    }

    fn absorb_record(&mut self, kind: RecordType, start: u64) -> Result<(), Error> {
        let payload_offset = start + 5;
        let record = std::mem::take(&mut self.record);
        let result = self.absorb_payload(kind, &record, payload_offset);
        self.record = record;
        result.map_err(|what| self.fail(payload_offset, what))
    }

    /// Adds a table entry to the names, and to the log of entries when one is kept.
    fn absorb_entry(&mut self, entry: TableEntry) {
        if let Some(log) = &mut self.table_log {
            log.push(entry.clone());
        }
        self.names.apply(entry);
    }

    fn absorb_payload(
        &mut self,
        kind: RecordType,
        payload: &[u8],
        payload_offset: u64,
    ) -> Result<(), &'static str> {
        let mut entries = EntryReader::new(payload);
        match kind {
            RecordType::Header => return Err("a second header record"),
            RecordType::Kinds => {
                while !entries.at_end() {
                    let byte = entries.byte()?;
                    let arg_count = entries.byte()?;
                    let has_payload = entries.byte()? != 0;
                    let name = entries.text()?;
                    if usize::from(arg_count) > MAX_ARGS {
                        return Err("event kind with too many arguments");
                    }
                    let info = KindInfo {
                        byte,
                        arg_count,
                        has_payload,
                        name,
                    };
                    self.absorb_entry(TableEntry::Kind(info));
                }
            }
            RecordType::Strings => {
                while !entries.at_end() {
                    let id = entries.varint()?;
                    let text = entries.text()?;
                    self.absorb_entry(TableEntry::String(id, text));
                }
            }
            RecordType::Locations => {
                while !entries.at_end() {
                    let id = entries.varint()?;
                    let file = entries.text()?;
                    let line = entries.small()?;
                    let column = entries.small()?;
                    let location = Location { file, line, column };
                    self.absorb_entry(TableEntry::Location(id, location));
                }
            }
            RecordType::Threads => {
                while !entries.at_end() {
                    let id = entries.varint()?;
                    let os_tid = entries.varint()?;
                    let name = entries.text()?;
                    self.absorb_entry(TableEntry::Thread(ThreadInfo { id, os_tid, name }));
                }
            }
            RecordType::Chunk => {
                let thread = entries.varint()?;
                let units = entries.varint()?;
                let header_len = payload.len() - entries.remaining();
                self.chunks += 1;
                self.chunk_bytes += entries.remaining() as u64;
                self.chunk.thread = thread;
                self.chunk.units = units;
                self.chunk.offset = payload_offset + header_len as u64;
                self.chunk.data.clear();
                self.chunk.data.extend_from_slice(&payload[header_len..]);
                self.chunk.pos = 0;
            }
            RecordType::Dropped => {
                self.dropped.chunks = self.dropped.chunks.saturating_add(entries.varint()?);
                self.dropped.bytes = self.dropped.bytes.saturating_add(entries.varint()?);
            }
            RecordType::End => {
                self.complete = true;
                self.done = true;
            }
        }
        Ok(())
    }

    fn decode_event(&mut self) -> Result<Event, Error> {
        let chunk = &mut self.chunk;
        let data = &chunk.data;
        let start = chunk.pos;
        let at = chunk.offset + start as u64;
        let kind_byte = data[start];
        let Some(info) = self.names.kinds[usize::from(kind_byte)].as_ref() else {
            return Err(self.fail(at, "unknown event kind"));
        };
        let arg_count = info.arg_count;
        let has_payload = info.has_payload;
        let mut pos = start + 1;
        let Some(delta) = varint::decode(data, &mut pos) else {
            return Err(self.fail(at, "event cut short"));
        };
        let mut args = [0u64; MAX_ARGS];
        for arg in args.iter_mut().take(usize::from(arg_count)) {
            match varint::decode(data, &mut pos) {
                Some(v) => *arg = v,
                None => return Err(self.fail(at, "event cut short")),
            }
        }
        let mut payload = Vec::new();
        if has_payload {
            let len = varint::decode(data, &mut pos)
                .and_then(|len| usize::try_from(len).ok())
                .and_then(|len| pos.checked_add(len))
                .filter(|&end| end <= data.len());
            let Some(end) = len else {
                return Err(self.fail(at, "event payload runs past its chunk"));
            };
            payload.extend_from_slice(&data[pos..end]);
            pos = end;
        }
        chunk.pos = pos;
        chunk.units = chunk.units.saturating_add(delta);
        Ok(Event {
            time_ns: self.converter.unix_ns(chunk.units),
            thread: chunk.thread,
            kind_byte,
            args,
            arg_count,
            payload,
        })
    }

    /// Reads the next record of a known type into `self.record`, skipping record types from
    /// later minor versions. `Ok(None)` at a clean end of input (between records).
    fn read_record(&mut self) -> Result<Option<RecordType>, Error> {
        loop {
            match self.read_raw_record()? {
                None => return Ok(None),
                Some(byte) => {
                    if let Some(kind) = RecordType::from_byte(byte) {
                        return Ok(Some(kind));
                    }
                }
            }
        }
    }

    /// Reads the next record into `self.record` and returns its type byte.
    fn read_raw_record(&mut self) -> Result<Option<u8>, Error> {
        let start = self.offset;
        let mut head = [0u8; 5];
        let got = read_up_to(&mut self.input, &mut head).map_err(|e| Error {
            offset: start,
            kind: ErrorKind::Io(e),
        })?;
        if got == 0 {
            return Ok(None);
        }
        if got < head.len() {
            return Err(Error {
                offset: start,
                kind: ErrorKind::Truncated("file ends inside a record header"),
            });
        }
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        if len > MAX_RECORD_LEN {
            return Err(Error {
                offset: start,
                kind: ErrorKind::Malformed("record length out of range"),
            });
        }
        self.record.clear();
        // Read through `take` so a corrupt length on a short file allocates only what is there.
        let got = (&mut self.input)
            .take(u64::from(len))
            .read_to_end(&mut self.record)
            .map_err(|e| Error {
                offset: start,
                kind: ErrorKind::Io(e),
            })?;
        if got < len as usize {
            return Err(Error {
                offset: start,
                kind: ErrorKind::Truncated("file ends inside a record"),
            });
        }
        let mut crc = [0u8; 4];
        let got = read_up_to(&mut self.input, &mut crc).map_err(|e| Error {
            offset: start,
            kind: ErrorKind::Io(e),
        })?;
        if got < crc.len() {
            return Err(Error {
                offset: start,
                kind: ErrorKind::Truncated("file ends inside a record checksum"),
            });
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&head);
        hasher.update(&self.record);
        if hasher.finalize() != u32::from_le_bytes(crc) {
            return Err(Error {
                offset: start,
                kind: ErrorKind::Checksum,
            });
        }
        self.offset = start + 9 + u64::from(len);
        Ok(Some(head[0]))
    }
}

/// [`varint::decode`], inline and branch-light for values of up to eight bytes when eight bytes
/// are at hand (any such encoding is valid); the rest goes to [`varint::decode`].
#[inline(always)]
fn fast_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let i = *pos;
    match data.get(i) {
        Some(&b) if b < 0x80 => {
            *pos = i + 1;
            return Some(u64::from(b));
        }
        None => return None,
        _ => {}
    }
    if let Some(bytes) = data.get(i..i + 8) {
        let word = u64::from_le_bytes(bytes.try_into().expect("eight bytes"));
        let ends = !word & 0x8080_8080_8080_8080;
        if ends != 0 {
            // The last byte's top bit is bit 8 × len − 1; the bits up to it are the varint's.
            let bits = ends.trailing_zeros() + 1;
            let word = word & (ends ^ ends.wrapping_sub(1));
            // Packs the 7-bit groups together.
            let w = word & 0x7f7f_7f7f_7f7f_7f7f;
            let w = (w & 0x007f_007f_007f_007f) | ((w & 0x7f00_7f00_7f00_7f00) >> 1);
            let w = (w & 0x0000_3fff_0000_3fff) | ((w & 0x3fff_0000_3fff_0000) >> 2);
            let w = (w & 0x0000_0000_0fff_ffff) | ((w & 0x0fff_ffff_0000_0000) >> 4);
            *pos = i + (bits / 8) as usize;
            return Some(w);
        }
    }
    varint::decode(data, pos)
}

/// Moves `*pos` past one varint (the checks of [`varint::decode`]).
#[inline(always)]
fn skip_varint(data: &[u8], pos: &mut usize) -> Option<()> {
    let i = *pos;
    if let Some(word) = data.get(i..i + 8) {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let ends = !word & 0x8080_8080_8080_8080;
        if ends != 0 {
            *pos = i + (ends.trailing_zeros() / 8) as usize + 1;
            return Some(());
        }
    }
    varint::decode(data, pos).map(|_| ())
}

/// A kind with a layout ([`RawChunk`]'s table: this bit, the payload bit, the argument count).
const LAYOUT_KNOWN: u8 = 0x80;
const LAYOUT_PAYLOAD: u8 = 0x10;
const LAYOUT_ARGS: u8 = 0x0f;

/// The undecoded events of one chunk ([`TraceReader::next_raw_chunk`]), with the kinds' layouts
/// as they were when the chunk was read.
#[derive(Clone, Debug)]
pub struct RawChunk {
    /// The thread that recorded the chunk.
    pub thread: u64,
    /// The time (stored units) before the first event: the chunk's base.
    pub base_units: u64,
    /// File offset of the first event byte.
    offset: u64,
    data: Vec<u8>,
    start: usize,
    layouts: [u8; 256],
}

/// One event decoded in place from a [`RawChunk`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// When, in stored units (convert with [`TraceReader::time_converter`]).
    pub units: u64,
    /// The kind byte.
    pub kind_byte: u8,
    /// How many arguments the event has.
    pub arg_count: u8,
    /// The arguments; only the first `arg_count` are meaningful, the others are 0.
    pub args: [u64; MAX_ARGS],
    /// Where the payload is in [`RawChunk::bytes`] (empty for kinds without one).
    pub payload: std::ops::Range<usize>,
}

impl RawChunk {
    /// A chunk of events laid out with the kinds of this version of the format (for tests and
    /// tools that build events in memory), at file offset 0.
    pub fn new(thread: u64, base_units: u64, events: Vec<u8>) -> RawChunk {
        let mut layouts = [0u8; 256];
        for &kind in EventKind::ALL {
            let info = KindInfo::from(kind);
            layouts[usize::from(info.byte)] =
                LAYOUT_KNOWN | u8::from(info.has_payload) << 4 | info.arg_count;
        }
        RawChunk {
            thread,
            base_units,
            offset: 0,
            data: events,
            start: 0,
            layouts,
        }
    }

    /// The event bytes.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start..]
    }

    /// File offset of the first event byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Decodes the event at `*pos` in [`RawChunk::bytes`]; `*units` is the time of the previous
    /// event (start with [`RawChunk::base_units`]). On success both move past the event; on a
    /// malformed event (the same cases and messages as [`TraceReader::next_event`]) neither
    /// moves.
    #[inline]
    pub fn decode(&self, pos: &mut usize, units: &mut u64) -> Result<RawEvent, &'static str> {
        let data = self.bytes();
        let start = *pos;
        let Some(&kind_byte) = data.get(start) else {
            return Err("event cut short");
        };
        let layout = self.layouts[usize::from(kind_byte)];
        if layout & LAYOUT_KNOWN == 0 {
            return Err("unknown event kind");
        }
        let arg_count = layout & LAYOUT_ARGS;
        let mut at = start + 1;
        let delta = fast_varint(data, &mut at).ok_or("event cut short")?;
        let mut args = [0u64; MAX_ARGS];
        for arg in args.iter_mut().take(usize::from(arg_count)) {
            *arg = fast_varint(data, &mut at).ok_or("event cut short")?;
        }
        let mut payload = at..at;
        if layout & LAYOUT_PAYLOAD != 0 {
            let end = fast_varint(data, &mut at)
                .and_then(|len| usize::try_from(len).ok())
                .and_then(|len| at.checked_add(len))
                .filter(|&end| end <= data.len())
                .ok_or("event payload runs past its chunk")?;
            payload = at..end;
            at = end;
        }
        *pos = at;
        *units = units.saturating_add(delta);
        Ok(RawEvent {
            units: *units,
            kind_byte,
            arg_count,
            args,
            payload,
        })
    }

    /// Moves `*pos` past the event there without decoding its values; fails (leaving `*pos`)
    /// exactly when [`RawChunk::decode`] would, with its message.
    #[inline]
    fn skip(&self, data: &[u8], pos: &mut usize) -> Result<(), &'static str> {
        let start = *pos;
        let layout = self.layouts[usize::from(data[start])];
        if layout & LAYOUT_KNOWN == 0 {
            return Err("unknown event kind");
        }
        let varints = layout & LAYOUT_ARGS;
        if layout & LAYOUT_PAYLOAD == 0 {
            // The whole event in the next eight bytes: the end of its last varint is the
            // (1 + arguments)-th byte without the top bit (every varint then fits and is valid).
            if let Some(bytes) = data.get(start + 1..start + 9) {
                let ends = !u64::from_le_bytes(bytes.try_into().expect("eight bytes"))
                    & 0x8080_8080_8080_8080;
                // Clears the ends of the first `varints` varints (at most MAX_ARGS + 1), without
                // a loop.
                let clear = |e: u64| e & e.wrapping_sub(1);
                let ends = match varints {
                    0 => ends,
                    1 => clear(ends),
                    2 => clear(clear(ends)),
                    3 => clear(clear(clear(ends))),
                    _ => {
                        let mut ends = clear(clear(clear(clear(ends))));
                        for _ in 4..varints {
                            ends = clear(ends);
                        }
                        ends
                    }
                };
                if ends != 0 {
                    *pos = start + 2 + (ends.trailing_zeros() / 8) as usize;
                    return Ok(());
                }
            }
        }
        let mut at = start + 1;
        for _ in 0..=varints {
            skip_varint(data, &mut at).ok_or("event cut short")?;
        }
        if layout & LAYOUT_PAYLOAD != 0 {
            at = varint::decode(data, &mut at)
                .and_then(|len| usize::try_from(len).ok())
                .and_then(|len| at.checked_add(len))
                .filter(|&end| end <= data.len())
                .ok_or("event payload runs past its chunk")?;
        }
        *pos = at;
        Ok(())
    }

    /// Checks the events as [`TraceReader::next_event`] would decode them: how many are intact
    /// before the first malformed one, how many bytes they take, and the error for the malformed
    /// one (with its file offset), if any.
    pub fn validate(&self) -> (usize, usize, Option<Error>) {
        let data = self.bytes();
        let mut pos = 0;
        let mut count = 0;
        while pos < data.len() {
            if let Err(what) = self.skip(data, &mut pos) {
                let error = Error {
                    offset: self.offset + pos as u64,
                    kind: ErrorKind::Malformed(what),
                };
                return (count, pos, Some(error));
            }
            count += 1;
        }
        (count, pos, None)
    }
}

impl<R: Read> Iterator for TraceReader<R> {
    type Item = Result<Event, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod raw_chunk_tests {
    use super::*;

    /// The example file of FORMAT.md, section 10.
    const EXAMPLE: &str = "464c54524543524401000000 010a000000 0105747261636505012a a29e0e9f \
        0508000000 01b960046d61696e 6032080e 060a000000 01e807 11002a 12642a01 d3ec8da4 \
        0801000000 01 e83af617";

    fn example() -> Vec<u8> {
        let hex: String = EXAMPLE.split_whitespace().collect();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn raw_chunks_decode_like_next_event() {
        let data = example();
        let events = TraceReader::new(&data[..])
            .unwrap()
            .read_all_events()
            .unwrap();
        assert_eq!(events.len(), 2);
        let mut reader = TraceReader::new(&data[..]).unwrap();
        let chunk = reader.next_raw_chunk().unwrap().unwrap();
        assert_eq!(chunk.validate().0, 2);
        assert!(chunk.validate().2.is_none());
        let (mut pos, mut units) = (0, chunk.base_units);
        for event in &events {
            let raw = chunk.decode(&mut pos, &mut units).unwrap();
            assert_eq!(reader.time_converter().unix_ns(raw.units), event.time_ns);
            assert_eq!(chunk.thread, event.thread);
            assert_eq!(raw.kind_byte, event.kind_byte);
            assert_eq!(raw.args, event.args);
            assert_eq!(&chunk.bytes()[raw.payload], &event.payload[..]);
        }
        assert_eq!(pos, chunk.bytes().len());
        reader.recycle_chunk(chunk);
        assert!(reader.next_raw_chunk().unwrap().is_none());
        assert!(reader.is_complete());
    }

    #[test]
    fn fast_varints_match_the_reference_decoder() {
        let mut values = vec![0u64, 1, 127, 128, 300, u64::MAX, u64::MAX >> 8, 1 << 56];
        for shift in 0..64 {
            values.push(1 << shift);
            values.push((1u64 << shift).wrapping_sub(1));
            values.push(0x5a5a_5a5a_5a5a_5a5a >> shift);
        }
        for value in values {
            let mut data = Vec::new();
            varint::push(value, &mut data);
            for pad in [0usize, 3, 12] {
                let mut padded = data.clone();
                padded.extend(std::iter::repeat_n(0xffu8, pad));
                let (mut a, mut b) = (0, 0);
                assert_eq!(
                    fast_varint(&padded, &mut a),
                    varint::decode(&padded, &mut b)
                );
                assert_eq!(a, b);
                let mut c = 0;
                assert!(skip_varint(&padded, &mut c).is_some());
                assert_eq!(c, b);
            }
        }
        // Padded and malformed encodings.
        for bytes in [
            &[0x80u8, 0x00][..],
            &[
                0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02, 0, 0,
            ],
            &[0xff; 12],
            &[0xff, 0xff],
        ] {
            let (mut a, mut b) = (0, 0);
            assert_eq!(fast_varint(bytes, &mut a), varint::decode(bytes, &mut b));
            assert_eq!(a, b);
            let mut c = 0;
            assert_eq!(
                skip_varint(bytes, &mut c).is_some(),
                varint::decode(bytes, &mut 0).is_some()
            );
        }
    }

    #[test]
    fn validate_agrees_with_decode() {
        // Pseudo-random bytes, mostly valid kinds: validate's count and end must be decode's.
        let mut x = 0x1234_5678_9abc_def0u64;
        for round in 0..2000 {
            let mut data = Vec::new();
            for _ in 0..(round % 40) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let b = x as u8;
                data.push(match b % 4 {
                    0 => [16, 17, 18, 19, 25, 5][(x >> 8) as usize % 6],
                    1 => b | 0x80,
                    _ => b & 0x7f,
                });
            }
            let chunk = RawChunk::new(1, 0, data);
            let (count, valid, error) = chunk.validate();
            let (mut pos, mut units, mut decoded) = (0, 0, 0);
            let mut failed = None;
            while pos < chunk.bytes().len() {
                match chunk.decode(&mut pos, &mut units) {
                    Ok(_) => decoded += 1,
                    Err(what) => {
                        failed = Some(what);
                        break;
                    }
                }
            }
            assert_eq!((count, valid), (decoded, pos));
            assert_eq!(
                error.map(|e| e.to_string()),
                failed.map(|what| format!("corrupt trace at byte {pos}: {what}"))
            );
        }
    }

    #[test]
    fn validate_finds_the_first_malformed_event() {
        // poll_start task 42, then an event of kind 0x7f (no layout).
        let chunk = RawChunk::new(1, 1000, vec![0x11, 0x00, 0x2a, 0x7f, 0x00]);
        let (count, valid, error) = chunk.validate();
        assert_eq!((count, valid), (1, 3));
        let error = error.unwrap();
        assert_eq!(error.offset, 3);
        assert_eq!(
            error.to_string(),
            "corrupt trace at byte 3: unknown event kind"
        );
        // Cut short inside the task id.
        let chunk = RawChunk::new(1, 1000, vec![0x11, 0x00, 0x80]);
        assert_eq!(chunk.validate().0, 0);
        assert!(chunk
            .validate()
            .2
            .unwrap()
            .to_string()
            .contains("event cut short"));
    }
}
