//! Rule triggers on real runtimes: a scheduling-delay burst writes exactly one `rule` dump naming
//! the rule, a healthy runtime none; growing alive tasks and a full blocking pool fire their
//! rules; a condition that persists or comes back is held by the re-arm and the rate limit; bad
//! rule settings are refused with the value named.

mod capture_common;
mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use capture_common::{described, detail, dumps, read, settings, start, wait_until};
use common::serial;
use flight_recorder::capture::{
    self, config_from_vars, AliveTasksRule, CaptureSettings, DumpOutcome, RuleSettings,
    SchedDelayRule,
};
use flight_recorder::ErrorKind;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    flight_recorder::tokio::instrument(&mut builder);
    builder
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

fn sched_delay(threshold: u64, sustained: u64) -> Option<SchedDelayRule> {
    Some(SchedDelayRule {
        threshold: ms(threshold),
        sustained: ms(sustained),
    })
}

/// Blocks every worker of `runtime` (`workers` of them) with `std::thread::sleep` for `time`,
/// and returns once all of them are blocked (or fails the test: the tasks did not land on
/// different workers). The caller joins the returned handles' tasks by waiting `time`.
fn block_workers(runtime: &tokio::runtime::Runtime, workers: usize, time: Duration) {
    let started = Arc::new(AtomicUsize::new(0));
    for _ in 0..workers {
        let started = Arc::clone(&started);
        runtime.spawn(async move {
            started.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(time);
        });
    }
    // Each task blocks its worker as soon as it starts, so all of them started means all the
    // workers are blocked at once.
    assert!(
        wait_until(time / 3, || started.load(Ordering::SeqCst) == workers),
        "the blocking tasks did not start on {workers} workers at once"
    );
}

