//! The summary of traces recorded from real workloads with known behaviour: a poll that blocks
//! its worker for 50 ms, tasks queued behind it, a user task and regions of known length.

mod common;

use std::panic::Location;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::serial;
use flight_recorder::raw::{self, EventKind};
use flight_recorder::{FlightRecorder, FlightRecorderConfig, FullTrace};
use flight_recorder_analysis::summary::{LocationSummary, Summary};
use flight_recorder_format::TraceReader;

const MS: u64 = 1_000_000;
const BLOCK: Duration = Duration::from_millis(50);

#[track_caller]
fn here() -> (u64, String) {
    let l = Location::caller();
    (
        raw::intern_location(l),
        format!("{}:{}:{}", l.file(), l.line(), l.column()),
    )
}

fn summarize(bytes: &[u8]) -> Summary {
    Summary::from_reader(TraceReader::new(bytes).expect("header")).expect("a complete trace")
}

fn location<'a>(summary: &'a Summary, name: &str) -> &'a LocationSummary {
    summary
        .location(name)
        .unwrap_or_else(|| panic!("no location {name} in\n{}", summary.render_text()))
}

/// A worker thread polls task 1 for 50 ms (a real sleep: a blocking call in async code) while
/// another thread wakes tasks 2, 3 and 4; they are polled after it, so each waited about 50 ms
/// to be scheduled. A user task of 30 ms and a region of 20 ms run on a third thread.
fn blocking_poll_workload() -> (Vec<u8>, String, String) {
    let (blocker_loc, blocker_name) = here();
    let (queued_loc, queued_name) = here();
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(30),
        max_bytes: 64 << 20,
        ..Default::default()
    });
    fr.start().expect("start");
    let (poll_started, wait_poll) = mpsc::channel();
    let (woken, wait_wakes) = mpsc::channel();
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("test-worker".into())
            .spawn_scoped(s, move || {
                raw::record(EventKind::RuntimeThread, &[1, 0]);
                raw::record(EventKind::RuntimeName, &[1, raw::intern_str("test-rt")]);
                raw::record(EventKind::WorkerUnpark, &[]);
                raw::record(EventKind::TaskSpawn, &[1, blocker_loc, 0]);
                raw::poll_start(1);
                poll_started.send(()).unwrap();
                {
                    let _region = flight_recorder::region("blocking_call");
                    flight_recorder::log("handler", "calling the legacy client");
                    std::thread::sleep(BLOCK);
                }
                wait_wakes.recv().unwrap();
                raw::poll_end(1, false);
                for task in 2..=4 {
                    raw::poll_start(task);
                    std::thread::sleep(Duration::from_millis(1));
                    raw::poll_end(task, true);
                    raw::record(EventKind::TaskTerminate, &[task]);
                }
                raw::record(EventKind::WorkerPark, &[]);
            })
            .unwrap();
        std::thread::Builder::new()
            .name("test-waker".into())
            .spawn_scoped(s, move || {
                for task in 2..=4 {
                    raw::record(EventKind::TaskSpawn, &[task, queued_loc, 0]);
                }
                wait_poll.recv().unwrap();
                for task in 2..=4 {
                    raw::record(EventKind::TaskWake, &[task, 0]);
                }
                woken.send(()).unwrap();
                raw::record(EventKind::TaskWake, &[1, 0]);
            })
            .unwrap();
        std::thread::Builder::new()
            .name("test-requests".into())
            .spawn_scoped(s, || {
                let name = raw::intern_str("request");
                raw::record(EventKind::UserTaskBegin, &[7, 0, name]);
                std::thread::sleep(Duration::from_millis(10));
                {
                    let _db = flight_recorder::region("db_query");
                    std::thread::sleep(Duration::from_millis(20));
                }
                raw::record(EventKind::UserTaskEnd, &[7]);
                // A user task that never ends in the window.
                raw::record(EventKind::UserTaskBegin, &[8, 0, name]);
            })
            .unwrap();
    });
    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).expect("snapshot");
    fr.stop();
    (bytes, blocker_name, queued_name)
}

