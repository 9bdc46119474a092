//! Tables and Parquet files of traces recorded with the real recorder and a tokio runtime: row
//! counts against the summary of the same file, values read back from Parquet, the layout, the
//! identity of events across overlapping snapshots, and bad input.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use arrow::array::{
    Array, AsArray, BooleanArray, Int64Array, ListArray, StringArray, TimestampNanosecondArray,
    UInt32Array, UInt64Array,
};
use arrow::record_batch::RecordBatch;
use flight_recorder::{FlightRecorder, FlightRecorderConfig, SnapshotMeta};
use flight_recorder_analysis::{Summary, SummaryOptions};
use flight_recorder_format::TraceReader;
use flight_recorder_parquet::{
    export, read_snapshot_bytes, schema, ExportOptions, SnapshotTables, TableOptions, TABLES,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const MS: u64 = 1_000_000;

/// The recorder is process-wide: the tests that record take this lock.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn runtime() -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    flight_recorder::tokio::Instrumentation::new()
        .name("parquet-test")
        .apply(&mut builder);
    builder.build().unwrap()
}

fn tokio_id(id: tokio::task::Id) -> u64 {
    id.to_string().parse().unwrap()
}

/// Two snapshots of one recorder, the second taken after more work: they overlap.
struct Recorded {
    first: Vec<u8>,
    second: Vec<u8>,
    /// The task that yields 4 times (5 polls) and the line it was spawned at.
    yielder: u64,
    yielder_line: u32,
    /// The task whose one poll blocks for 30 ms.
    blocker: u64,
}

fn workload(rt: &tokio::runtime::Runtime) -> (u64, u32, u64) {
    rt.block_on(async {
        let line = line!() + 1;
        let yielder = flight_recorder::tokio::spawn(async {
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        });
        let yielder_id = tokio_id(yielder.id());
        yielder.await.unwrap();
        let blocker = flight_recorder::tokio::spawn(async {
            let _region = flight_recorder::region("blocking_call");
            flight_recorder::log("handler", "calling the legacy client");
            std::thread::sleep(Duration::from_millis(30));
        });
        let blocker_id = tokio_id(blocker.id());
        blocker.await.unwrap();
        let request = flight_recorder::UserTask::new("request");
        {
            let _db = flight_recorder::region("db_query");
            flight_recorder::counter("queue_depth", 3);
            flight_recorder::counter("queue_depth", 5);
        }
        drop(request);
        let mut handles = Vec::new();
        for i in 0..20u64 {
            handles.push(flight_recorder::tokio::spawn(async move {
                tokio::task::yield_now().await;
                i
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        (yielder_id, line, blocker_id)
    })
}

fn snapshot(fr: &FlightRecorder, tag: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    fr.write_to_with(&mut bytes, &SnapshotMeta::new("manual", tag))
        .expect("snapshot");
    bytes
}

fn recorded() -> &'static Recorded {
    static RECORDED: OnceLock<Recorded> = OnceLock::new();
    RECORDED.get_or_init(|| {
        let _serial = serial();
        let fr = FlightRecorder::new(FlightRecorderConfig {
            min_age: Duration::from_secs(60),
            max_bytes: 64 << 20,
            ..Default::default()
        });
        flight_recorder::set_service_name("checkout");
        fr.start().expect("start");
        let rt = runtime();
        let (yielder, yielder_line, blocker) = workload(&rt);
        let first = snapshot(&fr, "first");
        std::thread::sleep(Duration::from_millis(2));
        workload(&rt);
        let second = snapshot(&fr, "second");
        drop(rt);
        fr.stop();
        Recorded {
            first,
            second,
            yielder,
            yielder_line,
            blocker,
        }
    })
}

fn tables_of(name: &str, bytes: &[u8]) -> SnapshotTables {
    read_snapshot_bytes(name, bytes, &TableOptions::default()).expect("tables")
}

fn summary_of(bytes: &[u8]) -> Summary {
    let options = SummaryOptions {
        long_poll_ns: 10 * MS,
        ..SummaryOptions::default()
    };
    Summary::from_reader_with(TraceReader::new(bytes).unwrap(), options, &mut |_| {})
        .expect("a complete trace")
}

fn rows(tables: &SnapshotTables, table: &str) -> u64 {
    tables.table(table).expect("table").num_rows() as u64
}

fn col<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("column {name} of another type"))
}

#[test]
fn every_table_has_its_schema() {
    let r = recorded();
    let tables = tables_of("first.out", &r.first);
    let names: Vec<&str> = tables.tables.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, TABLES);
    for (name, batch) in &tables.tables {
        assert_eq!(batch.schema(), schema(name).unwrap(), "{name}");
        for column in ["snapshot_id", "service", "host", "date"] {
            assert!(batch.schema().index_of(column).is_ok(), "{name}.{column}");
        }
    }
    assert!(schema("nope").is_none());
}

