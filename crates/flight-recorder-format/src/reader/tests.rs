//! Tests of the raw chunks: they decode like `next_event`, and validate agrees with decode.

use super::raw::{fast_varint, skip_varint};
use super::*;

/// The example file of FORMAT.md, section 10.
const EXAMPLE: &str = "464c54524543524401000000 010a000000 0105747261636505012a a29e0e9f \
    0508000000 01b960046d61696e 6032080e 060a000000 01e807 11002a 12642a01 d3ec8da4 \
    0801000000 01 e83af617";

fn example() -> Vec<u8> {
    let hex: String = EXAMPLE.split_whitespace().collect();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn raw_chunks_decode_like_next_event() {
    let data = example();
    let events = TraceReader::new(&data[..])
        .unwrap()
        .read_all_events()
        .unwrap();
    assert_eq!(events.len(), 2);
    let mut reader = TraceReader::new(&data[..]).unwrap();
    let mut chunk = reader.next_raw_chunk().unwrap().unwrap();
    assert_eq!(chunk.validate().0, 2);
    assert!(chunk.validate().2.is_none());
    let (mut pos, mut units) = (0, chunk.base_units);
    for event in &events {
        let raw = chunk.decode(&mut pos, &mut units).unwrap();
        assert_eq!(reader.time_converter().unix_ns(raw.units), event.time_ns);
        assert_eq!(chunk.thread, event.thread);
        assert_eq!(raw.kind_byte, event.kind_byte);
        assert_eq!(raw.args, event.args);
        assert_eq!(&chunk.bytes()[raw.payload], &event.payload[..]);
    }
    assert_eq!(pos, chunk.bytes().len());
    reader.recycle_chunk(chunk);
    assert!(reader.next_raw_chunk().unwrap().is_none());
    assert!(reader.is_complete());
}

#[test]
fn fast_varints_match_the_reference_decoder() {
    let mut values = vec![0u64, 1, 127, 128, 300, u64::MAX, u64::MAX >> 8, 1 << 56];
    for shift in 0..64 {
        values.push(1 << shift);
        values.push((1u64 << shift).wrapping_sub(1));
        values.push(0x5a5a_5a5a_5a5a_5a5a >> shift);
    }
    for value in values {
        let mut data = Vec::new();
        varint::push(value, &mut data);
        for pad in [0usize, 3, 12] {
            let mut padded = data.clone();
            padded.extend(std::iter::repeat_n(0xffu8, pad));
            let (mut a, mut b) = (0, 0);
            assert_eq!(
                fast_varint(&padded, &mut a),
                varint::decode(&padded, &mut b)
            );
            assert_eq!(a, b);
            let mut c = 0;
            assert!(skip_varint(&padded, &mut c).is_some());
            assert_eq!(c, b);
        }
    }
    // Padded and malformed encodings.
    for bytes in [
        &[0x80u8, 0x00][..],
        &[
            0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02, 0, 0,
        ],
        &[0xff; 12],
        &[0xff, 0xff],
    ] {
        let (mut a, mut b) = (0, 0);
        assert_eq!(fast_varint(bytes, &mut a), varint::decode(bytes, &mut b));
        assert_eq!(a, b);
        let mut c = 0;
        assert_eq!(
            skip_varint(bytes, &mut c).is_some(),
            varint::decode(bytes, &mut 0).is_some()
        );
    }
}

#[test]
fn validate_agrees_with_decode() {
    // Pseudo-random bytes, mostly valid kinds: validate's count and end must be decode's.
    let mut x = 0x1234_5678_9abc_def0u64;
    for round in 0..2000 {
        let mut data = Vec::new();
        for _ in 0..(round % 40) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x as u8;
            data.push(match b % 4 {
                0 => [16, 17, 18, 19, 25, 5][(x >> 8) as usize % 6],
                1 => b | 0x80,
                _ => b & 0x7f,
            });
        }
        let mut chunk = RawChunk::new(1, 0, data);
        let (count, valid, error) = chunk.validate();
        let (mut pos, mut units, mut decoded) = (0, 0, 0);
        let mut failed = None;
        while pos < chunk.bytes().len() {
            match chunk.decode(&mut pos, &mut units) {
                Ok(_) => decoded += 1,
                Err(what) => {
                    failed = Some(what);
                    break;
                }
            }
        }
        assert_eq!((count, valid), (decoded, pos));
        assert_eq!(
            error.map(|e| e.to_string()),
            failed.map(|what| format!("corrupt trace at byte {pos}: {what}"))
        );
    }
}

#[test]
fn validate_finds_the_first_malformed_event() {
    // poll_start task 42, then an event of kind 0x7f (no layout).
    let chunk = RawChunk::new(1, 1000, vec![0x11, 0x00, 0x2a, 0x7f, 0x00]);
    let (count, valid, error) = chunk.validate();
    assert_eq!((count, valid), (1, 3));
    let error = error.unwrap();
    assert_eq!(error.offset, 3);
    assert_eq!(
        error.to_string(),
        "corrupt trace at byte 3: unknown event kind"
    );
    // Cut short inside the task id.
    let chunk = RawChunk::new(1, 1000, vec![0x11, 0x00, 0x80]);
    assert_eq!(chunk.validate().0, 0);
    assert!(chunk
        .validate()
        .2
        .unwrap()
        .to_string()
        .contains("event cut short"));
}
