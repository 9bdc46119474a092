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
//!
//! With uploads on (cargo feature `upload`), a file uploaded has a hidden marker next to it,
//! `.<name>.uploaded` ([`upload_marker`]); it is not a dump file (never listed, never counted)
//! and is deleted with its file.

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

/// The end of an upload marker's name, `.<dump file name>.uploaded`.
pub(crate) const MARKER_SUFFIX: &str = ".uploaded";

/// The marker that says a dump file was uploaded (cargo feature `upload`):
/// `.<file name>.uploaded` beside it, hidden, holding the object key. It is never listed as a
/// dump file nor counted in the size budget, and garbage collection deletes it with its file.
///
/// ```
/// use flight_recorder::capture::upload_marker;
/// use std::path::Path;
///
/// assert_eq!(
///     upload_marker(Path::new("/d/executiontrace.2026-11-28T02_35_36.123.out")),
///     Path::new("/d/.executiontrace.2026-11-28T02_35_36.123.out.uploaded")
/// );
/// ```
pub fn upload_marker(dump: &Path) -> PathBuf {
    let name = dump
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dump.with_file_name(format!(".{name}{MARKER_SUFFIX}"))
}

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
    /// Of `deleted`, the dump files that had not been uploaded (with uploads on, when the
    /// directory passed its limit by more than the margin; else always 0).
    pub deleted_before_upload: usize,
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
    collect(dir.as_ref(), limit, None)
}

/// [`collect_garbage`] with uploads on: past `limit`, the files uploaded (with a marker) are
/// deleted, and those not yet uploaded are kept while the total stays within `hard_limit`;
/// past `hard_limit`, the oldest are deleted anyway, counted in
/// [`GcReport::deleted_before_upload`].
#[cfg(feature = "upload")]
pub(crate) fn collect_garbage_keeping_pending(
    dir: &Path,
    limit: u64,
    hard_limit: u64,
) -> io::Result<GcReport> {
    collect(dir, limit, Some(hard_limit))
}

/// Garbage collection; `hard_limit`: keep files not uploaded up to it.
fn collect(dir: &Path, limit: u64, hard_limit: Option<u64>) -> io::Result<GcReport> {
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
    // Newest first: the size kept so far. Once past `limit`, every older file goes (without
    // uploads), or every older uploaded file (with them); once past `hard_limit`, every older
    // file goes.
    let mut total = report.temp_bytes;
    let mut over_limit = false;
    let mut over_hard_limit = false;
    for (i, file) in files.iter().rev().enumerate() {
        let with_it = total.saturating_add(file.size);
        over_limit |= with_it > limit;
        let marker = upload_marker(&file.path);
        let keep = if i == 0 || !over_limit {
            true
        } else {
            match hard_limit {
                None => false,
                Some(hard_limit) => {
                    over_hard_limit |= with_it > hard_limit;
                    !over_hard_limit && !marker.exists()
                }
            }
        };
        if keep {
            total = with_it;
            report.kept += 1;
            report.kept_bytes += file.size;
            continue;
        }
        let uploaded = hard_limit.is_none() || marker.exists();
        let before = report.deleted.len();
        remove(&file.path, &mut report);
        if report.deleted.len() > before {
            if !uploaded {
                report.deleted_before_upload += 1;
            }
            let _ = fs::remove_file(&marker);
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

    /// Writes ten-byte dump files for the given seconds, marking those in `uploaded`.
    #[cfg(feature = "upload")]
    fn files(dir: &Path, seconds: std::ops::RangeInclusive<u32>, uploaded: &[u32]) {
        for second in seconds {
            let path = dir.join(format!(
                "executiontrace.2026-01-01T00_00_{second:02}.000.out"
            ));
            fs::write(&path, [0u8; 10]).unwrap();
            if uploaded.contains(&second) {
                fs::write(upload_marker(&path), b"key\n").unwrap();
            }
        }
    }

    #[cfg(feature = "upload")]
    fn seconds_left(dir: &Path) -> Vec<u32> {
        list_dumps(dir)
            .unwrap()
            .iter()
            .map(|f| f.stamp[17..19].parse().unwrap())
            .collect()
    }

    #[test]
    #[cfg(feature = "upload")]
    fn files_not_uploaded_stay_until_the_margin() {
        let dir = tempfile::tempdir().unwrap();
        // Limit 30 (three files), margin to 50: within the limit everything stays (6, 5, 4);
        // past it the uploaded files go (3, 1) and those not uploaded stay while the total is
        // within 50 (2).
        files(dir.path(), 1..=6, &[1, 3, 5]);
        let report = collect_garbage_keeping_pending(dir.path(), 30, 50).unwrap();
        assert_eq!(seconds_left(dir.path()), vec![2, 4, 5, 6]);
        assert_eq!(report.deleted.len(), 2);
        assert_eq!(report.deleted_before_upload, 0);
        assert!(!upload_marker(&report.deleted[0]).exists());
        // Nothing uploaded and more than the margin: the oldest go, counted.
        let dir = tempfile::tempdir().unwrap();
        files(dir.path(), 1..=8, &[]);
        let report = collect_garbage_keeping_pending(dir.path(), 30, 50).unwrap();
        assert_eq!(seconds_left(dir.path()), vec![4, 5, 6, 7, 8]);
        assert_eq!(report.deleted_before_upload, 3);
        assert_eq!(report.kept_bytes, 50);
        // Once uploaded, the budget falls back to the limit.
        for file in list_dumps(dir.path()).unwrap() {
            fs::write(upload_marker(&file.path), b"key\n").unwrap();
        }
        let report = collect_garbage_keeping_pending(dir.path(), 30, 50).unwrap();
        assert_eq!(seconds_left(dir.path()), vec![6, 7, 8]);
        assert_eq!(report.deleted_before_upload, 0);
        let markers = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(markers, 6, "three files and their markers");
    }

    #[test]
    fn a_missing_directory_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list_dumps(dir.path().join("nope")).unwrap().is_empty());
        let report = collect_garbage(dir.path().join("nope"), 0).unwrap();
        assert_eq!(report, GcReport::default());
    }
}
