//! User annotations and the `tracing` layer, checked through the reader.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{read_trace, serial, ReadTrace};
use flight_recorder::raw::EventKind;
use flight_recorder::{FlightRecorder, FlightRecorderConfig, InRegion, UserTask};
use flight_recorder_format::Event;
use tracing_subscriber::prelude::*;

fn record<T>(work: impl FnOnce() -> T) -> (ReadTrace, T) {
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(60),
        max_bytes: 64 << 20,
        ..Default::default()
    });
    fr.start().unwrap();
    let result = work();
    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).unwrap();
    fr.stop();
    (read_trace(bytes), result)
}

fn of_kind(trace: &ReadTrace, kind: EventKind) -> Vec<&Event> {
    trace
        .events
        .iter()
        .filter(|e| e.kind() == Some(kind))
        .collect()
}

fn name(trace: &ReadTrace, id: u64) -> &str {
    trace.reader.string(id).unwrap_or("?")
}

/// (name, user task) of region events of one kind.
fn regions(trace: &ReadTrace, kind: EventKind) -> Vec<(String, u64, u64)> {
    of_kind(trace, kind)
        .into_iter()
        .map(|e| (name(trace, e.arg(0)).to_string(), e.arg(1), e.thread))
        .collect()
}

#[test]
fn regions_nest_and_user_tasks_link_to_parents() {
    let _serial = serial();
    let (trace, (request_id, lookup_id)) = record(|| {
        let request = UserTask::new("request");
        let lookup;
        {
            let _outer = request.region("handle");
            {
                let _inner = flight_recorder::region("parse");
                request.log("http", "GET /users/42");
            }
            lookup = request.child("db_lookup");
            lookup.mark("cache_miss");
            flight_recorder::counter("pending", 3);
            lookup.end();
        }
        let ids = (request.id(), lookup.id());
        drop(request);
        ids
    });
    assert!(request_id != 0 && lookup_id != 0 && request_id != lookup_id);
    let me = trace
        .events
        .iter()
        .find(|e| e.kind() == Some(EventKind::UserTaskBegin))
        .unwrap()
        .thread;
    let described: Vec<String> = trace
        .events_of(me)
        .iter()
        .filter(|e| e.kind() != Some(EventKind::ThreadStart))
        .map(|e| {
            let kind = e.kind().unwrap();
            match kind {
                EventKind::UserTaskBegin => format!(
                    "task_begin {} parent {} {}",
                    e.arg(0),
                    e.arg(1),
                    name(&trace, e.arg(2))
                ),
                EventKind::UserTaskEnd => format!("task_end {}", e.arg(0)),
                EventKind::Counter => format!("counter {} {}", name(&trace, e.arg(0)), e.arg(1)),
                EventKind::Log => format!(
                    "log {} task {} {}",
                    name(&trace, e.arg(0)),
                    e.arg(1),
                    String::from_utf8_lossy(&e.payload)
                ),
                _ => format!(
                    "{} {} task {}",
                    kind.name(),
                    name(&trace, e.arg(0)),
                    e.arg(1)
                ),
            }
        })
        .collect();
    let (r, l) = (request_id, lookup_id);
    assert_eq!(
        described,
        [
            format!("task_begin {r} parent 0 request"),
            format!("region_begin handle task {r}"),
            "region_begin parse task 0".to_string(),
            format!("log http task {r} GET /users/42"),
            "region_end parse task 0".to_string(),
            format!("task_begin {l} parent {r} db_lookup"),
            format!("mark cache_miss task {l}"),
            "counter pending 3".to_string(),
            format!("task_end {l}"),
            format!("region_end handle task {r}"),
            format!("task_end {r}"),
        ]
    );
}

