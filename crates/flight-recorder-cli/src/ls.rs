//! `flight-recorder ls DIR`: the trace files of a dump directory, oldest first, with the time
//! each was written, its size, why it was written (reason and tag) and the trigger's details,
//! read from each file's header.
//!
//! A trace file is a regular file named `executiontrace.<…>.out` (the recorder's dump names);
//! other files, and the hidden temporary files of dumps in progress, are left out. A file whose
//! header cannot be read is listed with the error (and the error is printed on standard error;
//! the exit status is then 1).

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use flight_recorder_format::time::format_utc_millis;
use flight_recorder_format::units::format_size as human_size;
use flight_recorder_format::{Header, TraceReader};
use serde_json::{json, Value};

use crate::Failure;

/// The prefix and extension of the recorder's file names.
const PREFIX: &str = "executiontrace.";
const SUFFIX: &str = ".out";

/// The longest details text shown in the table.
const MAX_DETAILS: usize = 80;

/// One trace file of the directory.
pub struct Entry {
    /// Its path.
    pub path: PathBuf,
    /// Its file name.
    pub name: String,
    /// Its size, bytes.
    pub size: u64,
    /// Its header, or why it could not be read.
    pub header: Result<Header, String>,
}

impl Entry {
    /// When the file was written, Unix nanoseconds (the header's last clock sample).
    pub fn written_unix_ns(&self) -> Option<u64> {
        let header = self.header.as_ref().ok()?;
        let ns = header.clock.end.wall_ns.max(header.clock.start.wall_ns);
        (ns > 0).then_some(ns)
    }
}

/// Whether `name` is one of the recorder's trace file names.
pub fn is_trace_name(name: &str) -> bool {
    name.starts_with(PREFIX) && name.ends_with(SUFFIX) && name.len() > PREFIX.len() + SUFFIX.len()
}

/// The trace files of `dir`, in name order (which is time order), with their headers.
pub fn list(dir: &Path) -> Result<Vec<Entry>, Failure> {
    let fail = |e: std::io::Error| Failure::Trace(dir.to_path_buf(), e.to_string());
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(fail)? {
        let entry = entry.map_err(fail)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_trace_name(&name) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let path = entry.path();
        let header = File::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|f| TraceReader::new(BufReader::new(f)).map_err(|e| e.to_string()))
            .map(|reader| reader.header().clone());
        entries.push(Entry {
            path,
            name,
            size: meta.len(),
            header,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// The details of a header as `name=value` pairs, without the trigger's name (the reason says
/// it), with the suppressed count when there is one.
fn details_text(header: &Header) -> String {
    let mut parts: Vec<String> = header
        .details
        .iter()
        .filter(|(name, _)| name != "trigger" && !name.starts_with("suppressed."))
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    if header.suppressed_triggers > 0 {
        parts.push(format!("suppressed={}", header.suppressed_triggers));
    }
    let text = parts.join(" ").replace(['\n', '\r', '\t'], " ");
    if text.chars().count() > MAX_DETAILS {
        let cut: String = text.chars().take(MAX_DETAILS - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// The table printed by `ls`.
pub fn render_table(entries: &[Entry]) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "TIME (UTC)".into(),
        "SIZE".into(),
        "REASON".into(),
        "TAG".into(),
        "FILE".into(),
        "DETAILS".into(),
    ]];
    for entry in entries {
        let time = entry
            .written_unix_ns()
            .map(format_utc_millis)
            .unwrap_or_else(|| "?".into());
        let (reason, tag, details) = match &entry.header {
            Ok(h) => (
                h.reason.clone(),
                if h.tag.is_empty() {
                    "-".into()
                } else {
                    h.tag.clone()
                },
                details_text(h),
            ),
            Err(e) => ("?".into(), "?".into(), format!("unreadable: {e}")),
        };
        rows.push([
            time,
            human_size(entry.size),
            reason,
            tag,
            entry.name.clone(),
            details,
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    let total: u64 = entries.iter().map(|e| e.size).sum();
    text.push_str(&format!(
        "{} file{}, {}\n",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
        human_size(total)
    ));
    text
}

/// The listing as JSON: one object per file.
pub fn to_json(entries: &[Entry]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|entry| {
                let mut value = json!({
                    "file": entry.name,
                    "path": entry.path.display().to_string(),
                    "size": entry.size,
                    "time": entry.written_unix_ns().map(format_utc_millis),
                    "time_unix_ns": entry.written_unix_ns(),
                });
                match &entry.header {
                    Ok(h) => {
                        let details: Vec<Value> = h
                            .details
                            .iter()
                            .map(|(name, value)| json!([name, value]))
                            .collect();
                        value["reason"] = json!(h.reason);
                        value["tag"] = json!(h.tag);
                        value["mode"] = json!(h.mode);
                        value["program"] = json!(h.program);
                        value["program_version"] = json!(h.program_version);
                        value["host"] = json!(h.host);
                        value["pid"] = json!(h.pid);
                        value["suppressed_triggers"] = json!(h.suppressed_triggers);
                        value["details"] = Value::Array(details);
                    }
                    Err(e) => value["error"] = json!(e),
                }
                value
            })
            .collect(),
    )
}

/// `flight-recorder ls DIR [--json]`.
pub fn ls(dir: &Path, json: bool, out: &mut impl Write) -> Result<(), Failure> {
    let entries = list(dir)?;
    if json {
        let text =
            serde_json::to_string_pretty(&to_json(&entries)).map_err(std::io::Error::from)?;
        writeln!(out, "{text}")?;
    } else {
        write!(out, "{}", render_table(&entries))?;
    }
    let mut unreadable = false;
    for entry in &entries {
        if let Err(e) = &entry.header {
            out.flush()?;
            eprintln!("flight-recorder: {}: {e}", entry.path.display());
            unreadable = true;
        }
    }
    if unreadable {
        Err(Failure::Reported)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_names() {
        assert!(is_trace_name("executiontrace.2026-01-01T00_00_00.000.out"));
        assert!(is_trace_name(
            "executiontrace.2026-01-01T00_00_00.000.panic.out"
        ));
        assert!(!is_trace_name(
            ".executiontrace.2026-01-01T00_00_00.000.out.1.tmp"
        ));
        assert!(!is_trace_name("notes.txt"));
        assert!(!is_trace_name("executiontrace.out"));
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(532), "532 B");
        assert_eq!(human_size(49_356), "48.2 KiB");
        assert_eq!(human_size(10 << 20), "10.0 MiB");
    }
}