#[test]
fn a_blocking_poll_and_the_tasks_queued_behind_it() {
    let _serial = serial();
    let (bytes, blocker, queued) = blocking_poll_workload();
    let summary = summarize(&bytes);
    let text = summary.render_text();

    // The blocking task: one poll of at least 50 ms, and one long poll with its annotations.
    let b = location(&summary, &blocker);
    assert_eq!((b.tasks, b.polls), (1, 1), "{text}");
    assert!(
        b.longest_poll_ns >= 50 * MS && b.longest_poll_ns < 500 * MS,
        "{text}"
    );
    assert!(b.run_ns >= 50 * MS, "{text}");
    assert_eq!(summary.long_polls.count, 1, "{text}");
    let long = &summary.long_polls.top[0];
    assert_eq!(long.task, 1);
    assert_eq!(long.location, blocker);
    assert_eq!(long.thread_name, "test-worker");
    assert_eq!(long.result, "pending");
    assert!(long.duration_ns >= 50 * MS, "{text}");
    assert!(
        long.annotations
            .contains(&"region blocking_call".to_string()),
        "{:?}",
        long.annotations
    );
    assert!(
        long.annotations
            .contains(&"log handler: calling the legacy client".to_string()),
        "{:?}",
        long.annotations
    );

    // The queued tasks: woken during the long poll, polled after it, each in 1 ms.
    let q = location(&summary, &queued);
    assert_eq!((q.tasks, q.polls, q.alive_at_end), (3, 3, 0), "{text}");
    assert!(q.run_ns >= 3 * MS && q.run_ns < 100 * MS, "{text}");
    let lat = &q.sched_latency.percentiles;
    assert_eq!(lat.count, 3, "{text}");
    // Woken after the long poll began (it lasted >= 50 ms), polled after it ended.
    assert!(lat.p50 >= 10 * MS, "{text}");
    assert!(lat.max >= lat.p50 && lat.max < 500 * MS, "{text}");
    // Spawned before the wake and never polled until then: the time from spawn to wake is
    // scheduling wait too (a spawned task is runnable), so the total wait covers the block.
    assert!(q.sched_wait_ns >= 3 * 40 * MS, "{text}");
    // Go's breakdown: run + scheduling wait + idle is the tasks' time, without overlap.
    for l in &summary.locations {
        assert_eq!(l.run_ns + l.sched_wait_ns + l.idle_ns, l.total_ns, "{l:?}");
    }
    assert_eq!(summary.sched_latency.percentiles.count, 4, "{text}");
    assert_eq!(summary.sched_latency.histogram.iter().sum::<u64>(), 4);

    // The blocking task is woken after its poll and never polled again: alive at the end.
    assert_eq!(summary.tasks.tasks, 4, "{text}");
    assert_eq!(summary.tasks.alive_at_end, 1, "{text}");

    // User task and region of known length.
    let request = summary.user_task("request").expect("user task group");
    assert_eq!((request.count, request.unfinished), (1, 1), "{text}");
    assert!(
        request.latency.p50 >= 30 * MS && request.latency.p50 < 300 * MS,
        "{text}"
    );
    let db = summary.region("db_query").expect("region group");
    assert_eq!(db.count, 1);
    assert!(
        db.latency.max >= 20 * MS && db.latency.max < 200 * MS,
        "{text}"
    );
    let blocking = summary.region("blocking_call").expect("region group");
    assert!(blocking.latency.max >= 50 * MS, "{text}");
    assert_eq!(summary.edges.user_tasks_open_at_end, 1);

    // The worker was unparked throughout the long poll.
    let worker = summary
        .utilization
        .threads
        .iter()
        .find(|t| t.name == "test-worker")
        .expect("worker utilization");
    assert_eq!(worker.basis, "unparked");
    assert!(worker.busy_ns >= 53 * MS, "{text}");
    assert!(worker.polling_ns >= 53 * MS, "{text}");
    assert_eq!(
        worker.busy_per_slice.iter().sum::<u64>(),
        worker.busy_ns,
        "{text}"
    );
    assert_eq!(summary.runtimes.len(), 1);
    assert_eq!(summary.runtimes[0].name, "test-rt");
    assert_eq!(summary.logs.total, 1);
    assert_eq!(summary.logs.recent[0].category, "handler");

    // Text and JSON carry the same facts.
    for expected in [
        "long polls (at least 10.000ms): 1",
        "region blocking_call",
        "scheduling latency (wake or spawn to poll): 4 polls",
        "worker utilization",
        "test-worker",
        "user tasks",
        "request",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }
    let json = summary.to_json();
    assert_eq!(json["long_polls"]["count"], 1);
    assert_eq!(json["long_polls"]["top"][0]["location"], blocker.as_str());
    assert_eq!(json["sched_latency"]["count"], 4);
    assert_eq!(json["user_tasks"][0]["name"], "request");
}

