//! Triggers: each writes exactly one file holding the triggering event; the rate limit folds a
//! storm into one file; a panic and a signal write a snapshot.

mod capture_common;
mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use capture_common::{described, detail, dumps, on_thread, read, settings, start, wait_until};
use common::serial;
use flight_recorder::capture::{self, CaptureSettings, DumpOutcome};
use flight_recorder::raw;

#[test]
fn dump_now_writes_one_file_holding_the_trigger() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(CaptureSettings {
        program_version: "svc 1.2.3".into(),
        ..settings(dir.path())
    });
    let (tx, rx) = std::sync::mpsc::channel();
    on_thread("request-handler", move || {
        flight_recorder::log("http", "GET /slow took 2.5 s");
        tx.send(capture::dump_now("request past its deadline", "deadline"))
            .unwrap();
    });
    let DumpOutcome::Written(path) = rx.recv().unwrap().unwrap() else {
        panic!("no file written");
    };
    assert_eq!(dumps(dir.path()), vec![path.clone()]);
    assert!(path
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .ends_with(".deadline.out"));
    let trace = read(&path);
    let header = trace.reader.header();
    assert_eq!(header.reason, "request past its deadline");
    assert_eq!(header.tag, "deadline");
    assert_eq!(header.program_version, "svc 1.2.3");
    assert_eq!(header.suppressed_triggers, 0);
    assert_eq!(detail(&trace, "trigger"), Some("application"));
    let events = described(&trace);
    for expected in [
        "request-handler: log http GET /slow took 2.5 s",
        "request-handler: log flight_recorder.trigger application: request past its deadline",
    ] {
        assert!(
            events.contains(&expected.to_string()),
            "{expected:?} not in {events:?}"
        );
    }
    let status = capture::status();
    assert_eq!(status.files_written, 1);
    assert_eq!(status.last_file, Some(path));
}

#[test]
fn fifty_concurrent_triggers_write_one_file() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(CaptureSettings {
        min_dump_interval: Duration::from_secs(10),
        ..settings(dir.path())
    });
    let barrier = Arc::new(Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                capture::dump_now("storm of slow requests", "storm").unwrap()
            })
        })
        .collect();
    let outcomes: Vec<DumpOutcome> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let written = outcomes
        .iter()
        .filter(|o| matches!(o, DumpOutcome::Written(_)))
        .count();
    assert_eq!(written, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(
        o,
        DumpOutcome::Written(_) | DumpOutcome::Coalesced | DumpOutcome::RateLimited { .. }
    )));
    assert_eq!(dumps(dir.path()).len(), 1);
    assert_eq!(capture::status().suppressed_triggers, 49);
    // Still limited a moment later.
    assert!(matches!(
        capture::dump_now("again", "again").unwrap(),
        DumpOutcome::RateLimited { retry_after } if retry_after > Duration::from_secs(5)
    ));

    // The next file reports what was suppressed, then the count starts over.
    capture::update_settings(|s| s.min_dump_interval = Duration::ZERO).unwrap();
    let DumpOutcome::Written(next) = capture::dump_now("after the storm", "after").unwrap() else {
        panic!("no file written");
    };
    let trace = read(&next);
    // Requests folded into the storm's file before its header was written are reported in that
    // file; the others in the next one: 49 from the storm and the one just refused, in all.
    let storm = outcomes
        .iter()
        .find_map(|o| match o {
            DumpOutcome::Written(path) => Some(read(path)),
            _ => None,
        })
        .unwrap();
    let reported = |t: &common::ReadTrace| {
        let count = t.reader.header().suppressed_triggers;
        let by_kind: u64 = detail(t, "suppressed.application").map_or(0, |n| n.parse().unwrap());
        assert_eq!(count, by_kind);
        count
    };
    assert_eq!(reported(&storm) + reported(&trace), 50);
    assert!(reported(&trace) >= 1);
    // The suppressed requests are in the trace too, each a log event.
    let storm_logs = described(&trace)
        .iter()
        .filter(|e| e.ends_with("log flight_recorder.trigger application: storm of slow requests"))
        .count();
    assert_eq!(storm_logs, 50);
    let DumpOutcome::Written(last) = capture::dump_now("calm", "calm").unwrap() else {
        panic!("no file written");
    };
    assert_eq!(read(&last).reader.header().suppressed_triggers, 0);
}

