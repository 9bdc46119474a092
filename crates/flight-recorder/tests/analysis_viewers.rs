//! Exports of real traces checked by independent tools:
//!
//! - the Perfetto export is decoded with the Perfetto schema of the PyPI package `perfetto`
//!   (`flight-recorder-analysis/tests/perfetto_check.py`), which fails on unknown fields, packed
//!   repeated fields, unbalanced slices, interned ids used before their definition, dangling
//!   track parents and flows without both ends;
//! - the Chrome JSON export is opened in speedscope (npm) in headless Chromium;
//! - the HTML report is opened in headless Chromium: a screenshot that is not blank, the
//!   expected sections in the DOM, no JavaScript error in the console.
//!
//! The tools come from `scripts/install-viewer-tools.sh`. A missing tool skips the test with a
//! message, unless `FLIGHT_RECORDER_REQUIRE_VIEWERS=1` (CI), which makes it a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use common::serial;
use flight_recorder::raw::{self, EventKind};
use flight_recorder::{FlightRecorder, FlightRecorderConfig};
use flight_recorder_analysis::chrome::write_chrome_json;
use flight_recorder_analysis::merge::MergeOptions;
use flight_recorder_analysis::perfetto::write_perfetto;
use flight_recorder_analysis::report::render_html;
use flight_recorder_analysis::Summary;
use flight_recorder_format::TraceReader;
use serde_json::{json, Value};

fn analysis_tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../flight-recorder-analysis/tests")
}

/// Whether a missing viewer tool is a failure (CI) rather than a reason to skip.
fn required() -> bool {
    std::env::var("FLIGHT_RECORDER_REQUIRE_VIEWERS").is_ok_and(|v| v == "1")
}

/// Whether the tool is there; else skips (prints why) or fails when required.
fn need(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    let message = format!(
        "{what} is missing: run scripts/install-viewer-tools.sh (FLIGHT_RECORDER_REQUIRE_VIEWERS=1 \
         makes this a failure)"
    );
    assert!(!required(), "{message}");
    eprintln!("skipping: {message}");
    false
}

