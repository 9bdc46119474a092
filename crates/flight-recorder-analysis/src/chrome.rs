//! Export to the Chrome JSON trace format (chrome://tracing, Perfetto's legacy importer,
//! speedscope).
//!
//! `{"traceEvents": [...], "displayTimeUnit": "ns", "otherData": {...}}`, one event per line:
//!
//! - `M` metadata: `process_name` for the process (pid = the traced pid) and for a second
//!   "tasks" process (pid + 1, one "thread" per polled task, tid = the task's uid), and
//!   `thread_name` for every track;
//! - slices for polls (named by the task's spawn location on the thread's track, `poll` on the
//!   task's, whose name gives the location), regions and user tasks: a slice
//!   with nothing inside it on its track is one `X` (complete) event, written when it ends, with
//!   `ts` and `dur`; a slice that holds another slice, or an event at its first instant, is a
//!   `B`/`E` pair with the name on both (speedscope needs it), nesting per thread (see
//!   [`crate::export`]);
//! - `i` instants for wakes, spawns, logs and marks; `s`/`f` flows from a wake to its poll
//!   (the `f` binds to the poll's beginning, `"bp": "e"`, and follows the poll's line);
//! - `C` counters.
//!
//! `ts` and `dur` are in microseconds, `ts` from the first event, with three decimals
//! (nanoseconds).
//!
//! Why `X` only for slices with nothing inside: importers sort the events by `ts`, keeping the
//! file's order among equal ones (Perfetto's trace processor does), and bind a flow's end to the
//! slice open at its time. An `X` line is written at the slice's end, after everything inside
//! it; an event at the slice's first instant would then sort before the slice and fall outside
//! it, so such a slice is written as `B` when that event comes, before it. And a child's `X` end
//! (`ts` + `dur`, each rounded by the importer) could pass its parent's by a nanosecond where
//! both end together; `B`/`E` ends are one number each, so nested slices keep them.

use std::io::{self, Read};

use flight_recorder_format::{Header, TraceReader};

use crate::dense::DenseIds;
use crate::export::{export, Arg, ArgName, Category, ExportError, Format, Name, Track};
use crate::ids::IdMap;
use crate::merge::MergeOptions;
use crate::output::BlockOutput;

/// Lines are gathered in a buffer and handed to the output as one block when it holds this
/// much: few enough hand-offs to a [`WriteBehind`](crate::output::WriteBehind) thread, few
/// enough system calls to a plain file.
const FLUSH_AT: usize = 1 << 20;

/// The pieces of a line are appended by copies of this many bytes. Most fields are a few bytes
/// long; copied by `extend_from_slice`, each would be a call to `memcpy` for its length, which
/// cost about as much as formatting the numbers. A piece is kept padded to a multiple of this
/// size instead, appended in whole chunks (a vector move or two each), and the line cut back to
/// its length.
const CHUNK: usize = 32;

/// A piece of at most [`CHUNK`] bytes known when compiling, padded.
struct Piece {
    bytes: [u8; CHUNK],
    len: u8,
}

impl Piece {
    /// `prefix`, `text` and `suffix` as one piece.
    const fn new(prefix: &[u8], text: &str, suffix: &[u8]) -> Piece {
        let text = text.as_bytes();
        assert!(prefix.len() + text.len() + suffix.len() <= CHUNK);
        let mut bytes = [0; CHUNK];
        let mut len = 0;
        let parts = [prefix, text, suffix];
        let mut p = 0;
        while p < parts.len() {
            let mut i = 0;
            while i < parts[p].len() {
                bytes[len] = parts[p][i];
                len += 1;
                i += 1;
            }
            p += 1;
        }
        Piece {
            bytes,
            len: len as u8,
        }
    }

    #[inline(always)]
    fn push(&self, line: &mut Vec<u8>) {
        let end = line.len() + usize::from(self.len);
        line.extend_from_slice(&self.bytes);
        line.truncate(end);
    }
}

const PH_COMPLETE: Piece = Piece::new(b"\"ph\":\"X\"", "", b"");
const PH_BEGIN: Piece = Piece::new(b"\"ph\":\"B\"", "", b"");
const PH_END: Piece = Piece::new(b"\"ph\":\"E\"", "", b"");
const PH_INSTANT: Piece = Piece::new(b"\"ph\":\"i\",\"s\":\"t\"", "", b"");
const PH_FLOW_START: Piece = Piece::new(b"\"ph\":\"s\"", "", b"");
const PH_FLOW_END: Piece = Piece::new(b"\"ph\":\"f\",\"bp\":\"e\"", "", b"");

/// `,"cat":"…"` of each category, by [`Category::index`].
const CATEGORY_FIELDS: [Piece; Category::ALL.len()] = {
    let mut i = 0;
    let mut fields = [const { Piece::new(b"", "", b"") }; Category::ALL.len()];
    while i < fields.len() {
        fields[i] = Piece::new(b",\"cat\":\"", Category::ALL[i].as_str(), b"\"");
        i += 1;
    }
    fields
};

/// `"…":` of each argument name, by [`ArgName::index`].
const ARG_NAME_FIELDS: [Piece; ArgName::ALL.len()] = {
    let mut i = 0;
    let mut fields = [const { Piece::new(b"", "", b"") }; ArgName::ALL.len()];
    while i < fields.len() {
        fields[i] = Piece::new(b"\"", ArgName::ALL[i].as_str(), b"\":");
        i += 1;
    }
    fields
};

