//! Compact encodings of the task and user-task events (version 1.2).
//!
//! Most events name a task or a user task, and consecutive events of one thread usually name the
//! same one or one close to it. A chunk therefore keeps two running ids, [`ChunkIds`], both 0 at
//! the start of every chunk: the **task** (the `task` argument of the last `task_spawn`,
//! `poll_start`, `poll_start_scheduled`, `poll_end`, `task_wake` or `task_terminate`) and the
//! **user task** (the `user_task` argument of the last `region_begin`, `region_end`, `log`,
//! `mark`, `user_task_begin` or `user_task_end`). Every event of those kinds sets its running id,
//! whichever way it is encoded.
//!
//! Each of those kinds has compact encodings, kind bytes of their own ([`COMPACT`]) that decode to
//! the plain kind with all its arguments:
//!
//! - **delta** (`…_delta`): the same arguments, the id written as its difference from the running
//!   id (wrapping, zigzag-encoded like the stack deltas: `0, -1, 1, -2, …` → `0, 1, 2, 3, …`);
//! - **same** (`…_same`): the id is the running id and is not written;
//! - `poll_end_same_pending`, `_ready`, `_unreported`: a `poll_end` of the running task whose
//!   result (0, 1, 2) is in the kind byte, with no argument at all.
//!
//! A reader hands out the plain kind: [`Compact::expand`] turns a compact event's arguments into
//! the plain kind's. A writer picks, per event, the shortest of the plain and compact encodings
//! ([`encode`]), so no event is longer than its plain encoding.

use crate::event::{encode_event, EventKind, KindInfo, MAX_ARGS, MAX_PAYLOAD};
use crate::varint;

/// Which running id of a chunk an argument is coded against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdFamily {
    /// Runtime task ids (`task_spawn`, `poll_start`, …).
    Task,
    /// User task ids (`region_begin`, `log`, `user_task_begin`, …).
    UserTask,
}

/// The running ids of a chunk at one point of its events; both 0 before its first event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkIds {
    /// The task of the last task event.
    pub task: u64,
    /// The user task of the last user-task event.
    pub user_task: u64,
}

impl ChunkIds {
    /// The running id of `family`.
    #[inline(always)]
    pub fn get(&self, family: IdFamily) -> u64 {
        match family {
            IdFamily::Task => self.task,
            IdFamily::UserTask => self.user_task,
        }
    }

    /// Sets the running id of `family`.
    #[inline(always)]
    pub fn set(&mut self, family: IdFamily, id: u64) {
        match family {
            IdFamily::Task => self.task = id,
            IdFamily::UserTask => self.user_task = id,
        }
    }

    /// Notes a plain event (`kind_byte` with its decoded arguments): sets the running id its kind
    /// carries, if any.
    #[inline(always)]
    pub fn observe(&mut self, kind_byte: u8, args: &[u64; MAX_ARGS], arg_count: u8) {
        let code = ID_ARGS[usize::from(kind_byte)];
        if code == 0 {
            return;
        }
        let index = usize::from(code & 0x0f) - 1;
        if index < usize::from(arg_count) {
            if code & USER_TASK_BIT != 0 {
                self.user_task = args[index];
            } else {
                self.task = args[index];
            }
        }
    }
}

const USER_TASK_BIT: u8 = 0x10;

/// [`id_arg`] by kind byte: 0 for none, else 1 + the index, with [`USER_TASK_BIT`] for a user
/// task.
static ID_ARGS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < EventKind::ALL.len() {
        let kind = EventKind::ALL[i];
        if let Some((family, index)) = id_arg(kind) {
            let bit = match family {
                IdFamily::Task => 0,
                IdFamily::UserTask => USER_TASK_BIT,
            };
            table[kind as usize] = bit | (index as u8 + 1);
        }
        i += 1;
    }
    table
};

/// The argument of `kind` that sets a running id: its family and its index, if any.
#[inline(always)]
pub const fn id_arg(kind: EventKind) -> Option<(IdFamily, usize)> {
    match kind {
        EventKind::TaskSpawn
        | EventKind::PollStart
        | EventKind::PollStartScheduled
        | EventKind::PollEnd
        | EventKind::TaskWake
        | EventKind::TaskTerminate => Some((IdFamily::Task, 0)),
        EventKind::UserTaskBegin | EventKind::UserTaskEnd => Some((IdFamily::UserTask, 0)),
        EventKind::RegionBegin | EventKind::RegionEnd | EventKind::Log | EventKind::Mark => {
            Some((IdFamily::UserTask, 1))
        }
        _ => None,
    }
}

