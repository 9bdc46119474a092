//! Stacks of a stuck runtime worker, captured by the slow-poll watchdog while it is stuck: real
//! runtimes, real threads, and child processes configured by the environment.
//!
//! With `--cfg tokio_unstable` the watchdog sees the poll (its poll mark) and records `slow_poll`
//! stacks; without it (`scripts/test.sh`'s stable-tokio job) it sees a worker that stays
//! unparked at the same place and writes a `stuck_worker` dump.
#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

mod capture_common;
mod common;

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capture_common::{detail, dumps, read, settings, start, wait_until};
use common::{serial, ReadTrace};
use flight_recorder::capture::{self, CaptureSettings};
use flight_recorder_format::event::stack_cause;
use flight_recorder_format::{EventKind, NameTables};

/// The slow-poll threshold of these tests.
const THRESHOLD: Duration = Duration::from_millis(50);
/// How long a worker stays stuck: several thresholds.
const STUCK: Duration = Duration::from_millis(500);

/// The dump's tag and the stacks' cause this build gives.
fn expected() -> (&'static str, u64) {
    if cfg!(tokio_unstable) {
        ("slow_poll", stack_cause::SLOW_POLL)
    } else {
        ("stuck_worker", stack_cause::STUCK_WORKER)
    }
}

#[inline(never)]
fn stuck_sleeping(time: Duration) {
    std::thread::sleep(std::hint::black_box(time));
    std::hint::black_box(());
}

#[inline(never)]
fn stuck_spinning(time: Duration) {
    let end = Instant::now() + time;
    let mut n = 0u64;
    while Instant::now() < end {
        n = std::hint::black_box(n.wrapping_add(1));
        std::hint::spin_loop();
    }
    std::hint::black_box(n);
}

#[inline(never)]
fn stuck_reading(mut pipe: std::fs::File) {
    let mut byte = [0u8; 1];
    let n = pipe.read(&mut byte).expect("read sees no error");
    std::hint::black_box(n);
}

#[inline(never)]
fn stuck_on_mutex(mutex: &Mutex<()>) {
    let guard = mutex.lock().unwrap();
    std::hint::black_box(&guard);
}

fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fresh descriptors, each owned by one File.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

/// An instrumented multi-thread runtime with two workers.
fn runtime() -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    flight_recorder::tokio::Instrumentation::new()
        .name("stuck")
        .apply(&mut builder);
    builder.build().unwrap()
}

/// Runs `stuck` in a task on a fresh runtime's worker.
fn run_stuck(stuck: impl FnOnce() + Send + 'static) {
    let runtime = runtime();
    // Let the workers start and park.
    std::thread::sleep(Duration::from_millis(50));
    runtime.block_on(async move {
        tokio::spawn(async move { stuck() }).await.unwrap();
    });
    drop(runtime);
}

/// Runs one of the four stuck functions for [`STUCK`].
fn run_case(name: &str) {
    match name {
        "stuck_sleeping" => run_stuck(|| stuck_sleeping(STUCK)),
        "stuck_spinning" => run_stuck(|| stuck_spinning(STUCK)),
        "stuck_reading" => {
            let (theirs, mut ours) = pipe();
            let writer = std::thread::spawn(move || {
                std::thread::sleep(STUCK);
                ours.write_all(b"x").unwrap();
            });
            run_stuck(move || stuck_reading(theirs));
            writer.join().unwrap();
        }
        "stuck_on_mutex" => {
            let mutex = Arc::new(Mutex::new(()));
            let held = Arc::new(AtomicBool::new(false));
            let holder = {
                let mutex = Arc::clone(&mutex);
                let held = Arc::clone(&held);
                std::thread::spawn(move || {
                    let guard = mutex.lock().unwrap();
                    held.store(true, Ordering::SeqCst);
                    std::thread::sleep(STUCK);
                    drop(guard);
                })
            };
            while !held.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            run_stuck(move || stuck_on_mutex(&mutex));
            holder.join().unwrap();
        }
        other => panic!("no case {other}"),
    }
}

