//! Snapshot files: their names, and writing them so that a crash never leaves a partial file
//! under a final name, readable by the owner only (traces can hold request data).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use flight_recorder_format::dump_files;

use crate::error::Error;

/// The prefix of every trace file name the recorder writes.
pub const FILE_PREFIX: &str = dump_files::FILE_PREFIX;

/// The extension of every trace file name the recorder writes.
pub const FILE_SUFFIX: &str = dump_files::FILE_SUFFIX;

/// The longest tag accepted.
pub const MAX_TAG_LEN: usize = dump_files::MAX_TAG_LEN;

/// Checks a tag: empty, or 1 to 64 characters of `[A-Za-z0-9_]` (which also keeps any path
/// separator or `..` out of file names).
pub fn validate_tag(tag: &str) -> Result<(), Error> {
    if dump_files::is_valid_tag(tag) {
        Ok(())
    } else {
        Err(Error::invalid_tag(tag.to_string()))
    }
}

/// The file name for a trace written at `unix_ns`:
/// `executiontrace.<UTC 2006-01-02T15_04_05.000>[.<tag>].out` (the rules live in
/// [`flight_recorder_format::dump_files`]).
pub fn trace_file_name(unix_ns: u64, tag: &str) -> String {
    dump_files::file_name(unix_ns, tag)
}

/// Creates `dir` (and its parents) if missing, owner-only.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes a file in `dir` named after `unix_ns` and `tag` through `write`: to a hidden temporary
/// name first, renamed once complete; on any error the temporary file is removed and nothing is
/// left under the final name. A name already taken moves on by one millisecond.
pub(crate) fn write_trace_file(
    dir: &Path,
    unix_ns: u64,
    tag: &str,
    write: impl FnOnce(&mut File) -> Result<u64, Error>,
) -> Result<PathBuf, Error> {
    validate_tag(tag)?;
    create_private_dir(dir)?;
    let mut stamp = unix_ns;
    let mut final_path = dir.join(trace_file_name(stamp, tag));
    while final_path.exists() {
        stamp += 1_000_000;
        final_path = dir.join(trace_file_name(stamp, tag));
    }
    let temp_path = dir.join(dump_files::temp_name(
        &trace_file_name(stamp, tag),
        std::process::id(),
    ));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp_path)?;
    let written = write(&mut file).and_then(|_| file.sync_data().map_err(Error::from));
    drop(file);
    match written.and_then(|()| fs::rename(&temp_path, &final_path).map_err(Error::from)) {
        Ok(()) => Ok(final_path),
        Err(e) => {
            let _ = fs::remove_file(&temp_path);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_restricted() {
        assert!(validate_tag("").is_ok());
        assert!(validate_tag("slow_poll_2").is_ok());
        for bad in ["a/b", "..", "../x", "a b", "é", "a.b", "a\0b"] {
            assert!(validate_tag(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_tag(&"x".repeat(65)).is_err());
    }

    #[test]
    fn names_follow_the_dump_pattern() {
        assert_eq!(
            trace_file_name(1_795_833_336_123_456_789, ""),
            "executiontrace.2026-11-28T02_35_36.123.out"
        );
        assert_eq!(
            trace_file_name(1_795_833_336_123_456_789, "panic"),
            "executiontrace.2026-11-28T02_35_36.123.panic.out"
        );
    }
}
