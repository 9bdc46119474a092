//! Trace files and directories of them into a tree of Parquet files (see [`export`]).

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::{read_snapshot, Error, ErrorKind, ExportOptions, ExportReport, SnapshotTables, TABLES};

/// Exports trace files to Parquet: each input is a trace file, or a directory whose trace files
/// (files named `*.out`, not hidden, in it and its subdirectories) are exported, in name order.
///
/// Each table of each file with at least one row becomes
/// `OUT/<table>/service=<service>/date=<YYYY-MM-DD>/host=<host>/<snapshot_id>.parquet` (a table
/// without rows writes no file; the `snapshots` table always has one row). A file that already
/// exists is replaced, so exporting a file again gives the same tree. Partition values are
/// escaped as Hive does (`%2F` for `/`, …).
///
/// A file that cannot be read (missing, not a trace, of an unknown version, torn or corrupt,
/// unless [`crate::TableOptions::accept_damaged`]) or written is counted in
/// [`ExportReport::files_failed`] with its error, and the export goes on with the next one. The
/// error returned is for `out` itself: it cannot be created or is not a directory.
pub fn export(
    inputs: &[PathBuf],
    out: &Path,
    options: &ExportOptions,
) -> Result<ExportReport, Error> {
    fs::create_dir_all(out).map_err(|e| Error::new(out, ErrorKind::Io(e)))?;
    if !out.is_dir() {
        return Err(Error::new(
            out,
            ErrorKind::Io(std::io::Error::other("not a directory")),
        ));
    }
    let mut report = ExportReport {
        rows: TABLES.iter().map(|t| (*t, 0)).collect(),
        ..ExportReport::default()
    };
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            if let Err(e) = trace_files(input, &mut files) {
                report.files_failed += 1;
                report.failures.push(Error::new(input, ErrorKind::Io(e)));
            }
        } else {
            files.push(input.clone());
        }
    }
    for file in files {
        let written = read_snapshot(&file, &options.tables)
            .and_then(|tables| write_snapshot(&tables, out).map(|n| (tables, n)));
        match written {
            Ok((tables, parquet_files)) => {
                report.files_done += 1;
                report.parquet_files += parquet_files;
                report.input_bytes += fs::metadata(&file).map_or(0, |m| m.len());
                for ((_, rows), (_, batch)) in report.rows.iter_mut().zip(&tables.tables) {
                    *rows += batch.num_rows() as u64;
                }
            }
            Err(e) => {
                report.files_failed += 1;
                report.failures.push(e);
            }
        }
    }
    Ok(report)
}

/// The trace files under `dir`, in name order, depth first.
fn trace_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            trace_files(&path, out)?;
        } else if name.ends_with(".out") {
            out.push(path);
        }
    }
    Ok(())
}

/// A partition value escaped as Hive escapes them: `%XX` for the characters that cannot be in a
/// path component or would be read as syntax.
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_control() || "\"#%'*/:=?\\\u{7f}{}[]^".contains(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if out.is_empty() || out == "." || out == ".." {
        out = out.replace('.', "%2E");
        if out.is_empty() {
            out.push_str("__HIVE_DEFAULT_PARTITION__");
        }
    }
    out
}

/// The directory of a table's files for a snapshot.
pub(crate) fn partition_dir(out: &Path, table: &str, tables: &SnapshotTables) -> PathBuf {
    out.join(table)
        .join(format!("service={}", escape(&tables.service)))
        .join(format!("date={}", escape(&tables.date)))
        .join(format!("host={}", escape(&tables.host)))
}

/// Writes the non-empty tables of a snapshot; returns the number of files written.
fn write_snapshot(tables: &SnapshotTables, out: &Path) -> Result<u64, Error> {
    let mut written = 0;
    for (table, batch) in &tables.tables {
        if batch.num_rows() == 0 {
            continue;
        }
        let dir = partition_dir(out, table, tables);
        fs::create_dir_all(&dir).map_err(|e| Error::new(&dir, ErrorKind::Io(e)))?;
        let file_name = format!("{}.parquet", escape(&tables.snapshot_id));
        let path = dir.join(&file_name);
        let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let result = write_batch(&temp, batch).and_then(|()| {
            fs::rename(&temp, &path).map_err(|e| Error::new(&path, ErrorKind::Io(e)))
        });
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result?;
        written += 1;
    }
    Ok(written)
}

/// The writer's settings: zstd, statistics per page (the defaults), one row group per 1 Mi rows.
fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build()
}

fn write_batch(path: &Path, batch: &RecordBatch) -> Result<(), Error> {
    let file = File::create(path).map_err(|e| Error::new(path, ErrorKind::Io(e)))?;
    let parquet = |e| Error::new(path, ErrorKind::Parquet(e));
    let mut writer = ArrowWriter::try_new(BufWriter::new(file), batch.schema(), Some(properties()))
        .map_err(parquet)?;
    writer.write(batch).map_err(parquet)?;
    let file = writer.into_inner().map_err(parquet)?;
    let file = file
        .into_inner()
        .map_err(|e| Error::new(path, ErrorKind::Io(e.into_error())))?;
    file.sync_all()
        .map_err(|e| Error::new(path, ErrorKind::Io(e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn partition_values_are_escaped_as_hive_does() {
        assert_eq!(escape("checkout"), "checkout");
        assert_eq!(escape("web-3.eu_west"), "web-3.eu_west");
        assert_eq!(escape("rack/1=a"), "rack%2F1%3Da");
        assert_eq!(escape("50%:x"), "50%25%3Ax");
        assert_eq!(escape("tab\there"), "tab%09here");
        assert_eq!(escape("é"), "é");
        assert_eq!(escape(""), "__HIVE_DEFAULT_PARTITION__");
        assert_eq!(escape(".."), "%2E%2E");
    }
}
