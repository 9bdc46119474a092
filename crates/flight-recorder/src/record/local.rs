//! The hot path: a thread appends an encoded event to its own chunk, with no lock, no shared
//! write and no allocation. Everything else (first use, a full chunk, a recorder change) goes
//! through the cold `refill`.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use flight_recorder_format::event::{encode_event, EventKind, MAX_PAYLOAD};
use flight_recorder_format::varint;

use crate::engine::{engine, ThreadShared, ENABLED, STATE, WATCH_POLLS};
use crate::record::chunk::{Chunk, EXIT_RESERVE};
use crate::record::clock;

/// The calling thread's writing position in its open chunk. The chunk itself is owned by the
/// thread's slot (`ThreadShared::open`), which only this thread replaces; the raw pointers here
/// stay valid until it does.
///
/// `Local` has no destructor, so its thread-local is a plain TLS slot that the hot path reaches
/// without a registration check; the thread's exit is handled by the separate [`ExitHook`].
struct Local {
    /// The state value the open chunk was taken in; 0 when there is none.
    generation: Cell<u64>,
    base: Cell<*mut u8>,
    pos: Cell<usize>,
    /// Where events must stop, leaving room for the exit event.
    limit: Cell<usize>,
    /// The open chunk, for its `committed` counter and poll mark.
    chunk: Cell<*const Chunk>,
    last_units: Cell<u64>,
    unit_shift: Cell<u32>,
    /// The thread's registration, from `Arc::into_raw`; released by [`ExitHook`].
    shared: Cell<*const ThreadShared>,
    /// Set while `refill` runs, so an event recorded from inside it (a hook in the allocator, for
    /// instance) is dropped instead of re-entering it.
    busy: Cell<bool>,
    /// The runtime this thread belongs to (0 = none), its role and the runtime's name (string
    /// id): repeated at the start of every chunk, so every snapshot knows which runtime a thread
    /// served, however long ago the thread started.
    runtime: Cell<(u64, u64, u64)>,
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            generation: Cell::new(0),
            base: Cell::new(std::ptr::null_mut()),
            pos: Cell::new(0),
            limit: Cell::new(0),
            chunk: Cell::new(std::ptr::null()),
            last_units: Cell::new(0),
            unit_shift: Cell::new(0),
            shared: Cell::new(std::ptr::null()),
            busy: Cell::new(false),
            runtime: Cell::new((0, 0, 0)),
        }
    };
    static EXIT_HOOK: ExitHook = const { ExitHook };
}

/// Runs when the thread exits, if it ever recorded (registration touches it, which makes the
/// runtime register its destructor).
struct ExitHook;

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

/// Records one event on the calling thread. `state` is the value of [`STATE`] the caller loaded
/// and found enabled.
#[inline(always)]
pub(crate) fn record(state: u64, kind: EventKind, args: &[u64], payload: &[u8]) {
    let ticks = clock::now();
    local().record(state, ticks, kind, args, payload);
}

/// The calling thread's writing position. Taking the address in a tiny closure lets the compiler
/// inline all of `Local::record` at the call site, where the kind and the argument count are
/// constants.
#[inline(always)]
fn local() -> &'static Local {
    let local: *const Local = LOCAL.with(|local| local as *const Local);
    // SAFETY: `LOCAL` is const-initialized and has no destructor, so it lives as long as the
    // thread. The reference is `'static` only in name: it never leaves this module, whose callers
    // use it on this thread within one call.
    unsafe { &*local }
}

/// Tags the calling thread as serving `runtime` (named by the string id `name`) in `role`, and
/// records it when it changes. Cheap when the tag is already set.
#[cfg(feature = "tokio")]
#[inline]
pub(crate) fn set_runtime(runtime: u64, role: u64, name: u64) {
    let changed =
        LOCAL.with(|local| local.runtime.replace((runtime, role, name)) != (runtime, role, name));
    let state = STATE.load(Ordering::Relaxed);
    if changed && state & ENABLED != 0 {
        record(state, EventKind::RuntimeThread, &[runtime, role], &[]);
        record(state, EventKind::RuntimeName, &[runtime, name], &[]);
    }
}