fn python_perfetto() -> bool {
    Command::new("python3")
        .args([
            "-c",
            "import perfetto.protos.perfetto.trace.perfetto_trace_pb2",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

fn speedscope() -> Option<PathBuf> {
    let tools = std::env::var_os("FLIGHT_RECORDER_VIEWER_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/viewer-tools"));
    let index = tools.join("node_modules/speedscope/dist/release/index.html");
    index.is_file().then_some(index)
}

/// A workload with every kind of timeline content: a 50 ms poll on a worker with a region and a
/// log inside, tasks woken from another thread and queued behind it, a user task with a region,
/// counters, marks, and a region and a user task still open at the end of the window.
fn workload() -> Vec<u8> {
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(30),
        max_bytes: 64 << 20,
        ..Default::default()
    });
    fr.start().expect("start");
    let location = raw::intern_location(std::panic::Location::caller());
    let (started, wait_started) = mpsc::channel();
    let (woken, wait_woken) = mpsc::channel();
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("viewer-worker".into())
            .spawn_scoped(s, move || {
                raw::record(EventKind::RuntimeThread, &[1, 0]);
                raw::record(EventKind::RuntimeName, &[1, raw::intern_str("viewer-rt")]);
                raw::record(EventKind::WorkerUnpark, &[]);
                raw::record(EventKind::TaskSpawn, &[1, location, 0]);
                raw::poll_start(1);
                started.send(()).unwrap();
                {
                    let _r = flight_recorder::region("blocking_call");
                    flight_recorder::log("handler", "a \"quoted\" <message> & more");
                    std::thread::sleep(Duration::from_millis(50));
                }
                wait_woken.recv().unwrap();
                // A region held across the end of the poll (an `.await`), ended in a later poll.
                let carried = raw::intern_str("carried");
                raw::record(EventKind::RegionBegin, &[carried, 42]);
                raw::poll_end(1, false);
                for task in 2..=4 {
                    raw::poll_start(task);
                    raw::record(EventKind::Mark, &[raw::intern_str("checkpoint"), 0]);
                    raw::poll_end(task, true);
                    raw::record(EventKind::TaskTerminate, &[task]);
                }
                raw::poll_start(1);
                raw::record(EventKind::RegionEnd, &[carried, 42]);
                raw::poll_end(1, false);
                raw::record(EventKind::WorkerPark, &[]);
                let _open = flight_recorder::region("open_at_the_end");
                std::mem::forget(_open);
            })
            .unwrap();
        std::thread::Builder::new()
            .name("viewer-waker".into())
            .spawn_scoped(s, move || {
                for task in 2..=4 {
                    raw::record(EventKind::TaskSpawn, &[task, location, 1]);
                }
                wait_started.recv().unwrap();
                let depth = raw::intern_str("queue_depth");
                for (task, n) in (2..=4).zip(1..) {
                    raw::record(EventKind::TaskWake, &[task, 0]);
                    raw::record(EventKind::Counter, &[depth, n]);
                }
                raw::record(EventKind::TaskWake, &[1, 0]);
                woken.send(()).unwrap();
                let request = raw::intern_str("request");
                raw::record(EventKind::UserTaskBegin, &[42, 0, request]);
                {
                    let _db = flight_recorder::region("db_query");
                    std::thread::sleep(Duration::from_millis(5));
                }
                raw::record(EventKind::UserTaskEnd, &[42]);
                raw::record(EventKind::UserTaskBegin, &[43, 0, request]);
                // An end of a user task that never began (lost at the window's edge).
                raw::record(EventKind::UserTaskEnd, &[99]);
                raw::record(EventKind::RegionEnd, &[raw::intern_str("never_begun"), 0]);
            })
            .unwrap();
    });
    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).expect("snapshot");
    fr.stop();
    bytes
}

fn reader(bytes: &[u8]) -> TraceReader<&[u8]> {
    TraceReader::new(bytes).expect("header")
}

/// The strings of a JSON list.
fn strings(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run a viewer tool")
}

#[test]
fn perfetto_export_passes_the_independent_decoder() {
    let _serial = serial();
    if !need(python_perfetto(), "python3 with the PyPI package perfetto") {
        return;
    }
    let bytes = workload();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.perfetto-trace");
    let out = write_perfetto(
        reader(&bytes),
        Vec::new(),
        MergeOptions::default(),
        &mut |_| {},
    )
    .expect("export");
    std::fs::write(&path, out).unwrap();
    let output = run(Command::new("python3")
        .arg(analysis_tests_dir().join("perfetto_check.py"))
        .arg(&path));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "perfetto_check failed:\n{stderr}");
    let stats: Value = serde_json::from_slice(&output.stdout).expect("checker JSON");
    let names = strings(&stats["thread_names"]);
    assert!(names.contains(&"viewer-worker"), "{stats}");
    assert!(names.contains(&"viewer-waker"), "{stats}");
    // Polls on the thread track and on each task's track: 1 + 3 + 1 polls, twice.
    assert_eq!(stats["slices"]["poll"], 10, "{stats}");
    // Named by spawn location on the thread's track, `poll` on the task's (whose group gives the
    // location): summed by name, each poll counts once.
    assert_eq!(stats["task_slice_names"], json!({"poll": 5}), "{stats}");
    let polls = strings(&stats["slice_names"]["poll"]);
    assert!(polls.contains(&"poll"), "{stats}");
    assert!(
        polls
            .iter()
            .any(|name| name.contains("analysis_viewers.rs:")),
        "{stats}"
    );
    assert_eq!(stats["tracks"]["task"], 4, "{stats}");
    // The four tasks were spawned at one location: one group holds their tracks.
    assert_eq!(stats["tracks"]["task_location"], 1, "{stats}");
    // The tasks of a location and the user tasks in the order they began, not by name.
    let chronological = strings(&stats["chronological"]);
    assert_eq!(chronological.len(), 2, "{stats}");
    assert!(chronological.contains(&"user tasks"), "{stats}");
    assert!(
        chronological
            .iter()
            .any(|name| name.contains("analysis_viewers.rs:")),
        "{stats}"
    );
    assert_eq!(stats["tracks"]["process"], 1, "{stats}");
    assert_eq!(stats["tracks"]["counter"], 1, "{stats}");
    assert_eq!(stats["tracks"]["user_task"], 2, "{stats}");
    let regions = strings(&stats["slice_names"]["region"]);
    for region in ["blocking_call", "carried", "db_query", "open_at_the_end"] {
        assert!(regions.contains(&region), "{region} missing: {stats}");
    }
    // Every poll caused by a wake or spawn has a flow from it: 4 spawns/wakes + the re-poll.
    assert_eq!(stats["flows"], 5, "{stats}");
    assert_eq!(stats["counts"]["instants_log"], 1, "{stats}");
    assert_eq!(stats["counts"]["instants_mark"], 3, "{stats}");
    assert_eq!(stats["counts"]["counter_values"], 3, "{stats}");
}

