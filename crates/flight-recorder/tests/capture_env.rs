//! Zero-code configuration: a process started with `FLIGHT_RECORDER_*` variables and one line,
//! `capture_from_env!()`, records as the environment says and says so on standard error.

mod capture_common;
mod common;

use std::process::Command;
use std::time::Duration;

use capture_common::{detail, dumps, read, wait_until};

/// The body of the child process; does nothing in a normal run.
#[test]
fn env_child() {
    if std::env::var_os("FR_ENV_CHILD").is_none() {
        return;
    }
    let running = flight_recorder::capture_from_env!();
    println!("capture running: {running}");
    if !running {
        return;
    }
    if std::env::var_os("FR_ENV_CHILD").is_some_and(|v| v == "no-wait") {
        flight_recorder::capture::stop();
        return;
    }
    flight_recorder::log("test", "configured from the environment");
    let dir = std::path::PathBuf::from(std::env::var("FLIGHT_RECORDER_DUMP_DIR").unwrap());
    assert!(wait_until(Duration::from_secs(10), || !dumps(&dir).is_empty()));
    flight_recorder::capture::stop();
}

fn run_child(vars: &[(&str, &str)]) -> (std::process::Output, String) {
    run_child_as("1", vars)
}

/// Runs [`env_child`]; `mode` `no-wait` starts capture and stops it at once.
fn run_child_as(mode: &str, vars: &[(&str, &str)]) -> (std::process::Output, String) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["env_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("FR_ENV_CHILD", mode);
    for (name, _) in flight_recorder::capture::ENV_VARS {
        command.env_remove(name);
    }
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stderr)
}

#[test]
fn one_line_and_the_environment_turn_capture_on() {
    let dir = tempfile::tempdir().unwrap();
    let dump_dir = dir.path().join("dumps");
    let (output, stderr) = run_child(&[
        ("FLIGHT_RECORDER_DUMP_DIR", dump_dir.to_str().unwrap()),
        ("FLIGHT_RECORDER_INTERVAL", "100ms"),
        ("FLIGHT_RECORDER_DURATION", "3s"),
        ("FLIGHT_RECORDER_SIGNAL", "off"),
        ("FLIGHT_RECORDER_SLOW_POLL", "50ms"),
        ("FLIGHT_RECORDER_TOTAL_DUMP_SIZE_LIMIT", "twelve"),
    ]);
    assert!(output.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("capture running: true"));
    // The start-up line says what is recorded and where.
    let startup = stderr
        .lines()
        .find(|l| l.starts_with("flight-recorder: recording the last 3s in memory"))
        .unwrap_or_else(|| panic!("no start-up line in {stderr}"));
    assert!(
        startup.contains("a periodic trace every 100ms"),
        "{startup}"
    );
    assert!(startup.contains("slow poll > 50ms"), "{startup}");
    assert!(!startup.contains("SIGUSR2"), "{startup}");
    assert!(startup.contains(dump_dir.to_str().unwrap()), "{startup}");
    assert!(startup.contains("total limit 4.0 GiB"), "{startup}");
    // The bad value was reported, and its default kept.
    assert!(
        stderr.lines().any(|l| l.starts_with(
            "flight-recorder: environment: FLIGHT_RECORDER_TOTAL_DUMP_SIZE_LIMIT: \"twelve\" is \
             not a size; use e.g."
        )),
        "{stderr}"
    );
    let files = dumps(&dump_dir);
    assert!(!files.is_empty());
    let trace = read(&files[0]);
    let header = trace.reader.header();
    assert_eq!(header.reason, "periodic");
    assert_eq!(header.min_age_ns, 3_000_000_000);
    // The macro passed the calling crate's name and version.
    assert_eq!(
        header.program_version,
        concat!("flight-recorder ", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(detail(&trace, "interval"), Some("100ms"));
    // Without FLIGHT_RECORDER_SERVICE, the service is the program's name.
    assert_eq!(header.service, header.program);
}

#[test]
fn the_environment_names_the_service_in_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let dump_dir = dir.path().join("dumps");
    let (output, stderr) = run_child(&[
        ("FLIGHT_RECORDER_DUMP_DIR", dump_dir.to_str().unwrap()),
        ("FLIGHT_RECORDER_INTERVAL", "100ms"),
        ("FLIGHT_RECORDER_SIGNAL", "off"),
        ("FLIGHT_RECORDER_SERVICE", "  checkout  "),
    ]);
    assert!(output.status.success(), "{stderr}");
    let files = dumps(&dump_dir);
    assert!(!files.is_empty(), "{stderr}");
    for file in &files {
        let trace = read(file);
        assert_eq!(trace.reader.header().service, "checkout", "{file:?}");
        assert_ne!(trace.reader.header().program, "checkout");
    }
}

#[test]
fn capture_off_in_the_environment_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (output, stderr) = run_child(&[
        ("FLIGHT_RECORDER_CAPTURE", "off"),
        ("FLIGHT_RECORDER_DUMP_DIR", dir.path().to_str().unwrap()),
    ]);
    assert!(output.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("capture running: false"));
    assert!(
        stderr.contains("flight-recorder: automatic capture off (FLIGHT_RECORDER_CAPTURE)"),
        "{stderr}"
    );
    assert!(dumps(dir.path()).is_empty());
}

