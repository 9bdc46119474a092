//! Export to Perfetto's protobuf trace format (open in ui.perfetto.dev), with a small encoder of
//! our own: no protoc, no generated code.
//!
//! The file is a `Trace`: a sequence of `TracePacket`s, each field 1 of `Trace`. What it holds:
//!
//! - a `ClockSnapshot` that puts `REALTIME` and `BOOTTIME` (the trace's clock) at the same
//!   instant: times are Unix nanoseconds, so the UI can show real dates;
//! - a process track (`ProcessDescriptor`: pid, name, command line);
//! - a track per thread (`ThreadDescriptor`: pid, OS tid, name) with the polls as slices (named
//!   by the task's spawn location), regions as slices, wakes and spawns as instants, logs and
//!   marks as instants;
//! - a plain "tasks" track under the process, a track per spawn location under it (a group,
//!   named by the location) and a track per polled task in its location's group (`task <id>`),
//!   with the task's polls as slices named `poll` (the track and its group give the task and its
//!   location); the groups by name, the tasks in each in the order of their first poll;
//! - a "user tasks" track and a track per user task under it, with one slice for its life;
//! - a counter track per counter;
//! - flows (`flow_ids_old`, `terminating_flow_ids_old`: varints) from each wake (or spawn) to
//!   the poll it caused. An id serves again once its flow has ended (`flow_ids::FlowIds`), so
//!   ids stay as small as the number of wakes waiting for their poll at once.
//!
//! Most of the file is track events, so they are written small: about 23 to 30 bytes per event
//! of the trace (a poll is four track events, its begin and end on its thread's track and on its
//! task's, of 10 to 30 bytes each), which is about 4 bytes per byte of a trace of 7 bytes per
//! event, 6 to 12 per byte of the 2.6 to 3.7 bytes per event of a runtime's snapshot:
//!
//! - Packet sequences: the track descriptors are on none; sequence 1 holds the events of tracks
//!   of no thread (user tasks, counters); each thread's events go on a sequence of its own (3, 4, …),
//!   whose `TracePacketDefaults` name the thread's track (`TrackEventDefaults.track_uuid`), so
//!   they carry no track; a task's events go on the sequence of the thread that polls it. A
//!   thread's wakes and spawns go on a second sequence of its own, started at its first wake,
//!   with the same default track and their clock as default clock.
//!   (Sequence 2 holds the stack samples, with interned frames and callstacks.)
//! - Each sequence's first packet sets `SEQ_INCREMENTAL_STATE_CLEARED`, its defaults and its
//!   clocks. Its events do not set `SEQ_NEEDS_INCREMENTAL_STATE` (two bytes each, a twelfth of
//!   the file): that flag only lets a reader skip packets whose sequence lost its state, and a
//!   file written whole never does; the trace processor resolves interned data and defaults
//!   without it.
//! - Times are differences: the sequence's default clock is an incremental sequence-scoped
//!   clock (64, put at the first event's time by the sequence's `ClockSnapshot`), each time the
//!   difference from the previous one (a two's complement 64-bit number: an event earlier than
//!   the previous one takes ten bytes and stays right). Wake and spawn instants come out of time
//!   order (when the poll they caused begins), so they are on clock 65, not incremental, at 0 at
//!   the first event: nanoseconds since then (the default clock of the wake sequences).
//! - A wake's `waker` (a spawn's `parent`) is left out when the wake sits in a poll of the waker
//!   on its thread: that poll's slice, around the instant, names it (see [`crate::export`]).
//! - Event names, categories and debug annotation names are interned (`InternedData`
//!   `event_names`, `event_categories`, `debug_annotation_names`) in the packet that first uses
//!   them on the sequence.
//! - Track uuids are small numbers: twice the uid for task tracks, small odd numbers for the
//!   others.
//!
//! Repeated scalars are not packed. Slices on each track nest (see [`crate::export`]).

use std::collections::HashMap;
use std::io::{self, Read};
use std::mem::MaybeUninit;

use flight_recorder_format::{Header, TraceReader};

use crate::dense::DenseIds;
use crate::export::{
    export, Arg, ArgName, Category, ExportError, Format, Name, ResolvedFrame, SampleKind, Track,
};
use crate::flow_ids::FlowIds;
use crate::ids::IdMap;
use crate::merge::MergeOptions;
use crate::output::BlockOutput;

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
        out.push(0);
        let at = out.len();
        f(out);
        close(out, at);
    }

    /// Writes the length of a message whose body starts at `at`, in the byte reserved before
    /// it (the body is moved when its length needs more than one byte).
    #[inline]
    pub fn close(out: &mut Vec<u8>, at: usize) {
        let len = out.len() - at;
        if len < 0x80 {
            out[at - 1] = len as u8;
        } else {
            long_length(out, at, len);
        }
    }

    #[cold]
    #[inline(never)]
    fn long_length(out: &mut Vec<u8>, at: usize, len: usize) {
        let mut prefix = Vec::with_capacity(10);
        varint(&mut prefix, len as u64);
        out.splice(at - 1..at, prefix);
    }
}