/// How a compact encoding writes the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// As its zigzag-encoded difference from the running id.
    Delta,
    /// Not at all: it is the running id.
    Same,
}

/// One compact encoding: its kind byte and name, the plain kind it decodes to, how it writes the
/// id, and an argument its byte fixes (`poll_end`'s result), as (index, value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compact {
    /// The kind byte.
    pub byte: u8,
    /// The name in the Kinds table.
    pub name: &'static str,
    /// The plain kind it decodes to.
    pub kind: EventKind,
    /// How the id is written.
    pub form: Form,
    /// An argument of the plain kind that the byte fixes: (index, value).
    pub fixed: Option<(usize, u64)>,
}

macro_rules! compact_kinds {
    ($($byte:literal $name:literal $kind:ident $form:ident $fixed:expr;)*) => {
        /// Every compact encoding of this version (the kind bytes never change).
        pub const COMPACT: &[Compact] = &[
            $(Compact {
                byte: $byte,
                name: $name,
                kind: EventKind::$kind,
                form: Form::$form,
                fixed: $fixed,
            },)*
        ];
    };
}

compact_kinds! {
    32 "task_spawn_delta" TaskSpawn Delta None;
    34 "poll_start_delta" PollStart Delta None;
    35 "poll_start_same" PollStart Same None;
    36 "poll_end_delta" PollEnd Delta None;
    37 "poll_end_same_pending" PollEnd Same Some((1, 0));
    38 "poll_end_same_ready" PollEnd Same Some((1, 1));
    39 "poll_end_same_unreported" PollEnd Same Some((1, 2));
    40 "task_wake_delta" TaskWake Delta None;
    41 "task_wake_same" TaskWake Same None;
    42 "task_terminate_delta" TaskTerminate Delta None;
    43 "task_terminate_same" TaskTerminate Same None;
    44 "poll_start_scheduled_delta" PollStartScheduled Delta None;
    45 "poll_start_scheduled_same" PollStartScheduled Same None;
    48 "region_begin_delta" RegionBegin Delta None;
    49 "region_begin_same" RegionBegin Same None;
    50 "region_end_delta" RegionEnd Delta None;
    51 "region_end_same" RegionEnd Same None;
    52 "log_delta" Log Delta None;
    53 "log_same" Log Same None;
    54 "mark_delta" Mark Delta None;
    55 "mark_same" Mark Same None;
    56 "user_task_begin_delta" UserTaskBegin Delta None;
    58 "user_task_end_delta" UserTaskEnd Delta None;
    59 "user_task_end_same" UserTaskEnd Same None;
}

/// The compact encodings by kind byte.
static BY_BYTE: [Option<Compact>; 256] = {
    let mut table = [None; 256];
    let mut i = 0;
    while i < COMPACT.len() {
        table[COMPACT[i].byte as usize] = Some(COMPACT[i]);
        i += 1;
    }
    table
};

/// The compact encoding with this kind byte, if this version defines one.
#[inline(always)]
pub fn lookup(byte: u8) -> Option<&'static Compact> {
    BY_BYTE[usize::from(byte)].as_ref()
}

impl Compact {
    /// How many varint arguments the encoding writes.
    pub const fn arg_count(&self) -> usize {
        self.kind.arg_count()
            - matches!(self.form, Form::Same) as usize
            - self.fixed.is_some() as usize
    }

    /// The encoding's layout and name, for the Kinds table.
    pub fn info(&self) -> KindInfo {
        KindInfo {
            byte: self.byte,
            arg_count: self.arg_count() as u8,
            has_payload: self.kind.has_payload(),
            name: self.name.to_string(),
        }
    }

    /// Whether a file's layout for this byte is this encoding's: a file that describes the byte
    /// otherwise has its own kind there, read as it describes it.
    #[inline]
    pub fn matches(&self, arg_count: u8, has_payload: bool) -> bool {
        usize::from(arg_count) == self.arg_count() && has_payload == self.kind.has_payload()
    }

    /// The plain kind's arguments from the encoding's (`raw`, as decoded), with `ids` the running
    /// ids before the event; sets the running id.
    // Always inlined, as `RawChunk::decode` is: returned through memory, the arguments would be
    // copied with loads that wait for their stores.
    #[inline(always)]
    pub fn expand(&self, raw: &[u64; MAX_ARGS], ids: &mut ChunkIds) -> [u64; MAX_ARGS] {
        let (family, index) = id_arg(self.kind).unwrap_or((IdFamily::Task, 0));
        let mut args = [0u64; MAX_ARGS];
        let mut next = 0;
        for (i, arg) in args.iter_mut().enumerate().take(self.kind.arg_count()) {
            if i == index {
                let running = ids.get(family);
                *arg = match self.form {
                    Form::Same => running,
                    Form::Delta => {
                        let delta = unzigzag(raw[next]);
                        next += 1;
                        running.wrapping_add(delta as u64)
                    }
                };
            } else if let Some((_, value)) = self.fixed.filter(|&(f, _)| f == i) {
                *arg = value;
            } else {
                *arg = raw[next];
                next += 1;
            }
        }
        ids.set(family, args[index]);
        args
    }
}

