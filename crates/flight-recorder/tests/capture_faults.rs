//! Faults of the dump directory: unwritable, over a file size limit, full. Each write fails with
//! a logged error and leaves no partial file; recording goes on and the next write after the
//! fault is gone succeeds.

mod capture_common;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use capture_common::{described, dumps, entries, read, settings, start};
use common::serial;
use flight_recorder::capture::{self, CaptureSettings, DumpOutcome};
use flight_recorder::ErrorKind;

/// Records about `bytes` of log events on a worker thread, so that a snapshot is at least that
/// big.
fn record_bulk(bytes: usize) {
    std::thread::Builder::new()
        .name("bulk".into())
        .spawn(move || {
            let message = "x".repeat(100);
            for _ in 0..bytes / 100 {
                flight_recorder::log("bulk", &message);
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

/// Asserts that a successful dump holds the events recorded before and after the failure.
fn assert_recovered(path: &Path) {
    let events = described(&read(path));
    assert!(events.iter().any(|e| e.starts_with("bulk: log bulk xxx")));
    assert!(
        events.contains(&"main-test: log test recorded after the failure".to_string())
            || events
                .iter()
                .any(|e| e.ends_with("log test recorded after the failure")),
        "recording stopped after the failure"
    );
}

#[test]
fn an_unwritable_dump_directory_fails_then_recovers() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // A file where the directory should be: it cannot be created (even by root).
    let blocker = dir.path().join("logs");
    std::fs::write(&blocker, "not a directory").unwrap();
    let dump_dir = blocker.join("executiontrace_dump");
    let _running = start(settings(&dump_dir));
    let errors_before = capture::status().errors;
    record_bulk(10_000);

    let result = capture::dump_now("first try", "first");
    assert!(
        matches!(result, Err(ref e) if e.kind() == ErrorKind::Io),
        "{result:?}"
    );
    let status = capture::status();
    assert_eq!(status.failed_writes, 1);
    assert_eq!(status.files_written, 0);
    assert_eq!(status.errors, errors_before + 1);
    let logged = status.last_error.unwrap();
    assert!(
        logged.contains("writing a trace (first try) to"),
        "{logged}"
    );
    assert!(logged.contains("executiontrace_dump"), "{logged}");
    assert_eq!(entries(dir.path()), vec!["logs".to_string()]);

    flight_recorder::log("test", "recorded after the failure");
    std::fs::remove_file(&blocker).unwrap();
    let DumpOutcome::Written(path) = capture::dump_now("second try", "second").unwrap() else {
        panic!("no file written");
    };
    assert_eq!(dumps(&dump_dir), vec![path.clone()]);
    assert_recovered(&path);
}

/// Runs this test binary again, running only [`fsize_child`].
#[cfg(target_os = "linux")]
#[test]
fn a_file_size_limit_fails_the_write_without_a_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["fsize_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("FR_FSIZE_CHILD_DIR", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("CHILD CHECKED"), "{stdout}\n{stderr}");
    // The error was logged on standard error, in one line.
    assert!(
        stderr.lines().any(
            |l| l.starts_with("flight-recorder: writing a trace (limited) to")
                && l.contains("File too large")
        ),
        "{stderr}"
    );
    assert_eq!(dumps(dir.path()).len(), 1);
}

/// The child of [`a_file_size_limit_fails_the_write_without_a_partial_file`]: does nothing in a
/// normal run.
#[cfg(target_os = "linux")]
#[test]
fn fsize_child() {
    let Some(dir) = std::env::var_os("FR_FSIZE_CHILD_DIR").map(PathBuf::from) else {
        return;
    };
    let set_limit = |soft: libc::rlim_t| {
        let limit = libc::rlimit {
            rlim_cur: soft,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: `limit` is a valid rlimit for the duration of the call; this process is a
        // test child whose only job is to run out of file size.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) }, 0);
    };
    // SAFETY: ignoring SIGXFSZ turns "file too large" into an EFBIG error instead of killing
    // the process; no other code of this test child handles that signal.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let _running = start(settings(&dir));
    record_bulk(100_000);
    set_limit(16 << 10);
    let result = capture::dump_now("limited", "limited");
    match &result {
        Err(e) if e.kind() == ErrorKind::Io => {
            assert_eq!(
                e.io_error().unwrap().raw_os_error(),
                Some(libc::EFBIG),
                "{e}"
            )
        }
        other => panic!("the write did not fail: {other:?}"),
    }
    assert!(entries(&dir).is_empty(), "left behind: {:?}", entries(&dir));
    assert_eq!(capture::status().failed_writes, 1);

    flight_recorder::log("test", "recorded after the failure");
    set_limit(libc::RLIM_INFINITY);
    let DumpOutcome::Written(path) = capture::dump_now("unlimited", "unlimited").unwrap() else {
        panic!("no file written");
    };
    assert!(std::fs::metadata(&path).unwrap().len() > 16 << 10);
    assert_recovered(&path);
    println!("CHILD CHECKED");
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(Tmpfs(at.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
        }
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_file_system_fails_the_write_then_recovers() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = match Tmpfs::mount(&dir.path().join("small"), "64k") {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            eprintln!("skipping the full-disk test: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    let dump_dir = tmpfs.0.join("executiontrace_dump");
    let _running = start(CaptureSettings {
        min_dump_interval: Duration::ZERO,
        ..settings(&dump_dir)
    });
    record_bulk(300_000);
    let result = capture::dump_now("disk full", "full");
    match &result {
        Err(e) if e.kind() == ErrorKind::Io => {
            assert_eq!(
                e.io_error().unwrap().raw_os_error(),
                Some(libc::ENOSPC),
                "{e}"
            )
        }
        other => panic!("the write did not fail: {other:?}"),
    }
    assert!(
        entries(&dump_dir).is_empty(),
        "left behind: {:?}",
        entries(&dump_dir)
    );
    let logged = capture::status().last_error.unwrap();
    assert!(logged.contains("No space left on device"), "{logged}");

    flight_recorder::log("test", "recorded after the failure");
    tmpfs.resize("8m");
    let DumpOutcome::Written(path) = capture::dump_now("space is back", "back").unwrap() else {
        panic!("no file written");
    };
    assert_recovered(&path);
    drop(_running);
}
