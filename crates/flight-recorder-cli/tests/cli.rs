//! The real `flight-recorder` binary on files written to a temporary directory.

use flight_recorder_test_support as common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Ev, TraceBuilder, ORIGIN_TICKS};
use flight_recorder_format::EventKind;
use tempfile::TempDir;

/// One millisecond after the calibration origin: 2026-11-22T02:35:36.001Z.
const BASE: u64 = ORIGIN_TICKS + 1_000_000;

/// A complete file: 9 events on two threads (7 and 2), in three chunks.
fn sample() -> Vec<u8> {
    let mut b = TraceBuilder::standard(
        &[(1, "handle_request"), (2, "http")],
        &[(1, "src/main.rs", 10, 5)],
        &[(1, 101, "main"), (2, 102, "tokio-runtime-worker")],
    );
    b.chunk(
        1,
        BASE,
        &[
            Ev::new(EventKind::TaskSpawn, 0, &[1, 1, 0]),
            Ev::new(EventKind::PollStart, 10, &[42]),
            Ev::new(EventKind::RegionBegin, 3, &[1, 0]),
        ],
    )
    .chunk(
        2,
        BASE + 7,
        &[
            Ev::new(EventKind::PollStart, 0, &[2]),
            Ev::new(EventKind::PollEnd, 5, &[2, 0]),
        ],
    )
    .chunk(
        1,
        BASE + 13,
        &[
            Ev::log(12_345_665, 2, "GET /users/42"),
            Ev::new(EventKind::RegionEnd, 5, &[1, 0]),
            Ev::new(EventKind::PollEnd, 5, &[42, 1]),
            Ev::new(EventKind::ThreadExit, 2_000_000_000, &[]),
        ],
    );
    b.finish()
}

/// Writes `bytes` as `name` in a new temporary directory.
fn write(name: &str, bytes: &[u8]) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

fn run(args: &[&str], path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flight-recorder"))
        .args(args)
        .arg(path)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Asserts that the command failed with exit status 1 and exactly one line on standard error,
/// `flight-recorder: <path>: <message>`, and returns the message.
fn one_error_line(output: &Output, path: &Path) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let err = stderr(output);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.ends_with('\n'));
    let prefix = format!("flight-recorder: {}: ", path.display());
    err.trim_end()
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{err:?} does not start with {prefix:?}"))
        .to_string()
}

#[test]
fn summary_shows_the_window_kinds_and_threads() {
    let (_dir, path) = write("trace.out", &sample());
    let output = run(&["summary"], &path);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stderr(&output), "");
    let text = stdout(&output);
    for expected in [
        format!("trace      {}\n", path.display()),
        "reason     manual\n".into(),
        "tag        slow_request\n".into(),
        "program    demo (pid 4242)\n".into(),
        "complete   yes\n".into(),
        "window     2026-11-22T02:35:36.001Z .. 2026-11-22T02:35:38.013Z\n".into(),
        "duration   2.012s\n".into(),
        "events     9\n".into(),
        "chunks     3 holding ".into(),
        format!("file size  {} bytes", sample().len()),
        "dropped    nothing\n".into(),
        "  poll_start         2  22.2%\n".into(),
        "  poll_end           2  22.2%\n".into(),
        "  log                1  11.1%\n".into(),
        "  thread_exit        1  11.1%\n".into(),
        "  id  os tid  name                  events\n".into(),
        "   1     101  main                       7\n".into(),
        "   2     102  tokio-runtime-worker       2\n".into(),
    ] {
        assert!(
            text.contains(&expected),
            "{expected:?} missing from\n{text}"
        );
    }
}

#[test]
fn summary_json_parses_and_has_the_numbers() {
    let (_dir, path) = write("trace.out", &sample());
    let output = run(&["summary", "--json"], &path);
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["path"], path.display().to_string());
    assert_eq!(json["complete"], true);
    assert_eq!(json["error"], serde_json::Value::Null);
    assert_eq!(json["window"]["start"], "2026-11-22T02:35:36.001Z");
    assert_eq!(json["window"]["end"], "2026-11-22T02:35:38.013Z");
    assert_eq!(json["window"]["duration_ns"], 2_012_345_688u64);
    assert_eq!(json["events"]["total"], 9);
    assert_eq!(json["events"]["by_kind"]["poll_start"], 2);
    assert_eq!(json["events"]["by_kind"]["task_spawn"], 1);
    assert_eq!(json["threads"][1]["name"], "tokio-runtime-worker");
    assert_eq!(json["threads"][1]["events"], 2);
    assert_eq!(json["size"]["file_bytes"], sample().len() as u64);
    assert_eq!(json["size"]["chunks"], 3);
    assert_eq!(json["dropped"]["chunks"], 0);
}