/// One resolved frame.
#[derive(Debug)]
struct Resolved {
    name: String,
    file: Option<String>,
    line: Option<u32>,
}

/// Resolves a recorded stack in this process: the first address is the interrupted
/// instruction, the others return addresses (looked up one byte before). Addresses recorded by
/// another process (a child running this same executable) are moved by the difference of the
/// two load biases, found in the file's modules.
fn resolve(names: &NameTables, addresses: &[u64]) -> Vec<Resolved> {
    let here = flight_recorder::stack::loaded_modules();
    let mut out = Vec::new();
    for (i, &address) in addresses.iter().enumerate() {
        let address = names
            .module_of(address)
            .and_then(|there| {
                let module = here
                    .iter()
                    .find(|m| m.path.to_str() == Some(there.path.as_str()))?;
                Some(address - there.load_bias + module.load_bias as u64)
            })
            .unwrap_or(address);
        let lookup = if i == 0 { address } else { address - 1 };
        backtrace::resolve(lookup as usize as *mut std::ffi::c_void, |symbol| {
            out.push(Resolved {
                name: symbol
                    .name()
                    .map(|n| format!("{n:#}"))
                    .unwrap_or_else(|| "?".into()),
                file: symbol.filename().map(|p| p.display().to_string()),
                line: symbol.lineno(),
            });
        });
    }
    out
}

/// The `thread_stack` events of a trace with this cause: (thread, task, stack id).
fn thread_stacks(trace: &ReadTrace, cause: u64) -> Vec<(u64, u64, u64)> {
    trace
        .events
        .iter()
        .filter(|e| e.kind() == Some(EventKind::ThreadStack) && e.arg(3) == cause)
        .map(|e| (e.arg(0), e.arg(1), e.arg(2)))
        .collect()
}

/// Checks that the dump holds at least `at_least` stacks that name `function` with this file
/// and a line; returns how many do.
fn assert_named(trace: &ReadTrace, cause: u64, function: &str, at_least: usize) -> usize {
    let stacks = thread_stacks(trace, cause);
    let names = trace.reader.name_tables();
    let mut shown = String::new();
    let mut naming = 0;
    for &(_, _, id) in &stacks {
        let Some(addresses) = names.stack(id) else {
            shown.push_str(&format!("stack {id}: not in the file\n"));
            continue;
        };
        let resolved = resolve(&names, addresses);
        let found = resolved.iter().find(|r| r.name.ends_with(function));
        if let Some(frame) = found {
            let file = frame.file.as_deref().unwrap_or("");
            assert!(
                file.ends_with("stuck_worker.rs") && frame.line.unwrap_or(0) > 0,
                "{function} without its file and line: {frame:?}"
            );
            naming += 1;
        }
        shown.push_str(&format!("stack {id}:\n"));
        for r in &resolved {
            shown.push_str(&format!(
                "    {} ({}:{})\n",
                r.name,
                r.file.as_deref().unwrap_or("?"),
                r.line.unwrap_or(0)
            ));
        }
    }
    assert!(
        naming >= at_least,
        "{naming} of {} stacks name {function}, wanted {at_least}:\n{shown}",
        stacks.len()
    );
    naming
}

/// The one dump with this tag in `dir`, waiting for it.
fn the_dump(dir: &Path, tag: &str) -> PathBuf {
    let with_tag = |dir: &Path| -> Vec<PathBuf> {
        dumps(dir)
            .into_iter()
            .filter(|p| {
                p.to_str()
                    .is_some_and(|s| s.ends_with(&format!(".{tag}.out")))
            })
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(10), || !with_tag(dir).is_empty()),
        "no {tag} dump in {:?}",
        dumps(dir)
    );
    // Any other dump would come right after.
    std::thread::sleep(Duration::from_millis(200));
    let found = with_tag(dir);
    // One stall, one dump: never both a slow poll and a stuck worker.
    assert_eq!(found.len(), 1, "one stall, one dump: {:?}", dumps(dir));
    assert_eq!(dumps(dir).len(), 1, "one stall, one dump: {:?}", dumps(dir));
    found.into_iter().next().unwrap()
}

