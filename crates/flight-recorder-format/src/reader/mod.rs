//! A streaming reader: records are read one at a time, events decoded one at a time, so memory
//! stays bounded by the largest record whatever the file's size.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::compact::{self, ChunkIds};
use crate::event::{EventKind, KindArgs, KindInfo, MAX_ARGS};
use crate::header::{Header, TimeConverter};
use crate::record::{
    RecordType, MAGIC, MAX_RECORD_LEN, PREAMBLE_LEN, VERSION_MAJOR, VERSION_MINOR,
};
use crate::tables::{unzigzag, EntryReader, Location, Module, SymbolFrame, ThreadInfo};
use crate::varint;

mod error;
mod raw;
#[cfg(test)]
mod tests;

pub use error::{Error, ErrorKind};
use raw::layout_of;
pub use raw::{RawChunk, RawEvent};
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

    /// The arguments by name, for an event of kind `A::KIND`: e.g.
    /// `let args::PollEnd { task, result } = event.args_as();` (arguments the event lacks are 0).
    #[inline(always)]
    pub fn args_as<A: KindArgs>(&self) -> A {
        debug_assert_eq!(self.kind_byte, A::KIND as u8);
        A::from_args(&self.args)
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
    /// A call stack: its id and its addresses, innermost first.
    Stack(u64, Vec<u64>),
    /// A module mapped in the process.
    Module(Module),
    /// An address and the functions it resolves to, innermost inlined function first.
    Symbol(u64, Vec<SymbolFrame>),
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
    stacks: HashMap<u64, Vec<u64>>,
    modules: BTreeMap<u64, Module>,
    symbols: HashMap<u64, Vec<SymbolFrame>>,
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
            TableEntry::Stack(id, frames) => {
                self.stacks.insert(id, frames);
            }
            TableEntry::Module(module) => {
                self.modules.insert(module.id, module);
            }
            TableEntry::Symbol(address, frames) => {
                self.symbols.insert(address, frames);
            }
        }
    }

    /// The call stack with this id: return addresses, innermost first.
    pub fn stack(&self, id: u64) -> Option<&[u64]> {
        self.stacks.get(&id).map(Vec::as_slice)
    }

    /// Every call stack, by id.
    pub fn stacks(&self) -> &HashMap<u64, Vec<u64>> {
        &self.stacks
    }

    /// The modules mapped in the recorded process, by id.
    pub fn modules(&self) -> &BTreeMap<u64, Module> {
        &self.modules
    }

    /// The module whose executable mapping holds `address`.
    pub fn module_of(&self, address: u64) -> Option<&Module> {
        self.modules.values().find(|m| m.contains(address))
    }

    /// What `address` resolves to, innermost inlined function first, when the file carries
    /// symbols for it.
    pub fn symbol(&self, address: u64) -> Option<&[SymbolFrame]> {
        self.symbols.get(&address).map(Vec::as_slice)
    }

    /// Every resolved address.
    pub fn symbols(&self) -> &HashMap<u64, Vec<SymbolFrame>> {
        &self.symbols
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
    /// The running ids of the compact encodings before the event at `pos`.
    ids: ChunkIds,
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
                stacks: HashMap::new(),
                modules: BTreeMap::new(),
                symbols: HashMap::new(),
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
        for c in compact::COMPACT {
            reader.names.kinds[usize::from(c.byte)] = Some(c.info());
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

    /// The names read so far, without a copy (stacks, modules and symbols included).
    pub fn tables(&self) -> &NameTables {
        &self.names
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
                    ids_at_start: self.chunk.ids,
                    ids: self.chunk.ids,
                    ids_pos: 0,
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
                        ids_at_start: ChunkIds::default(),
                        ids: ChunkIds::default(),
                        ids_pos: 0,
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
                *layout = layout_of(info);
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
            RecordType::Stacks => {
                while !entries.at_end() {
                    let id = entries.varint()?;
                    let count = entries.count(1)?;
                    let mut frames = Vec::with_capacity(count);
                    let mut address = 0u64;
                    for _ in 0..count {
                        address = address.wrapping_add(unzigzag(entries.varint()?) as u64);
                        frames.push(address);
                    }
                    self.absorb_entry(TableEntry::Stack(id, frames));
                }
            }
            RecordType::Modules => {
                while !entries.at_end() {
                    let module = Module {
                        id: entries.varint()?,
                        start: entries.varint()?,
                        end: entries.varint()?,
                        load_bias: entries.varint()?,
                        path: entries.text()?,
                        build_id: entries.bytes()?.to_vec(),
                    };
                    self.absorb_entry(TableEntry::Module(module));
                }
            }
            RecordType::Symbols => {
                while !entries.at_end() {
                    let address = entries.varint()?;
                    let count = entries.count(3)?;
                    let mut frames = Vec::with_capacity(count);
                    for _ in 0..count {
                        frames.push(SymbolFrame {
                            function: entries.text()?,
                            file: entries.text()?,
                            line: entries.small()?,
                        });
                    }
                    self.absorb_entry(TableEntry::Symbol(address, frames));
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
                self.chunk.ids = ChunkIds::default();
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
        let compact = compact::lookup(kind_byte).filter(|c| c.matches(arg_count, has_payload));
        let (kind_byte, args, arg_count) = match compact {
            Some(c) => (
                c.kind as u8,
                c.expand(&args, &mut chunk.ids),
                c.kind.arg_count() as u8,
            ),
            None => {
                chunk.ids.observe(kind_byte, &args, arg_count);
                (kind_byte, args, arg_count)
            }
        };
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
