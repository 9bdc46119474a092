//! Chunks: the buffers threads append encoded events to, and the pool that recycles them.
//!
//! A chunk has one writer, the thread it belongs to, and any number of readers (a snapshot, a
//! full trace's writer). The writer appends bytes past `committed` and then publishes the new
//! length with a release store; a reader loads `committed` with acquire and reads only below it.
//! Bytes below `committed` are never written again while the chunk is shared: a buffer is reused
//! only once its `Arc` is unique. That is the whole protocol, and it is checked with loom
//! (`loom_tests` in this crate).

use std::sync::atomic::{
    AtomicU64 as StatU64, AtomicUsize as StatCounter, Ordering as StatOrdering,
};

use crate::record::state::State;
use crate::record::sync::{lock, Arc, AtomicU64, AtomicUsize, Mutex, Ordering};

/// The size of a thread's event buffer, as in Go's tracer.
pub(crate) const CHUNK_SIZE: usize = 64 << 10;

/// Bytes kept free at the end of every chunk for the thread's exit event, written when the thread
/// ends and can no longer take a new chunk.
pub(crate) const EXIT_RESERVE: usize = 16;

/// Bytes of chunk buffers allocated in the process (a statistic, not part of the protocol).
static ALLOCATED_BYTES: StatCounter = StatCounter::new(0);

/// Bytes currently allocated for chunk buffers.
pub(crate) fn allocated_bytes() -> usize {
    ALLOCATED_BYTES.load(StatOrdering::Relaxed)
}

/// Bytes before a chunk's events: its [`ChunkHeader`].
pub(crate) const HEADER_SIZE: usize = 128;

/// Where a buffer's memory comes from: the heap, or a slot of the process's ring (a shared
/// mapping that survives the process, `crate::record::ring`).
#[cfg(not(flight_recorder_loom))]
pub(crate) const HEAP: u32 = u32::MAX;

/// The head of a chunk's memory, before its events: the publish counter the owner stores on every
/// event, the poll mark beside it (on the same cache line), and what recovery needs to place the
/// chunk. In a ring this lies in the shared mapping, so the counter a snapshot trusts is the one
/// recovery trusts; `crate::record::ring` reads it at the offsets of this `repr(C)` layout.
///
/// `seq` is written last (release) when a chunk takes the buffer and cleared first when the
/// buffer is freed: a ring slot whose `seq` is 0 holds no chunk.
#[repr(C, align(128))]
pub(crate) struct ChunkHeader {
    committed: AtomicUsize,
    /// The task the owner is polling (0 = none) and since when, in clock units: read by
    /// watchdogs looking for a poll that blocks its worker. Beside `committed`, so marking a poll
    /// touches a cache line the event already made exclusive.
    polling_task: StatU64,
    poll_started_units: StatU64,
    pub(crate) seq: StatU64,
    pub(crate) thread: StatU64,
    pub(crate) state: StatU64,
    pub(crate) base_units: StatU64,
    pub(crate) capacity: StatU64,
}

#[cfg(not(flight_recorder_loom))]
const _: () = assert!(std::mem::size_of::<ChunkHeader>() == HEADER_SIZE);

impl ChunkHeader {
    #[cfg(flight_recorder_loom)]
    fn new() -> ChunkHeader {
        ChunkHeader {
            committed: AtomicUsize::new(0),
            polling_task: StatU64::new(0),
            poll_started_units: StatU64::new(0),
            seq: StatU64::new(0),
            thread: StatU64::new(0),
            state: StatU64::new(0),
            base_units: StatU64::new(0),
            capacity: StatU64::new(0),
        }
    }

    /// Publishes the first `len` bytes to readers: the release store of the hot path. Only the
    /// owner calls it, with a growing `len`.
    #[inline(always)]
    pub(crate) fn publish(&self, len: usize) {
        self.committed.store(len, Ordering::Release);
    }

    /// Marks the owner as polling `task` since `started_units` (`task` 0: not polling).
    #[inline(always)]
    pub(crate) fn set_poll_mark(&self, task: u64, started_units: u64) {
        if task != 0 {
            self.poll_started_units
                .store(started_units, StatOrdering::Relaxed);
        }
        self.polling_task.store(task, StatOrdering::Release);
    }
}

/// A chunk's memory: a [`ChunkHeader`] followed by `capacity` bytes of events, from the heap or
/// from a ring slot.
#[cfg(not(flight_recorder_loom))]
pub(crate) struct Buffer {
    header: std::ptr::NonNull<ChunkHeader>,
    capacity: usize,
    /// The ring slot, or [`HEAP`].
    slot: u32,
}

