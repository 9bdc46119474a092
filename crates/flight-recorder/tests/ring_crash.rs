//! A recording that survives the crash (docs/RELIABILITY.md): a child process records numbered
//! events into a ring and dies — `SIGKILL` at a random moment, a fatal signal, `abort()`, a stack
//! overflow, an allocation failure — and recovery gives back every event it published.
//!
//! The children are this test binary, re-invoked to run only `ring_child` with `RING_CHILD` set to
//! what it must do.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flight_recorder::raw::{self, EventKind};
use flight_recorder::ring::{recover_rings, RecoveryOutcome, RingConfig};
use flight_recorder::{FlightRecorder, FlightRecorderConfig};
use flight_recorder_format::{EventKind as Kind, TraceReader};

const CHILD: &str = "RING_CHILD";
const CHILD_DIR: &str = "RING_CHILD_DIR";
const CHILD_RING: &str = "RING_CHILD_USE_RING";
const THREADS: u64 = 3;

/// Kill runs in the full test; `FLIGHT_RECORDER_RING_KILLS` asks for more.
fn kill_runs() -> usize {
    std::env::var("FLIGHT_RECORDER_RING_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

fn write_line(line: &str) {
    // One write(2) per line (below PIPE_BUF): lines from several threads never interleave.
    // SAFETY: writing a valid buffer to standard output.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
}

/// The child: records numbered counters on `THREADS` threads, reporting each one published, then
/// does what `RING_CHILD` says.
#[test]
fn ring_child() {
    let Ok(what) = std::env::var(CHILD) else {
        return;
    };
    let dir = std::env::var_os(CHILD_DIR).unwrap();
    if what.starts_with("capture") {
        // Automatic capture: `capture_noring` and `capture_ringdir` set the ring in code, the
        // others take it from the environment (FLIGHT_RECORDER_RING_DIR, set by the parent).
        let mut settings = match what.as_str() {
            "capture_noring" | "capture_ringdir" => flight_recorder::capture::CaptureSettings {
                ring: what == "capture_ringdir",
                ring_dir: Some(Path::new(&dir).join("asked")),
                ..Default::default()
            },
            _ => flight_recorder::capture::config_from_env().settings,
        };
        settings.dump_dir = Path::new(&dir).join("dumps");
        settings.announce = true;
        flight_recorder::capture::start(settings).unwrap();
        let ring_files = std::fs::read_dir(Path::new(&dir).join("asked"))
            .map(|d| d.count())
            .unwrap_or(0);
        println!("RING_FILES {ring_files}");
        if what == "capture_abort" {
            let name = raw::intern_str("seq_main");
            for n in 1..=1000u64 {
                raw::record(EventKind::Counter, &[name, n]);
            }
            std::process::abort();
        }
        flight_recorder::capture::stop();
        return;
    }
    if what == "nospace" {
        // Files above 1 MiB cannot be made: the ring's reservation fails (EFBIG), as it would
        // on a full /dev/shm (ENOSPC).
        // SAFETY: plain setrlimit/signal calls with valid arguments.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 1 << 20,
                rlim_max: 1 << 20,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
        }
    }
    let use_ring = std::env::var_os(CHILD_RING).is_some();
    let fill = what == "fill";
    let grow = what == "grow";
    let fr = FlightRecorder::new(FlightRecorderConfig {
        max_bytes: if fill {
            64 << 20
        } else if grow {
            128 << 10
        } else {
            1 << 20
        },
        min_age: Duration::from_secs(3600),
        ring: use_ring.then(|| RingConfig {
            dir: Path::new(&dir).join("rings"),
            dump_dir: Path::new(&dir).join("dumps"),
            spare_chunks: if grow { 2 } else { 16 },
        }),
    });
    fr.start().unwrap();
    if fill {
        fill_and_die();
    }
    if grow {
        // 20 threads each hold an open chunk: far more than the ring's first 4 slots, so it
        // grows by segment files.
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(21));
        for t in 0..20u64 {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                raw::record(EventKind::Counter, &[raw::intern_str("seq_threads"), t]);
                barrier.wait();
                std::thread::sleep(Duration::from_secs(60));
            });
        }
        barrier.wait();
        write_line("READY\n");
        std::process::abort();
    }
    if what == "nospace" {
        let name = raw::intern_str("seq_main");
        for n in 1..=1000u64 {
            raw::record(EventKind::Counter, &[name, n]);
        }
        let mut snapshot = Vec::new();
        fr.write_to(&mut snapshot).unwrap();
        let mut reader = TraceReader::new(snapshot.as_slice()).unwrap();
        let counters = reader
            .read_all_events()
            .unwrap()
            .iter()
            .filter(|e| e.kind() == Some(Kind::Counter))
            .count();
        write_line(&format!("HEAP_OK {counters}\n"));
        return;
    }
    if what == "kill" {
        let names = ["seq_0", "seq_1", "seq_2"];
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                std::thread::Builder::new()
                    .name(format!("worker-{t}"))
                    .spawn(move || {
                        let name = raw::intern_str(names[t as usize]);
                        let started = Instant::now();
                        for n in 1u64.. {
                            raw::record(EventKind::Counter, &[name, n]);
                            write_line(&format!("SEQ {t} {n}\n"));
                            // Never outlive a parent that failed to kill us.
                            if n % 4096 == 0 && started.elapsed() > Duration::from_secs(60) {
                                std::process::exit(2);
                            }
                        }
                    })
                    .unwrap()
            })
            .collect();
        for t in threads {
            let _ = t.join();
        }
        return;
    }
    // A few events on the crashing thread, then the death asked for.
    let name = raw::intern_str("seq_main");
    for n in 1..=1000u64 {
        raw::record(EventKind::Counter, &[name, n]);
    }
    write_line("READY\n");
    match what.as_str() {
        "segv" => {
            // SAFETY: none: this writes to address 16 on purpose, to die of SIGSEGV.
            unsafe { std::ptr::write_volatile(16 as *mut u64, 1) };
        }
        // SAFETY: raise has no preconditions.
        "raise" => unsafe {
            libc::raise(libc::SIGSEGV);
        },
        "abort" => std::process::abort(),
        "panic_abort" => {
            // What `panic = "abort"` does: the panic hook prints the message, then the process
            // aborts (std's abort after the hook, here called by hand since tests unwind).
            std::panic::set_hook(Box::new(|info| {
                eprintln!("{info}");
                std::process::abort();
            }));
            panic!("the child panics");
        }
        "overflow" => {
            std::thread::Builder::new()
                .name("overflower".into())
                .stack_size(256 << 10)
                .spawn(|| {
                    raw::record(EventKind::Counter, &[raw::intern_str("seq_overflow"), 1]);
                    recurse(1)
                })
                .unwrap()
                .join()
                .unwrap();
        }
        "oom" => {
            let mut blocks = Vec::new();
            loop {
                let block = vec![1u8; 64 << 20];
                blocks.push(block);
            }
        }
        _ => {}
    }
    write_line("SURVIVED\n");
}