#[test]
fn dump_prints_one_line_per_event() {
    let (_dir, path) = write("trace.out", &sample());
    let output = run(&["dump"], &path);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stderr(&output), "");
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 9, "{text}");
    assert_eq!(
        lines[0],
        "2026-11-22T02:35:36.001Z     +0.000000ms  1:main                 \
         task_spawn task=1 location=src/main.rs:10:5 parent=0"
    );
    assert!(lines[1].ends_with(" +0.000010ms  1:main                 poll_start task=42"));
    assert!(lines[2].ends_with("region_begin name=\"handle_request\""));
    assert!(lines[3].contains(" +0.000007ms  2:tokio-runtime-worker poll_start task=2"));
    assert!(lines[4].ends_with("poll_end task=2 result=pending"));
    assert!(lines[5].starts_with("2026-11-22T02:35:36.013Z    +12.345678ms  1:main "));
    assert!(lines[5].ends_with("log category=\"http\" message=\"GET /users/42\""));
    assert!(lines[7].ends_with("poll_end task=42 result=ready"));
    assert!(lines[8].ends_with(" +2012.345688ms  1:main                 thread_exit"));

    let output = run(&["dump", "--limit", "2"], &path);
    assert!(output.status.success());
    assert_eq!(stdout(&output).lines().count(), 2);
}

#[test]
fn a_truncated_file_gives_the_summary_of_its_prefix_and_one_error_line() {
    let bytes = sample();
    // Cut inside the last chunk: the first two chunks (5 events) are intact.
    let (_dir, path) = write("torn.out", &bytes[..bytes.len() - 30]);
    let output = run(&["summary"], &path);
    let error = one_error_line(&output, &path);
    assert!(
        error.starts_with("truncated trace at byte ")
            && error.ends_with("file ends inside a record"),
        "{error}"
    );
    let text = stdout(&output);
    assert!(text.contains("complete   no\n"), "{text}");
    assert!(text.contains(&format!("error      {error}\n")), "{text}");
    assert!(text.contains("events     5\n"), "{text}");
    assert!(
        text.contains("window     2026-11-22T02:35:36.001Z .. "),
        "{text}"
    );

    let output = run(&["summary", "--json"], &path);
    let error = one_error_line(&output, &path);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["error"], error);
    assert_eq!(json["complete"], false);
    assert_eq!(json["events"]["total"], 5);

    let output = run(&["dump"], &path);
    one_error_line(&output, &path);
    assert_eq!(stdout(&output).lines().count(), 5);
}

#[test]
fn a_file_without_its_end_record_names_the_end_offset() {
    let bytes = sample();
    let len = bytes.len() - 10; // the end record: 9 bytes of framing and one varint
    let (_dir, path) = write("cut.out", &bytes[..len]);
    let output = run(&["summary"], &path);
    assert_eq!(
        one_error_line(&output, &path),
        format!("truncated trace at byte {len}: file ends without its end record")
    );
    assert!(stdout(&output).contains("events     9\n"));
}

#[test]
fn a_corrupt_record_is_reported_with_its_offset() {
    let mut bytes = sample();
    let at = bytes.len() - 20;
    bytes[at] ^= 0x01;
    let (_dir, path) = write("corrupt.out", &bytes);
    let output = run(&["dump"], &path);
    let error = one_error_line(&output, &path);
    assert!(error.starts_with("corrupt trace at byte "), "{error}");
    assert!(error.ends_with("record checksum mismatch"), "{error}");
    assert_eq!(stdout(&output).lines().count(), 5);
}

