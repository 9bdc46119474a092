//! Where an export's bytes go: a [`BlockOutput`] takes them a block (about a mebibyte) at a
//! time. Any [`Write`] is one. [`WriteBehind`] writes them on a thread of its own, so that the
//! copy of each block into the kernel, and any wait for the disk, overlaps the formatting of the
//! next: an export to a file is otherwise bound by its writing (a Chrome JSON file holds about
//! 19 bytes per byte of trace).

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

/// A destination of whole blocks of output.
pub trait BlockOutput {
    /// Writes all of `block` and leaves it empty, with at least the capacity it had (the same
    /// buffer, or another one as large).
    fn write_block(&mut self, block: &mut Vec<u8>) -> io::Result<()>;

    /// Writes out every block given so far and flushes the destination.
    fn flush_blocks(&mut self) -> io::Result<()>;
}

impl<W: Write> BlockOutput for W {
    fn write_block(&mut self, block: &mut Vec<u8>) -> io::Result<()> {
        self.write_all(block)?;
        block.clear();
        Ok(())
    }

    fn flush_blocks(&mut self) -> io::Result<()> {
        self.flush()
    }
}

/// Blocks queued for the writing thread at most, besides the one it writes and the one being
/// filled: the memory in flight stays a few blocks whatever the speed of the destination.
const QUEUED: usize = 2;

/// What the writing thread is asked to do.
enum Request {
    Write(Vec<u8>),
    Flush,
}

/// What the writing thread answers.
enum Reply {
    /// A block written, emptied for reuse.
    Spare(Vec<u8>),
    /// Everything asked before was written and the destination flushed.
    Flushed,
    /// Writing or flushing failed; the thread stopped and wrote nothing more.
    Failed(io::Error),
}

/// A [`BlockOutput`] that hands each block to a thread of its own, which writes it to `W`: the
/// caller goes on formatting while the block is written. Blocks are written in order; a block
/// is not copied (the buffer changes hands, and comes back empty for reuse).
///
/// An error of the writing thread is returned by the next call (the block that failed and every
/// block after it are not written), and again by every call after. Dropping the `WriteBehind`
/// waits for the blocks given so far to be written.
///
/// ```no_run
/// use flight_recorder_analysis::output::{BlockOutput, WriteBehind};
///
/// let mut out = WriteBehind::new(std::fs::File::create("out.json")?)?;
/// let mut block = b"{\"traceEvents\":[]}\n".to_vec();
/// out.write_block(&mut block)?;
/// out.flush_blocks()?;
/// let file = out.into_inner()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct WriteBehind<W> {
    requests: Option<SyncSender<Request>>,
    replies: Receiver<Reply>,
    writer: Option<JoinHandle<W>>,
    /// Emptied blocks, ready to take the place of the next full one.
    spares: Vec<Vec<u8>>,
    /// The writing thread's error, once returned: the kind and message to return again.
    failed: Option<(io::ErrorKind, String)>,
}

impl<W: Write + Send + 'static> WriteBehind<W> {
    /// Starts the writing thread; fails only if the thread cannot be started.
    pub fn new(out: W) -> io::Result<WriteBehind<W>> {
        let (requests, to_do) = mpsc::sync_channel::<Request>(QUEUED);
        let (answer, replies) = mpsc::channel::<Reply>();
        let writer = std::thread::Builder::new()
            .name("flight-recorder-output".into())
            .spawn(move || write_requests(out, &to_do, &answer))?;
        Ok(WriteBehind {
            requests: Some(requests),
            replies,
            writer: Some(writer),
            spares: Vec::new(),
            failed: None,
        })
    }

    /// Waits for the blocks given so far to be written and returns the destination (not
    /// flushed: see [`BlockOutput::flush_blocks`]), or the writing thread's error if it failed.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.requests = None;
        let out = match self.writer.take().map(JoinHandle::join) {
            Some(Ok(out)) => out,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => unreachable!("the writing thread is joined only here and on drop"),
        };
        self.take_replies()?;
        Ok(out)
    }
}

