//! Snapshots of the flight recorder, read back with the format crate's reader.

mod common;

use std::time::Duration;

use common::{read_trace, serial};
use flight_recorder::raw::{self, EventKind};
use flight_recorder::{files, ErrorKind, FlightRecorder, FlightRecorderConfig, SnapshotMeta};

#[test]
fn snapshot_holds_exact_events_in_order() {
    let _serial = serial();
    let fr = FlightRecorder::new(FlightRecorderConfig::default());
    fr.start().unwrap();
    std::thread::Builder::new()
        .name("worker-a".into())
        .spawn(|| {
            let region = flight_recorder::region("handle_request");
            flight_recorder::log("http", "GET /index.html");
            raw::record(EventKind::PollStart, &[42]);
            raw::record(EventKind::PollEnd, &[42, 1]);
            drop(region);
        })
        .unwrap()
        .join()
        .unwrap();
    let mut bytes = Vec::new();
    let written = fr.write_to(&mut bytes).unwrap();
    assert_eq!(written as usize, bytes.len());
    fr.stop();

    let trace = read_trace(bytes);
    assert_eq!(trace.reader.header().mode, "flight-recorder");
    assert_eq!(trace.reader.header().reason, "manual");
    let worker = trace.thread_named("worker-a");
    let events = trace.events_of(worker);
    let described: Vec<String> = events.iter().map(|e| trace.describe(e)).collect();
    assert_eq!(
        described,
        [
            "thread_start",
            "region_begin handle_request",
            "log http GET /index.html",
            "poll_start 42",
            "poll_end 42 1",
            "region_end handle_request",
            "thread_exit",
        ]
    );
    assert!(events.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
    // The times are real dates: within a minute of now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let first = events[0].time_ns;
    assert!(
        now.abs_diff(first) < 60_000_000_000,
        "event time {first} vs now {now}"
    );
}

#[test]
fn start_stop_and_errors() {
    let _serial = serial();
    let fr = FlightRecorder::new(FlightRecorderConfig::default());
    assert!(!fr.is_running());
    assert!(matches!(
        fr.write_to(&mut Vec::new()),
        Err(e) if e.kind() == ErrorKind::NotStarted
    ));
    fr.start().unwrap();
    assert!(fr.is_running());
    assert!(matches!(fr.start(), Err(e) if e.kind() == ErrorKind::AlreadyStarted));
    let other = FlightRecorder::new(FlightRecorderConfig::default());
    assert!(matches!(
        other.start(),
        Err(e) if e.kind() == ErrorKind::AnotherRecorderRunning
    ));
    assert!(!other.is_running());
    fr.stop();
    assert!(!fr.is_running());
    assert!(!raw::is_running());
    fr.stop();
    // Restart works, and the old recorder's data is gone.
    other.start().unwrap();
    flight_recorder::log("test", "after restart");
    let mut bytes = Vec::new();
    other.write_to(&mut bytes).unwrap();
    other.stop();
    let trace = read_trace(bytes);
    let logs: Vec<String> = trace
        .events
        .iter()
        .filter(|e| e.kind() == Some(EventKind::Log))
        .map(|e| trace.describe(e))
        .collect();
    assert_eq!(logs, ["log test after restart"]);
}

#[test]
fn window_respects_max_bytes() {
    let _serial = serial();
    let max_bytes = 1 << 20;
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(3600),
        max_bytes,
        ..Default::default()
    });
    fr.start().unwrap();
    // About 16 MiB of events, far beyond the window.
    for i in 0..4_000_000u64 {
        raw::record(EventKind::PollStart, &[i]);
    }
    let stats = flight_recorder::stats();
    assert!(stats.window_bytes <= max_bytes, "{stats:?}");
    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).unwrap();
    fr.stop();
    assert!(
        bytes.len() <= max_bytes + 2 * flight_recorder::chunk_size(),
        "{}",
        bytes.len()
    );
    let trace = read_trace(bytes);
    let polls: Vec<u64> = trace
        .events
        .iter()
        .filter(|e| e.kind() == Some(EventKind::PollStart))
        .map(|e| e.arg(0))
        .collect();
    // The window holds the newest events, contiguous, ending with the last one recorded.
    assert_eq!(*polls.last().unwrap(), 3_999_999);
    assert!(polls.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(polls.len() > 100_000, "only {} events kept", polls.len());
}

