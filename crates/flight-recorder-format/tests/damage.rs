//! Damaged, foreign and future files: the reader returns the intact prefix and exactly one clear
//! error, and never panics.

use flight_recorder_test_support as common;

use common::{expected, header, raw_record, read, Ev, TraceBuilder, ORIGIN_TICKS};
use flight_recorder_format::record::{MAX_RECORD_LEN, PREAMBLE_LEN};
use flight_recorder_format::{ErrorKind, Event, EventKind, KindInfo, TraceReader};

const BASE: u64 = ORIGIN_TICKS + 1_000;

/// A small complete file of three chunks, with the events of each chunk.
fn small_file() -> (Vec<u8>, Vec<Vec<Event>>) {
    let chunks = [
        (
            1,
            BASE,
            vec![
                Ev::new(EventKind::ThreadStart, 0, &[]),
                Ev::new(EventKind::TaskSpawn, 5, &[1, 1, 0]),
                Ev::new(EventKind::PollStart, 1, &[1]),
            ],
        ),
        (
            2,
            BASE + 3,
            vec![
                Ev::new(EventKind::TaskWake, 2, &[1, 0]),
                Ev::log(1, 1, "hello"),
            ],
        ),
        (1, BASE + 400, vec![Ev::new(EventKind::PollEnd, 9, &[1, 1])]),
    ];
    let mut b = TraceBuilder::standard(
        &[(1, "cat")],
        &[(1, "src/lib.rs", 3, 9)],
        &[(1, 11, "main"), (2, 12, "worker")],
    );
    let mut want = Vec::new();
    for (thread, base, events) in &chunks {
        b.chunk(*thread, *base, events);
        want.push(expected(*thread, *base, events));
    }
    b.dropped(1, 2);
    (b.finish(), want)
}

/// The end offset of every record of a well-formed file, with its type byte.
fn record_ends(bytes: &[u8]) -> Vec<(u8, usize)> {
    let mut ends = Vec::new();
    let mut pos = PREAMBLE_LEN;
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 1..pos + 5].try_into().unwrap()) as usize;
        let end = pos + 9 + len;
        ends.push((bytes[pos], end));
        pos = end;
    }
    assert_eq!(pos, bytes.len());
    ends
}

fn is_prefix(short: &[Event], long: &[Event]) -> bool {
    short.len() <= long.len() && long[..short.len()] == *short
}

#[test]
fn truncation_at_every_offset_gives_the_intact_chunks_then_one_error() {
    let (bytes, chunks) = small_file();
    let all: Vec<Event> = chunks.concat();
    let (events, error) = read(&bytes);
    assert!(error.is_none());
    assert_eq!(events, all);

    let ends = record_ends(&bytes);
    assert!(
        bytes.len() < 800,
        "keep the file small: {} bytes",
        bytes.len()
    );
    for cut in 0..bytes.len() {
        let (events, error) = read(&bytes[..cut]);
        let error = error.unwrap_or_else(|| panic!("no error for a file cut at {cut}"));
        assert!(
            matches!(error.kind, ErrorKind::Truncated(_)),
            "cut at {cut}: {error}"
        );
        assert!(error.offset <= cut as u64, "cut at {cut}: {error}");
        assert!(
            error
                .to_string()
                .contains(&format!("byte {}", error.offset)),
            "{error}"
        );
        // Exactly the events of the chunks whose records are whole.
        let whole_chunks = ends
            .iter()
            .filter(|&&(kind, end)| kind == 6 && end <= cut)
            .count();
        let want: Vec<Event> = chunks[..whole_chunks].concat();
        assert_eq!(events, want, "cut at {cut}");
        assert!(is_prefix(&events, &all));
    }
}

#[test]
fn a_file_cut_between_records_names_the_end_of_the_file() {
    let (bytes, chunks) = small_file();
    let ends = record_ends(&bytes);
    let (_, after_second_chunk) = ends.iter().filter(|(kind, _)| *kind == 6).nth(1).unwrap();
    let (events, error) = read(&bytes[..*after_second_chunk]);
    assert_eq!(events, chunks[..2].concat());
    let error = error.unwrap();
    assert_eq!(error.offset, *after_second_chunk as u64);
    assert_eq!(
        error.to_string(),
        format!("truncated trace at byte {after_second_chunk}: file ends without its end record")
    );
}