#[cfg(not(flight_recorder_loom))]
impl Buffer {
    fn heap_layout(capacity: usize) -> Option<std::alloc::Layout> {
        std::alloc::Layout::from_size_align(capacity.checked_add(HEADER_SIZE)?, HEADER_SIZE).ok()
    }

    /// A zeroed heap buffer, or `None` if the allocator has no memory (the recorder then drops
    /// events rather than abort the program).
    pub(crate) fn zeroed(capacity: usize) -> Option<Buffer> {
        if capacity == 0 {
            return None;
        }
        let layout = Self::heap_layout(capacity)?;
        // SAFETY: the layout has a non-zero size.
        let ptr = std::ptr::NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })?;
        ALLOCATED_BYTES.fetch_add(capacity, StatOrdering::Relaxed);
        Some(Buffer {
            header: ptr.cast(),
            capacity,
            slot: HEAP,
        })
    }

    /// A buffer in ring slot `slot`, whose header is at `header`.
    ///
    /// # Safety
    ///
    /// `header` must be aligned to 128 bytes and point to `HEADER_SIZE + capacity` bytes that
    /// stay mapped for the process's life and that nothing else uses until the buffer is dropped
    /// (which gives the slot back to the ring).
    pub(crate) unsafe fn in_ring(
        header: std::ptr::NonNull<ChunkHeader>,
        capacity: usize,
        slot: u32,
    ) -> Buffer {
        Buffer {
            header,
            capacity,
            slot,
        }
    }

    /// Whether the buffer lies in the ring.
    pub(crate) fn is_ring(&self) -> bool {
        self.slot != HEAP
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn header(&self) -> &ChunkHeader {
        // SAFETY: the header stays valid as long as the buffer (heap memory it owns, or a ring
        // slot that stays mapped and is its own until it is dropped).
        unsafe { self.header.as_ref() }
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: the events follow the header within the same allocation or slot.
        unsafe { self.header.as_ptr().cast::<u8>().add(HEADER_SIZE) }
    }
}

#[cfg(not(flight_recorder_loom))]
impl Drop for Buffer {
    fn drop(&mut self) {
        if self.is_ring() {
            crate::record::ring::release(self.slot);
            return;
        }
        ALLOCATED_BYTES.fetch_sub(self.capacity, StatOrdering::Relaxed);
        let layout = Self::heap_layout(self.capacity).expect("layout was valid");
        // SAFETY: `header` was allocated by `alloc_zeroed` with this layout and is freed once.
        unsafe { std::alloc::dealloc(self.header.as_ptr().cast(), layout) }
    }
}

// SAFETY: a Buffer is plain memory owned by one Chunk; which thread may touch which bytes is
// governed by the chunk protocol above, not by the buffer.
#[cfg(not(flight_recorder_loom))]
unsafe impl Send for Buffer {}
// SAFETY: as above.
#[cfg(not(flight_recorder_loom))]
unsafe impl Sync for Buffer {}

/// A chunk's memory in the loom model: one tracked cell per byte, so loom reports any read that
/// races with a write, and the header with loom's publish counter.
#[cfg(flight_recorder_loom)]
pub(crate) struct Buffer {
    header: Box<ChunkHeader>,
    cells: Box<[loom::cell::UnsafeCell<u8>]>,
}

#[cfg(flight_recorder_loom)]
impl Buffer {
    pub(crate) fn zeroed(capacity: usize) -> Option<Buffer> {
        let cells = (0..capacity)
            .map(|_| loom::cell::UnsafeCell::new(0))
            .collect();
        Some(Buffer {
            header: Box::new(ChunkHeader::new()),
            cells,
        })
    }

    fn is_ring(&self) -> bool {
        false
    }

    fn capacity(&self) -> usize {
        self.cells.len()
    }

    fn header(&self) -> &ChunkHeader {
        &self.header
    }
}

/// One thread's buffer of encoded events, with what the readers need to place it in time.
///
/// The publish counter and the poll mark live in the buffer's [`ChunkHeader`] (aligned to 128
/// bytes, two cache lines, the unit adjacent-line prefetchers fetch, so that the counter one
/// thread stores on every event never shares a line with another thread's).
pub(crate) struct Chunk {
    buffer: Buffer,
    last_units: AtomicU64,
    /// Unique for the process's life; identifies the chunk when it is seen twice in one cut.
    pub seq: u64,
    /// The recorder's id of the thread that writes it.
    pub thread: u64,
    /// The recorder state the chunk was taken in.
    pub state: State,
    /// The time the first event's delta is counted from.
    pub base_units: u64,
}

