//! Files written with the format's writer pieces read back exactly.

use flight_recorder_test_support as common;

use common::{expected, header, read, unix_ns, Ev, TraceBuilder, ORIGIN_TICKS};
use flight_recorder_format::event::MAX_PAYLOAD;
use flight_recorder_format::{
    ClockCalibration, ClockSample, Dropped, EventKind, Header, KindInfo, Location, ThreadInfo,
    TraceReader,
};
use proptest::prelude::*;

const BASE: u64 = ORIGIN_TICKS + 5_000;

fn events_of_thread_1() -> Vec<Ev> {
    vec![
        Ev::new(EventKind::ThreadStart, 0, &[]),
        Ev::new(EventKind::TaskSpawn, 10, &[1, 1, 0]),
        Ev::new(EventKind::PollStart, 3, &[1]),
        Ev::new(EventKind::RegionBegin, 1, &[1, 0]),
        Ev::log(200, 2, "GET /users/42"),
        Ev::new(EventKind::RegionEnd, 1_000_000, &[1, 0]),
        Ev::new(EventKind::PollEnd, 7, &[1, 1]),
        Ev::new(EventKind::TaskTerminate, 1, &[1]),
    ]
}

fn events_of_thread_2() -> Vec<Ev> {
    vec![
        Ev::new(EventKind::WorkerUnpark, 0, &[]),
        Ev::new(EventKind::TaskWake, 40, &[7, 0]),
        Ev::new(EventKind::PollStart, 2, &[7]),
        Ev::new(EventKind::PollEnd, u64::from(u32::MAX), &[7, 0]),
        Ev::new(EventKind::WorkerPark, 1, &[]),
        Ev::new(EventKind::ThreadExit, 300, &[]),
    ]
}

fn standard() -> TraceBuilder {
    TraceBuilder::standard(
        &[(1, "handle_request"), (2, "http")],
        &[(1, "src/main.rs", 10, 5)],
        &[(1, 101, "main"), (2, 102, "tokio-runtime-worker")],
    )
}

#[test]
fn events_of_several_threads_and_chunks_round_trip() {
    let (one, two) = (events_of_thread_1(), events_of_thread_2());
    let mut b = standard();
    b.chunk(1, BASE, &one[..4])
        .chunk(2, BASE + 100, &two)
        .chunk(1, BASE + 50_000, &one[4..]);
    let bytes = b.finish();

    let mut want = expected(1, BASE, &one[..4]);
    want.extend(expected(2, BASE + 100, &two));
    want.extend(expected(1, BASE + 50_000, &one[4..]));

    let mut reader = TraceReader::new(&bytes[..]).unwrap();
    assert_eq!(reader.header(), &header());
    let events = reader.read_all_events().unwrap();
    assert_eq!(events, want);
    assert!(reader.is_complete());
    assert_eq!(reader.bytes_read(), bytes.len() as u64);
    assert_eq!(reader.chunk_stats().0, 3);
    assert_eq!(reader.dropped(), Dropped::default());
    assert_eq!(reader.string(1), Some("handle_request"));
    assert_eq!(reader.string(3), None);
    assert_eq!(
        reader.location(1),
        Some(&Location {
            file: "src/main.rs".into(),
            line: 10,
            column: 5
        })
    );
    let threads: Vec<&ThreadInfo> = reader.threads().values().collect();
    assert_eq!(threads.len(), 2);
    assert_eq!(threads[1].os_tid, 102);
    assert_eq!(threads[1].name, "tokio-runtime-worker");
    assert_eq!(reader.kind_info(17).unwrap().name, "poll_start");
    // After the end, the reader stays at the end.
    assert_eq!(reader.next_event().unwrap(), None);

    // Spot checks of the decoded values.
    let log = &events[10];
    assert_eq!(log.kind(), Some(EventKind::Log));
    assert_eq!(log.arg(0), 2);
    assert_eq!(log.arg(1), 0, "past the argument count");
    assert_eq!(log.payload, b"GET /users/42");
    assert_eq!(log.time_ns, unix_ns(BASE + 50_000 + 200));
}

