//! The stacks, modules and symbols tables: they read back exactly, older readers skip them, and
//! a corrupt count costs no memory.

use flight_recorder_test_support as common;

use common::{header, Ev, TraceBuilder, ORIGIN_TICKS};
use flight_recorder_format::event::{args, stack_cause};
use flight_recorder_format::tables::{push_module, push_stack, push_symbol};
use flight_recorder_format::{ErrorKind, EventKind, Module, RecordType, SymbolFrame, TraceReader};
use proptest::prelude::*;

const BASE: u64 = ORIGIN_TICKS + 5_000;

fn module() -> Module {
    Module {
        id: 1,
        start: 0x5555_5555_0000,
        end: 0x5555_5560_0000,
        load_bias: 0x5555_5554_0000,
        path: "/usr/bin/service".into(),
        build_id: vec![0xde, 0xad, 0xbe, 0xef],
    }
}

fn stack() -> Vec<u64> {
    vec![
        0x7fff_f7a1_2345,
        0x5555_5555_1234,
        0x5555_5555_0f00,
        0x5555_5556_0000,
    ]
}

fn symbols() -> Vec<SymbolFrame> {
    vec![
        SymbolFrame {
            function: "service::inlined_helper".into(),
            file: "src/handler.rs".into(),
            line: 12,
        },
        SymbolFrame {
            function: "service::handler".into(),
            file: "src/handler.rs".into(),
            line: 45,
        },
    ]
}

fn file_with_tables() -> Vec<u8> {
    let mut stacks = Vec::new();
    push_stack(7, &stack(), &mut stacks);
    push_stack(8, &[], &mut stacks);
    let mut modules = Vec::new();
    push_module(&module(), &mut modules);
    let mut syms = Vec::new();
    push_symbol(0x5555_5555_1234, &symbols(), &mut syms);
    let mut b = TraceBuilder::standard(&[], &[], &[(1, 100, "main")]);
    b.raw_record(RecordType::Modules as u8, &modules)
        .raw_record(RecordType::Stacks as u8, &stacks)
        .raw_record(RecordType::Symbols as u8, &syms)
        .chunk(
            1,
            BASE,
            &[Ev::new(
                EventKind::ThreadStack,
                10,
                &[2, 42, 7, stack_cause::SLOW_POLL],
            )],
        );
    b.finish()
}

#[test]
fn stacks_modules_and_symbols_read_back() {
    let file = file_with_tables();
    let mut reader = TraceReader::new(&file[..]).unwrap();
    assert_eq!(reader.header(), &header());
    let events = reader.read_all_events().unwrap();
    assert!(reader.is_complete());
    assert_eq!(events.len(), 1);
    let args::ThreadStack {
        thread,
        task,
        stack: id,
        cause,
    } = events[0].args_as();
    assert_eq!(
        (thread, task, id, cause),
        (2, 42, 7, stack_cause::SLOW_POLL)
    );

    let names = reader.name_tables();
    assert_eq!(names.stack(7), Some(&stack()[..]));
    assert_eq!(names.stack(8), Some(&[][..]));
    assert_eq!(names.stack(9), None);
    assert_eq!(names.modules().get(&1), Some(&module()));
    assert_eq!(names.module_of(0x5555_5555_1234), Some(&module()));
    assert_eq!(names.module_of(0x7fff_f7a1_2345), None);
    assert_eq!(module().build_id_hex(), "deadbeef");
    assert_eq!(names.symbol(0x5555_5555_1234), Some(&symbols()[..]));
}

#[test]
fn a_reader_that_does_not_know_the_tables_skips_them() {
    // Record types 9–11 are what an older reader sees as unknown types: the framing is the same,
    // so it skips them whole. Rewriting them as types 200–202 shows the rest still reads.
    let file = file_with_tables();
    let mut renamed = file.clone();
    let mut pos = 12;
    while pos < renamed.len() {
        let len = u32::from_le_bytes(renamed[pos + 1..pos + 5].try_into().unwrap()) as usize;
        if (9..=11).contains(&renamed[pos]) {
            let payload = renamed[pos + 5..pos + 5 + len].to_vec();
            let record = common::raw_record(renamed[pos] + 191, &payload);
            renamed.splice(pos..pos + 9 + len, record);
        }
        pos += 9 + len;
    }
    let mut reader = TraceReader::new(&renamed[..]).unwrap();
    assert_eq!(reader.read_all_events().unwrap().len(), 1);
    assert!(reader.is_complete());
    assert!(reader.name_tables().stacks().is_empty());
}

#[test]
fn a_corrupt_frame_count_is_refused_without_allocating() {
    let mut payload = Vec::new();
    flight_recorder_format::varint::push(1, &mut payload);
    flight_recorder_format::varint::push(u64::MAX / 2, &mut payload);
    payload.push(0);
    for type_byte in [RecordType::Stacks as u8, RecordType::Symbols as u8] {
        let mut b = TraceBuilder::standard(&[], &[], &[(1, 100, "main")]);
        b.raw_record(type_byte, &payload);
        let file = b.finish();
        let mut reader = TraceReader::new(&file[..]).unwrap();
        let error = reader.read_all_events().unwrap_err();
        assert!(matches!(error.kind, ErrorKind::Malformed(_)), "{error}");
        assert!(
            error.to_string().contains("runs past the record"),
            "{error}"
        );
    }
}

proptest! {
    #[test]
    fn any_stack_round_trips(frames in proptest::collection::vec(any::<u64>(), 0..64), id in any::<u64>()) {
        let mut payload = Vec::new();
        push_stack(id, &frames, &mut payload);
        let mut b = TraceBuilder::standard(&[], &[], &[(1, 100, "main")]);
        b.raw_record(RecordType::Stacks as u8, &payload);
        let file = b.finish();
        let mut reader = TraceReader::new(&file[..]).unwrap();
        reader.read_all_events().unwrap();
        let names = reader.name_tables();
        prop_assert_eq!(names.stack(id), Some(&frames[..]));
    }
}