#[test]
fn a_bit_flip_anywhere_is_detected_or_harmless() {
    let (bytes, chunks) = small_file();
    let all: Vec<Event> = chunks.concat();
    let mut harmless = Vec::new();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut damaged = bytes.clone();
            damaged[i] ^= 1 << bit;
            let (events, error) = read(&damaged);
            assert!(is_prefix(&events, &all), "flip of bit {bit} at {i}");
            match error {
                Some(e) => assert!(
                    e.to_string().contains("byte") || e.to_string().contains("version"),
                    "{e}"
                ),
                None => {
                    assert_eq!(events, all, "flip of bit {bit} at {i}");
                    harmless.push(i);
                }
            }
        }
    }
    // Only the minor version (bytes 10 and 11) is free to change; every record is checksummed.
    harmless.dedup();
    assert_eq!(harmless, [10, 11]);
}

#[test]
fn a_checksum_mismatch_names_the_record() {
    let (mut bytes, chunks) = small_file();
    let ends = record_ends(&bytes);
    let second_chunk = ends.iter().filter(|(kind, _)| *kind == 6).nth(1).unwrap().1;
    let first_chunk_end = ends.iter().find(|(kind, _)| *kind == 6).unwrap().1;
    bytes[second_chunk - 1] ^= 0x40; // the CRC's last byte
    let (events, error) = read(&bytes);
    assert_eq!(events, chunks[0]);
    let error = error.unwrap();
    assert!(matches!(error.kind, ErrorKind::Checksum));
    assert_eq!(error.offset, first_chunk_end as u64);
    assert_eq!(
        error.to_string(),
        format!("corrupt trace at byte {first_chunk_end}: record checksum mismatch")
    );
}

#[test]
fn foreign_files_are_not_traces() {
    for bytes in [
        &b"hello, this is a text file\n"[..],
        b"FLTRECRX\x01\x00\x00\x00",
        b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00",
        b"X",
    ] {
        let error = TraceReader::new(bytes).err().unwrap();
        assert!(matches!(error.kind, ErrorKind::BadMagic), "{error}");
        assert_eq!(error.offset, 0);
        assert_eq!(
            error.to_string(),
            "not a flight-recorder trace (bad magic at byte 0)"
        );
    }
}

#[test]
fn an_empty_or_cut_preamble_is_truncated() {
    for len in 0..PREAMBLE_LEN {
        let error = TraceReader::new(&b"FLTRECRD\x01\x00\x00\x00"[..len])
            .err()
            .unwrap();
        assert!(matches!(error.kind, ErrorKind::Truncated(_)), "{error}");
        assert_eq!(error.offset, len as u64);
    }
    let bytes = b"FLTRECRD\x01\x00\x00\x00";
    let error = TraceReader::new(&bytes[..]).err().unwrap();
    assert_eq!(
        error.to_string(),
        "truncated trace at byte 12: file ends before the header"
    );
}

#[test]
fn another_major_version_is_refused_and_a_newer_minor_version_is_read() {
    let (bytes, chunks) = small_file();
    for major in [0u16, 2, 0xffff] {
        let mut other = bytes.clone();
        other[8..10].copy_from_slice(&major.to_le_bytes());
        other[10..12].copy_from_slice(&3u16.to_le_bytes());
        let error = TraceReader::new(&other[..]).err().unwrap();
        assert!(
            matches!(
                error.kind,
                ErrorKind::UnsupportedVersion { major: m, minor: 3 } if m == major
            ),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            format!("unsupported trace format version {major}.3 (this reader reads 1.x)")
        );
    }
    let mut newer = bytes.clone();
    newer[10..12].copy_from_slice(&7u16.to_le_bytes());
    let (events, error) = read(&newer);
    assert!(error.is_none());
    assert_eq!(events, chunks.concat());
}

#[test]
fn the_first_record_must_be_the_header() {
    let mut bytes = b"FLTRECRD\x01\x00\x00\x00".to_vec();
    bytes.extend(raw_record(8, &[0]));
    let error = TraceReader::new(&bytes[..]).err().unwrap();
    assert!(matches!(error.kind, ErrorKind::Malformed(_)));
    assert_eq!(
        error.to_string(),
        "corrupt trace at byte 12: the first record is not a header"
    );
}

#[test]
fn a_second_header_is_an_error_after_the_events_before_it() {
    let mut b = TraceBuilder::new(&header());
    let events = [Ev::new(EventKind::PollStart, 0, &[1])];
    b.chunk(1, BASE, &events);
    let before = b.unfinished().len();
    let mut b = TraceBuilder::new(&header());
    b.chunk(1, BASE, &events)
        .raw_record(1, &header().encode())
        .chunk(1, BASE, &events);
    let (got, error) = read(&b.finish());
    assert_eq!(got, expected(1, BASE, &events));
    let error = error.unwrap();
    assert_eq!(error.offset, before as u64 + 5, "the payload's offset");
    assert!(error.to_string().ends_with("a second header record"));
}