#[test]
fn chunk_stats_count_event_bytes_only() {
    let one = events_of_thread_1();
    let mut body = Vec::new();
    for ev in &one {
        ev.encode(ev.kind == EventKind::Log as u8, &mut body);
    }
    let mut b = standard();
    b.chunk(1, BASE, &one).chunk(1, BASE + 1, &[]);
    let bytes = b.finish();
    let mut reader = TraceReader::new(&bytes[..]).unwrap();
    assert_eq!(reader.read_all_events().unwrap().len(), one.len());
    assert_eq!(reader.chunk_stats(), (2, body.len() as u64));
}

#[test]
fn a_file_without_events_is_complete() {
    let bytes = TraceBuilder::new(&header()).finish();
    let (events, error) = read(&bytes);
    assert!(events.is_empty());
    assert!(error.is_none());
}

#[test]
fn times_follow_the_clock_calibration() {
    // A 3 GHz counter stored in units of 2 ticks: one unit is 2/3 ns.
    let mut h = header();
    h.clock = ClockCalibration {
        source: "tsc".into(),
        unit_shift: 1,
        start: ClockSample {
            ticks: 3_000_000_000,
            monotonic_ns: 1_000_000_000,
            wall_ns: 1_700_000_000_000_000_000,
        },
        end: ClockSample {
            ticks: 6_000_000_000,
            monotonic_ns: 2_000_000_000,
            wall_ns: 1_700_000_001_000_000_000,
        },
    };
    let mut b = TraceBuilder::new(&h);
    b.chunk(
        1,
        1_500_000_000, // the origin: 3e9 ticks
        &[
            Ev::new(EventKind::WorkerPark, 0, &[]),
            Ev::new(EventKind::WorkerUnpark, 3, &[]), // 6 ticks = 2 ns
            Ev::new(EventKind::WorkerPark, 1_500_000_000, &[]), // 1 s
        ],
    )
    .chunk(1, 0, &[Ev::new(EventKind::WorkerUnpark, 0, &[])]); // 1 s before the origin
    let (events, error) = read(&b.finish());
    assert!(error.is_none());
    let times: Vec<u64> = events.iter().map(|e| e.time_ns).collect();
    assert_eq!(
        times,
        [
            1_700_000_000_000_000_000,
            1_700_000_000_000_000_002,
            1_700_000_001_000_000_002,
            1_699_999_999_000_000_000,
        ]
    );
}

#[test]
fn times_saturate_instead_of_wrapping() {
    let mut h = header();
    h.clock.unit_shift = 32;
    let mut b = TraceBuilder::new(&h);
    // Shifted by 32 bits, 2^33 + 1 wraps to 2^32: a time near the origin instead of the end of time.
    b.chunk(1, (1 << 33) + 1, &[Ev::new(EventKind::WorkerPark, 0, &[])]);
    let (events, error) = read(&b.finish());
    assert!(error.is_none());
    assert_eq!(events[0].time_ns, u64::MAX);
}

#[test]
fn unknown_record_types_are_skipped() {
    let one = events_of_thread_1();
    // An unknown record before the header, between tables and between chunks.
    let mut bytes = flight_recorder_format::RecordWriter::new(Vec::new())
        .unwrap()
        .into_inner();
    bytes.extend(common::raw_record(200, b"from a later minor version"));
    let mut b = standard();
    b.raw_record(201, &[]).chunk(1, BASE, &one[..2]);
    b.raw_record(255, &[0xff; 300])
        .chunk(1, BASE + 9, &one[2..]);
    let file = b.finish();
    bytes.extend_from_slice(&file[12..]);

    let mut want = expected(1, BASE, &one[..2]);
    want.extend(expected(1, BASE + 9, &one[2..]));
    for bytes in [&file, &bytes] {
        let mut reader = TraceReader::new(&bytes[..]).unwrap();
        assert_eq!(reader.header(), &header());
        assert_eq!(reader.read_all_events().unwrap(), want);
        assert!(reader.is_complete());
        assert_eq!(reader.bytes_read(), bytes.len() as u64);
    }
}

