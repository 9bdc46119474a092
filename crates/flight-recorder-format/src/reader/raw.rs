//! Chunks of events read undecoded, decoded in place ([`RawChunk::decode`]).

use crate::compact::{self, ChunkIds};
use crate::event::{EventKind, KindArgs, KindInfo, MAX_ARGS};
use crate::varint;

#[cfg(doc)]
use super::TraceReader;
use super::{Error, ErrorKind};

/// [`varint::decode`], inline and branch-light for values of up to eight bytes when eight bytes
/// are at hand (any such encoding is valid); the rest goes to [`varint::decode`].
#[inline(always)]
pub(super) fn fast_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let i = *pos;
    match data.get(i) {
        Some(&b) if b < 0x80 => {
            *pos = i + 1;
            return Some(u64::from(b));
        }
        None => return None,
        _ => {}
    }
    if let Some(bytes) = data.get(i..i + 8) {
        let word = u64::from_le_bytes(bytes.try_into().expect("eight bytes"));
        let ends = !word & 0x8080_8080_8080_8080;
        if ends != 0 {
            // The last byte's top bit is bit 8 × len − 1; the bits up to it are the varint's.
            let bits = ends.trailing_zeros() + 1;
            let word = word & (ends ^ ends.wrapping_sub(1));
            // Packs the 7-bit groups together.
            let w = word & 0x7f7f_7f7f_7f7f_7f7f;
            let w = (w & 0x007f_007f_007f_007f) | ((w & 0x7f00_7f00_7f00_7f00) >> 1);
            let w = (w & 0x0000_3fff_0000_3fff) | ((w & 0x3fff_0000_3fff_0000) >> 2);
            let w = (w & 0x0000_0000_0fff_ffff) | ((w & 0x0fff_ffff_0000_0000) >> 4);
            *pos = i + (bits / 8) as usize;
            return Some(w);
        }
    }
    varint::decode(data, pos)
}

/// Moves `*pos` past one varint (the checks of [`varint::decode`]).
#[inline(always)]
pub(super) fn skip_varint(data: &[u8], pos: &mut usize) -> Option<()> {
    let i = *pos;
    if let Some(word) = data.get(i..i + 8) {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let ends = !word & 0x8080_8080_8080_8080;
        if ends != 0 {
            *pos = i + (ends.trailing_zeros() / 8) as usize + 1;
            return Some(());
        }
    }
    varint::decode(data, pos).map(|_| ())
}

/// A kind with a layout ([`RawChunk`]'s table: this bit, the compact bit, the payload bit, the
/// argument count).
pub(super) const LAYOUT_KNOWN: u8 = 0x80;
/// A compact encoding ([`compact`]) with its own layout: decoded to its plain kind.
pub(super) const LAYOUT_COMPACT: u8 = 0x40;
const LAYOUT_PAYLOAD: u8 = 0x10;
const LAYOUT_ARGS: u8 = 0x0f;

/// The layout byte of [`RawChunk`]'s table for a kind byte described as `info`.
pub(super) fn layout_of(info: &KindInfo) -> u8 {
    let compact = compact::lookup(info.byte)
        .filter(|c| c.matches(info.arg_count, info.has_payload))
        .map_or(0, |_| LAYOUT_COMPACT);
    LAYOUT_KNOWN | compact | u8::from(info.has_payload) << 4 | info.arg_count
}

/// The undecoded events of one chunk ([`TraceReader::next_raw_chunk`]), with the kinds' layouts
/// as they were when the chunk was read.
///
/// Decoding keeps the chunk's running ids ([`compact::ChunkIds`]) for the compact encodings: it
/// follows the events in order, and an event asked for out of order costs a scan from the start.
#[derive(Clone, Debug)]
pub struct RawChunk {
    /// The thread that recorded the chunk.
    pub thread: u64,
    /// The time (stored units) before the first event: the chunk's base.
    pub base_units: u64,
    /// File offset of the first event byte.
    pub(super) offset: u64,
    pub(super) data: Vec<u8>,
    pub(super) start: usize,
    pub(super) layouts: [u8; 256],
    /// The running ids before the first event of [`RawChunk::bytes`].
    pub(super) ids_at_start: ChunkIds,
    /// The running ids before the event at `ids_pos`.
    pub(super) ids: ChunkIds,
    pub(super) ids_pos: usize,
}

