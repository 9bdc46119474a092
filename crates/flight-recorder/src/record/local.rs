//! A thread's writer, the hot path: a thread appends an encoded event to its own chunk, with no
//! lock, no shared write and no allocation. Everything else (first use, a full chunk, a recorder
//! change) goes through the cold `refill`.
//!
//! The code takes its context explicitly: the engine, as the [`Sink`] of the writer's chunks, and
//! the state value the caller loaded. The process's writers (a thread-local [`Local`] per thread)
//! and its one engine are statics in `crate::engine::global`, the entry points the public API
//! calls; the loom model (`loom_tests`) drives this same code with an engine of its own.

use std::cell::Cell;

use flight_recorder_format::compact::{self, IdFamily};
use flight_recorder_format::event::{EventKind, MAX_PAYLOAD};
use flight_recorder_format::varint;

use crate::record::chunk::{Chunk, ChunkHeader, OpenChunk, EXIT_RESERVE};
use crate::record::clock;
use crate::record::state::State;
use crate::record::sync::Arc;

/// A thread known to the recorder.
pub(crate) struct ThreadShared {
    pub id: u64,
    pub open: OpenChunk,
}

/// The engine as a thread's writer sees it: where the state word, fresh chunks and the thread's
/// registration come from, and where sealed chunks go.
pub(crate) trait Sink {
    /// The current state.
    fn state(&self) -> State;
    /// Registers the calling thread; `None` when it cannot record (it is exiting).
    fn register_thread(&self) -> Option<Arc<ThreadShared>>;
    /// Forgets a thread that exits.
    fn unregister_thread(&self, id: u64);
    /// A fresh chunk for `thread`, or `None` when memory is exhausted.
    fn new_chunk(&self, thread: u64, state: State, base_units: u64) -> Option<Arc<Chunk>>;
    /// Hands a full or retired chunk to the consumers; called with the owner's slot locked.
    fn seal(&self, chunk: Arc<Chunk>, now_units: u64);
}

/// A reference to a sink is a sink: the writer takes its sink by value, so that the process's
/// (a unit type) costs no argument at all, and the loom model passes `&Engine`.
impl<T: Sink + ?Sized> Sink for &T {
    #[inline(always)]
    fn state(&self) -> State {
        (**self).state()
    }

    fn register_thread(&self) -> Option<Arc<ThreadShared>> {
        (**self).register_thread()
    }

    fn unregister_thread(&self, id: u64) {
        (**self).unregister_thread(id);
    }

    fn new_chunk(&self, thread: u64, state: State, base_units: u64) -> Option<Arc<Chunk>> {
        (**self).new_chunk(thread, state, base_units)
    }

    fn seal(&self, chunk: Arc<Chunk>, now_units: u64) {
        (**self).seal(chunk, now_units);
    }
}

/// The calling thread's writing position in its open chunk. The chunk itself is owned by the
/// thread's slot (`ThreadShared::open`), which only this thread replaces; the raw pointers here
/// stay valid until it does.
///
/// `Local` has no destructor, so its thread-local is a plain TLS slot that the hot path reaches
/// without a registration check; the thread's exit is handled by a separate hook that calls
/// [`Local::exit`].
pub(crate) struct Local {
    /// The state value the open chunk was taken in; [`State::OFF`] when there is none.
    state: Cell<State>,
    base: Cell<*mut u8>,
    pos: Cell<usize>,
    /// Where events must stop, leaving room for the exit event.
    limit: Cell<usize>,
    /// The open chunk (the loom model writes through it).
    #[cfg_attr(not(flight_recorder_loom), allow(dead_code))]
    chunk: Cell<*const Chunk>,
    /// The open chunk's header, for its `committed` counter and poll mark (the hot path's one
    /// shared store goes straight to it, wherever the chunk's memory lives).
    header: Cell<*const ChunkHeader>,
    last_units: Cell<u64>,
    /// The open chunk's running task id and user task id, for the compact encodings
    /// (`flight_recorder_format::compact`): reset with every fresh chunk.
    task_id: Cell<u64>,
    user_task_id: Cell<u64>,
    unit_shift: Cell<u32>,
    /// The thread's registration, from `Arc::into_raw`; released by [`Local::exit`].
    shared: Cell<*const ThreadShared>,
    /// Set while `refill` runs, so an event recorded from inside it (a hook in the allocator, for
    /// instance) is dropped instead of re-entering it.
    busy: Cell<bool>,
    /// The runtime this thread belongs to (0 = none), its role and the runtime's name (string
    /// id): repeated at the start of every chunk, so every snapshot knows which runtime a thread
    /// served, however long ago the thread started.
    runtime: Cell<(u64, u64, u64)>,
}

/// The most bytes an event with `arg_count` arguments and this payload can take.
#[inline(always)]
fn max_len(kind: EventKind, arg_count: usize, payload: &[u8]) -> usize {
    let fixed = 1 + varint::MAX_LEN * (1 + arg_count);
    if kind.has_payload() {
        fixed + varint::MAX_LEN + payload.len().min(MAX_PAYLOAD)
    } else {
        fixed
    }
}

