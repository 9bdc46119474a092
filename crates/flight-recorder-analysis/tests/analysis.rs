//! The summary and the dump lines of files built in memory.

use flight_recorder_test_support as common;

use common::{header, unix_ns, Ev, TraceBuilder, ORIGIN_TICKS};
use flight_recorder_analysis::dump::{describe, Dumper};
use flight_recorder_analysis::merge::MergeOptions;
use flight_recorder_analysis::{Summary, SummaryOptions, ThreadSummary, Window};
use flight_recorder_format::{Dropped, EventKind, KindInfo, TraceReader};

/// One millisecond after the calibration origin: 2026-11-22T02:35:36.001Z.
const BASE: u64 = ORIGIN_TICKS + 1_000_000;

fn sample() -> Vec<u8> {
    let mut b = TraceBuilder::standard(
        &[(1, "handle_request"), (2, "http")],
        &[(1, "src/main.rs", 10, 5)],
        &[(1, 101, "main"), (2, 102, "worker"), (3, 103, "idle")],
    );
    b.kinds(&[KindInfo {
        byte: 200,
        arg_count: 1,
        has_payload: true,
        name: "future_kind".into(),
    }]);
    b.chunk(
        1,
        BASE,
        &[
            Ev::new(EventKind::TaskSpawn, 0, &[1, 1, 0]),
            Ev::new(EventKind::PollStart, 10, &[1]),
            Ev::new(EventKind::RegionBegin, 3, &[1, 0]),
            Ev::log(1_000_000, 2, "GET /users/42"),
            Ev::new(EventKind::RegionEnd, 5, &[1, 0]),
            Ev::new(EventKind::PollEnd, 5, &[1, 1]),
        ],
    )
    .chunk(
        2,
        BASE + 500,
        &[
            Ev::new(EventKind::PollStart, 0, &[2]),
            Ev::new(EventKind::PollEnd, 2_000_000_000, &[2, 0]),
        ],
    )
    .chunk(
        9,
        BASE - 100,
        &[Ev {
            kind: 200,
            delta: 0,
            args: vec![7],
            payload: b"opaque".to_vec(),
        }],
    )
    .dropped(2, 4096);
    b.finish()
}

#[test]
fn summary_counts_events_kinds_threads_and_sizes() {
    let bytes = sample();
    let summary = Summary::from_reader(TraceReader::new(&bytes[..]).unwrap()).unwrap();
    assert_eq!(summary.header, header());
    assert!(summary.complete);
    assert_eq!(summary.error, None);
    assert_eq!(summary.events, 9);
    assert_eq!(
        summary.window,
        Some(Window {
            start_ns: unix_ns(BASE - 100),
            end_ns: unix_ns(BASE + 2_000_000_500),
        })
    );
    assert_eq!(summary.window.unwrap().duration_ns(), 2_000_000_600);
    assert_eq!(summary.count_of("poll_start"), 2);
    assert_eq!(summary.count_of("future_kind"), 1);
    assert_eq!(summary.count_of("thread_exit"), 0);
    // The most frequent first, ties by kind byte.
    let names: Vec<&str> = summary.kinds.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "poll_start",
            "poll_end",
            "region_begin",
            "region_end",
            "log",
            "task_spawn",
            "future_kind"
        ]
    );
    assert_eq!(
        summary.threads,
        [
            ThreadSummary {
                id: 1,
                os_tid: Some(101),
                name: "main".into(),
                events: 6
            },
            ThreadSummary {
                id: 2,
                os_tid: Some(102),
                name: "worker".into(),
                events: 2
            },
            ThreadSummary {
                id: 3,
                os_tid: Some(103),
                name: "idle".into(),
                events: 0
            },
            ThreadSummary {
                id: 9,
                os_tid: None,
                name: String::new(),
                events: 1
            },
        ]
    );
    assert_eq!(summary.file_bytes, bytes.len() as u64);
    assert_eq!(summary.chunks, 3);
    assert!(summary.event_bytes > 0 && summary.event_bytes < 100);
    assert_eq!(
        summary.event_bytes_per_event(),
        Some(summary.event_bytes as f64 / 9.0)
    );
    assert_eq!(
        summary.dropped,
        Dropped {
            chunks: 2,
            bytes: 4096
        }
    );
}