#[test]
fn an_event_kind_missing_from_the_tables_is_an_error_at_its_offset() {
    let good = [Ev::new(EventKind::PollStart, 0, &[1])];
    let bad = Ev {
        kind: 99,
        delta: 0,
        args: vec![],
        payload: vec![],
    };
    let mut b = TraceBuilder::new(&header());
    let start = {
        let mut probe = TraceBuilder::new(&header());
        probe.chunk(1, BASE, &[]);
        probe.unfinished().len()
    };
    b.chunk(1, BASE, &[good[0].clone(), bad, good[0].clone()]);
    let (events, error) = read(&b.finish());
    // The event before the unknown one is returned; the one after it cannot be found.
    assert_eq!(events, expected(1, BASE, &good));
    let error = error.unwrap();
    // The chunk's events start where an empty chunk's record would end, minus the checksum;
    // the unknown event follows the first, 3 bytes long.
    assert_eq!(error.offset, (start - 4 + 3) as u64);
    assert!(error.to_string().ends_with("unknown event kind"), "{error}");
}

#[test]
fn events_cut_short_inside_a_chunk_are_errors() {
    // A chunk whose last event lacks its argument, and one whose payload runs past the chunk.
    for body in [&[17u8, 0, 5, 18, 0, 5][..], &[17, 0, 5, 5, 0, 1, 10, b'a']] {
        let mut payload = vec![1, 0];
        payload.extend_from_slice(body);
        let mut b = TraceBuilder::new(&header());
        b.raw_record(6, &payload);
        let (events, error) = read(&b.finish());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind(), Some(EventKind::PollStart));
        let error = error.unwrap();
        assert!(matches!(error.kind, ErrorKind::Malformed(_)), "{error}");
    }
}

#[test]
fn malformed_tables_are_errors() {
    let too_many_args = KindInfo {
        byte: 100,
        arg_count: 5,
        has_payload: false,
        name: "wide".into(),
    };
    let mut kinds = Vec::new();
    flight_recorder_format::tables::push_kind(&too_many_args, &mut kinds);
    for (record, payload, what) in [
        (2u8, kinds, "event kind with too many arguments"),
        (3, vec![1, 10, b'a'], "table entry runs past the record"),
        (4, vec![1, 1, b'a', 0x80], "bad varint in table"),
        (
            4,
            vec![1, 1, b'a', 0x80, 0x80, 0x80, 0x80, 0x10, 1],
            "number too large in table",
        ),
        (5, vec![1], "bad varint in table"),
        (2, vec![100, 1], "table entry cut short"),
        (7, vec![1], "bad varint in table"),
        (6, vec![], "bad varint in table"),
    ] {
        let mut b = TraceBuilder::new(&header());
        let start = TraceBuilder::new(&header()).unfinished().len();
        b.raw_record(record, &payload);
        let (events, error) = read(&b.finish());
        assert!(events.is_empty());
        let error = error.unwrap();
        assert_eq!(
            error.to_string(),
            format!("corrupt trace at byte {}: {what}", start + 5),
            "record {record}"
        );
    }
}

#[test]
fn a_record_length_out_of_range_is_an_error() {
    let mut bytes = TraceBuilder::new(&header()).unfinished();
    let start = bytes.len();
    bytes.push(6);
    bytes.extend_from_slice(&(MAX_RECORD_LEN + 1).to_le_bytes());
    bytes.extend_from_slice(&[0; 64]);
    let (_, error) = read(&bytes);
    assert_eq!(
        error.unwrap().to_string(),
        format!("corrupt trace at byte {start}: record length out of range")
    );
}

#[test]
fn a_bad_header_payload_is_an_error() {
    let mut bytes = b"FLTRECRD\x01\x00\x00\x00".to_vec();
    bytes.extend(raw_record(1, &[1, 100, b'x']));
    let error = TraceReader::new(&bytes[..]).err().unwrap();
    assert_eq!(
        error.to_string(),
        "corrupt trace at byte 12: header field runs past the record"
    );
}

#[test]
fn the_iterator_ends_after_one_error() {
    let (bytes, chunks) = small_file();
    let cut = &bytes[..bytes.len() - 3];
    let reader = TraceReader::new(cut).unwrap();
    let results: Vec<_> = reader.collect();
    let (ok, err): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    assert_eq!(ok.len(), chunks.concat().len());
    assert_eq!(err.len(), 1);
}
