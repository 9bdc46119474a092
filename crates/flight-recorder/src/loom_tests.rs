//! Model checking of the recording protocol with loom: every interleaving of a writer, a sealer
//! and a snapshot reader, with tiny chunks. Loom's cells report any read that races a write.
//!
//! The writers are the shipped code: a [`Local`] recording through `Local::record`, taking and
//! sealing chunks in its `refill` and leaving through `Local::exit`, into an [`Engine`] made for
//! each run (the process's statics are only the entry points around this code). The clock is a
//! counter under loom.
//!
//! Run with `RUSTFLAGS="--cfg flight_recorder_loom" cargo test -p flight-recorder --lib --release loom`
//! (add `-- --nocapture` to see how many interleavings each model explored).
//!
//! docs/RELIABILITY.md lists the models, their sizes, and the deliberate breakages of the
//! protocol that each one catches.

use std::sync::atomic::AtomicBool;

use flight_recorder_format::reader::RawChunk;
use flight_recorder_format::EventKind;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use crate::engine::shared::{Engine, WindowBounds, WindowOwner};
use crate::engine::snapshot_guard::SnapshotSlot;
use crate::record::chunk::ChunkView;
use crate::record::clock;
use crate::record::local::{Local, Sink};
use crate::record::state::AtomicState;

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

/// The flight recorder owning the window in these models.
const OWNER: u64 = 1;

/// An engine of its own for one run, with chunks of `chunk_size` bytes (the last 16 are the exit
/// reserve) and, if `window_bytes` is not 0, a window of that size and no age limit.
fn engine(chunk_size: usize, window_bytes: usize) -> Arc<Engine> {
    // The state word lives as long as the engine's threads may read it; one small leak per run.
    let state: &'static AtomicState = Box::leak(Box::new(AtomicState::new()));
    let engine = Arc::new(Engine::new(chunk_size, state));
    if window_bytes > 0 {
        start_window(&engine, OWNER, window_bytes);
    }
    engine
}

fn start_window(engine: &Engine, owner: u64, max_bytes: usize) {
    let running: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let bounds = WindowBounds {
        max_bytes,
        min_age_units: u64::MAX,
    };
    engine
        .start_window(WindowOwner { id: owner, running }, bounds)
        .unwrap();
}

/// Records a user task's end (one argument, `n`) on the calling thread's writer, through the
/// hot path, if the engine records.
fn record(local: &Local, engine: &Engine, n: u64) {
    let state = engine.state();
    if state.enabled() {
        local.record(
            engine,
            state,
            clock::now(),
            EventKind::UserTaskEnd,
            &[n],
            &[],
        );
    }
}

/// A snapshot of `owner`'s window, decoded.
fn snapshot(engine: &Engine, owner: u64) -> Vec<(EventKind, Vec<u64>)> {
    let views = engine.take_window_cut(owner, 0).unwrap_or_default();
    let events = decode(&views);
    engine.recycle(views.into_iter().map(|v| v.chunk));
    events
}

/// The events a cut holds, chunks in sequence order; panics on a torn event.
fn decode(views: &[ChunkView]) -> Vec<(EventKind, Vec<u64>)> {
    let mut ordered: Vec<_> = views.iter().collect();
    ordered.sort_by_key(|v| v.chunk.seq);
    let mut events = Vec::new();
    for view in ordered {
        view.chunk.with_prefix(view.len, |bytes| {
            // Decoded as a reader does, compact encodings included.
            let mut chunk = RawChunk::new(view.chunk.thread, view.chunk.base_units, bytes.to_vec());
            let (mut pos, mut units) = (0, view.chunk.base_units);
            while pos < bytes.len() {
                let event = chunk.decode(&mut pos, &mut units).expect("a torn event");
                let kind = EventKind::from_byte(event.kind_byte).expect("a known kind");
                events.push((kind, event.args[..usize::from(event.arg_count)].to_vec()));
            }
        });
    }
    events
}

/// The arguments of the user-task-end events, in order.
fn numbers(events: &[(EventKind, Vec<u64>)]) -> Vec<u64> {
    events
        .iter()
        .filter(|(kind, _)| *kind == EventKind::UserTaskEnd)
        .map(|(_, args)| args[0])
        .collect()
}

/// A writer records two events into its first chunk while a snapshot cuts: the snapshot sees a
/// prefix of what the writer wrote, never a byte past what was published (loom's cells report a
/// read of a byte being written).
#[test]
fn loom_reader_sees_only_published_bytes() {
    model("reader_sees_only_published_bytes", || {
        let engine = engine(64, 1 << 10);
        let writer = {
            let engine = engine.clone();
            thread::spawn(move || {
                let local = Local::new();
                record(&local, &engine, 1);
                record(&local, &engine, 2);
                local.exit(&*engine);
            })
        };
        let events = snapshot(&engine, OWNER);
        let expected = [
            EventKind::ThreadStart,
            EventKind::UserTaskEnd,
            EventKind::UserTaskEnd,
            EventKind::ThreadExit,
        ];
        let kinds: Vec<EventKind> = events.iter().map(|(kind, _)| *kind).collect();
        assert_eq!(kinds, expected[..kinds.len()], "not a prefix");
        assert_eq!(numbers(&events), [1, 2][..numbers(&events).len()]);
        writer.join().unwrap();
    });
}

