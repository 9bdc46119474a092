//! The corpus: snapshots written by real programs (a tokio service on an instrumented
//! multi-thread runtime, with automatic capture writing a periodic file every 25 ms), run under
//! several names and versions, and the commands that read it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

/// The programs of the corpus: (executable name, program version, every how many requests one
/// blocks its worker for 12 ms, files).
pub const PROGRAMS: &[(&str, &str, u64, usize)] = &[
    ("checkout", "checkout 1.4.0", 40, 50),
    ("checkout", "checkout 1.5.0", 10, 50),
    ("search", "search 2.0.1", 25, 50),
    ("billing", "billing 0.9.3", 60, 50),
];

/// How many snapshots the corpus holds.
pub const SNAPSHOTS: usize = 200;

/// The environment variable that turns this test binary into one of the corpus's programs.
const CHILD_DIR: &str = "FLIGHT_RECORDER_QUERY_TEST_CHILD_DIR";

/// One of the corpus's programs, when this test binary runs as one (else it does nothing).
#[test]
fn corpus_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let version = std::env::var("FLIGHT_RECORDER_QUERY_TEST_VERSION").unwrap();
    let block_every: u64 = std::env::var("FLIGHT_RECORDER_QUERY_TEST_BLOCK_EVERY")
        .unwrap()
        .parse()
        .unwrap();
    let files: u64 = std::env::var("FLIGHT_RECORDER_QUERY_TEST_FILES")
        .unwrap()
        .parse()
        .unwrap();
    flight_recorder::capture::start(flight_recorder::capture::CaptureSettings {
        dump_dir: PathBuf::from(dir),
        interval: Duration::from_millis(25),
        duration: Duration::from_millis(200),
        min_dump_interval: Duration::ZERO,
        program_version: version,
        announce: false,
        signal: None,
        panic: false,
        ..Default::default()
    })
    .unwrap();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    flight_recorder::tokio::instrument(&mut builder);
    let runtime = builder.build().unwrap();
    runtime.block_on(async {
        let mut request = 0u64;
        while flight_recorder::capture::status().files_written < files {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    request += 1;
                    flight_recorder::tokio::spawn(handle(request, block_every))
                })
                .collect();
            for handle in handles {
                handle.await.unwrap();
            }
        }
    });
    flight_recorder::capture::stop();
}

/// A request: a lookup task, a short sleep, some work, and now and then a blocking call.
async fn handle(request: u64, block_every: u64) {
    let lookup = flight_recorder::tokio::spawn(async move {
        tokio::time::sleep(Duration::from_micros(300)).await;
        request.wrapping_mul(2_654_435_761)
    });
    let key = lookup.await.unwrap();
    tokio::task::yield_now().await;
    let mut x = key;
    for i in 0..2_000u64 {
        x = x.rotate_left(5) ^ i;
    }
    std::hint::black_box(x);
    if request.is_multiple_of(block_every) {
        std::thread::sleep(Duration::from_millis(12));
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// The corpus, written once per build of this test binary (and shared by its test processes,
/// nextest running each test in a process of its own): [`SNAPSHOTS`] trace files in one
/// directory.
pub fn corpus() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| shared("corpus", write_corpus))
}

/// A directory made once per build of this test binary, under the target directory's `tmp`:
/// made under a name of its own, then renamed into place (the loser of a race drops its copy).
fn shared(what: &str, make: impl FnOnce(&Path)) -> PathBuf {
    let exe = std::fs::metadata(std::env::current_exe().unwrap()).unwrap();
    let stamp = exe
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let done = base.join(format!("query-test-{what}-{stamp:x}-{:x}", exe.len()));
    if done.is_dir() {
        return done;
    }
    let work = tempfile::Builder::new()
        .prefix(&format!("query-test-{what}-making-"))
        .tempdir_in(base)
        .unwrap();
    make(work.path());
    let made = work.keep();
    if std::fs::rename(&made, &done).is_err() {
        let _ = std::fs::remove_dir_all(&made);
        assert!(done.is_dir(), "{} was not made", done.display());
    }
    done
}