impl Chunk {
    pub(crate) fn new(
        buffer: Buffer,
        seq: u64,
        thread: u64,
        state: State,
        base_units: u64,
    ) -> Chunk {
        let header = buffer.header();
        // The chunk's bookkeeping, `seq` last: a ring slot holds a chunk once its `seq` is set.
        header.committed.store(0, Ordering::Relaxed);
        header.polling_task.store(0, StatOrdering::Relaxed);
        header.thread.store(thread, StatOrdering::Relaxed);
        header.state.store(state.word(), StatOrdering::Relaxed);
        header.base_units.store(base_units, StatOrdering::Relaxed);
        header
            .capacity
            .store(buffer.capacity() as u64, StatOrdering::Relaxed);
        header.seq.store(seq, StatOrdering::Release);
        Chunk {
            buffer,
            last_units: AtomicU64::new(base_units),
            seq,
            thread,
            state,
            base_units,
        }
    }

    /// The buffer's size.
    pub(crate) fn capacity(&self) -> usize {
        self.buffer.capacity()
    }

    /// The number of bytes published so far; every byte below it may be read.
    pub(crate) fn committed(&self) -> usize {
        self.buffer.header().committed.load(Ordering::Acquire)
    }

    /// Publishes the first `len` bytes to readers. Only the owner calls it, with a growing `len`.
    pub(crate) fn publish(&self, len: usize) {
        debug_assert!(len <= self.capacity());
        self.buffer.header().publish(len);
    }

    /// Marks the chunk as out of the window, for recovery (its slot may stay taken a while, by a
    /// snapshot that still reads it): a recovery leaves it out, so that a thread's recovered
    /// chunks stay a gap-free suffix. Readers in the process use [`Chunk::state`], not this copy.
    pub(crate) fn mark_evicted(&self) {
        self.buffer.header().state.store(0, StatOrdering::Relaxed);
    }

    /// The header holding the publish counter and the poll mark, for the owner's hot path.
    pub(crate) fn header(&self) -> *const ChunkHeader {
        self.buffer.header()
    }

    /// The start of the buffer, for the owner's hot path.
    ///
    /// # Safety
    ///
    /// Only the owning thread may write through the pointer, and only at or past the committed
    /// length and below the capacity.
    #[cfg(not(flight_recorder_loom))]
    pub(crate) unsafe fn write_ptr(&self) -> *mut u8 {
        self.buffer.data()
    }

    /// In the loom model the buffer is made of cells written through [`Chunk::write`]; this
    /// pointer only tells the writer that it has a chunk, and is never written through.
    ///
    /// # Safety
    ///
    /// None needed; `unsafe` for the same signature as the real one.
    #[cfg(flight_recorder_loom)]
    pub(crate) unsafe fn write_ptr(&self) -> *mut u8 {
        std::ptr::NonNull::dangling().as_ptr()
    }

    /// Copies `bytes` into the buffer at `at`.
    ///
    /// # Safety
    ///
    /// Only the owning thread may call it, with `at` at or past the committed length and
    /// `at + bytes.len()` within the capacity.
    pub(crate) unsafe fn write(&self, at: usize, bytes: &[u8]) {
        assert!(at + bytes.len() <= self.capacity());
        #[cfg(not(flight_recorder_loom))]
        // SAFETY: in bounds (checked above); the caller guarantees no reader reads these bytes
        // (they are past `committed`) and no other thread writes them (it is the owner).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.write_ptr().add(at), bytes.len());
        }
        #[cfg(flight_recorder_loom)]
        for (i, &b) in bytes.iter().enumerate() {
            // SAFETY: as above; loom checks it.
            self.buffer.cells[at + i].with_mut(|p| unsafe { *p = b });
        }
    }

    /// Calls `f` with the first `len` bytes, `len` being at most a value [`Chunk::committed`]
    /// returned.
    pub(crate) fn with_prefix<R>(&self, len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
        let len = len.min(self.committed());
        #[cfg(not(flight_recorder_loom))]
        {
            // SAFETY: bytes below `committed` were published with release and read after an
            // acquire load of `committed` (in `committed()` above), and are never written again
            // while this chunk is shared (a buffer is recycled only when its Arc is unique).
            let bytes = unsafe { std::slice::from_raw_parts(self.buffer.data(), len) };
            f(bytes)
        }
        #[cfg(flight_recorder_loom)]
        {
            // SAFETY: as above; loom checks it.
            let bytes: Vec<u8> = self.buffer.cells[..len]
                .iter()
                .map(|c| c.with(|p| unsafe { *p }))
                .collect();
            f(&bytes)
        }
    }

    /// Marks the owner as polling `task` since `started_units` (`task` 0: not polling).
    pub(crate) fn set_poll_mark(&self, task: u64, started_units: u64) {
        self.buffer.header().set_poll_mark(task, started_units);
    }

    /// The owner's poll in progress: (task, started units), if any.
    pub(crate) fn poll_mark(&self) -> Option<(u64, u64)> {
        let header = self.buffer.header();
        let task = header.polling_task.load(StatOrdering::Acquire);
        let started = header.poll_started_units.load(StatOrdering::Relaxed);
        // Re-read the task: if it changed, the start time may belong to another poll.
        (task != 0 && header.polling_task.load(StatOrdering::Acquire) == task)
            .then_some((task, started))
    }

    /// The time of the last event, set when the chunk is sealed.
    pub(crate) fn last_units(&self) -> u64 {
        self.last_units.load(Ordering::Relaxed)
    }

    /// Records the time of the last event; the owner calls it when sealing.
    pub(crate) fn set_last_units(&self, units: u64) {
        self.last_units.store(units, Ordering::Relaxed);
    }

    /// A copy that holds just the published bytes, so a chunk left mostly empty (by a thread that
    /// exits or by a recorder restart) does not pin a whole buffer in the window.
    /// A chunk in the ring is never compacted: its slot is what recovery finds after a crash.
    pub(crate) fn compacted(&self) -> Option<Chunk> {
        if self.buffer.is_ring() {
            return None;
        }
        let len = self.committed();
        let buffer = Buffer::zeroed(len)?;
        let copy = Chunk::new(buffer, self.seq, self.thread, self.state, self.base_units);
        self.with_prefix(len, |bytes| {
            // SAFETY: `copy` is not shared yet; the range is within its capacity.
            unsafe { copy.write(0, bytes) }
        });
        copy.publish(len);
        copy.set_last_units(self.last_units());
        Some(copy)
    }
}