/// A trace of a real tokio runtime with many tasks passes the decoder too.
#[test]
fn perfetto_export_of_a_tokio_runtime_passes_the_independent_decoder() {
    let _serial = serial();
    if !need(python_perfetto(), "python3 with the PyPI package perfetto") {
        return;
    }
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(30),
        max_bytes: 64 << 20,
        ..Default::default()
    });
    fr.start().unwrap();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    flight_recorder::tokio::instrument(&mut builder);
    let runtime = builder.build().unwrap();
    runtime.block_on(async {
        let mut handles = Vec::new();
        for i in 0..200u64 {
            handles.push(flight_recorder::tokio::spawn(async move {
                let _r = flight_recorder::region("work");
                tokio::time::sleep(Duration::from_micros(100 * (i % 7))).await;
                tokio::task::yield_now().await;
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    });
    drop(runtime);
    let mut bytes = Vec::new();
    fr.write_to(&mut bytes).unwrap();
    fr.stop();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokio.perfetto-trace");
    let out = write_perfetto(
        reader(&bytes),
        Vec::new(),
        MergeOptions::default(),
        &mut |_| {},
    )
    .expect("export");
    std::fs::write(&path, out).unwrap();
    let output = run(Command::new("python3")
        .arg(analysis_tests_dir().join("perfetto_check.py"))
        .arg(&path));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "perfetto_check failed:\n{stderr}");
    let stats: Value = serde_json::from_slice(&output.stdout).expect("checker JSON");
    assert!(stats["tracks"]["task"].as_u64().unwrap() >= 200, "{stats}");
    // All spawned at one place: their tracks are in one group, named once.
    assert_eq!(stats["tracks"]["task_location"], 1, "{stats}");
    assert!(stats["flows"].as_u64().unwrap() >= 200, "{stats}");
}

/// Headless Chromium with a fresh profile and no network activity of its own.
fn chromium_command(binary: &str, profile: &Path) -> Command {
    let mut command = Command::new(binary);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--allow-file-access-from-files",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,800",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// Console errors and uncaught exceptions in Chromium's log.
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.contains("Uncaught")
                || l.contains(":ERROR:CONSOLE")
                || (l.contains("CONSOLE") && l.contains("Error"))
        })
        .collect()
}