#[test]
fn text_summary_is_aligned_and_complete() {
    let bytes = sample();
    let mut summary = Summary::from_reader(TraceReader::new(&bytes[..]).unwrap()).unwrap();
    summary.path = Some("trace.out".into());
    let text = summary.render_text();
    let facts = [
        ("trace", "trace.out"),
        ("mode", "flight-recorder"),
        ("reason", "manual"),
        ("tag", "slow_request"),
        ("program", "demo (pid 4242)"),
        ("host", "box"),
        ("command", "demo --flag"),
        ("recorder", "0.1.0"),
        ("clock", "monotonic"),
        (
            "settings",
            "min_age 10.000s, max_bytes 10485760, chunk_size 65536",
        ),
        ("complete", "yes"),
        (
            "window",
            "2026-11-22T02:35:36.000Z .. 2026-11-22T02:35:38.001Z",
        ),
        ("duration", "2.000s"),
        ("events", "9"),
        ("dropped", "2 chunks, 4096 bytes"),
    ];
    for (key, value) in facts {
        let expected = format!("{key:<9}  {value}\n");
        assert!(
            text.contains(&expected),
            "{expected:?} missing from\n{text}"
        );
    }
    let chunks = format!(
        "chunks     3 holding {} event bytes ({:.2} bytes/event)\n",
        summary.event_bytes,
        summary.event_bytes as f64 / 9.0
    );
    let size = format!(
        "file size  {} bytes ({:.2} bytes/event)\n",
        bytes.len(),
        bytes.len() as f64 / 9.0
    );
    for expected in [
        &*chunks,
        &*size,
        "\nevents by kind\n  kind          events  share\n  poll_start         2  22.2%\n",
        "  future_kind        1  11.1%\n",
        "\nthreads\n  id  os tid  name    events\n   1     101  main         6\n",
        "   9       ?               1\n",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }
    assert!(!text.contains("error"), "{text}");
}

#[test]
fn json_summary_has_stable_keys() {
    let bytes = sample();
    let summary = Summary::from_reader(TraceReader::new(&bytes[..]).unwrap()).unwrap();
    let json = summary.to_json();
    assert_eq!(json["path"], serde_json::Value::Null);
    assert_eq!(json["file"]["pid"], 4242);
    assert_eq!(json["file"]["tag"], "slow_request");
    assert_eq!(json["file"]["clock_source"], "monotonic");
    assert_eq!(json["complete"], true);
    assert_eq!(json["error"], serde_json::Value::Null);
    assert_eq!(json["window"]["start"], "2026-11-22T02:35:36.000Z");
    assert_eq!(json["window"]["duration_ns"], 2_000_000_600u64);
    assert_eq!(json["events"]["total"], 9);
    assert_eq!(json["events"]["by_kind"]["poll_end"], 2);
    assert_eq!(json["events"]["by_kind"]["future_kind"], 1);
    assert_eq!(json["threads"][0]["name"], "main");
    assert_eq!(json["threads"][3]["os_tid"], serde_json::Value::Null);
    assert_eq!(json["size"]["file_bytes"], bytes.len() as u64);
    assert_eq!(json["size"]["chunks"], 3);
    assert!(json["size"]["file_bytes_per_event"].as_f64().unwrap() > 10.0);
    assert_eq!(json["dropped"]["bytes"], 4096);
}

#[test]
fn a_file_without_events_has_no_window() {
    let bytes = TraceBuilder::new(&header()).finish();
    let summary = Summary::from_reader(TraceReader::new(&bytes[..]).unwrap()).unwrap();
    assert_eq!(summary.window, None);
    assert_eq!(summary.event_bytes_per_event(), None);
    assert!(summary.render_text().contains("window     no events\n"));
    let json = summary.to_json();
    assert_eq!(json["window"], serde_json::Value::Null);
    assert_eq!(
        json["size"]["event_bytes_per_event"],
        serde_json::Value::Null
    );
}

