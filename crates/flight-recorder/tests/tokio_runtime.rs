//! The tokio integration on real runtimes, checked through the trace reader. Runs in both builds:
//! with `--cfg tokio_unstable` (the workspace default: runtime task hooks) and without it
//! (`RUSTFLAGS= cargo test`: the instrumented spawn only).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{read_trace, serial, ReadTrace};
use flight_recorder::raw::EventKind;
use flight_recorder::{FlightRecorder, FlightRecorderConfig};
use flight_recorder_format::Event;

/// Runs `work` on `rt` with a flight recorder on, shuts the runtime down (so every hook has run:
/// a task's `JoinHandle` can resolve before tokio calls the poll-end hook), and returns the
/// snapshot taken after it with what `work` returned.
fn record<T>(
    rt: tokio::runtime::Runtime,
    work: impl FnOnce(&tokio::runtime::Runtime) -> T,
) -> (ReadTrace, T) {
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(60),
        max_bytes: 64 << 20,
        ..Default::default()
    });
    fr.start().unwrap();
    let result = work(&rt);
    rt.shutdown_timeout(Duration::from_secs(5));
    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).unwrap();
    fr.stop();
    (read_trace(bytes), result)
}

fn runtime(name: &str, workers: usize) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(workers).enable_all();
    flight_recorder::tokio::Instrumentation::new()
        .name(name)
        .apply(&mut builder);
    builder.build().unwrap()
}

fn tokio_id(id: tokio::task::Id) -> u64 {
    id.to_string().parse().unwrap()
}

fn of_kind(trace: &ReadTrace, kind: EventKind) -> impl Iterator<Item = &Event> {
    trace.events.iter().filter(move |e| e.kind() == Some(kind))
}

/// Per thread: (runtime id, role) from the thread's `runtime_thread` events (the last one).
fn thread_roles(trace: &ReadTrace) -> HashMap<u64, (u64, u64)> {
    of_kind(trace, EventKind::RuntimeThread)
        .map(|e| (e.thread, (e.arg(0), e.arg(1))))
        .collect()
}

/// Runtime id → name.
fn runtime_names(trace: &ReadTrace) -> HashMap<u64, String> {
    of_kind(trace, EventKind::RuntimeName)
        .map(|e| (e.arg(0), trace.reader.string(e.arg(1)).unwrap().to_string()))
        .collect()
}

/// Poll starts (either kind) of a task, in time order.
fn poll_starts(trace: &ReadTrace, task: u64) -> Vec<&Event> {
    let mut polls: Vec<&Event> = trace
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.kind(),
                Some(EventKind::PollStart | EventKind::PollStartScheduled)
            ) && e.arg(0) == task
        })
        .collect();
    polls.sort_by_key(|e| e.time_ns);
    polls
}

/// Poll durations of a task: (thread, start, duration ns), matching start and end per thread.
fn polls(trace: &ReadTrace, task: u64) -> Vec<(u64, u64, u64)> {
    let mut open: HashMap<u64, u64> = HashMap::new();
    let mut done = Vec::new();
    for e in &trace.events {
        match e.kind() {
            Some(EventKind::PollStart | EventKind::PollStartScheduled) if e.arg(0) == task => {
                open.insert(e.thread, e.time_ns);
            }
            Some(EventKind::PollEnd) if e.arg(0) == task => {
                if let Some(start) = open.remove(&e.thread) {
                    done.push((e.thread, start, e.time_ns - start));
                }
            }
            _ => {}
        }
    }
    done
}

fn spawn_event(trace: &ReadTrace, task: u64) -> &Event {
    of_kind(trace, EventKind::TaskSpawn)
        .find(|e| e.arg(0) == task)
        .unwrap_or_else(|| panic!("no spawn event for task {task}"))
}

fn location_of(trace: &ReadTrace, spawn: &Event) -> (String, u32) {
    let location = trace.reader.location(spawn.arg(1)).expect("spawn location");
    (location.file.clone(), location.line)
}