#[test]
fn a_slow_poll_writes_one_file_with_the_poll() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(CaptureSettings {
        slow_poll_threshold: Duration::from_millis(30),
        ..settings(dir.path())
    });
    // Fast polls write nothing.
    on_thread("fast-worker", || {
        for _ in 0..2000 {
            raw::poll_start(8);
            raw::poll_end(8, false);
        }
    });
    std::thread::sleep(Duration::from_millis(150));
    assert!(dumps(dir.path()).is_empty(), "fast polls wrote a file");

    on_thread("slow-worker", || {
        raw::poll_start(7);
        std::thread::sleep(Duration::from_millis(300));
        raw::poll_end(7, true);
    });
    assert!(wait_until(Duration::from_secs(5), || dumps(dir.path())
        .len()
        == 1));
    std::thread::sleep(Duration::from_millis(100));
    let files = dumps(dir.path());
    assert_eq!(files.len(), 1, "one slow poll, one file");
    let path = &files[0];
    assert!(path.to_str().unwrap().ends_with(".slow_poll.out"));
    let trace = read(path);
    assert_eq!(trace.reader.header().reason, "slow_poll");
    assert_eq!(detail(&trace, "trigger"), Some("slow_poll"));
    assert_eq!(detail(&trace, "task"), Some("7"));
    assert_eq!(detail(&trace, "thread_name"), Some("slow-worker"));
    assert_eq!(detail(&trace, "threshold_ms"), Some("30.000"));
    let poll_ms: f64 = detail(&trace, "poll_ms").unwrap().parse().unwrap();
    assert!(
        (30.0..300.0).contains(&poll_ms),
        "caught after {poll_ms} ms, not while running"
    );
    let events = described(&trace);
    assert!(
        events.contains(&"slow-worker: poll_start 7".to_string()),
        "{events:?}"
    );
    // Written while the poll ran, with no delay: its end is not in the file.
    assert!(!events.contains(&"slow-worker: poll_end 7 1".to_string()));
}

#[test]
fn a_slow_poll_delay_shows_what_came_after() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(CaptureSettings {
        slow_poll_threshold: Duration::from_millis(30),
        slow_poll_delay: Duration::from_millis(300),
        ..settings(dir.path())
    });
    on_thread("slow-worker", || {
        raw::poll_start(9);
        std::thread::sleep(Duration::from_millis(100));
        raw::poll_end(9, false);
        flight_recorder::log("test", "after the poll");
    });
    assert!(wait_until(Duration::from_secs(5), || dumps(dir.path())
        .len()
        == 1));
    let trace = read(&dumps(dir.path())[0]);
    let events = described(&trace);
    for expected in [
        "slow-worker: poll_start 9",
        "slow-worker: poll_end 9 0",
        "slow-worker: log test after the poll",
    ] {
        assert!(
            events.contains(&expected.to_string()),
            "{expected:?} not in {events:?}"
        );
    }
}

#[cfg(all(unix, feature = "signal"))]
#[test]
fn a_signal_to_the_process_writes_one_file() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(CaptureSettings {
        signal: Some(signal_hook::consts::SIGUSR2),
        ..settings(dir.path())
    });
    let kill = |signal: &str| {
        let status = Command::new("kill")
            .args([signal, &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    kill("-USR2");
    assert!(wait_until(Duration::from_secs(5), || dumps(dir.path())
        .len()
        == 1));
    std::thread::sleep(Duration::from_millis(100));
    let files = dumps(dir.path());
    assert_eq!(files.len(), 1);
    assert!(files[0].to_str().unwrap().ends_with(".signal.out"));
    let trace = read(&files[0]);
    assert_eq!(trace.reader.header().reason, "signal");
    assert_eq!(detail(&trace, "signal"), Some("SIGUSR2"));
    assert!(described(&trace).contains(
        &"flight-recorder-signal: log flight_recorder.trigger signal (signal=SIGUSR2)".to_string()
    ));

    // The signal is a setting like the others.
    capture::update_settings(|s| s.signal = Some(signal_hook::consts::SIGUSR1)).unwrap();
    kill("-USR1");
    assert!(wait_until(Duration::from_secs(5), || dumps(dir.path())
        .len()
        == 2));
    let trace = read(&dumps(dir.path())[1]);
    assert_eq!(detail(&trace, "signal"), Some("SIGUSR1"));
}

#[cfg(all(target_os = "linux", feature = "signal"))]
#[test]
fn only_user_and_real_time_signals_trigger_dumps() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    capture::stop();
    for taken in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGPIPE,
        libc::SIGCHLD,
        libc::SIGALRM,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGABRT,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGKILL,
        libc::SIGRTMIN() - 1,
        libc::SIGRTMAX() + 1,
    ] {
        let refused = capture::start(CaptureSettings {
            signal: Some(taken),
            ..settings(dir.path())
        });
        let Err(error) = refused else {
            panic!("signal {taken} accepted: {refused:?}");
        };
        assert_eq!(error.kind(), flight_recorder::ErrorKind::InvalidSettings);
        let why = error.to_string();
        assert!(
            why.contains("cannot trigger dumps; use SIGUSR1, SIGUSR2"),
            "{why}"
        );
        assert!(!capture::is_running());
    }
    // A real-time signal, taken at run time.
    let realtime = libc::SIGRTMIN() + 1;
    let _running = start(CaptureSettings {
        signal: Some(realtime),
        ..settings(dir.path())
    });
    // SAFETY: a signal to this process, whose capture handles it.
    assert_eq!(unsafe { libc::kill(libc::getpid(), realtime) }, 0);
    assert!(wait_until(Duration::from_secs(5), || dumps(dir.path())
        .len()
        == 1));
    let trace = read(&dumps(dir.path())[0]);
    assert_eq!(detail(&trace, "signal"), Some("SIGRTMIN+1"));
    // Code cannot move it to a signal the program relies on.
    let refused = capture::update_settings(|s| s.signal = Some(libc::SIGTERM));
    assert!(refused.is_err());
    assert_eq!(capture::settings().unwrap().signal, Some(realtime));
}