#[test]
fn files_that_are_not_traces_give_one_line() {
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "notes.txt",
            b"just some text\nover two lines\n",
            "not a flight-recorder trace (bad magic at byte 0)",
        ),
        (
            "empty.out",
            b"",
            "truncated trace at byte 0: file ends inside the magic",
        ),
        (
            "future.out",
            b"FLTRECRD\x02\x00\x00\x00",
            "unsupported trace format version 2.0 (this reader reads 1.x)",
        ),
        (
            "headless.out",
            b"FLTRECRD\x01\x00\x00\x00",
            "truncated trace at byte 12: file ends before the header",
        ),
    ];
    for (name, bytes, message) in cases {
        let (_dir, path) = write(name, bytes);
        for command in ["summary", "dump"] {
            let output = run(&[command], &path);
            assert_eq!(one_error_line(&output, &path), message);
            assert!(output.stdout.is_empty(), "{output:?}");
        }
    }
}

#[test]
fn a_missing_file_or_a_directory_gives_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.out");
    let output = run(&["summary"], &missing);
    let error = one_error_line(&output, &missing);
    assert!(error.contains("No such file or directory"), "{error}");

    let output = run(&["summary"], dir.path());
    one_error_line(&output, dir.path());
}

#[test]
fn usage_errors_exit_with_status_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_flight-recorder"))
        .args(["summary"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(!stderr(&output).contains("panicked"));
}

#[test]
fn summary_of_a_directory_covers_each_file_and_reports_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.out"), sample()).unwrap();
    std::fs::write(dir.path().join("b.out"), sample()).unwrap();
    std::fs::write(dir.path().join("c.out"), b"not a trace").unwrap();
    std::fs::write(dir.path().join("d.out.tmp"), b"a dump in progress").unwrap();
    let output = run(&["summary"], dir.path());
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = stdout(&output);
    assert_eq!(text.matches("events     9\n").count(), 2, "{text}");
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("c.out: not a flight-recorder trace"), "{err}");

    let output = run(&["summary", "--json"], dir.path());
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[1]["events"]["total"], 9);
}

#[test]
fn convert_and_report_write_their_files() {
    let (dir, path) = write("trace.out", &sample());
    let perfetto = dir.path().join("out.perfetto-trace");
    let output = run(
        &[
            "convert",
            "--to",
            "perfetto",
            "-o",
            perfetto.to_str().unwrap(),
        ],
        &path,
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output).trim(), perfetto.display().to_string());
    let bytes = std::fs::read(&perfetto).unwrap();
    // A Trace: packets are field 1, length-delimited.
    assert_eq!(bytes[0], 0x0a);

    let output = run(&["convert", "--to", "chrome-json"], &path);
    assert!(output.status.success(), "{output:?}");
    let json_path = dir.path().join("trace.out.json");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let events = json["traceEvents"].as_array().unwrap();
    assert!(events
        .iter()
        .any(|e| (e["ph"] == "B" || e["ph"] == "X") && e["name"] == "handle_request"));

    let html = dir.path().join("report.html");
    let output = run(&["report", "-o", html.to_str().unwrap()], &path);
    assert!(output.status.success(), "{output:?}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<section id=\"long-polls\">"));
}

#[test]
fn convert_writes_the_export_byte_for_byte() {
    use flight_recorder_analysis::chrome::write_chrome_json;
    use flight_recorder_analysis::merge::MergeOptions;
    use flight_recorder_analysis::perfetto::write_perfetto;
    use flight_recorder_format::TraceReader;

    // A recorded trace whose exports are many 1 MiB blocks, each handed to the writing thread.
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("large.out");
    common::synthetic::write_trace(&trace, 4_000_000);
    for to in ["perfetto", "chrome-json"] {
        let out = dir.path().join(format!("out.{to}"));
        let output = run(
            &["convert", "--to", to, "-o", out.to_str().unwrap()],
            &trace,
        );
        assert!(output.status.success(), "{to}: {output:?}");
        let reader = TraceReader::open(&trace).unwrap();
        let merge = MergeOptions::default();
        let expected = if to == "perfetto" {
            write_perfetto(reader, Vec::new(), merge, &mut |_| {})
        } else {
            write_chrome_json(reader, Vec::new(), merge, &mut |_| {})
        }
        .unwrap();
        let written = std::fs::read(&out).unwrap();
        assert!(written.len() > 4 << 20, "{to}: {} bytes", written.len());
        assert!(
            written == expected,
            "{to}: the file ({} bytes) is not the export made in memory ({} bytes)",
            written.len(),
            expected.len()
        );
    }
}