#[test]
fn a_torn_file_is_summarized_up_to_the_damage() {
    let bytes = sample();
    for cut in 13..bytes.len() {
        let Ok(reader) = TraceReader::new(&bytes[..cut]) else {
            continue; // the header itself is cut
        };
        let damaged = Summary::from_reader(reader).unwrap_err();
        let summary = &damaged.summary;
        assert!(!summary.complete);
        assert_eq!(summary.error.as_deref(), Some(&*damaged.error.to_string()));
        assert!(summary.events <= 9);
        assert!(summary.file_bytes <= cut as u64);
        assert!(summary.render_text().contains("complete   no\n"));
        assert_eq!(damaged.to_string(), damaged.error.to_string());
    }
    let cut = &bytes[..bytes.len() - 1];
    let damaged = Summary::from_reader(TraceReader::new(cut).unwrap()).unwrap_err();
    assert_eq!(damaged.summary.events, 9, "only the end record is lost");
    let text = damaged.summary.render_text();
    assert!(
        text.contains("error      truncated trace at byte "),
        "{text}"
    );
}

#[test]
fn events_are_described_with_named_and_resolved_arguments() {
    let bytes = sample();
    let mut reader = TraceReader::new(&bytes[..]).unwrap();
    let mut dumper = Dumper::new();
    let mut lines = Vec::new();
    let mut descriptions = Vec::new();
    while let Some(event) = reader.next_event().unwrap() {
        descriptions.push(describe(&reader, &event));
        lines.push(dumper.line(&reader, &event));
    }
    assert_eq!(
        descriptions,
        [
            "task_spawn task=1 location=src/main.rs:10:5 parent=0",
            "poll_start task=1",
            "region_begin name=\"handle_request\"",
            "log category=\"http\" message=\"GET /users/42\"",
            "region_end name=\"handle_request\"",
            "poll_end task=1 result=ready",
            "poll_start task=2",
            "poll_end task=2 result=pending",
            "future_kind arg0=7 payload=\"opaque\"",
        ]
    );
    assert_eq!(
        lines[0],
        "2026-11-22T02:35:36.001Z     +0.000000ms  1:main                 \
         task_spawn task=1 location=src/main.rs:10:5 parent=0"
    );
    assert!(lines[3].contains(" +1.000013ms  1:main "), "{}", lines[3]);
    assert!(
        lines[7].contains(" +2000.000500ms  2:worker "),
        "{}",
        lines[7]
    );
    assert!(lines[8].contains(" -0.000100ms  9 "), "{}", lines[8]);
}

#[test]
fn unresolved_ids_are_shown_as_numbers() {
    let mut b = TraceBuilder::new(&header());
    b.chunk(
        4,
        BASE,
        &[
            Ev::new(EventKind::RegionBegin, 0, &[77, 0]),
            Ev::new(EventKind::TaskSpawn, 0, &[5, 0, 1]),
            Ev::new(EventKind::TaskSpawn, 0, &[6, 8, 5]),
            Ev::log(0, 3, "caf\u{e9} \"quoted\"\n"),
            Ev::new(EventKind::TaskWake, 0, &[5, 0]),
            Ev::new(EventKind::WorkerPark, 0, &[]),
        ],
    );
    let bytes = b.finish();
    let mut reader = TraceReader::new(&bytes[..]).unwrap();
    let mut descriptions = Vec::new();
    while let Some(event) = reader.next_event().unwrap() {
        descriptions.push(describe(&reader, &event));
    }
    assert_eq!(
        descriptions,
        [
            "region_begin name=#77",
            "task_spawn task=5 location=? parent=1",
            "task_spawn task=6 location=#8 parent=5",
            "log category=#3 message=\"café \\\"quoted\\\"\\n\"",
            "task_wake task=5 waker=0",
            "worker_park",
        ]
    );
}