/// A writer records 1 and 2 into chunks that hold the thread's start and one event, so its
/// `refill` seals the first chunk into the window (under its slot's lock) while a snapshot takes
/// a cut. The cut must hold 1..=k for some k (nothing missed, nothing twice, nothing torn),
/// and at least what was published before it.
#[test]
fn loom_cut_is_gap_free_and_duplicate_free() {
    model("cut_is_gap_free_and_duplicate_free", || {
        let engine = engine(40, 1 << 10);
        let published = Arc::new(AtomicUsize::new(0));
        let writer = {
            let engine = engine.clone();
            let published = published.clone();
            thread::spawn(move || {
                let local = Local::new();
                for n in 1..=2 {
                    record(&local, &engine, n);
                    published.store(n as usize, Ordering::SeqCst);
                }
                local.exit(&*engine);
            })
        };
        let before = published.load(Ordering::SeqCst);
        let got = numbers(&snapshot(&engine, OWNER));
        let expected: Vec<u64> = (1..=got.len() as u64).collect();
        assert_eq!(got, expected, "a gap or a duplicate");
        assert!(got.len() >= before, "lost {} events", before - got.len());
        writer.join().unwrap();
        // After the writer is done, a cut sees everything.
        assert_eq!(numbers(&snapshot(&engine, OWNER)), [1, 2]);
    });
}

/// A window of one chunk evicts a chunk that a snapshot is still reading; the evicted buffer goes
/// back to the pool only once the snapshot lets go, so the writer's next chunk never scribbles
/// over bytes being read (loom's cells would report it).
#[test]
fn loom_evicted_chunk_is_not_reused_while_read() {
    model("evicted_chunk_is_not_reused_while_read", || {
        // Chunks of 64 bytes take the thread's start and one event of 32 bytes, or one event:
        // at least half full, so the window keeps them as they are, and a window of 64 bytes
        // keeps one.
        let engine = engine(64, 64);
        let writer = {
            let engine = engine.clone();
            thread::spawn(move || {
                let local = Local::new();
                for n in 1..=3 {
                    let state = engine.state();
                    let args = [u64::MAX - n, u64::MAX, u64::MAX];
                    local.record(
                        &*engine,
                        state,
                        clock::now(),
                        EventKind::UserTaskBegin,
                        &args,
                        &[],
                    );
                }
                local.exit(&*engine);
            })
        };
        let views = engine.take_window_cut(OWNER, 0).unwrap();
        for (kind, args) in decode(&views) {
            if kind == EventKind::UserTaskBegin {
                assert_eq!(args[1..], [u64::MAX, u64::MAX], "scribbled over");
            }
        }
        engine.recycle(views.into_iter().map(|v| v.chunk));
        writer.join().unwrap();
    });
}

/// A thread exits while a snapshot cuts: `Local::exit` records its last event, seals its open
/// chunk into the window (under its slot's lock) and only then unregisters. Every event the
/// thread published before the cut began is in the cut, once: the chunk is found either in the
/// thread's slot or in the window, never in neither.
#[test]
fn loom_thread_exit_during_cut() {
    model("thread_exit_during_cut", || {
        let engine = engine(64, 1 << 10);
        let published = Arc::new(AtomicUsize::new(0));
        let exiting = {
            let engine = engine.clone();
            let published = published.clone();
            thread::spawn(move || {
                let local = Local::new();
                record(&local, &engine, 1);
                published.store(1, Ordering::SeqCst);
                // The exit event, in the chunk's reserve.
                local.exit(&*engine);
                published.store(2, Ordering::SeqCst);
            })
        };
        // The snapshot: what was published before it began must be in its cut.
        let before = published.load(Ordering::SeqCst);
        let events = snapshot(&engine, OWNER);
        let kinds: Vec<EventKind> = events.iter().map(|(kind, _)| *kind).collect();
        let all = [
            EventKind::ThreadStart,
            EventKind::UserTaskEnd,
            EventKind::ThreadExit,
        ];
        assert_eq!(kinds, all[..kinds.len()], "a gap or a duplicate");
        let published_events = [0, 2, 3][before];
        assert!(
            kinds.len() >= published_events,
            "lost {} published events",
            published_events - kinds.len()
        );
        exiting.join().unwrap();
        // Once the thread is gone, its events are in the window.
        let kinds: Vec<EventKind> = snapshot(&engine, OWNER).iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, all);
    });
}

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