/// Fills a 64 MiB window on 4 threads, then dies by SIGKILL.
fn fill_and_die() {
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let name = raw::intern_str("fill");
                for n in 0..4_000_000u64 {
                    raw::record(EventKind::Counter, &[name, n * 4 + t]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    write_line(&format!(
        "FILLED {}\n",
        flight_recorder::stats().window_bytes
    ));
    // SAFETY: a signal to ourselves.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
}

/// The time `recover` takes for a full 64 MiB ring (run in release, on demand):
/// `cargo test --release -p flight-recorder --test ring_crash -- --ignored --nocapture recovery_time`.
#[test]
#[ignore]
fn recovery_time_of_a_64_mib_ring() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_child("fill", dir.path(), true, None);
    assert!(
        run.stdout.iter().any(|l| l.contains("FILLED")),
        "{:?} {}",
        run.stdout,
        run.stderr
    );
    let ring = std::fs::read_dir(dir.path().join("rings"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let size = ring.metadata().unwrap().len();
    let started = Instant::now();
    let (file, _) = recover_one(dir.path());
    let took = started.elapsed();
    let out = std::fs::metadata(&file).unwrap().len();
    eprintln!(
        "{:?}; ring {:.1} MiB, recovered file {:.1} MiB in {:.0} ms",
        run.stdout.iter().find(|l| l.contains("FILLED")),
        size as f64 / (1 << 20) as f64,
        out as f64 / (1 << 20) as f64,
        took.as_secs_f64() * 1e3
    );
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let buffer = [depth; 64];
    std::hint::black_box(&buffer);
    if std::hint::black_box(depth) == 0 {
        return 0;
    }
    recurse(depth + 1) + std::hint::black_box(buffer[3])
}

/// A child killed (`SIGKILL`) and reaped when dropped, so that a failed assertion leaves no
/// child running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct ChildRun {
    status: std::process::ExitStatus,
    stdout: Vec<String>,
    stderr: String,
}

fn spawn_child(what: &str, dir: &Path, use_ring: bool, prlimit_as: Option<u64>) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match prlimit_as {
        Some(bytes) => {
            let mut cmd = Command::new("prlimit");
            cmd.arg(format!("--as={bytes}")).arg(&exe);
            cmd
        }
        None => Command::new(&exe),
    };
    cmd.args(["--exact", "ring_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, what)
        .env(CHILD_DIR, dir)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if use_ring {
        cmd.env(CHILD_RING, "1");
    }
    cmd
}

fn run_child(what: &str, dir: &Path, use_ring: bool, prlimit_as: Option<u64>) -> ChildRun {
    let output = spawn_child(what, dir, use_ring, prlimit_as)
        .output()
        .unwrap();
    ChildRun {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The one recovered file of `dir`'s rings, with what recovery said.
fn recover_one(dir: &Path) -> (std::path::PathBuf, String) {
    let out = dir.join("out");
    let reports = recover_rings(&dir.join("rings"), Some(&out)).unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    match &reports[0].outcome {
        RecoveryOutcome::Recovered {
            file,
            ended,
            corrupt_chunks,
            ..
        } => {
            assert_eq!(*corrupt_chunks, 0);
            assert!(!reports[0].ring.exists(), "the ring is removed");
            (file.clone(), ended.clone())
        }
        other => panic!("not recovered: {other:?}"),
    }
}

/// Counter values per counter name, in file order.
fn counters(path: &Path) -> (BTreeMap<String, Vec<u64>>, flight_recorder_format::Header) {
    let mut reader = TraceReader::open(path).unwrap();
    let events = reader.read_all_events().unwrap();
    assert!(reader.is_complete());
    let mut by_name: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in &events {
        if e.kind() == Some(Kind::Counter) {
            let name = reader.string(e.arg(0)).unwrap_or("?").to_string();
            by_name.entry(name).or_default().push(e.arg(1));
        }
    }
    (by_name, reader.header().clone())
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn sigkill_at_a_random_moment_loses_no_published_event() {
    let runs = kill_runs();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut total_events = 0usize;
    for run in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let mut child = KillOnDrop(spawn_child("kill", dir.path(), true, None).spawn().unwrap());
        let stdout = child.0.stdout.take().unwrap();
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut last = [0u64; THREADS as usize];
            let mut first = Some(first_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split(' ');
                if parts.next() != Some("SEQ") {
                    continue;
                }
                let t: usize = parts.next().unwrap().parse().unwrap();
                let n: u64 = parts.next().unwrap().parse().unwrap();
                last[t] = last[t].max(n);
                if let Some(tx) = first.take() {
                    let _ = tx.send(());
                }
            }
            last
        });
        first_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the child never recorded");
        std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        // SAFETY: a plain signal to our own child process.
        unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGKILL) };
        let status = child.0.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        let reported = reader.join().unwrap();
        let (file, ended) = recover_one(dir.path());
        assert!(ended.contains("killed"), "{ended}");
        let (by_name, header) = counters(&file);
        assert_eq!(header.reason, "recovered");
        for (t, &reported) in reported.iter().enumerate() {
            let values = by_name
                .get(&format!("seq_{t}"))
                .cloned()
                .unwrap_or_default();
            total_events += values.len();
            for pair in values.windows(2) {
                assert_eq!(
                    pair[1],
                    pair[0] + 1,
                    "run {run} (seed {seed}): a gap in thread {t}'s events"
                );
            }
            let last = values.last().copied().unwrap_or(0);
            assert!(
                last >= reported,
                "run {run} (seed {seed}): thread {t} reported {reported} published, recovered up \
                 to {last}"
            );
        }
    }
    eprintln!(
        "{runs} SIGKILL runs in {:.1} s, {total_events} events recovered",
        started.elapsed().as_secs_f64()
    );
}

/// A line of stderr with its numbers (thread ids) taken out.
fn without_numbers(line: &str) -> String {
    line.chars().filter(|c| !c.is_ascii_digit()).collect()
}

/// Runs `what` without and with the ring: the same death (status, and the stderr's message),
/// and with the ring, a recovered file naming the signal and the crashing thread.
fn fatal_case(what: &str, signal: Option<i32>, prlimit_as: Option<u64>) -> (String, String) {
    fatal_case_with(what, signal, prlimit_as, true)
}

fn fatal_case_with(
    what: &str,
    signal: Option<i32>,
    prlimit_as: Option<u64>,
    events_kept: bool,
) -> (String, String) {
    use std::os::unix::process::ExitStatusExt;
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = run_child(what, plain_dir.path(), false, prlimit_as);
    let dir = tempfile::tempdir().unwrap();
    let with = run_child(what, dir.path(), true, prlimit_as);
    assert_eq!(plain.status.signal(), signal, "{what}: {}", plain.stderr);
    assert_eq!(
        with.status.signal(),
        plain.status.signal(),
        "{what}: {}",
        with.stderr
    );
    assert_eq!(
        with.status.code(),
        plain.status.code(),
        "{what}: {}",
        with.stderr
    );
    assert_eq!(with.status.core_dumped(), plain.status.core_dumped());
    let message = |stderr: &str| -> Vec<String> {
        stderr
            .lines()
            .filter(|l| !l.starts_with("flight-recorder:") && !l.trim().is_empty())
            .filter(|l| !l.starts_with("running ") && !l.starts_with("test "))
            .map(without_numbers)
            .collect()
    };
    assert_eq!(message(&with.stderr), message(&plain.stderr), "{what}");
    assert!(with.stdout.iter().any(|l| l.ends_with("READY")), "{what}");
    let (file, ended) = recover_one(dir.path());
    let (by_name, header) = counters(&file);
    let detail = |name: &str| {
        header
            .details
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let main = by_name.get("seq_main").cloned().unwrap_or_default();
    if events_kept {
        assert_eq!(main, (1..=1000).collect::<Vec<_>>(), "{what}");
    }
    (
        detail("signal"),
        format!("{ended} | thread {}", detail("thread_name")),
    )
}

#[test]
fn a_segmentation_fault_is_recorded_and_the_process_dies_the_same() {
    let (signal, ended) = fatal_case("segv", Some(libc::SIGSEGV), None);
    assert_eq!(signal, "SIGSEGV", "{ended}");
    assert!(ended.contains("0x10"), "{ended}");
}

#[test]
fn the_crashing_threads_stack_is_recovered_with_the_modules() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_child("segv", dir.path(), true, None);
    assert!(!run.status.success());
    let (file, _) = recover_one(dir.path());
    let mut reader = TraceReader::open(&file).unwrap();
    let events = reader.read_all_events().unwrap();
    let stack_event = events
        .iter()
        .find(|e| e.kind() == Some(Kind::ThreadStack))
        .expect("a thread_stack event");
    assert_eq!(stack_event.arg(3), 3, "cause: a fatal signal");
    let tables = reader.name_tables();
    let frames = tables.stack(stack_event.arg(2)).expect("the stack");
    assert!(!frames.is_empty());
    // The faulting pc lies in a module of the file, so the stack can be symbolized.
    assert!(tables.module_of(frames[0]).is_some(), "{frames:x?}");
}

#[test]
fn raise_sigsegv_is_recorded_and_the_process_dies_the_same() {
    // std's stack-overflow handler, installed before ours, treats a SIGSEGV that is not a
    // guard-page fault by restoring the default action and returning: a raised one then returns
    // and the program goes on, with or without the recorder. The ring is kept for recovery all
    // the same, since a fatal signal was recorded; its events are not, since the program went
    // on and stopped its recorder (which frees the window).
    let (signal, ended) = fatal_case_with("raise", None, None, false);
    assert_eq!(signal, "SIGSEGV", "{ended}");
}

#[test]
fn abort_is_recorded_and_the_process_dies_the_same() {
    let (signal, ended) = fatal_case("abort", Some(libc::SIGABRT), None);
    assert_eq!(signal, "SIGABRT", "{ended}");
}

#[test]
fn a_panic_that_aborts_is_recorded_and_the_process_dies_the_same() {
    let (signal, ended) = fatal_case("panic_abort", Some(libc::SIGABRT), None);
    assert_eq!(signal, "SIGABRT", "{ended}");
}

#[test]
fn a_stack_overflow_is_recorded_and_the_process_dies_the_same() {
    let (signal, ended) = fatal_case("overflow", Some(libc::SIGABRT), None);
    assert_eq!(signal, "SIGSEGV", "{ended}");
    assert!(ended.contains("overflower"), "{ended}");
}

#[test]
fn an_allocation_failure_is_recorded_and_the_process_dies_the_same() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("prlimit is missing: skipped");
        return;
    }
    let (signal, ended) = fatal_case("oom", Some(libc::SIGABRT), Some(1 << 30));
    assert_eq!(signal, "SIGABRT", "{ended}");
}