#[test]
fn convert_of_a_damaged_file_writes_the_intact_part_and_one_error_line() {
    let bytes = sample();
    let (dir, path) = write("torn.out", &bytes[..bytes.len() - 3]);
    let out = dir.path().join("torn.json");
    let output = run(
        &[
            "convert",
            "--to",
            "chrome-json",
            "-o",
            out.to_str().unwrap(),
        ],
        &path,
    );
    let error = one_error_line(&output, &path);
    assert!(error.starts_with("truncated trace at byte "), "{error}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(!json["traceEvents"].as_array().unwrap().is_empty());
}

#[test]
fn convert_to_a_full_disk_fails_with_one_error_line_naming_the_output() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        eprintln!("skipped: no /dev/full on this system");
        return;
    }
    // The sample's output fails when it is flushed at the end; a recorded trace of 4 MB, whose
    // exports fill the 1 MiB output buffer many times, fails while it is written.
    let (dir, small) = write("trace.out", &sample());
    let large = dir.path().join("large.out");
    common::synthetic::write_trace(&large, 4_000_000);
    for path in [&small, &large] {
        for to in ["perfetto", "chrome-json"] {
            let output = run(&["convert", "--to", to, "-o", "/dev/full"], path);
            let error = one_error_line(&output, full);
            assert!(
                error.starts_with("No space left on device"),
                "{to}: {error}"
            );
            assert!(stdout(&output).is_empty(), "{to}: {output:?}");
        }
    }
}

#[test]
fn diagnose_prints_the_findings_with_their_location() {
    // Task 42 (spawned before the window) is polled on `main` for about 12 ms: a blocking
    // poll, minor in a 2 s window.
    let (_dir, path) = write("trace.out", &sample());
    let output = run(&["diagnose"], &path);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    assert!(
        text.starts_with(&format!(
            "{}: demo (pid 4242), 2.012s window",
            path.display()
        )),
        "{text}"
    );
    assert!(text.contains("Findings (1):\n1. [INFO] blocking_poll: a poll of task 42 (unknown) held worker main for 12.3"), "{text}");
    assert!(text.contains("     do:    "), "{text}");

    let output = run(&["diagnose", "--json"], &path);
    assert!(output.status.success(), "{output:?}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let finding = &json["findings"][0];
    assert_eq!(finding["kind"], "blocking_poll");
    assert_eq!(finding["severity"], "info");
    assert_eq!(finding["evidence"]["locations"][0], "unknown");
    assert_eq!(finding["evidence"]["tasks"][0], 42);
    assert!(
        finding["evidence"]["values"]["longest_ns"]
            .as_u64()
            .unwrap()
            > 12_000_000
    );
    assert_eq!(json["program"], "demo");
    assert_eq!(json["options"]["blocking_poll_ns"], 10_000_000);

    // Above the poll's length, nothing is found; the summary opens with the same verdict.
    let output = run(&["diagnose", "--blocking-poll-ms", "20"], &path);
    assert!(
        stdout(&output).contains("Findings: none\n"),
        "{}",
        stdout(&output)
    );
    let output = run(&["summary"], &path);
    assert!(stdout(&output).starts_with("Findings (1):\n1. [INFO] blocking_poll"));
    let output = run(&["summary", "--json"], &path);
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["diagnosis"]["findings"][0]["kind"], "blocking_poll");
}

#[test]
fn diagnose_of_a_directory_covers_each_file_and_reports_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.out"), sample()).unwrap();
    std::fs::write(dir.path().join("b.out"), b"not a trace").unwrap();
    let output = run(&["diagnose", "--json"], dir.path());
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["findings"][0]["kind"], "blocking_poll");
    assert!(stderr(&output).contains("b.out: not a flight-recorder trace"));
    let output = run(&["diagnose", "--sched-delay-ms=-1"], dir.path());
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        stderr(&output).contains("-1 is not a duration"),
        "{output:?}"
    );
    let output = run(&["diagnose", "--imbalance-ms", "NaN"], dir.path());
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}
