//! Export to the Chrome JSON trace format (chrome://tracing, Perfetto's legacy importer,
//! speedscope).
//!
//! `{"traceEvents": [...], "displayTimeUnit": "ns", "otherData": {...}}`, one event per line:
//!
//! - `M` metadata: `process_name` for the process (pid = the traced pid) and for a second
//!   "tasks" process (pid + 1, one "thread" per polled task, tid = the task's uid), and
//!   `thread_name` for every track;
//! - `B`/`E` pairs for polls (named by the task's spawn location), regions and user tasks, with
//!   the name on both (speedscope needs it), nesting per thread (see [`crate::export`]);
//! - `i` instants for wakes, spawns, logs and marks; `s`/`f` flows from a wake to its poll
//!   (the `f` binds to the poll's beginning, `"bp": "e"`);
//! - `C` counters.
//!
//! `ts` is in microseconds from the first event, with three decimals (nanoseconds).

use std::io::{self, Read, Write};

use flight_recorder_format::{Header, TraceReader};

use crate::export::{export, Arg, ArgName, Category, ExportError, Format, Name, Track};
use crate::merge::MergeOptions;

/// Lines are gathered in a buffer and written out when it holds this much: as much as the
/// command's `BufWriter` holds, which then passes the writes through without copying them.
const FLUSH_AT: usize = 1 << 20;

/// The Chrome JSON [`Format`].
pub struct ChromeJson<W: Write> {
    out: W,
    origin: u64,
    pid: u64,
    started: bool,
    first_event: bool,
    /// Whole lines not yet written out, then the line being built.
    buf: Vec<u8>,
    /// Names as JSON string literals, by [`Name::id`], made on first use.
    names: Vec<Option<Box<[u8]>>>,
}

