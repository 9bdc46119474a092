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

/// A module (the executable or a shared library) mapped in the recorded process: what a
/// symbolizer needs to turn a stack's addresses into functions and lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Module {
    /// The module's id in the file, from 1.
    pub id: u64,
    /// The lowest address of its executable mapping in the process.
    pub start: u64,
    /// One past the highest address of its executable mapping.
    pub end: u64,
    /// The load bias: an address in the process minus this is the address in the module's file
    /// (its ELF virtual address).
    pub load_bias: u64,
    /// The module's path, as the dynamic loader named it (empty when unknown).
    pub path: String,
    /// The module's GNU build id (the `NT_GNU_BUILD_ID` note), raw bytes; empty when it has none.
    pub build_id: Vec<u8>,
}

impl Module {
    /// Whether `address` lies in this module's executable mapping.
    pub fn contains(&self, address: u64) -> bool {
        (self.start..self.end).contains(&address)
    }

    /// The build id in lowercase hex, as `file` and debuginfod print it.
    pub fn build_id_hex(&self) -> String {
        self.build_id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One function an address resolves to. An address inside inlined code resolves to several:
/// the innermost inlined function first, the function that holds the machine code last.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SymbolFrame {
    /// The function's name, demangled (empty when unknown).
    pub function: String,
    /// The source file (empty when unknown).
    pub file: String,
    /// The line, from 1 (0 when unknown).
    pub line: u32,
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

/// Appends one entry of a stacks table: the return addresses of a call stack, innermost
/// (the interrupted instruction) first. The first address is written whole, each next one as the
/// zigzag-encoded difference from the one before it (frames of one module lie close together).
pub fn push_stack(id: u64, frames: &[u64], out: &mut Vec<u8>) {
    varint::push(id, out);
    varint::push(frames.len() as u64, out);
    let mut previous = 0u64;
    for &address in frames {
        varint::push(zigzag(address.wrapping_sub(previous) as i64), out);
        previous = address;
    }
}

/// Appends one entry of a modules table.
pub fn push_module(module: &Module, out: &mut Vec<u8>) {
    varint::push(module.id, out);
    varint::push(module.start, out);
    varint::push(module.end, out);
    varint::push(module.load_bias, out);
    push_bytes(module.path.as_bytes(), out);
    push_bytes(&module.build_id, out);
}

/// Appends one entry of a symbols table: what `address` resolves to, innermost inlined function
/// first.
pub fn push_symbol(address: u64, frames: &[SymbolFrame], out: &mut Vec<u8>) {
    varint::push(address, out);
    varint::push(frames.len() as u64, out);
    for frame in frames {
        push_bytes(frame.function.as_bytes(), out);
        push_bytes(frame.file.as_bytes(), out);
        varint::push(u64::from(frame.line), out);
    }
}

/// Signed to unsigned, small magnitudes to small numbers: 0, -1, 1, -2, … → 0, 1, 2, 3, …
fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub(crate) fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
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

    /// A count of items that take at least `min_len` bytes each: refused when the rest of the
    /// payload could not hold them, so a corrupt count never makes a large allocation.
    pub(crate) fn count(&mut self, min_len: usize) -> Result<usize, &'static str> {
        let count = self.varint()?;
        usize::try_from(count)
            .ok()
            .filter(|&n| n.saturating_mul(min_len) <= self.remaining())
            .ok_or("table entry runs past the record")
    }

    pub(crate) fn small(&mut self) -> Result<u32, &'static str> {
        u32::try_from(self.varint()?).map_err(|_| "number too large in table")
    }
}