/// The single file of `dir`, waiting up to `timeout` for it.
fn one_dump(dir: &std::path::Path, timeout: Duration) -> PathBuf {
    assert!(
        wait_until(timeout, || !dumps(dir).is_empty()),
        "no dump written"
    );
    let files = dumps(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[test]
fn a_scheduling_delay_burst_writes_one_rule_dump() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(CaptureSettings {
        rules: RuleSettings {
            sched_delay: sched_delay(50, 500),
            ..RuleSettings::default()
        },
        ..settings(dir.path())
    });
    let runtime = runtime(2);
    let watcher = capture::watch_runtime(runtime.handle(), "api");
    // Healthy first: probes run at once.
    std::thread::sleep(ms(400));
    assert!(dumps(dir.path()).is_empty(), "a healthy runtime fired");

    let burst = Instant::now();
    block_workers(&runtime, 2, ms(1500));
    let path = one_dump(dir.path(), Duration::from_secs(3));
    let fired_after = burst.elapsed();
    // Late since 50 ms into the burst, held 500 ms, seen within a probe interval or two.
    assert!(
        fired_after >= ms(500) && fired_after < ms(1400),
        "fired {fired_after:?} into the burst: not while the workers were blocked"
    );
    // The burst ends, probes run on time again: still one file (no rate limit in these
    // settings: the rule fired once for one condition).
    std::thread::sleep(ms(1500));
    assert_eq!(dumps(dir.path()), vec![path.clone()]);

    assert!(
        path.to_str().unwrap().ends_with(".sched_delay.out"),
        "{path:?}"
    );
    let trace = read(&path);
    let header = trace.reader.header();
    assert!(
        header.reason.starts_with("rule sched_delay:") && header.reason.contains("api"),
        "{}",
        header.reason
    );
    assert_eq!(header.tag, "sched_delay");
    for (name, value) in [
        ("trigger", "rule"),
        ("rule", "sched_delay"),
        ("runtime", "api"),
        ("threshold", "50ms"),
        ("for", "500ms"),
        ("probe_interval", "100ms"),
    ] {
        assert_eq!(
            detail(&trace, name),
            Some(value),
            "{name}: {:?}",
            header.details
        );
    }
    let observed: f64 = detail(&trace, "observed_max_ms").unwrap().parse().unwrap();
    assert!(
        (500.0..1500.0).contains(&observed),
        "observed_max_ms {observed}"
    );
    assert!(detail(&trace, "observed_max").is_some());
    // The triggering event is in the trace, from the watcher's thread.
    assert!(
        described(&trace)
            .iter()
            .any(|e| e.starts_with("flight-recorder-rules: log flight_recorder.trigger rule:")),
        "{:?}",
        described(&trace)
    );
    // The probe's view, a counter each tick: it climbs past the threshold during the stall.
    let delays: Vec<u64> = trace
        .events
        .iter()
        .filter(|e| e.kind() == Some(flight_recorder::raw::EventKind::Counter))
        .filter(|e| trace.reader.string(e.arg(0)) == Some("rules.api.sched_delay_us"))
        .map(|e| e.arg(1))
        .collect();
    assert!(delays.len() >= 5, "{delays:?}");
    assert!(delays.iter().any(|&us| us >= 500_000), "{delays:?}");
    assert!(delays.iter().any(|&us| us < 50_000), "{delays:?}");
    // With the runtime hooks, the probes are tasks spawned in the rules module.
    if cfg!(tokio_unstable) {
        let probe_spawns = trace
            .events
            .iter()
            .filter(|e| e.kind() == Some(flight_recorder::raw::EventKind::TaskSpawn))
            .filter(|e| {
                trace
                    .reader
                    .location(e.arg(1))
                    .is_some_and(|l| l.file.ends_with("src/capture/rules.rs"))
            })
            .count();
        assert!(
            probe_spawns >= 3,
            "{probe_spawns} probe spawns in the trace"
        );
    }
    assert_eq!(capture::status().files_written, 1);
    drop(watcher);
}

#[test]
fn a_healthy_runtime_writes_no_rule_dump() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(CaptureSettings {
        rules: RuleSettings {
            sched_delay: sched_delay(50, 500),
            alive_tasks: Some(AliveTasksRule {
                growth: 1000,
                over: Duration::from_secs(2),
            }),
            blocking_queue: Some(ms(500)),
            ..RuleSettings::default()
        },
        ..settings(dir.path())
    });
    let runtime = runtime(2);
    let _watcher = capture::watch_runtime(runtime.handle(), "healthy");
    // Requests that come and go, short blocking work, for 3 s.
    runtime.block_on(async {
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let requests: Vec<_> = (0..50)
                .map(|_| tokio::spawn(tokio::time::sleep(ms(2))))
                .collect();
            tokio::task::spawn_blocking(|| std::thread::sleep(ms(1)))
                .await
                .unwrap();
            for r in requests {
                r.await.unwrap();
            }
            tokio::time::sleep(ms(5)).await;
        }
    });
    assert!(dumps(dir.path()).is_empty(), "{:?}", dumps(dir.path()));
    assert_eq!(capture::status().suppressed_triggers, 0);
}

#[test]
fn growing_alive_tasks_fire_the_rule_once() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(CaptureSettings {
        rules: RuleSettings {
            alive_tasks: Some(AliveTasksRule {
                growth: 200,
                over: Duration::from_secs(1),
            }),
            probe_interval: ms(50),
            ..RuleSettings::default()
        },
        ..settings(dir.path())
    });
    let runtime = runtime(2);
    let _watcher = capture::watch_runtime(runtime.handle(), "leaky");
    // A leak: 400 tasks a second that never end, for 3 s.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for _ in 0..20 {
            runtime.spawn(std::future::pending::<()>());
        }
        std::thread::sleep(ms(50));
    }
    // The growth went on all along: one firing.
    let path = one_dump(dir.path(), Duration::from_secs(1));
    let trace = read(&path);
    assert_eq!(detail(&trace, "trigger"), Some("rule"));
    assert_eq!(detail(&trace, "rule"), Some("alive_tasks"));
    assert_eq!(detail(&trace, "runtime"), Some("leaky"));
    assert_eq!(detail(&trace, "growth"), Some("+200"));
    assert_eq!(detail(&trace, "over"), Some("1s"));
    let from: u64 = detail(&trace, "alive_from").unwrap().parse().unwrap();
    let to: u64 = detail(&trace, "alive_to").unwrap().parse().unwrap();
    assert!(to >= from + 200, "{from} -> {to}");
    assert_eq!(
        detail(&trace, "observed_growth"),
        Some(format!("+{}", to - from).as_str())
    );
    assert!(path.to_str().unwrap().ends_with(".alive_tasks.out"));
    drop(runtime);
}

