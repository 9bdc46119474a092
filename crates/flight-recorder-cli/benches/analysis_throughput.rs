//! Analysis throughput: writes a trace of at least 200 MB with the real recorder (a full trace of
//! a synthetic runtime: worker threads polling, waking and spawning tasks, with regions, logs and
//! counters), then times the `flight-recorder` binary on it as child processes — `summary`,
//! `convert --to perfetto` and `convert --to chrome-json` — and prints MB/s, each child's peak
//! resident memory and the size of each export (deleted once measured), each measure the median
//! of three runs. The bare reader's speed (decoding every event, nothing else) is the baseline, and
//! each step is also given as a percentage of it. The merged reader (the events put in time order
//! across threads, as every analysis reads them) is the floor of the steps: their reading thread
//! does that much. Each export's output is then written again alone, as many bytes to the same
//! place in the same round, for the floor of writing it, and the export's time over that is
//! printed too (the exports write on a thread of their own, so their writing overlaps their
//! formatting); and each export runs once more per round to `/dev/null`, for its speed with no
//! writing to wait for.
//!
//! ```text
//! cargo bench -p flight-recorder-cli --bench analysis_throughput
//! FLIGHT_RECORDER_BENCH_MB=400 cargo bench -p flight-recorder-cli --bench analysis_throughput
//! ```
//!
//! `FLIGHT_RECORDER_BENCH_MB` sets the trace size (default 220); `FLIGHT_RECORDER_BENCH_TRACE`
//! names the trace file: used as it is when it exists, else written there and kept (by default
//! the trace goes to a temporary directory and is deleted); `FLIGHT_RECORDER_BENCH_ROUNDS` sets
//! how many times each measure runs (default 3; its median is printed).
//!
//! `FLIGHT_RECORDER_BENCH_WORKLOAD=http` records a real runtime instead of the synthetic one: an
//! axum server answering `GET /` on an instrumented 2-worker tokio runtime, loaded by 16
//! keep-alive clients. Its trace is what a service's is: small task ids, few tasks polled many
//! times, about 3.5 bytes per event where the synthetic trace (task ids of 41 bits, regions, logs
//! and counters) takes 7 to 8, so the same events make half the megabytes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use flight_recorder::{FullTrace, TraceStats};

use flight_recorder_analysis::merge::{MergeOptions, OrderedEvents};
use flight_recorder_format::TraceReader;
use flight_recorder_test_support::synthetic::{run_child, wait_for_size, write_trace};