/// The runtime tag of the calling thread: (runtime, role, name id).
#[cfg(feature = "tokio")]
#[inline]
pub(crate) fn runtime() -> (u64, u64, u64) {
    LOCAL.with(|local| local.runtime.get())
}

/// Records the start of a task's poll and, while a watchdog reads them, marks the thread as
/// polling it.
#[inline(always)]
pub(crate) fn record_poll_start(state: u64, task: u64) {
    let local = local();
    local.record(state, clock::now(), EventKind::PollStart, &[task], &[]);
    if state & WATCH_POLLS != 0 {
        local.mark_poll(task);
    }
}

/// Records the start of a task's poll with the time it waited since it was scheduled, and marks
/// the thread as polling it.
#[inline(always)]
pub(crate) fn record_poll_start_scheduled(state: u64, task: u64, waited_ns: u64) {
    let local = local();
    local.record(
        state,
        clock::now(),
        EventKind::PollStartScheduled,
        &[task, waited_ns],
        &[],
    );
    if state & WATCH_POLLS != 0 {
        local.mark_poll(task);
    }
}

/// Records the end of a task's poll (`result`: 1 ready, 0 pending, 2 not reported) and clears
/// the thread's poll mark.
#[inline(always)]
pub(crate) fn record_poll_end(state: u64, task: u64, result: u64) {
    let local = local();
    if state & WATCH_POLLS != 0 {
        local.mark_poll(0);
    }
    local.record(
        state,
        clock::now(),
        EventKind::PollEnd,
        &[task, result],
        &[],
    );
}

impl Local {
    #[inline(always)]
    fn record(&self, state: u64, ticks: u64, kind: EventKind, args: &[u64], payload: &[u8]) {
        let need = max_len(kind, args.len(), payload);
        let fits = self.generation.get() == state && self.pos.get() + need <= self.limit.get();
        if !fits && !self.refill(ticks) {
            return;
        }
        let units = ticks >> self.unit_shift.get();
        let last = self.last_units.get();
        // The counter can read slightly behind after a migration between cores: clamp, so times
        // within a chunk never go backwards.
        let units = units.max(last);
        self.last_units.set(units);
        let pos = self.pos.get();
        // SAFETY: `base` points to the open chunk's buffer, owned by this thread's slot and only
        // replaced by this thread; `pos + need <= limit <= capacity` (checked above or ensured by
        // `refill`), and bytes at or past `pos` are past the chunk's committed length, so no
        // reader reads them and no other thread writes them.
        let out = unsafe { std::slice::from_raw_parts_mut(self.base.get().add(pos), need) };
        let pos = pos + encode_event(kind, units - last, args, payload, out);
        self.pos.set(pos);
        // SAFETY: `chunk` is the open chunk, alive as long as `base` (above).
        unsafe { &*self.chunk.get() }.publish(pos);
    }

    /// Sets (`task` != 0) or clears the poll mark of the open chunk, stamped with the time of the
    /// event just recorded.
    #[inline(always)]
    fn mark_poll(&self, task: u64) {
        let chunk = self.chunk.get();
        if !chunk.is_null() {
            // SAFETY: a non-null `chunk` is the open chunk, owned by this thread's slot.
            unsafe { &*chunk }.set_poll_mark(task, self.last_units.get());
        }
    }

    /// Seals the open chunk and takes a fresh one for the current state. Returns false when the
    /// event must be dropped (recording stopped, re-entered, or no memory).
    #[cold]
    #[inline(never)]
    fn refill(&self, ticks: u64) -> bool {
        if self.busy.replace(true) {
            return false;
        }
        let ok = self.refill_inner(ticks);
        self.busy.set(false);
        ok
    }