fn check_case(function: &str) {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(CaptureSettings {
        slow_poll_threshold: THRESHOLD,
        ..settings(dir.path())
    });
    run_case(function);
    let (tag, cause) = expected();
    let dump = the_dump(dir.path(), tag);
    let trace = read(&dump);
    assert_eq!(trace.reader.header().reason, tag);
    let stacks: usize = detail(&trace, "stacks").unwrap().parse().unwrap();
    assert!(
        stacks >= 2,
        "{stacks} stacks for a stall of several thresholds"
    );
    let naming = assert_named(&trace, cause, function, 2);
    assert!(naming <= stacks);
    // What `flight-recorder summary` prints names the function with its file and line too,
    // resolved from this test's binary through the file's modules table.
    let summary = flight_recorder_analysis::summary::Summary::from_reader(
        flight_recorder_format::TraceReader::open(&dump).unwrap(),
    )
    .unwrap()
    .render_text();
    let line = summary
        .lines()
        .find(|line| line.contains(&format!("::{function} ")))
        .unwrap_or_else(|| panic!("the summary does not name {function}:\n{summary}"));
    assert!(line.contains("stuck_worker.rs:"), "{line}\n{summary}");
    if cfg!(tokio_unstable) {
        // Attributed to the task and to the worker running it.
        let runtime_workers: Vec<u64> = trace
            .reader
            .threads()
            .values()
            .filter(|t| t.name.starts_with("tokio-rt-worker"))
            .map(|t| t.id)
            .collect();
        for (thread, task, _) in thread_stacks(&trace, cause) {
            assert_ne!(task, 0);
            assert!(
                runtime_workers.contains(&thread),
                "{thread} {:?}",
                trace.reader.threads()
            );
        }
    }
}

#[test]
fn a_worker_stuck_sleeping() {
    check_case("stuck_sleeping");
}

#[test]
fn a_worker_stuck_spinning() {
    check_case("stuck_spinning");
}

#[test]
fn a_worker_stuck_reading_a_pipe() {
    check_case("stuck_reading");
}

#[test]
fn a_worker_stuck_on_a_mutex() {
    check_case("stuck_on_mutex");
}

#[test]
fn stacks_off_captures_none() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(CaptureSettings {
        slow_poll_threshold: THRESHOLD,
        stacks: false,
        ..settings(dir.path())
    });
    run_case("stuck_sleeping");
    std::thread::sleep(Duration::from_millis(300));
    for path in dumps(dir.path()) {
        let trace = read(&path);
        assert!(
            trace
                .events
                .iter()
                .all(|e| e.kind() != Some(EventKind::ThreadStack)),
            "a stack with stacks off"
        );
        assert_eq!(detail(&trace, "stacks"), Some("0"));
    }
    if cfg!(tokio_unstable) {
        // The slow poll is still reported, at once, without stacks.
        assert_eq!(dumps(dir.path()).len(), 1);
    } else {
        // Without poll hooks, only stacks could tell a stuck worker.
        assert!(dumps(dir.path()).is_empty());
    }
}

#[cfg(feature = "signal")]
#[test]
fn the_dump_signal_cannot_be_the_stack_signal() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    capture::stop();
    let stack_signal = flight_recorder::stack::signal();
    let error = capture::start(CaptureSettings {
        signal: Some(stack_signal),
        ..settings(dir.path())
    })
    .unwrap_err();
    assert!(error.to_string().contains("stacks use it"), "{error}");
    assert!(!capture::is_running());
    // Nor can it move there later.
    let _running = start(settings(dir.path()));
    let error = capture::update_settings(|s| s.signal = Some(stack_signal)).unwrap_err();
    assert!(error.to_string().contains("stacks use it"), "{error}");
    let config = capture::config_from_vars(|name| {
        (name == "FLIGHT_RECORDER_SIGNAL").then(|| stack_signal.to_string())
    });
    assert!(config.problems[0].contains("stacks use it"), "{config:?}");
}