#[test]
fn the_header_version_trigger_details_and_suppressed_count_are_shown() {
    let mut h = header();
    h.program_version = "svc 2.0".into();
    h.details = vec![
        ("trigger".into(), "slow_poll".into()),
        ("task".into(), "42".into()),
        ("poll_ms".into(), "120.500".into()),
        ("suppressed.slow_poll".into(), "2".into()),
        ("suppressed.signal".into(), "1".into()),
    ];
    h.suppressed_triggers = 3;
    let b = TraceBuilder::new(&h);
    let summary = Summary::from_reader(TraceReader::new(&b.finish()[..]).unwrap()).unwrap();
    let text = summary.render_text();
    for expected in [
        "version     svc 2.0",
        "trigger     slow_poll (task=42, poll_ms=120.500)",
        "suppressed  3 triggered dumps suppressed since the previous file (slow_poll 2, signal 1)",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }
    let json = summary.to_json();
    assert_eq!(json["file"]["program_version"], "svc 2.0");
    assert_eq!(json["file"]["suppressed_triggers"], 3);
    assert_eq!(json["file"]["details"][1]["name"], "task");
    assert_eq!(json["file"]["details"][1]["value"], "42");
    assert_eq!(json["file"]["details"].as_array().unwrap().len(), 5);

    // Without them: no lines.
    let text = Summary::from_reader(TraceReader::new(&sample()[..]).unwrap())
        .unwrap()
        .render_text();
    assert!(
        !text.contains("trigger") && !text.contains("suppressed"),
        "{text}"
    );
}

/// A file whose names change between its chunks (tables redefine ids as the file goes on), with
/// long polls, regions, logs and counters that name things while the events stream; or, when
/// `renamed` is false, the same events with the names of the first round throughout (the
/// pipeline then hands the events on in full batches, not cut by new names).
fn changing_names(renamed: bool) -> Vec<u8> {
    let mut b = TraceBuilder::new(&header());
    b.threads(&[(1, 101, "first"), (2, 102, "second")]);
    for round in 0..40u64 {
        let name = format!("name{round}");
        if renamed || round == 0 {
            b.strings(&[(1, &name), (2, "category")]);
            b.locations(&[(1, "src/round.rs", round as u32 + 1, 1)]);
        }
        if renamed && round % 10 == 0 {
            b.threads(&[(2, 102, &format!("second-{round}"))]);
        }
        for thread in [1, 2] {
            let mut events = Vec::new();
            for i in 0..60u64 {
                let task = round * 1000 + i * 2 + thread;
                events.push(Ev::new(EventKind::TaskSpawn, 3, &[task, 1, 0]));
                events.push(Ev::new(EventKind::PollStart, 5, &[task]));
                events.push(Ev::new(EventKind::RegionBegin, 1, &[1, 0]));
                if i % 7 == 0 {
                    events.push(Ev::log(1, 2, "message"));
                    events.push(Ev::new(EventKind::Counter, 1, &[1, i]));
                    events.push(Ev::new(EventKind::RuntimeName, 1, &[1, 1]));
                }
                events.push(Ev::new(EventKind::RegionEnd, 2, &[1, 0]));
                events.push(Ev::new(EventKind::PollEnd, 50 + i * 10, &[task, 1]));
            }
            b.chunk(thread, BASE + round * 100_000 + thread * 7, &events);
        }
    }
    b.finish()
}

#[test]
fn the_pipelined_summary_is_the_sequential_one() {
    let full = changing_names(true);
    let steady = changing_names(false);
    let files = [
        full.clone(),
        full[..full.len() * 2 / 3].to_vec(),
        steady.clone(),
        sample(),
    ];
    for bytes in &files {
        for reorder_events in [1 << 19, 100, 8, 1] {
            let summarize = |pipeline: bool| {
                let options = SummaryOptions {
                    long_poll_ns: 100,
                    top: 30,
                    merge: MergeOptions { reorder_events },
                    pipeline,
                    ..SummaryOptions::default()
                };
                let reader = TraceReader::new(&bytes[..]).unwrap();
                let mut progress = Vec::new();
                let (summary, error) =
                    match Summary::from_reader_with(reader, options, &mut |n| progress.push(n)) {
                        Ok(summary) => (summary, None),
                        Err(damaged) => (*damaged.summary, Some(damaged.error.to_string())),
                    };
                (
                    summary.render_text(),
                    summary.to_json().to_string(),
                    error,
                    progress,
                )
            };
            let sequential = summarize(false);
            assert_eq!(
                summarize(true),
                sequential,
                "reorder_events {reorder_events}"
            );
        }
    }
    // The names seen while the events streamed changed with the file (the test means something).
    let options = SummaryOptions {
        long_poll_ns: 100,
        top: 30,
        merge: MergeOptions { reorder_events: 8 },
        ..SummaryOptions::default()
    };
    let summary =
        Summary::from_reader_with(TraceReader::new(&full[..]).unwrap(), options, &mut |_| {})
            .unwrap();
    let text = summary.render_text();
    for seen in [
        "region name1",
        "region name9",
        "src/round.rs:2:1",
        "src/round.rs:10:1",
    ] {
        assert!(text.contains(seen), "{seen}: {text}");
    }
    // The steady file holds several of the pipeline's batches (4,096 events each).
    let steady = Summary::from_reader(TraceReader::new(&steady[..]).unwrap()).unwrap();
    assert!(steady.events > 5 * 4096, "{} events", steady.events);
}