use proto::{bytes, message, uint};

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
    pub const TIMESTAMP_CLOCK_ID: u32 = 58;
    pub const TRACE_PACKET_DEFAULTS: u32 = 59;
    // TracePacketDefaults
    pub const DEFAULT_TIMESTAMP_CLOCK_ID: u32 = 58;
    pub const TRACK_EVENT_DEFAULTS: u32 = 11;
    // ClockSnapshot
    pub const CLOCKS: u32 = 1;
    pub const PRIMARY_TRACE_CLOCK: u32 = 2;
    pub const CLOCK_ID: u32 = 1;
    pub const CLOCK_TIMESTAMP: u32 = 2;
    pub const CLOCK_IS_INCREMENTAL: u32 = 3;
    // TrackDescriptor
    pub const UUID: u32 = 1;
    pub const NAME: u32 = 2;
    pub const PROCESS: u32 = 3;
    pub const THREAD: u32 = 4;
    pub const PARENT_UUID: u32 = 5;
    pub const COUNTER: u32 = 8;
    pub const CHILD_ORDERING: u32 = 11;
    /// `ChildTracksOrdering.CHRONOLOGICAL`: children by their first event.
    pub const CHRONOLOGICAL: u64 = 2;
    // ProcessDescriptor / ThreadDescriptor
    pub const PID: u32 = 1;
    pub const CMDLINE: u32 = 2;
    pub const PROCESS_NAME: u32 = 6;
    pub const TID: u32 = 2;
    pub const THREAD_NAME: u32 = 5;
    // TrackEvent
    pub const CATEGORY_IIDS: u32 = 3;
    pub const DEBUG_ANNOTATIONS: u32 = 4;
    pub const TYPE: u32 = 9;
    pub const NAME_IID: u32 = 10;
    pub const TRACK_UUID: u32 = 11;
    pub const COUNTER_VALUE: u32 = 30;
    pub const DOUBLE_COUNTER_VALUE: u32 = 44;
    pub const FLOW_IDS_OLD: u32 = 36;
    pub const TERMINATING_FLOW_IDS_OLD: u32 = 42;
    // DebugAnnotation
    pub const ANNOTATION_NAME_IID: u32 = 1;
    pub const UINT_VALUE: u32 = 3;
    pub const STRING_VALUE: u32 = 6;
    // InternedData; EventCategory, EventName and DebugAnnotationName (iid, name)
    pub const EVENT_CATEGORIES: u32 = 1;
    pub const EVENT_NAMES: u32 = 2;
    pub const DEBUG_ANNOTATION_NAMES: u32 = 3;
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

/// The sequence of the events on tracks of no thread (user tasks, counters; the track
/// descriptors are on no sequence); each thread's events are on a sequence of its own, and its
/// wakes and spawns on a second one, numbered from `FIRST_THREAD_SEQUENCE` in order of first use.
const MAIN_SEQUENCE: u64 = 1;
const FIRST_THREAD_SEQUENCE: u64 = 3;
const SEQ_INCREMENTAL_STATE_CLEARED: u64 = 1;
const SLICE_BEGIN: u64 = 1;
const SLICE_END: u64 = 2;
const INSTANT: u64 = 3;
const COUNTER: u64 = 4;
const CLOCK_REALTIME: u64 = 1;
const CLOCK_BOOTTIME: u64 = 6;
/// The sequence's clock of its track events (the default of its packets): incremental, each
/// timestamp the difference from the previous one on this clock.
const CLOCK_EVENTS: u64 = 64;
/// The clock of wake and spawn instants, which come out of time order (when the poll they caused
/// begins, so that differences would often be negative, ten bytes): not incremental, nanoseconds
/// since the first event (five bytes for a trace of up to 34 s). The default of a thread's wake
/// sequence.
const CLOCK_WAKES: u64 = 65;

/// Track uuids. Task tracks, by far the most, take the even numbers (`2 × uid`), so that
/// their uuids stay short varints; the others are odd: `8 × n + 1` for the process, the "tasks"
/// and the "user tasks" tracks (n = 0, 1, 2) and the spawn locations' groups of tasks (n = 3,
/// 4, …), `8 × index + 3` for threads, `+ 5` for user tasks and `+ 7` for counters, numbered in
/// order of first use.
const PROCESS_UUID: u64 = 1;
const TASKS_UUID: u64 = 9;
const USER_TASKS_UUID: u64 = 17;

/// The uuid of the group of tasks of the spawn location numbered `n` in order of first use.
fn location_uuid(n: usize) -> u64 {
    (n as u64 + 3) * 8 + 1
}

/// The uuid of the track of the thread of index `index`.
fn thread_uuid(index: usize) -> u64 {
    index as u64 * 8 + 3
}

/// Packets are gathered in a buffer and handed to the output as one block when it holds this
/// much: few enough hand-offs to a [`WriteBehind`](crate::output::WriteBehind) thread, few
/// enough system calls to a plain file.
const FLUSH_AT: usize = 1 << 20;

/// A `TracePacket` of at most 128 bytes (its key and its one-byte length included) written
/// straight into the spare capacity of the output buffer, with nested messages of at most 127
/// bytes. A track event with at most two numeric arguments takes at most 113: the packet's key
/// and length 2, the timestamp 11 and its clock 3, the event's key and length 2, type 2, track
/// 11, category 2, name 6, two arguments of 15, a counter 12 or flows 2 × 12, and the sequence
/// id 11.
struct Small<'a> {
    /// Bytes below `n` are written.
    b: &'a mut [MaybeUninit<u8>; 128],
    n: usize,
}

impl<'a> Small<'a> {
    /// A packet at the end of `buf` (which must have 128 bytes of spare capacity).
    #[inline(always)]
    fn new(buf: &'a mut Vec<u8>) -> Small<'a> {
        let spare = &mut buf.spare_capacity_mut()[..128];
        let b: &mut [MaybeUninit<u8>; 128] = spare.try_into().expect("128 bytes reserved");
        b[0].write((field::TRACE_PACKET << 3 | 2) as u8);
        b[1].write(0);
        Small { b, n: 2 }
    }

    #[inline(always)]
    fn push(&mut self, byte: u8) {
        self.b[self.n].write(byte);
        self.n += 1;
    }

    #[inline(always)]
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.push(v as u8);
    }

    #[inline(always)]
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    #[inline(always)]
    fn uint(&mut self, field: u32, v: u64) {
        self.key(field, 0);
        self.varint(v);
    }

    /// Starts a nested message: returns where its body starts.
    #[inline(always)]
    fn open(&mut self, field: u32) -> usize {
        self.key(field, 2);
        self.push(0);
        self.n
    }

    #[inline(always)]
    fn close(&mut self, at: usize) {
        self.b[at - 1].write((self.n - at) as u8);
    }

    /// Ends the packet (writes its length) and returns its size.
    #[inline(always)]
    fn finish(mut self) -> usize {
        self.close(2);
        self.n
    }
}

