//! Diagnosis of traces recorded from real tokio programs: each program has one known problem,
//! and its trace must yield that finding first, at the right spawn location; a healthy service
//! must yield nothing above info; a request waiting on a semaphore held by a slow task must have
//! its wait put on that task. The tests share the process's recorder, so they run one at a time.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::serial;
use flight_recorder::{FlightRecorder, FlightRecorderConfig, UserTask};
use flight_recorder_analysis::diagnose::{DiagnoseOptions, FindingKind, Severity};
use flight_recorder_analysis::{Summary, SummaryOptions};
use flight_recorder_format::TraceReader;
use tokio::runtime::{Builder, Runtime};

/// Records `program` on an instrumented multi-thread runtime of `workers` workers (the builder
/// adjusted by `configure`) and returns the summary of the snapshot taken at its end, with the
/// default thresholds but a blocking poll's (see `record_with`).
fn record(
    workers: usize,
    configure: impl FnOnce(&mut Builder),
    program: impl FnOnce(&Runtime),
) -> Summary {
    record_with(workers, configure, program, tolerant)
}

/// As `record`, with every threshold at its default.
fn record_defaults(
    workers: usize,
    configure: impl FnOnce(&mut Builder),
    program: impl FnOnce(&Runtime),
) -> Summary {
    record_with(workers, configure, program, |_| {})
}

/// As `record`, with the thresholds changed by `rules`. The programs whose subject is not a
/// blocking poll raise its threshold to 100 ms: on a loaded machine the scheduler can stretch
/// a poll of microseconds to tens of milliseconds, which is a blocking poll as far as the
/// trace can tell.
fn record_with(
    workers: usize,
    configure: impl FnOnce(&mut Builder),
    program: impl FnOnce(&Runtime),
    rules: impl FnOnce(&mut DiagnoseOptions),
) -> Summary {
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(60),
        max_bytes: 256 << 20,
        ..Default::default()
    });
    fr.start().expect("start the recorder");
    let mut builder = Builder::new_multi_thread();
    flight_recorder::tokio::instrument(&mut builder);
    builder.worker_threads(workers).enable_all();
    configure(&mut builder);
    let runtime = builder.build().expect("runtime");
    // The workers park once before the program starts: a thread is known as a worker from its
    // first park (tokio's hooks do not say which threads are workers), and a worker kept busy
    // from its start would be taken for a blocking-pool thread.
    std::thread::sleep(Duration::from_millis(50));
    program(&runtime);
    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).expect("snapshot");
    runtime.shutdown_timeout(Duration::from_secs(1));
    fr.stop();
    let mut options = SummaryOptions::default();
    rules(&mut options.diagnose);
    Summary::from_reader_with(
        TraceReader::new(&bytes[..]).expect("header"),
        options,
        &mut |_| {},
    )
    .expect("complete trace")
}

/// Thresholds for programs whose subject is not a blocking poll (see `record_with`).
fn tolerant(rules: &mut DiagnoseOptions) {
    rules.blocking_poll_ns = 100_000_000;
}

/// `file:line:column` of the caller, as spawn locations are shown.
#[track_caller]
fn here() -> String {
    let l = std::panic::Location::caller();
    format!(
        "{}:{}:{}",
        l.file().rsplit('/').next().unwrap_or(""),
        l.line(),
        l.column()
    )
}

/// `tokio::spawn`, noting the caller's location (the task's spawn location) in `at`.
#[track_caller]
fn spawn_at<F>(at: &mut String, future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    *at = here();
    tokio::spawn(future)
}

/// The instrumented spawn, noting the caller's location in `at`.
#[track_caller]
fn instrumented_at<F>(at: &mut String, future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    *at = here();
    flight_recorder::tokio::spawn(future)
}

/// The instrumented `spawn_blocking`, noting the caller's location in `at`.
#[track_caller]
fn blocking_at<F, R>(at: &mut String, f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    *at = here();
    flight_recorder::tokio::spawn_blocking(f)
}

/// Runs `program` until its trace's top finding is of `kind`, three times at most, and returns
/// the last summary. For the programs whose problem comes from how tokio schedules their tasks
/// (an imbalance, a burst of spawns): on a machine busy with other processes a worker can lose
/// the CPU at any moment, and tokio may then balance the work that the program keeps on one
/// worker when it runs alone. The assertions then judge the last run.
fn until_top(kind: FindingKind, mut program: impl FnMut() -> Summary) -> Summary {
    let mut summary = program();
    for _ in 1..3 {
        if summary.diagnosis.top().is_some_and(|f| f.kind == kind) {
            break;
        }
        summary = program();
    }
    summary
}