#[test]
fn spawn_locations_are_the_callers() {
    let _serial = serial();
    let (trace, ids) = record(runtime("locations", 2), |rt| {
        let mut ids = Vec::new();
        rt.block_on(async {
            let line = line!() + 1;
            let handle = flight_recorder::tokio::spawn(async { 7 });
            ids.push((tokio_id(handle.id()), line));
            assert_eq!(handle.await.unwrap(), 7);
            if cfg!(tokio_unstable) {
                // With the runtime hooks, every task is recorded, spawned any way.
                let line = line!() + 1;
                let handle = tokio::spawn(async { 8 });
                ids.push((tokio_id(handle.id()), line));
                assert_eq!(handle.await.unwrap(), 8);
            }
        });
        ids
    });
    for (task, line) in ids {
        let (file, recorded_line) = location_of(&trace, spawn_event(&trace, task));
        assert_eq!((file.as_str(), recorded_line), (file!(), line));
        // `block_on`'s future is not a task: no parent.
        assert_eq!(spawn_event(&trace, task).arg(2), 0);
    }
}

#[test]
fn a_blocking_poll_shows_on_one_worker() {
    let _serial = serial();
    let (trace, task) = record(runtime("blocking", 2), |rt| {
        rt.block_on(async {
            let handle = flight_recorder::tokio::spawn(async {
                std::thread::sleep(Duration::from_millis(50));
            });
            let task = tokio_id(handle.id());
            handle.await.unwrap();
            task
        })
    });
    let polls = polls(&trace, task);
    let (thread, _, longest) = *polls.iter().max_by_key(|p| p.2).expect("no poll");
    assert!(longest >= 50_000_000, "longest poll {longest} ns");
    let roles = thread_roles(&trace);
    let (runtime, role) = roles[&thread];
    assert_eq!(role, 0, "the poll ran on a worker");
    assert_eq!(runtime_names(&trace)[&runtime], "blocking");
}

#[test]
fn ping_pong_wakes_are_followed_by_polls_of_the_woken_task() {
    let _serial = serial();
    let rounds = 20;
    let (trace, (ping, pong)) = record(runtime("pingpong", 2), |rt| {
        rt.block_on(async {
            let (to_pong, mut pong_rx) = tokio::sync::mpsc::channel::<u32>(1);
            let (to_ping, mut ping_rx) = tokio::sync::mpsc::channel::<u32>(1);
            // Each side waits a moment before it sends, so that the other is already waiting
            // for the message and is woken by the send, even on a loaded machine where a
            // receiver would otherwise often find the message there and not wait at all.
            let pause = Duration::from_millis(1);
            let pong_task = flight_recorder::tokio::spawn(async move {
                while let Some(n) = pong_rx.recv().await {
                    tokio::time::sleep(pause).await;
                    if to_ping.send(n).await.is_err() {
                        break;
                    }
                }
            });
            let ping_task = flight_recorder::tokio::spawn(async move {
                for n in 0..rounds {
                    tokio::time::sleep(pause).await;
                    to_pong.send(n).await.unwrap();
                    assert_eq!(ping_rx.recv().await, Some(n));
                }
            });
            let ids = (tokio_id(ping_task.id()), tokio_id(pong_task.id()));
            ping_task.await.unwrap();
            pong_task.await.unwrap();
            ids
        })
    });
    for (woken, waker) in [(pong, ping), (ping, pong)] {
        let wakes: Vec<&Event> = of_kind(&trace, EventKind::TaskWake)
            .filter(|e| e.arg(0) == woken && e.arg(1) == waker)
            .collect();
        // A receiver that finds the message already there is not woken, so on two workers a
        // round may pass without a wake; with the pauses, most wake, each naming the task that
        // woke it.
        assert!(
            wakes.len() >= rounds as usize / 2,
            "task {woken} woken by {waker} only {} times",
            wakes.len()
        );
        let starts = poll_starts(&trace, woken);
        for wake in wakes {
            assert!(
                starts.iter().any(|p| p.time_ns >= wake.time_ns),
                "a wake of {woken} at {} has no later poll",
                wake.time_ns
            );
        }
    }
}

