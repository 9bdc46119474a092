//! The dump directory: garbage collection, file names, tags, listing.

mod capture_common;
mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use capture_common::{dumps, entries, read, settings, start};
use common::serial;
use flight_recorder::capture::{
    self, collect_garbage, list_dumps, parse_dump_name, DumpOutcome, TEMP_FILE_MAX_AGE,
};
use flight_recorder::ErrorKind;

/// Writes `executiontrace.2026-01-01T00_00_0<second>.000[.tag].out` of `size` bytes.
fn dump_file(dir: &Path, second: u32, tag: &str, size: usize) -> String {
    let tag = if tag.is_empty() {
        String::new()
    } else {
        format!(".{tag}")
    };
    let name = format!("executiontrace.2026-01-01T00_00_{second:02}.000{tag}.out");
    fs::write(dir.join(&name), vec![0u8; size]).unwrap();
    name
}

#[test]
fn gc_keeps_the_newest_files_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (1..=5)
        .map(|s| dump_file(dir.path(), s, if s % 2 == 0 { "slow_poll" } else { "" }, 10))
        .collect();
    let report = collect_garbage(dir.path(), 35).unwrap();
    // Newest first: 10, 20, 30 fit in 35; the fourth makes 40 and goes, with the fifth.
    assert_eq!(report.kept, 3);
    assert_eq!(report.kept_bytes, 30);
    assert_eq!(report.deleted.len(), 2);
    assert_eq!(entries(dir.path()), names[2..].to_vec());
    // A second pass has nothing to do.
    assert!(collect_garbage(dir.path(), 35).unwrap().deleted.is_empty());
    // Exactly at the limit is within it.
    assert_eq!(collect_garbage(dir.path(), 30).unwrap().kept, 3);
}

#[test]
fn gc_never_deletes_or_counts_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = [
        "notes.txt",
        "executiontrace.latest.out",
        "executiontrace.2026-01-01T00_00_01.000.out.bak",
        // Not a temporary name of ours: no pid.
        ".executiontrace.2026-01-01T00_00_09.000.out.tmp",
        "executiontrace.2026-01-01T00_00_01.000.bad-tag.out",
    ];
    for name in foreign {
        fs::write(dir.path().join(name), vec![1u8; 1000]).unwrap();
    }
    // A directory with a matching name is not a file of ours either.
    fs::create_dir(
        dir.path()
            .join("executiontrace.2026-01-01T00_00_08.000.out"),
    )
    .unwrap();
    let ours: Vec<String> = (1..=3).map(|s| dump_file(dir.path(), s, "", 10)).collect();
    let report = collect_garbage(dir.path(), 20).unwrap();
    assert_eq!(report.kept, 2, "foreign files were counted");
    assert_eq!(report.deleted, vec![dir.path().join(&ours[0])]);
    for name in foreign {
        assert!(dir.path().join(name).exists(), "{name} was deleted");
    }
    let listed: Vec<String> = list_dumps(dir.path())
        .unwrap()
        .into_iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, ours[1..].to_vec());
}

#[test]
fn gc_keeps_the_newest_file_even_alone_over_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    dump_file(dir.path(), 1, "", 10);
    dump_file(dir.path(), 2, "", 10);
    let newest = dump_file(dir.path(), 3, "panic", 50);
    let report = collect_garbage(dir.path(), 35).unwrap();
    assert_eq!(report.kept, 1);
    assert_eq!(report.deleted.len(), 2);
    assert_eq!(entries(dir.path()), vec![newest]);
    // With a zero limit too.
    assert_eq!(collect_garbage(dir.path(), 0).unwrap().kept, 1);
}

#[test]
fn listing_is_in_time_order_with_tags_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    dump_file(dir.path(), 3, "signal", 7);
    dump_file(dir.path(), 1, "", 5);
    dump_file(dir.path(), 2, "panic", 6);
    let files = list_dumps(dir.path()).unwrap();
    let summary: Vec<(String, String, u64)> = files
        .iter()
        .map(|f| (f.stamp.clone(), f.tag.clone(), f.size))
        .collect();
    assert_eq!(
        summary,
        [
            ("2026-01-01T00_00_01.000".to_string(), String::new(), 5),
            (
                "2026-01-01T00_00_02.000".to_string(),
                "panic".to_string(),
                6
            ),
            (
                "2026-01-01T00_00_03.000".to_string(),
                "signal".to_string(),
                7
            ),
        ]
    );
}