/// Runs this test binary again, running only [`child_process`] in `mode`.
fn run_child(mode: &str, dir: &Path) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FR_CAPTURE_CHILD", mode)
        .env("FR_CAPTURE_DIR", dir)
        .output()
        .unwrap()
}

/// The body of the child processes; does nothing in a normal run.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var("FR_CAPTURE_CHILD") else {
        return;
    };
    let dir = std::path::PathBuf::from(std::env::var("FR_CAPTURE_DIR").unwrap());
    match mode.as_str() {
        "panic_in_worker" => {
            std::panic::set_hook(Box::new(|info| eprintln!("PREVIOUS HOOK: {info}")));
            let _running = start(CaptureSettings {
                panic: true,
                ..settings(&dir)
            });
            let result = std::thread::Builder::new()
                .name("panicky-worker".into())
                .spawn(|| {
                    flight_recorder::log("test", "about to fail");
                    panic!("boom 42");
                })
                .unwrap()
                .join();
            assert!(result.is_err());
            eprintln!("CHILD SURVIVED");
        }
        "panic_then_abort" => {
            // A previous hook that aborts, as `panic = "abort"` would right after the hooks.
            std::panic::set_hook(Box::new(|_| std::process::abort()));
            let _running = start(CaptureSettings {
                panic: true,
                ..settings(&dir)
            });
            flight_recorder::log("test", "last words");
            panic!("fatal");
        }
        other => panic!("unknown child mode {other}"),
    }
}

#[test]
fn a_panic_in_a_worker_thread_leaves_a_readable_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_child("panic_in_worker", dir.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed: {stderr}");
    // The previous hook still ran, after the dump; the program went on.
    assert!(stderr.contains("PREVIOUS HOOK"), "{stderr}");
    assert!(stderr.contains("boom 42"), "{stderr}");
    assert!(stderr.contains("CHILD SURVIVED"), "{stderr}");
    let files = dumps(dir.path());
    assert_eq!(files.len(), 1, "{stderr}");
    assert!(files[0].to_str().unwrap().ends_with(".panic.out"));
    let trace = read(&files[0]);
    assert_eq!(trace.reader.header().reason, "panic");
    assert_eq!(detail(&trace, "message"), Some("boom 42"));
    assert_eq!(detail(&trace, "thread_name"), Some("panicky-worker"));
    assert!(detail(&trace, "location")
        .unwrap()
        .contains("capture_triggers.rs"));
    let events = described(&trace);
    assert!(events.contains(&"panicky-worker: log test about to fail".to_string()));
    assert!(events.iter().any(
        |e| e.starts_with("panicky-worker: log flight_recorder.trigger panic (message=boom 42")
    ));
}

#[cfg(unix)]
#[test]
fn a_panic_that_aborts_still_leaves_a_snapshot() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let output = run_child("panic_then_abort", dir.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.signal(), Some(6), "not aborted: {stderr}");
    let files = dumps(dir.path());
    assert_eq!(files.len(), 1, "{stderr}");
    let trace = read(&files[0]);
    assert_eq!(detail(&trace, "message"), Some("fatal"));
    assert!(described(&trace)
        .iter()
        .any(|e| e.ends_with("log test last words")));
}