/// The writing thread: answers each request in order, until the first failure or the end of
/// the requests. Returns the destination.
fn write_requests<W: Write>(
    mut out: W,
    requests: &Receiver<Request>,
    replies: &mpsc::Sender<Reply>,
) -> W {
    for request in requests {
        let reply = match request {
            Request::Write(mut block) => out.write_all(&block).map(|()| {
                block.clear();
                Reply::Spare(block)
            }),
            Request::Flush => out.flush().map(|()| Reply::Flushed),
        };
        // The caller may have gone (dropped after a failure of its own): nothing to tell then.
        match reply {
            Ok(reply) => {
                let _ = replies.send(reply);
            }
            Err(e) => {
                let _ = replies.send(Reply::Failed(e));
                break;
            }
        }
    }
    out
}

impl<W> WriteBehind<W> {
    /// The error to return once the writing thread failed, recorded so that every later call
    /// returns it too.
    fn fail(&mut self, e: io::Error) -> io::Error {
        self.failed = Some((e.kind(), e.to_string()));
        e
    }

    /// The error returned before, again.
    fn failed_again(&self) -> Option<io::Error> {
        self.failed
            .as_ref()
            .map(|(kind, message)| io::Error::new(*kind, message.clone()))
    }

    /// Takes the replies that arrived (keeping the spare blocks); the writing thread's error if
    /// it failed.
    fn take_replies(&mut self) -> io::Result<()> {
        if let Some(e) = self.failed_again() {
            return Err(e);
        }
        loop {
            match self.replies.try_recv() {
                Ok(Reply::Spare(block)) => self.spares.push(block),
                Ok(Reply::Flushed) => {}
                Ok(Reply::Failed(e)) => return Err(self.fail(e)),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Ok(()),
            }
        }
    }

    /// Waits for the reply that ends a flush, keeping the spare blocks on the way.
    fn wait_flushed(&mut self) -> io::Result<()> {
        loop {
            match self.replies.recv() {
                Ok(Reply::Spare(block)) => self.spares.push(block),
                Ok(Reply::Flushed) => return Ok(()),
                Ok(Reply::Failed(e)) => return Err(self.fail(e)),
                Err(_) => return Err(self.fail(stopped())),
            }
        }
    }

    /// Sends a request; if the writing thread is gone, returns why.
    fn send(&mut self, request: Request) -> io::Result<()> {
        let Some(requests) = &self.requests else {
            return Err(stopped());
        };
        if requests.send(request).is_ok() {
            return Ok(());
        }
        // The thread stopped after a failure: its last reply says which.
        loop {
            match self.replies.recv() {
                Ok(Reply::Failed(e)) => return Err(self.fail(e)),
                Ok(_) => {}
                Err(_) => return Err(self.fail(stopped())),
            }
        }
    }
}

/// The error of a writing thread that ended without saying why (it panicked).
fn stopped() -> io::Error {
    io::Error::other("the thread writing the output stopped")
}

impl<W> BlockOutput for WriteBehind<W> {
    fn write_block(&mut self, block: &mut Vec<u8>) -> io::Result<()> {
        self.take_replies()?;
        let spare = self
            .spares
            .pop()
            .filter(|spare| spare.capacity() >= block.capacity())
            .unwrap_or_else(|| Vec::with_capacity(block.capacity()));
        let full = std::mem::replace(block, spare);
        self.send(Request::Write(full))
    }

    fn flush_blocks(&mut self) -> io::Result<()> {
        self.take_replies()?;
        self.send(Request::Flush)?;
        self.wait_flushed()
    }
}

impl<W> Drop for WriteBehind<W> {
    fn drop(&mut self) {
        // The thread ends once it has written what it was given.
        self.requests = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A destination shared with the test, which can be told to fail after so many bytes, or on
    /// flush, and counts its flushes.
    #[derive(Clone, Default)]
    struct Shared {
        bytes: Arc<Mutex<Vec<u8>>>,
        flushes: Arc<Mutex<usize>>,
        room: Option<usize>,
        flush_fails: bool,
    }

    impl Write for Shared {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            let mut bytes = self.bytes.lock().unwrap();
            let room = self.room.map_or(data.len(), |room| room - bytes.len());
            if room == 0 && !data.is_empty() {
                return Err(io::Error::from_raw_os_error(28));
            }
            let n = data.len().min(room);
            bytes.extend_from_slice(&data[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            if self.flush_fails {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "flush refused"));
            }
            *self.flushes.lock().unwrap() += 1;
            Ok(())
        }
    }