/// Three jobs for a pool of one blocking thread: two (three until the thread starts) wait in
/// the queue.
fn saturate_blocking_pool(time: Duration) -> tokio::runtime::Runtime {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    for _ in 0..3 {
        runtime.spawn_blocking(move || std::thread::sleep(time));
    }
    runtime
}

#[cfg(tokio_unstable)]
#[test]
fn a_full_blocking_pool_fires_the_rule() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(CaptureSettings {
        rules: RuleSettings {
            blocking_queue: Some(ms(300)),
            probe_interval: ms(50),
            ..RuleSettings::default()
        },
        ..settings(dir.path())
    });
    let started = Instant::now();
    let runtime = saturate_blocking_pool(ms(800));
    let _watcher = capture::watch_runtime(runtime.handle(), "pool");
    let path = one_dump(dir.path(), Duration::from_secs(3));
    assert!(started.elapsed() >= ms(300));
    let trace = read(&path);
    assert_eq!(detail(&trace, "rule"), Some("blocking_queue"));
    assert_eq!(detail(&trace, "runtime"), Some("pool"));
    assert_eq!(detail(&trace, "for"), Some("300ms"));
    // tokio counts the pool's threads less the workers: racy while the runtime starts.
    let threads: u64 = detail(&trace, "blocking_threads").unwrap().parse().unwrap();
    assert!((0..=2).contains(&threads), "{threads}");
    let depth: u64 = detail(&trace, "observed_max").unwrap().parse().unwrap();
    // Three jobs, and the worker's own start while the runtime starts (tokio starts its workers
    // through the blocking pool).
    assert!((1..=4).contains(&depth), "{depth}");
    // The queue stays non-empty until the second job starts: no second dump.
    std::thread::sleep(ms(1500));
    assert_eq!(dumps(dir.path()).len(), 1);
}

#[cfg(not(tokio_unstable))]
#[test]
fn without_tokio_unstable_the_blocking_queue_rule_does_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let settings = CaptureSettings {
        rules: RuleSettings {
            blocking_queue: Some(ms(300)),
            probe_interval: ms(50),
            ..RuleSettings::default()
        },
        ..settings(dir.path())
    };
    assert!(
        settings.describe().contains("needs --cfg tokio_unstable"),
        "{}",
        settings.describe()
    );
    let _running = start(settings);
    let runtime = saturate_blocking_pool(ms(800));
    let _watcher = capture::watch_runtime(runtime.handle(), "pool");
    std::thread::sleep(ms(1200));
    assert!(dumps(dir.path()).is_empty());
    assert_eq!(capture::status().errors, 0, "a no-op rule is not an error");
}

#[test]
fn a_persisting_or_returning_condition_is_held_by_the_rearm_and_the_rate_limit() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // No rule at start: the watcher picks the rule up when the settings change.
    let _running = start(CaptureSettings {
        min_dump_interval: Duration::from_secs(30),
        ..settings(dir.path())
    });
    let runtime = runtime(2);
    let _watcher = capture::watch_runtime(runtime.handle(), "api");
    capture::update_settings(|s| {
        s.rules.sched_delay = sched_delay(50, 300);
        s.rules.probe_interval = ms(50);
    })
    .unwrap();

    // A long stall: one firing however long it lasts.
    block_workers(&runtime, 2, ms(1500));
    let first = one_dump(dir.path(), Duration::from_secs(2));
    std::thread::sleep(ms(1500));
    assert_eq!(dumps(dir.path()), vec![first.clone()]);
    assert_eq!(
        capture::status().suppressed_triggers,
        0,
        "re-armed while late"
    );

    // Healthy for a while (the rule re-arms), then a second stall: it fires again, within the
    // minimum interval, so the rate limit refuses the dump and counts it.
    std::thread::sleep(ms(300));
    block_workers(&runtime, 2, ms(800));
    assert!(
        wait_until(Duration::from_secs(2), || capture::status()
            .suppressed_triggers
            == 1),
        "the second stall did not fire"
    );
    std::thread::sleep(ms(1000));
    assert_eq!(dumps(dir.path()), vec![first]);
    assert_eq!(capture::status().suppressed_triggers, 1);

    // The next file says a rule trigger was suppressed.
    capture::update_settings(|s| s.min_dump_interval = Duration::ZERO).unwrap();
    let DumpOutcome::Written(next) = capture::dump_now("after the stalls", "after").unwrap() else {
        panic!("no file written");
    };
    let trace = read(&next);
    assert_eq!(detail(&trace, "suppressed.rule"), Some("1"));
}

