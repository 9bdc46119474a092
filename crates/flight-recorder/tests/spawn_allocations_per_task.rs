//! Beyond what `tokio::spawn` allocates, the instrumented spawn allocates nothing for a task that
//! never clones its waker, and one block (its wake state, which is also the waker handed to the
//! task's future) for a task that does. In a process of its own, as it counts the process's
//! allocations.

use std::sync::atomic::Ordering;
use std::time::Duration;

use flight_recorder::{FlightRecorder, FlightRecorderConfig};

mod counting_alloc;

use counting_alloc::ALLOCATIONS;

/// Allocations made by spawning `tasks` tasks and awaiting them, with the instrumented spawn or
/// `tokio::spawn`; each task yields once (which clones its waker) if `yields`.
fn allocations_for_spawns(
    rt: &tokio::runtime::Runtime,
    tasks: u64,
    instrumented: bool,
    yields: bool,
) -> u64 {
    rt.block_on(async {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for i in 0..tasks {
            let task = async move {
                if yields {
                    tokio::task::yield_now().await;
                }
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
fn an_instrumented_spawn_allocates_only_for_a_task_that_clones_its_waker() {
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(60),
        max_bytes: 64 << 20,
        ..Default::default()
    });
    fr.start().unwrap();
    let mut builder = tokio::runtime::Builder::new_current_thread();
    flight_recorder::tokio::instrument(&mut builder);
    let rt = builder.enable_all().build().unwrap();
    for yields in [false, true] {
        allocations_for_spawns(&rt, 100, true, yields);
        allocations_for_spawns(&rt, 100, false, yields);
    }
    let tasks = 1_000;
    let mut extra = Vec::new();
    for yields in [false, true] {
        let instrumented = allocations_for_spawns(&rt, tasks, true, yields);
        let plain = allocations_for_spawns(&rt, tasks, false, yields);
        extra.push((instrumented, plain));
    }
    fr.stop();
    // A few more overall for fresh event buffers.
    let [(instrumented, plain), (instrumented_yielding, plain_yielding)] = extra[..] else {
        unreachable!()
    };
    assert!(
        instrumented <= plain + 8,
        "{instrumented} allocations for {tasks} instrumented spawns that never wait, {plain} for tokio::spawn"
    );
    // The `WakeState`, made by the first clone of the waker (yield_now's).
    assert!(
        instrumented_yielding + 8 >= plain_yielding + tasks
            && instrumented_yielding <= plain_yielding + tasks + 8,
        "{instrumented_yielding} allocations for {tasks} instrumented spawns that yield, {plain_yielding} for tokio::spawn"
    );
}