#[test]
fn automatic_capture_recovers_a_dead_ring_at_its_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let rings = dir.path().join("rings");
    let run = |what: &str| {
        spawn_child(what, dir.path(), false, None)
            .env("FLIGHT_RECORDER_RING_DIR", &rings)
            .output()
            .unwrap()
    };
    let crashed = run("capture_abort");
    assert!(!crashed.status.success());
    assert_eq!(std::fs::read_dir(&rings).unwrap().count(), 1);
    let next = run("capture_start");
    assert!(
        next.status.success(),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    let stderr = String::from_utf8_lossy(&next.stderr);
    assert!(
        stderr.contains("recovered the last events of process"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&rings).unwrap().count(),
        0,
        "the dead ring is recovered and the clean one removed at exit"
    );
    let recovered: Vec<_> = std::fs::read_dir(dir.path().join("dumps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".recovered.out"))
        .collect();
    assert_eq!(recovered.len(), 1);
    let (by_name, header) = counters(&recovered[0]);
    assert_eq!(by_name["seq_main"], (1..=1000).collect::<Vec<_>>());
    assert!(header
        .details
        .iter()
        .any(|(n, v)| n == "signal" && v == "SIGABRT"));
}

#[test]
fn capture_settings_choose_the_ring_and_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let off = run_child("capture_noring", dir.path(), false, None);
    assert!(off.status.success(), "{}", off.stderr);
    assert!(
        off.stdout.iter().any(|l| l.ends_with("RING_FILES 0")),
        "{:?}",
        off.stdout
    );
    assert!(
        !dir.path().join("asked").exists(),
        "no ring directory is made"
    );
    assert!(!off.stderr.contains("; ring in"), "{}", off.stderr);
    let asked = run_child("capture_ringdir", dir.path(), false, None);
    assert!(asked.status.success(), "{}", asked.stderr);
    assert!(
        asked.stdout.iter().any(|l| l.ends_with("RING_FILES 1")),
        "one ring file where asked while capture runs: {:?}",
        asked.stdout
    );
    let line = format!("; ring in {}", dir.path().join("asked").display());
    assert!(asked.stderr.contains(&line), "{}", asked.stderr);
    assert_eq!(
        std::fs::read_dir(dir.path().join("asked")).unwrap().count(),
        0,
        "the ring is removed at a clean stop"
    );
}

#[test]
fn without_room_for_the_ring_recording_goes_on_in_heap_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_child("nospace", dir.path(), true, None);
    assert!(run.status.success(), "{}", run.stderr);
    assert!(
        run.stdout.iter().any(|l| l.ends_with("HEAP_OK 1000")),
        "{:?}",
        run.stdout
    );
    assert_eq!(
        run.stderr.matches("flight-recorder: no ring in").count(),
        1,
        "said once: {}",
        run.stderr
    );
    let rings = std::fs::read_dir(dir.path().join("rings")).unwrap().count();
    assert_eq!(rings, 0, "no ring file is left");
}

