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

use crate::export::{export, Arg, ExportError, Format, Track};
use crate::merge::MergeOptions;

/// The Chrome JSON [`Format`].
pub struct ChromeJson<W: Write> {
    out: W,
    origin: u64,
    pid: u64,
    started: bool,
    first_event: bool,
    line: Vec<u8>,
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
            line: Vec::with_capacity(256),
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn start(&mut self) -> io::Result<()> {
        if !self.started {
            self.started = true;
            self.out.write_all(b"{\"traceEvents\":[\n")?;
        }
        Ok(())
    }

    /// Writes one event: `fields` is the JSON object's body without braces.
    fn emit(&mut self, fields: std::fmt::Arguments<'_>) -> io::Result<()> {
        self.start()?;
        self.line.clear();
        if !self.first_event {
            self.line.extend_from_slice(b",\n");
        }
        self.first_event = false;
        self.line.push(b'{');
        self.line.write_fmt(fields)?;
        self.line.push(b'}');
        self.out.write_all(&self.line)
    }

    /// Microseconds from the first event with nanosecond decimals.
    fn ts(&self, time: u64) -> String {
        let rel = time.saturating_sub(self.origin);
        format!("{}.{:03}", rel / 1000, rel % 1000)
    }

    fn place(&self, track: Track) -> (u64, u64) {
        match track {
            Track::Thread(id) => (self.pid, id),
            Track::Task(uid) => (self.pid + 1, uid),
            Track::UserTask(id) => (self.pid + 2, id),
            Track::Counter(_) => (self.pid, 0),
        }
    }

    fn args(args: &[(&str, Arg)]) -> String {
        let mut out = String::from("{");
        for (i, (name, value)) in args.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&quote(name));
            out.push(':');
            match value {
                Arg::Uint(v) => out.push_str(&v.to_string()),
                Arg::Text(t) => out.push_str(&quote(t)),
            }
        }
        out.push('}');
        out
    }

    fn metadata(&mut self, pid: u64, tid: Option<u64>, name: &str) -> io::Result<()> {
        let (what, tid) = match tid {
            None => ("process_name", 0),
            Some(tid) => ("thread_name", tid),
        };
        self.emit(format_args!(
            "\"ph\":\"M\",\"name\":\"{what}\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"name\":{}}}",
            quote(name)
        ))
    }
}

/// A JSON string literal.
fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
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
        name: &str,
        category: &str,
        args: &[(&str, Arg)],
        terminating_flow: Option<u64>,
    ) -> io::Result<()> {
        let (pid, tid) = self.place(track);
        let ts = self.ts(time);
        let (name, category) = (quote(name), quote(category));
        self.emit(format_args!(
            "\"ph\":\"B\",\"name\":{name},\"cat\":{category},\"ts\":{ts},\"pid\":{pid},\"tid\":{tid},\"args\":{}",
            Self::args(args)
        ))?;
        if let Some(flow) = terminating_flow {
            self.emit(format_args!(
                "\"ph\":\"f\",\"bp\":\"e\",\"name\":\"wake\",\"cat\":\"wake\",\"id\":{flow},\"ts\":{ts},\"pid\":{pid},\"tid\":{tid}"
            ))?;
        }
        Ok(())
    }

    fn end(&mut self, track: Track, time: u64, name: &str, category: &str) -> io::Result<()> {
        let (pid, tid) = self.place(track);
        let ts = self.ts(time);
        let (name, category) = (quote(name), quote(category));
        self.emit(format_args!(
            "\"ph\":\"E\",\"name\":{name},\"cat\":{category},\"ts\":{ts},\"pid\":{pid},\"tid\":{tid}"
        ))
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
        let (pid, tid) = self.place(track);
        let ts = self.ts(time);
        let (name, category) = (quote(name), quote(category));
        self.emit(format_args!(
            "\"ph\":\"i\",\"s\":\"t\",\"name\":{name},\"cat\":{category},\"ts\":{ts},\"pid\":{pid},\"tid\":{tid},\"args\":{}",
            Self::args(args)
        ))?;
        if let Some(flow) = flow {
            self.emit(format_args!(
                "\"ph\":\"s\",\"name\":\"wake\",\"cat\":\"wake\",\"id\":{flow},\"ts\":{ts},\"pid\":{pid},\"tid\":{tid}"
            ))?;
        }
        Ok(())
    }

    fn counter(&mut self, track: Track, time: u64, name: &str, value: u64) -> io::Result<()> {
        let (pid, _) = self.place(track);
        let ts = self.ts(time);
        let name = quote(name);
        self.emit(format_args!(
            "\"ph\":\"C\",\"name\":{name},\"ts\":{ts},\"pid\":{pid},\"tid\":0,\"args\":{{\"value\":{value}}}"
        ))
    }

    fn finish(&mut self) -> io::Result<()> {
        self.start()?;
        self.out.write_all(
            b"\n],\"displayTimeUnit\":\"ns\",\"otherData\":{\"generator\":\"flight-recorder\"}}\n",
        )?;
        self.out.flush()
    }
}

/// Writes the rest of `reader`'s events to `out` as Chrome JSON. A damaged trace gives
/// [`ExportError::Trace`] after its intact part was written (the output is valid JSON).
pub fn write_chrome_json<R: Read, W: Write>(
    reader: TraceReader<R>,
    out: W,
    merge: MergeOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<W, ExportError> {
    export(reader, ChromeJson::new(out), merge, progress).map(ChromeJson::into_inner)
}