/// A packet sequence's incremental state.
struct Sequence {
    id: u64,
    /// Whether its packets' default clock is [`CLOCK_WAKES`] (a thread's wakes and spawns), not
    /// [`CLOCK_EVENTS`].
    wakes: bool,
    /// The last timestamp written on its incremental clock.
    last_time: u64,
    /// Event names interned so far, by [`Name::id`].
    names: Vec<bool>,
    /// Categories and debug annotation names interned so far (a bit per index).
    categories: u32,
    arg_names: u32,
}

/// The Perfetto protobuf [`Format`].
pub struct Perfetto<W: BlockOutput> {
    out: W,
    /// Whole packets not yet written out.
    buf: Vec<u8>,
    pid: u64,
    start_ns: u64,
    /// The main sequence, then the threads' and their wakes' in order of first use.
    sequences: Vec<Sequence>,
    /// By thread index ([`Perfetto::threads`]): its sequence (an index in `sequences`), and that
    /// of its wakes and spawns once it woke a task.
    thread_sequences: Vec<(usize, Option<usize>)>,
    /// The sequence of the last event on a thread's track: task tracks' events go there.
    current: usize,
    threads: DenseIds,
    user_tasks: IdMap<u64>,
    counters: IdMap<u64>,
    /// By the number of a spawn location's name ([`Name::id`]): the uuid of its group of tasks,
    /// 0 until its first task.
    locations: Vec<u64>,
    /// The groups of tasks made so far.
    location_groups: usize,
    user_tasks_track: bool,
    samples: SampleInterning,
    modules: ModuleInfo,
    flows: FlowIds,
}

