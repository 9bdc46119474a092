//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::{self, Write};
use std::sync::{mpsc, Mutex, MutexGuard};

use flight_recorder_format::{Event, EventKind, TraceReader};

/// The recorder is process-wide: tests that start one take this lock so they do not see each
/// other's recorders when the harness runs them on parallel threads.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A whole trace read back: its reader (for tables) and its events.
pub struct ReadTrace {
    pub reader: TraceReader<std::io::Cursor<Vec<u8>>>,
    pub events: Vec<Event>,
}

/// Reads a complete trace from bytes, failing the test on any error.
pub fn read_trace(bytes: Vec<u8>) -> ReadTrace {
    let mut reader = TraceReader::new(std::io::Cursor::new(bytes)).expect("header");
    let events = reader.read_all_events().expect("events");
    assert!(reader.is_complete(), "file has no end record");
    ReadTrace { reader, events }
}

impl ReadTrace {
    /// The id of the thread with this name.
    pub fn thread_named(&self, name: &str) -> u64 {
        self.reader
            .threads()
            .values()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no thread named {name}"))
            .id
    }

    /// The events of one thread, in order.
    pub fn events_of(&self, thread: u64) -> Vec<&Event> {
        self.events.iter().filter(|e| e.thread == thread).collect()
    }

    /// A readable form of an event for comparisons: kind name, then arguments with string ids
    /// resolved for kinds that carry names.
    pub fn describe(&self, event: &Event) -> String {
        match event.kind() {
            Some(EventKind::RegionBegin | EventKind::RegionEnd) => format!(
                "{} {}",
                event.kind().unwrap().name(),
                self.reader.string(event.arg(0)).unwrap_or("?")
            ),
            Some(EventKind::Log) => format!(
                "log {} {}",
                self.reader.string(event.arg(0)).unwrap_or("?"),
                String::from_utf8_lossy(&event.payload)
            ),
            Some(kind) => {
                let args: Vec<String> = (0..kind.arg_count())
                    .map(|i| event.arg(i).to_string())
                    .collect();
                format!("{} {}", kind.name(), args.join(" "))
                    .trim_end()
                    .to_string()
            }
            None => format!("unknown {}", event.kind_byte),
        }
    }
}

/// A writer that signals when a snapshot first writes to it, then blocks until released, and
/// keeps what it was given.
pub struct BlockingWriter {
    reached: mpsc::Sender<()>,
    release: mpsc::Receiver<()>,
    blocked: bool,
    /// The bytes written.
    pub bytes: Vec<u8>,
}

impl BlockingWriter {
    /// The writer, the receiver told when it blocks, and the sender that releases it.
    pub fn new() -> (BlockingWriter, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (reached, reached_rx) = mpsc::channel();
        let (release_tx, release) = mpsc::channel();
        let writer = BlockingWriter {
            reached,
            release,
            blocked: false,
            bytes: Vec::new(),
        };
        (writer, reached_rx, release_tx)
    }
}

impl Write for BlockingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.blocked {
            self.blocked = true;
            let _ = self.reached.send(());
            let _ = self.release.recv();
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