/// A task whose poll end was lost (its chunk was dropped from the window) and that is then polled
/// again on another worker: the open poll is closed where the next one starts, and both count.
#[test]
fn a_poll_whose_end_was_lost_is_closed_by_the_next_poll_of_its_task() {
    let mut b = TraceBuilder::standard(
        &[],
        &[(1, "src/main.rs", 10, 5)],
        &[(1, 101, "worker-0"), (2, 102, "worker-1")],
    );
    b.chunk(
        1,
        BASE,
        &[
            Ev::new(EventKind::TaskSpawn, 0, &[1, 1, 0]),
            Ev::new(EventKind::PollStart, 10, &[1]),
        ],
    )
    .chunk(
        2,
        BASE + 1_000_000,
        &[
            Ev::new(EventKind::PollStart, 0, &[1]),
            Ev::new(EventKind::PollEnd, 2_000_000, &[1, 1]),
        ],
    );
    let bytes = b.finish();
    let summary = Summary::from_reader(TraceReader::new(&bytes[..]).unwrap()).unwrap();
    assert_eq!(summary.tasks.tasks, 1);
    assert_eq!(summary.tasks.polls, 2);
    assert_eq!(summary.tasks.ended, 1);
    assert_eq!(summary.tasks.alive_at_end, 0);
    // The first poll runs from its start to the second's: 999,990 ns, then 2 ms.
    assert_eq!(summary.tasks.run_ns, 999_990 + 2_000_000);
    let location = &summary.locations[0];
    assert_eq!(location.location, "src/main.rs:10:5");
    assert_eq!(location.polls, 2);
    assert_eq!(location.longest_poll_ns, 2_000_000);
}