/// One event decoded in place from a [`RawChunk`]; a compact encoding comes out as its plain kind,
/// with all its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// When, in stored units (convert with [`TraceReader::time_converter`]).
    pub units: u64,
    /// The kind byte.
    pub kind_byte: u8,
    /// How many arguments the event has.
    pub arg_count: u8,
    /// The arguments; only the first `arg_count` are meaningful, the others are 0.
    pub args: [u64; MAX_ARGS],
    /// Where the payload is in [`RawChunk::bytes`] (empty for kinds without one).
    pub payload: std::ops::Range<usize>,
}

impl RawEvent {
    /// The arguments by name, for an event of kind `A::KIND`: e.g.
    /// `let args::PollEnd { task, result } = event.args_as();` (arguments the event lacks are 0).
    #[inline(always)]
    pub fn args_as<A: KindArgs>(&self) -> A {
        debug_assert_eq!(self.kind_byte, A::KIND as u8);
        A::from_args(&self.args)
    }
}

impl RawChunk {
    /// A chunk of events laid out with the kinds of this version of the format (for tests and
    /// tools that build events in memory), at file offset 0.
    pub fn new(thread: u64, base_units: u64, events: Vec<u8>) -> RawChunk {
        let mut layouts = [0u8; 256];
        for &kind in EventKind::ALL {
            let info = KindInfo::from(kind);
            layouts[usize::from(info.byte)] = layout_of(&info);
        }
        for c in compact::COMPACT {
            layouts[usize::from(c.byte)] = layout_of(&c.info());
        }
        RawChunk {
            thread,
            base_units,
            offset: 0,
            data: events,
            start: 0,
            layouts,
            ids_at_start: ChunkIds::default(),
            ids: ChunkIds::default(),
            ids_pos: 0,
        }
    }

