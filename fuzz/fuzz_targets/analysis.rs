//! The analyses over arbitrary bytes: the summary (text, JSON, HTML report), and the Perfetto and
//! Chrome JSON exports into a sink. A damaged file must give a summary of its intact part and an
//! error, never a panic, a hang or an unbounded allocation.
#![no_main]

use flight_recorder_analysis::chrome::write_chrome_json;
use flight_recorder_analysis::export::ExportError;
use flight_recorder_analysis::merge::MergeOptions;
use flight_recorder_analysis::perfetto::write_perfetto;
use flight_recorder_analysis::report::render_html;
use flight_recorder_analysis::{Summary, SummaryOptions};
use flight_recorder_format::TraceReader;
use flight_recorder_fuzz::{check_allocations, fix_checksums};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_allocations();
    // Every record's checksum made valid, so that mutations reach the analyses (the reader's
    // own target covers the checksum failures).
    let data = &fix_checksums(data)[..];
    // A small lookahead too, so the reordering's overflow path is exercised.
    let merge = MergeOptions {
        reorder_events: if data.len().is_multiple_of(2) {
            1 << 19
        } else {
            8
        },
    };
    let options = SummaryOptions {
        merge,
        long_poll_ns: 1000,
        ..SummaryOptions::default()
    };
    if let Ok(reader) = TraceReader::new(data) {
        let summary = match Summary::from_reader_with(reader, options, &mut |_| {}) {
            Ok(summary) => summary,
            Err(damaged) => {
                let _ = damaged.error.to_string();
                *damaged.summary
            }
        };
        let _ = summary.render_text();
        let json = summary.to_json();
        let _ = serde_json::to_string(&json).expect("a summary serializes");
        let _ = render_html(&summary);
    }
    if let Ok(reader) = TraceReader::new(data) {
        let _ = write_perfetto(reader, std::io::sink(), merge, &mut |_| {});
    }
    if let Ok(reader) = TraceReader::new(data) {
        // The Chrome JSON of the intact part is valid JSON, damaged input or not.
        let json = match write_chrome_json(reader, Vec::new(), merge, &mut |_| {}) {
            Ok(json) => Some(json),
            Err(ExportError::Trace(_)) => None,
            Err(ExportError::Output(e)) => panic!("writing to a Vec failed: {e}"),
        };
        if let Some(json) = json {
            serde_json::from_slice::<serde_json::Value>(&json).expect("valid Chrome JSON");
        }
    }
});
