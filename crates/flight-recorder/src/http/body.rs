//! Response bodies written by blocking code: a [`Write`] that feeds a bounded channel read by the
//! response body, so a file is streamed without being held in memory, and a [`Write`] into memory
//! with a size bound.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body::Frame;
use tokio::sync::mpsc::{self, error::TrySendError};

/// Pieces in flight between the writer and the client (each up to about 64 KiB).
const CHANNEL_PIECES: usize = 16;

/// How long a writer waits for a client that stopped reading before it gives up.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(30);

type Piece = Result<Bytes, io::Error>;

/// A channel from blocking code to a response body.
pub(crate) fn channel() -> (ChannelWriter, ChannelBody) {
    let (sender, receiver) = mpsc::channel(CHANNEL_PIECES);
    (
        ChannelWriter {
            sender,
            stall: STALL_TIMEOUT,
        },
        ChannelBody { receiver },
    )
}

/// The writing end: every `write` sends its bytes to the client's body. It never blocks a
/// runtime thread for long (it is used from blocking threads) and it gives up when the client is
/// gone (`BrokenPipe`) or has not read for [`STALL_TIMEOUT`] (`TimedOut`).
pub(crate) struct ChannelWriter {
    sender: mpsc::Sender<Piece>,
    stall: Duration,
}

impl ChannelWriter {
    /// Whether the client is gone (the body was dropped).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Another writer into the same body.
    pub fn clone_writer(&self) -> ChannelWriter {
        ChannelWriter {
            sender: self.sender.clone(),
            stall: self.stall,
        }
    }

    /// Ends the body with an error: the client sees the connection cut, not a short file that
    /// looks complete.
    pub fn fail(&self, error: io::Error) {
        let _ = self.send(Err(error));
    }

    fn send(&self, piece: Piece) -> io::Result<()> {
        let deadline = Instant::now() + self.stall;
        let mut piece = piece;
        let mut pause = Duration::from_millis(1);
        loop {
            match self.sender.try_send(piece) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the client went away",
                    ))
                }
                Err(TrySendError::Full(back)) => {
                    if Instant::now() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client stopped reading",
                        ));
                    }
                    piece = back;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
            }
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.send(Ok(Bytes::copy_from_slice(buf)))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The reading end, a response body.
pub(crate) struct ChannelBody {
    receiver: mpsc::Receiver<Piece>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.receiver
            .poll_recv(cx)
            .map(|piece| piece.map(|piece| piece.map(Frame::data)))
    }
}

/// A `Write` into memory that refuses to grow past `limit` bytes.
pub(crate) struct LimitedBuffer {
    pub bytes: Vec<u8>,
    limit: usize,
    /// Set when a write went past the limit.
    pub overflowed: bool,
}

impl LimitedBuffer {
    pub fn new(limit: usize) -> LimitedBuffer {
        LimitedBuffer {
            bytes: Vec::new(),
            limit,
            overflowed: false,
        }
    }
}

impl Write for LimitedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len().saturating_add(buf.len()) > self.limit {
            self.overflowed = true;
            return Err(io::Error::other("the snapshot is larger than the limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