/// The same numbers come out of a full trace written to a file.
#[test]
fn a_full_trace_of_the_same_workload_gives_the_same_long_poll() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.trace");
    let trace = FullTrace::start(std::fs::File::create(&path).unwrap()).unwrap();
    let (task_loc, task_name) = here();
    std::thread::Builder::new()
        .name("full-worker".into())
        .spawn(move || {
            raw::record(EventKind::WorkerUnpark, &[]);
            raw::record(EventKind::TaskSpawn, &[9, task_loc, 0]);
            let start = Instant::now();
            raw::poll_start(9);
            std::thread::sleep(BLOCK);
            raw::poll_end(9, true);
            raw::record(EventKind::TaskTerminate, &[9]);
            raw::record(EventKind::WorkerPark, &[]);
            start.elapsed()
        })
        .unwrap()
        .join()
        .unwrap();
    trace.stop().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let summary = summarize(&bytes);
    assert_eq!(summary.long_polls.count, 1);
    let long = &summary.long_polls.top[0];
    assert_eq!((long.task, long.location.as_str()), (9, task_name.as_str()));
    assert_eq!(long.result, "ready");
    assert!(long.duration_ns >= 50 * MS);
    assert_eq!(summary.tasks.ended, 1);
    assert_eq!(summary.tasks.alive_at_end, 0);
}

/// On a real tokio runtime with one worker: a task whose poll blocks the worker for 50 ms, and
/// three tasks spawned at the same moment, queued behind it: each waits at least about 50 ms to
/// be polled.
#[test]
fn tokio_tasks_queued_behind_a_blocking_poll() {
    let _serial = serial();
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(60),
        max_bytes: 64 << 20,
        ..Default::default()
    });
    fr.start().unwrap();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(1).enable_all();
    flight_recorder::tokio::Instrumentation::new()
        .name("analysis-rt")
        .apply(&mut builder);
    let runtime = builder.build().unwrap();
    let mut lines = (0, 0);
    runtime.block_on(async {
        // Spawned from outside the worker: all four go to the runtime's queue in order, and
        // the worker polls the blocking one first.
        let (go, gate) = tokio::sync::oneshot::channel::<()>();
        lines.0 = line!() + 1;
        let blocker = flight_recorder::tokio::spawn(async move {
            let _ = gate.await;
            std::thread::sleep(BLOCK);
        });
        let mut queued = Vec::new();
        go.send(()).unwrap();
        lines.1 = line!() + 2;
        for _ in 0..3 {
            queued.push(flight_recorder::tokio::spawn(async {}));
        }
        blocker.await.unwrap();
        for q in queued {
            q.await.unwrap();
        }
    });
    drop(runtime);
    let (blocker_line, queued_line) = lines;
    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).unwrap();
    fr.stop();
    let summary = summarize(&bytes);
    let text = summary.render_text();
    let at_line = |line: u32| {
        summary
            .locations
            .iter()
            .find(|l| l.location.contains(&format!("analysis_summary.rs:{line}:")))
            .unwrap_or_else(|| panic!("no location at line {line} in\n{text}"))
    };
    let blocker = at_line(blocker_line);
    assert_eq!(blocker.tasks, 1, "{text}");
    assert!(blocker.longest_poll_ns >= 50 * MS, "{text}");
    let queued = at_line(queued_line);
    assert_eq!((queued.tasks, queued.alive_at_end), (3, 0), "{text}");
    let lat = &queued.sched_latency.percentiles;
    assert!(lat.count >= 3, "{text}");
    assert!(lat.p50 >= 45 * MS, "{text}");
    assert!(lat.max >= 45 * MS && lat.max < 2_000 * MS, "{text}");
    assert!(summary.sched_latency.percentiles.max >= 45 * MS, "{text}");
    assert!(summary.long_polls.count >= 1, "{text}");
    let long = &summary.long_polls.top[0];
    assert!(
        long.location.contains(&format!(":{blocker_line}:")),
        "{text}"
    );
    assert!(long.duration_ns >= 50 * MS, "{text}");
    assert!(
        summary
            .runtimes
            .iter()
            .any(|r| r.name == "analysis-rt" && r.workers.len() == 1),
        "{text}"
    );
    let worker = summary
        .utilization
        .threads
        .iter()
        .find(|t| t.basis == "unparked")
        .unwrap_or_else(|| panic!("no worker in\n{text}"));
    assert!(worker.busy_ns >= 50 * MS, "{text}");
    for l in &summary.locations {
        assert_eq!(l.run_ns + l.sched_wait_ns + l.idle_ns, l.total_ns, "{l:?}");
    }
}