#[test]
fn a_region_follows_its_future_across_await_and_threads() {
    let _serial = serial();
    let (trace, (first_thread, last_thread)) = record(|| {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(false));
        let future = {
            let gate = gate.clone();
            async move {
                // Pending until the gate opens, then ready.
                std::future::poll_fn(move |_| {
                    if *gate.lock().unwrap() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
            }
            .in_region("fetch_user")
        };
        let mut future = Box::pin(future);
        // First poll on this thread: the region begins here and the future waits.
        let mut cx = Context::from_waker(Waker::noop());
        assert!(future.as_mut().poll(&mut cx).is_pending());
        let first = std::thread::current().id();
        drop(tx);
        let _ = rx.recv();
        *gate.lock().unwrap() = true;
        // The future moves to another thread, which completes it.
        let last = std::thread::spawn(move || {
            let mut cx = Context::from_waker(Waker::noop());
            assert!(future.as_mut().poll(&mut cx).is_ready());
            std::thread::current().id()
        })
        .join()
        .unwrap();
        (first, last)
    });
    assert_ne!(first_thread, last_thread);
    let begins = regions(&trace, EventKind::RegionBegin);
    let ends = regions(&trace, EventKind::RegionEnd);
    let begin = begins
        .iter()
        .find(|r| r.0 == "fetch_user")
        .expect("no begin");
    let end = ends.iter().find(|r| r.0 == "fetch_user").expect("no end");
    assert_ne!(
        begin.2, end.2,
        "begin and end are on the threads that polled the future"
    );
    let begin_time = of_kind(&trace, EventKind::RegionBegin)
        .iter()
        .find(|e| name(&trace, e.arg(0)) == "fetch_user")
        .unwrap()
        .time_ns;
    let end_time = of_kind(&trace, EventKind::RegionEnd)
        .iter()
        .find(|e| name(&trace, e.arg(0)) == "fetch_user")
        .unwrap()
        .time_ns;
    assert!(end_time >= begin_time);
    // A future dropped unfinished still ends its region.
    let (trace, ()) = record(|| {
        let future = std::future::pending::<()>().in_region("abandoned");
        let mut future = pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(future.as_mut().poll(&mut cx).is_pending());
    });
    assert_eq!(
        regions(&trace, EventKind::RegionEnd)
            .iter()
            .filter(|r| r.0 == "abandoned")
            .count(),
        1
    );
}

#[test]
fn a_user_task_is_shared_by_two_async_tasks() {
    let _serial = serial();
    let (trace, task_id) = record(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let id = rt.block_on(async {
            let request = UserTask::new("request");
            let id = request.id();
            let a = {
                let request = request.clone();
                tokio::spawn(async move {
                    request.log("worker", "from task a");
                    async { tokio::time::sleep(Duration::from_millis(2)).await }
                        .in_task_region(&request, "a_work")
                        .await;
                })
            };
            let b = {
                let request = request.clone();
                tokio::spawn(async move {
                    request.log("worker", "from task b");
                })
            };
            drop(request);
            a.await.unwrap();
            b.await.unwrap();
            id
        });
        rt.shutdown_timeout(Duration::from_secs(5));
        id
    });
    let logs: Vec<String> = of_kind(&trace, EventKind::Log)
        .iter()
        .filter(|e| e.arg(1) == task_id)
        .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
        .collect();
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert!(logs.contains(&"from task a".to_string()) && logs.contains(&"from task b".to_string()));
    assert_eq!(
        regions(&trace, EventKind::RegionEnd)
            .iter()
            .filter(|r| r.0 == "a_work" && r.1 == task_id)
            .count(),
        1
    );
    // The task ends once, when the last clone is gone.
    let ends = of_kind(&trace, EventKind::UserTaskEnd)
        .iter()
        .filter(|e| e.arg(0) == task_id)
        .count();
    assert_eq!(ends, 1);
}

#[test]
fn nothing_is_recorded_while_stopped() {
    let _serial = serial();
    let task = UserTask::new("inert");
    assert_eq!(task.id(), 0);
    let _region = task.region("r");
    task.log("x", "y");
    flight_recorder::mark("m");
    assert!(!flight_recorder::raw::is_running());
}

/// A `tracing` subscriber made of the registry, this crate's layer, and an fmt layer writing to
/// a buffer, filtered at INFO.
fn subscriber(
    buffer: Arc<Mutex<Vec<u8>>>,
    max_fields: usize,
) -> impl tracing::Subscriber + Send + Sync {
    let writer = move || BufferWriter(buffer.clone());
    tracing_subscriber::registry()
        .with(flight_recorder::tracing::FlightRecorderLayer::new().max_fields_len(max_fields))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false),
        )
        .with(tracing_subscriber::filter::LevelFilter::INFO)
}

struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn tracing_spans_and_events_are_recorded_with_fields() {
    let _serial = serial();
    let fmt_output = Arc::new(Mutex::new(Vec::new()));
    let (trace, ()) = record(|| {
        tracing::subscriber::with_default(subscriber(fmt_output.clone(), 64), || {
            let request = tracing::info_span!("request", method = "GET", path = "/users/42");
            {
                let _entered = request.enter();
                tracing::info!(status = 200, "served");
                tracing::debug!("filtered out by the level filter");
                let child = tracing::info_span!("db_query", table = "users");
                child.in_scope(|| {
                    tracing::warn!(long = "x".repeat(200), "a long field");
                });
                request.record("path", "/users/43");
            }
            let later = tracing::info_span!("retry");
            later.follows_from(&request);
            drop(later);
        });
    });
    let begins = of_kind(&trace, EventKind::UserTaskBegin);
    let task_named = |n: &str| {
        begins
            .iter()
            .find(|e| name(&trace, e.arg(2)) == n)
            .unwrap_or_else(|| panic!("no span {n}"))
    };
    let request = task_named("request").arg(0);
    let db = task_named("db_query");
    assert_eq!(db.arg(1), request, "the child span's task names its parent");
    let retry = task_named("retry").arg(0);

    let logs: Vec<(String, u64, String)> = of_kind(&trace, EventKind::Log)
        .iter()
        .map(|e| {
            (
                name(&trace, e.arg(0)).to_string(),
                e.arg(1),
                String::from_utf8_lossy(&e.payload).into_owned(),
            )
        })
        .collect();
    let find = |category: &str, task: u64| -> Vec<&str> {
        logs.iter()
            .filter(|l| l.0 == category && l.1 == task)
            .map(|l| l.2.as_str())
            .collect()
    };
    assert_eq!(
        find("span", request),
        ["method=GET path=/users/42", "path=/users/43"]
    );
    let target = module_path!();
    assert_eq!(find(target, request), ["INFO served status=200"]);
    let warn = find(target, db.arg(0));
    assert_eq!(warn.len(), 1);
    assert!(
        warn[0].starts_with("WARN a long field long=xxx"),
        "{}",
        warn[0]
    );
    assert!(warn[0].ends_with("…[truncated]"), "{}", warn[0]);
    assert!(warn[0].len() <= 64 + "…[truncated]".len());
    assert!(
        logs.iter().all(|l| !l.2.contains("filtered out")),
        "a filtered event was recorded"
    );
    assert_eq!(
        find("follows_from", retry),
        [format!("follows user task {request}").as_str()]
    );

    // Enter and exit are regions of the span's task; every span ends.
    let entered = regions(&trace, EventKind::RegionBegin);
    assert!(entered.iter().any(|r| r.0 == "request" && r.1 == request));
    assert!(entered
        .iter()
        .any(|r| r.0 == "db_query" && r.1 == db.arg(0)));
    assert_eq!(regions(&trace, EventKind::RegionEnd).len(), entered.len());
    for task in [request, db.arg(0), retry] {
        assert_eq!(
            of_kind(&trace, EventKind::UserTaskEnd)
                .iter()
                .filter(|e| e.arg(0) == task)
                .count(),
            1
        );
    }
    // The fmt layer beside it saw the same events.
    let text = String::from_utf8(fmt_output.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("served") && text.contains("status=200"),
        "{text}"
    );
    assert!(!text.contains("filtered out"));
}

#[test]
fn an_instrumented_future_records_a_region_per_poll() {
    use tracing::Instrument;

    let _serial = serial();
    let (trace, ()) = record(|| {
        tracing::subscriber::with_default(
            subscriber(Arc::new(Mutex::new(Vec::new())), 512),
            || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(
                    async {
                        tokio::task::yield_now().await;
                        tokio::task::yield_now().await;
                    }
                    .instrument(tracing::info_span!("polled")),
                );
            },
        );
    });
    let polled = regions(&trace, EventKind::RegionBegin)
        .into_iter()
        .filter(|r| r.0 == "polled")
        .count();
    // Three polls, and tracing enters the span once more to drop the future.
    assert_eq!(polled, 4, "one region per poll of the instrumented future");
}

#[test]
fn deep_nesting_and_exits_out_of_order_keep_spans_and_events_in_their_tasks() {
    let _serial = serial();
    // Deeper than the layer keeps per thread (32), then exits out of order.
    const DEPTH: usize = 40;
    let (trace, ()) = record(|| {
        tracing::subscriber::with_default(
            subscriber(Arc::new(Mutex::new(Vec::new())), 512),
            || {
                let spans: Vec<tracing::Span> = (0..DEPTH)
                    .map(|i| tracing::info_span!("level", depth = i))
                    .collect();
                let mut guards: Vec<_> = spans.iter().map(|s| s.enter()).collect();
                tracing::info!("innermost");
                // Drop every guard but the innermost two, outermost first, then those two.
                let inner = guards.split_off(DEPTH - 2);
                drop(guards);
                tracing::info!("after the outer exits");
                drop(inner);
                // A span entered again after all that is the innermost again.
                spans[3].in_scope(|| tracing::info!("again"));
            },
        );
    });
    let begins = of_kind(&trace, EventKind::UserTaskBegin);
    assert_eq!(begins.len(), DEPTH);
    // The spans' tasks in creation order (their fields name the depth).
    let tasks: Vec<u64> = begins.iter().map(|e| e.arg(0)).collect();
    let log_task = |message: &str| {
        of_kind(&trace, EventKind::Log)
            .iter()
            .find(|e| String::from_utf8_lossy(&e.payload).contains(message))
            .unwrap_or_else(|| panic!("no log {message}"))
            .arg(1)
    };
    assert_eq!(log_task("innermost"), tasks[DEPTH - 1]);
    // The outer spans exited out of order; the registry's current span is the innermost.
    assert_eq!(log_task("after the outer exits"), tasks[DEPTH - 1]);
    assert_eq!(log_task("again"), tasks[3]);
    // Every entry has its exit, in the span's task.
    let entered = regions(&trace, EventKind::RegionBegin);
    let exited = regions(&trace, EventKind::RegionEnd);
    assert_eq!(entered.len(), DEPTH + 1);
    assert_eq!(exited.len(), DEPTH + 1);
    for task in &tasks {
        let count =
            |regions: &[(String, u64, u64)]| regions.iter().filter(|r| r.1 == *task).count();
        assert_eq!(count(&entered), count(&exited), "task {task}");
    }
}
