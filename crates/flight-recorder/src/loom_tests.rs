//! Model checking of the recording protocol with loom: every interleaving of a writer, a sealer
//! and a snapshot reader, with tiny chunks. Loom's cells report any read that races a write.
//!
//! Run with `RUSTFLAGS="--cfg flight_recorder_loom" cargo test -p flight-recorder --lib --release loom`
//! (add `-- --nocapture` to see how many interleavings each model explored).
//!
//! docs/RELIABILITY.md lists the models, their sizes, and the deliberate breakages of the
//! protocol that each one catches.

use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::engine::cut::{cut, OpenChunk};
use crate::engine::snapshot_guard::SnapshotSlot;
use crate::engine::window::Window;
use crate::record::chunk::{Buffer, Chunk, ChunkPool};
use crate::record::sync::lock;

/// Runs `f` under loom and prints how many interleavings it explored.
fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    loom::model(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    eprintln!(
        "loom model {name}: {} interleavings",
        runs.load(std::sync::atomic::Ordering::Relaxed)
    );
}

const CAPACITY: usize = 2;

fn chunk(seq: u64) -> Arc<Chunk> {
    Arc::new(Chunk::new(Buffer::zeroed(CAPACITY).unwrap(), seq, 1, 1, 0))
}

/// Appends one byte the way the hot path does: write past `committed`, then publish.
fn append(chunk: &Chunk, pos: usize, byte: u8) {
    // SAFETY: the test's writer thread owns the chunk and writes past its committed length.
    unsafe { chunk.write(pos, &[byte]) };
    chunk.publish(pos + 1);
}

/// The bytes a cut holds, chunks in sequence order.
fn cut_bytes(views: &[crate::record::chunk::ChunkView]) -> Vec<u8> {
    let mut ordered: Vec<_> = views.iter().collect();
    ordered.sort_by_key(|v| v.chunk.seq);
    let mut bytes = Vec::new();
    for view in ordered {
        view.chunk
            .with_prefix(view.len, |b| bytes.extend_from_slice(b));
    }
    bytes
}

#[test]
fn loom_reader_sees_only_published_bytes() {
    model("reader_sees_only_published_bytes", || {
        let c = chunk(1);
        let writer = {
            let c = c.clone();
            thread::spawn(move || {
                append(&c, 0, 7);
                append(&c, 1, 8);
            })
        };
        let len = c.committed();
        c.with_prefix(len, |bytes| assert_eq!(bytes, &[7, 8][..len]));
        writer.join().unwrap();
    });
}

/// A writer fills chunks of two bytes with 1, 2, 3, …, sealing each full chunk into the window
/// under its slot's lock; a snapshot takes a cut meanwhile. The cut must hold 1..=k for some k
/// (nothing missed, nothing twice, nothing torn), and at least what was published before it.
#[test]
fn loom_cut_is_gap_free_and_duplicate_free() {
    model("cut_is_gap_free_and_duplicate_free", || {
        let slot = Arc::new(OpenChunk::new());
        let window: Arc<Mutex<Vec<Arc<Chunk>>>> = Arc::new(Mutex::new(Vec::new()));
        let first = chunk(1);
        slot.replace(Some(first.clone()), |_| {});
        let writer = {
            let slot = slot.clone();
            let window = window.clone();
            thread::spawn(move || {
                append(&first, 0, 1);
                append(&first, 1, 2);
                let second = chunk(2);
                slot.replace(Some(second.clone()), |old| lock(&window).push(old));
                append(&second, 0, 3);
            })
        };
        let views = cut([&*slot], || lock(&window).clone());
        let bytes = cut_bytes(&views);
        let expected: Vec<u8> = (1..=bytes.len() as u8).collect();
        assert_eq!(bytes, expected);
        writer.join().unwrap();
        // After the writer is done, a cut sees everything.
        let views = cut([&*slot], || lock(&window).clone());
        assert_eq!(cut_bytes(&views), vec![1, 2, 3]);
    });
}

