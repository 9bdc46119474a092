//! Event kinds and the encoding of one event inside a chunk.
//!
//! An event is one kind byte, a varint timestamp delta (in clock units, from the previous event of
//! the same chunk or from the chunk's base time), then as many varint arguments as its kind
//! declares, then, for kinds that carry one, a varint length and that many payload bytes.
//!
//! Every file carries a table of the kinds it uses (byte, argument count, payload flag, name), so
//! a reader can step over kinds it does not know.
//!
//! Version 1.2 adds shorter encodings of the task and user-task kinds, with kind bytes of their
//! own that decode to these kinds ([`crate::compact`]).

use crate::varint;

/// The most arguments one event carries.
pub const MAX_ARGS: usize = 4;

/// The largest payload one event carries; longer payloads are cut to this length when recorded.
pub const MAX_PAYLOAD: usize = 4096;

/// The most bytes one event can take when encoded (kind, delta, arguments, payload length and
/// payload).
pub const MAX_EVENT_LEN: usize = 1 + varint::MAX_LEN * (2 + MAX_ARGS) + MAX_PAYLOAD;

macro_rules! event_kinds {
    ($(
        $(#[$doc:meta])*
        $name:ident = $byte:literal, $text:literal,
        args: [$($arg:ident: $arg_doc:literal),*], payload: $payload:literal;
    )*) => {
        /// What an event records. The byte values are part of the file format and never change.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum EventKind {
            $( $(#[$doc])* $name = $byte, )*
        }

        impl EventKind {
            /// Every kind this version of the format defines.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$name,)*];

            /// The kind with this byte value, if this version defines one.
            pub fn from_byte(byte: u8) -> Option<EventKind> {
                match byte {
                    $( $byte => Some(EventKind::$name), )*
                    _ => None,
                }
            }

            /// The kind's name as written in files and shown by tools.
            pub fn name(self) -> &'static str {
                match self { $( EventKind::$name => $text, )* }
            }

            /// How many varint arguments follow the timestamp delta.
            pub const fn arg_count(self) -> usize {
                // One per name: a constant per kind, as if written by hand.
                match self { $( EventKind::$name => 0 $(+ { let _ = stringify!($arg); 1 })*, )* }
            }

            /// The names of the arguments, in their order in the encoding (the fields of the
            /// kind's struct in [`args`]).
            pub fn arg_names(self) -> &'static [&'static str] {
                match self { $( EventKind::$name => &[$(stringify!($arg)),*], )* }
            }

            /// Whether a length-prefixed payload follows the arguments.
            pub const fn has_payload(self) -> bool {
                match self { $( EventKind::$name => $payload, )* }
            }
        }

        /// The arguments of each kind, by name: one struct per kind, read from a decoded event's
        /// argument array with [`KindArgs::from_args`] (or the `args_as` method of the decoded
        /// event types), e.g. `let args::PollEnd { task, result } = event.args_as();`.
        pub mod args {
            use super::{EventKind, KindArgs, MAX_ARGS};

            $(
                #[doc = concat!("The arguments of a `", $text, "` event ([`EventKind::", stringify!($name), "`]).")]
                #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
                pub struct $name {
                    $( #[doc = $arg_doc] pub $arg: u64, )*
                }

                impl KindArgs for $name {
                    const KIND: EventKind = EventKind::$name;

                    #[inline(always)]
                    fn from_args(args: &[u64; MAX_ARGS]) -> Self {
                        let [$($arg,)* ..] = *args;
                        $name { $($arg),* }
                    }

                    #[inline(always)]
                    #[allow(unused_mut)] // kinds without arguments
                    fn to_args(&self) -> ([u64; MAX_ARGS], usize) {
                        let mut out = [0u64; MAX_ARGS];
                        let mut n = 0;
                        $( out[n] = self.$arg; n += 1; )*
                        (out, n)
                    }
                }
            )*
        }
    };
}

/// The named arguments of one kind of event (a struct of [`args`]).
pub trait KindArgs: Sized {
    /// The kind whose arguments these are.
    const KIND: EventKind;

    /// The arguments from a decoded event's argument array (arguments the event lacks are 0 in
    /// the array, as the decoders leave them).
    fn from_args(args: &[u64; MAX_ARGS]) -> Self;

    /// The arguments as an array in encoding order, and how many there are (for
    /// [`encode_event`]: `&array[..count]`).
    fn to_args(&self) -> ([u64; MAX_ARGS], usize);
}

event_kinds! {
    /// A thread recorded its first event. Arguments: none (the thread is described in the
    /// threads table).
    ThreadStart = 1, "thread_start", args: [], payload: false;
    /// A thread is exiting. Arguments: none.
    ThreadExit = 2, "thread_exit", args: [], payload: false;
    /// A user region began on this thread. Arguments: name (string id), user task id (0 = none).
    RegionBegin = 3, "region_begin",
        args: [name: "The region's name (string id).", user_task: "The user task id (0 = none)."],
        payload: false;
    /// A user region ended on this thread. Arguments: name (string id), user task id (0 = none).
    RegionEnd = 4, "region_end",
        args: [name: "The region's name (string id).", user_task: "The user task id (0 = none)."],
        payload: false;
    /// A user log message. Arguments: category (string id), user task id (0 = none). Payload:
    /// the message, UTF-8.
    Log = 5, "log",
        args: [category: "The category (string id).", user_task: "The user task id (0 = none)."],
        payload: true;
    /// An instant user mark. Arguments: name (string id), user task id (0 = none).
    Mark = 6, "mark",
        args: [name: "The mark's name (string id).", user_task: "The user task id (0 = none)."],
        payload: false;
    /// A user task (a logical operation such as a request) began. Arguments: user task id,
    /// parent user task id (0 = none), name (string id).
    UserTaskBegin = 7, "user_task_begin",
        args: [
            user_task: "The user task id.",
            parent: "The parent user task id (0 = none).",
            name: "The user task's name (string id)."
        ],
        payload: false;
    /// A user task ended. Arguments: user task id.
    UserTaskEnd = 8, "user_task_end", args: [user_task: "The user task id."], payload: false;
    /// A counter's value. Arguments: name (string id), value.
    Counter = 9, "counter",
        args: [name: "The counter's name (string id).", value: "The value."],
        payload: false;
    /// An async task was spawned. Arguments: task id, spawn location id (0 = unknown), parent
    /// task id (0 = none).
    TaskSpawn = 16, "task_spawn",
        args: [
            task: "The task id.",
            location: "The spawn location id (0 = unknown).",
            parent: "The parent task id (0 = none)."
        ],
        payload: false;
    /// A task's poll began on this thread. Arguments: task id.
    PollStart = 17, "poll_start", args: [task: "The task id."], payload: false;
    /// A task's poll ended. Arguments: task id, result: 1 the task completed (ready), 0 pending,
    /// 2 not reported by the runtime (tokio's hooks; a `task_terminate` follows the last poll).
    PollEnd = 18, "poll_end",
        args: [
            task: "The task id.",
            result: "1 ready (the task completed), 0 pending, 2 not reported by the runtime."
        ],
        payload: false;
    /// A task was woken. Arguments: task id, waking task id (0 = woken from outside a task).
    TaskWake = 19, "task_wake",
        args: [
            task: "The task id.",
            waker: "The waking task id (0 = woken from outside a task)."
        ],
        payload: false;
    /// A task ended and was released. Arguments: task id.
    TaskTerminate = 20, "task_terminate", args: [task: "The task id."], payload: false;
    /// A runtime worker thread parked (went idle). Arguments: none.
    WorkerPark = 21, "worker_park", args: [], payload: false;
    /// A runtime worker thread unparked (woke up). Arguments: none.
    WorkerUnpark = 22, "worker_unpark", args: [], payload: false;
    /// This thread belongs to a runtime. Arguments: runtime id, role (0 worker, 1 blocking pool,
    /// 2 other).
    RuntimeThread = 23, "runtime_thread",
        args: [
            runtime: "The runtime id.",
            role: "The thread's role: 0 worker, 1 blocking pool, 2 other."
        ],
        payload: false;
    /// A runtime's name. Arguments: runtime id, name (string id).
    RuntimeName = 24, "runtime_name",
        args: [runtime: "The runtime id.", name: "The runtime's name (string id)."],
        payload: false;
    /// A task's poll began, with the time it waited to be polled since it was scheduled (the
    /// runtime measured it). Arguments: task id, scheduling latency in nanoseconds.
    PollStartScheduled = 25, "poll_start_scheduled",
        args: [
            task: "The task id.",
            scheduled_ns: "The scheduling latency the runtime measured, in nanoseconds."
        ],
        payload: false;
    /// The call stack of a thread, captured while it ran (by the thread recording the event,
    /// which may be another one: a watchdog records the stack of the worker it watches).
    /// Arguments: the thread whose stack it is, the task it was polling, the stack id, why.
    ThreadStack = 26, "thread_stack",
        args: [
            thread: "The recorder's id of the thread whose stack this is.",
            task: "The task that thread was polling (0 = none or unknown).",
            stack: "The stack id (stacks table); 0 when the capture failed.",
            cause: "Why it was captured: 1 a poll running past the slow-poll threshold, 2 a worker that stayed busy with no events recorded (no poll hooks), 3 a fatal signal."
        ],
        payload: false;
    /// A CPU profiling sample of a thread: where it was running at the sample's instant, which
    /// lies `age` units before this event's time (samples are recorded in batches).
    CpuSample = 27, "cpu_sample",
        args: [
            thread: "The recorder's id of the sampled thread.",
            stack: "The stack id (stacks table).",
            age: "How long before this event's time the sample was taken, in time units.",
            task: "The task the thread was polling at that instant, when the sampler knew it (0 = unknown: attribute it from the thread's polls)."
        ],
        payload: false;
    /// A poll of a task returned pending without keeping its waker: the waker it was given was
    /// neither cloned nor woken, so nothing can wake the task (a lost wake). Recorded by the
    /// instrumented spawn, just before the poll's end. Arguments: task id.
    PendingWithoutWaker = 28, "pending_without_waker",
        args: [task: "The task id."],
        payload: false;
}

/// Why a [`EventKind::ThreadStack`] was captured (its `cause` argument).
pub mod stack_cause {
    /// A poll ran past the slow-poll threshold: the stack of the worker running it.
    pub const SLOW_POLL: u64 = 1;
    /// A runtime worker stayed busy past the threshold with no events recorded in between (a
    /// build without tokio's poll hooks).
    pub const STUCK_WORKER: u64 = 2;
    /// The process received a fatal signal: the stack of the crashing thread.
    pub const FATAL_SIGNAL: u64 = 3;
}

/// How an event of a given kind byte is laid out; read from a file's kinds table so that kinds
/// unknown to this reader can still be skipped and named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindInfo {
    /// The kind byte.
    pub byte: u8,
    /// How many varint arguments follow the timestamp delta.
    pub arg_count: u8,
    /// Whether a length-prefixed payload follows the arguments.
    pub has_payload: bool,
    /// The kind's name.
    pub name: String,
}

