//! `flight-recorder bundle DIR -o debug.zip`: everything a support engineer asks for about a
//! dump directory, in one zip file (after CockroachDB's debug zip):
//!
//! - `index.txt`: the `ls` table (time, size, reason, tag, file, details);
//! - `index.json`: the same as JSON, with every header field;
//! - `traces/<file>`: every trace file, as written;
//! - `summaries/<file>.txt`: the `summary` of each trace file (or why it could not be read).
//!
//! The zip is written to a temporary name beside the output and renamed once complete; it is
//! readable by its owner only, like the traces it holds.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use flight_recorder_analysis::Summary;
use flight_recorder_format::time::format_utc_millis;
use flight_recorder_format::units::format_size;
use flight_recorder_format::TraceReader;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::failure::Failure;
use crate::ls::{self, Entry};

/// What went into a bundle.
pub struct BundleReport {
    /// Trace files included.
    pub traces: usize,
    /// Size of the zip file, bytes.
    pub bytes: u64,
}

/// `flight-recorder bundle DIR -o OUT`.
pub fn bundle(dir: &Path, output: &Path, out: &mut impl Write) -> Result<(), Failure> {
    let entries = ls::list(dir)?;
    if entries.is_empty() {
        return Err(Failure::Trace(
            dir.to_path_buf(),
            "the directory holds no trace files".to_string(),
        ));
    }
    let report = write_bundle(&entries, output)
        .map_err(|e| Failure::Trace(output.to_path_buf(), e.to_string()))?;
    writeln!(
        out,
        "wrote {}: {} trace file{}, {}",
        output.display(),
        report.traces,
        if report.traces == 1 { "" } else { "s" },
        format_size(report.bytes)
    )?;
    Ok(())
}

/// Writes the zip of `entries` to `output`, through a temporary file.
pub fn write_bundle(entries: &[Entry], output: &Path) -> io::Result<BundleReport> {
    let name = output
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let temp: PathBuf = output.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = write_zip(entries, &temp).and_then(|report| {
        fs::rename(&temp, output)?;
        Ok(report)
    });
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn write_zip(entries: &[Entry], path: &Path) -> io::Result<BundleReport> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    let mut zip = ZipWriter::new(BufWriter::new(file));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let file_options = |unix_ns: u64, size: u64| {
        SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .unix_permissions(0o600)
            .last_modified_time(zip_time(unix_ns))
            .large_file(size >= u64::from(u32::MAX))
    };

    zip.start_file("index.txt", file_options(now, 0))?;
    zip.write_all(ls::render_table(entries).as_bytes())?;
    zip.start_file("index.json", file_options(now, 0))?;
    let json = serde_json::to_string_pretty(&ls::to_json(entries)).map_err(io::Error::from)?;
    zip.write_all(json.as_bytes())?;

    for entry in entries {
        let written = entry.written_unix_ns().unwrap_or(now);
        zip.start_file(
            format!("traces/{}", entry.name),
            file_options(written, entry.size),
        )?;
        io::copy(&mut BufReader::new(File::open(&entry.path)?), &mut zip)?;
        zip.start_file(
            format!("summaries/{}.txt", entry.name),
            file_options(written, 0),
        )?;
        zip.write_all(summary_text(&entry.path).as_bytes())?;
    }
    let mut inner = zip.finish().map_err(io::Error::other)?;
    inner.flush()?;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    Ok(BundleReport {
        traces: entries.len(),
        bytes,
    })
}

/// The `summary` text of a trace file; a damaged file gives the summary of its intact part and
/// the error.
fn summary_text(path: &Path) -> String {
    let reader = match File::open(path)
        .map_err(|e| e.to_string())
        .and_then(|f| TraceReader::new(BufReader::new(f)).map_err(|e| e.to_string()))
    {
        Ok(reader) => reader,
        Err(e) => return format!("{}: {e}\n", path.display()),
    };
    match Summary::from_reader(reader) {
        Ok(summary) => summary.render_text(),
        Err(damaged) => format!(
            "{}\n{}: {}\n",
            damaged.summary.render_text(),
            path.display(),
            damaged.error
        ),
    }
}

/// A zip time stamp (local-time-less DOS format, seconds rounded down to even) for Unix
/// nanoseconds, in UTC; dates outside 1980–2107 become 1980-01-01.
fn zip_time(unix_ns: u64) -> DateTime {
    // `YYYY-MM-DDTHH:MM:SS.mmmZ`
    let text = format_utc_millis(unix_ns);
    let field = |range: std::ops::Range<usize>| text.get(range).and_then(|s| s.parse::<u16>().ok());
    let parts = (
        field(0..4),
        field(5..7),
        field(8..10),
        field(11..13),
        field(14..16),
        field(17..19),
    );
    if let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) = parts {
        if let Ok(time) =
            DateTime::from_date_and_time(y, mo as u8, d as u8, h as u8, mi as u8, s as u8)
        {
            return time;
        }
    }
    DateTime::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_times_are_utc_dates() {
        // 2026-11-28T02:35:36.123Z
        let time = zip_time(1_795_833_336_123_456_789);
        assert_eq!((time.year(), time.month(), time.day()), (2026, 11, 28));
        assert_eq!((time.hour(), time.minute(), time.second()), (2, 35, 36));
        assert_eq!(zip_time(0), DateTime::default());
    }
}
