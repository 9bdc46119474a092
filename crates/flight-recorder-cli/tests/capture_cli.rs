//! `flight-recorder ls` and `bundle` on a dump directory written by automatic capture.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use flight_recorder::capture::{self, CaptureSettings, DumpOutcome};

/// A dump directory with a periodic file, two triggered files and a foreign file, written once
/// by the real recorder.
fn dump_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        capture::start(CaptureSettings {
            dump_dir: dir.path().to_path_buf(),
            interval: Duration::from_millis(50),
            min_dump_interval: Duration::ZERO,
            program_version: "cli-test 0.0.1".into(),
            announce: false,
            signal: None,
            panic: false,
            ..CaptureSettings::default()
        })
        .unwrap();
        flight_recorder::log("test", "something happened");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while capture::status().files_written == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        capture::update_settings(|s| s.interval = Duration::ZERO).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // Periodic files of the same millisecond would not matter, but keep just one.
        for extra in capture::list_dumps(dir.path()).unwrap().iter().skip(1) {
            std::fs::remove_file(&extra.path).unwrap();
        }
        for (reason, tag) in [
            ("health check failed", "health"),
            ("request past its deadline", "deadline"),
        ] {
            std::thread::sleep(Duration::from_millis(5));
            assert!(matches!(
                capture::dump_now(reason, tag).unwrap(),
                DumpOutcome::Written(_)
            ));
        }
        capture::stop();
        std::fs::write(dir.path().join("notes.txt"), "not a trace").unwrap();
        dir
    })
    .path()
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flight-recorder"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn ls_lists_trace_files_with_time_reason_tag_and_size() {
    let dir = dump_dir();
    let output = run(&["ls", dir.to_str().unwrap()]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(lines[0].starts_with("TIME (UTC)"));
    assert!(lines[1].contains(" periodic "), "{stdout}");
    assert!(lines[1].contains("interval=50ms duration=10s"), "{stdout}");
    assert!(lines[2].contains("health check failed") && lines[2].contains(" health "));
    assert!(lines[3].contains("request past its deadline") && lines[3].contains(".deadline.out"));
    assert!(lines[4].starts_with("3 files, "), "{stdout}");
    assert!(!stdout.contains("notes.txt"));
    // Times are real dates of today, as the header says.
    let year = flight_recorder_format::time::format_utc_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    )[..4]
        .to_string();
    assert!(lines[1].starts_with(&year), "{stdout}");
}

