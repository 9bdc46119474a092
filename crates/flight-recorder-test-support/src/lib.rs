//! Builds trace files in memory from the format crate's public writer pieces, for tests.
//!
//! A dev-dependency of the format crate's integration tests and of the tests of the analysis
//! crate and the command-line tool, so that every test writes files the same way. Not published.

#[cfg(feature = "recorder")]
pub mod synthetic;

use std::cell::RefCell;
use std::io::{self, Write};
use std::rc::Rc;

use flight_recorder_format::event::{encode_event, MAX_EVENT_LEN};
use flight_recorder_format::{
    tables, varint, ClockCalibration, ClockSample, EventKind, Header, KindInfo, Location, Module,
    RecordType, RecordWriter, SymbolFrame, ThreadInfo,
};

/// Unix time of the calibration's first sample: 2026-11-22T02:35:36.000Z.
pub const ORIGIN_WALL_NS: u64 = 1_795_314_936_000_000_000;

/// Trace clock value of the calibration's first sample.
pub const ORIGIN_TICKS: u64 = 1_000_000;

/// A header whose clock is the monotonic clock in nanoseconds (one unit = one tick = 1 ns), so
/// that an event at `units` happened at `ORIGIN_WALL_NS + units - ORIGIN_TICKS`.
pub fn header() -> Header {
    Header {
        mode: "flight-recorder".into(),
        reason: "manual".into(),
        tag: "slow_request".into(),
        program: "demo".into(),
        pid: 4242,
        host: "box".into(),
        cmdline: "demo --flag".into(),
        recorder_version: "0.1.0".into(),
        clock: ClockCalibration {
            source: "monotonic".into(),
            unit_shift: 0,
            start: ClockSample {
                ticks: ORIGIN_TICKS,
                monotonic_ns: ORIGIN_TICKS,
                wall_ns: ORIGIN_WALL_NS,
            },
            end: ClockSample {
                ticks: ORIGIN_TICKS + 2_000_000_000,
                monotonic_ns: ORIGIN_TICKS + 2_000_000_000,
                wall_ns: ORIGIN_WALL_NS + 2_000_000_000,
            },
        },
        min_age_ns: 10_000_000_000,
        max_bytes: 10 << 20,
        chunk_size: 65536,
        ..Header::default()
    }
}

/// The Unix time of `units` under [`header`]'s calibration.
pub fn unix_ns(units: u64) -> u64 {
    ORIGIN_WALL_NS + units - ORIGIN_TICKS
}

/// One event to write: a kind byte, the time delta in units and its arguments and payload.
#[derive(Clone, Debug)]
pub struct Ev {
    /// The kind byte.
    pub kind: u8,
    /// Units since the previous event of the chunk (or the chunk's base time).
    pub delta: u64,
    /// The arguments, as many as the kind declares.
    pub args: Vec<u64>,
    /// The payload, for kinds that carry one.
    pub payload: Vec<u8>,
}

impl Ev {
    /// An event of a kind the format defines.
    pub fn new(kind: EventKind, delta: u64, args: &[u64]) -> Ev {
        Ev {
            kind: kind as u8,
            delta,
            args: args.to_vec(),
            payload: Vec::new(),
        }
    }

    /// A log event.
    pub fn log(delta: u64, category: u64, message: &str) -> Ev {
        Ev {
            kind: EventKind::Log as u8,
            delta,
            args: vec![category, 0],
            payload: message.as_bytes().to_vec(),
        }
    }

    /// Encodes the event: with [`encode_event`] for a kind the format defines, by hand (kind
    /// byte, varint delta, varint arguments, then the payload with a varint length if
    /// `has_payload`) for others.
    pub fn encode(&self, has_payload: bool, out: &mut Vec<u8>) {
        match EventKind::from_byte(self.kind) {
            Some(kind) if kind.arg_count() == self.args.len() => {
                let mut buf = vec![0u8; MAX_EVENT_LEN];
                let n = encode_event(kind, self.delta, &self.args, &self.payload, &mut buf);
                out.extend_from_slice(&buf[..n]);
            }
            _ => {
                out.push(self.kind);
                varint::push(self.delta, out);
                for &arg in &self.args {
                    varint::push(arg, out);
                }
                if has_payload {
                    varint::push(self.payload.len() as u64, out);
                    out.extend_from_slice(&self.payload);
                }
            }
        }
    }
}

