//! CPU samples (`cpu_sample_hz`) on a real tokio runtime, with both sources: `perf_event_open`
//! and the CPU-time timers (forced: tests run as root, so perf would always succeed).
#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64"),
    feature = "tokio"
))]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flight_recorder::capture::{self, CaptureSettings, DumpOutcome};
use flight_recorder_format::{EventKind, TraceReader};

/// The heavy task's work: 3 times the light one's per poll.
#[inline(never)]
fn spin_heavy(iterations: u64) -> u64 {
    let mut x = iterations | 1;
    // A `while` loop, not a range: in a debug build the range's `next` is a call, and the
    // samples would land in it.
    let mut i = 0;
    while i < iterations {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        i += 1;
    }
    x
}

/// The light task's work.
#[inline(never)]
fn spin_light(iterations: u64) -> u64 {
    let mut x = iterations | 3;
    // A `while` loop, not a range: in a debug build the range's `next` is a call, and the
    // samples would land in it.
    let mut i = 0;
    while i < iterations {
        x ^= x << 11;
        x ^= x >> 9;
        x ^= x << 19;
        i += 1;
    }
    x
}

const LIGHT_ITERATIONS: u64 = 1_000_000;

fn start_capture(dir: &std::path::Path, hz: u32, timers: bool) {
    capture::force_timer_source(timers);
    capture::start(CaptureSettings {
        dump_dir: dir.to_path_buf(),
        cpu_sample_hz: hz,
        min_dump_interval: Duration::ZERO,
        ..CaptureSettings::default()
    })
    .expect("capture starts");
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The name of the function holding `address`, resolved in this process.
fn function_of(address: u64) -> Option<String> {
    let mut name = None;
    backtrace::resolve(address as usize as *mut std::ffi::c_void, |symbol| {
        if name.is_none() {
            name = symbol.name().map(|n| n.to_string());
        }
    });
    name
}

struct Counted {
    heavy: usize,
    light: usize,
    other: usize,
    misattributed: Vec<String>,
}

/// Runs the two spinning tasks on a one-worker runtime while sampling at 199 Hz (2.5 s or more, until
/// 600 samples), dumps, and
/// counts the samples of each function, checking each sample's task and spawn location.
fn run_two_spinners(timers: bool) -> (Counted, String) {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    start_capture(dir.path(), 199, timers);
    let source = capture::cpu_sample_status().source.expect("a source");

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(1).enable_all();
    flight_recorder::tokio::instrument(&mut builder);
    let runtime = builder.build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let heavy_stop = stop.clone();
    let light_stop = stop.clone();
    let heavy_line = line!() + 1;
    let heavy = runtime.spawn(async move {
        let mut sum = 0u64;
        while !heavy_stop.load(Ordering::Relaxed) {
            sum = sum.wrapping_add(spin_heavy(3 * LIGHT_ITERATIONS));
            tokio::task::yield_now().await;
        }
        sum
    });
    let light_line = line!() + 1;
    let light = runtime.spawn(async move {
        let mut sum = 0u64;
        while !light_stop.load(Ordering::Relaxed) {
            sum = sum.wrapping_add(spin_light(LIGHT_ITERATIONS));
            tokio::task::yield_now().await;
        }
        sum
    });
    // At least 2.5 s, and until 600 samples are in (at most 15 s): the samples follow the CPU
    // time the worker gets, and with 600 the 2:1 to 4.5:1 bounds are more than 3.9 standard
    // deviations of the binomial noise away from 3:1.
    let started = Instant::now();
    let samples_before = capture::cpu_sample_status().samples;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let taken = capture::cpu_sample_status().samples - samples_before;
        let elapsed = started.elapsed();
        if elapsed >= Duration::from_secs(15)
            || (elapsed >= Duration::from_millis(2500) && taken >= 600)
        {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(async {
        heavy.await.unwrap();
        light.await.unwrap();
    });
    // Let the sampler record the last batch.
    std::thread::sleep(Duration::from_millis(100));
    let path = match capture::dump_now("cpu samples", "cpu").unwrap() {
        DumpOutcome::Written(path) => path,
        other => panic!("no file: {other:?}"),
    };
    capture::stop();
    capture::force_timer_source(false);
    drop(runtime);
    (count(&path, heavy_line, light_line), source)
}

fn count(path: &PathBuf, heavy_line: u32, light_line: u32) -> Counted {
    let mut reader = TraceReader::open(path).unwrap();
    let events = reader.read_all_events().unwrap();
    let tables = reader.name_tables();
    let time = reader.time_converter();
    // Polls per thread: (start, end, task); spawn locations per task.
    let mut polls: HashMap<u64, Vec<(u64, u64, u64)>> = HashMap::new();
    let mut open: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut spawned_at: HashMap<u64, u32> = HashMap::new();
    let mut samples = Vec::new();
    for e in &events {
        match e.kind() {
            Some(EventKind::PollStart | EventKind::PollStartScheduled) => {
                open.insert(e.thread, (e.time_ns, e.arg(0)));
            }
            Some(EventKind::PollEnd) => {
                if let Some((start, task)) = open.remove(&e.thread) {
                    polls
                        .entry(e.thread)
                        .or_default()
                        .push((start, e.time_ns, task));
                }
            }
            Some(EventKind::TaskSpawn) => {
                if let Some(location) = tables.location(e.arg(1)) {
                    if location.file.ends_with("cpu_samples.rs") {
                        spawned_at.insert(e.arg(0), location.line);
                    }
                }
            }
            Some(EventKind::CpuSample) => samples.push(e.clone()),
            _ => {}
        }
    }
    assert!(!samples.is_empty(), "no cpu_sample event in the file");
    let mut counted = Counted {
        heavy: 0,
        light: 0,
        other: 0,
        misattributed: Vec::new(),
    };
    for sample in &samples {
        let (thread, stack, age, task) =
            (sample.arg(0), sample.arg(1), sample.arg(2), sample.arg(3));
        assert_eq!(task, 0, "the sampler does not guess tasks");
        let frames = tables.stack(stack).expect("an interned stack");
        // The pc, then return addresses (looked up one byte before).
        let names: Vec<String> = frames
            .iter()
            .take(4)
            .enumerate()
            .filter_map(|(i, &a)| function_of(if i == 0 { a } else { a - 1 }))
            .collect();
        let which = if names.iter().any(|n| n.contains("spin_heavy")) {
            Some(heavy_line)
        } else if names.iter().any(|n| n.contains("spin_light")) {
            Some(light_line)
        } else {
            None
        };
        let Some(expected_line) = which else {
            if counted.other < 5 {
                eprintln!("other: {names:?} {frames:x?}");
            }
            counted.other += 1;
            continue;
        };
        if expected_line == heavy_line {
            counted.heavy += 1;
        } else {
            counted.light += 1;
        }
        // The poll running on that thread at the sample's instant.
        let at = sample.time_ns - time.units_to_ns(age);
        let poll = polls
            .get(&thread)
            .and_then(|p| p.iter().find(|(start, end, _)| *start <= at && at <= *end));
        let line = poll.and_then(|(_, _, task)| spawned_at.get(task).copied());
        if line != Some(expected_line) {
            counted.misattributed.push(format!(
                "{names:?} at {at}: poll {poll:?}, spawned at line {line:?}"
            ));
        }
    }
    counted
}

fn check_ratio(counted: &Counted, source: &str) {
    let ratio = counted.heavy as f64 / counted.light.max(1) as f64;
    eprintln!(
        "{source}: heavy {} light {} other {} ratio {ratio:.2} misattributed {}",
        counted.heavy,
        counted.light,
        counted.other,
        counted.misattributed.len()
    );
    assert!(
        counted.heavy + counted.light >= 100,
        "too few samples: {} + {}",
        counted.heavy,
        counted.light
    );
    assert!(
        (2.0..=4.5).contains(&ratio),
        "heavy:light = {ratio:.2}, expected about 3"
    );
    // A sample taken in the instant between a poll's end and the next poll's start, or at the
    // edge of a poll, may fall outside every poll; a handful at most.
    let total = counted.heavy + counted.light;
    assert!(
        counted.misattributed.len() * 20 <= total,
        "{} of {total} samples attributed to the wrong poll: {:#?}",
        counted.misattributed.len(),
        counted.misattributed
    );
}

#[test]
fn perf_event_samples_follow_the_cpu_time() {
    let (counted, source) = run_two_spinners(false);
    assert_eq!(source, "perf_event");
    check_ratio(&counted, &source);
}

#[test]
fn timer_samples_follow_the_cpu_time() {
    let (counted, source) = run_two_spinners(true);
    assert!(source.starts_with("cpu-time timers"), "{source}");
    check_ratio(&counted, &source);
}

/// Sampling follows threads that start and exit, and stops with capture.
fn threads_come_and_go(timers: bool) {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    start_capture(dir.path(), 499, timers);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(2)
        .thread_keep_alive(Duration::from_millis(50))
        .enable_all();
    flight_recorder::tokio::instrument(&mut builder);
    let runtime = builder.build().unwrap();
    wait_for("the workers to be sampled", || {
        capture::cpu_sample_status().threads >= 2
    });
    // Two blocking threads, busy for a while, then idle until they exit.
    let busy = || {
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_add(spin_light(10_000));
        }
        x
    };
    let a = runtime.spawn_blocking(busy);
    let b = runtime.spawn_blocking(busy);
    wait_for("the blocking threads to be sampled", || {
        capture::cpu_sample_status().threads >= 4
    });
    runtime.block_on(async {
        a.await.unwrap();
        b.await.unwrap();
    });
    wait_for("the blocking threads to be dropped", || {
        capture::cpu_sample_status().threads == 2
    });
    let status = capture::cpu_sample_status();
    assert!(status.samples > 0, "{status:?}");
    assert!(status.ring_bytes > 0, "{status:?}");
    drop(runtime);
    wait_for("the workers to be dropped", || {
        capture::cpu_sample_status().threads == 0
    });
    capture::stop();
    capture::force_timer_source(false);
    let status = capture::cpu_sample_status();
    assert_eq!(status.source, None);
    assert_eq!(status.threads, 0);
    assert_eq!(status.ring_bytes, 0);
}

#[test]
fn perf_event_sampling_follows_threads_and_stops_with_capture() {
    threads_come_and_go(false);
}

#[test]
fn timer_sampling_follows_threads_and_stops_with_capture() {
    threads_come_and_go(true);
}

/// Under the timer source at 1,000 Hz, the program's std and tokio calls see no error: sleeps,
/// timed waits, socket reads with a timeout and tokio's I/O, on runtime threads that are
/// sampled while they run.
#[test]
fn timer_signals_do_not_disturb_the_program() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    start_capture(dir.path(), 1000, true);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    flight_recorder::tokio::instrument(&mut builder);
    let runtime = builder.build().unwrap();
    let deadline = Instant::now() + Duration::from_millis(1500);
    runtime.block_on(async move {
        // tokio I/O: an echo server and a client, with CPU work between the round trips.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 64];
            loop {
                let n = socket.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                socket.write_all(&buf[..n]).await.unwrap();
            }
        });
        let client = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
            let mut rounds = 0u64;
            while Instant::now() < deadline {
                socket.write_all(b"0123456789abcdef").await.unwrap();
                let mut reply = [0u8; 16];
                socket.read_exact(&mut reply).await.unwrap();
                assert_eq!(&reply, b"0123456789abcdef");
                spin_light(20_000);
                tokio::time::sleep(Duration::from_micros(200)).await;
                rounds += 1;
            }
            rounds
        });
        // Blocking threads (sampled too): std sleeps, timed condvar waits, and a plain read on a
        // socket with a read timeout, between bursts of CPU work.
        let blocking = tokio::task::spawn_blocking(move || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let mut writer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (mut reader, _) = listener.accept().unwrap();
            reader
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let pair = (std::sync::Mutex::new(()), std::sync::Condvar::new());
            let mut reads = 0u64;
            while Instant::now() < deadline {
                spin_light(50_000);
                let before = Instant::now();
                std::thread::sleep(Duration::from_millis(2));
                assert!(before.elapsed() >= Duration::from_millis(2));
                let guard = pair.0.lock().unwrap();
                let (_guard, timeout) = pair
                    .1
                    .wait_timeout(guard, Duration::from_millis(1))
                    .unwrap();
                assert!(timeout.timed_out());
                writer.write_all(b"x").unwrap();
                let mut byte = [0u8; 1];
                // A plain `read`: `Interrupted` would show here.
                let n = reader
                    .read(&mut byte)
                    .expect("a read that is never interrupted");
                assert_eq!(n, 1);
                reads += 1;
            }
            reads
        });
        let rounds = client.await.unwrap();
        server.await.unwrap();
        let reads = blocking.await.unwrap();
        assert!(rounds > 10 && reads > 10, "{rounds} {reads}");
    });
    let status = capture::cpu_sample_status();
    assert!(status.samples > 0, "{status:?}");
    capture::stop();
    capture::force_timer_source(false);
    drop(runtime);
}

