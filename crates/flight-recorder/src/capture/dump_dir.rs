//! The dump directory: which files are ours, listed oldest first, and the garbage collection
//! that keeps their total size under `total_dump_size_limit`.
//!
//! A file is ours when its whole name matches `executiontrace.<stamp>[.<tag>].out`, with
//! `<stamp>` exactly Go's layout `2006-01-02T15_04_05.000` (UTC) and `<tag>` 1 to 64 characters
//! of `[A-Za-z0-9_]`, or when it is the hidden temporary name of such a file,
//! `.<name>.<pid>.tmp` (the rules live in [`flight_recorder_format::dump_files`]). Any other
//! file is never deleted and never counted.
//!
//! A temporary file is a write in progress, or one left behind by a process that crashed while
//! writing. Its size counts in the budget; once it is older than [`TEMP_FILE_MAX_AGE`] (by its
//! modification time: a pid cannot be checked across containers) it is deleted.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use flight_recorder_format::dump_files;

pub use flight_recorder_format::dump_files::DumpFile;

/// How old (by modification time) a temporary file of the dump directory must be before garbage
/// collection deletes it: one hour, far above the longest write (a snapshot of the largest
/// window accepted, 1 GiB, takes seconds). A younger temporary file may be a write in progress,
/// here or in another process sharing the directory.
pub const TEMP_FILE_MAX_AGE: Duration = Duration::from_secs(3600);

/// What a garbage collection did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// The files kept.
    pub kept: usize,
    /// The total size of the files kept, bytes.
    pub kept_bytes: u64,
    /// The files deleted: dump files over the budget and stale temporary files.
    pub deleted: Vec<PathBuf>,
    /// The total size of the temporary files kept (writes in progress), bytes; counted in the
    /// budget.
    pub temp_bytes: u64,
}

/// Splits a dump file name into its time stamp and tag, or `None` when the name is not one of
/// the recorder's (the rules live in [`flight_recorder_format::dump_files`]).
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
    dump_files::parse_name(name)
}

/// The recorder's files in `dir`, oldest first (by the time in their names; files of the same
/// millisecond by name). A missing directory (or a path through a file) has no files.
pub fn list_dumps(dir: impl AsRef<Path>) -> io::Result<Vec<DumpFile>> {
    dump_files::list(dir)
}

/// Deletes the recorder's oldest files in `dir` until their total size is at most `limit`.
///
/// The files are walked newest first, adding up their sizes; once the running total passes
/// `limit`, that file and every older one are deleted. The newest file is always kept, even when
/// it alone is over the limit (CockroachDB deletes it; a fresh trace is worth more than the
/// limit's precision). The recorder's temporary files count in the total too, and those older
/// than [`TEMP_FILE_MAX_AGE`] (left by a crash) are deleted first. Files that are not the
/// recorder's are neither deleted nor counted.
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
    let dir = dir.as_ref();
    let mut report = GcReport::default();
    let mut first_error = None;
    let mut remove = |path: &Path, report: &mut GcReport| match fs::remove_file(path) {
        Ok(()) => report.deleted.push(path.to_path_buf()),
        // Deleted meanwhile by someone else (or renamed by its writer): the goal is reached.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            first_error.get_or_insert(io::Error::new(
                e.kind(),
                format!("deleting {}: {e}", path.display()),
            ));
        }
    };
    let now = SystemTime::now();
    for temp in dump_files::list_temp_files(dir)? {
        // No modification time, or one in the future: not known to be stale.
        let age = temp
            .modified
            .and_then(|modified| now.duration_since(modified).ok())
            .unwrap_or_default();
        if age > TEMP_FILE_MAX_AGE {
            remove(&temp.path, &mut report);
        } else {
            report.temp_bytes = report.temp_bytes.saturating_add(temp.size);
        }
    }
    let files = list_dumps(dir)?;
    let mut total = report.temp_bytes;
    for (i, file) in files.iter().rev().enumerate() {
        total = total.saturating_add(file.size);
        if i == 0 || total <= limit {
            report.kept += 1;
            report.kept_bytes += file.size;
            continue;
        }
        remove(&file.path, &mut report);
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
    fn a_missing_directory_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list_dumps(dir.path().join("nope")).unwrap().is_empty());
        let report = collect_garbage(dir.path().join("nope"), 0).unwrap();
        assert_eq!(report, GcReport::default());
    }
}