/// A recorder restarts (`stop_window`, then `start_window` for another recorder: a new window
/// and a new generation) while a thread still writes to a chunk of the old generation; its next
/// event seals that chunk (through `refill`) and takes a fresh one of whatever generation it
/// sees. The new window never keeps a chunk from before its start, and a snapshot of it (which
/// drops open chunks of older generations) holds no event from before the restart: event 1 is
/// before it, event 2 after.
#[test]
fn loom_restart_drops_old_generation() {
    model("restart_drops_old_generation", || {
        const NEW_OWNER: u64 = 2;
        let engine = engine(64, 1 << 10);
        let local = Local::new();
        record(&local, &engine, 1);
        let restart = {
            let engine = engine.clone();
            thread::spawn(move || {
                engine.stop_window(OWNER);
                start_window(&engine, NEW_OWNER, 1 << 10);
                // A snapshot of the new window, racing the writer.
                snapshot(&engine, NEW_OWNER)
            })
        };
        record(&local, &engine, 2);
        let during = restart.join().unwrap();
        assert!(!numbers(&during).contains(&1), "old events in {during:?}");
        let after = snapshot(&engine, NEW_OWNER);
        assert!(!numbers(&after).contains(&1), "old events in {after:?}");
        local.exit(&*engine);
        let after_exit = snapshot(&engine, NEW_OWNER);
        assert!(
            !numbers(&after_exit).contains(&1),
            "old events in {after_exit:?}"
        );
        let (start, kept) = engine.window_states().unwrap();
        assert!(
            kept.iter().all(|s| s.generation() >= start.generation()),
            "a chunk from before the start kept in the window"
        );
        engine.stop_window(NEW_OWNER);
    });
}

/// The instrumented spawn's waker slot (`tokio/waker_slot.rs`): wakes while the poller registers
/// a new waker. Every wake reaches exactly one waker, the old or the new, and the new one is woken
/// (by the register, for any wake that reached the old one), so no wake is lost. A wake that reads
/// the new waker sees it written (the node's waker is a loom cell). After the race the slot is
/// quiet again: the same waker registers with nothing to do, and a wake reaches it once; and the
/// slot releases every waker it kept.
mod waker_slot {
    use loom::sync::Arc;
    use loom::thread;

    use super::model;
    use crate::waker_slot::counting::{counting, Count};
    use crate::waker_slot::WakerSlot;

    /// Drops the slot (every thread that shared it is done) and checks that it released every
    /// waker it kept: each count is held by the test alone again.
    fn drop_and_check_released(slot: Arc<WakerSlot>, counts: &[&std::sync::Arc<Count>]) {
        drop(Arc::try_unwrap(slot).ok().expect("the threads are done"));
        for (i, count) in counts.iter().enumerate() {
            assert_eq!(std::sync::Arc::strong_count(count), 1, "waker {i} released");
        }
    }

    /// `wakers` threads wake while the poller registers a new waker.
    fn race(wakers: usize) {
        let (old, old_waker) = counting();
        let slot = Arc::new(WakerSlot::with_waker(old_waker));
        let threads: Vec<_> = (0..wakers)
            .map(|_| {
                let slot = slot.clone();
                thread::spawn(move || slot.wake())
            })
            .collect();
        let (new, new_waker) = counting();
        slot.register(&new_waker);
        for t in threads {
            t.join().unwrap();
        }
        assert!(
            new.wakes() > 0,
            "a wake may have reached the old waker, and the new one was not woken"
        );
        assert_eq!(
            old.wakes() + new.wakes(),
            wakers + 1,
            "each wake reaches one waker, and the register wakes the new one once"
        );
        // Quiet again: the same waker registers with nothing to do; a wake reaches it once.
        let before = new.wakes();
        slot.register(&new_waker);
        assert_eq!(new.wakes(), before);
        slot.wake();
        assert_eq!(new.wakes(), before + 1);
        // A third waker, then the slot dropped: every waker it kept is released.
        let (next, next_waker) = counting();
        slot.register(&next_waker);
        slot.wake();
        assert_eq!(next.wakes(), 2, "woken by its register and by the wake");
        drop((new_waker, next_waker));
        drop_and_check_released(slot, &[&old, &new, &next]);
    }

    /// A wake while the poller registers a new waker and then the first one again (which takes
    /// its place back with no new node): the wake reaches one of them, and the first, current at
    /// the end, is woken.
    fn comes_back() {
        let (old, old_waker) = counting();
        let slot = Arc::new(WakerSlot::with_waker(old_waker.clone()));
        let waking = {
            let slot = slot.clone();
            thread::spawn(move || slot.wake())
        };
        let (new, new_waker) = counting();
        slot.register(&new_waker);
        slot.register(&old_waker);
        waking.join().unwrap();
        assert!(
            old.wakes() > 0,
            "the waker current at the end was not woken"
        );
        assert_eq!(
            old.wakes() + new.wakes(),
            3,
            "the wake reaches one waker, and each register wakes its waker once"
        );
        let before = old.wakes();
        slot.wake();
        assert_eq!(old.wakes(), before + 1, "the first waker is current again");
        drop((old_waker, new_waker));
        drop_and_check_released(slot, &[&old, &new]);
    }

    #[test]
    fn loom_waker_slot_wake_meets_register() {
        model("waker_slot_wake_meets_register", || race(1));
    }

    #[test]
    fn loom_waker_slot_two_wakes_meet_register() {
        model("waker_slot_two_wakes_meet_register", || race(2));
    }

    #[test]
    fn loom_waker_slot_waker_comes_back() {
        model("waker_slot_waker_comes_back", comes_back);
    }
}