#[test]
fn row_counts_agree_with_the_summary() {
    let r = recorded();
    for bytes in [&r.first, &r.second] {
        let tables = tables_of("trace.out", bytes);
        let summary = summary_of(bytes);
        let kind = |name: &str| {
            summary
                .kinds
                .iter()
                .find(|k| k.name == name)
                .map_or(0, |k| k.count)
        };
        assert_eq!(rows(&tables, "snapshots"), 1);
        assert!(summary.tasks.polls > 40, "{}", summary.tasks.polls);
        assert_eq!(rows(&tables, "polls"), summary.tasks.polls);
        assert_eq!(rows(&tables, "tasks"), summary.tasks.tasks);
        assert!(summary.long_polls.count >= 1);
        assert_eq!(rows(&tables, "long_polls"), summary.long_polls.count);
        assert_eq!(rows(&tables, "logs"), summary.logs.total);
        let counters: u64 = summary.counters.iter().map(|c| c.samples).sum();
        assert_eq!(rows(&tables, "counters"), counters);
        let user_tasks: u64 = summary
            .user_tasks
            .iter()
            .map(|g| g.count + g.unfinished)
            .sum();
        assert_eq!(rows(&tables, "user_tasks"), user_tasks);
        let regions: u64 = summary.regions.iter().map(|g| g.count + g.unfinished).sum();
        assert_eq!(rows(&tables, "regions"), regions);
        assert_eq!(rows(&tables, "wakes"), kind("task_wake"));
        assert_eq!(rows(&tables, "samples"), kind("cpu_sample"));
        // The snapshot row's figures.
        let snapshots = tables.table("snapshots").unwrap();
        assert_eq!(
            col::<UInt64Array>(snapshots, "events").value(0),
            summary.events
        );
        assert_eq!(
            col::<UInt64Array>(snapshots, "chunks").value(0),
            summary.chunks
        );
        let window = summary.window.unwrap();
        let start = col::<TimestampNanosecondArray>(snapshots, "window_start");
        assert_eq!(start.value(0) as u64, window.start_ns);
        let end = col::<TimestampNanosecondArray>(snapshots, "window_end");
        assert_eq!(end.value(0) as u64, window.end_ns);
        assert!(col::<BooleanArray>(snapshots, "complete").value(0));
        // Scheduling waits as the summary measures them: as many known and unknown, the same
        // largest and mean.
        let polls = tables.table("polls").unwrap();
        let waits = col::<Int64Array>(polls, "sched_wait_ns");
        let known: Vec<u64> = waits.iter().flatten().map(|w| w as u64).collect();
        let latency = &summary.sched_latency;
        assert_eq!(known.len() as u64, latency.percentiles.count);
        assert_eq!(waits.null_count() as u64, latency.unknown);
        assert_eq!(
            known.iter().max().copied().unwrap_or(0),
            latency.percentiles.max
        );
        let mean = known.iter().sum::<u64>() / (known.len() as u64).max(1);
        assert_eq!(mean, latency.percentiles.mean);
        // The summed busy time of the tasks is the summary's.
        let tasks = tables.table("tasks").unwrap();
        let busy: i64 = col::<Int64Array>(tasks, "busy_ns").iter().flatten().sum();
        assert_eq!(busy as u64, summary.tasks.run_ns);
    }
}

