//! The dump directory: which files are ours, listed oldest first, and the garbage collection
//! that keeps their total size under `total_dump_size_limit`.
//!
//! A file is ours when its whole name matches `executiontrace.<stamp>[.<tag>].out`, with
//! `<stamp>` exactly Go's layout `2006-01-02T15_04_05.000` (UTC) and `<tag>` 1 to 64 characters
//! of `[A-Za-z0-9_]`. Any other file (including the hidden temporary files of writes in
//! progress) is never deleted and never counted.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::file::files::{FILE_PREFIX, FILE_SUFFIX, MAX_TAG_LEN};

/// The length of a file-name time stamp, `2006-01-02T15_04_05.000`.
const STAMP_LEN: usize = 23;

/// A trace file of the dump directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpFile {
    /// The file's path.
    pub path: PathBuf,
    /// The UTC time stamp of its name, `2006-01-02T15_04_05.000`.
    pub stamp: String,
    /// The tag of its name, empty for a periodic file.
    pub tag: String,
    /// Its size, bytes.
    pub size: u64,
}

/// What a garbage collection did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// The files kept.
    pub kept: usize,
    /// The total size of the files kept, bytes.
    pub kept_bytes: u64,
    /// The files deleted.
    pub deleted: Vec<PathBuf>,
}

/// Splits a dump file name into its time stamp and tag, or `None` when the name is not one of
/// the recorder's.
///
/// ```
/// use flight_recorder::capture::parse_dump_name;
///
/// assert_eq!(
///     parse_dump_name("executiontrace.2026-11-28T02_35_36.123.panic.out"),
///     Some(("2026-11-28T02_35_36.123", "panic"))
/// );
/// assert_eq!(
///     parse_dump_name("executiontrace.2026-11-28T02_35_36.123.out"),
///     Some(("2026-11-28T02_35_36.123", ""))
/// );
/// assert_eq!(parse_dump_name("executiontrace.latest.out"), None);
/// ```
pub fn parse_dump_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    if rest.len() < STAMP_LEN || !rest.is_char_boundary(STAMP_LEN) {
        return None;
    }
    let (stamp, tail) = rest.split_at(STAMP_LEN);
    if !valid_stamp(stamp) {
        return None;
    }
    let tag = match tail {
        "" => "",
        _ => {
            let tag = tail.strip_prefix('.')?;
            let valid = !tag.is_empty()
                && tag.len() <= MAX_TAG_LEN
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return None;
            }
            tag
        }
    };
    Some((stamp, tag))
}

/// Whether `stamp` has the shape `dddd-dd-ddTdd_dd_dd.ddd`.
fn valid_stamp(stamp: &str) -> bool {
    const SHAPE: &[u8; STAMP_LEN] = b"dddd-dd-ddTdd_dd_dd.ddd";
    stamp.len() == STAMP_LEN
        && stamp.bytes().zip(SHAPE.iter()).all(|(c, &s)| match s {
            b'd' => c.is_ascii_digit(),
            other => c == other,
        })
}

/// The recorder's files in `dir`, oldest first (by the time in their names; files of the same
/// millisecond by name). A missing directory (or a path through a file) has no files.
pub fn list_dumps(dir: impl AsRef<Path>) -> io::Result<Vec<DumpFile>> {
    let entries = match fs::read_dir(dir.as_ref()) {
        Ok(entries) => entries,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stamp, tag)) = parse_dump_name(name) else {
            continue;
        };
        // Not following symbolic links: a link is not a file we wrote.
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        files.push(DumpFile {
            path: entry.path(),
            stamp: stamp.to_string(),
            tag: tag.to_string(),
            size: meta.len(),
        });
    }
    files.sort_by(|a, b| (&a.stamp, &a.path).cmp(&(&b.stamp, &b.path)));
    Ok(files)
}

/// Deletes the recorder's oldest files in `dir` until their total size is at most `limit`.
///
/// The files are walked newest first, adding up their sizes; once the running total passes
/// `limit`, that file and every older one are deleted. The newest file is always kept, even when
/// it alone is over the limit (CockroachDB deletes it; a fresh trace is worth more than the
/// limit's precision). Files that are not the recorder's are neither deleted nor counted.
///
/// ```
/// use flight_recorder::capture::collect_garbage;
///
/// let dir = tempfile::tempdir()?;
/// for second in 1..=5 {
///     let name = format!("executiontrace.2026-01-01T00_00_0{second}.000.out");
///     std::fs::write(dir.path().join(name), [0u8; 10])?;
/// }
/// let report = collect_garbage(dir.path(), 35)?;
/// assert_eq!(report.kept, 3);
/// assert_eq!(report.deleted.len(), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn collect_garbage(dir: impl AsRef<Path>, limit: u64) -> io::Result<GcReport> {
    let files = list_dumps(dir)?;
    let mut report = GcReport::default();
    let mut total = 0u64;
    let mut first_error = None;
    for (i, file) in files.iter().rev().enumerate() {
        total = total.saturating_add(file.size);
        if i == 0 || total <= limit {
            report.kept += 1;
            report.kept_bytes += file.size;
            continue;
        }
        match fs::remove_file(&file.path) {
            Ok(()) => report.deleted.push(file.path.clone()),
            // Deleted meanwhile by someone else: the goal is reached.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                first_error.get_or_insert(io::Error::new(
                    e.kind(),
                    format!("deleting {}: {e}", file.path.display()),
                ));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_parsed_strictly() {
        let ok = [
            ("executiontrace.2026-11-28T02_35_36.123.out", ""),
            (
                "executiontrace.2026-11-28T02_35_36.123.slow_poll.out",
                "slow_poll",
            ),
        ];
        for (name, tag) in ok {
            assert_eq!(parse_dump_name(name).map(|(_, t)| t), Some(tag), "{name}");
        }
        for bad in [
            "executiontrace.2026-11-28T02_35_36.12.out",
            "executiontrace.2026-11-28T02:35:36.123.out",
            "executiontrace.2026-11-28T02_35_36.123..out",
            "executiontrace.2026-11-28T02_35_36.123.a.b.out",
            "executiontrace.2026-11-28T02_35_36.123.out.tmp",
            ".executiontrace.2026-11-28T02_35_36.123.out.77.tmp",
            "executiontrace.2026-11-28T02_35_36.123",
            "xexecutiontrace.2026-11-28T02_35_36.123.out",
            "executiontrace.2026-11-28T02_35_36.123é.out",
            "executiontrace.out",
        ] {
            assert_eq!(parse_dump_name(bad), None, "{bad}");
        }
        let long = format!(
            "executiontrace.2026-11-28T02_35_36.123.{}.out",
            "x".repeat(65)
        );
        assert_eq!(parse_dump_name(&long), None);
    }

    #[test]
    fn a_missing_directory_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list_dumps(dir.path().join("nope")).unwrap().is_empty());
        let report = collect_garbage(dir.path().join("nope"), 0).unwrap();
        assert_eq!(report, GcReport::default());
    }
}