/// Zigzag encoding of a signed difference: `0, -1, 1, -2, 2, …` → `0, 1, 2, 3, 4, …`.
#[inline(always)]
pub const fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// The inverse of [`zigzag`].
#[inline(always)]
pub const fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// The delta encoding of `kind`, if it has one.
#[inline(always)]
const fn delta_byte(kind: EventKind) -> Option<u8> {
    match kind {
        EventKind::TaskSpawn => Some(32),
        EventKind::PollStart => Some(34),
        EventKind::PollEnd => Some(36),
        EventKind::TaskWake => Some(40),
        EventKind::TaskTerminate => Some(42),
        EventKind::PollStartScheduled => Some(44),
        EventKind::RegionBegin => Some(48),
        EventKind::RegionEnd => Some(50),
        EventKind::Log => Some(52),
        EventKind::Mark => Some(54),
        EventKind::UserTaskBegin => Some(56),
        EventKind::UserTaskEnd => Some(58),
        _ => None,
    }
}

/// The same-id encoding of an event of `kind` with these arguments, if it has one: its byte and
/// the index of the argument the byte fixes, if any.
#[inline(always)]
fn same_byte(kind: EventKind, args: &[u64]) -> Option<(u8, Option<usize>)> {
    match kind {
        EventKind::PollStart => Some((35, None)),
        EventKind::PollEnd => match args.get(1) {
            Some(0) => Some((37, Some(1))),
            Some(1) => Some((38, Some(1))),
            Some(2) => Some((39, Some(1))),
            _ => None,
        },
        EventKind::TaskWake => Some((41, None)),
        EventKind::TaskTerminate => Some((43, None)),
        EventKind::PollStartScheduled => Some((45, None)),
        EventKind::RegionBegin => Some((49, None)),
        EventKind::RegionEnd => Some((51, None)),
        EventKind::Log => Some((53, None)),
        EventKind::Mark => Some((55, None)),
        EventKind::UserTaskEnd => Some((59, None)),
        _ => None,
    }
}

/// Writes `byte`, the time delta, the arguments of `args` but the ones at the indexes `skip` (the
/// one at index `replace.0` as `replace.1`), and the payload if `kind` has one.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn write(
    byte: u8,
    kind: EventKind,
    delta: u64,
    args: &[u64],
    skip: (usize, usize),
    replace: (usize, u64),
    payload: &[u8],
    out: &mut [u8],
) -> usize {
    out[0] = byte;
    let mut n = 1;
    n += varint::encode(delta, &mut out[n..]);
    // The arguments one by one rather than in a loop: where this is inlined for a kind, the
    // argument count and the indexes skipped are constants and each argument's tests fold away,
    // whereas a loop around the varint's loop stays a loop, run on every event even when every
    // argument is skipped.
    #[inline(always)]
    fn put(
        i: usize,
        args: &[u64],
        skip: (usize, usize),
        replace: (usize, u64),
        out: &mut [u8],
        n: &mut usize,
    ) {
        let Some(&arg) = args.get(i) else {
            return;
        };
        if i == skip.0 || i == skip.1 {
            return;
        }
        let arg = if i == replace.0 { replace.1 } else { arg };
        *n += varint::encode(arg, &mut out[*n..]);
    }
    put(0, args, skip, replace, out, &mut n);
    put(1, args, skip, replace, out, &mut n);
    put(2, args, skip, replace, out, &mut n);
    put(3, args, skip, replace, out, &mut n);
    // No kind has more than `MAX_ARGS` (4) arguments; any further ones, as before, in order.
    for i in MAX_ARGS..args.len() {
        put(i, args, skip, replace, out, &mut n);
    }
    if kind.has_payload() {
        let payload = &payload[..payload.len().min(MAX_PAYLOAD)];
        n += varint::encode(payload.len() as u64, &mut out[n..]);
        out[n..n + payload.len()].copy_from_slice(payload);
        n += payload.len();
    }
    n
}