#[test]
fn only_one_table_is_built_when_asked_and_it_is_the_same() {
    let r = recorded();
    let all = read_snapshot_bytes("t.out", &r.first, &TableOptions::default()).unwrap();
    for &table in TABLES {
        let options = TableOptions {
            only: Some(table),
            ..TableOptions::default()
        };
        let one = read_snapshot_bytes("t.out", &r.first, &options).unwrap();
        assert_eq!(one.snapshot_id, all.snapshot_id);
        for &other in TABLES {
            let batch = one.table(other).expect("every table is there");
            assert_eq!(batch.schema(), schema(other).unwrap(), "{other}");
            if other == table {
                assert_eq!(batch, all.table(other).unwrap(), "{other} differs");
            } else {
                assert_eq!(batch.num_rows(), 0, "{other} built when {table} was asked");
            }
        }
    }
    // The recording has rows in the tables a query scans most.
    for table in ["snapshots", "polls", "tasks", "wakes"] {
        assert!(rows(&all, table) > 0, "{table}");
    }
}

#[test]
fn a_threshold_changes_the_long_polls() {
    let r = recorded();
    let options = TableOptions {
        long_poll_threshold: Duration::from_secs(10),
        ..TableOptions::default()
    };
    let tables = read_snapshot_bytes("t.out", &r.first, &options).unwrap();
    assert_eq!(rows(&tables, "long_polls"), 0);
    assert!(rows(&tables, "polls") > 0);
}

/// Reads every Parquet file under `dir` (recursively) of one table.
fn read_parquet(dir: &Path) -> Vec<(PathBuf, RecordBatch)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let file = std::fs::File::open(&path).unwrap();
                let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap();
                let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
                let schema = batches[0].schema();
                out.push((
                    path,
                    arrow::compute::concat_batches(&schema, &batches).unwrap(),
                ));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn parquet_files_read_back_with_their_schema_and_values() {
    let r = recorded();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("executiontrace.first.out");
    std::fs::write(&input, &r.first).unwrap();
    let out = dir.path().join("out");
    let report = export(
        std::slice::from_ref(&input),
        &out,
        &ExportOptions::default(),
    )
    .unwrap();
    assert_eq!((report.files_done, report.files_failed), (1, 0));
    assert_eq!(report.input_bytes, r.first.len() as u64);

    let tables = tables_of("executiontrace.first.out", &r.first);
    let header = TraceReader::new(&r.first[..]).unwrap().header().clone();
    assert_eq!(tables.host, header.host);
    // The service set with `set_service_name`, unless the environment names one.
    let service = flight_recorder::service_name();
    if std::env::var_os("FLIGHT_RECORDER_SERVICE").is_none() {
        assert_eq!(service, "checkout");
    }
    assert_eq!(header.service, service);
    assert_eq!(tables.service, service);
    assert_eq!(tables.date.len(), 10);

    // The layout: one file per non-empty table, in Hive-style directories.
    for (table, batch) in &tables.tables {
        let path = out
            .join(table)
            .join(format!("service={}", tables.service))
            .join(format!("date={}", tables.date))
            .join(format!("host={}", tables.host))
            .join(format!("{}.parquet", tables.snapshot_id));
        assert_eq!(path.exists(), batch.num_rows() > 0, "{}", path.display());
    }
    assert!(!out.join("samples").exists());
    let written: u64 = tables
        .tables
        .iter()
        .filter(|(_, b)| b.num_rows() > 0)
        .count() as u64;
    assert_eq!(report.parquet_files, written);

    // Polls: schema and values of a known task.
    let polls = read_parquet(&out.join("polls"));
    assert_eq!(polls.len(), 1);
    let batch = &polls[0].1;
    assert_eq!(batch.schema(), schema("polls").unwrap());
    let task = col::<UInt64Array>(batch, "task_id");
    let location = col::<StringArray>(batch, "location");
    let mut yielder_polls = 0;
    for i in 0..batch.num_rows() {
        if task.value(i) == r.yielder {
            yielder_polls += 1;
            let l = location.value(i);
            assert!(
                l.contains("parquet.rs:") && l.contains(&format!(":{}:", r.yielder_line)),
                "{l}"
            );
        }
    }
    assert_eq!(yielder_polls, 5);
    let services = col::<StringArray>(batch, "service");
    assert!(services.iter().all(|s| s == Some(service.as_str())));
    let ids = col::<StringArray>(batch, "snapshot_id");
    assert!(ids.iter().all(|s| s == Some(tables.snapshot_id.as_str())));

    // The long poll is the blocking task's, with its region and log.
    let long = read_parquet(&out.join("long_polls"));
    let batch = &long[0].1;
    let task = col::<UInt64Array>(batch, "task_id");
    let at = (0..batch.num_rows())
        .find(|&i| task.value(i) == r.blocker)
        .expect("the blocking poll is a long poll");
    assert!(col::<Int64Array>(batch, "duration_ns").value(at) >= 30 * MS as i64);
    let annotations = col::<ListArray>(batch, "annotations").value(at);
    let annotations: Vec<&str> = annotations.as_string::<i32>().iter().flatten().collect();
    assert!(
        annotations.contains(&"region blocking_call"),
        "{annotations:?}"
    );
    assert!(
        annotations.contains(&"log handler: calling the legacy client"),
        "{annotations:?}"
    );

    // Logs, counters, snapshots.
    let logs = &read_parquet(&out.join("logs"))[0].1;
    let message = col::<StringArray>(logs, "message");
    let at = (0..logs.num_rows())
        .find(|&i| message.value(i) == "calling the legacy client")
        .unwrap();
    assert_eq!(col::<StringArray>(logs, "category").value(at), "handler");
    assert_eq!(col::<UInt64Array>(logs, "task_id").value(at), r.blocker);
    let counters = &read_parquet(&out.join("counters"))[0].1;
    let values: Vec<u64> = col::<UInt64Array>(counters, "value").values().to_vec();
    assert_eq!(values, [3, 5]);
    let snapshots = &read_parquet(&out.join("snapshots"))[0].1;
    assert_eq!(snapshots.num_rows(), 1);
    assert_eq!(col::<StringArray>(snapshots, "tag").value(0), "first");
    assert_eq!(col::<StringArray>(snapshots, "reason").value(0), "manual");
    assert_eq!(
        col::<StringArray>(snapshots, "file_name").value(0),
        "executiontrace.first.out"
    );
    assert_eq!(
        col::<UInt64Array>(snapshots, "file_bytes").value(0),
        r.first.len() as u64
    );
    assert_eq!(col::<UInt64Array>(snapshots, "pid").value(0), header.pid);

    // Exporting again replaces the files: the same tree.
    let again = export(&[input], &out, &ExportOptions::default()).unwrap();
    assert_eq!(again.parquet_files, report.parquet_files);
    assert_eq!(read_parquet(&out.join("polls")).len(), 1);
}