#[test]
fn a_runtime_shut_down_stops_its_watcher_without_firing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(CaptureSettings {
        rules: RuleSettings {
            sched_delay: sched_delay(20, 100),
            probe_interval: ms(20),
            ..RuleSettings::default()
        },
        ..settings(dir.path())
    });
    let runtime = runtime(1);
    let watcher = capture::watch_runtime(runtime.handle(), "short-lived");
    std::thread::sleep(ms(200));
    drop(runtime);
    // Probes spawned on a runtime that is gone never run, and are not taken for delays.
    assert!(
        wait_until(Duration::from_secs(2), || format!("{watcher:?}")
            .contains("running: false")),
        "{watcher:?}"
    );
    std::thread::sleep(ms(300));
    assert!(dumps(dir.path()).is_empty(), "{:?}", dumps(dir.path()));
    drop(watcher);
}

#[test]
fn bad_rule_settings_are_refused_naming_the_value() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let bad = CaptureSettings {
        rules: RuleSettings {
            alive_tasks: Some(AliveTasksRule {
                growth: 0,
                over: Duration::from_secs(10),
            }),
            ..RuleSettings::default()
        },
        ..settings(dir.path())
    };
    let error = capture::start(bad).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidSettings);
    assert!(error.to_string().contains("rules.alive_tasks"), "{error}");
    assert!(!capture::is_running());

    let _running = start(settings(dir.path()));
    let error = capture::update_settings(|s| {
        s.rules.sched_delay = sched_delay(0, 100);
    })
    .unwrap_err();
    assert!(error.to_string().contains("rules.sched_delay"), "{error}");
    assert_eq!(capture::settings().unwrap().rules, RuleSettings::default());
    let error =
        capture::update_settings(|s| s.rules.probe_interval = Duration::from_secs(60)).unwrap_err();
    assert!(error.to_string().contains("probe_interval"), "{error}");

    // From the environment: the variable, the value given and a valid one.
    let config = config_from_vars(|name| match name {
        "FLIGHT_RECORDER_RULE_SCHED_DELAY" => Some("50ms-1s".into()),
        "FLIGHT_RECORDER_RULE_ALIVE_TASKS" => Some("+1000/10s".into()),
        "FLIGHT_RECORDER_RULE_BLOCKING_QUEUE" => Some("soon".into()),
        _ => None,
    });
    assert_eq!(config.problems.len(), 2, "{:?}", config.problems);
    assert!(
        config.problems[0].starts_with("FLIGHT_RECORDER_RULE_SCHED_DELAY: \"50ms-1s\"")
            && config.problems[0].contains("use e.g. 50ms/1s"),
        "{:?}",
        config.problems
    );
    assert!(
        config.problems[1].starts_with("FLIGHT_RECORDER_RULE_BLOCKING_QUEUE: \"soon\""),
        "{:?}",
        config.problems
    );
    assert_eq!(config.settings.rules.sched_delay, None);
    assert_eq!(
        config.settings.rules.alive_tasks.map(|r| r.growth),
        Some(1000)
    );
    let names: Vec<&str> = capture::ENV_VARS.iter().map(|(name, _)| *name).collect();
    for name in [
        "FLIGHT_RECORDER_RULE_SCHED_DELAY",
        "FLIGHT_RECORDER_RULE_ALIVE_TASKS",
        "FLIGHT_RECORDER_RULE_BLOCKING_QUEUE",
        "FLIGHT_RECORDER_RULE_PROBE_INTERVAL",
    ] {
        assert!(names.contains(&name), "{name} not in ENV_VARS");
    }
}