/// Encodes one event of `kind` into `out`, the shortest of its plain and compact encodings given
/// the chunk's running ids `ids` before it, and sets the running id; returns the bytes written.
///
/// The arguments and `out` are as for [`encode_event`], which this never writes more than.
///
/// # Panics
///
/// Panics if `out` is too short.
#[inline(always)]
pub fn encode(
    kind: EventKind,
    delta: u64,
    args: &[u64],
    payload: &[u8],
    ids: &mut ChunkIds,
    out: &mut [u8],
) -> usize {
    match id_arg(kind) {
        Some((family, index)) if index < args.len() => {
            let n = encode_after(kind, delta, args, payload, ids.get(family), out);
            ids.set(family, args[index]);
            n
        }
        _ => encode_event(kind, delta, args, payload, out),
    }
}

/// [`encode`] for a writer that keeps the running ids itself: `running` is the running id of
/// `kind`'s family ([`id_arg`]) before the event, and the caller sets it to the event's id
/// afterwards (a kind without an id, or arguments too few for it, are written plain).
#[inline(always)]
pub fn encode_after(
    kind: EventKind,
    delta: u64,
    args: &[u64],
    payload: &[u8],
    running: u64,
    out: &mut [u8],
) -> usize {
    let Some((_, index)) = id_arg(kind) else {
        return encode_event(kind, delta, args, payload, out);
    };
    let Some(&id) = args.get(index) else {
        return encode_event(kind, delta, args, payload, out);
    };
    const NONE: usize = usize::MAX;
    if id == running {
        if let Some((byte, fixed)) = same_byte(kind, args) {
            let skip = (index, fixed.unwrap_or(NONE));
            return write(byte, kind, delta, args, skip, (NONE, 0), payload, out);
        }
    }
    let coded = zigzag(id.wrapping_sub(running) as i64);
    match delta_byte(kind) {
        // Never longer than the plain id: a varint's length grows with its value.
        Some(byte) if coded <= id => write(
            byte,
            kind,
            delta,
            args,
            (NONE, NONE),
            (index, coded),
            payload,
            out,
        ),
        _ => encode_event(kind, delta, args, payload, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_round_trips() {
        for v in [0i64, -1, 1, -2, 2, i64::MIN, i64::MAX, 12345, -98765] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn table_is_consistent() {
        let mut seen = std::collections::HashSet::new();
        for c in COMPACT {
            assert!(seen.insert(c.byte), "duplicate byte {}", c.byte);
            assert!(
                EventKind::from_byte(c.byte).is_none(),
                "{} is a plain kind",
                c.byte
            );
            assert_eq!(lookup(c.byte), Some(c));
            assert!(id_arg(c.kind).is_some());
            if c.form == Form::Delta {
                assert_eq!(delta_byte(c.kind), Some(c.byte));
            }
            assert!(c.name.starts_with(c.kind.name()));
        }
        assert_eq!(lookup(17), None);
    }

    #[test]
    fn the_example_of_the_format_document() {
        let mut ids = ChunkIds {
            task: 1000,
            user_task: 0,
        };
        let mut out = [0u8; 64];
        let n = encode(EventKind::PollStart, 100, &[1003], &[], &mut ids, &mut out);
        assert_eq!(&out[..n], &[0x22, 0x64, 0x06]);
        let n = encode(EventKind::PollEnd, 50, &[1003, 0], &[], &mut ids, &mut out);
        assert_eq!(&out[..n], &[0x25, 0x32]);
    }

    #[test]
    fn poll_end_of_the_running_task_is_two_bytes() {
        let mut ids = ChunkIds::default();
        let mut out = [0u8; 64];
        let n = encode(EventKind::PollStart, 5, &[1000], &[], &mut ids, &mut out);
        // 1000 from 0: zigzag 2000 is longer than 1000, so the plain encoding.
        assert_eq!(&out[..n], &[17, 5, 0xe8, 0x07]);
        let n = encode(EventKind::PollEnd, 100, &[1000, 2], &[], &mut ids, &mut out);
        assert_eq!(&out[..n], &[39, 100]);
        let n = encode(EventKind::PollStart, 1, &[1003], &[], &mut ids, &mut out);
        assert_eq!(&out[..n], &[34, 1, 6]);
        let n = encode(EventKind::TaskWake, 1, &[1001, 7], &[], &mut ids, &mut out);
        assert_eq!(&out[..n], &[40, 1, 3, 7]);
        let n = encode(EventKind::Log, 0, &[9, 0], b"hi", &mut ids, &mut out);
        assert_eq!(&out[..n], &[53, 0, 9, 2, b'h', b'i']);
        assert_eq!(
            ids,
            ChunkIds {
                task: 1001,
                user_task: 0
            }
        );
    }
}
