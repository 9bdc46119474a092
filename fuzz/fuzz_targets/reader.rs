//! The trace reader over arbitrary bytes: open, read the header, iterate every event and touch
//! everything the reader exposes. It must return errors, never panic, hang or allocate without
//! bound.
#![no_main]

use flight_recorder_format::TraceReader;
use flight_recorder_fuzz::{check_allocations, fix_checksums};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_allocations();
    read(data);
    // The same bytes with every record's checksum made valid, so that mutations reach the
    // decoders of the records' contents.
    read(&fix_checksums(data));
});

fn read(data: &[u8]) {
    let Ok(mut reader) = TraceReader::new(data) else {
        return;
    };
    let header = reader.header().clone();
    let converter = *reader.time_converter();
    let _ = (header.reason.len(), header.details.len());
    for units in [0, 1, u64::MAX >> 1, u64::MAX] {
        let _ = (converter.unix_ns(units), converter.units_to_ns(units));
    }
    let mut events = 0u64;
    loop {
        match reader.next_event() {
            Ok(Some(event)) => {
                events += 1;
                let _ = event.kind();
                for i in 0..=event.arg_count as usize {
                    let id = event.arg(i);
                    let _ = reader.string(id);
                    let _ = reader.location(id);
                }
                let _ = reader.kind_info(event.kind_byte);
                let _ = reader.threads().get(&event.thread);
            }
            Ok(None) => break,
            Err(error) => {
                let _ = error.to_string();
                break;
            }
        }
    }
    // After the end or an error, the reader stays finished.
    assert!(matches!(reader.next_event(), Ok(None) | Err(_)));
    let _ = (reader.dropped(), reader.is_complete(), reader.bytes_read());
    let (_, bytes) = reader.chunk_stats();
    assert!(bytes <= data.len() as u64);
    let _ = events;
}
