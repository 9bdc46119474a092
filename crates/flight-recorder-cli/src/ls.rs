//! `flight-recorder ls DIR`: the trace files of a dump directory, oldest first, with the time
//! each was written, its size, why it was written (reason and tag) and the trigger's details,
//! read from each file's header.
//!
//! A trace file is a regular file named `executiontrace.<UTC time>[.<tag>].out`, the recorder's
//! dump names (the rules of `flight_recorder_format::dump_files`); other files, and the hidden
//! temporary files of dumps in progress, are left out. A file whose
//! header cannot be read is listed with the error (and the error is printed on standard error;
//! the exit status is then 1).
//!
//! `--verify` also reads every byte of each file and says whether it is complete: its end record
//! is there, every record's checksum matches and every event decodes (`complete`), or it is
//! `truncated` (a crash or a full disk while writing, or a partial copy), `corrupt`,
//! `unsupported` (a newer format version) or `unreadable`. A file that is not complete is
//! reported on standard error and the exit status is 1. It is opt-in because it reads the whole
//! directory.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use flight_recorder_format::dump_files;
use flight_recorder_format::time::format_utc_millis;
use flight_recorder_format::units::format_size as human_size;
use flight_recorder_format::{ErrorKind, Header, TraceReader};
use serde_json::{json, Value};

use crate::Failure;

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
    /// What `--verify` found, when asked.
    pub check: Option<Check>,
}

/// Whether a trace file is whole, as `ls --verify` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// The end record is there, every checksum matches and every event decodes.
    Complete,
    /// The file ends early (no end record, or a record cut short).
    Truncated(String),
    /// A checksum does not match, or the contents are not valid for the format.
    Corrupt(String),
    /// Written by a format version this tool does not read.
    Unsupported(String),
    /// The file could not be read.
    Unreadable(String),
}

impl Check {
    /// One word for the table and the JSON: `complete`, `truncated`, `corrupt`, `unsupported`,
    /// `unreadable`.
    pub fn word(&self) -> &'static str {
        match self {
            Check::Complete => "complete",
            Check::Truncated(_) => "truncated",
            Check::Corrupt(_) => "corrupt",
            Check::Unsupported(_) => "unsupported",
            Check::Unreadable(_) => "unreadable",
        }
    }

    /// What is wrong, for a file that is not complete.
    pub fn problem(&self) -> Option<&str> {
        match self {
            Check::Complete => None,
            Check::Truncated(e)
            | Check::Corrupt(e)
            | Check::Unsupported(e)
            | Check::Unreadable(e) => Some(e),
        }
    }

    fn from_error(error: flight_recorder_format::Error) -> Check {
        let text = error.to_string();
        match error.kind {
            ErrorKind::Truncated(_) => Check::Truncated(text),
            ErrorKind::Checksum | ErrorKind::Malformed(_) | ErrorKind::BadMagic => {
                Check::Corrupt(text)
            }
            ErrorKind::UnsupportedVersion { .. } => Check::Unsupported(text),
            ErrorKind::Io(_) => Check::Unreadable(text),
        }
    }
}

/// Reads the whole file at `path`: every record (its checksum is checked as it is read) and
/// every event of every chunk, up to the end record.
pub fn verify(path: &Path) -> Check {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) => return Check::Unreadable(e.to_string()),
    };
    let mut reader = match TraceReader::new(BufReader::with_capacity(256 << 10, file)) {
        Ok(reader) => reader,
        Err(e) => return Check::from_error(e),
    };
    loop {
        match reader.next_raw_chunk() {
            Ok(Some(chunk)) => {
                if let (_, _, Some(e)) = chunk.validate() {
                    return Check::from_error(e);
                }
                reader.recycle_chunk(chunk);
            }
            // The reader fails a file that ends without its end record, so this one is whole.
            Ok(None) => return Check::Complete,
            Err(e) => return Check::from_error(e),
        }
    }
}

impl Entry {
    /// When the file was written, Unix nanoseconds (the header's last clock sample).
    pub fn written_unix_ns(&self) -> Option<u64> {
        let header = self.header.as_ref().ok()?;
        let ns = header.clock.end.wall_ns.max(header.clock.start.wall_ns);
        (ns > 0).then_some(ns)
    }
}

/// Whether `name` is one of the recorder's trace file names (for the tests and the fuzz target,
/// which check what [`list`] keeps).
#[allow(dead_code)]
pub fn is_trace_name(name: &str) -> bool {
    dump_files::parse_name(name).is_some()
}

/// The trace files of `dir`, oldest first (name order, which is time order), with their
/// headers. A directory that cannot be read is an error (a missing one too).
pub fn list(dir: &Path) -> Result<Vec<Entry>, Failure> {
    let fail = |e: std::io::Error| Failure::Trace(dir.to_path_buf(), e.to_string());
    // `dump_files::list` takes a missing directory as an empty one; `ls` says it is missing.
    std::fs::read_dir(dir).map_err(fail)?;
    let mut entries = Vec::new();
    for file in dump_files::list(dir).map_err(fail)? {
        let header = File::open(&file.path)
            .map_err(|e| e.to_string())
            .and_then(|f| TraceReader::new(BufReader::new(f)).map_err(|e| e.to_string()))
            .map(|reader| reader.header().clone());
        entries.push(Entry {
            name: file.name().to_string(),
            path: file.path,
            size: file.size,
            header,
            check: None,
        });
    }
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

/// The table printed by `ls`; with a CHECK column after SIZE when the entries were verified.
pub fn render_table(entries: &[Entry]) -> String {
    let verified = entries.iter().any(|e| e.check.is_some());
    let mut rows: Vec<Vec<String>> = vec![vec![
        "TIME (UTC)".into(),
        "SIZE".into(),
        "REASON".into(),
        "TAG".into(),
        "FILE".into(),
        "DETAILS".into(),
    ]];
    if verified {
        rows[0].insert(2, "CHECK".into());
    }
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
        let mut row = vec![
            time,
            human_size(entry.size),
            reason,
            tag,
            entry.name.clone(),
            details,
        ];
        if verified {
            let check = entry.check.as_ref().map_or("-", Check::word);
            row.insert(2, check.into());
        }
        rows.push(row);
    }
    let mut widths = vec![0usize; rows[0].len()];
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
                if let Some(check) = &entry.check {
                    value["check"] = json!(check.word());
                    if let Some(problem) = check.problem() {
                        value["check_error"] = json!(problem);
                    }
                }
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
                        value["service"] = json!(h.service_name());
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

/// `flight-recorder ls DIR [--json] [--verify]`.
pub fn ls(dir: &Path, json: bool, verify_files: bool, out: &mut impl Write) -> Result<(), Failure> {
    let mut entries = list(dir)?;
    if verify_files {
        for entry in &mut entries {
            entry.check = Some(verify(&entry.path));
        }
    }
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
        } else if let Some(problem) = entry.check.as_ref().and_then(Check::problem) {
            out.flush()?;
            eprintln!("flight-recorder: {}: {problem}", entry.path.display());
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
}
