//! The errors of the recorder's API.

use std::fmt;
use std::io;

/// An error from starting, stopping or snapshotting a recorder.
///
/// New kinds of errors may come: a `match` on it needs a `_` arm.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// `start` was called on a recorder that is running.
    AlreadyStarted,
    /// The recorder is not running.
    NotStarted,
    /// Another recorder of the same kind is running in this process (one flight recorder and one
    /// full trace may run at a time).
    AnotherRecorderRunning(&'static str),
    /// A snapshot is being written; snapshots do not queue, so this one was refused at once.
    SnapshotInProgress,
    /// A tag with characters other than `[A-Za-z0-9_]`, or too long.
    InvalidTag(String),
    /// Writing the trace failed.
    Io(io::Error),
    /// Automatic capture's settings are wrong; the text says which one.
    InvalidSettings(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AlreadyStarted => write!(f, "the recorder is already started"),
            Error::NotStarted => write!(f, "the recorder is not started"),
            Error::AnotherRecorderRunning(what) => {
                write!(f, "another {what} is already running in this process")
            }
            Error::SnapshotInProgress => {
                write!(
                    f,
                    "a snapshot is already being written; try again when it is done"
                )
            }
            Error::InvalidTag(tag) => write!(
                f,
                "invalid tag {tag:?}: use 1 to 64 characters of [A-Za-z0-9_]"
            ),
            Error::Io(e) => write!(f, "writing the trace failed: {e}"),
            Error::InvalidSettings(what) => write!(f, "invalid capture settings: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}
