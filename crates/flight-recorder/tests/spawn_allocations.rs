//! The instrumented spawn wraps a task's future and waker without allocating per poll.

use std::sync::atomic::Ordering;
use std::time::Duration;

use flight_recorder::{FlightRecorder, FlightRecorderConfig};

mod counting_alloc;

use counting_alloc::ALLOCATIONS;

/// Allocations made while a task spawned with the instrumented spawn yields `yields` times.
fn allocations_for(rt: &tokio::runtime::Runtime, yields: u32) -> u64 {
    rt.block_on(async {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        flight_recorder::tokio::spawn(async move {
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        ALLOCATIONS.load(Ordering::Relaxed) - before
    })
}

#[test]
fn polls_and_wakes_do_not_allocate() {
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(60),
        max_bytes: 64 << 20,
        ..Default::default()
    });
    fr.start().unwrap();
    let mut builder = tokio::runtime::Builder::new_current_thread();
    flight_recorder::tokio::instrument(&mut builder);
    let rt = builder.enable_all().build().unwrap();
    // Warm up: the thread's first chunk, interning, the runtime's own first allocations.
    allocations_for(&rt, 100);
    let few = allocations_for(&rt, 10);
    let many = allocations_for(&rt, 2_000);
    fr.stop();
    // 1,990 more polls, each with a wake through the task's wrapped waker: at most a handful of
    // allocations more (a fresh buffer when a chunk fills up), not one per poll.
    assert!(
        many <= few + 8,
        "{few} allocations for 10 polls, {many} for 2,000: the wrapper allocates per poll"
    );
}