/// A window evicts a chunk that a snapshot is still reading; the evicted buffer goes back to the
/// pool only once the snapshot lets go, so a new writer never scribbles over bytes being read.
#[test]
fn loom_evicted_chunk_is_not_reused_while_read() {
    model("evicted_chunk_is_not_reused_while_read", || {
        let pool = Arc::new(ChunkPool::new(CAPACITY, 4));
        let window = Arc::new(Mutex::new(Window::new(CAPACITY, u64::MAX, 0, 1)));
        let old = Arc::new(Chunk::new(pool.take().unwrap(), 1, 1, 1, 0));
        append(&old, 0, 5);
        append(&old, 1, 6);
        let mut evicted = Vec::new();
        lock(&window).push(old, 0, &mut evicted);
        assert!(evicted.is_empty());

        let evictor = {
            let pool = pool.clone();
            let window = window.clone();
            thread::spawn(move || {
                let mut evicted = Vec::new();
                let newer = Arc::new(Chunk::new(Buffer::zeroed(CAPACITY).unwrap(), 2, 1, 1, 0));
                lock(&window).push(newer, 0, &mut evicted);
                for chunk in evicted {
                    pool.give(chunk);
                }
                // A writer takes a buffer, possibly the evicted one, and writes into it.
                let reused = Chunk::new(pool.take().unwrap(), 3, 1, 1, 0);
                append(&reused, 0, 9);
            })
        };
        let held = lock(&window).chunks();
        for chunk in &held {
            chunk.with_prefix(chunk.committed(), |bytes| {
                assert!(bytes == [5u8, 6] || bytes.is_empty());
            });
        }
        drop(held);
        evictor.join().unwrap();
    });
}

/// A thread exits while a snapshot cuts: it records its last event, seals its open chunk into
/// the window (under its slot's lock) and only then leaves the list of live threads, as
/// `Local::exit` and `Engine::unregister_thread` do. Every event the thread published before the
/// cut began is in the cut, once: the chunk is found either in the thread's slot or in the
/// window, never in neither.
#[test]
fn loom_thread_exit_during_cut() {
    model("thread_exit_during_cut", || {
        let slot = Arc::new(OpenChunk::new());
        let threads: Arc<Mutex<Vec<Arc<OpenChunk>>>> = Arc::new(Mutex::new(vec![slot.clone()]));
        let window = Arc::new(Mutex::new(Window::new(64, u64::MAX, 1, 1)));
        let published = Arc::new(AtomicUsize::new(0));
        let open = chunk(1);
        slot.replace(Some(open.clone()), |_| {});
        let exiting = {
            let threads = threads.clone();
            let window = window.clone();
            let published = published.clone();
            thread::spawn(move || {
                append(&open, 0, 1);
                published.store(1, Ordering::SeqCst);
                // The exit event, in the chunk's reserve.
                append(&open, 1, 2);
                published.store(2, Ordering::SeqCst);
                drop(open);
                slot.replace(None, |old| lock(&window).push(old, 0, &mut Vec::new()));
                lock(&threads).retain(|t| !Arc::ptr_eq(t, &slot));
            })
        };
        // The snapshot: what was published before it began must be in its cut.
        let before = published.load(Ordering::SeqCst);
        let live = lock(&threads).clone();
        let views = cut(live.iter().map(|t| &**t), || lock(&window).chunks());
        let bytes = cut_bytes(&views);
        let expected: Vec<u8> = (1..=bytes.len() as u8).collect();
        assert_eq!(bytes, expected, "a gap or a duplicate");
        assert!(
            bytes.len() >= before,
            "lost {} published bytes",
            before - bytes.len()
        );
        exiting.join().unwrap();
        // Once the thread is gone, its events are in the window.
        assert_eq!(cut_bytes(&cut([], || lock(&window).chunks())), vec![1, 2]);
    });
}