impl Local {
    /// A writer with no chunk.
    pub(crate) const fn new() -> Local {
        Local {
            state: Cell::new(State::OFF),
            base: Cell::new(std::ptr::null_mut()),
            pos: Cell::new(0),
            limit: Cell::new(0),
            chunk: Cell::new(std::ptr::null()),
            header: Cell::new(std::ptr::null()),
            last_units: Cell::new(0),
            task_id: Cell::new(0),
            user_task_id: Cell::new(0),
            unit_shift: Cell::new(0),
            shared: Cell::new(std::ptr::null()),
            busy: Cell::new(false),
            runtime: Cell::new((0, 0, 0)),
        }
    }

    /// Sets the runtime tag (runtime, role, name id) and returns the previous one.
    #[cfg(feature = "tokio")]
    #[inline]
    pub(crate) fn replace_runtime(&self, tag: (u64, u64, u64)) -> (u64, u64, u64) {
        self.runtime.replace(tag)
    }

    /// The runtime tag: (runtime, role, name id).
    #[cfg(feature = "tokio")]
    #[inline]
    pub(crate) fn runtime(&self) -> (u64, u64, u64) {
        self.runtime.get()
    }
}

impl Local {
    /// Records one event, stamped `ticks`. `state` is the value of the state word the caller
    /// loaded and found enabled; `sink` is consulted only when the chunk must change.
    #[inline(always)]
    pub(crate) fn record<S: Sink + Copy>(
        &self,
        sink: S,
        state: State,
        ticks: u64,
        kind: EventKind,
        args: &[u64],
        payload: &[u8],
    ) {
        let need = max_len(kind, args.len(), payload);
        let fits = self.state.get() == state && self.pos.get() + need <= self.limit.get();
        if !fits && !self.refill(sink, ticks) {
            return;
        }
        let units = ticks >> self.unit_shift.get();
        let last = self.last_units.get();
        // The counter can read slightly behind after a migration between cores: clamp, so times
        // within a chunk never go backwards.
        let units = units.max(last);
        self.last_units.set(units);
        let pos = self.pos.get();
        // The kind is a constant here: only its family's running id is read and written.
        let running = match compact::id_arg(kind) {
            Some((IdFamily::Task, _)) => &self.task_id,
            Some((IdFamily::UserTask, _)) => &self.user_task_id,
            None => &self.task_id,
        };
        let before = running.get();
        let pos = pos + self.encode_at(pos, need, kind, units - last, args, payload, before);
        if let Some((_, index)) = compact::id_arg(kind) {
            if let Some(&id) = args.get(index) {
                running.set(id);
            }
        }
        self.pos.set(pos);
        // SAFETY: `header` is the open chunk's, alive as long as `base` (see `encode_at`).
        unsafe { &*self.header.get() }.publish(pos);
    }

    /// Encodes an event of at most `need` bytes at `pos` in the open chunk, in its shortest
    /// encoding given `running`, the chunk's running id of the kind's family; returns its length.
    #[cfg(not(flight_recorder_loom))]
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn encode_at(
        &self,
        pos: usize,
        need: usize,
        kind: EventKind,
        delta: u64,
        args: &[u64],
        payload: &[u8],
        running: u64,
    ) -> usize {
        // SAFETY: `base` points to the open chunk's buffer, owned by this thread's slot and only
        // replaced by this thread; `pos + need <= limit <= capacity` (checked in `record` or
        // ensured by `refill`), and bytes at or past `pos` are past the chunk's committed length,
        // so no reader reads them and no other thread writes them.
        let out = unsafe { std::slice::from_raw_parts_mut(self.base.get().add(pos), need) };
        compact::encode_after(kind, delta, args, payload, running, out)
    }

    /// The loom model's `encode_at`: the same bytes, copied into the chunk's cells through
    /// [`Chunk::write`] so that loom sees the write.
    #[cfg(flight_recorder_loom)]
    #[allow(clippy::too_many_arguments)]
    fn encode_at(
        &self,
        pos: usize,
        need: usize,
        kind: EventKind,
        delta: u64,
        args: &[u64],
        payload: &[u8],
        running: u64,
    ) -> usize {
        let mut event = vec![0u8; need];
        let n = compact::encode_after(kind, delta, args, payload, running, &mut event);
        // SAFETY: as in the real `encode_at`: this thread owns the open chunk and writes past its
        // committed length, within its limit.
        unsafe { (*self.chunk.get()).write(pos, &event[..n]) };
        n
    }

    /// Sets (`task` != 0) or clears the poll mark of the open chunk, stamped with the time of the
    /// event just recorded.
    #[inline(always)]
    pub(crate) fn mark_poll(&self, task: u64) {
        let header = self.header.get();
        if !header.is_null() {
            // SAFETY: a non-null `header` is the open chunk's, owned by this thread's slot.
            unsafe { &*header }.set_poll_mark(task, self.last_units.get());
        }
    }

