//! The file layer: trace files. `writer` writes one (header, tables, chunks, end record),
//! `files` names and places snapshot files in a directory, `process` describes the process for
//! the header.
//!
//! It uses the engine and recording layers, never the public API above it.

pub mod files;
pub(crate) mod process;
pub(crate) mod writer;