/// A piece of any length made at run time (a name's literal, a process's fields), padded.
#[derive(Clone)]
struct Padded {
    /// The text, then zeros up to a multiple of [`CHUNK`].
    bytes: Box<[u8]>,
    len: usize,
}

impl Padded {
    fn new(text: &[u8]) -> Padded {
        let mut bytes = text.to_vec();
        bytes.resize(text.len().div_ceil(CHUNK) * CHUNK, 0);
        Padded {
            bytes: bytes.into(),
            len: text.len(),
        }
    }

    #[inline]
    fn push(&self, line: &mut Vec<u8>) {
        let end = line.len() + self.len;
        let (chunks, _) = self.bytes.as_chunks::<CHUNK>();
        for chunk in chunks {
            line.extend_from_slice(chunk);
        }
        line.truncate(end);
    }
}

/// The Chrome JSON [`Format`].
pub struct ChromeJson<W: BlockOutput> {
    out: W,
    origin: u64,
    pid: u64,
    /// `,"pid":…,"tid":` of the process, its tasks and its user tasks ([`ChromeJson::place`]).
    processes: [Padded; 3],
    started: bool,
    first_event: bool,
    /// Whole lines not yet written out, then the line being built.
    buf: Vec<u8>,
    names: NameLiterals,
    /// The open slices of each track.
    open: OpenTracks,
}

/// Names as JSON string literals, by [`Name::id`], made on first use.
#[derive(Default)]
struct NameLiterals(Vec<Option<Padded>>);

impl NameLiterals {
    /// Makes the literal of `name` (escaped once per name), for [`NameLiterals::push`].
    #[inline]
    fn make(&mut self, name: Name<'_>) {
        if !matches!(self.0.get(name.id as usize), Some(Some(_))) {
            self.make_new(name);
        }
    }

    #[cold]
    #[inline(never)]
    fn make_new(&mut self, name: Name<'_>) {
        let i = name.id as usize;
        let mut literal = Vec::new();
        push_string(&mut literal, name.text);
        if self.0.len() <= i {
            self.0.resize(i + 1, None);
        }
        self.0[i] = Some(Padded::new(&literal));
    }

    /// Appends the literal of the name numbered `id`, made before ([`NameLiterals::make`]).
    #[inline]
    fn push(&self, line: &mut Vec<u8>, id: u32) {
        if let Some(Some(literal)) = self.0.get(id as usize) {
            literal.push(line);
        }
    }
}

/// A track's open slices: those written as `B`, and the one whose line waits for its end.
#[derive(Default)]
struct OpenSlices {
    /// Slices written as `B` and not ended yet.
    begun: u32,
    /// The innermost slice, with nothing inside it so far: written as `X` when it ends.
    deferred: Option<Deferred>,
}

/// The open slices of every track: threads (few, kept) by dense index, tasks and user tasks
/// (many, each forgotten when its slices end) by id.
#[derive(Default)]
struct OpenTracks {
    thread_ids: DenseIds,
    threads: Vec<OpenSlices>,
    tasks: IdMap<OpenSlices>,
    user_tasks: IdMap<OpenSlices>,
    counters: IdMap<OpenSlices>,
}

impl OpenTracks {
    /// The map of the tracks of `track`'s kind, if it is kept in one, and the key.
    fn map(&mut self, track: Track) -> Option<(&mut IdMap<OpenSlices>, u64)> {
        match track {
            Track::Thread(_) => None,
            Track::Task(uid) => Some((&mut self.tasks, uid)),
            Track::UserTask(id) => Some((&mut self.user_tasks, id)),
            Track::Counter(id) => Some((&mut self.counters, id)),
        }
    }

    /// The open slices of `track` (none yet on first use).
    #[inline]
    fn get(&mut self, track: Track) -> &mut OpenSlices {
        let (map, key) = match track {
            Track::Thread(id) => {
                let (index, new) = self.thread_ids.index(id);
                if new {
                    self.threads.push(OpenSlices::default());
                }
                return &mut self.threads[index];
            }
            Track::Task(uid) => (&mut self.tasks, uid),
            Track::UserTask(id) => (&mut self.user_tasks, id),
            Track::Counter(id) => (&mut self.counters, id),
        };
        map.entry(key).or_default()
    }

    /// The open slices of `track`, if it has any.
    #[inline]
    fn find(&mut self, track: Track) -> Option<&mut OpenSlices> {
        if let Track::Thread(_) = track {
            return Some(self.get(track));
        }
        let (map, key) = self.map(track)?;
        map.get_mut(&key)
    }

    /// Forgets `track` if it has no open slice (a thread's track is kept: there are few).
    #[inline]
    fn release(&mut self, track: Track) {
        if let Some((map, key)) = self.map(track) {
            if map.get(&key).is_some_and(OpenSlices::is_empty) {
                map.remove(&key);
            }
        }
    }