#[test]
fn a_kind_described_in_the_kinds_table_is_decoded() {
    let future = KindInfo {
        byte: 100,
        arg_count: 2,
        has_payload: true,
        name: "future_kind".into(),
    };
    let quiet = KindInfo {
        byte: 0,
        arg_count: 0,
        has_payload: false,
        name: "quiet".into(),
    };
    let mut b = TraceBuilder::new(&header());
    b.kinds(&[future, quiet]);
    let events = vec![
        Ev::new(EventKind::PollStart, 1, &[5]),
        Ev {
            kind: 100,
            delta: 2,
            args: vec![u64::MAX, 3],
            payload: b"\xffopaque".to_vec(),
        },
        Ev {
            kind: 0,
            delta: 3,
            args: vec![],
            payload: vec![],
        },
        Ev::new(EventKind::PollEnd, 4, &[5, 0]),
    ];
    b.chunk(1, BASE, &events);
    let bytes = b.finish();
    let mut reader = TraceReader::new(&bytes[..]).unwrap();
    let got = reader.read_all_events().unwrap();
    assert_eq!(got, expected(1, BASE, &events));
    assert_eq!(got[1].kind(), None);
    assert_eq!(reader.kind_info(100).unwrap().name, "future_kind");
    assert_eq!(reader.kind_info(0).unwrap().name, "quiet");
    assert_eq!(reader.kind_info(99), None);
}

#[test]
fn the_files_kinds_table_decides_the_layout_of_a_known_kind() {
    // A later minor version may give a kind more arguments; the file's table says how many.
    let mut b = TraceBuilder::new(&header());
    b.kinds(&[KindInfo {
        byte: EventKind::PollStart as u8,
        arg_count: 2,
        has_payload: false,
        name: "poll_start".into(),
    }]);
    let events = vec![
        Ev {
            kind: EventKind::PollStart as u8,
            delta: 1,
            args: vec![5, 6],
            payload: vec![],
        },
        Ev::new(EventKind::PollEnd, 1, &[5, 0]),
    ];
    b.chunk(1, BASE, &events);
    let (got, error) = read(&b.finish());
    assert!(error.is_none());
    assert_eq!(got, expected(1, BASE, &events));
    assert_eq!(got[0].kind(), Some(EventKind::PollStart));
}

#[test]
fn tables_and_dropped_records_add_up() {
    let mut b = standard();
    b.strings(&[(3, "late"), (1, "renamed")])
        .threads(&[(3, 103, "")])
        .dropped(2, 1000)
        .dropped(1, 24);
    let bytes = b.finish();
    let mut reader = TraceReader::new(&bytes[..]).unwrap();
    assert_eq!(reader.read_all_events().unwrap(), []);
    assert_eq!(reader.string(1), Some("renamed"));
    assert_eq!(reader.string(2), Some("http"));
    assert_eq!(reader.string(3), Some("late"));
    assert_eq!(reader.threads().len(), 3);
    assert_eq!(
        reader.dropped(),
        Dropped {
            chunks: 3,
            bytes: 1024
        }
    );
}

#[test]
fn a_long_log_message_is_cut_to_the_payload_limit() {
    let message = "x".repeat(MAX_PAYLOAD + 10);
    let mut b = TraceBuilder::new(&header());
    b.chunk(1, BASE, &[Ev::log(0, 1, &message)]);
    let (events, error) = read(&b.finish());
    assert!(error.is_none());
    assert_eq!(events[0].payload.len(), MAX_PAYLOAD);
}

#[test]
fn records_after_the_end_record_are_ignored() {
    let mut bytes = standard().finish();
    let mut extra = standard();
    extra.chunk(1, BASE, &events_of_thread_1());
    bytes.extend_from_slice(&extra.finish()[12..]);
    let mut reader = TraceReader::new(&bytes[..]).unwrap();
    assert_eq!(reader.read_all_events().unwrap(), []);
    assert!(reader.is_complete());
}