/// The environment variable that makes [`env_child`] run, naming its dump directory.
const ENV_CHILD: &str = "FLIGHT_RECORDER_STUCK_WORKER_CHILD";

/// In a child process: capture from the environment (`FLIGHT_RECORDER_SLOW_POLL`, …), a worker
/// stuck sleeping, then waits for the dump. In a normal test run, does nothing.
#[test]
fn env_child() {
    if std::env::var_os(ENV_CHILD).is_none() {
        return;
    }
    assert!(flight_recorder::capture_from_env!());
    run_case("stuck_sleeping");
    std::thread::sleep(Duration::from_millis(500));
    capture::stop();
    println!("env child: ok");
}

fn run_env_child(dir: &Path, stacks: Option<&str>) {
    let exe = std::env::current_exe().unwrap();
    let mut command = std::process::Command::new(exe);
    command
        .args(["--exact", "env_child", "--nocapture", "--test-threads=1"])
        .env(ENV_CHILD, "1")
        .env("FLIGHT_RECORDER_DUMP_DIR", dir)
        .env("FLIGHT_RECORDER_SLOW_POLL", "50ms")
        .env("FLIGHT_RECORDER_MIN_DUMP_INTERVAL", "0")
        .env("FLIGHT_RECORDER_ANNOUNCE", "off")
        .env_remove("FLIGHT_RECORDER_STACKS");
    if let Some(stacks) = stacks {
        command.env("FLIGHT_RECORDER_STACKS", stacks);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("env child: ok"),
        "{:?}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(!stderr.contains("flight-recorder:"), "{stderr}");
}

#[test]
fn capture_from_env_gets_stacks_without_code_changes() {
    let dir = tempfile::tempdir().unwrap();
    run_env_child(dir.path(), None);
    let (tag, cause) = expected();
    let dump = the_dump(dir.path(), tag);
    let trace = read(&dump);
    assert_named(&trace, cause, "stuck_sleeping", 2);
}

#[test]
fn stacks_off_in_the_environment_captures_none() {
    let dir = tempfile::tempdir().unwrap();
    run_env_child(dir.path(), Some("0"));
    for path in dumps(dir.path()) {
        let trace = read(&path);
        assert!(trace
            .events
            .iter()
            .all(|e| e.kind() != Some(EventKind::ThreadStack)));
    }
    assert_eq!(
        dumps(dir.path()).len(),
        usize::from(cfg!(tokio_unstable)),
        "{:?}",
        dumps(dir.path())
    );
}

#[inline(never)]
fn a_little_work() {
    stuck_spinning(Duration::from_millis(2));
}

#[test]
fn workers_that_move_on_are_not_stuck() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(CaptureSettings {
        // Above what a loaded test machine may take a worker off its core for.
        slow_poll_threshold: THRESHOLD * 4,
        ..settings(dir.path())
    });
    let runtime = runtime();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..4 {
            tasks.push(tokio::spawn(async {
                let end = Instant::now() + STUCK;
                while Instant::now() < end {
                    a_little_work();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    drop(runtime);
    std::thread::sleep(Duration::from_millis(200));
    assert!(dumps(dir.path()).is_empty(), "{:?}", dumps(dir.path()));
}

#[inline(never)]
fn busy_and_logging(time: Duration) {
    let end = Instant::now() + time;
    while Instant::now() < end {
        flight_recorder::log("work", "still going");
        stuck_spinning(Duration::from_millis(5));
    }
}

#[test]
fn a_worker_that_records_events_is_not_stuck() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(CaptureSettings {
        slow_poll_threshold: THRESHOLD,
        ..settings(dir.path())
    });
    run_stuck(|| busy_and_logging(STUCK));
    std::thread::sleep(Duration::from_millis(300));
    let files = dumps(dir.path());
    if cfg!(tokio_unstable) {
        // The poll is long: a slow poll, with its stacks.
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].to_str().unwrap().ends_with(".slow_poll.out"));
    } else {
        // Without poll hooks, a worker that records events is making progress.
        assert!(files.is_empty(), "{files:?}");
    }
}
