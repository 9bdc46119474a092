//! The compact encodings of version 1.2: a chunk written with them reads back as the same events
//! as the plain encoding, through both decoders; files of earlier versions read as before.

use flight_recorder_test_support as common;

use common::{expected, read, Ev, TraceBuilder};
use flight_recorder_format::compact::{self, ChunkIds};
use flight_recorder_format::event::{encode_event, MAX_EVENT_LEN};
use flight_recorder_format::record::RecordType;
use flight_recorder_format::{varint, Event, EventKind, KindInfo, TraceReader};
use proptest::prelude::*;

const BASE: u64 = common::ORIGIN_TICKS + 5_000;

fn builder() -> TraceBuilder {
    TraceBuilder::standard(&[(1, "x")], &[], &[(1, 100, "a"), (2, 200, "b")])
}

/// A chunk record's payload: `thread`, `base`, then the events in the plain encoding or in the
/// shortest of the compact ones.
fn chunk_payload(thread: u64, base: u64, events: &[Ev], compact_kinds: bool) -> Vec<u8> {
    let mut out = Vec::new();
    varint::push(thread, &mut out);
    varint::push(base, &mut out);
    let mut ids = ChunkIds::default();
    let mut buf = vec![0u8; MAX_EVENT_LEN];
    for ev in events {
        let kind = EventKind::from_byte(ev.kind).expect("a plain kind");
        let plain = encode_event(kind, ev.delta, &ev.args, &ev.payload, &mut buf);
        let plain_len = plain;
        let n = if compact_kinds {
            let n = compact::encode(kind, ev.delta, &ev.args, &ev.payload, &mut ids, &mut buf);
            assert!(n <= plain_len, "{ev:?}: compact {n} > plain {plain_len}");
            n
        } else {
            plain
        };
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn file(chunks: &[(u64, Vec<Ev>)], compact_kinds: bool) -> Vec<u8> {
    let mut b = builder();
    for (thread, events) in chunks {
        b.raw_record(
            RecordType::Chunk as u8,
            &chunk_payload(*thread, BASE, events, compact_kinds),
        );
    }
    b.finish()
}

/// Every event through the raw chunks and [`flight_recorder_format::reader::RawChunk::decode`],
/// as [`Event`]s.
fn read_raw(bytes: &[u8]) -> Vec<Event> {
    let mut reader = TraceReader::new(bytes).unwrap();
    let mut events = Vec::new();
    while let Some(mut chunk) = reader.next_raw_chunk().unwrap() {
        let (count, valid, error) = chunk.validate();
        assert!(error.is_none(), "{error:?}");
        let (mut pos, mut units) = (0, chunk.base_units);
        for _ in 0..count {
            let raw = chunk.decode(&mut pos, &mut units).unwrap();
            events.push(Event {
                time_ns: reader.time_converter().unix_ns(raw.units),
                thread: chunk.thread,
                kind_byte: raw.kind_byte,
                args: raw.args,
                arg_count: raw.arg_count,
                payload: chunk.bytes()[raw.payload].to_vec(),
            });
        }
        assert_eq!(pos, valid);
    }
    events
}

fn log(delta: u64, user_task: u64, message: &str) -> Ev {
    Ev {
        kind: EventKind::Log as u8,
        delta,
        args: vec![1, user_task],
        payload: message.as_bytes().to_vec(),
    }
}

/// Events of one thread that take every compact form (the comments name the byte).
fn tokio_like() -> Vec<Ev> {
    vec![
        Ev::new(EventKind::ThreadStart, 0, &[]),
        Ev::new(EventKind::TaskSpawn, 10, &[1000, 3, 0]), // plain: 1000 is shorter than its delta
        Ev::new(EventKind::TaskSpawn, 10, &[1001, 3, 0]), // 32
        Ev::new(EventKind::PollStart, 3, &[1001]),        // 35
        Ev::new(EventKind::UserTaskBegin, 3, &[77, 0, 1]), // plain
        Ev::new(EventKind::UserTaskBegin, 3, &[78, 77, 1]), // 56
        Ev::new(EventKind::RegionBegin, 1, &[1, 78]),     // 49
        log(200, 78, "GET /users/42"),                    // 53
        Ev::new(EventKind::RegionEnd, 1_000_000, &[1, 77]), // 50
        Ev::new(EventKind::RegionBegin, 1, &[1, 78]),     // 48
        Ev::new(EventKind::RegionEnd, 1, &[1, 78]),       // 51
        Ev::new(EventKind::Mark, 1, &[1, 78]),            // 55
        Ev::new(EventKind::Mark, 1, &[1, 77]),            // 54
        log(2, 78, "x"),                                  // 52
        Ev::new(EventKind::UserTaskEnd, 1, &[78]),        // 59
        Ev::new(EventKind::UserTaskEnd, 1, &[77]),        // 58
        Ev::new(EventKind::RegionEnd, 1, &[1, 0]),        // plain
        Ev::new(EventKind::PollEnd, 7, &[1001, 0]),       // 37
        Ev::new(EventKind::PollStartScheduled, 2, &[1000, 5000]), // 44
        Ev::new(EventKind::PollEnd, 7, &[1000, 1]),       // 38
        Ev::new(EventKind::PollStartScheduled, 2, &[1000, 10]), // 45
        Ev::new(EventKind::TaskWake, 2, &[1001, 1000]),   // 40
        Ev::new(EventKind::TaskWake, 2, &[1001, 0]),      // 41
        Ev::new(EventKind::PollEnd, 7, &[1000, 1]),       // 36
        Ev::new(EventKind::TaskTerminate, 1, &[1000]),    // 43
        Ev::new(EventKind::TaskTerminate, 1, &[1002]),    // 42
        Ev::new(EventKind::PollStart, 3, &[1001]),        // 34
        Ev::new(EventKind::PollEnd, 7, &[1001, 2]),       // 39
        Ev::new(EventKind::PollStart, 3, &[1001]),        // 35
        Ev::new(EventKind::PollEnd, u64::from(u32::MAX), &[1001, 9]), // 36: no byte for result 9
        Ev::new(EventKind::WorkerPark, 1, &[]),
    ]
}

#[test]
fn compact_chunks_read_as_the_plain_events() {
    let chunks = vec![(1, tokio_like()), (2, tokio_like())];
    let plain = file(&chunks, false);
    let compact = file(&chunks, true);
    assert!(
        compact.len() < plain.len() - 30,
        "{} vs {}",
        compact.len(),
        plain.len()
    );
    let mut want = expected(1, BASE, &chunks[0].1);
    want.extend(expected(2, BASE, &chunks[1].1));
    let (events, error) = read(&compact);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(events, want);
    assert_eq!(read_raw(&compact), want);
    assert_eq!(read(&plain).0, want);
    assert_eq!(read_raw(&plain), want);
}

#[test]
fn the_test_events_take_every_compact_form() {
    // Each compact byte appears in the tokio-like chunk, so the test above covers them all.
    let bytes = file(&[(1, tokio_like())], true);
    let mut reader = TraceReader::new(&bytes[..]).unwrap();
    let chunk = reader.next_raw_chunk().unwrap().unwrap();
    let used: std::collections::BTreeSet<u8> = {
        let bytes = chunk.bytes();
        let mut used = std::collections::BTreeSet::new();
        let (mut pos, mut units) = (0, chunk.base_units);
        let mut scan = chunk.clone();
        while pos < bytes.len() {
            used.insert(bytes[pos]);
            scan.decode(&mut pos, &mut units).unwrap();
        }
        used
    };
    for c in compact::COMPACT {
        assert!(used.contains(&c.byte), "{} not exercised: {used:?}", c.name);
    }
}

#[test]
fn a_chunk_split_between_the_decoders_keeps_its_running_ids() {
    let chunks = vec![(1, tokio_like())];
    let compact = file(&chunks, true);
    let want = expected(1, BASE, &chunks[0].1);
    for split in 0..want.len() {
        let mut reader = TraceReader::new(&compact[..]).unwrap();
        let mut events: Vec<Event> = (0..split)
            .map(|_| reader.next_event().unwrap().unwrap())
            .collect();
        // The rest of the chunk: its base is the time of the last event read.
        let mut chunk = reader.next_raw_chunk().unwrap().unwrap();
        let (mut pos, mut units) = (0, chunk.base_units);
        while pos < chunk.bytes().len() {
            let raw = chunk.decode(&mut pos, &mut units).unwrap();
            events.push(Event {
                time_ns: reader.time_converter().unix_ns(raw.units),
                thread: chunk.thread,
                kind_byte: raw.kind_byte,
                args: raw.args,
                arg_count: raw.arg_count,
                payload: chunk.bytes()[raw.payload].to_vec(),
            });
        }
        assert_eq!(events, want, "split after {split}");
    }
}

#[test]
fn decoding_out_of_order_finds_the_running_ids() {
    let body = chunk_payload(1, BASE, &tokio_like(), true);
    let bytes = file(&[(1, tokio_like())], true);
    let mut reader = TraceReader::new(&bytes[..]).unwrap();
    let mut chunk = reader.next_raw_chunk().unwrap().unwrap();
    assert!(body.ends_with(chunk.bytes()));
    let mut starts = Vec::new();
    let mut in_order = Vec::new();
    let (mut pos, mut units) = (0, chunk.base_units);
    while pos < chunk.bytes().len() {
        starts.push((pos, units));
        in_order.push(chunk.decode(&mut pos, &mut units).unwrap());
    }
    // Backwards: every event from a position an earlier call did not leave.
    for (i, &(start, before)) in starts.iter().enumerate().rev() {
        let (mut pos, mut units) = (start, before);
        assert_eq!(chunk.decode(&mut pos, &mut units).unwrap(), in_order[i]);
    }
}

#[test]
fn a_file_may_give_a_compact_byte_another_layout() {
    // A file that describes byte 35 as a kind of its own (one argument) gets it read as such,
    // not as `poll_start_same`.
    let mut b = builder();
    b.kinds(&[KindInfo {
        byte: 35,
        arg_count: 1,
        has_payload: false,
        name: "other".into(),
    }]);
    b.chunk(1, BASE, &[Ev::new(EventKind::PollStart, 0, &[5])]);
    b.chunk(
        1,
        BASE,
        &[Ev {
            kind: 35,
            delta: 1,
            args: vec![9],
            payload: Vec::new(),
        }],
    );
    let bytes = b.finish();
    let (events, error) = read(&bytes);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(events[1].kind_byte, 35);
    assert_eq!(events[1].args[..1], [9]);
    assert_eq!(read_raw(&bytes), events);
}

#[test]
fn a_version_1_0_file_reads_as_it_did() {
    // A snapshot written by the recorder before the compact encodings (version 1.0, tokio and
    // annotation events), and the events the reader of that version returned for it.
    let bytes = include_bytes!("fixtures/v1_0_snapshot_tokio.trace");
    assert_eq!(&bytes[8..12], &[1, 0, 0, 0]);
    let want = include_str!("fixtures/v1_0_snapshot_tokio.events");
    let show = |events: &[Event]| {
        let mut out = String::new();
        for e in events {
            let args: Vec<String> = e.args[..usize::from(e.arg_count)]
                .iter()
                .map(u64::to_string)
                .collect();
            out += &format!(
                "{} {} {} [{}] {:?}\n",
                e.time_ns,
                e.thread,
                e.kind_byte,
                args.join(","),
                String::from_utf8_lossy(&e.payload)
            );
        }
        out + "complete true\n"
    };
    let (events, error) = read(bytes);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(show(&events), want);
    assert_eq!(show(&read_raw(bytes)), want);
}

fn arb_event() -> impl Strategy<Value = Ev> {
    let id = prop_oneof![0u64..4, 1000u64..1008, any::<u64>()];
    let small = prop_oneof![0u64..3, any::<u64>()];
    let delta = prop_oneof![0u64..300, any::<u64>()];
    (0usize..14, id, small, delta, "[a-z]{0,6}").prop_map(|(k, id, small, delta, text)| {
        let (kind, args): (EventKind, Vec<u64>) = match k {
            0 => (EventKind::TaskSpawn, vec![id, small, small]),
            1 => (EventKind::PollStart, vec![id]),
            2 => (EventKind::PollEnd, vec![id, small]),
            3 => (EventKind::TaskWake, vec![id, small]),
            4 => (EventKind::TaskTerminate, vec![id]),
            5 => (EventKind::PollStartScheduled, vec![id, small]),
            6 => (EventKind::RegionBegin, vec![small, id]),
            7 => (EventKind::RegionEnd, vec![small, id]),
            8 => (EventKind::Log, vec![small, id]),
            9 => (EventKind::Mark, vec![small, id]),
            10 => (EventKind::UserTaskBegin, vec![id, small, small]),
            11 => (EventKind::UserTaskEnd, vec![id]),
            12 => (EventKind::Counter, vec![small, id]),
            _ => (EventKind::WorkerPark, vec![]),
        };
        let mut ev = Ev::new(kind, delta, &args);
        if kind.has_payload() {
            ev.payload = text.into_bytes();
        }
        ev
    })
}

proptest! {
    #[test]
    fn any_events_read_the_same_in_both_encodings(
        chunks in proptest::collection::vec(
            (1u64..3, proptest::collection::vec(arb_event(), 0..40)),
            1..4,
        )
    ) {
        let plain = file(&chunks, false);
        let compact = file(&chunks, true);
        prop_assert!(compact.len() <= plain.len());
        let (events, error) = read(&plain);
        prop_assert!(error.is_none());
        let (compact_events, error) = read(&compact);
        prop_assert!(error.is_none());
        prop_assert_eq!(&compact_events, &events);
        prop_assert_eq!(&read_raw(&compact), &events);
    }
}
