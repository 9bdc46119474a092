//! The tables' columns: one list per table, from which the Arrow schemas are made and against
//! which the rows are built (see `docs/PARQUET.md` for the meaning of every column).

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The type of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// UTF-8 text.
    Str,
    /// An unsigned 64-bit integer (ids, counts, bytes).
    U64,
    /// A signed 64-bit integer (nanoseconds of a duration).
    I64,
    /// An unsigned 32-bit integer.
    U32,
    /// A UTC timestamp, nanoseconds since the Unix epoch.
    Ts,
    /// A boolean.
    Bool,
    /// A list of texts (a stack's frames, a long poll's annotations).
    StrList,
}

/// One column: its name, type and whether it may be null.
pub(crate) type Column = (&'static str, Kind, bool);

use Kind::*;

/// The columns every table starts with: where the rows come from.
pub(crate) const COMMON: &[Column] = &[
    ("snapshot_id", Str, false),
    ("service", Str, false),
    ("host", Str, false),
    ("date", Str, false),
];

/// The identity of an event: the process, the thread, the chunk and the event's index in it.
pub(crate) const IDENTITY: &[Column] = &[
    ("pid", U64, false),
    ("process_start_ns", I64, false),
    ("thread", U64, false),
    ("chunk_base", U64, false),
    ("event_index", U32, false),
];

const SNAPSHOTS: &[Column] = &[
    ("pid", U64, false),
    ("process_start_ns", I64, false),
    ("program", Str, false),
    ("program_version", Str, true),
    ("cmdline", Str, false),
    ("mode", Str, false),
    ("reason", Str, false),
    ("tag", Str, true),
    ("details", Str, true),
    ("recorder_version", Str, false),
    ("clock_source", Str, false),
    ("written_at", Ts, false),
    ("window_start", Ts, true),
    ("window_end", Ts, true),
    ("file_name", Str, false),
    ("file_bytes", U64, false),
    ("complete", Bool, false),
    ("error", Str, true),
    ("events", U64, false),
    ("chunks", U64, false),
    ("dropped_chunks", U64, false),
    ("dropped_bytes", U64, false),
    ("suppressed_triggers", U64, false),
    ("min_age_ns", I64, false),
    ("max_bytes", U64, false),
    ("long_poll_threshold_ns", I64, false),
];

const POLLS: &[Column] = &[
    ("task_id", U64, false),
    ("task_uid", U64, false),
    ("location", Str, true),
    ("task_name", Str, true),
    ("thread_name", Str, true),
    ("os_tid", U64, true),
    ("start", Ts, false),
    ("end", Ts, false),
    ("duration_ns", I64, false),
    ("sched_wait_ns", I64, true),
    ("woken_by", Str, true),
    ("waker_task_id", U64, true),
    ("result", Str, false),
];

const TASKS: &[Column] = &[
    ("task_id", U64, false),
    ("task_uid", U64, false),
    ("location", Str, true),
    ("task_name", Str, true),
    ("parent_task_id", U64, true),
    ("spawned", Bool, false),
    ("ended", Bool, false),
    ("start", Ts, false),
    ("end", Ts, false),
    ("polls", U64, false),
    ("busy_ns", I64, false),
    ("sched_wait_ns", I64, false),
    ("idle_ns", I64, false),
    ("longest_poll_ns", I64, false),
];

const LONG_POLLS: &[Column] = &[
    ("task_id", U64, false),
    ("task_uid", U64, false),
    ("location", Str, true),
    ("task_name", Str, true),
    ("thread_name", Str, true),
    ("start", Ts, false),
    ("end", Ts, false),
    ("duration_ns", I64, false),
    ("threshold_ns", I64, false),
    ("result", Str, false),
    ("annotations", StrList, false),
    ("stacks_recorded", U32, false),
    ("stack_time", Ts, true),
    ("stack", StrList, true),
];

const REGIONS: &[Column] = &[
    ("name", Str, false),
    ("user_task_id", U64, true),
    ("end_thread", U64, false),
    ("start", Ts, false),
    ("end", Ts, false),
    ("duration_ns", I64, false),
    ("truncated", Bool, false),
];

const USER_TASKS: &[Column] = &[
    ("user_task_id", U64, false),
    ("parent_user_task_id", U64, true),
    ("name", Str, false),
    ("start", Ts, false),
    ("end", Ts, false),
    ("duration_ns", I64, false),
    ("truncated", Bool, false),
];

const LOGS: &[Column] = &[
    ("time", Ts, false),
    ("thread_name", Str, true),
    ("category", Str, false),
    ("user_task_id", U64, true),
    ("task_id", U64, true),
    ("location", Str, true),
    ("message", Str, false),
];

const COUNTERS: &[Column] = &[
    ("time", Ts, false),
    ("name", Str, false),
    ("value", U64, false),
];

const WAKES: &[Column] = &[
    ("time", Ts, false),
    ("task_id", U64, false),
    ("location", Str, true),
    ("waker_task_id", U64, true),
];

const SAMPLES: &[Column] = &[
    ("time", Ts, false),
    ("sampled_thread", U64, false),
    ("thread_name", Str, true),
    ("task_id", U64, true),
    ("location", Str, true),
    ("stack_id", U64, false),
    ("stack", StrList, false),
];

/// The table names, in [`crate::TABLES`]' order, with their own columns (after [`COMMON`], and
/// [`IDENTITY`] for every table but `snapshots`).
pub(crate) const SPECS: &[(&str, &[Column])] = &[
    ("snapshots", SNAPSHOTS),
    ("polls", POLLS),
    ("tasks", TASKS),
    ("long_polls", LONG_POLLS),
    ("regions", REGIONS),
    ("user_tasks", USER_TASKS),
    ("logs", LOGS),
    ("counters", COUNTERS),
    ("wakes", WAKES),
    ("samples", SAMPLES),
];

/// Every column of a table, in order.
pub(crate) fn columns(table: &str) -> Option<Vec<Column>> {
    let (_, own) = SPECS.iter().find(|(name, _)| *name == table)?;
    let mut all = COMMON.to_vec();
    if table != "snapshots" {
        all.extend_from_slice(IDENTITY);
    }
    all.extend_from_slice(own);
    Some(all)
}

/// The Arrow type of a column kind.
pub(crate) fn data_type(kind: Kind) -> DataType {
    match kind {
        Str => DataType::Utf8,
        U64 => DataType::UInt64,
        I64 => DataType::Int64,
        U32 => DataType::UInt32,
        Ts => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        Bool => DataType::Boolean,
        StrList => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
    }
}

/// The schemas, made once.
pub(crate) fn schema_of(table: &str) -> Option<SchemaRef> {
    static SCHEMAS: OnceLock<Vec<SchemaRef>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        SPECS
            .iter()
            .map(|(name, _)| {
                let fields: Vec<Field> = columns(name)
                    .expect("a known table")
                    .into_iter()
                    .map(|(column, kind, nullable)| Field::new(column, data_type(kind), nullable))
                    .collect();
                Arc::new(Schema::new(fields))
            })
            .collect()
    });
    let index = SPECS.iter().position(|(name, _)| *name == table)?;
    Some(schemas[index].clone())
}
