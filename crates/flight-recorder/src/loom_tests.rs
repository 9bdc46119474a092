//! Model checking of the recording protocol with loom: every interleaving of a writer, a sealer
//! and a snapshot reader, with tiny chunks. Loom's cells report any read that races a write.
//!
//! Run with `RUSTFLAGS="--cfg flight_recorder_loom" cargo test -p flight-recorder --lib --release loom`.

use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::chunk::{Buffer, Chunk, ChunkPool};
use crate::cut::{cut, OpenChunk};
use crate::sync::lock;
use crate::window::Window;

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
fn cut_bytes(views: &[crate::chunk::ChunkView]) -> Vec<u8> {
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
    loom::model(|| {
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
    loom::model(|| {
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
    loom::model(|| {
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
