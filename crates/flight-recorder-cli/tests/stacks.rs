//! Real stacks of threads of this test process, captured with `flight_recorder::stack`, written
//! into a trace file with this process's modules, then read by the real `flight-recorder`
//! binary: `symbolize`, `summary` (text and JSON), `dump`, the Perfetto export and the report
//! name the functions the threads were stuck in, with their files and lines.

use flight_recorder_test_support as common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Ev, TraceBuilder, ORIGIN_TICKS};
use flight_recorder::stack::{capture_thread_stack, loaded_modules, register_current_thread};
use flight_recorder_format::{EventKind, Module, TraceReader};

const BASE: u64 = ORIGIN_TICKS + 1_000_000;
const MS: u64 = 1_000_000;

static SPIN_A_LINE: AtomicU32 = AtomicU32::new(0);
static SPIN_B_LINE: AtomicU32 = AtomicU32::new(0);

/// A thread's loop: `inside` is set from within the loop, so that a stack taken after it is
/// set shows the loop (and not the thread still on its way into the function, as a slow
/// machine can leave it for a while).
#[derive(Default)]
struct Spin {
    stop: AtomicBool,
    inside: AtomicBool,
}

#[inline(never)]
fn stuck_spinning_a(spin: &Spin) {
    SPIN_A_LINE.store(line!() + 1, Ordering::Relaxed);
    while !spin.stop.load(Ordering::Relaxed) {
        spin.inside.store(true, Ordering::Relaxed);
    }
}

#[inline(never)]
fn stuck_spinning_b(spin: &Spin) {
    SPIN_B_LINE.store(line!() + 1, Ordering::Relaxed);
    while !spin.stop.load(Ordering::Relaxed) {
        spin.inside.store(true, Ordering::Relaxed);
    }
}