fn main() {
    // `cargo test` runs benches with `--bench` missing: only build them then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let trace: PathBuf = std::env::var_os("FLIGHT_RECORDER_BENCH_TRACE")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("bench.trace"));
    if !trace.exists() {
        let mb = std::env::var("FLIGHT_RECORDER_BENCH_MB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(220);
        let start = Instant::now();
        let stats = match std::env::var("FLIGHT_RECORDER_BENCH_WORKLOAD").as_deref() {
            Ok("http") => write_http_trace(&trace, mb * 1_000_000),
            Ok("synthetic") | Err(_) => write_trace(&trace, mb * 1_000_000),
            Ok(other) => panic!("FLIGHT_RECORDER_BENCH_WORKLOAD={other}: http or synthetic"),
        };
        println!(
            "trace: {:.1} MB, {} chunks, {} chunks dropped by the recorder",
            stats.bytes as f64 / 1e6,
            stats.chunks,
            stats.dropped_chunks
        );
        println!("recorded in {:.1}s", start.elapsed().as_secs_f64());
    }
    let size = std::fs::metadata(&trace).expect("trace size").len();
    let mb = size as f64 / 1e6;
    println!("trace file: {} ({mb:.1} MB)", trace.display());

    // Every measure runs this many times and its median is printed (with the largest peak memory
    // of the steps): a single run on a shared machine moves by as much as a change does.
    let rounds: usize = std::env::var("FLIGHT_RECORDER_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3);
    println!("each measure: the median of {rounds} runs");

    // The bare reader, and the events in time order as every analysis reads them (the reading
    // thread of `summary` and of the exports does this and hands the events on): the merged
    // reader bounds their speed. The two alternate, round by round: this shared machine's speed
    // drifts between seconds.
    let mut reader_times = Vec::new();
    let mut merged_times = Vec::new();
    let mut events = 0u64;
    for _ in 0..rounds {
        let start = Instant::now();
        let mut reader = TraceReader::open(&trace).expect("open the trace");
        events = 0;
        while let Some(event) = reader.next_event().expect("read the trace") {
            // Each event is used, as an analysis uses it: with the decoder inlined into this
            // loop, an unused event let the optimizer skip part of its decoding (its time and
            // arguments), which made the baseline about a fifth faster than decoding is.
            std::hint::black_box(&event);
            events += 1;
        }
        reader_times.push(start.elapsed().as_secs_f64());

        let start = Instant::now();
        let reader = TraceReader::open(&trace).expect("open the trace");
        let mut merged = OrderedEvents::new(reader, MergeOptions::default());
        let mut merged_events = 0u64;
        while let Some(event) = merged.next_event_ref() {
            std::hint::black_box(event);
            merged_events += 1;
        }
        merged_times.push(start.elapsed().as_secs_f64());
        assert!(merged.take_error().is_none(), "the trace reads to its end");
        assert_eq!(merged_events, events, "the merge releases every event");
    }
    let reader_seconds = median(&mut reader_times);
    println!(
        "{:<24} {:>8.2}s {:>8.1} MB/s   {events} events ({:.2} bytes/event)",
        "reader only (in-process)",
        reader_seconds,
        mb / reader_seconds,
        size as f64 / events as f64
    );
    let seconds = median(&mut merged_times);
    println!(
        "{:<24} {:>8.2}s {:>8.1} MB/s   {:.0} % of the reader",
        "merged reader (in-proc.)",
        seconds,
        mb / seconds,
        100.0 * reader_seconds / seconds
    );

    let binary = Path::new(env!("CARGO_BIN_EXE_flight-recorder"));
    let trace_arg = trace.to_str().expect("a UTF-8 path");
    let perfetto = dir.path().join("out.perfetto-trace");
    let chrome = dir.path().join("out.json");
    let runs: [(&str, Vec<&str>); 5] = [
        ("summary", vec!["summary", trace_arg]),
        ("summary --json", vec!["summary", "--json", trace_arg]),
        ("diagnose", vec!["diagnose", trace_arg]),
        (
            "convert --to perfetto",
            vec![
                "convert",
                trace_arg,
                "--to",
                "perfetto",
                "-o",
                perfetto.to_str().unwrap(),
            ],
        ),
        (
            "convert --to chrome-json",
            vec![
                "convert",
                trace_arg,
                "--to",
                "chrome-json",
                "-o",
                chrome.to_str().unwrap(),
            ],
        ),
    ];
    for (name, args) in runs {
        let output = args
            .iter()
            .position(|&a| a == "-o")
            .map(|i| PathBuf::from(args[i + 1]));
        let mut times = Vec::new();
        let mut rss = 0f64;
        let mut written = String::new();
        // Per round, for an export: the time to write as many bytes to the same file with
        // nothing else (the floor of writing its output), the export's time over it, and the
        // export's time to `/dev/null` (its formatting with no writing to wait for).
        let mut write_times = Vec::new();
        let mut over_write = Vec::new();
        let mut null_times = Vec::new();
        for _ in 0..rounds {
            let (seconds, peak) = run_child(binary, &args);
            times.push(seconds);
            rss = rss.max(peak);
            // The export's size, in bytes written per byte of trace; the file goes at once (a
            // Chrome JSON export of the full trace is several GB).
            if let Some(path) = &output {
                if let Ok(m) = std::fs::metadata(path) {
                    written = format!(
                        "   wrote {:.1} MB ({:.2} bytes per trace byte)",
                        m.len() as f64 / 1e6,
                        m.len() as f64 / size as f64
                    );
                    let _ = std::fs::remove_file(path);
                    let write = write_alone(path, m.len());
                    write_times.push(write);
                    over_write.push(seconds / write);
                }
                let _ = std::fs::remove_file(path);
                let to_null: Vec<&str> = args
                    .iter()
                    .map(|&a| if Path::new(a) == path { "/dev/null" } else { a })
                    .collect();
                null_times.push(run_child(binary, &to_null).0);
            }
        }
        let each: Vec<String> = times.iter().map(|t| format!("{t:.2}")).collect();
        let seconds = median(&mut times);
        println!(
            "{name:<24} {seconds:>8.2}s {:>8.1} MB/s   {:.0} % of the reader   peak RSS {rss:.0} MiB{written}   runs (s): {}",
            mb / seconds,
            100.0 * reader_seconds / seconds,
            each.join(", ")
        );
        if !write_times.is_empty() {
            let each: Vec<String> = write_times.iter().map(|t| format!("{t:.2}")).collect();
            let write = median(&mut write_times);
            let over = median(&mut over_write);
            println!(
                "{:<24} {write:>8.2}s   the same bytes written alone, 1 MiB at a time   runs (s): {}",
                "  its output's writing",
                each.join(", ")
            );
            println!(
                "{:<24} {over:>8.2}x   the median of each round's export time over its writing alone",
                "  the export over it",
            );
        }
        if !null_times.is_empty() {
            let each: Vec<String> = null_times.iter().map(|t| format!("{t:.2}")).collect();
            let null = median(&mut null_times);
            println!(
                "{:<24} {null:>8.2}s {:>8.1} MB/s   {:.0} % of the reader   runs (s): {}",
                "  to /dev/null",
                mb / null,
                100.0 * reader_seconds / null,
                each.join(", ")
            );
        }
    }
}

/// Writes `len` bytes to a new file at `path` as the exports write theirs (1 MiB at a time, on
/// one thread) and removes it; returns the seconds from its creation to its close. On these
/// virtual machines putting gigabytes into the page cache takes from 2 to 9 s for the same
/// size, by the kernel's state: this is the floor of writing an export's output to a file, which
/// no export can go below.
fn write_alone(path: &Path, len: u64) -> f64 {
    use std::io::Write;
    let block = vec![b' '; 1 << 20];
    let start = Instant::now();
    let mut file = std::fs::File::create(path).expect("create the output file");
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).expect("write the output file");
        left -= n as u64;
    }
    drop(file);
    let seconds = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(path);
    seconds
}