/// Takes a screenshot of `url` and returns (png stats, dom, console errors).
fn render(binary: &str, url: &str, dir: &Path) -> (Value, String, Vec<String>) {
    let shot = dir.join("shot.png");
    let output = run(chromium_command(binary, &dir.join("profile-shot"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(url));
    assert!(output.status.success(), "chromium failed: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let mut errors: Vec<String> = console_errors(&stderr)
        .into_iter()
        .map(String::from)
        .collect();
    let stats = run(Command::new("python3")
        .arg(analysis_tests_dir().join("png_check.py"))
        .arg(&shot));
    assert!(stats.status.success(), "png_check failed: {stats:?}");
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    let dom = run(chromium_command(binary, &dir.join("profile-dom"))
        .arg("--dump-dom")
        .arg(url));
    assert!(dom.status.success(), "chromium --dump-dom failed: {dom:?}");
    let dom_stderr = String::from_utf8_lossy(&dom.stderr).into_owned();
    errors.extend(console_errors(&dom_stderr).into_iter().map(String::from));
    (
        stats,
        String::from_utf8_lossy(&dom.stdout).into_owned(),
        errors,
    )
}

#[test]
fn chrome_json_opens_in_speedscope() {
    let _serial = serial();
    let binary = chromium();
    if !need(binary.is_some(), "chromium") {
        return;
    }
    let index = speedscope();
    if !need(index.is_some(), "speedscope (npm) in target/viewer-tools") {
        return;
    }
    if !need(
        python_perfetto() || Command::new("python3").arg("-V").output().is_ok(),
        "python3",
    ) {
        return;
    }
    let bytes = workload();
    let json = write_chrome_json(
        reader(&bytes),
        Vec::new(),
        MergeOptions::default(),
        &mut |_| {},
    )
    .expect("export");
    // Valid JSON: complete events for slices with nothing inside, B/E pairs named on both ends
    // for the others.
    let parsed: Value = serde_json::from_slice(&json).expect("valid JSON");
    let events = parsed["traceEvents"].as_array().unwrap();
    let begins = events.iter().filter(|e| e["ph"] == "B").count();
    let ends = events.iter().filter(|e| e["ph"] == "E").count();
    assert_eq!(begins, ends);
    assert!(events
        .iter()
        .filter(|e| e["ph"] == "E" || e["ph"] == "X")
        .all(|e| e["name"].as_str().is_some_and(|n| !n.is_empty())));
    let complete: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert!(!complete.is_empty());
    assert!(complete
        .iter()
        .all(|e| e["dur"].as_f64().is_some_and(|d| d >= 0.0)));
    assert!(events.iter().any(|e| e["ph"] == "s") && events.iter().any(|e| e["ph"] == "f"));
    assert!(events.iter().any(|e| e["ph"] == "C"));
    // speedscope loads a profile from a script that calls `speedscope.loadFileFromBase64`
    // (what its own command line does), which works from file:// without fetch.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("profile.js");
    std::fs::write(
        &script,
        format!(
            "speedscope.loadFileFromBase64({}, {})",
            serde_json::to_string("flight-recorder-export.json").unwrap(),
            serde_json::to_string(&base64(&json)).unwrap()
        ),
    )
    .unwrap();
    let url = format!(
        "file://{}#localProfilePath={}",
        index.unwrap().display(),
        script.display()
    );
    let (stats, dom, errors) = render(binary.unwrap(), &url, dir.path());
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert!(
        stats["non_background_share"].as_f64().unwrap() > 0.02,
        "blank screenshot: {stats}"
    );
    assert!(
        dom.contains("<title>flight-recorder-export.json - speedscope</title>"),
        "speedscope did not load the profile:\n{}",
        &dom[..dom.len().min(2000)]
    );
    assert!(dom.contains("viewer-worker"), "no thread name in the DOM");
}

#[test]
fn html_report_renders_in_chromium() {
    let _serial = serial();
    let binary = chromium();
    if !need(binary.is_some(), "chromium") {
        return;
    }
    let bytes = workload();
    let mut summary = Summary::from_reader(reader(&bytes)).expect("summary");
    summary.path = Some("workload.trace".into());
    let html = render_html(&summary);
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no network at view time"
    );
    assert!(!html.contains("<script"), "no script");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.html");
    std::fs::write(&path, &html).unwrap();
    let (stats, dom, errors) = render(
        binary.unwrap(),
        &format!("file://{}", path.display()),
        dir.path(),
    );
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert!(
        stats["non_background_share"].as_f64().unwrap() > 0.05,
        "blank screenshot: {stats}"
    );
    for section in [
        "overview",
        "workers",
        "latency",
        "long-polls",
        "locations",
        "user-tasks",
        "regions",
        "logs",
    ] {
        assert!(
            dom.contains(&format!("<section id=\"{section}\">")),
            "section {section} missing"
        );
    }
    for text in [
        "viewer-worker",
        "blocking_call",
        "request",
        "a \"quoted\" &lt;message&gt; &amp; more",
        "Long polls (at least 10.000ms)",
    ] {
        assert!(dom.contains(text), "{text:?} missing from the DOM");
    }
    assert!(dom.contains("<svg"), "no chart");
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The checker itself fails on broken files: an unknown field, a packed repeated field, a flow
/// without its end and a flow id begun again while its flow is open, appended to a valid export.
#[test]
fn the_perfetto_checker_rejects_broken_files() {
    let _serial = serial();
    if !need(python_perfetto(), "python3 with the PyPI package perfetto") {
        return;
    }
    let bytes = workload();
    let good = write_perfetto(
        reader(&bytes),
        Vec::new(),
        MergeOptions::default(),
        &mut |_| {},
    )
    .expect("export");
    let packet = |body: &[u8]| {
        let mut p = vec![0x0a, body.len() as u8];
        p.extend_from_slice(body);
        p
    };
    // TracePacket field 999 (varint).
    let unknown = packet(&[0xb8, 0x3e, 0x01]);
    // A track event (field 11) with flow_ids (47) packed: wire type 2.
    let mut event = vec![0xfa, 0x02, 0x08];
    event.extend_from_slice(&5u64.to_le_bytes());
    let mut body = vec![0x40, 0x05, 0x50, 0x01, 0x5a, event.len() as u8];
    body.extend_from_slice(&event);
    let packed = packet(&body);
    // An instant on the process track (uuid 1) of sequence 1 that begins flow 1
    // (flow_ids_old, field 36): every flow of the export has ended by then.
    let flow_begin = {
        let event = [
            0x48, 0x03, 0x58, 0x01, 0xba, 0x01, 0x01, b'x', 0xa0, 0x02, 0x01,
        ];
        let mut body = vec![0x40, 0x05, 0x50, 0x01, 0x5a, event.len() as u8];
        body.extend_from_slice(&event);
        packet(&body)
    };
    // A task's track (descriptor, field 60: uuid 200, name, parent 9) straight under the
    // "tasks" track, outside any spawn location's group.
    let ungrouped = {
        let mut descriptor = vec![0x08, 0xc8, 0x01, 0x12, 7];
        descriptor.extend_from_slice(b"task 99");
        descriptor.extend_from_slice(&[0x28, 0x09]);
        let mut body = vec![0xe2, 0x03, descriptor.len() as u8];
        body.extend_from_slice(&descriptor);
        packet(&body)
    };
    let dir = tempfile::tempdir().unwrap();
    for (name, extra, expected) in [
        ("unknown", unknown, "unknown field 999"),
        ("ungrouped", ungrouped, "is not in a spawn location's group"),
        ("packed", packed, "packed repeated field"),
        ("unended", flow_begin.clone(), "flow 1 begun at packet"),
        (
            "begun twice",
            [flow_begin.clone(), flow_begin].concat(),
            "flow 1 begins again",
        ),
    ] {
        let path = dir.path().join(name);
        let mut file = good.clone();
        file.extend_from_slice(&extra);
        std::fs::write(&path, file).unwrap();
        let output = run(Command::new("python3")
            .arg(analysis_tests_dir().join("perfetto_check.py"))
            .arg(&path));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
}
