//! Export to Perfetto's protobuf trace format (open in ui.perfetto.dev), with a small encoder of
//! our own: no protoc, no generated code.
//!
//! The file is a `Trace`: a sequence of `TracePacket`s, each field 1 of `Trace`. What it holds:
//!
//! - a `ClockSnapshot` that puts `REALTIME` and `BOOTTIME` (the default clock of timestamps) at
//!   the same instant: timestamps are Unix nanoseconds, so the UI can show real dates;
//! - a process track (`ProcessDescriptor`: pid, name, command line);
//! - a track per thread (`ThreadDescriptor`: pid, OS tid, name) with the polls as slices (named
//!   by the task's spawn location), regions as slices, wakes and spawns as instants, logs and
//!   marks as instants;
//! - a plain "tasks" track under the process and a track per polled task under it, with the
//!   task's polls;
//! - a "user tasks" track and a track per user task under it, with one slice for its life;
//! - a counter track per counter;
//! - flows (`flow_ids`, `terminating_flow_ids`, repeated `fixed64`) from each wake (or spawn)
//!   to the poll it caused.
//!
//! All packets are on one sequence (`trusted_packet_sequence_id` 1); the first sets
//! `SEQ_INCREMENTAL_STATE_CLEARED`, and event names are interned (`InternedData.event_names`) in
//! the packet that first uses them, flagged `SEQ_NEEDS_INCREMENTAL_STATE`. Repeated scalars are
//! not packed. Slices on each track nest (see [`crate::export`]).

use std::collections::HashMap;
use std::io::{self, Read, Write};

use flight_recorder_format::{Header, TraceReader};

use crate::export::{export, Arg, ExportError, Format, ResolvedFrame, SampleKind, Track};
use crate::merge::MergeOptions;

/// Protobuf wire encoding into a byte vector.
pub mod proto {
    /// Appends a base-128 varint.
    #[inline]
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// Appends a field key.
    #[inline]
    pub fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
        varint(out, u64::from(field) << 3 | u64::from(wire));
    }

    /// A varint field (int32, int64, uint32, uint64, enum, bool). Negative int32/int64 values
    /// are given as their two's complement `u64`.
    #[inline]
    pub fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
        key(out, field, 0);
        varint(out, v);
    }

    /// A fixed64 field.
    #[inline]
    pub fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
        key(out, field, 1);
        out.extend_from_slice(&v.to_le_bytes());
    }

    /// A double field.
    #[inline]
    pub fn double(out: &mut Vec<u8>, field: u32, v: f64) {
        fixed64(out, field, v.to_bits());
    }

    /// A length-delimited field (string, bytes, message).
    #[inline]
    pub fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
        key(out, field, 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }

    /// A nested message, written by `f` into `out` after its key and length (written in place:
    /// one length byte is reserved and the body moved when it needs more).
    #[inline]
    pub fn message(out: &mut Vec<u8>, field: u32, f: impl FnOnce(&mut Vec<u8>)) {
        key(out, field, 2);
        let at = out.len();
        out.push(0);
        f(out);
        let len = out.len() - at - 1;
        if len < 0x80 {
            out[at] = len as u8;
        } else {
            let mut prefix = Vec::with_capacity(10);
            varint(&mut prefix, len as u64);
            out.splice(at..at + 1, prefix);
        }
    }
}

use proto::{bytes, fixed64, message, uint};

