//! The instrumented spawn's waker on real runtimes: wakes from another task, a plain thread and a
//! timer; `wake_by_ref` and clones, one `task_wake` per wake; wakers that outlive their task
//! (completed, aborted in a `JoinSet`, or past the runtime's end) woken later, with no event for
//! the gone task; many threads waking one task at once, with no wake lost. Runs in both builds
//! (with and without `--cfg tokio_unstable`).

mod common;

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use common::{read_trace, serial, ReadTrace};
use flight_recorder::raw::EventKind;
use flight_recorder::{FlightRecorder, FlightRecorderConfig};
use flight_recorder_format::Event;

/// Runs `work` on a 2-worker runtime with a flight recorder on, shuts the runtime down, and
/// returns the snapshot taken after it with what `work` returned.
fn record<T>(work: impl FnOnce(&tokio::runtime::Runtime) -> T) -> (ReadTrace, T) {
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(60),
        max_bytes: 64 << 20,
        ..Default::default()
    });
    fr.start().unwrap();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    flight_recorder::tokio::instrument(&mut builder);
    let rt = builder.build().unwrap();
    let result = work(&rt);
    rt.shutdown_timeout(Duration::from_secs(5));
    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).unwrap();
    fr.stop();
    (read_trace(bytes), result)
}

fn tokio_id(id: tokio::task::Id) -> u64 {
    id.to_string().parse().unwrap()
}

/// The `task_wake` events of `task`.
fn wakes_of(trace: &ReadTrace, task: u64) -> Vec<&Event> {
    trace
        .events
        .iter()
        .filter(|e| e.kind() == Some(EventKind::TaskWake) && e.arg(0) == task)
        .collect()
}

/// A slot where a task leaves a clone of its waker.
type Shared = Arc<Mutex<Option<Waker>>>;

/// Waits (blocking, outside the runtime's workers) until the task has left its waker.
fn waker_of(shared: &Shared) -> Waker {
    for _ in 0..10_000 {
        if let Some(w) = shared.lock().unwrap().as_ref() {
            return w.clone();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the task never left its waker");
}

#[test]
fn a_wake_from_another_task_names_it() {
    let _serial = serial();
    let (trace, (woken, waker)) = record(|rt| {
        rt.block_on(async {
            let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
            let receiver = flight_recorder::tokio::spawn(async move { rx.await.unwrap() });
            tokio::time::sleep(Duration::from_millis(20)).await;
            let sender = flight_recorder::tokio::spawn(async move { tx.send(7).unwrap() });
            let ids = (tokio_id(receiver.id()), tokio_id(sender.id()));
            sender.await.unwrap();
            assert_eq!(receiver.await.unwrap(), 7);
            ids
        })
    });
    let wakes = wakes_of(&trace, woken);
    assert!(
        wakes.iter().any(|e| e.arg(1) == waker),
        "no wake of {woken} by {waker}: {:?}",
        wakes.iter().map(|e| e.arg(1)).collect::<Vec<_>>()
    );
}

#[test]
fn wakes_from_a_plain_thread_and_a_timer() {
    let _serial = serial();
    let (trace, (by_thread, by_timer)) = record(|rt| {
        rt.block_on(async {
            let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
            let receiver = flight_recorder::tokio::spawn(async move { rx.await.unwrap() });
            let sleeper =
                flight_recorder::tokio::spawn(tokio::time::sleep(Duration::from_millis(30)));
            let thread = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                tx.send(3).unwrap();
            });
            let ids = (tokio_id(receiver.id()), tokio_id(sleeper.id()));
            assert_eq!(receiver.await.unwrap(), 3);
            sleeper.await.unwrap();
            thread.join().unwrap();
            ids
        })
    });
    let wakes = wakes_of(&trace, by_thread);
    assert_eq!(wakes.len(), 1, "one wake of the receiver");
    assert_eq!(wakes[0].arg(1), 0, "woken outside any task");
    assert!(!wakes_of(&trace, by_timer).is_empty(), "the timer's wake");
}

#[test]
fn each_wake_by_ref_and_each_clone_records_one_event() {
    let _serial = serial();
    let shared: Shared = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let (trace, task) = record(|rt| {
        let handle = rt.spawn({
            let shared = shared.clone();
            let done = done.clone();
            async move {
                let task = flight_recorder::tokio::spawn(poll_fn(move |cx| {
                    if done.load(Ordering::SeqCst) {
                        return Poll::Ready(());
                    }
                    *shared.lock().unwrap() = Some(cx.waker().clone());
                    Poll::Pending
                }));
                let id = tokio_id(task.id());
                task.await.unwrap();
                id
            }
        });
        let waker = waker_of(&shared);
        for _ in 0..3 {
            waker.wake_by_ref();
        }
        for _ in 0..2 {
            // A clone woken by value (not `wake_by_ref`, on purpose).
            let clone = waker.clone();
            clone.wake();
        }
        let clone = waker.clone();
        done.store(true, Ordering::SeqCst);
        clone.wake();
        rt.block_on(handle).unwrap()
    });
    let wakes = wakes_of(&trace, task);
    assert_eq!(
        wakes.len(),
        6,
        "3 wake_by_ref + 2 clones woken + 1: one event each"
    );
    assert!(wakes.iter().all(|e| e.arg(1) == 0));
}