#[test]
fn ls_json_has_every_header_field() {
    let dir = dump_dir();
    let output = run(&["ls", dir.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let files: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let files = files.as_array().unwrap();
    assert_eq!(files.len(), 3);
    let health = &files[1];
    assert_eq!(health["reason"], "health check failed");
    assert_eq!(health["tag"], "health");
    assert_eq!(health["program_version"], "cli-test 0.0.1");
    assert_eq!(health["pid"], u64::from(std::process::id()));
    assert_eq!(
        health["details"][0],
        serde_json::json!(["trigger", "application"])
    );
    let size = std::fs::metadata(dir.join(health["file"].as_str().unwrap()))
        .unwrap()
        .len();
    assert_eq!(health["size"], size);
}

#[test]
fn ls_reports_an_unreadable_file_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dump_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let bad = "executiontrace.2026-01-01T00_00_00.000.broken.out";
    std::fs::write(dir.path().join(bad), b"not a trace at all").unwrap();
    let output = run(&["ls", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        stdout.contains(bad) && stdout.contains("unreadable:"),
        "{stdout}"
    );
    assert!(stdout.contains("4 files"), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("flight-recorder: ") && stderr.contains(bad));
}

#[test]
fn ls_of_a_missing_directory_fails_in_one_line() {
    let output = run(&["ls", "/nonexistent/dumps"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr).trim(),
        "flight-recorder: /nonexistent/dumps: No such file or directory (os error 2)"
    );
}

#[test]
fn bundle_zips_traces_index_and_summaries() {
    let dir = dump_dir();
    let out_dir = tempfile::tempdir().unwrap();
    let zip_path: PathBuf = out_dir.path().join("debug.zip");
    let output = run(&[
        "bundle",
        dir.to_str().unwrap(),
        "-o",
        zip_path.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("3 trace files"));
    // Only the zip, no temporary file left.
    let names: Vec<String> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["debug.zip"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&zip_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let mut entries: Vec<String> = archive.file_names().map(String::from).collect();
    entries.sort();
    let traces: Vec<&String> = entries
        .iter()
        .filter(|n| n.starts_with("traces/"))
        .collect();
    let summaries: Vec<&String> = entries
        .iter()
        .filter(|n| n.starts_with("summaries/"))
        .collect();
    assert_eq!(traces.len(), 3, "{entries:?}");
    assert_eq!(summaries.len(), 3, "{entries:?}");
    assert!(entries.contains(&"index.txt".to_string()));
    assert!(entries.contains(&"index.json".to_string()));
    assert!(!entries.iter().any(|n| n.contains("notes.txt")));

    // The traces are byte for byte the files.
    for name in traces {
        let mut inside = Vec::new();
        archive
            .by_name(name)
            .unwrap()
            .read_to_end(&mut inside)
            .unwrap();
        let original = std::fs::read(dir.join(name.trim_start_matches("traces/"))).unwrap();
        assert_eq!(inside, original, "{name}");
    }
    let mut index = String::new();
    archive
        .by_name("index.txt")
        .unwrap()
        .read_to_string(&mut index)
        .unwrap();
    assert!(index.contains("health check failed"), "{index}");
    let summary_name = summaries
        .iter()
        .find(|n| n.contains(".health.out"))
        .unwrap()
        .to_string();
    let mut summary = String::new();
    archive
        .by_name(&summary_name)
        .unwrap()
        .read_to_string(&mut summary)
        .unwrap();
    assert!(summary.contains("health check failed"), "{summary}");
}

#[test]
fn bundle_of_an_empty_directory_fails() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(&[
        "bundle",
        dir.path().to_str().unwrap(),
        "-o",
        dir.path().join("debug.zip").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("holds no trace files"));
    assert!(!dir.path().join("debug.zip").exists());
}

#[test]
fn ls_verify_marks_complete_truncated_and_corrupt_files() {
    let dir = tempfile::tempdir().unwrap();
    let source = &capture::list_dumps(dump_dir()).unwrap()[1].path;
    let bytes = std::fs::read(source).unwrap();
    let complete = "executiontrace.2026-01-01T00_00_01.000.complete.out";
    let truncated = "executiontrace.2026-01-01T00_00_02.000.truncated.out";
    let corrupt = "executiontrace.2026-01-01T00_00_03.000.corrupt.out";
    std::fs::write(dir.path().join(complete), &bytes).unwrap();
    // A crash while writing: the end record (and more) is missing.
    std::fs::write(dir.path().join(truncated), &bytes[..bytes.len() * 3 / 4]).unwrap();
    // One bit flipped in the middle of the largest chunk of events: its CRC fails, the header
    // stays intact.
    let mut flipped = bytes.clone();
    let (mut at, mut largest) = (flight_recorder_format::record::PREAMBLE_LEN, (0, 0));
    while at + 5 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 1..at + 5].try_into().unwrap()) as usize;
        let is_chunk = bytes[at] == flight_recorder_format::RecordType::Chunk as u8;
        if is_chunk && len > largest.1 {
            largest = (at + 5, len);
        }
        at += flight_recorder_format::record::RECORD_OVERHEAD + len;
    }
    assert_eq!(at, bytes.len(), "records cover the file");
    assert!(largest.1 > 0, "the file holds a chunk");
    flipped[largest.0 + largest.1 / 2] ^= 0x10;
    std::fs::write(dir.path().join(corrupt), &flipped).unwrap();

    // Without --verify only the headers are read: all three look fine.
    let output = run(&["ls", dir.path().to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(!text(&output.stdout).contains("CHECK"));

    let output = run(&["ls", "--verify", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(lines[0].contains(" CHECK "), "{stdout}");
    let check = |line: &str| line.split_whitespace().nth(3).unwrap().to_string();
    assert!(lines[1].contains(complete), "{stdout}");
    assert_eq!(check(lines[1]), "complete", "{stdout}");
    assert!(lines[2].contains(truncated), "{stdout}");
    assert_eq!(check(lines[2]), "truncated", "{stdout}");
    assert!(lines[3].contains(corrupt), "{stdout}");
    assert_eq!(check(lines[3]), "corrupt", "{stdout}");
    // The damaged ones are named on standard error, with what is wrong.
    let errors: Vec<&str> = stderr.lines().collect();
    assert_eq!(errors.len(), 2, "{stderr}");
    assert!(errors[0].contains(truncated) && errors[0].contains("truncated trace at byte"));
    assert!(errors[1].contains(corrupt) && errors[1].contains("checksum mismatch"));

    let output = run(&["ls", "--verify", "--json", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let files: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let checks: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["complete", "truncated", "corrupt"]);
    assert!(files[0].get("check_error").is_none());
    assert!(files[1]["check_error"]
        .as_str()
        .unwrap()
        .contains("truncated"));

    // A directory of whole files verifies with status 0.
    std::fs::remove_file(dir.path().join(truncated)).unwrap();
    std::fs::remove_file(dir.path().join(corrupt)).unwrap();
    let output = run(&["ls", "--verify", dir.path().to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
}