/// The top finding must be of `kind` and name `location` (a `file:line:` prefix) among its
/// locations.
fn assert_top(summary: &Summary, kind: FindingKind, location: &str) {
    let d = &summary.diagnosis;
    let text = summary.diagnosis.render_text();
    let top = d
        .top()
        .unwrap_or_else(|| panic!("no finding; expected {kind}\n{text}"));
    assert_eq!(top.kind, kind, "top finding\n{text}");
    assert!(
        top.severity >= Severity::Warning,
        "{kind} is only {}\n{text}",
        top.severity
    );
    assert!(
        top.evidence
            .locations
            .iter()
            .any(|l| l.ends_with(location) || l.contains(location)),
        "{kind} does not name {location}: {:?}\n{text}",
        top.evidence.locations
    );
}

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::black_box(0u64);
    }
}

#[test]
fn a_blocking_poll_is_the_top_finding_with_its_location() {
    let _serial = serial();
    let mut at = String::new();
    let summary = record_defaults(
        2,
        |_| {},
        |rt| {
            rt.block_on(async {
                for _ in 0..20 {
                    tokio::spawn(async { tokio::time::sleep(Duration::from_millis(2)).await })
                        .await
                        .unwrap();
                }
                // The blocking poll ends pending (the yield), so its end is recorded before the
                // task completes: a snapshot taken as soon as the task's output arrives could
                // otherwise catch that poll still running (tokio runs its after-poll hook once
                // the output is handed over), and a poll still running at the end of a snapshot
                // is cut at the snapshot's last event.
                let blocker = spawn_at(&mut at, async {
                    std::thread::sleep(Duration::from_millis(300));
                    tokio::task::yield_now().await;
                });
                blocker.await.unwrap();
            })
        },
    );
    assert_top(&summary, FindingKind::BlockingPoll, &at);
    let top = summary.diagnosis.top().unwrap();
    assert!(top.evidence.value("longest_ns").unwrap() >= 300_000_000);
    // The summary and the report open with it.
    assert!(summary
        .render_text()
        .starts_with("Findings (1):\n1. [CRITICAL] blocking_poll"));
    let html = flight_recorder_analysis::report::render_html(&summary);
    let findings = html.find("id=\"findings\"").expect("a findings section");
    assert!(findings < html.find("id=\"overview\"").unwrap());
    assert!(html.contains("data-kind=\"blocking_poll\""));
}

