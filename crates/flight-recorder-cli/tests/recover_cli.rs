//! `flight-recorder recover`: a child process records into a ring and aborts; the command writes
//! the recovered file, which `flight-recorder summary` reads, and removes the ring.

use std::path::Path;
use std::process::Command;

use flight_recorder::ring::RingConfig;
use flight_recorder::{FlightRecorder, FlightRecorderConfig};

const CHILD_DIR: &str = "RECOVER_CLI_CHILD_DIR";

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flight-recorder"))
}

/// The child: records into a ring, then aborts.
#[test]
fn recover_cli_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let fr = FlightRecorder::new(FlightRecorderConfig {
        ring: Some(RingConfig {
            dir: Path::new(&dir).join("rings"),
            dump_dir: Path::new(&dir).join("dumps"),
            spare_chunks: 8,
        }),
        ..Default::default()
    });
    fr.start().unwrap();
    for i in 0..500u64 {
        let _region = flight_recorder::region("work");
        flight_recorder::counter("i", i);
    }
    std::process::abort();
}

#[test]
fn recover_writes_a_file_that_summary_reads() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "recover_cli_child", "--nocapture"])
        .env(CHILD_DIR, dir.path())
        .output()
        .unwrap()
        .status;
    assert!(!status.success());
    let rings = dir.path().join("rings");
    assert_eq!(std::fs::read_dir(&rings).unwrap().count(), 1);

    // Without -o, the file goes to the dump directory the ring recorded.
    let output = cli()
        .arg("recover")
        .arg("--ring-dir")
        .arg(&rings)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("SIGABRT"), "{stdout}");
    assert_eq!(
        std::fs::read_dir(&rings).unwrap().count(),
        0,
        "the ring is removed"
    );
    let files: Vec<_> = std::fs::read_dir(dir.path().join("dumps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("executiontrace.") && name.ends_with(".recovered.out"),
        "{name}"
    );

    let summary = cli().arg("summary").arg(&files[0]).output().unwrap();
    let text = String::from_utf8_lossy(&summary.stdout);
    assert!(
        summary.status.success(),
        "{}",
        String::from_utf8_lossy(&summary.stderr)
    );
    assert!(text.contains("recovered"), "{text}");
    assert!(text.contains("work"), "{text}");

    // Nothing left: a second run says so.
    let again = cli()
        .arg("recover")
        .arg("--ring-dir")
        .arg(&rings)
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("no ring"));
}

#[test]
fn recover_reports_a_corrupt_ring_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.1.1.ring"), b"garbage").unwrap();
    let output = cli()
        .arg("recover")
        .arg("--ring-dir")
        .arg(dir.path())
        .arg("-o")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("skipped"), "{stderr}");
    assert!(dir.path().join("x.1.1.ring").exists());
}