fn write_corpus(corpus: &Path) {
    let started = std::time::Instant::now();
    let work = tempfile::tempdir().unwrap();
    let me = std::env::current_exe().unwrap();
    let mut children = Vec::new();
    for (i, &(name, version, block_every, files)) in PROGRAMS.iter().enumerate() {
        // The program's name in the files is its executable's (the service, for the tables).
        let bin_dir = work.path().join(format!("bin{i}"));
        std::fs::create_dir_all(&bin_dir).unwrap();
        let exe = bin_dir.join(name);
        if std::fs::hard_link(&me, &exe).is_err() {
            std::fs::copy(&me, &exe).unwrap();
        }
        let dump_dir = work.path().join(format!("dumps{i}"));
        std::fs::create_dir_all(&dump_dir).unwrap();
        let child = Command::new(&exe)
            .args([
                "--exact",
                "corpus::corpus_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, &dump_dir)
            .env("FLIGHT_RECORDER_QUERY_TEST_VERSION", version)
            .env(
                "FLIGHT_RECORDER_QUERY_TEST_BLOCK_EVERY",
                block_every.to_string(),
            )
            .env("FLIGHT_RECORDER_QUERY_TEST_FILES", files.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        children.push((child, dump_dir, files, i));
    }
    for (mut child, dump_dir, files, i) in children {
        assert!(child.wait().unwrap().success(), "corpus program {i} failed");
        let mut written: Vec<PathBuf> = std::fs::read_dir(&dump_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "out"))
            .collect();
        written.sort();
        assert!(
            written.len() >= files,
            "{}: {} files",
            dump_dir.display(),
            written.len()
        );
        for (n, file) in written.iter().take(files).enumerate() {
            let stem = file.file_name().unwrap().to_str().unwrap();
            let stamp = &stem["executiontrace.".len().."executiontrace.".len() + 23];
            let target = corpus.join(format!("executiontrace.{stamp}.p{i}_{n:03}.out"));
            std::fs::rename(file, target).unwrap();
        }
    }
    eprintln!(
        "corpus: {SNAPSHOTS} snapshots written in {:.1?}",
        started.elapsed()
    );
}

/// The `flight-recorder-query` executable.
pub fn query_bin() -> &'static str {
    env!("CARGO_BIN_EXE_flight-recorder-query")
}

/// Runs `flight-recorder-query`.
pub fn query(args: &[&str]) -> Output {
    Command::new(query_bin()).args(args).output().unwrap()
}

/// Runs a query with `--format json` and gives its rows; fails the test on any error.
pub fn query_json(sql: &str, inputs: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec![sql];
    args.extend_from_slice(inputs);
    args.extend_from_slice(&["--format", "json"]);
    let output = query(&args);
    assert!(
        output.status.success(),
        "query failed: {sql}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&output.stdout));
    });
    value.as_array().unwrap().clone()
}

/// The `flight-recorder` executable, built in the same target directory (`cargo nextest run
/// --workspace` and `cargo build --workspace` build it; `FLIGHT_RECORDER_CLI` names another).
pub fn cli_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("FLIGHT_RECORDER_CLI") {
            return PathBuf::from(path);
        }
        let beside = Path::new(query_bin()).with_file_name("flight-recorder");
        assert!(
            beside.is_file(),
            "{} is missing: build it first with `cargo build -p flight-recorder-cli` (same \
             CARGO_TARGET_DIR), or set FLIGHT_RECORDER_CLI",
            beside.display()
        );
        beside
    })
    .clone()
}

/// Runs `flight-recorder`.
pub fn cli(args: &[&str]) -> Output {
    Command::new(cli_bin()).args(args).output().unwrap()
}

/// `flight-recorder summary DIR --json`: one summary per file.
pub fn summaries(dir: &Path) -> Vec<serde_json::Value> {
    let output = cli(&["summary", dir.to_str().unwrap(), "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    value.as_array().unwrap().clone()
}

/// The corpus exported to Parquet, once (`flight-recorder export --to parquet`).
pub fn parquet_export() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| shared("parquet", export_corpus))
}

fn export_corpus(out: &Path) {
    let output = cli(&[
        "export",
        "--to",
        "parquet",
        corpus().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A number of a JSON row (integers may come as numbers or, for wide types, as text).
pub fn num(value: &serde_json::Value) -> u64 {
    match value {
        serde_json::Value::Number(n) => n.as_u64().unwrap_or_else(|| n.as_f64().unwrap() as u64),
        serde_json::Value::String(s) => s.parse().unwrap(),
        other => panic!("not a number: {other}"),
    }
}
