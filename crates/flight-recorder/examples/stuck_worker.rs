//! A stuck worker, caught while it is stuck: automatic capture's slow-poll watchdog sees a poll
//! running past its threshold, takes the worker's stack every threshold while the poll goes on,
//! and writes a `slow_poll` dump once the poll ends. The example then prints the dump's summary,
//! where the long poll shows the function the worker was stuck in, with its file and line.
//!
//! ```text
//! cargo run --release --example stuck_worker
//! ```
//!
//! Built without `--cfg tokio_unstable` the runtime records no polls; the watchdog then sees a
//! worker that stayed busy at the same place and writes a `stuck_worker` dump instead. Either way
//! the stacks need frame pointers (`-C force-frame-pointers=yes`, set in this workspace's
//! `.cargo/config.toml`).

use std::path::PathBuf;
use std::time::Duration;

use flight_recorder::capture::{self, CaptureSettings};
use flight_recorder_analysis::summary::Summary;
use flight_recorder_format::TraceReader;

/// A synchronous call in async code: the classic stall. `inline(never)` keeps it in the stacks
/// as a frame of its own, as a real function of this size would be.
#[inline(never)]
fn load_config_synchronously() -> usize {
    std::thread::sleep(Duration::from_millis(300));
    std::hint::black_box(42)
}

async fn handle_request(id: u64) -> usize {
    tokio::time::sleep(Duration::from_millis(1)).await;
    if id == 20 {
        return load_config_synchronously();
    }
    id as usize
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from("traces/stuck_worker");
    capture::start(CaptureSettings {
        slow_poll_threshold: Duration::from_millis(50),
        dump_dir: dir.clone(),
        ..CaptureSettings::default()
    })?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    flight_recorder::tokio::Instrumentation::new()
        .name("service")
        .apply(&mut builder);
    let runtime = builder.build()?;
    runtime.block_on(async {
        let requests: Vec<_> = (0..40).map(|id| tokio::spawn(handle_request(id))).collect();
        for request in requests {
            request.await.expect("a request");
        }
    });
    // The dump is written once the slow poll ended, from the watchdog's thread.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let dump = loop {
        let dumps = capture::list_dumps(&dir)?;
        if let Some(dump) = dumps.into_iter().find(|d| d.tag != "periodic") {
            break dump;
        }
        if std::time::Instant::now() > deadline {
            return Err("no slow-poll dump within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(runtime);
    capture::stop();
    println!("dump written: {}\n", dump.path.display());
    let summary = Summary::from_reader(TraceReader::open(&dump.path)?)
        .map_err(|damaged| format!("the dump is damaged: {damaged}"))?;
    print!("{}", summary.render_text());
    Ok(())
}
