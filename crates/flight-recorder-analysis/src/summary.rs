//! A summary of one trace file: what it is, the time window it covers, its events by kind and
//! thread, its sizes and the data the recorder dropped.
//!
//! [`Summary::from_reader`] reads the events once, keeping only counters (one per kind byte and
//! one per thread), and summarizes the intact prefix of a damaged file along with the error that
//! ended it.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io::Read;

use flight_recorder_format::time::format_utc_millis;
use flight_recorder_format::{Dropped, Error, Header, TraceReader};
use serde_json::{json, Value};

/// The summary of a trace file (or of the intact prefix of a damaged one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The file's path, if the caller sets it (the reader does not know it); shown first.
    pub path: Option<String>,
    /// The file's header: mode, reason, tag, process, recorder version, clock and settings.
    pub header: Header,
    /// Whether the file ends with its end record (it was written completely).
    pub complete: bool,
    /// The error that ended reading, if any: a torn or corrupt file. Everything else in the
    /// summary covers the events before it.
    pub error: Option<String>,
    /// The time span of the events, `None` when there are none.
    pub window: Option<Window>,
    /// The number of events.
    pub events: u64,
    /// Events by kind, the most frequent first (ties by kind byte).
    pub kinds: Vec<KindCount>,
    /// The threads, by id: those of the threads table and any that recorded events without
    /// being described.
    pub threads: Vec<ThreadSummary>,
    /// Bytes of the file read: the whole file when it is complete, else up to the damage.
    pub file_bytes: u64,
    /// The number of chunk records.
    pub chunks: u64,
    /// Bytes of encoded events in the chunks (without the chunks' framing and prefixes).
    pub event_bytes: u64,
    /// Data the recorder reported as dropped.
    pub dropped: Dropped,
}

/// The time span covered by a file's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The earliest event's time, nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// The latest event's time, nanoseconds since the Unix epoch.
    pub end_ns: u64,
}

impl Window {
    /// The window's length in nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns - self.start_ns
    }
}

/// The number of events of one kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindCount {
    /// The kind byte.
    pub byte: u8,
    /// The kind's name, from the file's kinds table (so kinds this version does not know are
    /// named too).
    pub name: String,
    /// How many events of this kind the file holds.
    pub count: u64,
}

/// One thread of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadSummary {
    /// The recorder's thread id.
    pub id: u64,
    /// The operating system's thread id, `None` if the threads table does not describe the
    /// thread.
    pub os_tid: Option<u64>,
    /// The thread's name (empty when unnamed or not described).
    pub name: String,
    /// How many events the thread recorded.
    pub events: u64,
}

/// A trace that could not be read to its end: the summary of its intact prefix and the error.
#[derive(Debug)]
pub struct DamagedTrace {
    /// The summary of the events before the damage; its [`Summary::error`] holds the error's
    /// message.
    pub summary: Box<Summary>,
    /// The error that ended reading, with its byte offset.
    pub error: Error,
}