/// Writes a trace file record by record into memory.
pub struct TraceBuilder {
    writer: RecordWriter<Shared>,
    bytes: Shared,
    chunks: u64,
    /// Kinds declared with [`TraceBuilder::kinds`] beyond the format's own.
    extra_kinds: Vec<KindInfo>,
}

impl TraceBuilder {
    /// Writes the preamble and the header record.
    pub fn new(header: &Header) -> TraceBuilder {
        let bytes = Shared::default();
        let mut writer = RecordWriter::new(bytes.clone()).unwrap();
        writer
            .write_record(RecordType::Header, &[&header.encode()])
            .unwrap();
        TraceBuilder {
            writer,
            bytes,
            chunks: 0,
            extra_kinds: Vec::new(),
        }
    }

    /// The file a recorder typically writes: [`header`], the kinds table of every kind the
    /// format defines, and the given strings, locations and threads.
    pub fn standard(
        strings: &[(u64, &str)],
        locations: &[(u64, &str, u32, u32)],
        threads: &[(u64, u64, &str)],
    ) -> TraceBuilder {
        let mut b = TraceBuilder::new(&header());
        let kinds: Vec<KindInfo> = EventKind::ALL.iter().map(|&k| KindInfo::from(k)).collect();
        b.kinds(&kinds).strings(strings).locations(locations);
        b.threads(threads);
        b
    }

    /// Writes a kinds table.
    pub fn kinds(&mut self, kinds: &[KindInfo]) -> &mut Self {
        let mut out = Vec::new();
        for kind in kinds {
            tables::push_kind(kind, &mut out);
            if EventKind::from_byte(kind.byte).is_none() {
                self.extra_kinds.push(kind.clone());
            }
        }
        self.record(RecordType::Kinds, &out)
    }

    /// Writes a strings table.
    pub fn strings(&mut self, strings: &[(u64, &str)]) -> &mut Self {
        let mut out = Vec::new();
        for &(id, text) in strings {
            tables::push_string(id, text, &mut out);
        }
        self.record(RecordType::Strings, &out)
    }

    /// Writes a locations table of `(id, file, line, column)`.
    pub fn locations(&mut self, locations: &[(u64, &str, u32, u32)]) -> &mut Self {
        let mut out = Vec::new();
        for &(id, file, line, column) in locations {
            let location = Location {
                file: file.into(),
                line,
                column,
            };
            tables::push_location(id, &location, &mut out);
        }
        self.record(RecordType::Locations, &out)
    }

    /// Writes a threads table of `(id, os tid, name)`.
    pub fn threads(&mut self, threads: &[(u64, u64, &str)]) -> &mut Self {
        let mut out = Vec::new();
        for &(id, os_tid, name) in threads {
            let thread = ThreadInfo {
                id,
                os_tid,
                name: name.into(),
            };
            tables::push_thread(&thread, &mut out);
        }
        self.record(RecordType::Threads, &out)
    }

    /// Writes a modules table.
    pub fn modules(&mut self, modules: &[Module]) -> &mut Self {
        let mut out = Vec::new();
        for m in modules {
            tables::push_module(m, &mut out);
        }
        self.record(RecordType::Modules, &out)
    }

    /// Writes a stacks table of `(id, addresses innermost first)`.
    pub fn stacks(&mut self, stacks: &[(u64, Vec<u64>)]) -> &mut Self {
        let mut out = Vec::new();
        for (id, frames) in stacks {
            tables::push_stack(*id, frames, &mut out);
        }
        self.record(RecordType::Stacks, &out)
    }

    /// Writes a symbols table of `(address, functions innermost first)`.
    pub fn symbols(&mut self, symbols: &[(u64, Vec<SymbolFrame>)]) -> &mut Self {
        let mut out = Vec::new();
        for (address, frames) in symbols {
            tables::push_symbol(*address, frames, &mut out);
        }
        self.record(RecordType::Symbols, &out)
    }

