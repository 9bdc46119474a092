//! Dump-file names and listing: the one home of the rules shared by the recorder (which writes
//! and garbage-collects the files) and the tools (which list them).
//!
//! - A dump file is named `executiontrace.<stamp>[.<tag>].out`, with `<stamp>` exactly Go's
//!   layout `2006-01-02T15_04_05.000` in UTC ([`file_name`], read back by [`parse_name`]) and
//!   `<tag>` 1 to 64 characters of `[A-Za-z0-9_]`.
//! - A file is written under a hidden temporary name, `.<final name>.<pid>.tmp`
//!   ([`temp_name`], recognized by [`is_temp_name`]), and renamed once complete.
//! - [`list`] gives a directory's dump files oldest first; [`list_temp_files`] its temporary
//!   files. Any other file is not a dump file.
//!
//! ```
//! use flight_recorder_format::dump_files;
//!
//! let name = dump_files::file_name(1_795_833_336_123_456_789, "panic");
//! assert_eq!(name, "executiontrace.2026-11-28T02_35_36.123.panic.out");
//! assert_eq!(
//!     dump_files::parse_name(&name),
//!     Some(("2026-11-28T02_35_36.123", "panic"))
//! );
//! assert!(dump_files::is_temp_name(&dump_files::temp_name(&name, 4242)));
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::time::format_file_stamp;

/// The prefix of every dump file name.
pub const FILE_PREFIX: &str = "executiontrace.";

/// The extension of every dump file name.
pub const FILE_SUFFIX: &str = ".out";

/// The longest tag accepted in a file name.
pub const MAX_TAG_LEN: usize = 64;

/// The length of a file-name time stamp, `2006-01-02T15_04_05.000`.
pub const STAMP_LEN: usize = 23;

/// The longest dump file name: prefix, stamp, a tag of [`MAX_TAG_LEN`] and the extension.
pub const MAX_NAME_LEN: usize = FILE_PREFIX.len() + STAMP_LEN + 1 + MAX_TAG_LEN + FILE_SUFFIX.len();

/// The prefix of a temporary file name (hidden on Unix).
const TEMP_PREFIX: &str = ".";

/// The extension of a temporary file name.
const TEMP_SUFFIX: &str = ".tmp";