/// Two snapshots start at once: exactly one holds the slot at a time, the other is refused at
/// once, and what one snapshot did happens before the next one starts (the cell below reports
/// any access by two holders that is not ordered).
#[test]
fn loom_one_snapshot_at_a_time() {
    model("one_snapshot_at_a_time", || {
        let slot = Arc::new(SnapshotSlot::new());
        let written = Arc::new(loom::cell::UnsafeCell::new(0u32));
        let holders = Arc::new(AtomicUsize::new(0));
        let snapshot = |slot: Arc<SnapshotSlot>,
                        written: Arc<loom::cell::UnsafeCell<u32>>,
                        holders: Arc<AtomicUsize>| {
            move || {
                let Some(_guard) = slot.try_acquire() else {
                    return false;
                };
                assert_eq!(holders.fetch_add(1, Ordering::Relaxed), 0, "two holders");
                // SAFETY: the slot gives this thread the only access (loom checks it).
                written.with_mut(|w| unsafe { *w += 1 });
                holders.fetch_sub(1, Ordering::Relaxed);
                true
            }
        };
        let other = thread::spawn(snapshot(slot.clone(), written.clone(), holders.clone()));
        let mine = snapshot(slot.clone(), written.clone(), holders.clone())();
        let theirs = other.join().unwrap();
        assert!(mine || theirs, "both snapshots refused");
        // SAFETY: both threads are done.
        let count = written.with(|w| unsafe { *w });
        assert_eq!(count, u32::from(mine) + u32::from(theirs));
        // The slot is free again.
        assert!(slot.try_acquire().is_some());
    });
}

/// A recorder restarts (stop, then start: a new window and a new generation) while a thread
/// still writes to a chunk of the old generation; the thread seals that chunk after the change,
/// takes a fresh chunk of whatever generation it sees and writes one more event. The new window
/// never keeps a chunk from before its start, and a snapshot of it (which drops open chunks of
/// older generations, as `FlightRecorder::snapshot` does) holds no event from before the
/// restart: byte 1 is before it, byte 2 after.
#[test]
fn loom_restart_drops_old_generation() {
    model("restart_drops_old_generation", || {
        const OLD: u64 = 3;
        const NEW: u64 = 5;
        let state = Arc::new(AtomicU64::new(OLD));
        let consumers = Arc::new(Mutex::new(Some(Window::new(64, u64::MAX, OLD, 1))));
        let slot = Arc::new(OpenChunk::new());
        let old = Arc::new(Chunk::new(Buffer::zeroed(CAPACITY).unwrap(), 1, 1, OLD, 0));
        slot.replace(Some(old.clone()), |_| {});
        append(&old, 0, 1);
        let writer = {
            let state = state.clone();
            let consumers = consumers.clone();
            let slot = slot.clone();
            thread::spawn(move || {
                // `refill`: the generation changed (or not yet); seal and take a fresh chunk.
                let generation = state.load(Ordering::Relaxed);
                let fresh = Arc::new(Chunk::new(
                    Buffer::zeroed(CAPACITY).unwrap(),
                    2,
                    1,
                    generation,
                    0,
                ));
                slot.replace(Some(fresh.clone()), |sealed| {
                    if let Some(window) = lock(&consumers).as_mut() {
                        window.push(sealed, 0, &mut Vec::new());
                    }
                });
                // An event is recorded only when the chunk belongs to the current state.
                if state.load(Ordering::Relaxed) == generation {
                    append(&fresh, 0, 2);
                }
            })
        };
        // `stop` then `start`: each under the consumers' lock, the state published after.
        {
            let mut guard = lock(&consumers);
            *guard = None;
            state.store(OLD + 1, Ordering::SeqCst);
        }
        {
            let mut guard = lock(&consumers);
            *guard = Some(Window::new(64, u64::MAX, NEW, 2));
            state.store(NEW, Ordering::SeqCst);
        }
        // A snapshot of the new window, racing the writer.
        let snapshot = || {
            let mut views = cut([&*slot], || {
                lock(&consumers).as_ref().map_or(Vec::new(), |w| w.chunks())
            });
            views.retain(|v| v.chunk.generation >= NEW);
            cut_bytes(&views)
        };
        let during = snapshot();
        assert!(during.iter().all(|&b| b == 2), "old events in {during:?}");
        writer.join().unwrap();
        let after = snapshot();
        assert!(after.iter().all(|&b| b == 2), "old events in {after:?}");
        let window = lock(&consumers);
        let window = window.as_ref().unwrap();
        assert!(window.chunks().iter().all(|c| c.generation >= NEW));
    });
}
