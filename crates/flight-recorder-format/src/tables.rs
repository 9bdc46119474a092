//! The description tables: event kinds, strings, source locations and threads that events refer
//! to by id. A file may carry several records of each table; a reader adds their entries up.

use crate::event::KindInfo;
use crate::varint;

/// A source location (of a task spawn, for example).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The source file.
    pub file: String,
    /// The line, from 1.
    pub line: u32,
    /// The column, from 1.
    pub column: u32,
}

/// A thread that recorded events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadInfo {
    /// The recorder's id for the thread, unique in the process's life.
    pub id: u64,
    /// The operating system's thread id.
    pub os_tid: u64,
    /// The thread's name (empty when unnamed).
    pub name: String,
}

fn push_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    varint::push(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Appends one entry of a strings table.
pub fn push_string(id: u64, text: &str, out: &mut Vec<u8>) {
    varint::push(id, out);
    push_bytes(text.as_bytes(), out);
}

/// Appends one entry of a locations table.
pub fn push_location(id: u64, location: &Location, out: &mut Vec<u8>) {
    varint::push(id, out);
    push_bytes(location.file.as_bytes(), out);
    varint::push(u64::from(location.line), out);
    varint::push(u64::from(location.column), out);
}

/// Appends one entry of a threads table.
pub fn push_thread(thread: &ThreadInfo, out: &mut Vec<u8>) {
    varint::push(thread.id, out);
    varint::push(thread.os_tid, out);
    push_bytes(thread.name.as_bytes(), out);
}

/// Appends one entry of a kinds table.
pub fn push_kind(kind: &KindInfo, out: &mut Vec<u8>) {
    out.push(kind.byte);
    out.push(kind.arg_count);
    out.push(u8::from(kind.has_payload));
    push_bytes(kind.name.as_bytes(), out);
}

/// Reads table entries from a record payload.
pub(crate) struct EntryReader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> EntryReader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        EntryReader { input, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.pos)
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, &'static str> {
        varint::decode(self.input, &mut self.pos).ok_or("bad varint in table")
    }

    pub(crate) fn byte(&mut self) -> Result<u8, &'static str> {
        let b = *self.input.get(self.pos).ok_or("table entry cut short")?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], &'static str> {
        let len = self.varint()?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.pos.checked_add(len))
            .filter(|&end| end <= self.input.len())
            .ok_or("table entry runs past the record")?;
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    pub(crate) fn text(&mut self) -> Result<String, &'static str> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }

    pub(crate) fn small(&mut self) -> Result<u32, &'static str> {
        u32::try_from(self.varint()?).map_err(|_| "number too large in table")
    }
}
