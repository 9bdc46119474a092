//! Inputs that crashed the `analysis` fuzz target (`fuzz/`, `scripts/fuzz.sh`), kept as
//! regression tests: each must be summarized (text, JSON, HTML) and exported (Perfetto, Chrome
//! JSON) without a panic, an overflow (tests build with debug assertions) or a huge allocation.
//! The files are stored with their record checksums already made valid, as the target feeds
//! them.
//!
//! What they found: sums and differences of times that overflowed on corrupt times (summary and
//! report), a table
//! width past the formatter's limit of 65535 (a panic in release builds too), and a utilization
//! row sized by a corrupt window end (billions of cells).

use std::path::Path;

use flight_recorder_analysis::chrome::write_chrome_json;
use flight_recorder_analysis::merge::MergeOptions;
use flight_recorder_analysis::perfetto::write_perfetto;
use flight_recorder_analysis::report::render_html;
use flight_recorder_analysis::{Summary, SummaryOptions};
use flight_recorder_format::TraceReader;

fn analyze(data: &[u8]) {
    for reorder_events in [1 << 19, 8] {
        let merge = MergeOptions { reorder_events };
        let options = SummaryOptions {
            merge,
            long_poll_ns: 1000,
            ..SummaryOptions::default()
        };
        if let Ok(reader) = TraceReader::new(data) {
            let summary = match Summary::from_reader_with(reader, options, &mut |_| {}) {
                Ok(summary) => summary,
                Err(damaged) => *damaged.summary,
            };
            for thread in &summary.utilization.threads {
                assert!(
                    thread.busy_per_slice.len() <= 1000,
                    "unbounded utilization row"
                );
            }
            let text = summary.render_text();
            let json = serde_json::to_string(&summary.to_json()).unwrap();
            let _ = render_html(&summary);
            // The summary read on one thread is the same.
            let reader = TraceReader::new(data).unwrap();
            let sequential = SummaryOptions {
                pipeline: false,
                ..options
            };
            let one_thread = match Summary::from_reader_with(reader, sequential, &mut |_| {}) {
                Ok(summary) => summary,
                Err(damaged) => *damaged.summary,
            };
            assert_eq!(one_thread.render_text(), text);
            assert_eq!(serde_json::to_string(&one_thread.to_json()).unwrap(), json);
        }
        if let Ok(reader) = TraceReader::new(data) {
            let _ = write_perfetto(reader, std::io::sink(), merge, &mut |_| {});
        }
        if let Ok(reader) = TraceReader::new(data) {
            let _ = write_chrome_json(reader, std::io::sink(), merge, &mut |_| {});
        }
    }
}

#[test]
fn fuzz_crashes_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let data = std::fs::read(&file).unwrap();
        eprintln!("{}", file.display());
        analyze(&data);
    }
}