impl<W: Write> ChromeJson<W> {
    /// A writer of a Chrome JSON trace to `out` (buffer it).
    pub fn new(out: W) -> ChromeJson<W> {
        ChromeJson {
            out,
            origin: 0,
            pid: 0,
            started: false,
            first_event: true,
            buf: Vec::with_capacity(FLUSH_AT + (4 << 10)),
            names: Vec::new(),
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
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Appends the name as a JSON string (escaped once per name).
    #[inline]
    fn push_name(&mut self, name: Name<'_>) {
        let i = name.id as usize;
        if let Some(Some(literal)) = self.names.get(i) {
            self.buf.extend_from_slice(literal);
            return;
        }
        self.new_name(name);
    }

    #[cold]
    #[inline(never)]
    fn new_name(&mut self, name: Name<'_>) {
        let i = name.id as usize;
        let mut literal = Vec::new();
        push_string(&mut literal, name.text);
        self.buf.extend_from_slice(&literal);
        if self.names.len() <= i {
            self.names.resize(i + 1, None);
        }
        self.names[i] = Some(literal.into());
    }

    fn place(&self, track: Track) -> (u64, u64) {
        match track {
            Track::Thread(id) => (self.pid, id),
            Track::Task(uid) => (self.pid + 1, uid),
            Track::UserTask(id) => (self.pid + 2, id),
            Track::Counter(_) => (self.pid, 0),
        }
    }

    /// An event's `ph`, `name` and `cat` fields, then its place ([`push_place`]).
    #[inline]
    fn slice_line(
        &mut self,
        ph: &[u8],
        name: Name<'_>,
        category: Category,
        track: Track,
        time: u64,
    ) -> io::Result<&mut Vec<u8>> {
        let (pid, tid) = self.place(track);
        let rel = time.saturating_sub(self.origin);
        let line = self.open_line()?;
        line.extend_from_slice(ph);
        line.extend_from_slice(b",\"name\":");
        self.push_name(name);
        let line = &mut self.buf;
        line.extend_from_slice(b",\"cat\":\"");
        line.extend_from_slice(category.as_str().as_bytes());
        line.push(b'"');
        push_place(line, rel, pid, tid);
        Ok(line)
    }

    /// A flow's end (`"ph":"f"`) or start (`"ph":"s"`), at the place of the event it binds to.
    fn flow_line(&mut self, ph: &[u8], flow: u64, track: Track, time: u64) -> io::Result<()> {
        let (pid, tid) = self.place(track);
        let rel = time.saturating_sub(self.origin);
        let line = self.open_line()?;
        line.extend_from_slice(ph);
        line.extend_from_slice(b",\"name\":\"wake\",\"cat\":\"wake\",\"id\":");
        push_u64(line, flow);
        push_place(line, rel, pid, tid);
        self.close_line()
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

/// `,"ts":…,"pid":…,"tid":…`, with `ts` in microseconds and three decimals (nanoseconds).
fn push_place(line: &mut Vec<u8>, rel_ns: u64, pid: u64, tid: u64) {
    line.extend_from_slice(b",\"ts\":");
    push_u64(line, rel_ns / 1000);
    let ns = rel_ns % 1000;
    let digit = |d: u64| b'0' + d as u8; // d < 10
    line.extend_from_slice(&[b'.', digit(ns / 100), digit(ns / 10 % 10), digit(ns % 10)]);
    line.extend_from_slice(b",\"pid\":");
    push_u64(line, pid);
    line.extend_from_slice(b",\"tid\":");
    push_u64(line, tid);
}

/// `,"args":{…}`.
fn push_args(line: &mut Vec<u8>, args: &[(ArgName, Arg<'_>)]) {
    line.extend_from_slice(b",\"args\":{");
    for (i, (name, value)) in args.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        line.push(b'"');
        line.extend_from_slice(name.as_str().as_bytes());
        line.push(b'"');
        line.push(b':');
        match value {
            Arg::Uint(v) => push_u64(line, *v),
            Arg::Text(t) => push_string(line, t),
        }
    }
    line.push(b'}');
}

impl<W: Write> Format for ChromeJson<W> {
    fn process(&mut self, header: &Header, start_ns: u64) -> io::Result<()> {
        self.origin = start_ns;
        self.pid = header.pid;
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

    fn task_track(&mut self, uid: u64, label: &str) -> io::Result<()> {
        self.metadata(self.pid + 1, Some(uid), label)
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
        let line = self.slice_line(b"\"ph\":\"B\"", name, category, track, time)?;
        push_args(line, args);
        self.close_line()?;
        if let Some(flow) = terminating_flow {
            self.flow_line(b"\"ph\":\"f\",\"bp\":\"e\"", flow, track, time)?;
        }
        Ok(())
    }

    fn end(
        &mut self,
        track: Track,
        time: u64,
        name: Name<'_>,
        category: Category,
    ) -> io::Result<()> {
        self.slice_line(b"\"ph\":\"E\"", name, category, track, time)?;
        self.close_line()
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
        let line = self.slice_line(b"\"ph\":\"i\",\"s\":\"t\"", name, category, track, time)?;
        push_args(line, args);
        self.close_line()?;
        if let Some(flow) = flow {
            self.flow_line(b"\"ph\":\"s\"", flow, track, time)?;
        }
        Ok(())
    }

    fn counter(&mut self, track: Track, time: u64, name: &str, value: u64) -> io::Result<()> {
        let (pid, _) = self.place(track);
        let rel = time.saturating_sub(self.origin);
        let line = self.open_line()?;
        line.extend_from_slice(b"\"ph\":\"C\",\"name\":");
        push_string(line, name);
        push_place(line, rel, pid, 0);
        line.extend_from_slice(b",\"args\":{\"value\":");
        push_u64(line, value);
        line.push(b'}');
        self.close_line()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.start();
        self.buf.extend_from_slice(
            b"\n],\"displayTimeUnit\":\"ns\",\"otherData\":{\"generator\":\"flight-recorder\"}}\n",
        );
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.out.flush()
    }
}

/// Writes the rest of `reader`'s events to `out` as Chrome JSON. A damaged trace gives
/// [`ExportError::Trace`] after its intact part was written (the output is valid JSON).
pub fn write_chrome_json<R: Read, W: Write + Send>(
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
        push_place(&mut line, rel_ns, 7, 9);
        String::from_utf8(line).unwrap()
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
        let expected = [
            odd.text, odd.text, plain.text, plain.text, odd.text, odd.text,
        ];
        assert_eq!(names, expected);
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
}