impl From<EventKind> for KindInfo {
    fn from(kind: EventKind) -> Self {
        KindInfo {
            byte: kind as u8,
            arg_count: kind.arg_count() as u8,
            has_payload: kind.has_payload(),
            name: kind.name().to_string(),
        }
    }
}

/// Encodes one event into `out` and returns the number of bytes written.
///
/// `args` must hold exactly `kind.arg_count()` values and `payload` must be empty for kinds that
/// carry none; a payload longer than [`MAX_PAYLOAD`] is cut. `out` needs room for
/// `1 + 10 * (2 + args.len()) + payload.len()` bytes at most.
///
/// # Panics
///
/// Panics if `out` is too short.
#[inline(always)]
pub fn encode_event(
    kind: EventKind,
    delta: u64,
    args: &[u64],
    payload: &[u8],
    out: &mut [u8],
) -> usize {
    debug_assert_eq!(args.len(), kind.arg_count());
    out[0] = kind as u8;
    let mut n = 1;
    n += varint::encode(delta, &mut out[n..]);
    for &arg in args {
        n += varint::encode(arg, &mut out[n..]);
    }
    if kind.has_payload() {
        let payload = &payload[..payload.len().min(MAX_PAYLOAD)];
        n += varint::encode(payload.len() as u64, &mut out[n..]);
        out[n..n + payload.len()].copy_from_slice(payload);
        n += payload.len();
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_bytes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &kind in EventKind::ALL {
            assert!(seen.insert(kind as u8), "duplicate byte for {kind:?}");
            assert_eq!(EventKind::from_byte(kind as u8), Some(kind));
            assert!(kind.arg_count() <= MAX_ARGS);
        }
        assert_eq!(EventKind::from_byte(0), None);
        assert_eq!(EventKind::from_byte(255), None);
    }

    #[test]
    fn named_arguments_follow_the_encoding_order() {
        let event = [7, 2, 0, 0];
        let args::PollEnd { task, result } = args::PollEnd::from_args(&event);
        assert_eq!((task, result), (7, 2));
        assert_eq!(EventKind::PollEnd.arg_names(), &["task", "result"]);
        let spawn = args::TaskSpawn {
            task: 1,
            location: 2,
            parent: 3,
        };
        assert_eq!(spawn.to_args(), ([1, 2, 3, 0], 3));
        assert_eq!(<args::TaskSpawn as KindArgs>::KIND, EventKind::TaskSpawn);
        for &kind in EventKind::ALL {
            assert_eq!(kind.arg_names().len(), kind.arg_count());
        }
    }

    #[test]
    fn poll_start_with_small_delta_takes_three_bytes() {
        let mut out = [0u8; 64];
        let n = encode_event(EventKind::PollStart, 100, &[42], &[], &mut out);
        assert_eq!(&out[..n], &[17, 100, 42]);
    }

    #[test]
    fn long_payload_is_cut() {
        let mut out = vec![0u8; MAX_EVENT_LEN];
        let payload = vec![b'x'; MAX_PAYLOAD + 100];
        let n = encode_event(EventKind::Log, 0, &[1, 0], &payload, &mut out);
        assert_eq!(n, 1 + 1 + 2 + 2 + MAX_PAYLOAD);
    }
}
