//! `flight-recorder export --to parquet`: the real binary on files written by hand.

use std::path::Path;
use std::process::{Command, Output};

use flight_recorder_format::EventKind;
use flight_recorder_test_support::{Ev, TraceBuilder, ORIGIN_TICKS};

/// A complete file: a task spawned, polled twice, a log.
fn sample() -> Vec<u8> {
    let base = ORIGIN_TICKS + 1_000_000;
    let mut b = TraceBuilder::standard(
        &[(1, "http")],
        &[(1, "src/main.rs", 10, 5)],
        &[(1, 101, "tokio-runtime-worker")],
    );
    b.chunk(
        1,
        base,
        &[
            Ev::new(EventKind::TaskSpawn, 0, &[42, 1, 0]),
            Ev::new(EventKind::PollStart, 10, &[42]),
            Ev::log(5, 1, "GET /users/42"),
            Ev::new(EventKind::PollEnd, 20_000_000, &[42, 0]),
            Ev::new(EventKind::TaskWake, 5, &[42, 0]),
            Ev::new(EventKind::PollStart, 10, &[42]),
            Ev::new(EventKind::PollEnd, 10, &[42, 1]),
        ],
    );
    b.finish()
}

fn export(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flight-recorder"))
        .arg("export")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run flight-recorder")
}

#[cfg(feature = "parquet")]
#[test]
fn export_writes_parquet_and_reports_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    std::fs::create_dir(&traces).unwrap();
    let bytes = sample();
    std::fs::write(traces.join("executiontrace.a.out"), &bytes).unwrap();

    let output = export(&["--to", "parquet", "traces", "-o", "out"], dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("1 trace file exported"), "{stdout}");
    assert!(stdout.contains("polls                2 rows"), "{stdout}");
    let polls = dir
        .path()
        .join("out/polls/service=demo/date=2026-11-22/host=box")
        .join("box_4242_20261122T023538.000000000Z.parquet");
    assert!(polls.exists(), "{stdout}");

    // A torn file: reported, the others exported, exit status 1.
    std::fs::write(
        traces.join("executiontrace.b.out"),
        &bytes[..bytes.len() - 20],
    )
    .unwrap();
    let output = export(
        &[
            "--to",
            "parquet",
            "traces",
            "-o",
            "out",
            "--long-poll-ms",
            "5",
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("executiontrace.b.out: ") && stderr.starts_with("flight-recorder: "),
        "{stderr}"
    );
    assert!(stdout.starts_with("1 trace file exported"), "{stdout}");
    assert!(stdout.contains("1 failed"), "{stdout}");
    assert!(stdout.contains("long_polls           1 rows"), "{stdout}");

    // --partial exports its intact part.
    let output = export(
        &["--to", "parquet", "traces", "-o", "out", "--partial"],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.starts_with("2 trace files exported"), "{stdout}");

    // An output that cannot be created.
    let output = export(
        &[
            "--to",
            "parquet",
            "traces",
            "-o",
            "traces/executiontrace.a.out/x",
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("executiontrace.a.out/x"), "{stderr}");
}

#[cfg(not(feature = "parquet"))]
#[test]
fn export_without_the_parquet_feature_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.out"), sample()).unwrap();
    let output = export(&["--to", "parquet", "t.out", "-o", "out"], dir.path());
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("built without Parquet support"), "{stderr}");
    assert!(!dir.path().join("out").exists());
}
