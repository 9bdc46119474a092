//! Helpers shared by the `capture_*` integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flight_recorder::capture::{self, CaptureSettings};

use crate::common::{read_trace, ReadTrace};

/// Settings for tests: files in `dir`, no start-up line, no signal, no panic hook, no rate
/// limit, periodic capture off.
pub fn settings(dir: &Path) -> CaptureSettings {
    CaptureSettings {
        dump_dir: dir.to_path_buf(),
        announce: false,
        signal: None,
        panic: false,
        min_dump_interval: Duration::ZERO,
        // No crash-surviving ring: a test's child killed by a signal would leave one in the
        // shared ring directory, and the next test to start capture would recover it into that
        // child's dump directory. The ring has its own tests (`ring_crash.rs`).
        ring: false,
        ..CaptureSettings::default()
    }
}

/// Stops capture when dropped, so that a failed test leaves nothing running for the next one.
pub struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        capture::stop();
    }
}

/// Starts capture, failing the test if it cannot.
pub fn start(settings: CaptureSettings) -> Running {
    capture::stop();
    capture::start(settings).expect("capture starts");
    Running
}

/// The recorder's files in `dir`, oldest first.
pub fn dumps(dir: &Path) -> Vec<PathBuf> {
    capture::list_dumps(dir)
        .expect("list dumps")
        .into_iter()
        .map(|f| f.path)
        .collect()
}

/// Every entry of `dir`, by name.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Reads a trace file whole.
pub fn read(path: &Path) -> ReadTrace {
    read_trace(std::fs::read(path).expect("read trace file"))
}

/// Waits until `done` holds, at most `timeout`; returns whether it did.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The value of a header detail.
pub fn detail<'a>(trace: &'a ReadTrace, name: &str) -> Option<&'a str> {
    trace
        .reader
        .header()
        .details
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Every event of the trace, described, with its thread's name: `"<thread>: <event>"`.
pub fn described(trace: &ReadTrace) -> Vec<String> {
    trace
        .events
        .iter()
        .map(|e| {
            let thread = trace
                .reader
                .threads()
                .get(&e.thread)
                .map(|t| t.name.clone())
                .unwrap_or_default();
            format!("{thread}: {}", trace.describe(e))
        })
        .collect()
}

/// Runs `f` on a new thread named `name` and waits for it.
pub fn on_thread(name: &str, f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}