impl<W: BlockOutput> Perfetto<W> {
    /// A writer of a Perfetto trace to `out`.
    pub fn new(out: W) -> Perfetto<W> {
        Perfetto {
            out,
            buf: Vec::with_capacity(FLUSH_AT + (4 << 10)),
            pid: 0,
            start_ns: 0,
            sequences: Vec::new(),
            thread_sequences: Vec::new(),
            current: 0,
            threads: DenseIds::default(),
            user_tasks: IdMap::default(),
            counters: IdMap::default(),
            locations: Vec::new(),
            location_groups: 0,
            user_tasks_track: false,
            samples: SampleInterning::default(),
            modules: ModuleInfo::new(),
            flows: FlowIds::default(),
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn track_uuid(&mut self, track: Track) -> u64 {
        match track {
            Track::Task(uid) => uid.wrapping_mul(2),
            Track::Thread(id) => thread_uuid(self.threads.index(id).0),
            Track::UserTask(id) => {
                let n = self.user_tasks.len() as u64;
                *self.user_tasks.entry(id).or_insert(n) * 8 + 5
            }
            Track::Counter(id) => {
                let n = self.counters.len() as u64;
                *self.counters.entry(id).or_insert(n) * 8 + 7
            }
        }
    }

    /// The uuid of the group of tasks spawned at `location`, under the "tasks" track: its
    /// descriptor is written at the first call.
    fn location_group(&mut self, location: Name<'_>) -> io::Result<u64> {
        let index = location.id as usize;
        if let Some(&uuid) = self.locations.get(index).filter(|&&uuid| uuid != 0) {
            return Ok(uuid);
        }
        let uuid = location_uuid(self.location_groups);
        self.location_groups += 1;
        if index >= self.locations.len() {
            self.locations.resize(index + 1, 0);
        }
        self.locations[index] = uuid;
        self.descriptor(|d| {
            uint(d, field::UUID, uuid);
            uint(d, field::PARENT_UUID, TASKS_UUID);
            bytes(d, field::NAME, location.text.as_bytes());
            // Its tasks in the order of their first poll (by name, `task 10` would come before
            // `task 9`). The groups themselves, which hold no events, go by name.
            uint(d, field::CHILD_ORDERING, field::CHRONOLOGICAL);
        })?;
        Ok(uuid)
    }

    /// Starts a `TracePacket` in the buffer: returns where its length goes.
    #[inline]
    fn open_packet(&mut self) -> usize {
        self.buf.push((field::TRACE_PACKET << 3 | 2) as u8);
        self.buf.push(0);
        self.buf.len()
    }

    /// Ends the packet opened at `at` (adding the sequence id and flags) and writes the buffer
    /// out when it is full.
    #[inline]
    /// A packet of no sequence (`sequence` 0) depends on no incremental state.
    fn close_packet(&mut self, at: usize, sequence: u64, flags: u64) -> io::Result<()> {
        if sequence != 0 {
            uint(&mut self.buf, field::TRUSTED_PACKET_SEQUENCE_ID, sequence);
        }
        if flags != 0 {
            uint(&mut self.buf, field::SEQUENCE_FLAGS, flags);
        }
        proto::close(&mut self.buf, at);
        if self.buf.len() >= FLUSH_AT {
            self.out.write_block(&mut self.buf)?;
        }
        Ok(())
    }

    /// [`Perfetto::track_event`] for the common case, no new interned data and at most two
    /// arguments, all numbers: built on the stack in a [`Small`] packet.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn small_track_event(
        &mut self,
        seq: usize,
        uuid: Option<u64>,
        time: u64,
        kind: u64,
        name: Option<Name<'_>>,
        category: Option<Category>,
        args: &[(ArgName, Arg<'_>)],
        flows: (Option<u64>, Option<u64>),
        counter: Option<u64>,
    ) -> io::Result<()> {
        let sequence = &mut self.sequences[seq];
        self.buf.reserve(128);
        let mut p = Small::new(&mut self.buf);
        if sequence.wakes || matches!(category, Some(Category::Wake | Category::Spawn)) {
            p.uint(field::TIMESTAMP, time.wrapping_sub(self.start_ns));
            if !sequence.wakes {
                p.uint(field::TIMESTAMP_CLOCK_ID, CLOCK_WAKES);
            }
        } else {
            p.uint(field::TIMESTAMP, time.wrapping_sub(sequence.last_time));
            sequence.last_time = time;
        }
        let event = p.open(field::TRACK_EVENT);
        p.uint(field::TYPE, kind);
        if let Some(uuid) = uuid {
            p.uint(field::TRACK_UUID, uuid);
        }
        if let Some(c) = category {
            p.uint(field::CATEGORY_IIDS, c.index() as u64 + 1);
        }
        if let Some(n) = name {
            p.uint(field::NAME_IID, u64::from(n.id) + 1);
        }
        for (name, value) in args {
            if let Arg::Uint(v) = value {
                let a = p.open(field::DEBUG_ANNOTATIONS);
                p.uint(field::ANNOTATION_NAME_IID, name.index() as u64 + 1);
                p.uint(field::UINT_VALUE, *v);
                p.close(a);
            }
        }
        if let Some(value) = counter {
            match i64::try_from(value) {
                Ok(v) => p.uint(field::COUNTER_VALUE, v as u64),
                Err(_) => {
                    p.key(field::DOUBLE_COUNTER_VALUE, 1);
                    for b in (value as f64).to_bits().to_le_bytes() {
                        p.push(b);
                    }
                }
            }
        }
        if let Some(flow) = flows.0 {
            p.uint(field::FLOW_IDS_OLD, flow);
        }
        if let Some(flow) = flows.1 {
            p.uint(field::TERMINATING_FLOW_IDS_OLD, flow);
        }
        p.close(event);
        p.uint(field::TRUSTED_PACKET_SEQUENCE_ID, sequence.id);
        let n = p.finish();
        // SAFETY: `Small` wrote every byte below `n` of the spare capacity (`push` writes each
        // byte in turn, `close` rewrites one already pushed), and `n` is at most 128, within
        // the capacity reserved.
        unsafe { self.buf.set_len(self.buf.len() + n) };
        if self.buf.len() >= FLUSH_AT {
            self.out.write_block(&mut self.buf)?;
        }
        Ok(())
    }

    fn descriptor(&mut self, f: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        let at = self.open_packet();
        message(&mut self.buf, field::TRACK_DESCRIPTOR, f);
        // On no sequence: a descriptor needs no incremental state.
        self.close_packet(at, 0, 0)
    }

    /// Starts sequence `id` (the next in `sequences`, returned): clears its state, sets its
    /// defaults (its events' clock, [`CLOCK_WAKES`] if `wakes` and [`CLOCK_EVENTS`] if not, and
    /// `track`, when given, as their track) and its clocks, all at the start of the trace.
    fn start_sequence(
        &mut self,
        id: u64,
        track: Option<u64>,
        realtime: bool,
        wakes: bool,
    ) -> io::Result<usize> {
        let start_ns = self.start_ns;
        self.sequences.push(Sequence {
            id,
            wakes,
            last_time: start_ns,
            names: Vec::new(),
            categories: 0,
            arg_names: 0,
        });
        let at = self.open_packet();
        let clock = if wakes { CLOCK_WAKES } else { CLOCK_EVENTS };
        message(&mut self.buf, field::TRACE_PACKET_DEFAULTS, |d| {
            uint(d, field::DEFAULT_TIMESTAMP_CLOCK_ID, clock);
            if let Some(uuid) = track {
                message(d, field::TRACK_EVENT_DEFAULTS, |t| {
                    uint(t, field::TRACK_UUID, uuid);
                });
            }
        });
        message(&mut self.buf, field::CLOCK_SNAPSHOT, |c| {
            let clocks: &[u64] = match (realtime, wakes) {
                (true, _) => &[CLOCK_REALTIME, CLOCK_BOOTTIME, CLOCK_EVENTS, CLOCK_WAKES],
                (false, false) => &[CLOCK_BOOTTIME, CLOCK_EVENTS, CLOCK_WAKES],
                (false, true) => &[CLOCK_BOOTTIME, CLOCK_WAKES],
            };
            for &clock in clocks {
                message(c, field::CLOCKS, |k| {
                    uint(k, field::CLOCK_ID, clock);
                    if clock == CLOCK_WAKES {
                        uint(k, field::CLOCK_TIMESTAMP, 0);
                    } else {
                        uint(k, field::CLOCK_TIMESTAMP, start_ns);
                    }
                    if clock == CLOCK_EVENTS {
                        uint(k, field::CLOCK_IS_INCREMENTAL, 1);
                    }
                });
            }
            uint(c, field::PRIMARY_TRACE_CLOCK, CLOCK_BOOTTIME);
        });
        self.close_packet(at, id, SEQ_INCREMENTAL_STATE_CLEARED)?;
        Ok(self.sequences.len() - 1)
    }

    /// The id of the next sequence started (after the main one and the samples').
    fn next_sequence_id(&self) -> u64 {
        FIRST_THREAD_SEQUENCE + self.sequences.len() as u64 - 1
    }

    /// The sequence of thread `index`'s wakes and spawns, started on its first.
    fn wake_sequence(&mut self, index: usize) -> io::Result<usize> {
        if let Some(seq) = self.thread_sequences[index].1 {
            return Ok(seq);
        }
        let uuid = thread_uuid(index);
        let seq = self.start_sequence(self.next_sequence_id(), Some(uuid), false, true)?;
        self.thread_sequences[index].1 = Some(seq);
        Ok(seq)
    }

    /// The `InternedData` the event needs on sequence `seq`: its name, category and argument
    /// names when new there.
    #[cold]
    #[inline(never)]
    fn intern(
        &mut self,
        seq: usize,
        name: Option<Name<'_>>,
        category: Option<Category>,
        args: &[(ArgName, Arg<'_>)],
    ) {
        let Sequence {
            names,
            categories,
            arg_names,
            ..
        } = &mut self.sequences[seq];
        message(&mut self.buf, field::INTERNED_DATA, |d| {
            if let Some(c) = category {
                if *categories & 1 << c.index() == 0 {
                    *categories |= 1 << c.index();
                    message(d, field::EVENT_CATEGORIES, |m| {
                        uint(m, field::IID, c.index() as u64 + 1);
                        bytes(m, field::INTERNED_NAME, c.as_str().as_bytes());
                    });
                }
            }
            if let Some(n) = name {
                let i = n.id as usize;
                if names.len() <= i {
                    names.resize(i + 1, false);
                }
                if !names[i] {
                    names[i] = true;
                    message(d, field::EVENT_NAMES, |m| {
                        uint(m, field::IID, u64::from(n.id) + 1);
                        bytes(m, field::INTERNED_NAME, n.text.as_bytes());
                    });
                }
            }
            for (a, _) in args {
                if *arg_names & 1 << a.index() == 0 {
                    *arg_names |= 1 << a.index();
                    message(d, field::DEBUG_ANNOTATION_NAMES, |m| {
                        uint(m, field::IID, a.index() as u64 + 1);
                        bytes(m, field::INTERNED_NAME, a.as_str().as_bytes());
                    });
                }
            }
        });
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn track_event(
        &mut self,
        track: Track,
        time: u64,
        kind: u64,
        name: Option<Name<'_>>,
        category: Option<Category>,
        args: &[(ArgName, Arg<'_>)],
        flows: (Option<u64>, Option<u64>),
        counter: Option<u64>,
    ) -> io::Result<()> {
        // A thread's events go on its sequence, whose default track it is, its wakes and spawns
        // on its wake sequence (whose default clock is theirs); a task's on the sequence of the
        // thread that polls it; the others on the main sequence.
        let (seq, uuid) = match track {
            Track::Thread(id) => {
                let index = self.threads.index(id).0;
                match self.thread_sequences.get(index) {
                    Some(_) if matches!(category, Some(Category::Wake | Category::Spawn)) => {
                        (self.wake_sequence(index)?, None)
                    }
                    Some(&(seq, _)) => {
                        self.current = seq;
                        (seq, None)
                    }
                    None => (0, Some(self.track_uuid(track))),
                }
            }
            Track::Task(_) => (self.current, Some(self.track_uuid(track))),
            _ => (0, Some(self.track_uuid(track))),
        };
        let sequence = &self.sequences[seq];
        let new_name = name.is_some_and(|n| sequence.names.get(n.id as usize) != Some(&true));
        let new_category = category.is_some_and(|c| sequence.categories & 1 << c.index() == 0);
        let new_args = args
            .iter()
            .any(|(a, _)| sequence.arg_names & 1 << a.index() == 0);
        let new = new_name || new_category || new_args;
        if !new && args.len() <= 2 && args.iter().all(|(_, v)| matches!(v, Arg::Uint(_))) {
            return self
                .small_track_event(seq, uuid, time, kind, name, category, args, flows, counter);
        }
        let at = self.open_packet();
        if new {
            self.intern(seq, name, category, args);
        }
        let sequence = &mut self.sequences[seq];
        let out = &mut self.buf;
        if sequence.wakes || matches!(category, Some(Category::Wake | Category::Spawn)) {
            uint(out, field::TIMESTAMP, time.wrapping_sub(self.start_ns));
            if !sequence.wakes {
                uint(out, field::TIMESTAMP_CLOCK_ID, CLOCK_WAKES);
            }
        } else {
            uint(out, field::TIMESTAMP, time.wrapping_sub(sequence.last_time));
            sequence.last_time = time;
        }
        let id = sequence.id;
        message(out, field::TRACK_EVENT, |e| {
            uint(e, field::TYPE, kind);
            if let Some(uuid) = uuid {
                uint(e, field::TRACK_UUID, uuid);
            }
            if let Some(c) = category {
                uint(e, field::CATEGORY_IIDS, c.index() as u64 + 1);
            }
            if let Some(n) = name {
                uint(e, field::NAME_IID, u64::from(n.id) + 1);
            }
            for (name, value) in args {
                message(e, field::DEBUG_ANNOTATIONS, |a| {
                    uint(a, field::ANNOTATION_NAME_IID, name.index() as u64 + 1);
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
                uint(e, field::FLOW_IDS_OLD, flow);
            }
            if let Some(flow) = flows.1 {
                uint(e, field::TERMINATING_FLOW_IDS_OLD, flow);
            }
        });
        self.close_packet(at, id, 0)
    }
}

impl<W: BlockOutput> Format for Perfetto<W> {
    fn process(&mut self, header: &Header, start_ns: u64) -> io::Result<()> {
        self.pid = header.pid;
        self.start_ns = start_ns;
        // The first packet puts REALTIME at the start too, so that the UI shows real dates.
        self.start_sequence(MAIN_SEQUENCE, None, true, false)?;
        let pid = self.pid;
        let name = if header.program.is_empty() {
            "traced process"
        } else {
            &header.program
        };
        let cmdline = &header.cmdline;
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
        let uuid = self.track_uuid(Track::Thread(thread));
        self.descriptor(|d| {
            uint(d, field::UUID, uuid);
            message(d, field::THREAD, |t| {
                uint(t, field::PID, pid);
                uint(t, field::TID, os_tid);
                bytes(t, field::THREAD_NAME, name.as_bytes());
            });
        })?;
        let index = self.threads.index(thread).0;
        if index == self.thread_sequences.len() {
            let seq = self.start_sequence(self.next_sequence_id(), Some(uuid), false, false)?;
            self.thread_sequences.push((seq, None));
        }
        Ok(())
    }

    /// The task's track goes in the group of its spawn location (made at the location's first
    /// task), so that its name is only `task <id>`: the location, named once per group, is not
    /// repeated in every task's descriptor, most of the file's descriptors on a runtime that
    /// spawns a task per request.
    fn task_track(&mut self, uid: u64, task: u64, location: Name<'_>) -> io::Result<()> {
        let parent = self.location_group(location)?;
        let uuid = self.track_uuid(Track::Task(uid));
        let label = format!("task {task}");
        self.descriptor(|d| {
            uint(d, field::UUID, uuid);
            uint(d, field::PARENT_UUID, parent);
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
                uint(d, field::CHILD_ORDERING, field::CHRONOLOGICAL);
            })?;
        }
        let uuid = self.track_uuid(Track::UserTask(id));
        self.descriptor(|d| {
            uint(d, field::UUID, uuid);
            uint(d, field::PARENT_UUID, USER_TASKS_UUID);
            bytes(d, field::NAME, label.as_bytes());
        })
    }

    fn counter_track(&mut self, name_id: u64, name: &str) -> io::Result<()> {
        let uuid = self.track_uuid(Track::Counter(name_id));
        self.descriptor(|d| {
            uint(d, field::UUID, uuid);
            uint(d, field::PARENT_UUID, PROCESS_UUID);
            bytes(d, field::NAME, name.as_bytes());
            bytes(d, field::COUNTER, &[]);
        })
    }

    #[inline]
    fn begin(
        &mut self,
        track: Track,
        time: u64,
        name: Name<'_>,
        category: Category,
        args: &[(ArgName, Arg<'_>)],
        terminating_flow: Option<u64>,
    ) -> io::Result<()> {
        let flow = terminating_flow.and_then(|flow| self.flows.end(flow, time));
        self.track_event(
            track,
            time,
            SLICE_BEGIN,
            Some(name),
            Some(category),
            args,
            (None, flow),
            None,
        )
    }

    #[inline]
    fn end(
        &mut self,
        track: Track,
        time: u64,
        _name: Name<'_>,
        _category: Category,
    ) -> io::Result<()> {
        self.track_event(track, time, SLICE_END, None, None, &[], (None, None), None)
    }

    #[inline]
    fn instant(
        &mut self,
        track: Track,
        time: u64,
        name: Name<'_>,
        category: Category,
        args: &[(ArgName, Arg<'_>)],
        flow: Option<u64>,
    ) -> io::Result<()> {
        let flow = flow.map(|flow| self.flows.begin(flow, time));
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
        let flags = if i.started {
            0
        } else {
            i.started = true;
            SEQ_INCREMENTAL_STATE_CLEARED
        };
        // Its own sequence, without defaults: the timestamp is absolute (BOOTTIME).
        message(&mut self.buf, field::TRACE_PACKET, |packet| {
            uint(packet, field::TIMESTAMP, time);
            if !data.is_empty() {
                bytes(packet, field::INTERNED_DATA, &data);
            }
            message(packet, field::PERF_SAMPLE, |p| {
                uint(p, field::SAMPLE_CPU, 0);
                uint(p, field::SAMPLE_PID, pid);
                uint(p, field::SAMPLE_TID, os_tid);
                uint(p, field::CALLSTACK_IID, callstack);
                uint(p, field::CPU_MODE, MODE_USER);
            });
            uint(packet, field::TRUSTED_PACKET_SEQUENCE_ID, SAMPLE_SEQUENCE);
            if flags != 0 {
                uint(packet, field::SEQUENCE_FLAGS, flags);
            }
        });
        Ok(())
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
        self.out.write_block(&mut self.buf)?;
        self.out.flush_blocks()
    }
}

/// Writes the rest of `reader`'s events to `out` as a Perfetto trace. A damaged trace gives
/// [`ExportError::Trace`] after its intact part was written (the output is a valid trace).
pub fn write_perfetto<R: Read, W: BlockOutput + Send>(
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

#[cfg(test)]
mod decode_tests {
    //! The export read back with a small decoder that resolves what the trace processor
    //! resolves: interned names, categories and argument names per sequence, incremental
    //! clocks, and the sequences' default clock and track.

    use std::collections::HashMap;

    use flight_recorder_format::Header;

    use super::Perfetto;
    use crate::export::{Arg, ArgName, Category, Format, Name, Track};

    enum Value<'a> {
        Int(u64),
        Bytes(&'a [u8]),
    }

    fn fields(mut buf: &[u8]) -> Vec<(u32, Value<'_>)> {
        fn varint(buf: &mut &[u8]) -> u64 {
            let mut v = 0;
            for shift in (0..64).step_by(7) {
                let b = buf[0];
                *buf = &buf[1..];
                v |= u64::from(b & 0x7f) << shift;
                if b < 0x80 {
                    break;
                }
            }
            v
        }
        let mut out = Vec::new();
        while !buf.is_empty() {
            let key = varint(&mut buf);
            let value = match key & 7 {
                0 => Value::Int(varint(&mut buf)),
                1 => {
                    let v = u64::from_le_bytes(buf[..8].try_into().unwrap());
                    buf = &buf[8..];
                    Value::Int(v)
                }
                2 => {
                    let n = varint(&mut buf) as usize;
                    let (b, rest) = buf.split_at(n);
                    buf = rest;
                    Value::Bytes(b)
                }
                wire => panic!("wire type {wire}"),
            };
            out.push(((key >> 3) as u32, value));
        }
        out
    }

    fn int(fields: &[(u32, Value<'_>)], number: u32) -> Option<u64> {
        fields.iter().rev().find_map(|(n, v)| match v {
            Value::Int(i) if *n == number => Some(*i),
            _ => None,
        })
    }

    fn message<'a>(fields: &[(u32, Value<'a>)], number: u32) -> Option<&'a [u8]> {
        fields.iter().rev().find_map(|(n, v)| match v {
            Value::Bytes(b) if *n == number => Some(*b),
            _ => None,
        })
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    /// A track event as read: track name, absolute time, type, name, category, arguments,
    /// flows begun and ended.
    type Event = (
        String,
        u64,
        u64,
        String,
        String,
        Vec<(String, String)>,
        Vec<u64>,
        Vec<u64>,
    );

    #[derive(Default)]
    struct SequenceState {
        names: HashMap<u64, String>,
        categories: HashMap<u64, String>,
        arg_names: HashMap<u64, String>,
        clock: Option<u64>,
        track: Option<u64>,
        /// Clock id → (incremental, last value, offset to BOOTTIME).
        clocks: HashMap<u64, (bool, u64, u64)>,
    }

    fn decode(file: &[u8]) -> Vec<Event> {
        let mut sequences: HashMap<u64, SequenceState> = HashMap::new();
        let mut tracks: HashMap<u64, String> = HashMap::new();
        // Each track's parent.
        let mut groups: HashMap<u64, u64> = HashMap::new();
        let mut events = Vec::new();
        for (number, packet) in fields(file) {
            assert_eq!(number, 1);
            let Value::Bytes(packet) = packet else {
                panic!("a packet that is not a message")
            };
            let p = fields(packet);
            let seq = int(&p, 10).unwrap_or(0);
            let flags = int(&p, 13).unwrap_or(0);
            if flags & 1 != 0 {
                sequences.insert(seq, SequenceState::default());
            }
            if let Some(d) = message(&p, 60) {
                let d = fields(d);
                let mut name = match message(&d, 4) {
                    Some(thread) => text(message(&fields(thread), 5).unwrap()),
                    None => message(&d, 2).map(text).unwrap_or_default(),
                };
                // A task's track sits in its spawn location's group, under "tasks": named here
                // with the location after it.
                let parent = int(&d, 5);
                if let Some(group) = parent.filter(|p| groups.get(p) == Some(&super::TASKS_UUID)) {
                    name = format!("{name} {}", tracks[&group]);
                }
                if let Some(parent) = parent {
                    groups.insert(int(&d, 1).unwrap(), parent);
                }
                tracks.insert(int(&d, 1).unwrap(), name);
                continue;
            }
            let state = sequences.get_mut(&seq).expect("a sequence cleared first");
            if let Some(defaults) = message(&p, 59) {
                let d = fields(defaults);
                state.clock = int(&d, 58);
                state.track = message(&d, 11).and_then(|t| int(&fields(t), 11));
            }
            if let Some(data) = message(&p, 12) {
                for (n, v) in fields(data) {
                    let Value::Bytes(entry) = v else { panic!() };
                    let e = fields(entry);
                    let (iid, name) = (int(&e, 1).unwrap(), text(message(&e, 2).unwrap()));
                    match n {
                        1 => state.categories.insert(iid, name),
                        2 => state.names.insert(iid, name),
                        3 => state.arg_names.insert(iid, name),
                        _ => panic!("interned data {n}"),
                    };
                }
            }
            if let Some(snapshot) = message(&p, 6) {
                let clocks: Vec<_> = fields(snapshot)
                    .into_iter()
                    .filter_map(|(n, v)| match v {
                        Value::Bytes(c) if n == 1 => Some(fields(c)),
                        _ => None,
                    })
                    .map(|c| (int(&c, 1).unwrap(), int(&c, 2).unwrap(), int(&c, 3)))
                    .collect();
                let boot = clocks.iter().find(|c| c.0 == 6).unwrap().1;
                for (id, ts, incremental) in clocks {
                    if id >= 64 {
                        let offset = boot.wrapping_sub(ts);
                        state
                            .clocks
                            .insert(id, (incremental == Some(1), ts, offset));
                    }
                }
            }
            let Some(event) = message(&p, 11) else {
                continue;
            };
            // Its sequence was cleared before (above); the file is whole, so the event does not
            // spend two bytes on SEQ_NEEDS_INCREMENTAL_STATE.
            assert_eq!(flags, 0, "a track event with sequence flags");
            let raw = int(&p, 8).expect("a timestamp");
            let clock = int(&p, 58).or(state.clock).unwrap_or(6);
            let time = if clock >= 64 {
                let (incremental, last, offset) = state.clocks.get_mut(&clock).unwrap();
                if *incremental {
                    *last = last.wrapping_add(raw);
                    last.wrapping_add(*offset)
                } else {
                    raw.wrapping_add(*offset)
                }
            } else {
                raw
            };
            let e = fields(event);
            let uuid = int(&e, 11).or(state.track).expect("a track");
            let name = int(&e, 10).map(|iid| state.names[&iid].clone());
            let category = int(&e, 3).map(|iid| state.categories[&iid].clone());
            let mut args = Vec::new();
            let mut starts = Vec::new();
            let mut ends = Vec::new();
            for (n, v) in &e {
                match (n, v) {
                    (4, Value::Bytes(a)) => {
                        let a = fields(a);
                        let name = state.arg_names[&int(&a, 1).unwrap()].clone();
                        let value = match message(&a, 6) {
                            Some(t) => text(t),
                            None => int(&a, 3).unwrap().to_string(),
                        };
                        args.push((name, value));
                    }
                    (36, Value::Int(f)) => starts.push(*f),
                    (42, Value::Int(f)) => ends.push(*f),
                    _ => {}
                }
            }
            events.push((
                tracks[&uuid].clone(),
                time,
                int(&e, 9).unwrap(),
                name.unwrap_or_default(),
                category.unwrap_or_default(),
                args,
                starts,
                ends,
            ));
        }
        events
    }

    fn event(
        track: &str,
        time: u64,
        kind: u64,
        name: &str,
        category: &str,
        args: &[(&str, &str)],
        flows: (&[u64], &[u64]),
    ) -> Event {
        (
            track.to_string(),
            time,
            kind,
            name.to_string(),
            category.to_string(),
            args.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            flows.0.to_vec(),
            flows.1.to_vec(),
        )
    }

    #[test]
    fn interned_names_clocks_and_default_tracks_resolve() {
        let start = 1_700_000_000_000_000_000;
        let mut p = Perfetto::new(Vec::new());
        let header = Header {
            program: "demo".into(),
            pid: 42,
            ..Header::default()
        };
        let poll = Name {
            id: 2,
            text: "src/main.rs:10:5",
        };
        let wake = Name {
            id: 0,
            text: "wake",
        };
        p.process(&header, start).unwrap();
        p.thread_track(7, 700, "worker").unwrap();
        p.thread_track(8, 800, "waker").unwrap();
        p.task_track(1, 5, poll).unwrap();
        // Another task of the same location: its track joins the same group.
        p.task_track(3, 6, poll).unwrap();
        let task = [
            (ArgName::Task, Arg::Uint(5)),
            (ArgName::Waker, Arg::Uint(3)),
        ];
        // The wake comes when the poll it caused begins, after a later event on its thread.
        p.begin(
            Track::Thread(8),
            start + 10,
            poll,
            Category::Poll,
            &task[..1],
            None,
        )
        .unwrap();
        p.instant(
            Track::Thread(8),
            start + 5,
            wake,
            Category::Wake,
            &task,
            Some(1),
        )
        .unwrap();
        p.begin(
            Track::Thread(7),
            start + 300,
            poll,
            Category::Poll,
            &task[..1],
            Some(1),
        )
        .unwrap();
        p.begin(
            Track::Task(1),
            start + 300,
            poll,
            Category::Poll,
            &task[..1],
            None,
        )
        .unwrap();
        let log = Name {
            id: 3,
            text: "log handler",
        };
        let message = [(ArgName::Message, Arg::Text("say \"hi\""))];
        p.instant(
            Track::Thread(7),
            start + 1_000_000,
            log,
            Category::Log,
            &message,
            None,
        )
        .unwrap();
        p.end(Track::Thread(7), start + 2_000_000, poll, Category::Poll)
            .unwrap();
        p.end(Track::Task(1), start + 2_000_000, poll, Category::Poll)
            .unwrap();
        // A wake earlier than the previous one (on the wakes' clock, not incremental).
        p.instant(
            Track::Thread(8),
            start + 2,
            wake,
            Category::Wake,
            &task,
            Some(2),
        )
        .unwrap();
        p.end(Track::Thread(8), start + 3_000_000, poll, Category::Poll)
            .unwrap();
        p.counter_track(9, "depth").unwrap();
        p.counter(Track::Counter(9), start + 3_000_001, "depth", 4)
            .unwrap();
        p.finish().unwrap();
        let file = p.into_inner();
        let events = decode(&file);
        let (s, p_) = ("src/main.rs:10:5", "poll");
        let wake_args = [("task", "5"), ("waker", "3")];
        assert_eq!(
            events,
            vec![
                event("waker", start + 10, 1, s, p_, &[("task", "5")], (&[], &[])),
                event(
                    "waker",
                    start + 5,
                    3,
                    "wake",
                    "wake",
                    &wake_args,
                    (&[1], &[])
                ),
                event(
                    "worker",
                    start + 300,
                    1,
                    s,
                    p_,
                    &[("task", "5")],
                    (&[], &[1])
                ),
                event(
                    "task 5 src/main.rs:10:5",
                    start + 300,
                    1,
                    s,
                    p_,
                    &[("task", "5")],
                    (&[], &[])
                ),
                event(
                    "worker",
                    start + 1_000_000,
                    3,
                    "log handler",
                    "log",
                    &[("message", "say \"hi\"")],
                    (&[], &[])
                ),
                event("worker", start + 2_000_000, 2, "", "", &[], (&[], &[])),
                event(
                    "task 5 src/main.rs:10:5",
                    start + 2_000_000,
                    2,
                    "",
                    "",
                    &[],
                    (&[], &[])
                ),
                event(
                    "waker",
                    start + 2,
                    3,
                    "wake",
                    "wake",
                    &wake_args,
                    (&[2], &[])
                ),
                event("waker", start + 3_000_000, 2, "", "", &[], (&[], &[])),
                event("depth", start + 3_000_001, 4, "", "", &[], (&[], &[])),
            ]
        );
        // Names are written once per sequence: the poll's name on both threads' sequences.
        let needle = b"src/main.rs:10:5";
        let count = file.windows(needle.len()).filter(|w| w == needle).count();
        assert_eq!(
            count,
            2 + 1,
            "two sequences' interned names and the name of the location's group of tasks, once \
             for its two tasks"
        );
        // Every time is on its sequence's default clock: the wakes are on a sequence of their own.
        for (_, packet) in fields(&file) {
            let Value::Bytes(packet) = packet else {
                unreachable!()
            };
            assert_eq!(int(&fields(packet), super::field::TIMESTAMP_CLOCK_ID), None);
        }
    }

    #[test]
    fn a_flow_id_serves_again_once_its_flow_ended() {
        let start = 1_000_000;
        let mut p = Perfetto::new(Vec::new());
        p.process(&Header::default(), start).unwrap();
        p.thread_track(7, 700, "worker").unwrap();
        let poll = Name {
            id: 2,
            text: "poll",
        };
        let wake = Name {
            id: 0,
            text: "wake",
        };
        let task = [(ArgName::Task, Arg::Uint(5))];
        // (the model's flow number, when the wake was, when the poll it caused began)
        let flows = [
            (10, 50, 100),
            (11, 120, 200),
            (12, 150, 250),
            (13, 200, 300),
        ];
        for (flow, woken, polled) in flows {
            p.instant(
                Track::Thread(7),
                start + woken,
                wake,
                Category::Wake,
                &task,
                Some(flow),
            )
            .unwrap();
            p.begin(
                Track::Thread(7),
                start + polled,
                poll,
                Category::Poll,
                &task,
                Some(flow),
            )
            .unwrap();
            p.end(Track::Thread(7), start + polled + 10, poll, Category::Poll)
                .unwrap();
        }
        p.finish().unwrap();
        let events = decode(&p.into_inner());
        let begun: Vec<u64> = events.iter().flat_map(|e| e.6.clone()).collect();
        let ended: Vec<u64> = events.iter().flat_map(|e| e.7.clone()).collect();
        // Flow 11 began after flow 10's poll: its id again. Flow 12 began before flow 11's
        // poll, and flow 13 at its very instant: new ids.
        assert_eq!(begun, [1, 1, 2, 3]);
        assert_eq!(ended, [1, 1, 2, 3]);
    }
}