impl fmt::Display for DamagedTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for DamagedTrace {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl Summary {
    /// Reads the rest of `reader`'s events and summarizes the file.
    ///
    /// A file that is torn, corrupt or lacks its end record gives a [`DamagedTrace`]: the
    /// summary of the events before the damage, and the error.
    pub fn from_reader<R: Read>(mut reader: TraceReader<R>) -> Result<Summary, DamagedTrace> {
        let mut by_kind = [0u64; 256];
        let mut by_thread: BTreeMap<u64, u64> = BTreeMap::new();
        let mut window: Option<Window> = None;
        let mut events = 0u64;
        let error = loop {
            match reader.next_event() {
                Ok(Some(event)) => {
                    events += 1;
                    by_kind[usize::from(event.kind_byte)] += 1;
                    *by_thread.entry(event.thread).or_default() += 1;
                    let t = event.time_ns;
                    window = Some(match window {
                        None => Window {
                            start_ns: t,
                            end_ns: t,
                        },
                        Some(w) => Window {
                            start_ns: w.start_ns.min(t),
                            end_ns: w.end_ns.max(t),
                        },
                    });
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };

        let mut kinds: Vec<KindCount> = (0..=u8::MAX)
            .filter(|&byte| by_kind[usize::from(byte)] > 0)
            .map(|byte| KindCount {
                byte,
                name: reader
                    .kind_info(byte)
                    .map_or_else(|| format!("kind_{byte}"), |info| info.name.clone()),
                count: by_kind[usize::from(byte)],
            })
            .collect();
        kinds.sort_by(|a, b| b.count.cmp(&a.count).then(a.byte.cmp(&b.byte)));

        let mut threads: BTreeMap<u64, ThreadSummary> = reader
            .threads()
            .values()
            .map(|t| {
                let summary = ThreadSummary {
                    id: t.id,
                    os_tid: Some(t.os_tid),
                    name: t.name.clone(),
                    events: 0,
                };
                (t.id, summary)
            })
            .collect();
        for (&id, &count) in &by_thread {
            threads
                .entry(id)
                .or_insert_with(|| ThreadSummary {
                    id,
                    os_tid: None,
                    name: String::new(),
                    events: 0,
                })
                .events = count;
        }

        let (chunks, event_bytes) = reader.chunk_stats();
        let summary = Summary {
            path: None,
            header: reader.header().clone(),
            complete: reader.is_complete(),
            error: error.as_ref().map(Error::to_string),
            window,
            events,
            kinds,
            threads: threads.into_values().collect(),
            file_bytes: reader.bytes_read(),
            chunks,
            event_bytes,
            dropped: reader.dropped(),
        };
        match error {
            None => Ok(summary),
            Some(error) => Err(DamagedTrace {
                summary: Box::new(summary),
                error,
            }),
        }
    }

    /// The number of events of the kind with this name (0 if none).
    pub fn count_of(&self, kind_name: &str) -> u64 {
        self.kinds
            .iter()
            .filter(|k| k.name == kind_name)
            .map(|k| k.count)
            .sum()
    }

    /// Average encoded bytes per event, `None` without events.
    pub fn event_bytes_per_event(&self) -> Option<f64> {
        ratio(self.event_bytes, self.events)
    }

    /// Average file bytes per event (everything counted: header, tables, framing), `None`
    /// without events.
    pub fn file_bytes_per_event(&self) -> Option<f64> {
        ratio(self.file_bytes, self.events)
    }

    /// The summary as aligned text for people, one fact per line, then tables of the event
    /// kinds and the threads. Ends with a newline.
    pub fn render_text(&self) -> String {
        let h = &self.header;
        let mut facts: Vec<(&str, String)> = Vec::new();
        if let Some(path) = &self.path {
            facts.push(("trace", path.clone()));
        }
        facts.push(("mode", h.mode.clone()));
        facts.push(("reason", h.reason.clone()));
        if !h.tag.is_empty() {
            facts.push(("tag", h.tag.clone()));
        }
        facts.push(("program", format!("{} (pid {})", h.program, h.pid)));
        facts.push(("host", h.host.clone()));
        if !h.cmdline.is_empty() {
            facts.push(("command", h.cmdline.clone()));
        }
        facts.push(("recorder", h.recorder_version.clone()));
        facts.push(("clock", h.clock.source.clone()));
        if h.min_age_ns != 0 || h.max_bytes != 0 {
            facts.push((
                "settings",
                format!(
                    "min_age {}, max_bytes {}, chunk_size {}",
                    format_duration(h.min_age_ns),
                    h.max_bytes,
                    h.chunk_size
                ),
            ));
        } else if h.chunk_size != 0 {
            facts.push(("settings", format!("chunk_size {}", h.chunk_size)));
        }
        facts.push((
            "complete",
            if self.complete { "yes" } else { "no" }.to_string(),
        ));
        if let Some(error) = &self.error {
            facts.push(("error", error.clone()));
        }
        match &self.window {
            Some(w) => {
                facts.push((
                    "window",
                    format!(
                        "{} .. {}",
                        format_utc_millis(w.start_ns),
                        format_utc_millis(w.end_ns)
                    ),
                ));
                facts.push(("duration", format_duration(w.duration_ns())));
            }
            None => facts.push(("window", "no events".to_string())),
        }
        facts.push(("events", self.events.to_string()));
        facts.push((
            "chunks",
            format!(
                "{} holding {} event bytes{}",
                self.chunks,
                self.event_bytes,
                per_event(self.event_bytes_per_event())
            ),
        ));
        facts.push((
            "file size",
            format!(
                "{} bytes{}",
                self.file_bytes,
                per_event(self.file_bytes_per_event())
            ),
        ));
        facts.push((
            "dropped",
            if self.dropped == Dropped::default() {
                "nothing".to_string()
            } else {
                format!(
                    "{} chunks, {} bytes",
                    self.dropped.chunks, self.dropped.bytes
                )
            },
        ));

        let mut out = String::new();
        let key_width = facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (key, value) in &facts {
            let _ = writeln!(out, "{key:<key_width$}  {value}");
        }

        if !self.kinds.is_empty() {
            out.push_str("\nevents by kind\n");
            let rows: Vec<Vec<String>> = self
                .kinds
                .iter()
                .map(|k| {
                    vec![
                        k.name.clone(),
                        k.count.to_string(),
                        percent(k.count, self.events),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["kind", "events", "share"],
                &rows,
                &[false, true, true],
            );
        }
        if !self.threads.is_empty() {
            out.push_str("\nthreads\n");
            let rows: Vec<Vec<String>> = self
                .threads
                .iter()
                .map(|t| {
                    vec![
                        t.id.to_string(),
                        t.os_tid
                            .map_or_else(|| "?".to_string(), |tid| tid.to_string()),
                        t.name.clone(),
                        t.events.to_string(),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["id", "os tid", "name", "events"],
                &rows,
                &[true, true, false, true],
            );
        }
        out
    }

    /// The summary as JSON. The keys are stable:
    ///
    /// ```text
    /// {
    ///   "path": string | null,
    ///   "file": { "mode", "reason", "tag", "program", "host", "cmdline", "recorder_version",
    ///             "clock_source": string, "pid", "min_age_ns", "max_bytes", "chunk_size": number },
    ///   "complete": bool,
    ///   "error": string | null,
    ///   "window": { "start_ns", "end_ns", "duration_ns": number,
    ///               "start", "end": string (RFC 3339 UTC, milliseconds) } | null,
    ///   "events": { "total": number, "by_kind": { kind name: number } },
    ///   "threads": [ { "id": number, "os_tid": number | null, "name": string, "events": number } ],
    ///   "size": { "file_bytes", "chunks", "event_bytes": number,
    ///             "event_bytes_per_event", "file_bytes_per_event": number | null },
    ///   "dropped": { "chunks", "bytes": number }
    /// }
    /// ```
    ///
    /// Times are nanoseconds since the Unix epoch; `threads` is ordered by id. Two kinds of one
    /// name (possible only in a hand-made file) add up under that name in `by_kind`.
    pub fn to_json(&self) -> Value {
        let h = &self.header;
        let mut by_kind = serde_json::Map::new();
        for k in &self.kinds {
            let total = by_kind.get(&k.name).and_then(Value::as_u64).unwrap_or(0) + k.count;
            by_kind.insert(k.name.clone(), json!(total));
        }
        let window = self.window.map(|w| {
            json!({
                "start_ns": w.start_ns,
                "end_ns": w.end_ns,
                "duration_ns": w.duration_ns(),
                "start": format_utc_millis(w.start_ns),
                "end": format_utc_millis(w.end_ns),
            })
        });
        let threads: Vec<Value> = self
            .threads
            .iter()
            .map(|t| {
                json!({
                    "id": t.id,
                    "os_tid": t.os_tid,
                    "name": t.name,
                    "events": t.events,
                })
            })
            .collect();
        json!({
            "path": self.path,
            "file": {
                "mode": h.mode,
                "reason": h.reason,
                "tag": h.tag,
                "program": h.program,
                "pid": h.pid,
                "host": h.host,
                "cmdline": h.cmdline,
                "recorder_version": h.recorder_version,
                "clock_source": h.clock.source,
                "min_age_ns": h.min_age_ns,
                "max_bytes": h.max_bytes,
                "chunk_size": h.chunk_size,
            },
            "complete": self.complete,
            "error": self.error,
            "window": window,
            "events": {
                "total": self.events,
                "by_kind": by_kind,
            },
            "threads": threads,
            "size": {
                "file_bytes": self.file_bytes,
                "chunks": self.chunks,
                "event_bytes": self.event_bytes,
                "event_bytes_per_event": self.event_bytes_per_event(),
                "file_bytes_per_event": self.file_bytes_per_event(),
            },
            "dropped": {
                "chunks": self.dropped.chunks,
                "bytes": self.dropped.bytes,
            },
        })
    }
}

fn ratio(bytes: u64, events: u64) -> Option<f64> {
    (events > 0).then(|| bytes as f64 / events as f64)
}

fn per_event(ratio: Option<f64>) -> String {
    ratio.map_or_else(String::new, |r| format!(" ({r:.2} bytes/event)"))
}

fn percent(part: u64, total: u64) -> String {
    if total == 0 {
        return String::new();
    }
    format!("{:.1}%", part as f64 * 100.0 / total as f64)
}

/// A duration for people: `950ns`, `12.345µs`, `1.500ms`, `10.000s`.
fn format_duration(ns: u64) -> String {
    let ns_f = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.3}µs", ns_f / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.3}ms", ns_f / 1e6)
    } else {
        format!("{:.3}s", ns_f / 1e9)
    }
}

/// Appends an indented table with a header row; `right[i]` aligns column `i` to the right.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>], right: &[bool]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let width = widths[i];
            if right[i] {
                let _ = write!(line, "  {cell:>width$}");
            } else {
                let _ = write!(line, "  {cell:<width$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_a_unit() {
        assert_eq!(format_duration(0), "0ns");
        assert_eq!(format_duration(999), "999ns");
        assert_eq!(format_duration(12_345), "12.345µs");
        assert_eq!(format_duration(1_500_000), "1.500ms");
        assert_eq!(format_duration(10_000_000_000), "10.000s");
    }

    #[test]
    fn tables_align_columns() {
        let mut out = String::new();
        let rows = vec![
            vec!["poll_start".to_string(), "7".to_string()],
            vec!["log".to_string(), "12345".to_string()],
        ];
        table(&mut out, &["kind", "events"], &rows, &[false, true]);
        assert_eq!(
            out,
            "  kind        events\n  poll_start       7\n  log          12345\n"
        );
    }
}
