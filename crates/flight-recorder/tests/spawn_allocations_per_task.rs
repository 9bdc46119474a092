//! The instrumented spawn allocates one block per task (its wake state, which is also the waker
//! handed to the task's future), beyond what `tokio::spawn` allocates. In a process of its own,
//! as it counts the process's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flight_recorder::{FlightRecorder, FlightRecorderConfig};

/// Counts allocations of the whole process.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator, adding only a counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by spawning `tasks` empty tasks and awaiting them, with the instrumented
/// spawn or `tokio::spawn`.
fn allocations_for_spawns(rt: &tokio::runtime::Runtime, tasks: u64, instrumented: bool) -> u64 {
    rt.block_on(async {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for i in 0..tasks {
            let task = async move {
                std::hint::black_box(i);
            };
            if instrumented {
                flight_recorder::tokio::spawn(task).await.unwrap();
            } else {
                tokio::spawn(task).await.unwrap();
            }
        }
        ALLOCATIONS.load(Ordering::Relaxed) - before
    })
}

#[test]
fn an_instrumented_spawn_allocates_one_block_more_than_tokio_spawn() {
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(60),
        max_bytes: 64 << 20,
    });
    fr.start().unwrap();
    let mut builder = tokio::runtime::Builder::new_current_thread();
    flight_recorder::tokio::instrument(&mut builder);
    let rt = builder.enable_all().build().unwrap();
    allocations_for_spawns(&rt, 100, true);
    allocations_for_spawns(&rt, 100, false);
    let tasks = 1_000;
    let instrumented = allocations_for_spawns(&rt, tasks, true);
    let plain = allocations_for_spawns(&rt, tasks, false);
    fr.stop();
    // The task's `WakeState` (its id and waker slot, and the waker handed to the future): one
    // allocation per task, the lock and the per-poll clone of the runtime's waker gone. A few
    // more overall for fresh event buffers.
    assert!(
        instrumented + 8 >= plain + tasks && instrumented <= plain + tasks + 8,
        "{instrumented} allocations for {tasks} instrumented spawns, {plain} for tokio::spawn"
    );
}