#[test]
fn old_data_ages_out_after_min_age() {
    let _serial = serial();
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_millis(200),
        max_bytes: 64 << 20,
        ..Default::default()
    });
    fr.start().unwrap();
    std::thread::spawn(|| {
        for i in 0..100_000u64 {
            raw::record(EventKind::PollStart, &[i]);
        }
    })
    .join()
    .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    raw::record(EventKind::PollStart, &[1_000_000]);
    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).unwrap();
    fr.stop();
    let trace = read_trace(bytes);
    let polls: Vec<u64> = trace
        .events
        .iter()
        .filter(|e| e.kind() == Some(EventKind::PollStart))
        .map(|e| e.arg(0))
        .collect();
    assert_eq!(polls, [1_000_000], "data older than min_age was kept");
}

#[test]
fn write_to_dir_writes_a_private_complete_file() {
    use std::os::unix::fs::PermissionsExt;

    let _serial = serial();
    let fr = FlightRecorder::new(FlightRecorderConfig::default());
    fr.start().unwrap();
    flight_recorder::log("test", "before the incident");
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("traces").join("nested");
    let path = files::write_snapshot(
        &fr,
        &dir,
        &SnapshotMeta::new("slow_request", "slow_request"),
    )
    .unwrap();

    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("executiontrace.") && name.ends_with(".slow_request.out"),
        "{name}"
    );
    // executiontrace.2006-01-02T15_04_05.000.slow_request.out
    let stamp = &name["executiontrace.".len()..name.len() - ".slow_request.out".len()];
    assert_eq!(stamp.len(), 23, "{stamp}");
    assert_eq!(&stamp[10..11], "T");
    assert_eq!(&stamp[19..20], ".");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    // Nothing else in the directory: the temporary file was renamed.
    let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(entries.len(), 1);

    let trace = read_trace(std::fs::read(&path).unwrap());
    assert_eq!(trace.reader.header().reason, "slow_request");
    assert_eq!(trace.reader.header().tag, "slow_request");
    assert_eq!(trace.reader.header().pid, u64::from(std::process::id()));
    assert!(trace
        .events
        .iter()
        .any(|e| trace.describe(e) == "log test before the incident"));

    // Two snapshots in the same millisecond get two names.
    let second =
        files::write_snapshot(&fr, &dir, &SnapshotMeta::new("manual", "slow_request")).unwrap();
    assert_ne!(second, path);
    fr.stop();
}

#[test]
fn write_to_dir_refuses_bad_tags_and_survives_bad_directories() {
    let _serial = serial();
    let fr = FlightRecorder::new(FlightRecorderConfig::default());
    fr.start().unwrap();
    let root = tempfile::tempdir().unwrap();
    for tag in ["../escape", "a/b", "..", "x y"] {
        let result = files::write_snapshot(&fr, root.path(), &SnapshotMeta::new("manual", tag));
        assert!(
            matches!(result, Err(ref e) if e.kind() == ErrorKind::InvalidTag),
            "{tag}: {result:?}"
        );
    }
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    assert!(!root.path().parent().unwrap().join("escape").exists());

    // A directory that cannot be created (its parent is a file).
    let file = root.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let result = files::write_snapshot(&fr, file.join("traces"), &SnapshotMeta::new("manual", ""));
    assert!(
        matches!(result, Err(ref e) if e.kind() == ErrorKind::Io),
        "{result:?}"
    );
    // The recorder keeps recording and the next snapshot succeeds.
    assert!(fr.is_running());
    flight_recorder::log("test", "after the failure");
    let path = files::write_snapshot(
        &fr,
        root.path().join("ok"),
        &SnapshotMeta::new("manual", ""),
    )
    .unwrap();
    let trace = read_trace(std::fs::read(path).unwrap());
    assert!(trace
        .events
        .iter()
        .any(|e| trace.describe(e) == "log test after the failure"));
    fr.stop();
}