    /// Writes a chunk of `thread`'s events starting from `base` units.
    pub fn chunk(&mut self, thread: u64, base: u64, events: &[Ev]) -> &mut Self {
        let mut prefix = Vec::new();
        varint::push(thread, &mut prefix);
        varint::push(base, &mut prefix);
        let mut body = Vec::new();
        for ev in events {
            let has_payload = match EventKind::from_byte(ev.kind) {
                Some(kind) => kind.has_payload(),
                None => self
                    .extra_kinds
                    .iter()
                    .rev()
                    .find(|k| k.byte == ev.kind)
                    .is_some_and(|k| k.has_payload),
            };
            ev.encode(has_payload, &mut body);
        }
        self.writer
            .write_record(RecordType::Chunk, &[&prefix, &body])
            .unwrap();
        self.chunks += 1;
        self
    }

    /// Writes a dropped-data record.
    pub fn dropped(&mut self, chunks: u64, bytes: u64) -> &mut Self {
        let mut out = Vec::new();
        varint::push(chunks, &mut out);
        varint::push(bytes, &mut out);
        self.record(RecordType::Dropped, &out)
    }

    /// Writes a record of any type byte, framed by hand (type, length, payload, CRC-32 computed
    /// by [`crc32`], independently of the format crate).
    pub fn raw_record(&mut self, type_byte: u8, payload: &[u8]) -> &mut Self {
        self.bytes
            .0
            .borrow_mut()
            .extend_from_slice(&raw_record(type_byte, payload));
        self
    }

    fn record(&mut self, kind: RecordType, payload: &[u8]) -> &mut Self {
        self.writer.write_record(kind, &[payload]).unwrap();
        self
    }

    /// Writes the end record (with the number of chunks written) and returns the file.
    pub fn finish(mut self) -> Vec<u8> {
        let mut out = Vec::new();
        varint::push(self.chunks, &mut out);
        self.writer.write_record(RecordType::End, &[&out]).unwrap();
        self.unfinished()
    }

    /// Returns the file as written so far, without an end record.
    pub fn unfinished(self) -> Vec<u8> {
        drop(self.writer);
        self.bytes.0.take()
    }
}

/// The file's bytes, shared between the [`RecordWriter`] and [`TraceBuilder::raw_record`].
#[derive(Clone, Default)]
struct Shared(Rc<RefCell<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One record framed by hand: `type:u8 len:u32le payload crc32:u32le`.
pub fn raw_record(type_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![type_byte];
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), bit by bit.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The events a reader must return for a chunk of `thread` at `base` holding `events`, with
/// times under [`header`]'s calibration.
pub fn expected(thread: u64, base: u64, events: &[Ev]) -> Vec<flight_recorder_format::Event> {
    let mut units = base;
    events
        .iter()
        .map(|ev| {
            units += ev.delta;
            let mut args = [0u64; flight_recorder_format::event::MAX_ARGS];
            args[..ev.args.len()].copy_from_slice(&ev.args);
            flight_recorder_format::Event {
                time_ns: unix_ns(units),
                thread,
                kind_byte: ev.kind,
                args,
                arg_count: ev.args.len() as u8,
                payload: ev.payload.clone(),
            }
        })
        .collect()
}

/// Reads every event of `bytes`: the events before the first error, and that error.
pub fn read(
    bytes: &[u8],
) -> (
    Vec<flight_recorder_format::Event>,
    Option<flight_recorder_format::Error>,
) {
    let mut reader = match flight_recorder_format::TraceReader::new(bytes) {
        Ok(reader) => reader,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut events = Vec::new();
    loop {
        match reader.next_event() {
            Ok(Some(event)) => events.push(event),
            Ok(None) => return (events, None),
            Err(e) => {
                // Exactly one error: the reader is done afterwards.
                assert!(
                    matches!(reader.next_event(), Ok(None)),
                    "a second result after {e}"
                );
                return (events, Some(e));
            }
        }
    }
}