/// The Chrome JSON export of a whole trace.
fn chrome_json(trace: &[u8]) -> String {
    let out = flight_recorder_analysis::chrome::write_chrome_json(
        TraceReader::new(trace).unwrap(),
        Vec::new(),
        MergeOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    String::from_utf8(out).unwrap()
}

/// Regions still open at the end of the window are closed there, thread by thread in id order:
/// the same trace always gives the same export, byte for byte.
#[test]
fn slices_open_at_the_end_are_closed_in_thread_order() {
    let threads: Vec<(u64, u64, &str)> = (1..=12).map(|id| (id, 100 + id, "worker")).collect();
    let mut b = TraceBuilder::standard(&[(1, "load")], &[(1, "src/main.rs", 10, 5)], &threads);
    for &(thread, _, _) in threads.iter().rev() {
        b.chunk(
            thread,
            BASE + thread,
            &[
                Ev::new(EventKind::TaskSpawn, 0, &[thread, 1, 0]),
                Ev::new(EventKind::PollStart, 1, &[thread]),
                Ev::new(EventKind::PollEnd, 1, &[thread, 0]),
                Ev::new(EventKind::RegionBegin, 1, &[1, 0]),
            ],
        );
    }
    let bytes = b.finish();
    let export = || chrome_json(&bytes);
    let first = export();
    for _ in 0..3 {
        assert_eq!(export(), first);
    }
    // The thread tracks' regions (the process's pid; its tasks' tracks have the next one), each
    // one complete event written at its end, in order.
    let thread_track = format!("\"pid\":{},", header().pid);
    let ends: Vec<u64> = first
        .lines()
        .filter(|line| {
            line.contains("\"ph\":\"X\",\"name\":\"load\"") && line.contains(&thread_track)
        })
        .map(|line| {
            let tid = line.split("\"tid\":").nth(1).unwrap();
            tid.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(ends, (1..=12).collect::<Vec<u64>>());
}

/// A wake or spawn inside a poll of its waker (parent) on that thread leaves the waker out: the
/// poll's slice around it names the task. A wake from outside a poll, or from a poll of another
/// task, keeps it.
#[test]
fn a_waker_is_named_by_the_poll_around_its_wake_or_by_an_argument() {
    let mut b = TraceBuilder::standard(
        &[],
        &[(1, "src/main.rs", 10, 5)],
        &[(1, 101, "worker-0"), (2, 102, "worker-1")],
    );
    b.chunk(
        1,
        BASE,
        &[
            Ev::new(EventKind::TaskSpawn, 0, &[1, 1, 0]),
            Ev::new(EventKind::TaskSpawn, 1, &[2, 1, 0]),
            Ev::new(EventKind::TaskSpawn, 1, &[3, 1, 0]),
            Ev::new(EventKind::PollStart, 1, &[2]),
            Ev::new(EventKind::PollEnd, 1, &[2, 0]),
            Ev::new(EventKind::PollStart, 1, &[3]),
            Ev::new(EventKind::PollEnd, 1, &[3, 0]),
            Ev::new(EventKind::PollStart, 1, &[1]),
            // In task 1's poll: woken by 1, woken by 9, spawned by 1, spawned by 2.
            Ev::new(EventKind::TaskWake, 1, &[2, 1]),
            Ev::new(EventKind::TaskWake, 1, &[3, 9]),
            Ev::new(EventKind::TaskSpawn, 1, &[4, 1, 1]),
            Ev::new(EventKind::TaskSpawn, 1, &[5, 1, 2]),
            Ev::new(EventKind::PollEnd, 1, &[1, 0]),
            // Out of any poll, woken by 2.
            Ev::new(EventKind::TaskWake, 1, &[1, 2]),
        ],
    );
    let mut polls = Vec::new();
    for task in [2, 3, 4, 5, 1] {
        polls.push(Ev::new(EventKind::PollStart, 10, &[task]));
        polls.push(Ev::new(EventKind::PollEnd, 10, &[task, 1]));
    }
    b.chunk(2, BASE + 1_000, &polls);
    let bytes = b.finish();
    let out = chrome_json(&bytes);
    let args = |name: &str, task: u64| -> String {
        let needle = format!("\"args\":{{\"task\":{task}");
        let line = out
            .lines()
            .find(|l| l.contains(&format!("\"name\":\"{name}\"")) && l.contains(&needle))
            .unwrap_or_else(|| panic!("no {name} of task {task} in\n{out}"));
        line[line.find("\"args\":").unwrap()..].to_string()
    };
    assert_eq!(args("wake", 2), "\"args\":{\"task\":2}},");
    assert_eq!(args("wake", 3), "\"args\":{\"task\":3,\"waker\":9}},");
    assert_eq!(args("spawn", 4), "\"args\":{\"task\":4}},");
    assert_eq!(args("spawn", 5), "\"args\":{\"task\":5,\"parent\":2}},");
    assert_eq!(args("wake", 1), "\"args\":{\"task\":1,\"waker\":2}},");
}

/// A poll is named by its task's spawn location on the thread's track and `poll` on the task's
/// track, whose name holds the location: counted by name, each poll counts once, and a Chrome
/// JSON file does not repeat the location on every line of a task's track.
#[test]
fn polls_are_named_by_location_on_threads_and_poll_on_tasks() {
    let mut b = TraceBuilder::standard(&[], &[(1, "src/main.rs", 10, 5)], &[(1, 101, "worker")]);
    let mut events = vec![Ev::new(EventKind::TaskSpawn, 0, &[7, 1, 0])];
    for _ in 0..3 {
        events.push(Ev::new(EventKind::PollStart, 10, &[7]));
        events.push(Ev::new(EventKind::PollEnd, 10, &[7, 0]));
    }
    b.chunk(1, BASE, &events);
    let bytes = b.finish();
    let parsed: serde_json::Value = serde_json::from_str(&chrome_json(&bytes)).expect("valid JSON");
    let pid = header().pid;
    let polls = |track_pid: u64| -> Vec<String> {
        parsed["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["cat"] == "poll" && e["pid"] == track_pid)
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(polls(pid), vec!["src/main.rs:10:5"; 3]);
    assert_eq!(polls(pid + 1), vec!["poll"; 3]);
    let task_track = parsed["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["ph"] == "M" && e["pid"] == pid + 1 && e["name"] == "thread_name")
        .expect("the task's track");
    assert_eq!(task_track["args"]["name"], "task 7 src/main.rs:10:5");
}

/// A task spawned in a dependency is named as the summary names it, from the crate's directory
/// (the path cargo's registry gives it, 59 characters more here, would be on every poll's line).
#[test]
fn a_dependency_spawn_location_is_named_from_its_crate() {
    let registry =
        "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/axum-0.8.9/src/serve/mod.rs";
    let mut b = TraceBuilder::standard(&[], &[(1, registry, 389, 5)], &[(1, 101, "worker")]);
    b.chunk(
        1,
        BASE,
        &[
            Ev::new(EventKind::TaskSpawn, 0, &[7, 1, 0]),
            Ev::new(EventKind::PollStart, 10, &[7]),
            Ev::new(EventKind::PollEnd, 10, &[7, 0]),
        ],
    );
    let bytes = b.finish();
    let short = "axum-0.8.9/src/serve/mod.rs:389:5";
    let json = chrome_json(&bytes);
    assert!(!json.contains("/registry/src/"), "{json}");
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let events = parsed["traceEvents"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["cat"] == "poll" && e["name"] == short),
        "{json}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["ph"] == "M" && e["args"]["name"] == format!("task 7 {short}")),
        "{json}"
    );
    let summary = Summary::from_reader(TraceReader::new(&bytes[..]).unwrap()).unwrap();
    assert_eq!(summary.locations[0].location, short);
    let perfetto = flight_recorder_analysis::perfetto::write_perfetto(
        TraceReader::new(&bytes[..]).unwrap(),
        Vec::new(),
        MergeOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let contains = |needle: &[u8]| perfetto.windows(needle.len()).any(|w| w == needle);
    assert!(contains(short.as_bytes()) && !contains(b"/registry/src/"));
}

#[test]
fn a_task_woken_and_never_polled_again_is_a_lost_wake() {
    let ms = 1_000_000;
    let mut b = TraceBuilder::standard(&[], &[(1, "src/main.rs", 10, 5)], &[(1, 101, "worker")]);
    b.chunk(
        1,
        ORIGIN_TICKS + 1_000,
        &[
            Ev::new(EventKind::RuntimeThread, 0, &[1, 0]),
            Ev::new(EventKind::WorkerUnpark, 1, &[]),
            Ev::new(EventKind::TaskSpawn, 1, &[5, 1, 0]),
            Ev::new(EventKind::TaskSpawn, 1, &[6, 1, 0]),
            Ev::new(EventKind::PollStart, 1_000, &[5]),
            Ev::new(EventKind::PollEnd, 1_000, &[5, 0]),
            Ev::new(EventKind::PollStart, 1_000, &[6]),
            // Task 6 wakes task 5, which the worker never polls again though it parks.
            Ev::new(EventKind::TaskWake, 1_000, &[5, 6]),
            Ev::new(EventKind::PollEnd, 1_000, &[6, 1]),
            Ev::new(EventKind::WorkerPark, 50 * ms, &[]),
            Ev::new(EventKind::WorkerUnpark, 1_500 * ms, &[]),
            Ev::new(EventKind::WorkerPark, 1_000, &[]),
        ],
    );
    let bytes = b.finish();
    let summary = Summary::from_reader(TraceReader::new(&bytes[..]).unwrap()).unwrap();
    let lost: Vec<_> = summary
        .diagnosis
        .of_kind(flight_recorder_analysis::FindingKind::LostWake)
        .collect();
    assert_eq!(lost.len(), 1, "{:#?}", summary.diagnosis.findings);
    assert_eq!(lost[0].evidence.tasks, [5]);
    assert_eq!(lost[0].evidence.value("unwakeable"), Some(0));
    assert!(
        lost[0].summary.contains("never polled"),
        "{}",
        lost[0].summary
    );
}
