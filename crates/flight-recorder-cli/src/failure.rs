//! How a command fails.

use std::io;
use std::path::PathBuf;

/// Why a command failed; each is reported on one line.
pub enum Failure {
    /// Already reported on standard error: exit status 1.
    Reported,
    /// The trace file could not be opened or read: `<path>: <error>`.
    Trace(PathBuf, String),
    /// Standard output could not be written (a closed pipe is not a failure).
    Output(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}