#[test]
fn wakers_outliving_their_task_record_nothing() {
    let _serial = serial();
    let shared: Shared = Arc::default();
    let (trace, (task, kept)) = record(|rt| {
        let (task, kept) = rt.block_on({
            let shared = shared.clone();
            async move {
                let slot = shared.clone();
                let task = flight_recorder::tokio::spawn(poll_fn(move |cx| {
                    *slot.lock().unwrap() = Some(cx.waker().clone());
                    Poll::Ready(())
                }));
                let id = tokio_id(task.id());
                task.await.unwrap();
                let kept = shared.lock().unwrap().take().unwrap();
                (id, kept)
            }
        });
        // The task is gone; its waker lives on, is cloned into other threads and woken.
        kept.wake_by_ref();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = kept.clone();
                std::thread::spawn(move || {
                    w.wake_by_ref();
                    w.wake();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        (task, kept)
    });
    // After the runtime itself is gone, too.
    kept.wake_by_ref();
    let clone = kept.clone();
    clone.wake();
    drop(kept);
    assert!(
        wakes_of(&trace, task).is_empty(),
        "wakes recorded for a task that had ended"
    );
}

#[test]
fn aborted_join_set_tasks_leave_wakers_that_record_nothing() {
    let _serial = serial();
    let kept: Arc<Mutex<Vec<Waker>>> = Arc::default();
    let (trace, ids) = record(|rt| {
        rt.block_on({
            let kept = kept.clone();
            async move {
                let mut set = tokio::task::JoinSet::new();
                let mut ids = Vec::new();
                for _ in 0..50 {
                    let kept = kept.clone();
                    let handle = flight_recorder::tokio::spawn_in(
                        &mut set,
                        poll_fn(move |cx| {
                            kept.lock().unwrap().push(cx.waker().clone());
                            Poll::<()>::Pending
                        }),
                    );
                    ids.push(tokio_id(handle.id()));
                }
                while kept.lock().unwrap().len() < 50 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                set.abort_all();
                while let Some(result) = set.join_next().await {
                    assert!(result.unwrap_err().is_cancelled());
                }
                // The futures are dropped: their wakers find the tasks gone.
                for w in kept.lock().unwrap().iter() {
                    w.wake_by_ref();
                }
                ids
            }
        })
    });
    for w in kept.lock().unwrap().drain(..) {
        w.wake();
    }
    for task in ids {
        assert!(
            wakes_of(&trace, task).is_empty(),
            "wakes recorded for aborted task {task}"
        );
        assert!(
            trace
                .events
                .iter()
                .any(|e| e.kind() == Some(EventKind::TaskTerminate) && e.arg(0) == task),
            "no end of aborted task {task}"
        );
    }
}

#[test]
fn many_threads_waking_one_task_lose_no_wake() {
    let _serial = serial();
    const THREADS: usize = 8;
    const WAKES: usize = 2_000;
    let shared: Shared = Arc::default();
    let counter = Arc::new(AtomicUsize::new(0));
    let polls = Arc::new(AtomicUsize::new(0));
    let (trace, task) = record(|rt| {
        let handle = rt.spawn({
            let shared = shared.clone();
            let counter = counter.clone();
            let polls = polls.clone();
            async move {
                let task = flight_recorder::tokio::spawn(poll_fn(move |cx| {
                    polls.fetch_add(1, Ordering::Relaxed);
                    if counter.load(Ordering::SeqCst) == THREADS * WAKES {
                        return Poll::Ready(());
                    }
                    let mut slot = shared.lock().unwrap();
                    if slot.is_none() {
                        *slot = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }));
                let id = tokio_id(task.id());
                tokio::time::timeout(Duration::from_secs(30), task)
                    .await
                    .expect("a wake was lost: the task never saw the last increment")
                    .unwrap();
                id
            }
        });
        let waker = waker_of(&shared);
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let waker = waker.clone();
                let counter = counter.clone();
                std::thread::spawn(move || {
                    for _ in 0..WAKES {
                        counter.fetch_add(1, Ordering::SeqCst);
                        waker.wake_by_ref();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        rt.block_on(handle).unwrap()
    });
    let wakes = wakes_of(&trace, task).len();
    // Each wake while the task lived is one event; each thread may have its last wake after the
    // task ended (it saw every increment), which records nothing.
    assert!(
        (THREADS * WAKES - THREADS..=THREADS * WAKES).contains(&wakes),
        "{wakes} wake events for {} wakes",
        THREADS * WAKES
    );
}

#[test]
fn the_lent_waker_woken_and_cloned_from_threads_during_a_poll() {
    let _serial = serial();
    let kept: Shared = Arc::default();
    let (trace, task) = record(|rt| {
        rt.block_on({
            let kept = kept.clone();
            async move {
                let mut polls = 0;
                let task = flight_recorder::tokio::spawn(poll_fn(move |cx| {
                    polls += 1;
                    match polls {
                        // Woken by reference before any clone exists: one event.
                        1 => cx.waker().wake_by_ref(),
                        // Four threads clone the waker at once (the first clone makes the task's
                        // wake state; the others race it), each waking its clone: four events.
                        2 => {
                            let waker = cx.waker();
                            std::thread::scope(|scope| {
                                for _ in 0..4 {
                                    scope.spawn(|| {
                                        let clone = waker.clone();
                                        clone.wake_by_ref();
                                        *kept.lock().unwrap() = Some(clone);
                                    });
                                }
                            });
                        }
                        _ => return Poll::Ready(()),
                    }
                    Poll::Pending
                }));
                let id = tokio_id(task.id());
                task.await.unwrap();
                id
            }
        })
    });
    drop(kept.lock().unwrap().take());
    assert_eq!(wakes_of(&trace, task).len(), 5);
}