/// The CPU time of a fixed amount of work on a sampled worker, without sampling and with each
/// source at 99 and 1,000 Hz (thread CPU time: what the handler costs the thread shows, other
/// processes on the machine do not). Not a benchmark: run by hand with `--ignored --nocapture`.
#[test]
#[ignore = "a measurement, run by hand"]
fn cost_of_sampling_on_the_sampled_thread() {
    let _serial = common::serial();
    let work = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        let start = ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
        let mut x = 0u64;
        for _ in 0..200 {
            x = x.wrapping_add(spin_light(LIGHT_ITERATIONS));
        }
        // SAFETY: a valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        std::hint::black_box(x);
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9 - start
    };
    for (hz, timers) in [
        (0, false),
        (99, false),
        (1000, false),
        (99, true),
        (1000, true),
        (0, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        start_capture(dir.path(), hz, timers);
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(1).enable_all();
        flight_recorder::tokio::instrument(&mut builder);
        let runtime = builder.build().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let seconds =
            runtime.block_on(async { tokio::spawn(async move { work() }).await.unwrap() });
        let status = capture::cpu_sample_status();
        eprintln!(
            "{hz} Hz {:?}: {seconds:.3} s of CPU, {} samples so far",
            status.source, status.samples
        );
        capture::stop();
        capture::force_timer_source(false);
    }
}

