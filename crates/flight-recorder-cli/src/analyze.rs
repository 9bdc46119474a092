//! The analysis subcommands: `summary` and `diagnose` (of a file or a directory of files),
//! `convert` and `report`. Each is a thin layer over `flight_recorder_analysis`.

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use flight_recorder_analysis::chrome::write_chrome_json;
use flight_recorder_analysis::export::ExportError;
use flight_recorder_analysis::merge::MergeOptions;
use flight_recorder_analysis::output::WriteBehind;
use flight_recorder_analysis::perfetto::write_perfetto;
use flight_recorder_analysis::report::render_html;
use flight_recorder_analysis::{Summary, SummaryOptions};
use flight_recorder_format::TraceReader;

use crate::failure::Failure;
use crate::progress::Progress;

/// The formats `convert` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Perfetto protobuf (ui.perfetto.dev).
    Perfetto,
    /// Chrome JSON (chrome://tracing, speedscope).
    ChromeJson,
}

fn open(path: &Path) -> Result<(TraceReader<BufReader<File>>, u64), Failure> {
    let fail = |error: String| Failure::Trace(path.to_path_buf(), error);
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let reader = TraceReader::new(BufReader::with_capacity(256 << 10, file))
        .map_err(|e| fail(e.to_string()))?;
    Ok((reader, len))
}

