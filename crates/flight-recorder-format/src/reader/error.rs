//! The errors of reading a trace file.

use std::fmt;
use std::io;

use crate::record::VERSION_MAJOR;

/// What went wrong while reading a trace file.
#[derive(Debug)]
pub enum ErrorKind {
    /// The operating system failed to read the file.
    Io(io::Error),
    /// The file does not start with the trace magic: it is not a trace file.
    BadMagic,
    /// The file was written by an incompatible version of the format.
    UnsupportedVersion {
        /// The file's major version.
        major: u16,
        /// The file's minor version.
        minor: u16,
    },
    /// The file ends in the middle of something.
    Truncated(&'static str),
    /// A record's checksum does not match its contents.
    Checksum,
    /// The contents are not valid for the format.
    Malformed(&'static str),
}

/// An error while reading a trace file, with the byte offset where it was found.
#[derive(Debug)]
pub struct Error {
    /// The byte offset in the file where the problem was found.
    pub offset: u64,
    /// What the problem is.
    pub kind: ErrorKind,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.offset;
        match &self.kind {
            ErrorKind::Io(e) => write!(f, "read error at byte {at}: {e}"),
            ErrorKind::BadMagic => write!(f, "not a flight-recorder trace (bad magic at byte {at})"),
            ErrorKind::UnsupportedVersion { major, minor } => write!(
                f,
                "unsupported trace format version {major}.{minor} (this reader reads {VERSION_MAJOR}.x)"
            ),
            ErrorKind::Truncated(what) => write!(f, "truncated trace at byte {at}: {what}"),
            ErrorKind::Checksum => write!(f, "corrupt trace at byte {at}: record checksum mismatch"),
            ErrorKind::Malformed(what) => write!(f, "corrupt trace at byte {at}: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}