/// The median of `times` (sorted in place).
fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Writes a full trace of at least `bytes` of an axum server on an instrumented 2-worker tokio
/// runtime, answering `GET /` to 16 keep-alive clients (threads of this process).
fn write_http_trace(path: &Path, bytes: u64) -> TraceStats {
    let file = std::fs::File::create(path).expect("create the trace file");
    let trace = FullTrace::start(std::io::BufWriter::new(file)).expect("start the trace");
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    flight_recorder::tokio::instrument(&mut builder);
    let runtime = builder.build().expect("a runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("a listening socket");
    let addr = listener.local_addr().expect("its address");
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello, world\n" }));
    runtime.spawn(async move { axum::serve(listener, app).await });
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).expect("connect");
                stream.set_nodelay(true).expect("no delay");
                let mut buf = [0u8; 1024];
                while !stop.load(Ordering::Relaxed) {
                    stream
                        .write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
                        .expect("send a request");
                    // The response: its head, then the 13 bytes of its body.
                    let mut filled = 0;
                    loop {
                        let n = stream.read(&mut buf[filled..]).expect("read the response");
                        assert!(n > 0, "the server closed the connection");
                        filled += n;
                        let head = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n");
                        if head.is_some_and(|end| filled >= end + 4 + 13) {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    wait_for_size(path, bytes);
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client");
    }
    drop(runtime);
    trace.stop().expect("stop the trace")
}
