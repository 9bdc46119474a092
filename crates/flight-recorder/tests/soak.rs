//! Soak: a tokio service recording under automatic capture for `FLIGHT_RECORDER_SOAK_SECS`
//! seconds (default 20), with periodic files, application triggers and slow-poll triggers, and
//! garbage collection of the dump directory. Resident memory is sampled every second and must
//! stay flat after a warm-up; every file written must read back completely.
//!
//! Ignored in the plain test run; `scripts/test.sh` runs it in release mode, printing the RSS
//! series:
//!
//! ```text
//! FLIGHT_RECORDER_SOAK_SECS=600 cargo test --release -p flight-recorder --test soak -- --ignored --nocapture
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flight_recorder::capture::{self, CaptureSettings, DumpOutcome};
use flight_recorder::UserTask;
use flight_recorder_format::TraceReader;

/// RSS may grow at most this much past its level at the end of the warm-up.
const RSS_GROWTH_BOUND_KIB: u64 = 24 << 10;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

async fn request(id: u64) {
    let task = UserTask::new("request");
    {
        let _region = task.region("parse");
        task.log("http", &format!("GET /items/{id}"));
    }
    let lookup = flight_recorder::tokio::spawn(async move {
        let _region = flight_recorder::region("db_query");
        tokio::time::sleep(Duration::from_micros(300)).await;
        id * 2
    });
    let value = lookup.await.unwrap();
    flight_recorder::counter("last_value", value);
    if id.is_multiple_of(500) {
        // A poll that blocks its worker past the slow-poll threshold.
        std::thread::sleep(Duration::from_millis(60));
    }
    if id.is_multiple_of(97) {
        let _ = tokio::task::spawn_blocking(move || flight_recorder::log("blocking", "work")).await;
    }
    task.end();
}

fn dump_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

#[test]
#[ignore = "a soak run; scripts/test.sh runs it with --ignored"]
fn soak_with_periodic_dumps_and_triggers() {
    let secs: u64 = std::env::var("FLIGHT_RECORDER_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
        .max(8);
    let warm_up = (secs / 4).max(4);
    let dir = tempfile::tempdir().unwrap();
    capture::start(CaptureSettings {
        interval: Duration::from_secs(1),
        duration: Duration::from_secs(2),
        max_bytes: 4 << 20,
        total_dump_size_limit: 24 << 20,
        dump_dir: dir.path().to_path_buf(),
        min_dump_interval: Duration::from_millis(500),
        slow_poll_threshold: Duration::from_millis(40),
        panic: false,
        signal: None,
        announce: false,
        program_version: "soak".into(),
        ..CaptureSettings::default()
    })
    .unwrap();

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    flight_recorder::tokio::instrument(&mut builder);
    let runtime = builder.build().unwrap();

    let started = Instant::now();
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let mut triggers = [0u64; 3];
    let requests = runtime.block_on(async {
        let mut next_id = 0u64;
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.tick().await;
        for second in 1..=secs {
            // A second of traffic: batches of concurrent requests.
            let until = tokio::time::Instant::now() + Duration::from_secs(1);
            while tokio::time::Instant::now() < until {
                let mut batch = tokio::task::JoinSet::new();
                for _ in 0..50 {
                    next_id += 1;
                    batch.spawn(request(next_id));
                }
                while let Some(done) = batch.join_next().await {
                    done.unwrap();
                }
            }
            // An application trigger every second (the rate limit lets some through).
            let outcome = tokio::task::spawn_blocking(|| capture::dump_now("soak check", "soak"))
                .await
                .unwrap()
                .unwrap();
            match outcome {
                DumpOutcome::Written(_) => triggers[0] += 1,
                DumpOutcome::Coalesced => triggers[1] += 1,
                DumpOutcome::RateLimited { .. } => triggers[2] += 1,
            }
            samples.push((second, rss_kib()));
            ticker.tick().await;
        }
        next_id
    });
    drop(runtime);
    let status = capture::status();
    capture::stop();
    let elapsed = started.elapsed();

    println!(
        "soak: {secs} s requested, {:.1} s run, {requests} requests",
        elapsed.as_secs_f64()
    );
    println!("soak: RSS (KiB) by second: {samples:?}");
    let baseline = samples
        .iter()
        .filter(|(s, _)| *s <= warm_up)
        .map(|&(_, r)| r)
        .max()
        .unwrap();
    let peak_after = samples
        .iter()
        .filter(|(s, _)| *s > warm_up)
        .map(|&(_, r)| r)
        .max()
        .unwrap_or(baseline);
    println!(
        "soak: RSS after the {warm_up} s warm-up: {baseline} KiB; peak after it {peak_after} KiB \
         (bound +{RSS_GROWTH_BOUND_KIB} KiB)"
    );
    println!(
        "soak: files written {}, failed {}, deleted by GC {}, triggers written/coalesced/\
         rate-limited {triggers:?}, suppressed {}",
        status.files_written,
        status.failed_writes,
        status.files_deleted,
        status.suppressed_triggers
    );
    assert!(
        peak_after <= baseline + RSS_GROWTH_BOUND_KIB,
        "RSS grew from {baseline} KiB to {peak_after} KiB"
    );
    assert_eq!(status.failed_writes, 0, "{:?}", status.last_error);
    assert!(status.files_written >= secs / 2, "{status:?}");
    // Every trigger got an answer; the slow polls and the application's calls share one rate
    // limit, so most are suppressed and counted.
    assert_eq!(triggers.iter().sum::<u64>(), secs);
    assert!(status.suppressed_triggers > 0, "{status:?}");

    // Every file left is complete and reads back whole; nothing else is left behind.
    let files = dump_files(dir.path());
    assert_eq!(
        files.len() as u64,
        status.files_written - status.files_deleted,
        "{files:?}"
    );
    let mut reasons = std::collections::BTreeMap::<String, u64>::new();
    let mut events = 0u64;
    for path in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            capture::parse_dump_name(name).is_some(),
            "stray file {name}"
        );
        let mut reader = TraceReader::open(path).unwrap();
        *reasons.entry(reader.header().reason.clone()).or_default() += 1;
        events += reader.read_all_events().unwrap().len() as u64;
        assert!(reader.is_complete(), "{name} has no end record");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} is not owner-only");
        }
    }
    println!(
        "soak: {} files kept, all complete ({events} events), by reason {reasons:?}",
        files.len()
    );
    assert!(reasons.contains_key("periodic"), "{reasons:?}");
    assert!(reasons.len() > 1, "no triggered file kept: {reasons:?}");
}