/// The child of [`the_start_up_line_names_the_source`]: starts capture from the environment and
/// stops it.
#[test]
fn cpu_env_child() {
    if std::env::var_os("FR_CPU_ENV_CHILD").is_none() {
        return;
    }
    assert!(capture::init_from_env("cpu-child 1.0"));
    assert_eq!(capture::settings().unwrap().cpu_sample_hz, 99);
    capture::stop();
}

/// `FLIGHT_RECORDER_CPU_SAMPLE_HZ` turns sampling on, and the start-up line says which source
/// runs (`FLIGHT_RECORDER_CPU_SAMPLE_SOURCE=timer` forces the timers).
#[test]
fn the_start_up_line_names_the_source() {
    for (source, expected) in [
        (None, "; cpu samples 99 Hz (perf_event)"),
        (
            Some("timer"),
            "; cpu samples 99 Hz (cpu-time timers; signal ",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "cpu_env_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("FR_CPU_ENV_CHILD", "1")
            .env("FLIGHT_RECORDER_DUMP_DIR", dir.path())
            .env("FLIGHT_RECORDER_CPU_SAMPLE_HZ", "99")
            .env_remove("FLIGHT_RECORDER_CPU_SAMPLE_SOURCE")
            .env_remove("FLIGHT_RECORDER_ANNOUNCE")
            .env_remove("FLIGHT_RECORDER_CAPTURE");
        if let Some(source) = source {
            command.env("FLIGHT_RECORDER_CPU_SAMPLE_SOURCE", source);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
    }
}