#[test]
fn tasks_waiting_behind_busy_workers_give_a_scheduling_delay() {
    let _serial = serial();
    let mut hog_at = String::new();
    let mut victim_at = String::new();
    let summary = until_top(FindingKind::SchedulingDelay, || {
        record(
            1,
            |_| {},
            |rt| {
                rt.block_on(async {
                    let stop = Instant::now() + Duration::from_millis(800);
                    let mut hogs = Vec::new();
                    for _ in 0..40 {
                        hogs.push(spawn_at(&mut hog_at, async move {
                            while Instant::now() < stop {
                                spin(Duration::from_millis(2));
                                tokio::task::yield_now().await;
                            }
                        }));
                    }
                    let victim = instrumented_at(&mut victim_at, async move {
                        while Instant::now() < stop {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    });
                    for h in hogs {
                        h.await.unwrap();
                    }
                    victim.await.unwrap();
                })
            },
        )
    });
    let d = &summary.diagnosis;
    let text = d.render_text();
    let top = d.top().expect("a finding");
    assert_eq!(top.kind, FindingKind::SchedulingDelay, "{text}");
    assert!(top.severity >= Severity::Warning, "{text}");
    let locations = &top.evidence.locations;
    assert!(
        locations.iter().any(|l| l.contains(&hog_at)),
        "holders name the hogs\n{text}"
    );
    assert!(
        top.why.contains(&hog_at),
        "the explanation names who held the workers\n{text}"
    );
    let _ = victim_at;
}

#[test]
fn one_worker_busy_while_the_other_parks_is_an_imbalance() {
    let _serial = serial();
    let mut at = String::new();
    let summary = until_top(FindingKind::Imbalance, || {
        record(
            2,
            |_| {},
            |rt| {
                rt.block_on(async {
                    // A task that spawns a short job and keeps computing for 8 ms before it yields: each
                    // job waits in its worker's LIFO slot, which the other worker cannot steal from, so
                    // one worker stays busy with work queued while the other parks.
                    spawn_at(&mut at, async {
                        let stop = Instant::now() + Duration::from_millis(1500);
                        while Instant::now() < stop {
                            tokio::spawn(async { std::hint::black_box(1u64) });
                            spin(Duration::from_millis(8));
                            tokio::task::yield_now().await;
                        }
                    })
                    .await
                    .unwrap();
                })
            },
        )
    });
    assert_top(&summary, FindingKind::Imbalance, &at);
}

#[test]
fn tasks_that_never_end_are_a_leak() {
    let _serial = serial();
    let mut at = String::new();
    let mut senders = Vec::new();
    let summary = record(
        2,
        |_| {},
        |rt| {
            rt.block_on(async {
                for _ in 0..300 {
                    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                    senders.push(tx);
                    spawn_at(&mut at, async move {
                        let _ = rx.await;
                    });
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            })
        },
    );
    drop(senders);
    assert_top(&summary, FindingKind::TaskLeak, &at);
    let top = summary.diagnosis.top().unwrap();
    assert_eq!(top.evidence.value("alive"), Some(300));
}

/// A future that returns pending once without keeping its waker: nothing can wake it.
struct ForgetsItsWaker;

impl Future for ForgetsItsWaker {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

#[test]
fn a_future_that_drops_its_waker_is_a_lost_wake() {
    let _serial = serial();
    let mut at = String::new();
    let summary = record(
        2,
        |_| {},
        |rt| {
            rt.block_on(async {
                let stuck = instrumented_at(&mut at, ForgetsItsWaker);
                // A healthy neighbour that waits on a timer: not a lost wake.
                flight_recorder::tokio::spawn(async {
                    tokio::time::sleep(Duration::from_millis(1200)).await;
                })
                .await
                .unwrap();
                assert!(!stuck.is_finished());
            })
        },
    );
    assert_top(&summary, FindingKind::LostWake, &at);
    let d = &summary.diagnosis;
    assert_eq!(
        d.of_kind(FindingKind::LostWake).count(),
        1,
        "{}",
        d.render_text()
    );
    assert_eq!(d.top().unwrap().severity, Severity::Critical);
}

#[test]
fn blocking_work_queued_behind_a_full_pool_is_found() {
    let _serial = serial();
    let mut at = String::new();
    let summary = record(
        2,
        |b| {
            b.max_blocking_threads(1);
        },
        |rt| {
            rt.block_on(async {
                let mut handles = Vec::new();
                for _ in 0..8 {
                    handles.push(blocking_at(&mut at, || {
                        std::thread::sleep(Duration::from_millis(40))
                    }));
                }
                for h in handles {
                    h.await.unwrap();
                }
            })
        },
    );
    assert_top(&summary, FindingKind::BlockingPoolSaturated, &at);
    let top = summary.diagnosis.top().unwrap();
    assert!(
        top.evidence.value("longest_ns").unwrap() >= 200_000_000,
        "{}",
        summary.diagnosis.render_text()
    );
    assert!(summary
        .diagnosis
        .of_kind(FindingKind::BlockingPoll)
        .next()
        .is_none());
}

#[test]
fn a_burst_of_spawns_that_delays_others_is_a_spawn_storm() {
    let _serial = serial();
    let mut at = String::new();
    let summary = until_top(FindingKind::SpawnStorm, || {
        record(
            2,
            |_| {},
            |rt| {
                let handle = rt.handle().clone();
                // Other work arrives from outside the runtime every 2 ms (a listener thread handing
                // over requests): it waits in the runtime's shared queue.
                let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let feeder = {
                    let stop = stop.clone();
                    std::thread::spawn(move || {
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            drop(handle.spawn(async { std::hint::black_box(1u64) }));
                            std::thread::sleep(Duration::from_millis(2));
                        }
                    })
                };
                rt.block_on(async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let mut set = Vec::with_capacity(5_000);
                    for _ in 0..5_000 {
                        set.push(spawn_at(&mut at, async {
                            spin(Duration::from_micros(300))
                        }));
                    }
                    for h in set {
                        h.await.unwrap();
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                });
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                feeder.join().unwrap();
            },
        )
    });
    assert_top(&summary, FindingKind::SpawnStorm, &at);
    let top = summary.diagnosis.top().unwrap();
    assert!(top.evidence.value("spawns").unwrap() >= 1_000);
}

#[test]
fn a_request_waiting_on_a_semaphore_is_blamed_on_the_holder() {
    let _serial = serial();
    let mut holder_at = String::new();
    let mut holder_id = 0u64;
    let summary = record(
        2,
        |_| {},
        |rt| {
            rt.block_on(async {
                let semaphore = Arc::new(tokio::sync::Semaphore::new(1));
                // Fast requests first: the slow one is an outlier among them.
                for _ in 0..30 {
                    flight_recorder::tokio::spawn(async {
                        let _request = UserTask::new("request");
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    })
                    .await
                    .unwrap();
                }
                let (id_tx, id_rx) = tokio::sync::oneshot::channel();
                let (held_tx, held_rx) = tokio::sync::oneshot::channel();
                let held = semaphore.clone();
                let holder = instrumented_at(&mut holder_at, async move {
                    let _ = id_tx.send(tokio::task::id());
                    let _permit = held.acquire().await.unwrap();
                    let _ = held_tx.send(());
                    tokio::time::sleep(Duration::from_millis(400)).await;
                });
                held_rx.await.unwrap();
                let waiting = semaphore.clone();
                flight_recorder::tokio::spawn(async move {
                    let _request = UserTask::new("request");
                    let _permit = waiting.acquire().await.unwrap();
                })
                .await
                .unwrap();
                holder.await.unwrap();
                holder_id = id_rx.await.unwrap().to_string().parse().unwrap();
            })
        },
    );
    let d = &summary.diagnosis;
    let text = d.render_text();
    let top = d.top().expect("a finding");
    assert_eq!(top.kind, FindingKind::SlowRequest, "{text}");
    let slow = &d.waits[0];
    assert_eq!(slow.name, "request", "{text}");
    assert!(slow.duration_ns >= 350_000_000, "{text}");
    let blamed = slow
        .task_waits
        .first()
        .unwrap_or_else(|| panic!("no task waited on\n{text}"));
    assert_eq!(blamed.task, holder_id, "{text}");
    assert!(blamed.location.contains(&holder_at), "{text}");
    assert!(
        blamed.ns * 10 >= slow.duration_ns * 8,
        "the wait is put on the holder\n{text}"
    );
    assert!(top.summary.contains(&format!("task {holder_id}")), "{text}");
    // Behind the holder: what had woken it for the poll that released the permit (its timer,
    // fired on whichever thread drove tokio's timers then).
    assert!(
        blamed
            .chain
            .first()
            .is_some_and(|l| l.starts_with(&format!("task {holder_id} ("))
                && l.contains("had been woken by")),
        "{text}"
    );
}

#[test]
fn a_healthy_service_yields_nothing_above_info() {
    let _serial = serial();
    let summary = record_defaults(
        2,
        |_| {},
        |rt| {
            rt.block_on(async {
                // Idle keep-alive connections: 16 clients connected to a server that waits for
                // requests that never come.
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let server = tokio::spawn(async move {
                    let mut conns = Vec::new();
                    for _ in 0..16 {
                        let (mut socket, _) = listener.accept().await.unwrap();
                        conns.push(tokio::spawn(async move {
                            use tokio::io::AsyncReadExt;
                            let mut buf = [0u8; 64];
                            let _ = socket.read(&mut buf).await;
                        }));
                    }
                    conns
                });
                let mut clients = Vec::new();
                for _ in 0..16 {
                    clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
                }
                let conns = server.await.unwrap();
                // Timers and requests, as the demo's service without its blocking call.
                let stop = Instant::now() + Duration::from_millis(1500);
                let ticker = tokio::spawn(async move {
                    let mut interval = tokio::time::interval(Duration::from_millis(10));
                    while Instant::now() < stop {
                        interval.tick().await;
                        let _region = flight_recorder::region("cache_refresh");
                        std::hint::black_box((0..2_000u64).sum::<u64>());
                    }
                });
                let mut id = 0u64;
                while Instant::now() < stop {
                    id += 1;
                    flight_recorder::tokio::spawn(async move {
                        let request = UserTask::new("request");
                        let _ = &request;
                        tokio::time::sleep(Duration::from_micros(300 + id % 700)).await;
                    });
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
                ticker.await.unwrap();
                drop(clients);
                for c in conns {
                    let _ = c.await;
                }
            })
        },
    );
    let d = &summary.diagnosis;
    assert!(
        d.findings.iter().all(|f| f.severity == Severity::Info),
        "a healthy service has findings:\n{}",
        d.render_text()
    );
    assert!(summary.tasks.polls > 1000);
}
