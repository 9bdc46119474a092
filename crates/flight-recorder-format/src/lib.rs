//! The flight-recorder trace file format.
//!
//! A trace file is a preamble (magic and version) followed by checksummed records: a header, the
//! description tables (event kinds, strings, locations, threads), chunks of events, one per
//! thread buffer, and an end record. `docs/FORMAT.md` in the repository describes every byte.
//!
//! This crate has the encoding shared by the recorder and the tools, and a streaming
//! [`TraceReader`]:
//!
//! ```no_run
//! use flight_recorder_format::TraceReader;
//!
//! let mut reader = TraceReader::open("trace.out")?;
//! println!("written because: {}", reader.header().reason);
//! while let Some(event) = reader.next_event()? {
//!     println!("{} {:?} on thread {}", event.time_ns, event.kind(), event.thread);
//! }
//! # Ok::<(), flight_recorder_format::Error>(())
//! ```

pub mod compact;
pub mod dump_files;
pub mod event;
pub mod header;
pub mod reader;
pub mod record;
pub mod tables;
pub mod time;
pub mod units;
pub mod varint;

pub use event::{args, EventKind, KindArgs, KindInfo};
pub use header::{ClockCalibration, ClockSample, Header, TimeConverter};
pub use reader::{Dropped, Error, ErrorKind, Event, NameTables, TableEntry, TraceReader};
pub use record::{RecordType, RecordWriter};
pub use tables::{Location, Module, SymbolFrame, ThreadInfo};