    /// The deferred slices left, in track order (for a file that does not depend on hashing).
    fn take_deferred(&mut self) -> Vec<(Track, Deferred)> {
        let mut left = Vec::new();
        let mut take = |track: Track, open: &mut OpenSlices| {
            if let Some(slice) = open.deferred.take() {
                left.push((track, slice));
            }
        };
        for (&id, open) in self.thread_ids.ids().iter().zip(&mut self.threads) {
            take(Track::Thread(id), open);
        }
        for (&id, open) in &mut self.tasks {
            take(Track::Task(id), open);
        }
        for (&id, open) in &mut self.user_tasks {
            take(Track::UserTask(id), open);
        }
        for (&id, open) in &mut self.counters {
            take(Track::Counter(id), open);
        }
        left.sort_unstable_by_key(|&(track, _)| track_order(track));
        left
    }
}

impl OpenSlices {
    fn is_empty(&self) -> bool {
        self.begun == 0 && self.deferred.is_none()
    }
}

/// A slice whose line waits for its end: what its line is made of.
struct Deferred {
    /// The number of its name, whose literal is made ([`NameLiterals::make`]).
    name: u32,
    category: Category,
    time: u64,
    args: DeferredArgs,
    /// The flow it terminates: its `f` line follows the slice's.
    flow: Option<u64>,
}

/// The arguments of a deferred slice: numbers (every slice has at most two), else formatted.
enum DeferredArgs {
    Numbers([(ArgName, u64); 2], u8),
    Formatted(Box<[u8]>),
}

