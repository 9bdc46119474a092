//! The errors of the recorder's API: one opaque type, [`Error`], whose [`Error::kind`] says what
//! went wrong, so that new kinds and new details can come without breaking callers.

use std::fmt;
use std::io;

/// An error from starting, stopping or snapshotting a recorder. [`Error::kind`] tells the kinds
/// apart; the message (its `Display`) says more.
///
/// ```
/// use flight_recorder::{ErrorKind, FlightRecorder, FlightRecorderConfig};
///
/// let fr = FlightRecorder::new(FlightRecorderConfig::default());
/// let err = fr.write_to(&mut Vec::new()).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::NotStarted);
/// assert_eq!(err.to_string(), "the recorder is not started");
/// ```
pub struct Error {
    kind: ErrorKind,
    detail: Detail,
}

/// What more an error knows than its kind.
enum Detail {
    None,
    /// Which recorder is running.
    Recorder(&'static str),
    /// The tag, or what is wrong with the settings.
    Text(String),
    Io(io::Error),
}

/// The kinds of [`Error`]. New kinds may come: a `match` on it needs a `_` arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `start` was called on a recorder that is running.
    AlreadyStarted,
    /// The recorder is not running.
    NotStarted,
    /// Another recorder of the same kind is running in this process (one flight recorder and one
    /// full trace may run at a time).
    AnotherRecorderRunning,
    /// A snapshot is being written; snapshots do not queue, so this one was refused at once.
    SnapshotInProgress,
    /// A tag with characters other than `[A-Za-z0-9_]`, or too long.
    InvalidTag,
    /// Writing the trace failed; [`Error::io_error`] gives the I/O error.
    Io,
    /// Automatic capture's settings are wrong; the message says which one.
    InvalidSettings,
}

impl Error {
    /// An error of a kind that needs no detail.
    pub(crate) fn new(kind: ErrorKind) -> Error {
        Error {
            kind,
            detail: Detail::None,
        }
    }

    /// Another `what` (a flight recorder, a full trace) is running.
    pub(crate) fn another_running(what: &'static str) -> Error {
        Error {
            kind: ErrorKind::AnotherRecorderRunning,
            detail: Detail::Recorder(what),
        }
    }

    /// `tag` is not a valid tag.
    pub(crate) fn invalid_tag(tag: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::InvalidTag,
            detail: Detail::Text(tag.into()),
        }
    }

    /// Capture's settings are wrong: `what`.
    pub(crate) fn invalid_settings(what: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::InvalidSettings,
            detail: Detail::Text(what.into()),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The I/O error, for an error of kind [`ErrorKind::Io`].
    pub fn io_error(&self) -> Option<&io::Error> {
        match &self.detail {
            Detail::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, &self.detail) {
            (ErrorKind::AlreadyStarted, _) => write!(f, "the recorder is already started"),
            (ErrorKind::NotStarted, _) => write!(f, "the recorder is not started"),
            (ErrorKind::AnotherRecorderRunning, Detail::Recorder(what)) => {
                write!(f, "another {what} is already running in this process")
            }
            (ErrorKind::AnotherRecorderRunning, _) => {
                write!(f, "another recorder is already running in this process")
            }
            (ErrorKind::SnapshotInProgress, _) => {
                write!(
                    f,
                    "a snapshot is already being written; try again when it is done"
                )
            }
            (ErrorKind::InvalidTag, detail) => {
                let tag = match detail {
                    Detail::Text(tag) => tag.as_str(),
                    _ => "",
                };
                write!(
                    f,
                    "invalid tag {tag:?}: use 1 to 64 characters of [A-Za-z0-9_]"
                )
            }
            (ErrorKind::Io, Detail::Io(e)) => write!(f, "writing the trace failed: {e}"),
            (ErrorKind::Io, _) => write!(f, "writing the trace failed"),
            (ErrorKind::InvalidSettings, Detail::Text(what)) => {
                write!(f, "invalid capture settings: {what}")
            }
            (ErrorKind::InvalidSettings, _) => write!(f, "invalid capture settings"),
        }
    }
}

/// Shows the kind and the detail, as the variants of an enum would (`NotStarted`,
/// `InvalidTag("a/b")`, `Io(Os { .. })`).
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = format!("{:?}", self.kind);
        match &self.detail {
            Detail::None => f.write_str(&name),
            Detail::Recorder(what) => f.debug_tuple(&name).field(what).finish(),
            Detail::Text(text) => f.debug_tuple(&name).field(text).finish(),
            Detail::Io(e) => f.debug_tuple(&name).field(e).finish(),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.detail {
            Detail::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error {
            kind: ErrorKind::Io,
            detail: Detail::Io(e),
        }
    }
}
