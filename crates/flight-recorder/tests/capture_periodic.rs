//! The periodic tracer: turned on and off while running, `duration` changed while running,
//! metadata, garbage collection after each write.

mod capture_common;
mod common;

use std::time::Duration;

use capture_common::{
    described, detail, dumps, entries, on_thread, read, settings, start, wait_until,
};
use common::serial;
use flight_recorder::capture::{self, CaptureSettings};

#[test]
fn periodic_capture_turns_on_and_off_while_running() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(CaptureSettings {
        program_version: "periodic-test 9.9.9".into(),
        ..settings(dir.path())
    });
    std::thread::sleep(Duration::from_millis(400));
    assert!(dumps(dir.path()).is_empty(), "interval 0 wrote files");

    capture::update_settings(|s| s.interval = Duration::from_millis(100)).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || dumps(dir.path()).len() >= 3),
        "periodic files did not come"
    );
    for path in dumps(dir.path()) {
        let name = path.file_name().unwrap().to_str().unwrap();
        let (_, tag) = capture::parse_dump_name(name).unwrap();
        assert_eq!(tag, "", "periodic files have no tag: {name}");
        let trace = read(&path);
        let header = trace.reader.header();
        assert_eq!(header.reason, "periodic");
        assert_eq!(header.mode, "flight-recorder");
        assert_eq!(header.program_version, "periodic-test 9.9.9");
        assert_eq!(header.pid, u64::from(std::process::id()));
        assert!(!header.host.is_empty());
        assert_eq!(header.min_age_ns, 10_000_000_000);
        assert_eq!(detail(&trace, "trigger"), Some("periodic"));
        assert_eq!(detail(&trace, "interval"), Some("100ms"));
        assert_eq!(detail(&trace, "duration"), Some("10s"));
        // The wall-clock time of the write is the second clock sample.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(now.abs_diff(header.clock.end.wall_ns) < 60_000_000_000);
    }

    capture::update_settings(|s| s.interval = Duration::ZERO).unwrap();
    // A write under way when the setting changed may still land.
    std::thread::sleep(Duration::from_millis(150));
    let off = dumps(dir.path()).len();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(dumps(dir.path()).len(), off, "files written while off");

    capture::update_settings(|s| s.interval = Duration::from_millis(100)).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || dumps(dir.path()).len()
            >= off + 2),
        "periodic capture did not come back on"
    );
    assert!(capture::status().files_written >= off as u64 + 2);
}

/// A periodic file whose write began after this call: the second file to appear from now on (the
/// first may have been under way already, as a loaded machine can stretch a write).
fn next_dump(dir: &std::path::Path) -> std::path::PathBuf {
    let before = dumps(dir);
    let mut new = Vec::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            new = dumps(dir)
                .into_iter()
                .filter(|p| !before.contains(p))
                .collect();
            new.len() >= 2
        }),
        "no periodic file came"
    );
    new.pop().unwrap()
}

#[test]
fn a_duration_change_while_running_moves_the_window() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(CaptureSettings {
        interval: Duration::from_millis(100),
        duration: Duration::from_millis(300),
        ..settings(dir.path())
    });
    on_thread("early", || flight_recorder::log("test", "early event"));
    // Recorded: a dump at once holds it.
    let capture::DumpOutcome::Written(at_once) = capture::dump_now("check", "check").unwrap()
    else {
        panic!("no file written");
    };
    assert!(described(&read(&at_once)).contains(&"early: log test early event".to_string()));
    std::fs::remove_file(at_once).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let trace = read(&next_dump(dir.path()));
    assert_eq!(trace.reader.header().min_age_ns, 300_000_000);
    let events = described(&trace);
    assert!(
        !events.iter().any(|e| e.starts_with("early:")),
        "an event older than `duration` is in the file: {events:?}"
    );

    // Recorded just before the change: under the old duration it would age out in 300 ms; the
    // window is resized in place, so it stays.
    on_thread("bridge", || flight_recorder::log("test", "bridge event"));
    capture::update_settings(|s| s.duration = Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let trace = read(&next_dump(dir.path()));
    assert_eq!(trace.reader.header().min_age_ns, 5_000_000_000);
    let events = described(&trace);
    assert!(
        events.contains(&"bridge: log test bridge event".to_string()),
        "the longer window lost an event: {events:?}"
    );

    // And back to a short window: the bridge event ages out again.
    capture::update_settings(|s| s.duration = Duration::from_millis(200)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let trace = read(&next_dump(dir.path()));
    assert_eq!(trace.reader.header().min_age_ns, 200_000_000);
    assert!(!described(&trace).iter().any(|e| e.starts_with("bridge:")));
}

#[test]
fn periodic_writes_collect_garbage() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.txt"), "not a trace").unwrap();
    let _running = start(CaptureSettings {
        interval: Duration::from_millis(50),
        total_dump_size_limit: 1,
        ..settings(dir.path())
    });
    assert!(wait_until(Duration::from_secs(5), || {
        capture::status().files_written >= 4
    }));
    capture::stop();
    // Each file is over the limit alone: only the newest stays, and the foreign file.
    assert_eq!(dumps(dir.path()).len(), 1);
    assert!(entries(dir.path()).contains(&"README.txt".to_string()));
}