/// Captures `n` stacks of a thread looping in `f`, once it is inside the loop.
fn capture(f: fn(&Spin), n: usize) -> Vec<Vec<u64>> {
    let spin = Arc::new(Spin::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let s = spin.clone();
    let thread = std::thread::spawn(move || {
        tx.send(register_current_thread().unwrap()).unwrap();
        f(&s);
    });
    let handle = rx.recv().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !spin.inside.load(Ordering::Relaxed) {
        assert!(
            Instant::now() < deadline,
            "the thread never reached its loop"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut stacks = Vec::new();
    while stacks.len() < n {
        let stack = capture_thread_stack(&handle, Instant::now() + Duration::from_secs(2)).unwrap();
        stacks.push(stack.frames.iter().map(|f| f.address as u64).collect());
    }
    spin.stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
    stacks
}

fn modules() -> Vec<Module> {
    loaded_modules()
        .into_iter()
        .enumerate()
        .map(|(i, m)| Module {
            id: i as u64 + 1,
            start: m.start as u64,
            end: m.end as u64,
            load_bias: m.load_bias as u64,
            path: m.path.display().to_string(),
            build_id: m.build_id.unwrap_or_default(),
        })
        .collect()
}

/// A trace of two workers: task 1 (spawned in this file) polled 50 ms on worker 1 while stuck
/// in `stuck_spinning_a`, task 2 (spawned inside a dependency) polled 30 ms on worker 2 in
/// `stuck_spinning_b`; a watchdog records their stacks, and CPU samples 3:1.
fn trace(modules: &[Module]) -> Vec<u8> {
    let a = capture(stuck_spinning_a, 2);
    let b = capture(stuck_spinning_b, 1);
    let mut t = TraceBuilder::standard(
        &[],
        &[
            (1, "crates/app/src/main.rs", 10, 5),
            (
                2,
                "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/axum-0.8.9/src/serve/mod.rs",
                389,
                13,
            ),
        ],
        &[(1, 101, "worker-1"), (2, 102, "worker-2"), (3, 103, "watchdog")],
    );
    t.modules(modules)
        .stacks(&[(1, a[0].clone()), (2, a[1].clone()), (3, b[0].clone())]);
    t.chunk(
        1,
        BASE,
        &[
            Ev::new(EventKind::RuntimeThread, 0, &[1, 0]),
            Ev::new(EventKind::TaskSpawn, 0, &[1, 1, 0]),
            Ev::new(EventKind::PollStart, 1_000, &[1]),
            Ev::new(EventKind::PollEnd, 50 * MS, &[1, 0]),
        ],
    )
    .chunk(
        2,
        BASE,
        &[
            Ev::new(EventKind::RuntimeThread, 0, &[1, 0]),
            Ev::new(EventKind::TaskSpawn, 0, &[2, 2, 0]),
            Ev::new(EventKind::PollStart, 1_000, &[2]),
            Ev::new(EventKind::PollEnd, 30 * MS, &[2, 0]),
        ],
    )
    .chunk(
        3,
        BASE + 20 * MS,
        &[
            Ev::new(EventKind::ThreadStack, 0, &[1, 1, 1, 1]),
            Ev::new(EventKind::ThreadStack, 0, &[2, 2, 3, 1]),
            // Samples taken 1 ms ago: attributed through the polls running then.
            Ev::new(EventKind::CpuSample, 1_000, &[1, 1, MS, 0]),
            Ev::new(EventKind::CpuSample, 0, &[1, 2, MS, 0]),
            Ev::new(EventKind::CpuSample, 0, &[1, 1, MS, 0]),
            Ev::new(EventKind::CpuSample, 0, &[2, 3, MS, 2]),
            Ev::new(EventKind::ThreadStack, 10 * MS, &[1, 1, 2, 1]),
        ],
    );
    t.finish()
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flight-recorder"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{o:?}");
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// `tests/stacks.rs:LINE` for the line of the spin loop that `text` names (the loop's lines
/// follow the recorded one), or the file alone when `text` names it without a line (a stack
/// taken at code that debug info ties to no line), else the first of the loop's lines.
fn file_line_in(line: &AtomicU32, text: &str) -> String {
    const FILE: &str = "tests/stacks.rs";
    let first = line.load(Ordering::Relaxed);
    let no_line = || {
        text.match_indices(FILE)
            .any(|(i, _)| !text[i + FILE.len()..].starts_with(':'))
            .then(|| FILE.to_string())
    };
    (first..first + 3)
        .map(|l| format!("{FILE}:{l}"))
        .find(|at| text.contains(at.as_str()))
        .or_else(no_line)
        .unwrap_or_else(|| format!("{FILE}:{first}"))
}

struct Files {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn write_trace() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stacks.out");
    std::fs::write(&path, trace(&modules())).unwrap();
    // To look at the file (or measure `symbolize` on it) after the test.
    if let Some(keep) = std::env::var_os("FLIGHT_RECORDER_KEEP_STACKS_TRACE") {
        std::fs::copy(&path, keep).unwrap();
    }
    Files { _dir: dir, path }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn symbolize_writes_the_names_into_the_file() {
    let f = write_trace();
    let out = f.path.with_extension("sym.out");
    let o = run(&["symbolize", s(&f.path), "-o", s(&out)]);
    let text = stdout(&o);
    assert!(text.contains("addresses resolved"), "{text}");
    let mut reader = TraceReader::open(&out).unwrap();
    reader.read_all_events().unwrap();
    let names = reader.name_tables();
    let lines = SPIN_A_LINE.load(Ordering::Relaxed)..SPIN_A_LINE.load(Ordering::Relaxed) + 3;
    // Line 0: a stack taken at code that debug info ties to no line.
    let found = names.symbols().values().flatten().any(|f| {
        f.function.ends_with("stuck_spinning_a")
            && f.file.ends_with("tests/stacks.rs")
            && (lines.contains(&f.line) || f.line == 0)
    });
    assert!(found, "no symbol for stuck_spinning_a");
    // The copy reads with names where the binaries are gone: its symbols win over the modules.
    let dump = stdout(&run(&["dump", s(&out)]));
    assert!(dump.contains("stuck_spinning_a"), "{dump}");
    // The default output name; the input is never overwritten.
    let o = run(&["symbolize", s(&f.path)]);
    stdout(&o);
    assert!(Path::new(&format!("{}.symbolized.out", s(&f.path))).exists());
    let o = run(&["symbolize", s(&f.path), "-o", s(&f.path)]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
}

#[test]
fn symbolize_refuses_a_binary_of_another_build() {
    let f = write_trace();
    let o = run(&["symbolize", s(&f.path), "--binary", "/bin/sh"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is not the binary of module"), "{err}");
    assert!(err.contains("build id"), "{err}");
}

#[test]
fn summary_shows_the_long_polls_stacks_and_where_cpu_time_went() {
    let f = write_trace();
    let text = stdout(&run(&["summary", s(&f.path)]));
    println!("{text}");
    let polls = &text[text.find("long polls").unwrap()..];
    // The 50 ms poll first, its first stack shows the application frame with file and line.
    let first = &polls[..polls.find("30.000ms").unwrap()];
    let a = file_line_in(&SPIN_A_LINE, first);
    let b = file_line_in(&SPIN_B_LINE, &polls[polls.find("30.000ms").unwrap()..]);
    assert!(first.contains("stuck_spinning_a"), "{first}");
    assert!(first.contains(&a), "{first}");
    assert!(first.contains("stack 1/2"), "{first}");
    assert!(first.contains("stack 2/2"), "{first}");
    // Application frames first: the stuck function is the first line of the stack but for
    // core's frames (in a debug build the loop's atomic load and store are calls, and the stack
    // may be taken inside one: a line of its own, or folded).
    let after = &first[first.find("innermost first:\n").unwrap() + 17..];
    let line = after
        .lines()
        .find(|l| !l.trim_start().starts_with("core::") && !l.contains("frames in core:"))
        .unwrap();
    assert!(line.contains("stuck_spinning_a"), "{first}");
    assert!(
        first.contains("frames in"),
        "folded library frames: {first}"
    );
    // The first named frame of the stack is an application frame or the innermost one.
    let second = &polls[polls.find("30.000ms").unwrap()..];
    assert!(second.contains("stuck_spinning_b"), "{second}");
    assert!(second.contains(&b), "{second}");
    assert!(
        second.contains("spawned inside a library (axum-0.8.9/src/serve/mod.rs:389:13)"),
        "{second}"
    );
    assert!(second.contains("application frame: "), "{second}");
    // CPU table: 3 samples in task 1's location, 1 in task 2's.
    let cpu = &text[text.find("where CPU time went: 4 samples").expect(&text)..];
    assert!(
        cpu.contains("crates/app/src/main.rs:10:5: 3 samples (75.0%)"),
        "{cpu}"
    );
    assert!(
        cpu.contains("axum-0.8.9/src/serve/mod.rs:389:13: 1 samples (25.0%)"),
        "{cpu}"
    );
    let axum = &cpu[cpu.find("axum-0.8.9").unwrap()..];
    assert!(
        axum.contains("spawned inside a library; application frame: stacks::stuck_spinning_b"),
        "{axum}"
    );
    assert!(!text.contains(".cargo/registry"), "{text}");
    assert!(cpu.contains("stuck_spinning_a"), "{cpu}");
    assert!(cpu.contains(": 1 samples (25.0%)"), "{cpu}");

    let json: serde_json::Value =
        serde_json::from_str(&stdout(&run(&["summary", "--json", s(&f.path)]))).unwrap();
    let top = &json["long_polls"]["top"];
    let stacks = top[0]["stacks"].as_array().unwrap();
    assert_eq!(stacks.len(), 2);
    let frame = stacks[0]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["function"]
                .as_str()
                .is_some_and(|n| n.ends_with("stuck_spinning_a"))
        })
        .expect("the stuck function in JSON");
    assert!(frame["file"].as_str().unwrap().ends_with("tests/stacks.rs"));
    // No line (null) when the stack was taken at code that debug info ties to no line.
    if let Some(line) = frame["line"].as_u64() {
        let first = u64::from(SPIN_A_LINE.load(Ordering::Relaxed));
        assert!((first..first + 3).contains(&line), "{line}");
    }
    assert!(frame["module"].as_str().unwrap().len() > 1);
    assert!(frame["offset"].as_u64().is_some());
    assert_eq!(frame["inlined"], false);
    assert_eq!(json["cpu"][0]["samples"], 3);
    assert!(json["cpu"][0]["folded"][0]["stack"]
        .as_str()
        .unwrap()
        .contains("stuck_spinning_a"));
}

#[test]
fn dump_prints_each_stack_event_with_its_frames() {
    let f = write_trace();
    let text = stdout(&run(&["dump", s(&f.path)]));
    let at = text
        .find("thread_stack thread=1 task=1 stack=1")
        .expect(&text);
    let frames = &text[at..];
    let next_event = frames[1..].find("\n2026").unwrap();
    let frames = &frames[..next_event];
    let a = file_line_in(&SPIN_A_LINE, frames);
    assert!(frames.contains("    #0 0x"), "{frames}");
    assert!(frames.contains("stuck_spinning_a"), "{frames}");
    assert!(frames.contains(&a), "{frames}");
    assert!(text.contains("cpu_sample thread=2 stack=3"), "{text}");
}

#[test]
fn a_runtime_whose_tasks_were_not_recorded_is_said_plainly() {
    let mut t = TraceBuilder::standard(&[], &[], &[(1, 101, "worker-1")]);
    t.chunk(
        1,
        BASE,
        &[
            Ev::new(EventKind::RuntimeThread, 0, &[1, 0]),
            Ev::new(EventKind::WorkerUnpark, 10, &[]),
            Ev::new(EventKind::WorkerPark, 80 * MS, &[]),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stable.out");
    std::fs::write(&path, t.finish()).unwrap();
    let text = stdout(&run(&["summary", s(&path)]));
    assert!(
        text.contains("worker threads were recorded but none of its tasks"),
        "{text}"
    );
    assert!(text.contains("--cfg tokio_unstable"), "{text}");
    assert!(text.contains("flight_recorder::tokio::spawn"), "{text}");
}

fn have_perfetto_protos() -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import perfetto.protos.perfetto.trace.perfetto_trace_pb2",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("FLIGHT_RECORDER_REQUIRE_VIEWERS").is_none(),
            "the perfetto protos are required (scripts/install-viewer-tools.sh)"
        );
        eprintln!("skipping: python perfetto protos not installed");
    }
    ok
}

#[test]
fn perfetto_export_has_the_stacks_as_samples_with_resolving_ids() {
    let f = write_trace();
    let out = f.path.with_extension("perfetto-trace");
    stdout(&run(&[
        "convert",
        s(&f.path),
        "--to",
        "perfetto",
        "-o",
        s(&out),
    ]));
    if !have_perfetto_protos() {
        return;
    }
    let checker = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../flight-recorder-analysis/tests/perfetto_check.py");
    let o = Command::new("python3")
        .arg(checker)
        .arg(&out)
        .output()
        .unwrap();
    let stats: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    // 4 CPU samples and 3 stuck-worker stacks, on the workers' threads (os tids 101, 102).
    assert_eq!(stats["counts"]["perf_samples"], 7, "{stats}");
    assert_eq!(
        stats["sample_tids"],
        serde_json::json!([101, 102]),
        "{stats}"
    );
    let functions: Vec<&str> = stats["sample_functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        functions.iter().any(|f| f.ends_with("stuck_spinning_a")),
        "{functions:?}"
    );
    assert!(
        functions.iter().any(|f| f.ends_with("stuck_spinning_b")),
        "{functions:?}"
    );
}

#[test]
fn report_has_a_flame_graph_per_location_and_the_long_polls_stacks() {
    let f = write_trace();
    let out = f.path.with_extension("html");
    stdout(&run(&["report", s(&f.path), "-o", s(&out)]));
    let html = std::fs::read_to_string(&out).unwrap();
    let cpu = &html[html.find("<section id=\"cpu\">").expect("cpu section")..];
    let cpu = &cpu[..cpu.find("</section>").unwrap()];
    assert_eq!(cpu.matches("<div class=\"flame\"><svg").count(), 2, "{cpu}");
    assert!(cpu.contains("stuck_spinning_a"), "{cpu}");
    assert!(
        cpu.contains("crates/app/src/main.rs:10:5: 3 samples"),
        "{cpu}"
    );
    assert!(!html.contains("<script"), "the report has no script");
    assert!(!html.contains(" onload="), "nor handlers");
    let polls = &html[html.find("<section id=\"long-polls\">").unwrap()..];
    let stack = &polls[polls.find("<pre class=\"stack\">").expect("a stack")..];
    assert!(stack[..stack.find("</pre>").unwrap()].contains("stuck_spinning_a"));
}

/// A file from another machine: its module's binary is not here. Addresses its Symbols table
/// resolves are named from it; the others print as module+offset, without an error.
#[test]
fn names_come_from_the_symbols_table_and_a_missing_binary_leaves_module_offsets() {
    use flight_recorder_format::SymbolFrame;
    let module = Module {
        id: 1,
        start: 0x40_0000,
        end: 0x50_0000,
        load_bias: 0x40_0000,
        path: "/nonexistent/bin/service".into(),
        build_id: vec![0xab; 20],
    };
    let frame = |function: &str, file: &str, line| SymbolFrame {
        function: function.into(),
        file: file.into(),
        line,
    };
    let mut t = TraceBuilder::standard(
        &[],
        &[(1, "src/main.rs", 3, 1)],
        &[(1, 101, "worker-1"), (2, 102, "watchdog")],
    );
    t.modules(&[module])
        .stacks(&[(1, vec![0x40_1000, 0x40_2000, 0x40_3000])])
        .symbols(&[
            (
                0x40_1000,
                vec![
                    frame("service::parse_inner", "/src/service/src/parse.rs", 12),
                    frame("service::parse", "/src/service/src/parse.rs", 40),
                ],
            ),
            (
                0x40_2000,
                vec![frame(
                    "tokio::runtime::task::raw::poll",
                    "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.0/src/runtime/task/raw.rs",
                    255,
                )],
            ),
        ]);
    t.chunk(
        1,
        BASE,
        &[
            Ev::new(EventKind::TaskSpawn, 0, &[1, 1, 0]),
            Ev::new(EventKind::PollStart, 1_000, &[1]),
            Ev::new(EventKind::PollEnd, 40 * MS, &[1, 1]),
        ],
    )
    .chunk(
        2,
        BASE + 20 * MS,
        &[Ev::new(EventKind::ThreadStack, 0, &[1, 1, 1, 1])],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("elsewhere.out");
    std::fs::write(&path, t.finish()).unwrap();
    let text = stdout(&run(&["summary", s(&path)]));
    let stack = &text[text.find("innermost first:").expect(&text)..];
    let lines: Vec<&str> = stack.lines().skip(1).take(4).collect();
    assert!(
        lines[0].contains("service::parse_inner [inlined]"),
        "{stack}"
    );
    assert!(lines[0].contains("/src/service/src/parse.rs:12"), "{stack}");
    assert!(lines[1].contains("service::parse "), "{stack}");
    assert!(lines[2].contains("… 2 frames in tokio, service"), "{stack}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&run(&["summary", "--json", s(&path)]))).unwrap();
    let frames = &json["long_polls"]["top"][0]["stacks"][0]["frames"];
    assert_eq!(frames[0]["inlined"], true);
    assert_eq!(frames[2]["file"], "tokio-1.54.0/src/runtime/task/raw.rs");
    assert_eq!(frames[3]["function"], serde_json::Value::Null);
    assert_eq!(frames[3]["offset"], 0x3000);
    let dump = stdout(&run(&["dump", s(&path)]));
    assert!(dump.contains("#2 0x403000 service+0x3000"), "{dump}");
    // symbolize says what is missing, and still writes the names it has.
    let o = run(&["symbolize", s(&path)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no binary for module /nonexistent/bin/service"),
        "{err}"
    );
    assert!(o.status.success(), "{o:?}");
}

/// The main executable moved (a deployment elsewhere): its frames stay raw, until `--binary`
/// names the binary, whose build id matches.
#[test]
fn binary_option_names_frames_of_a_moved_executable() {
    let mut modules = modules();
    modules[0].path = "/nonexistent/deployed/service".into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moved.out");
    std::fs::write(&path, trace(&modules)).unwrap();
    let raw = stdout(&run(&["summary", s(&path)]));
    assert!(!raw.contains("stuck_spinning_a"), "{raw}");
    assert!(raw.contains("service+0x"), "{raw}");
    let exe = std::env::current_exe().unwrap();
    for command in [&["summary"][..], &["dump"][..]] {
        let mut args = command.to_vec();
        args.extend([s(&path), "--binary", s(&exe)]);
        let text = stdout(&run(&args));
        assert!(text.contains("stuck_spinning_a"), "{text}");
    }
    let out = dir.path().join("moved.sym.out");
    stdout(&run(&[
        "symbolize",
        s(&path),
        "--binary",
        s(&exe),
        "-o",
        s(&out),
    ]));
    let text = stdout(&run(&["summary", s(&out)]));
    assert!(text.contains("stuck_spinning_a"), "{text}");
}

static SLEEP_LINE: AtomicU32 = AtomicU32::new(0);

#[inline(never)]
fn stuck_sleeping(spin: &Spin) {
    SLEEP_LINE.store(line!() + 2, Ordering::Relaxed);
    while !spin.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(5));
        spin.inside.store(true, Ordering::Relaxed);
    }
}

/// A worker asleep in std: the stack begins with the application's function; the frames of
/// std and libc under it fold into one line naming the call into std and the innermost frame.
#[test]
fn a_stack_in_std_shows_the_application_frame_first() {
    let stacks = capture(stuck_sleeping, 1);
    let mut t = TraceBuilder::standard(
        &[],
        &[(1, "crates/app/src/main.rs", 10, 5)],
        &[(1, 101, "worker-1"), (3, 103, "watchdog")],
    );
    t.modules(&modules()).stacks(&[(1, stacks[0].clone())]);
    t.chunk(
        1,
        BASE,
        &[
            Ev::new(EventKind::TaskSpawn, 0, &[1, 1, 0]),
            Ev::new(EventKind::PollStart, 1_000, &[1]),
            Ev::new(EventKind::PollEnd, 50 * MS, &[1, 0]),
        ],
    )
    .chunk(
        3,
        BASE + 20 * MS,
        &[Ev::new(EventKind::ThreadStack, 0, &[1, 1, 1, 1])],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sleep.out");
    std::fs::write(&path, t.finish()).unwrap();
    let text = stdout(&run(&["summary", s(&path)]));
    println!("{text}");
    let stack = &text[text.find("innermost first:\n").expect(&text) + 17..];
    let mut lines = stack.lines();
    let fold = lines.next().unwrap();
    assert!(fold.contains("frames in"), "{stack}");
    assert!(fold.contains(": in std::thread::"), "{stack}");
    let app = lines.next().unwrap();
    assert!(app.contains("stacks::stuck_sleeping"), "{stack}");
    let line = SLEEP_LINE.load(Ordering::Relaxed);
    assert!(app.contains(&format!("tests/stacks.rs:{line}")), "{stack}");
}