    /// Seals the open chunk and takes a fresh one for the current state. Returns false when the
    /// event must be dropped (recording stopped, re-entered, or no memory).
    #[cold]
    #[inline(never)]
    fn refill<S: Sink + Copy>(&self, sink: S, ticks: u64) -> bool {
        if self.busy.replace(true) {
            return false;
        }
        let ok = self.refill_inner(sink, ticks);
        self.busy.set(false);
        ok
    }

    fn refill_inner<S: Sink + Copy>(&self, sink: S, ticks: u64) -> bool {
        let first = self.shared.get().is_null();
        if first {
            let Some(shared) = sink.register_thread() else {
                return false;
            };
            self.shared.set(Arc::into_raw(shared));
        }
        // SAFETY: set from `Arc::into_raw` above or earlier; released only by `exit`, after
        // which `shared` is null again and no event is recorded (the exit hook runs last).
        let shared = unsafe { &*self.shared.get() };
        let calibration = clock::calibration();
        let units = ticks >> calibration.unit_shift;
        let state = sink.state();
        let fresh = if state.enabled() {
            sink.new_chunk(shared.id, state, units)
        } else {
            None
        };
        let last_units = self.last_units.get();
        let mut carried_mark = None;
        shared.open.replace(fresh.clone(), |old| {
            old.set_last_units(last_units);
            // A poll that spans a full chunk keeps its mark; one that spans a recorder change
            // loses it (its end may go unrecorded).
            if old.state == state {
                carried_mark = old.poll_mark();
            }
            sink.seal(old, units);
        });
        let Some(chunk) = fresh else {
            self.state.set(State::OFF);
            self.base.set(std::ptr::null_mut());
            self.pos.set(0);
            self.limit.set(0);
            self.chunk.set(std::ptr::null());
            self.header.set(std::ptr::null());
            return false;
        };
        // SAFETY: this thread owns the chunk now (it is in this thread's slot).
        self.base.set(unsafe { chunk.write_ptr() });
        if let Some((task, started)) = carried_mark {
            chunk.set_poll_mark(task, started);
        }
        self.chunk.set(Arc::as_ptr(&chunk));
        self.header.set(chunk.header());
        self.pos.set(0);
        self.limit.set(chunk.capacity() - EXIT_RESERVE);
        self.last_units.set(units);
        self.task_id.set(0);
        self.user_task_id.set(0);
        self.unit_shift.set(calibration.unit_shift);
        self.state.set(state);
        if first {
            self.write_unchecked(EventKind::ThreadStart, units);
        }
        let (runtime, role, name) = self.runtime.get();
        if runtime != 0 {
            // A fresh chunk has room for these: no refill can follow.
            self.record(
                sink,
                state,
                ticks,
                EventKind::RuntimeThread,
                &[runtime, role],
                &[],
            );
            self.record(
                sink,
                state,
                ticks,
                EventKind::RuntimeName,
                &[runtime, name],
                &[],
            );
        }
        true
    }

    /// Writes an event without arguments, in space the caller knows is there (the exit reserve or
    /// a fresh chunk).
    fn write_unchecked(&self, kind: EventKind, units: u64) {
        if self.base.get().is_null() {
            return;
        }
        let last = self.last_units.get();
        let units = units.max(last);
        let pos = self.pos.get();
        // `pos + n <= limit + EXIT_RESERVE <= capacity` because every event leaves `EXIT_RESERVE`
        // bytes free and `n <= 11 < EXIT_RESERVE`.
        let n = self.encode_at(pos, 1 + varint::MAX_LEN, kind, units - last, &[], &[], 0);
        // SAFETY: `header` is the open chunk's (`base` is not null), owned by this thread's slot.
        unsafe { &*self.header.get() }.publish(pos + n);
        self.pos.set(pos + n);
        self.last_units.set(units);
    }

    /// The thread is exiting: record it, seal the open chunk (so the window keeps its events) and
    /// let go of the thread's registration.
    pub(crate) fn exit<S: Sink>(&self, sink: S) {
        let shared = self.shared.replace(std::ptr::null());
        if shared.is_null() {
            return;
        }
        // SAFETY: `shared` came from `Arc::into_raw` and is released exactly once, here (the
        // field is null from now on).
        let shared = unsafe { Arc::from_raw(shared) };
        let units = clock::now() >> self.unit_shift.get();
        if sink.state().enabled() && !self.busy.get() {
            self.write_unchecked(EventKind::ThreadExit, units);
        }
        let last_units = self.last_units.get();
        // No more events: the next one would find state `OFF` and a null registration, and the
        // sink refuses to register a thread whose exit hook is gone.
        self.state.set(State::OFF);
        self.base.set(std::ptr::null_mut());
        self.limit.set(0);
        self.busy.set(true);
        shared.open.replace(None, |old| {
            old.set_last_units(last_units);
            sink.seal(old, units);
        });
        sink.unregister_thread(shared.id);
    }
}