/// A chunk and the length of it that a reader may use.
pub(crate) struct ChunkView {
    pub chunk: Arc<Chunk>,
    pub len: usize,
}

/// Free chunk buffers, so a recording thread rarely calls the allocator.
pub(crate) struct ChunkPool {
    free: Mutex<Vec<Buffer>>,
    max_free: usize,
    capacity: usize,
}

impl ChunkPool {
    /// A pool of buffers of `capacity` bytes keeping at most `max_free` of them.
    pub(crate) fn new(capacity: usize, max_free: usize) -> ChunkPool {
        ChunkPool {
            free: Mutex::new(Vec::new()),
            max_free,
            capacity,
        }
    }

    /// A free buffer, or a new one; `None` when memory is exhausted.
    pub(crate) fn take(&self) -> Option<Buffer> {
        #[cfg(not(flight_recorder_loom))]
        if let Some(buffer) = crate::record::ring::take(self.capacity) {
            return Some(buffer);
        }
        if let Some(buffer) = lock(&self.free).pop() {
            return Some(buffer);
        }
        Buffer::zeroed(self.capacity)
    }

    /// Gives a chunk back: its buffer is kept for reuse if no reader holds the chunk any more,
    /// the buffer has the pool's size and the pool is not full; otherwise it is freed (by the last
    /// holder).
    pub(crate) fn give(&self, chunk: Arc<Chunk>) {
        let Ok(chunk) = Arc::try_unwrap(chunk) else {
            return;
        };
        if chunk.capacity() != self.capacity || chunk.buffer.is_ring() {
            // A ring buffer goes back to the ring's own free list when dropped.
            return;
        }
        let mut free = lock(&self.free);
        if free.len() < self.max_free {
            free.push(chunk.buffer);
        }
    }

    /// Buffers currently kept for reuse.
    pub(crate) fn free_count(&self) -> usize {
        lock(&self.free).len()
    }
}

/// The chunk a thread is writing to, in the thread's slot: the owner replaces it under the slot's
/// lock and hands the old one to the consumers *before* releasing that lock, which is what makes
/// a cut (`crate::engine::cut`) gap-free.
pub(crate) struct OpenChunk {
    slot: Mutex<Option<Arc<Chunk>>>,
}

impl OpenChunk {
    pub(crate) fn new() -> OpenChunk {
        OpenChunk {
            slot: Mutex::new(None),
        }
    }

    /// Installs `fresh` as the open chunk; the previous one, if any, is passed to `seal` while
    /// the slot is still locked (see `crate::engine::cut` for why).
    pub(crate) fn replace(&self, fresh: Option<Arc<Chunk>>, seal: impl FnOnce(Arc<Chunk>)) {
        let mut slot = lock(&self.slot);
        if let Some(old) = slot.take() {
            seal(old);
        }
        *slot = fresh;
    }

    /// The open chunk and its published length.
    pub(crate) fn view(&self) -> Option<ChunkView> {
        let slot = lock(&self.slot);
        slot.as_ref().map(|chunk| ChunkView {
            len: chunk.committed(),
            chunk: chunk.clone(),
        })
    }
}