    fn refill_inner(&self, ticks: u64) -> bool {
        let engine = engine();
        let first = self.shared.get().is_null();
        if first {
            // Without a destructor slot (the thread is already exiting) the thread cannot be
            // cleaned up, so it does not record.
            if EXIT_HOOK.try_with(|_| ()).is_err() {
                return false;
            }
            self.shared.set(Arc::into_raw(engine.register_thread()));
        }
        // SAFETY: set from `Arc::into_raw` above or earlier; released only by `ExitHook`, after
        // which `shared` is null again and no event is recorded (the hook runs last).
        let shared = unsafe { &*self.shared.get() };
        let calibration = clock::calibration();
        let units = ticks >> calibration.unit_shift;
        let state = STATE.load(Ordering::Relaxed);
        let fresh = if state & ENABLED != 0 {
            engine.new_chunk(shared.id, state, units)
        } else {
            None
        };
        let last_units = self.last_units.get();
        let mut carried_mark = None;
        shared.open.replace(fresh.clone(), |old| {
            old.set_last_units(last_units);
            // A poll that spans a full chunk keeps its mark; one that spans a recorder change
            // loses it (its end may go unrecorded).
            if old.generation == state {
                carried_mark = old.poll_mark();
            }
            engine.seal(old, units);
        });
        let Some(chunk) = fresh else {
            self.generation.set(0);
            self.base.set(std::ptr::null_mut());
            self.pos.set(0);
            self.limit.set(0);
            self.chunk.set(std::ptr::null());
            return false;
        };
        // SAFETY: this thread owns the chunk now (it is in this thread's slot).
        self.base.set(unsafe { chunk.write_ptr() });
        if let Some((task, started)) = carried_mark {
            chunk.set_poll_mark(task, started);
        }
        self.chunk.set(Arc::as_ptr(&chunk));
        self.pos.set(0);
        self.limit.set(chunk.capacity() - EXIT_RESERVE);
        self.last_units.set(units);
        self.unit_shift.set(calibration.unit_shift);
        self.generation.set(state);
        if first {
            self.write_unchecked(EventKind::ThreadStart, units);
        }
        let (runtime, role, name) = self.runtime.get();
        if runtime != 0 {
            // A fresh chunk has room for these: no refill can follow.
            self.record(
                state,
                ticks,
                EventKind::RuntimeThread,
                &[runtime, role],
                &[],
            );
            self.record(state, ticks, EventKind::RuntimeName, &[runtime, name], &[]);
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
        let mut event = [0u8; 1 + varint::MAX_LEN];
        let n = encode_event(kind, units - last, &[], &[], &mut event);
        // SAFETY: this thread owns the open chunk; `pos + n <= limit + EXIT_RESERVE <= capacity`
        // because every event leaves `EXIT_RESERVE` bytes free and `n <= 11 < EXIT_RESERVE`.
        unsafe {
            std::ptr::copy_nonoverlapping(event.as_ptr(), self.base.get().add(pos), n);
            (*self.chunk.get()).publish(pos + n);
        }
        self.pos.set(pos + n);
        self.last_units.set(units);
    }
}

impl Local {
    /// The thread is exiting: record it, seal the open chunk (so the window keeps its events) and
    /// let go of the thread's registration.
    fn exit(&self) {
        let shared = self.shared.replace(std::ptr::null());
        if shared.is_null() {
            return;
        }
        // SAFETY: `shared` came from `Arc::into_raw` and is released exactly once, here (the
        // field is null from now on).
        let shared = unsafe { Arc::from_raw(shared) };
        let engine = engine();
        let units = clock::now() >> self.unit_shift.get();
        if STATE.load(Ordering::Relaxed) & ENABLED != 0 && !self.busy.get() {
            self.write_unchecked(EventKind::ThreadExit, units);
        }
        let last_units = self.last_units.get();
        // No more events: the next one would find generation 0 and a null registration, and
        // `refill` refuses to register a thread whose exit hook is gone.
        self.generation.set(0);
        self.base.set(std::ptr::null_mut());
        self.limit.set(0);
        self.busy.set(true);
        shared.open.replace(None, |old| {
            old.set_last_units(last_units);
            engine.seal(old, units);
        });
        engine.unregister_thread(shared.id);
    }
}

impl Drop for ExitHook {
    fn drop(&mut self) {
        let _ = LOCAL.try_with(Local::exit);
    }
}