/// Field numbers of the Perfetto protos used here.
mod field {
    pub const TRACE_PACKET: u32 = 1;
    // TracePacket
    pub const TIMESTAMP: u32 = 8;
    pub const CLOCK_SNAPSHOT: u32 = 6;
    pub const TRUSTED_PACKET_SEQUENCE_ID: u32 = 10;
    pub const TRACK_EVENT: u32 = 11;
    pub const INTERNED_DATA: u32 = 12;
    pub const SEQUENCE_FLAGS: u32 = 13;
    pub const TRACK_DESCRIPTOR: u32 = 60;
    // ClockSnapshot
    pub const CLOCKS: u32 = 1;
    pub const PRIMARY_TRACE_CLOCK: u32 = 2;
    pub const CLOCK_ID: u32 = 1;
    pub const CLOCK_TIMESTAMP: u32 = 2;
    // TrackDescriptor
    pub const UUID: u32 = 1;
    pub const NAME: u32 = 2;
    pub const PROCESS: u32 = 3;
    pub const THREAD: u32 = 4;
    pub const PARENT_UUID: u32 = 5;
    pub const COUNTER: u32 = 8;
    // ProcessDescriptor / ThreadDescriptor
    pub const PID: u32 = 1;
    pub const CMDLINE: u32 = 2;
    pub const PROCESS_NAME: u32 = 6;
    pub const TID: u32 = 2;
    pub const THREAD_NAME: u32 = 5;
    // TrackEvent
    pub const DEBUG_ANNOTATIONS: u32 = 4;
    pub const TYPE: u32 = 9;
    pub const NAME_IID: u32 = 10;
    pub const TRACK_UUID: u32 = 11;
    pub const CATEGORIES: u32 = 22;
    pub const COUNTER_VALUE: u32 = 30;
    pub const DOUBLE_COUNTER_VALUE: u32 = 44;
    pub const FLOW_IDS: u32 = 47;
    pub const TERMINATING_FLOW_IDS: u32 = 48;
    // DebugAnnotation
    pub const ANNOTATION_NAME: u32 = 10;
    pub const UINT_VALUE: u32 = 3;
    pub const STRING_VALUE: u32 = 6;
    // InternedData / EventName
    pub const EVENT_NAMES: u32 = 2;
    pub const IID: u32 = 1;
    pub const INTERNED_NAME: u32 = 2;
    // InternedData: profiling
    pub const FUNCTION_NAMES: u32 = 5;
    pub const FRAMES: u32 = 6;
    pub const CALLSTACKS: u32 = 7;
    pub const BUILD_IDS: u32 = 16;
    pub const MAPPING_PATHS: u32 = 17;
    pub const SOURCE_PATHS: u32 = 18;
    pub const MAPPINGS: u32 = 19;
    // InternedString
    pub const STR: u32 = 2;
    // Frame
    pub const FUNCTION_NAME_ID: u32 = 2;
    pub const MAPPING_ID: u32 = 3;
    pub const REL_PC: u32 = 4;
    pub const SOURCE_PATH_IID: u32 = 5;
    pub const LINE_NUMBER: u32 = 6;
    // Mapping
    pub const MAPPING_BUILD_ID: u32 = 2;
    pub const MAPPING_START: u32 = 4;
    pub const MAPPING_END: u32 = 5;
    pub const MAPPING_LOAD_BIAS: u32 = 6;
    pub const PATH_STRING_IDS: u32 = 7;
    // Callstack
    pub const FRAME_IDS: u32 = 2;
    // TracePacket.perf_sample, PerfSample
    pub const PERF_SAMPLE: u32 = 66;
    pub const SAMPLE_CPU: u32 = 1;
    pub const SAMPLE_PID: u32 = 2;
    pub const SAMPLE_TID: u32 = 3;
    pub const CALLSTACK_IID: u32 = 4;
    pub const CPU_MODE: u32 = 5;
}

/// The packet sequence of the stack samples: its own interning of frames and callstacks.
const SAMPLE_SEQUENCE: u64 = 2;
const MODE_USER: u64 = 2;

/// Interned ids of the samples' sequence, one table per kind of interned data.
#[derive(Default)]
struct SampleInterning {
    started: bool,
    strings: [HashMap<Vec<u8>, u64>; 4],
    mappings: HashMap<String, u64>,
    frames: HashMap<(u64, usize, String), u64>,
    callstacks: HashMap<Vec<u64>, u64>,
}

const FUNCTION_NAMES: usize = 0;
const BUILD_IDS: usize = 1;
const MAPPING_PATHS: usize = 2;
const SOURCE_PATHS: usize = 3;

impl SampleInterning {
    /// The id of `text` in table `t`, adding it to `data` (an `InternedData` body) when new.
    fn string(&mut self, t: usize, text: &[u8], data: &mut Vec<u8>) -> u64 {
        if let Some(&iid) = self.strings[t].get(text) {
            return iid;
        }
        let iid = self.strings[t].len() as u64 + 1;
        self.strings[t].insert(text.to_vec(), iid);
        let f = [
            field::FUNCTION_NAMES,
            field::BUILD_IDS,
            field::MAPPING_PATHS,
            field::SOURCE_PATHS,
        ][t];
        message(data, f, |m| {
            uint(m, field::IID, iid);
            bytes(m, field::STR, text);
        });
        iid
    }