    fn block(i: usize, len: usize) -> Vec<u8> {
        let mut block = Vec::with_capacity(1 << 16);
        block.extend((0..len).map(|j| (i * 31 + j) as u8));
        block
    }

    #[test]
    fn blocks_arrive_whole_and_in_order_and_a_flush_waits_for_them() {
        let dest = Shared::default();
        let mut out = WriteBehind::new(dest.clone()).unwrap();
        let mut expected = Vec::new();
        let mut buf = Vec::with_capacity(1 << 16);
        for i in 0..200 {
            buf.extend_from_slice(&block(i, 1 + i * 97 % 5000));
            expected.extend_from_slice(&buf);
            let capacity = buf.capacity();
            out.write_block(&mut buf).unwrap();
            assert!(buf.is_empty(), "the block comes back empty");
            assert!(buf.capacity() >= capacity, "with room for the next");
        }
        out.flush_blocks().unwrap();
        // Flushed: everything is there before `into_inner`, flushed once.
        assert_eq!(*dest.bytes.lock().unwrap(), expected);
        assert_eq!(*dest.flushes.lock().unwrap(), 1);
        assert!(out.spares.len() <= QUEUED + 2, "buffers are reused");
        out.into_inner().unwrap();
    }

    #[test]
    fn a_failed_write_is_returned_by_the_next_call_and_every_one_after() {
        let dest = Shared {
            room: Some(10_000),
            ..Shared::default()
        };
        let mut out = WriteBehind::new(dest.clone()).unwrap();
        let mut first_error = None;
        for i in 0..100 {
            let mut buf = block(i, 3000);
            if let Err(e) = out.write_block(&mut buf) {
                first_error = Some(e);
                break;
            }
        }
        let e = match first_error {
            Some(e) => e,
            None => out.flush_blocks().unwrap_err(),
        };
        assert_eq!(
            e.raw_os_error(),
            Some(28),
            "the destination's own error: {e}"
        );
        let again = out.flush_blocks().unwrap_err();
        assert_eq!(again.to_string(), e.to_string());
        let again = out.write_block(&mut block(0, 10)).unwrap_err();
        assert_eq!(again.kind(), e.kind());
        assert!(out.into_inner().is_err());
        // What was written is a prefix of what was given, up to the room there was.
        let bytes = dest.bytes.lock().unwrap();
        assert_eq!(bytes.len(), 10_000);
        assert_eq!(&bytes[..3000], &block(0, 3000)[..]);
    }

    #[test]
    fn a_failed_flush_is_returned() {
        let dest = Shared {
            flush_fails: true,
            ..Shared::default()
        };
        let mut out = WriteBehind::new(dest.clone()).unwrap();
        out.write_block(&mut block(1, 100)).unwrap();
        let e = out.flush_blocks().unwrap_err();
        assert_eq!(e.to_string(), "flush refused");
        assert_eq!(dest.bytes.lock().unwrap().len(), 100);
    }

    #[test]
    fn dropping_it_writes_what_it_was_given() {
        let dest = Shared::default();
        let mut out = WriteBehind::new(dest.clone()).unwrap();
        for i in 0..20 {
            out.write_block(&mut block(i, 4096)).unwrap();
        }
        drop(out);
        assert_eq!(dest.bytes.lock().unwrap().len(), 20 * 4096);
    }

    #[test]
    fn any_writer_is_a_block_output() {
        let mut out = Vec::new();
        let mut buf = b"abc".to_vec();
        out.write_block(&mut buf).unwrap();
        assert!(buf.is_empty());
        out.flush_blocks().unwrap();
        assert_eq!(out, b"abc");
    }
}