/// The files a `summary` of `path` covers: the file itself, or the regular files of a directory
/// in name order (temporary `*.tmp` files of a dump in progress are skipped).
pub fn trace_files(path: &Path) -> Result<Vec<PathBuf>, Failure> {
    let meta = std::fs::metadata(path).map_err(|e| Failure::Trace(path.into(), e.to_string()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries =
        std::fs::read_dir(path).map_err(|e| Failure::Trace(path.into(), e.to_string()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| p.extension().is_none_or(|e| e != "tmp"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Failure::Trace(
            path.into(),
            "the directory holds no trace files".to_string(),
        ));
    }
    Ok(files)
}

/// Summarizes one file: the summary (of the intact part) and the error that ended it, if any.
pub fn summarize(
    path: &Path,
    options: SummaryOptions,
) -> Result<(Summary, Option<String>), Failure> {
    let (reader, len) = open(path)?;
    let progress = Progress::new("summary", len);
    let result = Summary::from_reader_with(reader, options, &mut |bytes| progress.set(bytes));
    progress.finish();
    let (mut summary, error) = match result {
        Ok(summary) => (summary, None),
        Err(damaged) => (*damaged.summary, Some(damaged.error.to_string())),
    };
    summary.path = Some(path.display().to_string());
    Ok((summary, error))
}

/// What `summary` prints of each file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The whole summary (it opens with the findings).
    Summary,
    /// The diagnosis alone: the file, its findings and the slowest requests' waits.
    Diagnosis,
}

/// The diagnosis of a summarized file as text: a line naming the file, then the findings.
pub fn diagnosis_text(summary: &Summary) -> String {
    let h = &summary.header;
    let window = summary.window.map_or_else(
        || "no events".to_string(),
        |w| {
            format!(
                "{} window from {}",
                flight_recorder_format::units::format_duration(w.duration_ns()),
                flight_recorder_format::time::format_utc_millis(w.start_ns)
            )
        },
    );
    let mut text = format!(
        "{}: {} (pid {}), {window}, written because: {}\n",
        summary.path.as_deref().unwrap_or("trace"),
        h.program,
        h.pid,
        h.reason
    );
    text.push_str(&summary.diagnosis.render_text());
    text
}

/// The diagnosis of a summarized file as JSON: `{ "path", "program", "pid", "reason",
/// "window": { "start_ns", "end_ns" } | null }` and the keys of `Diagnosis::to_json`.
pub fn diagnosis_json(summary: &Summary) -> serde_json::Value {
    let mut value = summary.diagnosis.to_json();
    if let serde_json::Value::Object(map) = &mut value {
        let h = &summary.header;
        map.insert("path".into(), serde_json::json!(summary.path));
        map.insert("program".into(), serde_json::json!(h.program));
        map.insert("pid".into(), serde_json::json!(h.pid));
        map.insert("reason".into(), serde_json::json!(h.reason));
        map.insert(
            "window".into(),
            summary.window.map_or(
                serde_json::Value::Null,
                |w| serde_json::json!({ "start_ns": w.start_ns, "end_ns": w.end_ns }),
            ),
        );
    }
    value
}

/// `summary FILE|DIR` and `diagnose FILE|DIR`: text or JSON for each file. For a directory, a
/// file that cannot be read gives its error line and the others are still summarized; the first
/// failure is returned.
pub fn summary(
    path: &Path,
    json: bool,
    options: SummaryOptions,
    view: View,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let files = trace_files(path)?;
    let many = files.len() > 1 || path.is_dir();
    let mut first_failure = None;
    let mut values = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let (summary, error) = match summarize(file, options) {
            Ok(result) => result,
            Err(failure) => {
                if let Failure::Trace(p, e) = &failure {
                    out.flush()?;
                    eprintln!("flight-recorder: {}: {e}", p.display());
                }
                first_failure.get_or_insert(failure);
                continue;
            }
        };
        if json {
            values.push(match view {
                View::Summary => summary.to_json(),
                View::Diagnosis => diagnosis_json(&summary),
            });
        } else {
            if many && i > 0 {
                writeln!(out, "\n{}\n", "=".repeat(78))?;
            }
            match view {
                View::Summary => write!(out, "{}", summary.render_text())?,
                View::Diagnosis => write!(out, "{}", diagnosis_text(&summary))?,
            }
        }
        if let Some(e) = error {
            if !json {
                out.flush()?;
            }
            eprintln!("flight-recorder: {}: {e}", file.display());
            first_failure.get_or_insert(Failure::Reported);
        }
    }
    if json {
        let value = if many {
            serde_json::Value::Array(values)
        } else {
            values.pop().unwrap_or(serde_json::Value::Null)
        };
        if !value.is_null() {
            let text = serde_json::to_string_pretty(&value).map_err(io::Error::from)?;
            writeln!(out, "{text}")?;
        }
    }
    match first_failure {
        None => Ok(()),
        Some(Failure::Trace(..)) => Err(Failure::Reported),
        Some(other) => Err(other),
    }
}

/// The default output path of `convert`: the input with `.perfetto-trace` or `.json` added.
pub fn default_output(input: &Path, to: Target) -> PathBuf {
    let mut name = input.as_os_str().to_os_string();
    name.push(match to {
        Target::Perfetto => ".perfetto-trace",
        Target::ChromeJson => ".json",
    });
    PathBuf::from(name)
}

/// `convert FILE --to FORMAT [-o OUT]`; prints the output's path.
pub fn convert(
    path: &Path,
    to: Target,
    output: Option<PathBuf>,
    reorder_events: Option<usize>,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let (reader, len) = open(path)?;
    let output = output.unwrap_or_else(|| default_output(path, to));
    let file = File::create(&output).map_err(|e| Failure::Trace(output.clone(), e.to_string()))?;
    // Written on a thread of its own: the output is several times the trace's size, and its
    // writing would otherwise add to the formatting's time.
    let writer =
        WriteBehind::new(file).map_err(|e| Failure::Trace(output.clone(), e.to_string()))?;
    let mut merge = MergeOptions::default();
    if let Some(n) = reorder_events {
        merge.reorder_events = n;
    }
    let progress = Progress::new("convert", len);
    let mut tick = |bytes| progress.set(bytes);
    let result = match to {
        Target::Perfetto => write_perfetto(reader, writer, merge, &mut tick).map(drop),
        Target::ChromeJson => write_chrome_json(reader, writer, merge, &mut tick).map(drop),
    };
    progress.finish();
    match result {
        Ok(()) => {
            writeln!(out, "{}", output.display())?;
            Ok(())
        }
        Err(ExportError::Trace(e)) => {
            writeln!(out, "{}", output.display())?;
            Err(Failure::Trace(path.to_path_buf(), e.to_string()))
        }
        Err(ExportError::Output(e)) => Err(Failure::Trace(output, e.to_string())),
    }
}

/// `report FILE -o OUT`: the HTML report; prints the output's path.
pub fn report(
    path: &Path,
    output: &Path,
    options: SummaryOptions,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let (summary, error) = summarize(path, options)?;
    let html = render_html(&summary);
    std::fs::write(output, html)
        .map_err(|e| Failure::Trace(output.to_path_buf(), e.to_string()))?;
    writeln!(out, "{}", output.display())?;
    match error {
        None => Ok(()),
        Some(e) => Err(Failure::Trace(path.to_path_buf(), e)),
    }
}