#[test]
fn the_ring_grows_by_segments_and_recovery_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_child("grow", dir.path(), true, None);
    assert!(
        run.stdout.iter().any(|l| l.ends_with("READY")),
        "{}",
        run.stderr
    );
    let files = std::fs::read_dir(dir.path().join("rings")).unwrap().count();
    assert!(files > 1, "segment files beside the ring: {files}");
    let (file, _) = recover_one(dir.path());
    assert_eq!(
        std::fs::read_dir(dir.path().join("rings")).unwrap().count(),
        0,
        "the ring and its segments are removed"
    );
    let (by_name, header) = counters(&file);
    let mut values = by_name["seq_threads"].clone();
    values.sort_unstable();
    assert_eq!(values, (0..20).collect::<Vec<_>>());
    assert!(header.details.iter().any(|(n, _)| n == "segments"));
}

#[test]
fn a_live_ring_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(spawn_child("kill", dir.path(), true, None).spawn().unwrap());
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.is_ok_and(|l| l.starts_with("SEQ"))));
    let reports = recover_rings(&dir.path().join("rings"), Some(&dir.path().join("out"))).unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].outcome, RecoveryOutcome::Live);
    assert!(reports[0].ring.exists());
    // SAFETY: a plain signal to our own child process.
    unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGKILL) };
    let _ = child.0.wait();
    drop(lines);
    let (file, _) = recover_one(dir.path());
    assert!(file.exists());
}

#[test]
fn a_corrupt_or_foreign_ring_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let rings = dir.path().join("rings");
    std::fs::create_dir(&rings).unwrap();
    std::fs::write(rings.join("x.1.2.ring"), b"not a ring at all").unwrap();
    let mut bad = vec![0u8; 8192];
    bad[..8].copy_from_slice(b"FRRING01");
    std::fs::write(rings.join("y.1.2.ring"), &bad).unwrap();
    let reports = recover_rings(&rings, Some(&dir.path().join("out"))).unwrap();
    assert_eq!(reports.len(), 2);
    for report in &reports {
        assert!(
            matches!(report.outcome, RecoveryOutcome::Skipped(_)),
            "{report:?}"
        );
        assert!(report.ring.exists());
    }
}