/// Polls `future` once on the current thread inside a poll of tokio-like task `task`.
fn poll_once<F: std::future::Future + Unpin>(task: u64, future: &mut F) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    raw::poll_start(task);
    let ready = std::pin::Pin::new(future).poll(&mut cx).is_ready();
    raw::poll_end(task, ready);
    ready
}

/// A future held across an `.await` that resumes on another thread: its region begins at the
/// first poll of task 5 on one thread and ends at its last poll, 30 ms later, on another. A
/// region of a user task does the same outside any poll. Each counts once, with its whole
/// duration; a region of the same name left open on the second thread by another task is not
/// taken for it.
#[test]
fn regions_held_across_an_await_on_another_thread() {
    use flight_recorder::{InRegion, UserTask};
    use std::future::Future;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    const HOLD: Duration = Duration::from_millis(30);
    let _serial = serial();
    let (task_loc, _) = here();
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(60),
        max_bytes: 64 << 20,
        ..Default::default()
    });
    fr.start().unwrap();
    let gate = Arc::new(AtomicBool::new(false));
    let waiting = {
        let gate = gate.clone();
        std::future::poll_fn(move |_| {
            if gate.load(Ordering::SeqCst) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    };
    let mut future = Box::pin(waiting.in_region("fetch_user"));
    let request = UserTask::new("request");
    let user_gate = Arc::new(AtomicBool::new(false));
    let user_waiting = {
        let gate = user_gate.clone();
        std::future::poll_fn(move |_| {
            if gate.load(Ordering::SeqCst) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    };
    let mut user_future = Box::pin(user_waiting.in_task_region(&request, "load"));
    let (begun, elapsed) = std::thread::scope(|s| {
        let first = std::thread::Builder::new()
            .name("first-worker".into())
            .spawn_scoped(s, || {
                raw::record(EventKind::TaskSpawn, &[5, task_loc, 0]);
                let begun = Instant::now();
                assert!(!poll_once(5, &mut future));
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                assert!(user_future.as_mut().poll(&mut cx).is_pending());
                (begun, future, user_future)
            })
            .unwrap();
        let (begun, mut future, mut user_future) = first.join().unwrap();
        std::thread::sleep(HOLD);
        gate.store(true, Ordering::SeqCst);
        user_gate.store(true, Ordering::SeqCst);
        let elapsed = std::thread::Builder::new()
            .name("second-worker".into())
            .spawn_scoped(s, move || {
                // Another task leaves a region of the same name open on this thread first.
                let mut other = Box::pin(std::future::pending::<()>().in_region("fetch_user"));
                assert!(!poll_once(6, &mut other));
                std::mem::forget(other);
                assert!(poll_once(5, &mut future));
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                assert!(user_future.as_mut().poll(&mut cx).is_ready());
                begun.elapsed()
            })
            .unwrap()
            .join()
            .unwrap();
        (begun, elapsed)
    });
    let _ = begun;
    request.end();
    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).unwrap();
    fr.stop();
    let summary = summarize(&bytes);
    let text = summary.render_text();

    let fetch = summary.region("fetch_user").expect("region group");
    // The held region once, complete; task 6's region is the unfinished one.
    assert_eq!((fetch.count, fetch.unfinished), (1, 1), "{text}");
    let held = fetch
        .slowest
        .iter()
        .find(|r| !r.unfinished)
        .expect("the held region");
    assert!(held.duration_ns >= 30 * MS, "{text}");
    assert!(held.duration_ns <= elapsed.as_nanos() as u64, "{text}");
    assert_eq!(fetch.latency.max, held.duration_ns, "{text}");
    assert_eq!(fetch.latency.count, 1, "{text}");
    assert!(fetch.latency.p50 >= 29 * MS, "{text}");

    let load = summary.region("load").expect("region group");
    assert_eq!((load.count, load.unfinished), (1, 0), "{text}");
    assert!(load.latency.max >= 30 * MS, "{text}");
    assert!(load.latency.max <= elapsed.as_nanos() as u64, "{text}");
    assert_eq!(load.slowest[0].id, request.id(), "{text}");

    assert_eq!(summary.edges.region_ends_without_begin, 0, "{text}");
    assert_eq!(summary.edges.regions_open_at_end, 1, "{text}");
}