#[test]
fn header_fields_round_trip() {
    let mut h = header();
    h.mode = "trace".into();
    h.tag = String::new();
    h.pid = u64::MAX;
    h.host = "hôte".into();
    let bytes = TraceBuilder::new(&h).finish();
    let reader = TraceReader::new(&bytes[..]).unwrap();
    assert_eq!(reader.header(), &h);
    let empty = Header::decode(&[]).unwrap();
    assert_eq!(empty.clock.unit_shift, 0);
}

/// One generated event: a thread index, a kind, a delta and raw argument values.
fn arb_event() -> impl Strategy<Value = (usize, Ev)> {
    (
        0usize..3,
        proptest::sample::select(EventKind::ALL.to_vec()),
        0u64..=u64::from(u32::MAX),
        proptest::collection::vec(any::<u64>(), 4),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(thread, kind, delta, args, payload)| {
            let ev = Ev {
                kind: kind as u8,
                delta,
                args: args[..kind.arg_count()].to_vec(),
                payload: if kind.has_payload() {
                    payload
                } else {
                    Vec::new()
                },
            };
            (thread, ev)
        })
}

proptest! {
    #[test]
    fn random_event_sequences_round_trip(
        events in proptest::collection::vec(arb_event(), 0..200),
        bases in proptest::collection::vec(ORIGIN_TICKS..(1u64 << 50), 3),
        chunk_len in 1usize..40,
    ) {
        // Each thread's events in chunks of at most `chunk_len`, chunks of the threads
        // interleaved in turn.
        let mut per_thread: Vec<Vec<Ev>> = vec![Vec::new(); 3];
        for (thread, ev) in events {
            per_thread[thread].push(ev);
        }
        let mut b = TraceBuilder::new(&header());
        let mut want = Vec::new();
        let mut next = [0usize; 3];
        let mut base = bases.clone();
        loop {
            let mut wrote = false;
            for t in 0..3 {
                let evs = &per_thread[t];
                if next[t] < evs.len() {
                    let part = &evs[next[t]..(next[t] + chunk_len).min(evs.len())];
                    b.chunk(t as u64 + 1, base[t], part);
                    want.extend(expected(t as u64 + 1, base[t], part));
                    base[t] += part.iter().map(|e| e.delta).sum::<u64>();
                    next[t] += part.len();
                    wrote = true;
                }
            }
            if !wrote {
                break;
            }
        }
        let bytes = b.finish();
        let (got, error) = read(&bytes);
        prop_assert!(error.is_none(), "{:?}", error);
        prop_assert_eq!(got, want);
    }
}

/// The example file of `docs/FORMAT.md`, section 10, byte for byte.
#[test]
fn the_documented_example_reads_as_described() {
    let hex = "464c54524543524401000000\
               010a0000000105747261636505012aa29e0e9f\
               050800000001b960046d61696e6032080e\
               060a00000001e80711002a12642a01d3ec8da4\
               080100000001e83af617";
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(bytes.len(), 77);
    // The checksums agree with an independent CRC-32.
    assert_eq!(common::crc32(b"123456789"), 0xCBF4_3926);
    // Every record: header 12..31, threads 31..48, chunk 48..67, end 67..77.
    for (start, end) in [(12, 31), (31, 48), (48, 67), (67, 77)] {
        let record = &bytes[start..end];
        assert_eq!(
            record,
            common::raw_record(record[0], &record[5..record.len() - 4])
        );
    }
    let mut reader = TraceReader::new(&bytes[..]).unwrap();
    assert_eq!(reader.header().mode, "trace");
    assert_eq!(reader.header().pid, 42);
    let events = reader.read_all_events().unwrap();
    assert!(reader.is_complete());
    assert_eq!(reader.threads()[&1].os_tid, 12345);
    assert_eq!(reader.threads()[&1].name, "main");
    let summary: Vec<(Option<EventKind>, u64, u64, u64, u64)> = events
        .iter()
        .map(|e| (e.kind(), e.thread, e.time_ns, e.arg(0), e.arg(1)))
        .collect();
    assert_eq!(
        summary,
        [
            (Some(EventKind::PollStart), 1, 1000, 42, 0),
            (Some(EventKind::PollEnd), 1, 1100, 42, 1),
        ]
    );
}