impl DeferredArgs {
    fn new(args: &[(ArgName, Arg<'_>)]) -> DeferredArgs {
        let mut numbers = [(ArgName::Task, 0); 2];
        for (i, &(name, value)) in args.iter().enumerate() {
            match (numbers.get_mut(i), value) {
                (Some(slot), Arg::Uint(v)) => *slot = (name, v),
                _ => {
                    let mut formatted = Vec::new();
                    push_args(&mut formatted, args);
                    return DeferredArgs::Formatted(formatted.into());
                }
            }
        }
        DeferredArgs::Numbers(numbers, args.len() as u8)
    }

    fn push(&self, line: &mut Vec<u8>) {
        match self {
            DeferredArgs::Numbers(numbers, count) => {
                let [(a, x), (b, y)] = *numbers;
                let args = [(a, Arg::Uint(x)), (b, Arg::Uint(y))];
                push_args(line, &args[..usize::from(*count)]);
            }
            DeferredArgs::Formatted(formatted) => line.extend_from_slice(formatted),
        }
    }
}

impl<W: BlockOutput> ChromeJson<W> {
    /// A writer of a Chrome JSON trace to `out`, in blocks of about a mebibyte (any `Write`, or
    /// a [`WriteBehind`](crate::output::WriteBehind)).
    pub fn new(out: W) -> ChromeJson<W> {
        ChromeJson {
            out,
            origin: 0,
            pid: 0,
            processes: [0, 1, 2].map(process_fields),
            started: false,
            first_event: true,
            buf: Vec::with_capacity(FLUSH_AT + (4 << 10)),
            names: NameLiterals::default(),
            open: OpenTracks::default(),
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn start(&mut self) {
        if !self.started {
            self.started = true;
            self.buf.extend_from_slice(b"{\"traceEvents\":[\n");
        }
    }

    /// Starts one event's line, up to its opening brace: the fields go into the returned buffer,
    /// then [`ChromeJson::close_line`] ends it. Built in place at the end of the output buffer,
    /// without a string per field: a large trace becomes tens of millions of lines.
    #[inline]
    fn open_line(&mut self) -> io::Result<&mut Vec<u8>> {
        self.start();
        if !self.first_event {
            self.buf.extend_from_slice(b",\n");
        }
        self.first_event = false;
        self.buf.push(b'{');
        Ok(&mut self.buf)
    }

    #[inline]
    fn close_line(&mut self) -> io::Result<()> {
        self.buf.push(b'}');
        if self.buf.len() >= FLUSH_AT {
            self.out.write_block(&mut self.buf)?;
        }
        Ok(())
    }

    /// Where a track's events go: the process (0: the traced one, 1: its tasks, 2: its user
    /// tasks, pid + 0, 1, 2) and the thread id.
    fn place(&self, track: Track) -> (usize, u64) {
        match track {
            Track::Thread(id) => (0, id),
            Track::Task(uid) => (1, uid),
            Track::UserTask(id) => (2, id),
            Track::Counter(_) => (0, 0),
        }
    }

    /// A line `{"ph":…,"name":…,"cat":…` and its place ([`push_place`]), left open for more.
    #[inline]
    fn event_line(
        &mut self,
        ph: &Piece,
        name: Name<'_>,
        category: Category,
        track: Track,
        time: u64,
    ) -> io::Result<&mut Vec<u8>> {
        self.names.make(name);
        self.line_head(ph, name.id, category, track, time)?;
        Ok(&mut self.buf)
    }

    /// [`ChromeJson::event_line`] with the number of a name already made.
    #[inline]
    fn line_head(
        &mut self,
        ph: &Piece,
        name: u32,
        category: Category,
        track: Track,
        time: u64,
    ) -> io::Result<()> {
        let (process, tid) = self.place(track);
        let rel = time.saturating_sub(self.origin);
        let line = self.open_line()?;
        ph.push(line);
        line.extend_from_slice(b",\"name\":");
        self.names.push(&mut self.buf, name);
        let line = &mut self.buf;
        CATEGORY_FIELDS[category.index()].push(line);
        push_place(line, rel, &self.processes[process], tid);
        Ok(())
    }

    /// A flow's end (`"ph":"f"`) or start (`"ph":"s"`), at the place of the event it binds to.
    fn flow_line(&mut self, ph: &Piece, flow: u64, track: Track, time: u64) -> io::Result<()> {
        let (process, tid) = self.place(track);
        let rel = time.saturating_sub(self.origin);
        self.open_line()?;
        let line = &mut self.buf;
        ph.push(line);
        line.extend_from_slice(b",\"name\":\"wake\",\"cat\":\"wake\",\"id\":");
        push_u64(line, flow);
        push_place(line, rel, &self.processes[process], tid);
        self.close_line()
    }

    /// The `f` line of a flow that a slice beginning at `time` on `track` terminates.
    fn flow_end_line(&mut self, flow: Option<u64>, track: Track, time: u64) -> io::Result<()> {
        match flow {
            Some(flow) => self.flow_line(&PH_FLOW_END, flow, track, time),
            None => Ok(()),
        }
    }

    /// Writes a deferred slice of `track` as a `B` line (something comes inside it, or the
    /// trace ends with it open).
    fn write_begun(&mut self, track: Track, slice: Deferred) -> io::Result<()> {
        self.deferred_line(&PH_BEGIN, track, &slice)?;
        self.close_line()?;
        self.flow_end_line(slice.flow, track, slice.time)
    }

    /// The line of a deferred slice as `ph`, left open for more.
    #[inline]
    fn deferred_line(&mut self, ph: &Piece, track: Track, slice: &Deferred) -> io::Result<()> {
        self.line_head(ph, slice.name, slice.category, track, slice.time)?;
        slice.args.push(&mut self.buf);
        Ok(())
    }

    /// Before an event at `time` on `track`: a deferred slice that begins at that instant is
    /// written as `B` now, so that the event, after it in the file, sorts inside it.
    #[inline]
    fn pin(&mut self, track: Track, time: u64) -> io::Result<()> {
        let Some(open) = self.open.find(track) else {
            return Ok(());
        };
        match open.deferred.take_if(|slice| slice.time == time) {
            Some(slice) => {
                open.begun += 1;
                self.write_begun(track, slice)
            }
            None => Ok(()),
        }
    }

    fn metadata(&mut self, pid: u64, tid: Option<u64>, name: &str) -> io::Result<()> {
        let (what, tid) = match tid {
            None => (&b"process_name"[..], 0),
            Some(tid) => (&b"thread_name"[..], tid),
        };
        let line = self.open_line()?;
        line.extend_from_slice(b"\"ph\":\"M\",\"name\":\"");
        line.extend_from_slice(what);
        line.extend_from_slice(b"\",\"pid\":");
        push_u64(line, pid);
        line.extend_from_slice(b",\"tid\":");
        push_u64(line, tid);
        line.extend_from_slice(b",\"args\":{\"name\":");
        push_string(line, name);
        line.push(b'}');
        self.close_line()
    }
}

/// A JSON string literal.
fn push_string(line: &mut Vec<u8>, text: &str) {
    // Most names (spawn locations, categories) need no escape: copied at once.
    // (A fold without an early exit: no branch per byte, under half the instructions of `all`.)
    let plain = !text.bytes().fold(false, |special, b| {
        special | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        line.push(b'"');
        line.extend_from_slice(text.as_bytes());
        line.push(b'"');
        return;
    }
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *line, text);
}

fn push_u64(line: &mut Vec<u8>, value: u64) {
    line.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Nanoseconds as microseconds with three decimals.
fn push_micros(line: &mut Vec<u8>, ns: u64) {
    push_u64(line, ns / 1000);
    let ns = ns % 1000;
    let digit = |d: u64| b'0' + d as u8; // d < 10
    line.extend_from_slice(&[b'.', digit(ns / 100), digit(ns / 10 % 10), digit(ns % 10)]);
}

/// `,"pid":…,"tid":`, made once per process.
fn process_fields(pid: u64) -> Padded {
    let mut fields = b",\"pid\":".to_vec();
    push_u64(&mut fields, pid);
    fields.extend_from_slice(b",\"tid\":");
    Padded::new(&fields)
}

/// `,"ts":…,"pid":…,"tid":…`, with `ts` in microseconds and three decimals (nanoseconds), and
/// `process` from [`process_fields`].
fn push_place(line: &mut Vec<u8>, rel_ns: u64, process: &Padded, tid: u64) {
    line.extend_from_slice(b",\"ts\":");
    push_micros(line, rel_ns);
    process.push(line);
    push_u64(line, tid);
}

/// `,"args":{…}`, nothing when there are none.
fn push_args(line: &mut Vec<u8>, args: &[(ArgName, Arg<'_>)]) {
    if args.is_empty() {
        return;
    }
    line.extend_from_slice(b",\"args\":{");
    for (i, (name, value)) in args.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        ARG_NAME_FIELDS[name.index()].push(line);
        match value {
            Arg::Uint(v) => push_u64(line, *v),
            Arg::Text(t) => push_string(line, t),
        }
    }
    line.push(b'}');
}

/// A track's place in the order of tracks: threads, tasks, user tasks, counters, each by id.
fn track_order(track: Track) -> (u8, u64) {
    match track {
        Track::Thread(id) => (0, id),
        Track::Task(uid) => (1, uid),
        Track::UserTask(id) => (2, id),
        Track::Counter(id) => (3, id),
    }
}

impl<W: BlockOutput> Format for ChromeJson<W> {
    fn process(&mut self, header: &Header, start_ns: u64) -> io::Result<()> {
        self.origin = start_ns;
        self.pid = header.pid;
        self.processes = [0, 1, 2].map(|i| process_fields(header.pid + i));
        let name = if header.program.is_empty() {
            "traced process".to_string()
        } else {
            header.program.clone()
        };
        self.metadata(self.pid, None, &name)?;
        self.metadata(self.pid + 1, None, &format!("{name} tasks"))?;
        self.metadata(self.pid + 2, None, &format!("{name} user tasks"))
    }

    fn thread_track(&mut self, thread: u64, _os_tid: u64, name: &str) -> io::Result<()> {
        self.metadata(self.pid, Some(thread), name)
    }

    fn task_track(&mut self, uid: u64, task: u64, location: Name<'_>) -> io::Result<()> {
        let label = format!("task {task} {}", location.text);
        self.metadata(self.pid + 1, Some(uid), &label)
    }

    fn user_task_track(&mut self, id: u64, label: &str) -> io::Result<()> {
        self.metadata(self.pid + 2, Some(id), label)
    }

    fn counter_track(&mut self, _name_id: u64, _name: &str) -> io::Result<()> {
        Ok(())
    }

    fn begin(
        &mut self,
        track: Track,
        time: u64,
        name: Name<'_>,
        category: Category,
        args: &[(ArgName, Arg<'_>)],
        terminating_flow: Option<u64>,
    ) -> io::Result<()> {
        let open = self.open.get(track);
        if open.is_empty() {
            // Nothing open on the track: the slice waits for its end, to be one `X` line.
            self.names.make(name);
            open.deferred = Some(Deferred {
                name: name.id,
                category,
                time,
                args: DeferredArgs::new(args),
                flow: terminating_flow,
            });
            return Ok(());
        }
        // Inside another slice: both are `B`/`E` pairs.
        let parent = open.deferred.take();
        open.begun += 1 + u32::from(parent.is_some());
        if let Some(parent) = parent {
            self.write_begun(track, parent)?;
        }
        let line = self.event_line(&PH_BEGIN, name, category, track, time)?;
        push_args(line, args);
        self.close_line()?;
        self.flow_end_line(terminating_flow, track, time)
    }

    fn end(
        &mut self,
        track: Track,
        time: u64,
        name: Name<'_>,
        category: Category,
    ) -> io::Result<()> {
        let open = self.open.get(track);
        // A deferred slice is the innermost one: anything begun inside it wrote it as `B`.
        let deferred = open.deferred.take();
        if deferred.is_none() {
            open.begun = open.begun.saturating_sub(1);
        }
        self.open.release(track);
        let Some(slice) = deferred else {
            self.event_line(&PH_END, name, category, track, time)?;
            return self.close_line();
        };
        self.deferred_line(&PH_COMPLETE, track, &slice)?;
        self.buf.extend_from_slice(b",\"dur\":");
        push_micros(&mut self.buf, time.saturating_sub(slice.time));
        self.close_line()?;
        self.flow_end_line(slice.flow, track, slice.time)
    }

    fn instant(
        &mut self,
        track: Track,
        time: u64,
        name: Name<'_>,
        category: Category,
        args: &[(ArgName, Arg<'_>)],
        flow: Option<u64>,
    ) -> io::Result<()> {
        self.pin(track, time)?;
        let line = self.event_line(&PH_INSTANT, name, category, track, time)?;
        push_args(line, args);
        self.close_line()?;
        if let Some(flow) = flow {
            self.flow_line(&PH_FLOW_START, flow, track, time)?;
        }
        Ok(())
    }

    fn counter(&mut self, track: Track, time: u64, name: &str, value: u64) -> io::Result<()> {
        let (process, _) = self.place(track);
        let rel = time.saturating_sub(self.origin);
        self.open_line()?;
        let line = &mut self.buf;
        line.extend_from_slice(b"\"ph\":\"C\",\"name\":");
        push_string(line, name);
        push_place(line, rel, &self.processes[process], 0);
        line.extend_from_slice(b",\"args\":{\"value\":");
        push_u64(line, value);
        line.push(b'}');
        self.close_line()
    }

    fn finish(&mut self) -> io::Result<()> {
        // Slices still open at the end (the timeline ends those of threads; a task's poll or a
        // user task can stay open) are written as `B` without an `E`, track by track in order.
        for (track, slice) in self.open.take_deferred() {
            self.write_begun(track, slice)?;
        }
        self.start();
        self.buf.extend_from_slice(
            b"\n],\"displayTimeUnit\":\"ns\",\"otherData\":{\"generator\":\"flight-recorder\"}}\n",
        );
        self.out.write_block(&mut self.buf)?;
        self.out.flush_blocks()
    }
}

/// Writes the rest of `reader`'s events to `out` as Chrome JSON. A damaged trace gives
/// [`ExportError::Trace`] after its intact part was written (the output is valid JSON).
pub fn write_chrome_json<R: Read, W: BlockOutput + Send>(
    reader: TraceReader<R>,
    out: W,
    merge: MergeOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<W, ExportError> {
    export(reader, ChromeJson::new(out), merge, progress).map(ChromeJson::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(rel_ns: u64) -> String {
        let mut line = Vec::new();
        push_place(&mut line, rel_ns, &process_fields(7), 9);
        String::from_utf8(line).unwrap()
    }

    #[test]
    fn padded_pieces_append_exactly_their_text() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK - 5] {
            let text: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let mut line = b"{".to_vec();
            Padded::new(&text).push(&mut line);
            line.push(b'}');
            assert_eq!(line.len(), len + 2, "length {len}");
            assert_eq!(&line[1..=len], &text[..], "length {len}");
        }
        for (category, piece) in Category::ALL.iter().zip(&CATEGORY_FIELDS) {
            let mut line = Vec::new();
            piece.push(&mut line);
            assert_eq!(
                line,
                format!(",\"cat\":\"{}\"", category.as_str()).as_bytes()
            );
        }
        for (name, piece) in ArgName::ALL.iter().zip(&ARG_NAME_FIELDS) {
            let mut line = b"x".to_vec();
            piece.push(&mut line);
            assert_eq!(line, format!("x\"{}\":", name.as_str()).as_bytes());
        }
        let mut line = Vec::new();
        PH_FLOW_END.push(&mut line);
        PH_INSTANT.push(&mut line);
        assert_eq!(line, b"\"ph\":\"f\",\"bp\":\"e\"\"ph\":\"i\",\"s\":\"t\"");
    }

    #[test]
    fn times_are_microseconds_with_three_decimals() {
        assert_eq!(place(0), ",\"ts\":0.000,\"pid\":7,\"tid\":9");
        assert_eq!(place(5), ",\"ts\":0.005,\"pid\":7,\"tid\":9");
        assert_eq!(place(66_647), ",\"ts\":66.647,\"pid\":7,\"tid\":9");
        assert_eq!(
            place(1_234_567_999),
            ",\"ts\":1234567.999,\"pid\":7,\"tid\":9"
        );
        assert_eq!(
            place(u64::MAX),
            format!(",\"ts\":{}.615,\"pid\":7,\"tid\":9", u64::MAX / 1000)
        );
    }

    #[test]
    fn names_are_escaped_once_and_reused() {
        let mut c = ChromeJson::new(Vec::new());
        let header = flight_recorder_format::Header {
            pid: 7,
            ..Default::default()
        };
        c.process(&header, 1_000).unwrap();
        let odd = Name {
            id: 4,
            text: "say \"hi\"\n",
        };
        let plain = Name {
            id: 2,
            text: "src/main.rs:1:1",
        };
        for (time, name) in [(1_000, odd), (2_000, plain), (3_000, odd)] {
            c.begin(Track::Thread(1), time, name, Category::Region, &[], None)
                .unwrap();
            c.end(Track::Thread(1), time + 1, name, Category::Region)
                .unwrap();
        }
        c.finish().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&c.into_inner()).unwrap();
        let names: Vec<&str> = json["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] != "M")
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        // One complete event each: nothing happens inside them.
        assert_eq!(names, [odd.text, plain.text, odd.text]);
    }

    #[test]
    fn strings_and_args_are_escaped_json() {
        let mut line = Vec::new();
        push_args(
            &mut line,
            &[
                (ArgName::Message, Arg::Text("say \"hi\"\n\u{1}é")),
                (ArgName::Task, Arg::Uint(u64::MAX)),
            ],
        );
        let text = String::from_utf8(line).unwrap();
        assert_eq!(
            text,
            ",\"args\":{\"message\":\"say \\\"hi\\\"\\n\\u0001é\",\"task\":18446744073709551615}"
        );
        let value: serde_json::Value = serde_json::from_str(&text[8..]).unwrap();
        assert_eq!(value["message"], "say \"hi\"\n\u{1}é");
    }

    const PID: u64 = 7;

    fn writer() -> ChromeJson<Vec<u8>> {
        let mut c = ChromeJson::new(Vec::new());
        let header = flight_recorder_format::Header {
            pid: PID,
            ..Default::default()
        };
        c.process(&header, 1_000).unwrap();
        c
    }

    /// The events of a finished export, metadata left out.
    fn events(c: ChromeJson<Vec<u8>>) -> Vec<serde_json::Value> {
        let json: serde_json::Value = serde_json::from_slice(&c.into_inner()).unwrap();
        json["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] != "M")
            .cloned()
            .collect()
    }

    fn name(id: u32) -> Name<'static> {
        const TEXTS: [&str; 4] = ["poll a", "region b", "wake", "poll d"];
        Name {
            id,
            text: TEXTS[id as usize % TEXTS.len()],
        }
    }

    /// `"ts"`/`"dur"` (microseconds to the nanosecond) back to nanoseconds: exact at these
    /// tests' magnitudes.
    fn ns(value: &serde_json::Value) -> u64 {
        (value.as_f64().expect("a number") * 1000.0).round() as u64
    }

    #[test]
    fn a_slice_with_nothing_inside_is_one_complete_event_its_flow_end_after_it() {
        let mut c = writer();
        let track = Track::Thread(3);
        let args = [(ArgName::Task, Arg::Uint(42))];
        c.begin(track, 2_500, name(0), Category::Poll, &args, Some(9))
            .unwrap();
        c.end(track, 3_734, name(0), Category::Poll).unwrap();
        c.finish().unwrap();
        let events = events(c);
        assert_eq!(events.len(), 2, "{events:?}");
        let slice = &events[0];
        assert_eq!(slice["ph"], "X");
        assert_eq!(slice["name"], "poll a");
        assert_eq!(slice["cat"], "poll");
        assert_eq!(
            (slice["pid"].as_u64(), slice["tid"].as_u64()),
            (Some(PID), Some(3))
        );
        assert_eq!(ns(&slice["ts"]), 1_500);
        assert_eq!(ns(&slice["dur"]), 1_234);
        assert_eq!(slice["args"]["task"], 42);
        let flow = &events[1];
        assert_eq!(
            (flow["ph"].as_str(), flow["bp"].as_str()),
            (Some("f"), Some("e"))
        );
        assert_eq!(flow["id"], 9);
        assert_eq!(ns(&flow["ts"]), 1_500);
        assert_eq!(flow["tid"], 3);
    }

    #[test]
    fn a_slice_with_a_slice_inside_is_a_begin_end_pair_and_so_is_the_inner_one() {
        let mut c = writer();
        let track = Track::Thread(1);
        c.begin(track, 2_000, name(0), Category::Poll, &[], Some(5))
            .unwrap();
        c.begin(track, 2_100, name(1), Category::Region, &[], None)
            .unwrap();
        c.end(track, 2_200, name(1), Category::Region).unwrap();
        c.end(track, 2_300, name(0), Category::Poll).unwrap();
        // Nothing open any more: the next slice is one event again.
        c.begin(track, 2_400, name(1), Category::Region, &[], None)
            .unwrap();
        c.end(track, 2_500, name(1), Category::Region).unwrap();
        c.finish().unwrap();
        let phases: Vec<(String, String)> = events(c)
            .iter()
            .map(|e| {
                (
                    e["ph"].as_str().unwrap().into(),
                    e["name"].as_str().unwrap().into(),
                )
            })
            .collect();
        let expected = [
            ("B", "poll a"),
            ("f", "wake"),
            ("B", "region b"),
            ("E", "region b"),
            ("E", "poll a"),
            ("X", "region b"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(p, n)| (p.to_string(), n.to_string()))
            .collect();
        assert_eq!(phases, expected);
    }

    #[test]
    fn an_event_at_a_slice_first_instant_follows_the_slice_begin() {
        let mut c = writer();
        let track = Track::Thread(1);
        c.begin(track, 2_000, name(0), Category::Poll, &[], None)
            .unwrap();
        c.instant(track, 2_000, name(2), Category::Wake, &[], Some(4))
            .unwrap();
        c.end(track, 2_300, name(0), Category::Poll).unwrap();
        // An instant later than the slice's beginning leaves it one event.
        c.begin(track, 3_000, name(0), Category::Poll, &[], None)
            .unwrap();
        c.instant(track, 3_001, name(2), Category::Wake, &[], None)
            .unwrap();
        c.end(track, 3_300, name(0), Category::Poll).unwrap();
        c.finish().unwrap();
        let phases: Vec<String> = events(c)
            .iter()
            .map(|e| e["ph"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(phases, ["B", "i", "s", "E", "i", "X"]);
    }

    #[test]
    fn slices_open_at_the_end_stay_begun_in_track_order() {
        let mut c = writer();
        for track in [
            Track::UserTask(4),
            Track::Task(9),
            Track::Task(2),
            Track::UserTask(1),
            Track::Thread(6),
        ] {
            c.begin(track, 2_000, name(0), Category::Poll, &[], None)
                .unwrap();
        }
        c.end(Track::Thread(6), 2_100, name(0), Category::Poll)
            .unwrap();
        c.finish().unwrap();
        let left: Vec<(String, u64, u64)> = events(c)
            .iter()
            .map(|e| {
                let ph = e["ph"].as_str().unwrap().to_string();
                (ph, e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap())
            })
            .collect();
        let b = |pid, tid| ("B".to_string(), pid, tid);
        let expected = vec![
            ("X".to_string(), PID, 6),
            b(PID + 1, 2),
            b(PID + 1, 9),
            b(PID + 2, 1),
            b(PID + 2, 4),
        ];
        assert_eq!(left, expected);
    }

    /// A slice as a viewer knows it: its name and beginning.
    type SliceId = (String, u64);

    /// What a viewer rebuilds from the file, as Perfetto's trace processor does: the events
    /// sorted by `ts` (stable), slices on a stack per track (a complete event leaves it at its
    /// end), a flow's end bound to the slice on top of its track's stack.
    #[derive(Default)]
    struct Rebuilt {
        /// (pid, tid, name, begin, end).
        slices: Vec<(u64, u64, String, u64, u64)>,
        /// Flow id → (pid, tid, name, begin) of the slice its end binds to.
        flows: std::collections::BTreeMap<u64, (u64, u64, String, u64)>,
        /// Per instant in file order of equal time: (pid, tid, time, name and begin of the
        /// innermost slice around it).
        instants: Vec<(u64, u64, u64, Option<SliceId>)>,
        /// A slice that did not nest in the one around it, or an end without a begin.
        errors: Vec<String>,
    }

    fn rebuild(events: &[serde_json::Value]) -> Rebuilt {
        use std::collections::HashMap;
        let mut sorted: Vec<&serde_json::Value> = events.iter().collect();
        sorted.sort_by_key(|e| ns(&e["ts"]));
        // Per (pid, tid): (name, begin, end: None while a `B` is open).
        type Open = (String, u64, Option<u64>);
        let mut stacks: HashMap<(u64, u64), Vec<Open>> = HashMap::new();
        let mut out = Rebuilt::default();
        for e in sorted {
            let place = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
            let ts = ns(&e["ts"]);
            let ph = e["ph"].as_str().unwrap();
            let stack = stacks.entry(place).or_default();
            if matches!(ph, "X" | "B" | "E" | "i") {
                while stack
                    .last()
                    .is_some_and(|s| s.2.is_some_and(|end| end <= ts))
                {
                    stack.pop();
                }
            }
            let name = e["name"].as_str().unwrap_or("").to_string();
            match ph {
                "X" | "i" => {
                    let end = ts + if ph == "X" { ns(&e["dur"]) } else { 0 };
                    if let Some((outer, _, Some(outer_end))) = stack.last() {
                        if end > *outer_end {
                            out.errors.push(format!("{name} at {ts} leaves {outer}"));
                        }
                    }
                    if ph == "X" {
                        out.slices.push((place.0, place.1, name.clone(), ts, end));
                        stack.push((name, ts, Some(end)));
                    } else {
                        let around = stack.last().map(|s| (s.0.clone(), s.1));
                        out.instants.push((place.0, place.1, ts, around));
                    }
                }
                "B" => stack.push((name, ts, None)),
                "E" => match stack.pop() {
                    Some((open, begin, None)) if open == name => {
                        out.slices.push((place.0, place.1, name, begin, ts));
                    }
                    other => out
                        .errors
                        .push(format!("E {name} at {ts} closes {other:?}")),
                },
                "f" => {
                    let bound = stack.last().map(|s| (place.0, place.1, s.0.clone(), s.1));
                    match bound {
                        Some(b) => {
                            out.flows.insert(e["id"].as_u64().unwrap(), b);
                        }
                        None => out.errors.push(format!("flow end at {ts} outside slices")),
                    }
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn viewers_rebuild_the_same_slices_flows_and_nesting_as_the_calls_made() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let tracks = [
            Track::Thread(1),
            Track::Thread(2),
            Track::Task(3),
            Track::UserTask(4),
        ];
        for round in 0..200 {
            let mut c = writer();
            let mut expected = Rebuilt::default();
            // Per track: open slices (name id, begin).
            let mut open: Vec<Vec<(u32, u64)>> = vec![Vec::new(); tracks.len()];
            let mut time = 2_000u64;
            let mut flow = 0u64;
            for _ in 0..60 {
                // Time often stands still, so that events share instants.
                time += next(3);
                let t = next(tracks.len() as u64) as usize;
                let track = tracks[t];
                let (process, tid) = c.place(track);
                let pid = PID + process as u64;
                let rel = time - 1_000;
                match next(4) {
                    0 | 1 if open[t].len() < 3 => {
                        let id = next(4) as u32;
                        let terminates = (next(2) == 0).then(|| {
                            flow += 1;
                            flow
                        });
                        c.begin(track, time, name(id), Category::Poll, &[], terminates)
                            .unwrap();
                        if let Some(f) = terminates {
                            let n = name(id).text.to_string();
                            expected.flows.insert(f, (pid, tid, n, rel));
                        }
                        open[t].push((id, time));
                    }
                    0..=2 => {
                        if let Some((id, begin)) = open[t].pop() {
                            c.end(track, time, name(id), Category::Poll).unwrap();
                            let n = name(id).text.to_string();
                            expected.slices.push((pid, tid, n, begin - 1_000, rel));
                        }
                    }
                    _ => {
                        c.instant(track, time, name(2), Category::Wake, &[], None)
                            .unwrap();
                        let around = open[t]
                            .last()
                            .map(|&(id, b)| (name(id).text.into(), b - 1_000));
                        expected.instants.push((pid, tid, rel, around));
                    }
                }
            }
            // Close what is open, innermost first, as the timeline does at the end.
            time += 1;
            for (t, stack) in open.iter_mut().enumerate() {
                let (process, tid) = c.place(tracks[t]);
                let pid = PID + process as u64;
                while let Some((id, begin)) = stack.pop() {
                    c.end(tracks[t], time, name(id), Category::Poll).unwrap();
                    let n = name(id).text.to_string();
                    expected
                        .slices
                        .push((pid, tid, n, begin - 1_000, time - 1_000));
                }
            }
            c.finish().unwrap();
            let rebuilt = rebuild(&events(c));
            assert!(
                rebuilt.errors.is_empty(),
                "round {round}: {:?}",
                rebuilt.errors
            );
            let mut got = rebuilt.slices;
            got.sort();
            expected.slices.sort();
            assert_eq!(got, expected.slices, "round {round}");
            assert_eq!(rebuilt.flows, expected.flows, "round {round}");
            // An instant at the very end of the slice around it sorts after a complete
            // event's end; every other one sits in the same slice as when it was recorded.
            let mut got = rebuilt.instants;
            got.sort();
            let mut want = expected.instants;
            want.sort();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                let at_end = w.3.as_ref().is_some_and(|(n, b)| {
                    expected
                        .slices
                        .iter()
                        .any(|s| (s.0, s.1, &s.2, s.3, s.4) == (w.0, w.1, n, *b, w.2))
                });
                if !at_end {
                    assert_eq!(g, w, "round {round}");
                }
            }
        }
    }
}