    /// The event bytes.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start..]
    }

    /// File offset of the first event byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Decodes the event at `*pos` in [`RawChunk::bytes`]; `*units` is the time of the previous
    /// event (start with [`RawChunk::base_units`]). On success both move past the event; on a
    /// malformed event (the same cases and messages as [`TraceReader::next_event`]) neither
    /// moves. `*pos` must be 0 or where an earlier call left it (the events are read in order;
    /// another event start works too, after a scan from the first event).
    // Always inlined, with what it calls: out of line, the event comes back through memory, and
    // the caller's copy of its arguments (wide loads) waits for the callee's stores of them (one
    // word each) to complete. That wait took a seventh of the merged reader's time.
    #[inline(always)]
    pub fn decode(&mut self, pos: &mut usize, units: &mut u64) -> Result<RawEvent, &'static str> {
        if *pos != self.ids_pos {
            self.ids = self.ids_before(*pos);
            self.ids_pos = *pos;
        }
        let mut ids = self.ids;
        let event = self.decode_with(pos, units, &mut ids)?;
        self.ids = ids;
        self.ids_pos = *pos;
        Ok(event)
    }

    /// The running ids before the first event of [`RawChunk::bytes`] (not 0 for the rest of a
    /// chunk some of whose events were read as [`super::Event`]s).
    pub fn ids_at_start(&self) -> ChunkIds {
        self.ids_at_start
    }

    /// The running ids before the event at `pos`, from a scan of the events before it.
    #[cold]
    #[inline(never)]
    fn ids_before(&self, pos: usize) -> ChunkIds {
        let mut ids = self.ids_at_start;
        let (mut at, mut units) = (0, self.base_units);
        while at < pos {
            if self.decode_with(&mut at, &mut units, &mut ids).is_err() {
                break;
            }
        }
        ids
    }

    /// [`RawChunk::decode`] with the running ids before the event given and updated by the
    /// caller (`ids` moves only on success, like `*pos` and `*units`).
    // Always inlined: see `decode`.
    #[inline(always)]
    pub fn decode_with(
        &self,
        pos: &mut usize,
        units: &mut u64,
        ids: &mut ChunkIds,
    ) -> Result<RawEvent, &'static str> {
        let data = self.bytes();
        let start = *pos;
        let Some(&kind_byte) = data.get(start) else {
            return Err("event cut short");
        };
        let layout = self.layouts[usize::from(kind_byte)];
        if layout & LAYOUT_KNOWN == 0 {
            return Err("unknown event kind");
        }
        let arg_count = layout & LAYOUT_ARGS;
        let mut at = start + 1;
        let delta = fast_varint(data, &mut at).ok_or("event cut short")?;
        let mut args = [0u64; MAX_ARGS];
        for arg in args.iter_mut().take(usize::from(arg_count)) {
            *arg = fast_varint(data, &mut at).ok_or("event cut short")?;
        }
        let mut payload = at..at;
        if layout & LAYOUT_PAYLOAD != 0 {
            let end = fast_varint(data, &mut at)
                .and_then(|len| usize::try_from(len).ok())
                .and_then(|len| at.checked_add(len))
                .filter(|&end| end <= data.len())
                .ok_or("event payload runs past its chunk")?;
            payload = at..end;
            at = end;
        }
        *pos = at;
        *units = units.saturating_add(delta);
        if layout & LAYOUT_COMPACT != 0 {
            if let Some(c) = compact::lookup(kind_byte) {
                return Ok(RawEvent {
                    units: *units,
                    kind_byte: c.kind as u8,
                    arg_count: c.kind.arg_count() as u8,
                    args: c.expand(&args, ids),
                    payload,
                });
            }
        }
        ids.observe(kind_byte, &args, arg_count);
        Ok(RawEvent {
            units: *units,
            kind_byte,
            arg_count,
            args,
            payload,
        })
    }

    /// Moves `*pos` past the event there without decoding its values; fails (leaving `*pos`)
    /// exactly when [`RawChunk::decode`] would, with its message.
    #[inline]
    fn skip(&self, data: &[u8], pos: &mut usize) -> Result<(), &'static str> {
        let start = *pos;
        let layout = self.layouts[usize::from(data[start])];
        if layout & LAYOUT_KNOWN == 0 {
            return Err("unknown event kind");
        }
        let varints = layout & LAYOUT_ARGS;
        if layout & LAYOUT_PAYLOAD == 0 {
            // The whole event in the next eight bytes: the end of its last varint is the
            // (1 + arguments)-th byte without the top bit (every varint then fits and is valid).
            if let Some(bytes) = data.get(start + 1..start + 9) {
                let ends = !u64::from_le_bytes(bytes.try_into().expect("eight bytes"))
                    & 0x8080_8080_8080_8080;
                // Clears the ends of the first `varints` varints (at most MAX_ARGS + 1), without
                // a loop.
                let clear = |e: u64| e & e.wrapping_sub(1);
                let ends = match varints {
                    0 => ends,
                    1 => clear(ends),
                    2 => clear(clear(ends)),
                    3 => clear(clear(clear(ends))),
                    _ => {
                        let mut ends = clear(clear(clear(clear(ends))));
                        for _ in 4..varints {
                            ends = clear(ends);
                        }
                        ends
                    }
                };
                if ends != 0 {
                    *pos = start + 2 + (ends.trailing_zeros() / 8) as usize;
                    return Ok(());
                }
            }
        }
        let mut at = start + 1;
        for _ in 0..=varints {
            skip_varint(data, &mut at).ok_or("event cut short")?;
        }
        if layout & LAYOUT_PAYLOAD != 0 {
            at = varint::decode(data, &mut at)
                .and_then(|len| usize::try_from(len).ok())
                .and_then(|len| at.checked_add(len))
                .filter(|&end| end <= data.len())
                .ok_or("event payload runs past its chunk")?;
        }
        *pos = at;
        Ok(())
    }

    /// Checks the events as [`TraceReader::next_event`] would decode them: how many are intact
    /// before the first malformed one, how many bytes they take, and the error for the malformed
    /// one (with its file offset), if any.
    pub fn validate(&self) -> (usize, usize, Option<Error>) {
        let data = self.bytes();
        let mut pos = 0;
        let mut count = 0;
        while pos < data.len() {
            if let Err(what) = self.skip(data, &mut pos) {
                let error = Error {
                    offset: self.offset + pos as u64,
                    kind: ErrorKind::Malformed(what),
                };
                return (count, pos, Some(error));
            }
            count += 1;
        }
        (count, pos, None)
    }
}