    fn mapping(&mut self, frame: &ResolvedFrame, tables: &ModuleInfo, data: &mut Vec<u8>) -> u64 {
        let key = frame.module.clone().unwrap_or_default();
        if let Some(&iid) = self.mappings.get(&key) {
            return iid;
        }
        let (start, end, bias, build_id) =
            tables.get(&key).cloned().unwrap_or((0, 0, 0, Vec::new()));
        let build = (!build_id.is_empty()).then(|| self.string(BUILD_IDS, &build_id, data));
        let path = if key.is_empty() { "[unknown]" } else { &key };
        let parts: Vec<u64> = path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(|p| self.string(MAPPING_PATHS, p.as_bytes(), data))
            .collect();
        let iid = self.mappings.len() as u64 + 1;
        self.mappings.insert(key, iid);
        message(data, field::MAPPINGS, |m| {
            uint(m, field::IID, iid);
            if let Some(b) = build {
                uint(m, field::MAPPING_BUILD_ID, b);
            }
            uint(m, field::MAPPING_START, start);
            uint(m, field::MAPPING_END, end);
            uint(m, field::MAPPING_LOAD_BIAS, bias);
            for p in parts {
                uint(m, field::PATH_STRING_IDS, p);
            }
        });
        iid
    }
}

/// Modules by path: start, end, load bias, build id.
type ModuleInfo = HashMap<String, (u64, u64, u64, Vec<u8>)>;

const SEQUENCE: u64 = 1;
const SEQ_INCREMENTAL_STATE_CLEARED: u64 = 1;
const SEQ_NEEDS_INCREMENTAL_STATE: u64 = 2;
const SLICE_BEGIN: u64 = 1;
const SLICE_END: u64 = 2;
const INSTANT: u64 = 3;
const COUNTER: u64 = 4;
const CLOCK_REALTIME: u64 = 1;
const CLOCK_BOOTTIME: u64 = 6;

const PROCESS_UUID: u64 = 1;
const TASKS_UUID: u64 = 2;
const USER_TASKS_UUID: u64 = 3;

fn track_uuid(track: Track) -> u64 {
    // Distinct ranges per kind of track; ids are far below 2^56 in practice, and the top byte
    // keeps the kinds apart.
    let (tag, id) = match track {
        Track::Thread(id) => (1u64, id),
        Track::Task(uid) => (2, uid),
        Track::UserTask(id) => (3, id),
        Track::Counter(id) => (4, id),
    };
    tag << 56 | (id & ((1 << 56) - 1))
}

/// The Perfetto protobuf [`Format`].
pub struct Perfetto<W: Write> {
    out: W,
    packet: Vec<u8>,
    scratch: Vec<u8>,
    names: HashMap<String, u64>,
    pid: u64,
    first: bool,
    user_tasks_track: bool,
    samples: SampleInterning,
    modules: ModuleInfo,
}