type Identity = (u64, i64, u64, u64, u32);

fn identities(batch: &RecordBatch) -> Vec<Identity> {
    let pid = col::<UInt64Array>(batch, "pid");
    let start = col::<Int64Array>(batch, "process_start_ns");
    let thread = col::<UInt64Array>(batch, "thread");
    let chunk = col::<UInt64Array>(batch, "chunk_base");
    let index = col::<UInt32Array>(batch, "event_index");
    (0..batch.num_rows())
        .map(|i| {
            (
                pid.value(i),
                start.value(i),
                thread.value(i),
                chunk.value(i),
                index.value(i),
            )
        })
        .collect()
}

#[test]
fn identities_are_unique_in_a_file_and_shared_by_overlapping_snapshots() {
    let r = recorded();
    let first = tables_of("first.out", &r.first);
    let second = tables_of("second.out", &r.second);
    assert_ne!(first.snapshot_id, second.snapshot_id);
    for tables in [&first, &second] {
        for (name, batch) in tables.tables.iter().skip(1) {
            let ids = identities(batch);
            let unique: HashSet<_> = ids.iter().collect();
            assert_eq!(unique.len(), ids.len(), "duplicate identities in {name}");
        }
    }
    // The second snapshot holds the first one's events (the window is 60 s): the same polls
    // have the same identities, and the same task and duration there.
    let polls = |t: &SnapshotTables| -> HashMap<Identity, (u64, i64, bool)> {
        let batch = t.table("polls").unwrap();
        let task = col::<UInt64Array>(batch, "task_id");
        let duration = col::<Int64Array>(batch, "duration_ns");
        let result = col::<StringArray>(batch, "result");
        identities(batch)
            .into_iter()
            .enumerate()
            .map(|(i, id)| {
                let cut = result.value(i) == "truncated";
                (id, (task.value(i), duration.value(i), cut))
            })
            .collect()
    };
    let (a, b) = (polls(&first), polls(&second));
    assert!(b.len() > a.len(), "{} then {}", a.len(), b.len());
    let mut shared = 0;
    for (id, (task, duration, cut)) in &a {
        if let Some((task2, duration2, _)) = b.get(id) {
            shared += 1;
            assert_eq!(task, task2, "{id:?}");
            // Times come from the file's clock calibration, taken again for each file; a poll
            // still running when the first file was written ends there.
            if !cut {
                let close = (duration - duration2).abs() <= duration / 1000 + 1000;
                assert!(close, "{id:?}: {duration} then {duration2}");
            }
        }
    }
    // Every poll of the first file is in the second, but the last ones (cut by the end of the
    // first window, or still running when it was written).
    assert!(
        shared + 4 >= a.len(),
        "{shared} of {} polls shared",
        a.len()
    );
    // The union of the two, de-duplicated by identity, has as many polls as the second.
    let union: HashSet<&Identity> = a.keys().chain(b.keys()).collect();
    assert!(union.len() <= b.len() + 4, "{} {}", union.len(), b.len());
    // Logs too.
    let logs = |t: &SnapshotTables| -> HashSet<Identity> {
        identities(t.table("logs").unwrap()).into_iter().collect()
    };
    let (a, b) = (logs(&first), logs(&second));
    assert_eq!(a.len(), 1);
    assert_eq!(b.len(), 2);
    assert!(a.is_subset(&b));
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn bad_input_is_reported_and_the_rest_exported() {
    let r = recorded();
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    std::fs::create_dir(&traces).unwrap();
    write(&traces, "a-good.out", &r.first);
    let truncated = &r.first[..r.first.len() / 2];
    write(&traces, "b-truncated.out", truncated);
    let mut corrupt = r.first.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x55;
    write(&traces, "c-corrupt.out", &corrupt);
    write(&traces, "d-empty.out", b"");
    let mut future = r.first.clone();
    future[8] = 9; // major version 9
    write(&traces, "e-future.out", &future);
    write(&traces, "notes.txt", b"not a trace, not named like one");

    let options = TableOptions::default();
    for (name, bytes) in [
        ("b-truncated.out", truncated),
        ("c-corrupt.out", &corrupt[..]),
        ("d-empty.out", b"" as &[u8]),
        ("e-future.out", &future[..]),
    ] {
        let e = read_snapshot_bytes(name, bytes, &options).unwrap_err();
        assert!(e.to_string().starts_with(&format!("{name}: ")), "{e}");
    }
    // A torn file gives the tables of its intact part when asked.
    let partial = read_snapshot_bytes(
        "b-truncated.out",
        truncated,
        &TableOptions {
            accept_damaged: true,
            ..TableOptions::default()
        },
    )
    .unwrap();
    let snapshots = partial.table("snapshots").unwrap();
    assert!(!col::<BooleanArray>(snapshots, "complete").value(0));
    assert!(col::<StringArray>(snapshots, "error").is_valid(0));
    assert!(rows(&partial, "polls") < rows(&tables_of("a", &r.first), "polls"));

    let out = dir.path().join("out");
    let missing = dir.path().join("missing.out");
    let report = export(&[traces, missing], &out, &ExportOptions::default()).unwrap();
    assert_eq!(report.files_done, 1);
    assert_eq!(report.files_failed, 5);
    let failed: Vec<String> = report.failures.iter().map(|e| e.to_string()).collect();
    for name in [
        "b-truncated.out",
        "c-corrupt.out",
        "d-empty.out",
        "e-future.out",
        "missing.out",
    ] {
        assert!(
            failed.iter().any(|e| e.contains(name)),
            "{name} not in {failed:?}"
        );
    }
    assert_eq!(read_parquet(&out.join("snapshots")).len(), 1);
    // No temporary file is left behind.
    let mut stack = vec![out.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            assert!(!path.to_string_lossy().ends_with(".tmp"), "{path:?}");
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
}

#[test]
fn an_unwritable_output_is_an_error() {
    let r = recorded();
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "t.out", &r.first);
    let file = write(dir.path(), "a-file", b"");
    // Under a regular file nothing can be created, even as root.
    let e = export(
        std::slice::from_ref(&input),
        &file.join("out"),
        &ExportOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("a-file"), "{e}");
    let e = export(&[input], &file, &ExportOptions::default()).unwrap_err();
    assert!(e.to_string().contains("a-file"), "{e}");
}

/// A file written by hand whose threads' chunks interleave out of time order: each event's
/// identity is its thread, its chunk's base and its index in the chunk, whatever order the
/// merge releases the events in; a CPU sample's stack comes out symbolized.
#[test]
fn each_event_is_identified_by_its_chunk_and_index() {
    use flight_recorder_format::{EventKind, SymbolFrame};
    use flight_recorder_test_support::{Ev, TraceBuilder, ORIGIN_TICKS};

    let mut b = TraceBuilder::standard(
        &[(1, "cat")],
        &[(1, "src/main.rs", 10, 5)],
        &[(1, 101, "w1"), (2, 102, "w2")],
    );
    b.stacks(&[(1, vec![0x1000, 0x2000])]);
    let frame = |function: &str, line| SymbolFrame {
        function: function.into(),
        file: "src/lib.rs".into(),
        line,
    };
    b.symbols(&[
        (0x1000, vec![frame("inner", 7)]),
        (0x2000, vec![frame("outer", 20)]),
    ]);
    let base = |thread: u64, chunk: u64| ORIGIN_TICKS + chunk * 1000 + thread * 100;
    for chunk in 0..3 {
        // Thread 2's chunk first: its events are later than thread 1's of the same round.
        for thread in [2, 1] {
            let mut events: Vec<Ev> = (0..3)
                .map(|i| Ev::log(10, 1, &format!("{thread}/{chunk}/{i}")))
                .collect();
            if thread == 1 && chunk == 1 {
                events.push(Ev::new(EventKind::CpuSample, 5, &[2, 1, 0, 0]));
            }
            b.chunk(thread, base(thread, chunk), &events);
        }
    }
    let bytes = b.finish();
    let tables = tables_of("hand.out", &bytes);
    let logs = tables.table("logs").unwrap();
    assert_eq!(logs.num_rows(), 18);
    let message = col::<StringArray>(logs, "message");
    for (i, (pid, _, thread, chunk_base, index)) in identities(logs).into_iter().enumerate() {
        let parts: Vec<u64> = message
            .value(i)
            .split('/')
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(pid, 4242);
        assert_eq!(
            (thread, chunk_base, u64::from(index)),
            (parts[0], base(parts[0], parts[1]), parts[2]),
            "{}",
            message.value(i)
        );
    }
    assert_eq!(
        col::<StringArray>(logs, "thread_name").value(0),
        "w1",
        "the earliest event is thread 1's"
    );
    let samples = tables.table("samples").unwrap();
    assert_eq!(samples.num_rows(), 1);
    assert_eq!(
        identities(samples)[0],
        (4242, 1_795_314_936_000_000_000, 1, base(1, 1), 3)
    );
    assert_eq!(col::<UInt64Array>(samples, "sampled_thread").value(0), 2);
    let stack = col::<ListArray>(samples, "stack").value(0);
    let frames: Vec<&str> = stack.as_string::<i32>().iter().flatten().collect();
    assert_eq!(frames, ["inner at src/lib.rs:7", "outer at src/lib.rs:20"]);
    assert_eq!(tables.service, "demo");
    assert_eq!(tables.host, "box");
    assert_eq!(tables.snapshot_id, "box_4242_20261122T023538.000000000Z");
}

/// CPU samples are attributed to the poll running on the sampled thread at the sample's instant
/// (the event's time minus its age), or to the latest poll of the task they name, as the summary
/// counts them per spawn location.
#[test]
fn cpu_samples_are_attributed_as_the_summary_does() {
    use flight_recorder_format::EventKind;
    use flight_recorder_test_support::{Ev, TraceBuilder, ORIGIN_TICKS};

    let mut b = TraceBuilder::standard(
        &[],
        &[(1, "src/a.rs", 1, 1), (2, "src/b.rs", 2, 1)],
        &[(1, 101, "worker"), (2, 102, "sampler")],
    );
    b.stacks(&[(1, vec![0x1000])]);
    let base = ORIGIN_TICKS + 1_000;
    b.chunk(
        1,
        base,
        &[
            Ev::new(EventKind::TaskSpawn, 0, &[7, 1, 0]),
            Ev::new(EventKind::TaskSpawn, 0, &[8, 2, 0]),
            Ev::new(EventKind::PollStart, 100, &[7]),
            Ev::new(EventKind::PollEnd, 100, &[7, 0]),
            Ev::new(EventKind::PollStart, 100, &[8]),
            Ev::new(EventKind::PollEnd, 100, &[8, 0]),
        ],
    );
    // A first sample, before the polls (polls are remembered once samples come).
    b.chunk(
        2,
        base + 50,
        &[Ev::new(EventKind::CpuSample, 0, &[1, 1, 0, 0])],
    );
    // Samples of thread 1, recorded later in a batch: at +150 (in task 7's poll), +350 (task
    // 8's), +450 (no poll), +480 naming task 8 (after its poll: its latest poll), +500 (no poll).
    b.chunk(
        2,
        base + 500,
        &[
            Ev::new(EventKind::CpuSample, 0, &[1, 1, 350, 0]),
            Ev::new(EventKind::CpuSample, 0, &[1, 1, 150, 0]),
            Ev::new(EventKind::CpuSample, 0, &[1, 1, 50, 0]),
            Ev::new(EventKind::CpuSample, 0, &[1, 1, 20, 8]),
            Ev::new(EventKind::CpuSample, 0, &[1, 1, 0, 0]),
        ],
    );
    let bytes = b.finish();
    let tables = tables_of("samples.out", &bytes);
    let samples = tables.table("samples").unwrap();
    assert_eq!(samples.num_rows(), 6);
    let task = col::<UInt64Array>(samples, "task_id");
    let location = col::<StringArray>(samples, "location");
    let time = col::<TimestampNanosecondArray>(samples, "time");
    let origin = flight_recorder_test_support::unix_ns(base) as i64;
    let mut by_time: Vec<(i64, Option<u64>, Option<&str>)> = (0..6)
        .map(|i| {
            (
                time.value(i) - origin,
                task.is_valid(i).then(|| task.value(i)),
                location.is_valid(i).then(|| location.value(i)),
            )
        })
        .collect();
    by_time.sort();
    assert_eq!(
        by_time,
        [
            (50, None, None),
            (150, Some(7), Some("src/a.rs:1:1")),
            (350, Some(8), Some("src/b.rs:2:1")),
            (450, None, None),
            (480, Some(8), Some("src/b.rs:2:1")),
            (500, None, None),
        ]
    );

    // The summary's counts per location.
    let summary = summary_of(&bytes);
    let counts: HashMap<&str, u64> = summary
        .cpu
        .iter()
        .map(|c| (c.location.as_str(), c.samples))
        .collect();
    let ours = |l: Option<&str>| by_time.iter().filter(|s| s.2 == l).count() as u64;
    assert_eq!(counts["src/a.rs:1:1"], ours(Some("src/a.rs:1:1")));
    assert_eq!(counts["src/b.rs:2:1"], ours(Some("src/b.rs:2:1")));
    assert_eq!(counts["outside polls"], ours(None));
}

/// A complete file without events: every table is there and empty but `snapshots`, whose window
/// is null; the export writes the `snapshots` file only.
#[test]
fn a_file_without_events_gives_its_snapshot_row_only() {
    use flight_recorder_test_support::{header, TraceBuilder};

    let bytes = TraceBuilder::new(&header()).finish();
    let tables = tables_of("empty.out", &bytes);
    for (name, batch) in &tables.tables {
        let expected = usize::from(*name == "snapshots");
        assert_eq!(batch.num_rows(), expected, "{name}");
    }
    let snapshots = tables.table("snapshots").unwrap();
    assert!(col::<TimestampNanosecondArray>(snapshots, "window_start").is_null(0));
    assert_eq!(col::<UInt64Array>(snapshots, "events").value(0), 0);
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "empty.out", &bytes);
    let out = dir.path().join("out");
    let report = export(&[input], &out, &ExportOptions::default()).unwrap();
    assert_eq!((report.files_done, report.parquet_files), (1, 1));
    let dirs: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(dirs, ["snapshots"]);
}