#[test]
fn every_bad_variable_at_start_up_is_reported_with_the_value_given() {
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        (
            "FLIGHT_RECORDER_CAPTURE",
            "maybe",
            "is not on or off; use e.g. on, off",
        ),
        (
            "FLIGHT_RECORDER_LOG_DIR",
            "",
            "is not a directory; use e.g.",
        ),
        (
            "FLIGHT_RECORDER_INTERVAL",
            "bogus",
            "is not a duration; use e.g. 30s, 5m, 0",
        ),
        ("FLIGHT_RECORDER_DURATION", "0", "must be more than zero"),
        (
            "FLIGHT_RECORDER_TOTAL_DUMP_SIZE_LIMIT",
            "lots",
            "is not a size; use e.g. 4GiB",
        ),
        (
            "FLIGHT_RECORDER_MAX_BYTES",
            "many",
            "is not a size; use e.g.",
        ),
        (
            "FLIGHT_RECORDER_MIN_DUMP_INTERVAL",
            "later",
            "is not a duration; use e.g.",
        ),
        (
            "FLIGHT_RECORDER_SLOW_POLL",
            "slow",
            "is not a duration; use e.g.",
        ),
        (
            "FLIGHT_RECORDER_SLOW_POLL_DELAY",
            "2m",
            "is too long; use at most 60s",
        ),
        ("FLIGHT_RECORDER_PANIC", "sometimes", "is not on or off"),
        (
            "FLIGHT_RECORDER_SIGNAL",
            "SIGNOPE",
            "is not a signal; use e.g. USR2",
        ),
        ("FLIGHT_RECORDER_ANNOUNCE", "loud", "is not on or off"),
    ];
    let mut vars: Vec<(&str, &str)> = bad.iter().map(|(name, value, _)| (*name, *value)).collect();
    vars.push(("FLIGHT_RECORDER_DUMP_DIR", dir.path().to_str().unwrap()));
    let (output, stderr) = run_child_as("no-wait", &vars);
    assert!(output.status.success(), "{stderr}");
    // Every default was kept: capture runs, with the default start-up line.
    assert!(String::from_utf8_lossy(&output.stdout).contains("capture running: true"));
    assert!(
        stderr.contains("flight-recorder: recording the last 10s in memory"),
        "{stderr}"
    );
    for (name, value, says) in bad {
        let line = stderr
            .lines()
            .find(|l| l.starts_with(&format!("flight-recorder: environment: {name}: ")))
            .unwrap_or_else(|| panic!("{name} not reported: {stderr}"));
        assert!(line.contains(&format!("{value:?}")), "{line}");
        assert!(line.contains(says), "{line}");
        assert!(line.ends_with("; using the default"), "{line}");
    }
}

#[cfg(all(target_os = "linux", feature = "signal"))]
#[test]
fn a_signal_the_program_relies_on_is_refused_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    for taken in [
        "TERM", "SIGINT", "HUP", "QUIT", "PIPE", "SEGV", "ABRT", "15",
    ] {
        let (output, stderr) = run_child_as(
            "no-wait",
            &[
                ("FLIGHT_RECORDER_SIGNAL", taken),
                ("FLIGHT_RECORDER_DUMP_DIR", dir.path().to_str().unwrap()),
            ],
        );
        assert!(output.status.success(), "{stderr}");
        let line = stderr
            .lines()
            .find(|l| l.starts_with("flight-recorder: environment: FLIGHT_RECORDER_SIGNAL: "))
            .unwrap_or_else(|| panic!("{taken} not reported: {stderr}"));
        assert!(line.contains(&format!("{taken:?}")), "{line}");
        assert!(
            line.contains("cannot trigger dumps; use SIGUSR1, SIGUSR2"),
            "{line}"
        );
        // The default, SIGUSR2, is kept.
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("flight-recorder: recording") && l.contains("SIGUSR2")),
            "{stderr}"
        );
    }
}