impl<W: Write> Perfetto<W> {
    /// A writer of a Perfetto trace to `out` (buffer it).
    pub fn new(out: W) -> Perfetto<W> {
        Perfetto {
            out,
            packet: Vec::with_capacity(256),
            scratch: Vec::with_capacity(256),
            names: HashMap::new(),
            pid: 0,
            first: true,
            user_tasks_track: false,
            samples: SampleInterning::default(),
            modules: ModuleInfo::new(),
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Writes `self.packet` as one `TracePacket` (adding the sequence id) and clears it.
    fn flush_packet(&mut self) -> io::Result<()> {
        uint(
            &mut self.packet,
            field::TRUSTED_PACKET_SEQUENCE_ID,
            SEQUENCE,
        );
        if self.first {
            uint(
                &mut self.packet,
                field::SEQUENCE_FLAGS,
                SEQ_INCREMENTAL_STATE_CLEARED,
            );
            self.first = false;
        }
        self.scratch.clear();
        bytes(&mut self.scratch, field::TRACE_PACKET, &self.packet);
        self.packet.clear();
        self.out.write_all(&self.scratch)
    }

    fn descriptor(&mut self, f: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        message(&mut self.packet, field::TRACK_DESCRIPTOR, f);
        self.flush_packet()
    }

    /// The name's interned id, adding `InternedData` to the current packet for a new one.
    fn intern(&mut self, name: &str) -> u64 {
        if let Some(&iid) = self.names.get(name) {
            return iid;
        }
        let iid = self.names.len() as u64 + 1;
        self.names.insert(name.to_string(), iid);
        message(&mut self.packet, field::INTERNED_DATA, |d| {
            message(d, field::EVENT_NAMES, |n| {
                uint(n, field::IID, iid);
                bytes(n, field::INTERNED_NAME, name.as_bytes());
            })
        });
        iid
    }

    #[allow(clippy::too_many_arguments)]
    fn track_event(
        &mut self,
        track: Track,
        time: u64,
        kind: u64,
        name: Option<&str>,
        category: Option<&str>,
        args: &[(&str, Arg)],
        flows: (Option<u64>, Option<u64>),
        counter: Option<u64>,
    ) -> io::Result<()> {
        uint(&mut self.packet, field::TIMESTAMP, time);
        let iid = name.map(|n| self.intern(n));
        if iid.is_some() {
            uint(
                &mut self.packet,
                field::SEQUENCE_FLAGS,
                SEQ_NEEDS_INCREMENTAL_STATE,
            );
        }
        message(&mut self.packet, field::TRACK_EVENT, |e| {
            uint(e, field::TYPE, kind);
            uint(e, field::TRACK_UUID, track_uuid(track));
            if let Some(iid) = iid {
                uint(e, field::NAME_IID, iid);
            }
            if let Some(category) = category {
                bytes(e, field::CATEGORIES, category.as_bytes());
            }
            for (name, value) in args {
                message(e, field::DEBUG_ANNOTATIONS, |a| {
                    bytes(a, field::ANNOTATION_NAME, name.as_bytes());
                    match value {
                        Arg::Uint(v) => uint(a, field::UINT_VALUE, *v),
                        Arg::Text(t) => bytes(a, field::STRING_VALUE, t.as_bytes()),
                    }
                });
            }
            if let Some(value) = counter {
                match i64::try_from(value) {
                    Ok(v) => uint(e, field::COUNTER_VALUE, v as u64),
                    Err(_) => proto::double(e, field::DOUBLE_COUNTER_VALUE, value as f64),
                }
            }
            if let Some(flow) = flows.0 {
                fixed64(e, field::FLOW_IDS, flow);
            }
            if let Some(flow) = flows.1 {
                fixed64(e, field::TERMINATING_FLOW_IDS, flow);
            }
        });
        self.flush_packet()
    }
}

impl<W: Write> Format for Perfetto<W> {
    fn process(&mut self, header: &Header, start_ns: u64) -> io::Result<()> {
        self.pid = header.pid;
        message(&mut self.packet, field::CLOCK_SNAPSHOT, |c| {
            for clock in [CLOCK_REALTIME, CLOCK_BOOTTIME] {
                message(c, field::CLOCKS, |k| {
                    uint(k, field::CLOCK_ID, clock);
                    uint(k, field::CLOCK_TIMESTAMP, start_ns);
                });
            }
            uint(c, field::PRIMARY_TRACE_CLOCK, CLOCK_BOOTTIME);
        });
        self.flush_packet()?;
        let pid = self.pid;
        let name = if header.program.is_empty() {
            "traced process".to_string()
        } else {
            header.program.clone()
        };
        let cmdline = header.cmdline.clone();
        self.descriptor(|d| {
            uint(d, field::UUID, PROCESS_UUID);
            message(d, field::PROCESS, |p| {
                uint(p, field::PID, pid);
                bytes(p, field::PROCESS_NAME, name.as_bytes());
                for part in cmdline.split(' ').filter(|p| !p.is_empty()) {
                    bytes(p, field::CMDLINE, part.as_bytes());
                }
            });
        })?;
        self.descriptor(|d| {
            uint(d, field::UUID, TASKS_UUID);
            uint(d, field::PARENT_UUID, PROCESS_UUID);
            bytes(d, field::NAME, b"tasks");
        })
    }

    fn thread_track(&mut self, thread: u64, os_tid: u64, name: &str) -> io::Result<()> {
        let pid = self.pid;
        self.descriptor(|d| {
            uint(d, field::UUID, track_uuid(Track::Thread(thread)));
            message(d, field::THREAD, |t| {
                uint(t, field::PID, pid);
                uint(t, field::TID, os_tid);
                bytes(t, field::THREAD_NAME, name.as_bytes());
            });
        })
    }

    fn task_track(&mut self, uid: u64, label: &str) -> io::Result<()> {
        self.descriptor(|d| {
            uint(d, field::UUID, track_uuid(Track::Task(uid)));
            uint(d, field::PARENT_UUID, TASKS_UUID);
            bytes(d, field::NAME, label.as_bytes());
        })
    }

    fn user_task_track(&mut self, id: u64, label: &str) -> io::Result<()> {
        if !self.user_tasks_track {
            self.user_tasks_track = true;
            self.descriptor(|d| {
                uint(d, field::UUID, USER_TASKS_UUID);
                uint(d, field::PARENT_UUID, PROCESS_UUID);
                bytes(d, field::NAME, b"user tasks");
            })?;
        }
        self.descriptor(|d| {
            uint(d, field::UUID, track_uuid(Track::UserTask(id)));
            uint(d, field::PARENT_UUID, USER_TASKS_UUID);
            bytes(d, field::NAME, label.as_bytes());
        })
    }

    fn counter_track(&mut self, name_id: u64, name: &str) -> io::Result<()> {
        self.descriptor(|d| {
            uint(d, field::UUID, track_uuid(Track::Counter(name_id)));
            uint(d, field::PARENT_UUID, PROCESS_UUID);
            bytes(d, field::NAME, name.as_bytes());
            bytes(d, field::COUNTER, &[]);
        })
    }

    fn begin(
        &mut self,
        track: Track,
        time: u64,
        name: &str,
        category: &str,
        args: &[(&str, Arg)],
        terminating_flow: Option<u64>,
    ) -> io::Result<()> {
        self.track_event(
            track,
            time,
            SLICE_BEGIN,
            Some(name),
            Some(category),
            args,
            (None, terminating_flow),
            None,
        )
    }

    fn end(&mut self, track: Track, time: u64, _name: &str, _category: &str) -> io::Result<()> {
        self.track_event(track, time, SLICE_END, None, None, &[], (None, None), None)
    }

    fn instant(
        &mut self,
        track: Track,
        time: u64,
        name: &str,
        category: &str,
        args: &[(&str, Arg)],
        flow: Option<u64>,
    ) -> io::Result<()> {
        self.track_event(
            track,
            time,
            INSTANT,
            Some(name),
            Some(category),
            args,
            (flow, None),
            None,
        )
    }

    fn counter(&mut self, track: Track, time: u64, _name: &str, value: u64) -> io::Result<()> {
        self.track_event(
            track,
            time,
            COUNTER,
            None,
            None,
            &[],
            (None, None),
            Some(value),
        )
    }

    fn stack_sample(
        &mut self,
        _thread: u64,
        os_tid: u64,
        time: u64,
        frames: &[ResolvedFrame],
        _kind: SampleKind,
    ) -> io::Result<()> {
        let mut data = Vec::new();
        let i = &mut self.samples;
        // Perfetto frames, innermost first (one per function: inlined functions are frames of
        // their own at the same pc), then the callstack, outermost first.
        let mut ids = Vec::new();
        for f in frames {
            let mapping = i.mapping(f, &self.modules, &mut data);
            let functions: Vec<(String, String, u32)> = if f.functions.is_empty() {
                vec![(crate::summary::raw_frame_name(f), String::new(), 0)]
            } else {
                f.functions
                    .iter()
                    .map(|s| {
                        let name = if s.function.is_empty() {
                            crate::summary::raw_frame_name(f)
                        } else {
                            s.function.clone()
                        };
                        (name, s.file.clone(), s.line)
                    })
                    .collect()
            };
            for (j, (name, file, line)) in functions.into_iter().enumerate() {
                let key = (f.address, j, name);
                if let Some(&iid) = i.frames.get(&key) {
                    ids.push(iid);
                    continue;
                }
                let name_iid = i.string(FUNCTION_NAMES, key.2.as_bytes(), &mut data);
                let source = (!file.is_empty()).then(|| {
                    let short = crate::symbols::short_path(&file).into_owned();
                    i.string(SOURCE_PATHS, short.as_bytes(), &mut data)
                });
                let iid = i.frames.len() as u64 + 1;
                i.frames.insert(key, iid);
                message(&mut data, field::FRAMES, |m| {
                    uint(m, field::IID, iid);
                    uint(m, field::FUNCTION_NAME_ID, name_iid);
                    uint(m, field::MAPPING_ID, mapping);
                    uint(m, field::REL_PC, f.offset);
                    if let Some(source) = source {
                        uint(m, field::SOURCE_PATH_IID, source);
                        if line > 0 {
                            uint(m, field::LINE_NUMBER, u64::from(line));
                        }
                    }
                });
                ids.push(iid);
            }
        }
        ids.reverse();
        let callstack = match i.callstacks.get(&ids) {
            Some(&iid) => iid,
            None => {
                let iid = i.callstacks.len() as u64 + 1;
                message(&mut data, field::CALLSTACKS, |m| {
                    uint(m, field::IID, iid);
                    for &f in &ids {
                        uint(m, field::FRAME_IDS, f);
                    }
                });
                i.callstacks.insert(ids, iid);
                iid
            }
        };
        let pid = self.pid;
        let mut packet = Vec::new();
        uint(&mut packet, field::TIMESTAMP, time);
        if !data.is_empty() {
            bytes(&mut packet, field::INTERNED_DATA, &data);
        }
        message(&mut packet, field::PERF_SAMPLE, |p| {
            uint(p, field::SAMPLE_CPU, 0);
            uint(p, field::SAMPLE_PID, pid);
            uint(p, field::SAMPLE_TID, os_tid);
            uint(p, field::CALLSTACK_IID, callstack);
            uint(p, field::CPU_MODE, MODE_USER);
        });
        uint(
            &mut packet,
            field::TRUSTED_PACKET_SEQUENCE_ID,
            SAMPLE_SEQUENCE,
        );
        let flags = if i.started {
            SEQ_NEEDS_INCREMENTAL_STATE
        } else {
            i.started = true;
            SEQ_INCREMENTAL_STATE_CLEARED | SEQ_NEEDS_INCREMENTAL_STATE
        };
        uint(&mut packet, field::SEQUENCE_FLAGS, flags);
        self.scratch.clear();
        bytes(&mut self.scratch, field::TRACE_PACKET, &packet);
        self.out.write_all(&self.scratch)
    }

    fn set_modules(&mut self, modules: &[flight_recorder_format::Module]) {
        for m in modules {
            self.modules.insert(
                m.path.clone(),
                (m.start, m.end, m.load_bias, m.build_id.clone()),
            );
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Writes the rest of `reader`'s events to `out` as a Perfetto trace. A damaged trace gives
/// [`ExportError::Trace`] after its intact part was written (the output is a valid trace).
pub fn write_perfetto<R: Read, W: Write>(
    reader: TraceReader<R>,
    out: W,
    merge: MergeOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<W, ExportError> {
    export(reader, Perfetto::new(out), merge, progress).map(Perfetto::into_inner)
}

#[cfg(test)]
mod tests {
    use super::proto::*;

    #[test]
    fn wire_encoding() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        out.clear();
        uint(&mut out, 1, 150);
        assert_eq!(out, [0x08, 0x96, 0x01]);
        out.clear();
        bytes(&mut out, 2, b"testing");
        assert_eq!(out, [0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']);
        out.clear();
        fixed64(&mut out, 47, 1);
        assert_eq!(out, [0xf9, 0x02, 1, 0, 0, 0, 0, 0, 0, 0]);
        out.clear();
        let long = vec![7u8; 300];
        message(&mut out, 1, |m| bytes(m, 2, &long));
        let mut expected = vec![0x0a, 0xaf, 0x02, 0x12, 0xac, 0x02];
        expected.extend_from_slice(&long);
        assert_eq!(out, expected);
        out.clear();
        message(&mut out, 3, |m| uint(m, 1, 150));
        assert_eq!(out, [0x1a, 0x03, 0x08, 0x96, 0x01]);
    }
}