#[test]
fn written_files_follow_the_name_pattern_and_are_private() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let dump_dir = dir.path().join("logs").join("executiontrace_dump");
    let _running = start(settings(&dump_dir));
    let before = std::time::SystemTime::now();
    let DumpOutcome::Written(path) = capture::dump_now("check", "health_1").unwrap() else {
        panic!("no file written");
    };
    let name = path.file_name().unwrap().to_str().unwrap();
    let (stamp, tag) = parse_dump_name(name).expect("name matches the pattern");
    assert_eq!(tag, "health_1");
    // The stamp is the UTC time of the write, to the millisecond (fixed width: text order is
    // time order).
    let stamp_of = |t: std::time::SystemTime| {
        let unix_ns = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        flight_recorder_format::time::format_file_stamp(unix_ns)
    };
    let (low, high) = (stamp_of(before), stamp_of(std::time::SystemTime::now()));
    assert!(
        low.as_str() <= stamp && stamp <= high.as_str(),
        "{stamp} not in [{low}, {high}]"
    );
    // An empty tag is the application's default.
    let DumpOutcome::Written(default) = capture::dump_now("check", "").unwrap() else {
        panic!("no file written");
    };
    assert!(default.to_str().unwrap().ends_with(".app.out"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file_mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let dir_mode = fs::metadata(&dump_dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(file_mode, 0o600);
        assert_eq!(dir_mode, 0o700);
    }
    assert_eq!(read(&path).reader.header().tag, "health_1");
}

#[test]
fn tags_with_path_characters_are_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(settings(dir.path()));
    for bad in ["a/b", "..", "../escape", "x.y", "sp ace", "é"] {
        assert!(
            matches!(capture::dump_now("bad", bad), Err(e) if e.kind() == ErrorKind::InvalidTag),
            "{bad:?} accepted"
        );
    }
    assert!(matches!(
        capture::dump_now("bad", &"t".repeat(65)),
        Err(e) if e.kind() == ErrorKind::InvalidTag
    ));
    assert!(dumps(dir.path()).is_empty());
    assert!(entries(dir.path()).is_empty());
    assert!(!dir.path().parent().unwrap().join("escape").exists());
}

#[test]
fn dump_now_without_capture_says_so() {
    let _serial = serial();
    capture::stop();
    assert!(matches!(
        capture::dump_now("x", "y"),
        Err(e) if e.kind() == ErrorKind::NotStarted
    ));
    assert!(!capture::status().running);
}

#[test]
fn the_docs_list_every_environment_variable() {
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CAPTURE.md"),
    )
    .unwrap();
    for (name, _) in capture::ENV_VARS {
        assert!(
            docs.contains(&format!("| `{name}` |")),
            "{name} is not in docs/CAPTURE.md"
        );
    }
}

/// Writes `size` bytes to `name` in `dir`, last modified `age` ago.
fn file_aged(dir: &Path, name: &str, size: usize, age: Duration) {
    let path = dir.join(name);
    fs::write(&path, vec![7u8; size]).unwrap();
    let file = fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

#[test]
fn stale_temporary_files_are_gone_after_the_next_dump_and_foreign_ones_stay() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let _running = start(settings(dir.path()));
    let stale_age = TEMP_FILE_MAX_AGE + Duration::from_secs(60);
    let stale = [
        ".executiontrace.2026-01-01T00_00_01.000.out.4242.tmp",
        ".executiontrace.2026-01-01T00_00_02.000.slow_poll.out.77.tmp",
    ];
    // Younger than the bound: may be a write in progress in another process.
    let young = ".executiontrace.2026-01-01T00_00_03.000.out.4243.tmp";
    // Similar names, as old, that are not ours.
    let foreign = [
        ".executiontrace.2026-01-01T00_00_01.000.out.tmp",
        ".executiontrace.2026-01-01T00_00_01.000.out.4242.tmp.bak",
        ".executiontrace.2026-01-01T00_00_01.000.out.42a.tmp",
        "executiontrace.2026-01-01T00_00_01.000.out.4242.tmp",
        ".executiontrace.latest.out.4242.tmp",
        ".executiontrace.2026-01-01T00_00_01.000.bad-tag.out.1.tmp",
        ".app.4242.tmp",
    ];
    for name in stale.iter().chain(&foreign) {
        file_aged(dir.path(), name, 100, stale_age);
    }
    file_aged(
        dir.path(),
        young,
        100,
        TEMP_FILE_MAX_AGE - Duration::from_secs(600),
    );
    let DumpOutcome::Written(path) = capture::dump_now("after a crash", "check").unwrap() else {
        panic!("no file written");
    };
    for name in stale {
        assert!(!dir.path().join(name).exists(), "{name} is still there");
    }
    assert!(
        dir.path().join(young).exists(),
        "a young temporary file went"
    );
    for name in foreign {
        assert!(dir.path().join(name).exists(), "{name} was deleted");
    }
    assert!(path.exists());
    assert_eq!(capture::status().files_deleted, 2);
}

#[test]
fn temporary_files_count_in_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let ours: Vec<String> = (1..=3).map(|s| dump_file(dir.path(), s, "", 10)).collect();
    let young = ".executiontrace.2026-01-01T00_00_04.000.out.99.tmp";
    file_aged(dir.path(), young, 15, Duration::from_secs(1));
    // 15 for the write in progress, then 10 and 10 fit in 35; the oldest file goes.
    let report = collect_garbage(dir.path(), 35).unwrap();
    assert_eq!(report.temp_bytes, 15);
    assert_eq!(report.kept, 2);
    assert_eq!(report.deleted, vec![dir.path().join(&ours[0])]);
    assert!(dir.path().join(young).exists());
}