/// Whether `tag` can go into a file name: empty, or 1 to 64 characters of `[A-Za-z0-9_]`
/// (which also keeps any path separator or `..` out of names).
pub fn is_valid_tag(tag: &str) -> bool {
    tag.len() <= MAX_TAG_LEN && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The file name for a dump written at `unix_ns`:
/// `executiontrace.<UTC 2006-01-02T15_04_05.000>[.<tag>].out`. The tag is not checked
/// (see [`is_valid_tag`]).
pub fn file_name(unix_ns: u64, tag: &str) -> String {
    let stamp = format_file_stamp(unix_ns);
    if tag.is_empty() {
        format!("{FILE_PREFIX}{stamp}{FILE_SUFFIX}")
    } else {
        format!("{FILE_PREFIX}{stamp}.{tag}{FILE_SUFFIX}")
    }
}

/// Splits a dump file name into its time stamp and tag (empty for none), or `None` when the
/// whole name is not a dump file name.
///
/// ```
/// use flight_recorder_format::dump_files::parse_name;
///
/// assert_eq!(
///     parse_name("executiontrace.2026-11-28T02_35_36.123.out"),
///     Some(("2026-11-28T02_35_36.123", ""))
/// );
/// assert_eq!(parse_name("executiontrace.latest.out"), None);
/// ```
pub fn parse_name(name: &str) -> Option<(&str, &str)> {
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
            if tag.is_empty() || !is_valid_tag(tag) {
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

/// The temporary name a dump is written under before it is renamed to `final_name`:
/// `.<final name>.<pid>.tmp`.
pub fn temp_name(final_name: &str, pid: u32) -> String {
    format!("{TEMP_PREFIX}{final_name}.{pid}{TEMP_SUFFIX}")
}

/// Whether `name` is exactly a temporary name made by [`temp_name`]: a dump file name between
/// `.` and `.<decimal pid>.tmp`. Nothing else (`.executiontrace.x.out.tmp`,
/// `executiontrace.….out.1.tmp` without the dot, …) is.
pub fn is_temp_name(name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix(TEMP_PREFIX)
        .and_then(|r| r.strip_suffix(TEMP_SUFFIX))
    else {
        return false;
    };
    let Some((final_name, pid)) = rest.rsplit_once('.') else {
        return false;
    };
    !pid.is_empty()
        && pid.len() <= 10
        && pid.bytes().all(|b| b.is_ascii_digit())
        && parse_name(final_name).is_some()
}

/// A dump file of a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpFile {
    /// The file's path.
    pub path: PathBuf,
    /// The UTC time stamp of its name, `2006-01-02T15_04_05.000`.
    pub stamp: String,
    /// The tag of its name, empty for none.
    pub tag: String,
    /// Its size, bytes.
    pub size: u64,
}

impl DumpFile {
    /// The file name (the last part of the path).
    pub fn name(&self) -> &str {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }
}

/// A temporary file of a directory (a dump being written, or left behind by a crash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TempFile {
    /// The file's path.
    pub path: PathBuf,
    /// Its size, bytes.
    pub size: u64,
    /// When it was last modified, if the file system says.
    pub modified: Option<SystemTime>,
}

/// The regular files of `dir` whose names pass `keep`, with their names and metadata; symbolic
/// links are not followed (a link is not a file the recorder wrote). A missing directory (or a
/// path through a file) has none.
fn regular_files(
    dir: &Path,
    mut keep: impl FnMut(&str) -> bool,
) -> io::Result<Vec<(String, PathBuf, fs::Metadata)>> {
    let entries = match fs::read_dir(dir) {
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
        if !keep(name) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        files.push((name.to_string(), entry.path(), meta));
    }
    Ok(files)
}

/// The dump files of `dir`, oldest first (by the time in their names; files of the same
/// millisecond by name). Only regular files whose whole name passes [`parse_name`] are listed.
/// A missing directory (or a path through a file) has no files.
pub fn list(dir: impl AsRef<Path>) -> io::Result<Vec<DumpFile>> {
    let mut files: Vec<DumpFile> = regular_files(dir.as_ref(), |name| parse_name(name).is_some())?
        .into_iter()
        .filter_map(|(name, path, meta)| {
            let (stamp, tag) = parse_name(&name)?;
            Some(DumpFile {
                stamp: stamp.to_string(),
                tag: tag.to_string(),
                path,
                size: meta.len(),
            })
        })
        .collect();
    files.sort_by(|a, b| (&a.stamp, &a.path).cmp(&(&b.stamp, &b.path)));
    Ok(files)
}

/// The temporary files of `dir` (regular files whose names pass [`is_temp_name`]), in name
/// order. A missing directory has none.
pub fn list_temp_files(dir: impl AsRef<Path>) -> io::Result<Vec<TempFile>> {
    let mut files: Vec<TempFile> = regular_files(dir.as_ref(), is_temp_name)?
        .into_iter()
        .map(|(_, path, meta)| TempFile {
            path,
            size: meta.len(),
            modified: meta.modified().ok(),
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_dump_pattern() {
        assert_eq!(
            file_name(1_795_833_336_123_456_789, ""),
            "executiontrace.2026-11-28T02_35_36.123.out"
        );
        assert_eq!(
            file_name(1_795_833_336_123_456_789, "panic"),
            "executiontrace.2026-11-28T02_35_36.123.panic.out"
        );
    }

    #[test]
    fn tags_are_restricted() {
        assert!(is_valid_tag(""));
        assert!(is_valid_tag("slow_poll_2"));
        for bad in ["a/b", "..", "../x", "a b", "é", "a.b", "a\0b"] {
            assert!(!is_valid_tag(bad), "{bad:?} accepted");
        }
        assert!(!is_valid_tag(&"x".repeat(65)));
    }

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
            assert_eq!(parse_name(name).map(|(_, t)| t), Some(tag), "{name}");
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
            assert_eq!(parse_name(bad), None, "{bad}");
        }
        let long = format!(
            "executiontrace.2026-11-28T02_35_36.123.{}.out",
            "x".repeat(65)
        );
        assert_eq!(parse_name(&long), None);
        let longest = format!(
            "executiontrace.2026-11-28T02_35_36.123.{}.out",
            "x".repeat(64)
        );
        assert!(parse_name(&longest).is_some());
        assert_eq!(longest.len(), MAX_NAME_LEN);
    }

    #[test]
    fn temp_names_are_recognized_exactly() {
        let name = "executiontrace.2026-11-28T02_35_36.123.panic.out";
        assert_eq!(
            temp_name(name, 77),
            ".executiontrace.2026-11-28T02_35_36.123.panic.out.77.tmp"
        );
        assert!(is_temp_name(&temp_name(name, 77)));
        for foreign in [
            "executiontrace.2026-11-28T02_35_36.123.out.77.tmp",
            ".executiontrace.2026-11-28T02_35_36.123.out.tmp",
            ".executiontrace.2026-11-28T02_35_36.123.out.x7.tmp",
            ".executiontrace.2026-11-28T02_35_36.123.out.77.tmp.bak",
            ".executiontrace.latest.out.77.tmp",
            ".notes.77.tmp",
            name,
        ] {
            assert!(!is_temp_name(foreign), "{foreign}");
        }
    }

    #[test]
    fn a_missing_directory_is_empty() {
        let dir = std::env::temp_dir().join("flight-recorder-format-no-such-dir-for-sure");
        assert!(list(&dir).unwrap().is_empty());
        assert!(list_temp_files(&dir).unwrap().is_empty());
    }
}
