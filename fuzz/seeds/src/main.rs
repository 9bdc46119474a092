//! Writes the fuzz targets' seed corpus: small, real trace files made by the recorder, plus
//! damaged copies of them and a file of format version 1.0. `cargo run --manifest-path fuzz/Cargo.toml -p flight-recorder-fuzz-seeds
//! -- fuzz/corpus` (what `scripts/fuzz.sh --seeds` does) rewrites them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use flight_recorder::{FlightRecorder, FlightRecorderConfig, FullTrace, SnapshotMeta, UserTask};

fn annotations(round: u64) {
    let task = UserTask::new("request");
    let _region = task.region("handle");
    task.log("http", &format!("GET /users/{round}"));
    flight_recorder::counter("queue_depth", round * 3);
    flight_recorder::mark("checkpoint");
    {
        let _inner = flight_recorder::region("db_query");
        flight_recorder::log("db", "SELECT 1");
    }
    task.end();
}

fn tokio_work() {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_time();
    flight_recorder::tokio::instrument(&mut builder);
    let runtime = builder.build().expect("runtime");
    runtime.block_on(async {
        let mut handles = Vec::new();
        for i in 0..4u64 {
            handles.push(tokio::spawn(async move {
                for _ in 0..3 {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    annotations(i);
                }
            }));
        }
        let blocking = tokio::task::spawn_blocking(|| annotations(99));
        for handle in handles {
            handle.await.expect("task");
        }
        blocking.await.expect("blocking task");
    });
}

/// A worker stuck in a blocking call, for the slow-poll watchdog.
#[inline(never)]
fn stuck_sleeping() {
    std::thread::sleep(Duration::from_millis(120));
}

/// A slow-poll dump with the stuck worker's stacks (`thread_stack` events, the Stacks and
/// Modules records), written by automatic capture.
fn slow_poll_dump() -> Vec<u8> {
    use flight_recorder::capture::{self, CaptureSettings};
    let dir = std::env::temp_dir().join(format!("fuzz-seed-dumps-{}", std::process::id()));
    capture::start(CaptureSettings {
        dump_dir: dir.clone(),
        slow_poll_threshold: Duration::from_millis(30),
        min_dump_interval: Duration::ZERO,
        signal: None,
        panic: false,
        announce: false,
        ..CaptureSettings::default()
    })
    .expect("capture");
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(1).enable_time();
    flight_recorder::tokio::instrument(&mut builder);
    let runtime = builder.build().expect("runtime");
    runtime.block_on(async {
        tokio::spawn(async { stuck_sleeping() })
            .await
            .expect("task");
    });
    drop(runtime);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let path = loop {
        let dumps = capture::list_dumps(&dir).expect("dump directory");
        if let Some(dump) = dumps.into_iter().next() {
            break dump.path;
        }
        assert!(std::time::Instant::now() < deadline, "no slow-poll dump");
        std::thread::sleep(Duration::from_millis(10));
    };
    capture::stop();
    let bytes = std::fs::read(&path).expect("dump");
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();

    // A flight-recorder snapshot of annotations on two threads.
    let recorder = FlightRecorder::new(FlightRecorderConfig::default());
    recorder.start().expect("start");
    for round in 0..3 {
        annotations(round);
    }
    std::thread::spawn(|| annotations(7))
        .join()
        .expect("thread");
    let mut snapshot = Vec::new();
    let meta = SnapshotMeta::new("slow_request", "slow")
        .program_version("seeds 1.0")
        .detail("route", "/users/{id}")
        .detail("elapsed_ms", 1520);
    recorder
        .write_to_with(&mut snapshot, &meta)
        .expect("snapshot");
    seeds.push(("snapshot_annotations", snapshot.clone()));

    // A snapshot of a tokio runtime: tasks, polls, wakes, workers parking.
    tokio_work();
    let mut tokio_snapshot = Vec::new();
    recorder.write_to(&mut tokio_snapshot).expect("snapshot");
    recorder.stop();
    seeds.push(("snapshot_tokio", tokio_snapshot.clone()));

    // A full trace.
    let full_path = std::env::temp_dir().join(format!("fuzz-seed-{}.trace", std::process::id()));
    {
        let file = std::fs::File::create(&full_path).expect("trace file");
        let trace = FullTrace::start(file).expect("trace");
        annotations(1);
        std::thread::spawn(|| annotations(2))
            .join()
            .expect("thread");
        trace.stop().expect("stop");
    }
    let full = std::fs::read(&full_path).expect("trace file");
    let _ = std::fs::remove_file(&full_path);
    seeds.push(("full_trace", full.clone()));

    // A slow-poll dump with the stuck worker's stacks.
    seeds.push(("slow_poll_stacks", slow_poll_dump()));

    // Damaged copies: torn in the middle, torn at the last record, one flipped byte.
    seeds.push(("torn_half", snapshot[..snapshot.len() / 2].to_vec()));
    seeds.push(("torn_end", full[..full.len() - 3].to_vec()));
    let mut flipped = tokio_snapshot.clone();
    let at = flipped.len() * 2 / 3;
    flipped[at] ^= 0x40;
    seeds.push(("flipped_byte", flipped));
    seeds.push(("preamble_only", snapshot[..12].to_vec()));

    // A snapshot written before the compact encodings of version 1.2 (version 1.0, plain task
    // and user-task events), as checked in for the format's tests: the old encoding stays in the
    // corpus whatever the recorder writes now.
    seeds.push((
        "v1_0_snapshot_tokio",
        include_bytes!(
            "../../../crates/flight-recorder-format/tests/fixtures/v1_0_snapshot_tokio.trace"
        )
        .to_vec(),
    ));

    for target in ["reader", "analysis"] {
        for (name, bytes) in &seeds {
            write(&out.join(target), name, bytes);
        }
    }
    // The CLI target's input is files: `name \0 contents` separated by FF FE FD FC.
    let mut dir = Vec::new();
    for (i, (name, bytes)) in seeds.iter().take(3).enumerate() {
        if i > 0 {
            dir.extend_from_slice(b"\xff\xfe\xfd\xfc");
        }
        dir.extend_from_slice(
            format!("executiontrace.2026-01-01T00_00_0{i}.000.{name}.out").as_bytes(),
        );
        dir.push(0);
        dir.extend_from_slice(&bytes[..bytes.len().min(4096)]);
    }
    dir.extend_from_slice(b"\xff\xfe\xfd\xfcnotes.txt\0not a trace");
    write(&out.join("cli_files"), "dump_dir", &dir);
    let mut torn_dir = b"executiontrace.2026-01-01T00_00_00.000.out\0".to_vec();
    torn_dir.extend_from_slice(&snapshot[..40.min(snapshot.len())]);
    write(&out.join("cli_files"), "torn_header", &torn_dir);
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("corpus directory");
    std::fs::write(dir.join(format!("seed_{name}")), bytes).expect("seed");
    println!(
        "{}: {} bytes",
        dir.join(format!("seed_{name}")).display(),
        bytes.len()
    );
}