#[test]
fn workers_park_and_unpark() {
    let _serial = serial();
    let (trace, ()) = record(runtime("parking", 2), |rt| {
        rt.block_on(async {
            for _ in 0..10 {
                let tasks: Vec<_> = (0..4)
                    .map(|_| {
                        flight_recorder::tokio::spawn(tokio::time::sleep(Duration::from_millis(2)))
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            }
        });
    });
    let roles = thread_roles(&trace);
    let workers: Vec<u64> = roles
        .iter()
        .filter(|(_, &(_, role))| role == 0)
        .map(|(&thread, _)| thread)
        .collect();
    assert_eq!(workers.len(), 2, "{roles:?}");
    for worker in workers {
        let parks = trace
            .events_of(worker)
            .iter()
            .filter(|e| e.kind() == Some(EventKind::WorkerPark))
            .count();
        let unparks = trace
            .events_of(worker)
            .iter()
            .filter(|e| e.kind() == Some(EventKind::WorkerUnpark))
            .count();
        assert!(
            parks >= 1 && unparks >= 1,
            "worker {worker}: {parks} parks, {unparks} unparks"
        );
        assert!(parks.abs_diff(unparks) <= 1);
    }
}

#[test]
fn a_task_queued_behind_a_blocked_worker_waits() {
    let _serial = serial();
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    flight_recorder::tokio::instrument(&mut builder);
    let (trace, queued) = record(builder.build().unwrap(), |rt| {
        rt.block_on(async {
            let blocker = flight_recorder::tokio::spawn(async {
                std::thread::sleep(Duration::from_millis(50));
            });
            let behind = flight_recorder::tokio::spawn(async {});
            let queued = tokio_id(behind.id());
            blocker.await.unwrap();
            behind.await.unwrap();
            queued
        })
    });
    let spawned_at = spawn_event(&trace, queued).time_ns;
    let first_poll = poll_starts(&trace, queued)[0];
    let waited = first_poll.time_ns - spawned_at;
    assert!(waited >= 50_000_000, "waited {waited} ns");
    if first_poll.kind() == Some(EventKind::PollStartScheduled) {
        // tokio measured it too.
        assert!(
            first_poll.arg(1) >= 50_000_000,
            "tokio says {} ns",
            first_poll.arg(1)
        );
    }
}

#[test]
fn two_runtimes_are_told_apart() {
    let _serial = serial();
    let beta = runtime("beta", 1);
    let (trace, tasks) = record(runtime("alpha", 1), |alpha| {
        let mut tasks = BTreeMap::new();
        for (name, rt) in [("alpha", alpha), ("beta", &beta)] {
            rt.block_on(async {
                let handle = flight_recorder::tokio::spawn(async {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                });
                tasks.insert(name, tokio_id(handle.id()));
                handle.await.unwrap();
            });
        }
        tasks
    });
    beta.shutdown_timeout(Duration::from_secs(5));
    let names = runtime_names(&trace);
    let roles = thread_roles(&trace);
    for (name, task) in tasks {
        for (thread, _, _) in polls(&trace, task) {
            let (runtime, _) = roles[&thread];
            assert_eq!(
                names[&runtime], name,
                "task {task} polled on another runtime's thread"
            );
        }
    }
    let mut named: Vec<&str> = names.values().map(String::as_str).collect();
    named.sort();
    named.dedup();
    assert!(
        named.contains(&"alpha") && named.contains(&"beta"),
        "{named:?}"
    );
}

#[test]
fn application_hooks_are_chained() {
    let _serial = serial();
    let starts = Arc::new(AtomicUsize::new(0));
    let parks = Arc::new(AtomicUsize::new(0));
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    {
        let starts = starts.clone();
        let parks = parks.clone();
        flight_recorder::tokio::Instrumentation::new()
            .on_thread_start(move || {
                starts.fetch_add(1, Ordering::SeqCst);
            })
            .on_thread_park(move || {
                parks.fetch_add(1, Ordering::SeqCst);
            })
            .apply(&mut builder);
    }
    let (trace, ()) = record(builder.build().unwrap(), sleeping_tasks);
    assert!(starts.load(Ordering::SeqCst) >= 2);
    assert!(parks.load(Ordering::SeqCst) >= 1);
    assert!(of_kind(&trace, EventKind::WorkerPark).count() >= 1);
}

/// Work that wakes the workers, which parked before the recorder started: 5 rounds of 4 tasks
/// that sleep 2 ms.
fn sleeping_tasks(rt: &tokio::runtime::Runtime) {
    rt.block_on(async {
        for _ in 0..5 {
            let tasks: Vec<_> = (0..4)
                .map(|_| tokio::spawn(tokio::time::sleep(Duration::from_millis(2))))
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
    });
}

/// The application's poll hooks (tokio's unstable task hooks) run on every poll, and the
/// recorder's still record them.
#[cfg(tokio_unstable)]
#[test]
fn application_poll_hooks_are_chained() {
    let _serial = serial();
    let before_polls = Arc::new(AtomicUsize::new(0));
    let after_polls = Arc::new(AtomicUsize::new(0));
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    {
        let before_polls = before_polls.clone();
        let after_polls = after_polls.clone();
        flight_recorder::tokio::Instrumentation::new()
            .on_before_task_poll(move |_| {
                before_polls.fetch_add(1, Ordering::SeqCst);
            })
            .on_after_task_poll(move |_| {
                after_polls.fetch_add(1, Ordering::SeqCst);
            })
            .apply(&mut builder);
    }
    let (trace, ()) = record(builder.build().unwrap(), sleeping_tasks);
    let polled = of_kind(&trace, EventKind::PollStart).count()
        + of_kind(&trace, EventKind::PollStartScheduled).count();
    assert!(polled >= 20, "{polled} polls recorded");
    let before = before_polls.load(Ordering::SeqCst);
    assert!(
        before >= polled,
        "{before} application hook calls, {polled} polls"
    );
    assert_eq!(before, after_polls.load(Ordering::SeqCst));
}

#[test]
fn blocking_pool_work_appears() {
    let _serial = serial();
    let (trace, task) = record(runtime("pool", 1), |rt| {
        rt.block_on(async {
            let handle = flight_recorder::tokio::spawn_blocking(|| {
                std::thread::sleep(Duration::from_millis(20));
                5
            });
            let task = tokio_id(handle.id());
            assert_eq!(handle.await.unwrap(), 5);
            task
        })
    });
    let (file, _) = location_of(&trace, spawn_event(&trace, task));
    assert_eq!(file, file!());
    let polls = polls(&trace, task);
    assert_eq!(polls.len(), 1, "{polls:?}");
    let (thread, _, duration) = polls[0];
    assert!(duration >= 20_000_000);
    assert_eq!(
        thread_roles(&trace)[&thread].1,
        1,
        "ran on a blocking-pool thread"
    );
}

#[test]
fn runtime_counters_are_sampled() {
    let _serial = serial();
    let (trace, ()) = record(runtime("counted", 2), |rt| {
        let _sampler = flight_recorder::tokio::record_runtime_metrics(
            rt.handle(),
            "counted",
            Duration::from_millis(5),
        );
        rt.block_on(async {
            let tasks: Vec<_> = (0..10)
                .map(|_| tokio::spawn(tokio::time::sleep(Duration::from_millis(200))))
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
    });
    let mut seen: HashMap<String, Vec<u64>> = HashMap::new();
    for e in of_kind(&trace, EventKind::Counter) {
        let name = trace.reader.string(e.arg(0)).unwrap().to_string();
        seen.entry(name).or_default().push(e.arg(1));
    }
    for metric in [
        "alive_tasks",
        "global_queue_depth",
        "busy_workers_permille",
        "workers",
    ] {
        let name = format!("tokio.counted.{metric}");
        assert!(seen.contains_key(&name), "no {name} in {:?}", seen.keys());
    }
    assert!(seen["tokio.counted.workers"].iter().all(|&w| w == 2));
    assert!(
        seen["tokio.counted.alive_tasks"].iter().any(|&n| n >= 10),
        "{:?}",
        seen["tokio.counted.alive_tasks"]
    );
}
