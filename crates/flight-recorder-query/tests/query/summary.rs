//! The same figures from `query` over the corpus and from `flight-recorder summary --json` over
//! the same files.
//!
//! `summary DIR --json` gives one summary per file, not a merged one: the query is compared with
//! the sums over the files, row for row (no de-duplication, since the summaries count the events
//! of overlapping snapshots once per snapshot). Percentiles are compared per file.

use std::collections::BTreeMap;

use crate::corpus::{corpus, num, query_json, summaries, PROGRAMS, SNAPSHOTS};

/// Per file name: its summary.
fn summaries_by_file() -> BTreeMap<String, serde_json::Value> {
    let all = summaries(corpus());
    assert_eq!(all.len(), SNAPSHOTS);
    all.into_iter()
        .map(|s| {
            assert_eq!(s["complete"], true, "{}", s["path"]);
            let path = s["path"].as_str().unwrap().to_string();
            let name = path.rsplit('/').next().unwrap().to_string();
            (name, s)
        })
        .collect()
}

/// The corpus's snapshot ids to their file names.
fn file_names(dir: &str) -> BTreeMap<String, String> {
    query_json("SELECT snapshot_id, file_name FROM snapshots", &[dir])
        .iter()
        .map(|r| {
            (
                r["snapshot_id"].as_str().unwrap().into(),
                r["file_name"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn counts_and_sums_equal_the_summary() {
    let dir = corpus().to_str().unwrap();
    let by_file = summaries_by_file();

    // Polls per spawn location.
    let mut polls: BTreeMap<String, u64> = BTreeMap::new();
    let mut total_polls = 0;
    for s in by_file.values() {
        for l in s["locations"].as_array().unwrap() {
            *polls
                .entry(l["location"].as_str().unwrap().into())
                .or_default() += num(&l["polls"]);
        }
        total_polls += num(&s["tasks"]["polls"]);
    }
    polls.retain(|_, n| *n > 0);
    let rows = query_json(
        "SELECT coalesce(location, 'unknown') AS location, count(*) AS polls \
         FROM polls GROUP BY 1 ORDER BY 1",
        &[dir],
    );
    let queried: BTreeMap<String, u64> = rows
        .iter()
        .map(|r| (r["location"].as_str().unwrap().into(), num(&r["polls"])))
        .collect();
    assert_eq!(queried, polls);
    assert!(total_polls > 10_000, "a real workload: {total_polls} polls");
    assert_eq!(queried.values().sum::<u64>(), total_polls);

    // Long polls (10 ms and more, the default threshold of both) per service and day.
    let mut long: BTreeMap<(String, String), u64> = BTreeMap::new();
    for s in by_file.values() {
        let day = s["window"]["end"].as_str().unwrap()[..10].to_string();
        let service = s["file"]["program"].as_str().unwrap().to_string();
        *long.entry((service, day)).or_default() += num(&s["long_polls"]["count"]);
    }
    long.retain(|_, n| *n > 0);
    let rows = query_json(
        "SELECT service, date, count(*) AS long_polls FROM long_polls GROUP BY 1, 2 ORDER BY 1, 2",
        &[dir],
    );
    let queried: BTreeMap<(String, String), u64> = rows
        .iter()
        .map(|r| {
            (
                (
                    r["service"].as_str().unwrap().into(),
                    r["date"].as_str().unwrap().into(),
                ),
                num(&r["long_polls"]),
            )
        })
        .collect();
    assert_eq!(queried, long);
    let services: Vec<&str> = queried.keys().map(|(s, _)| s.as_str()).collect();
    for (name, ..) in PROGRAMS {
        assert!(
            services.contains(name),
            "{name} has long polls: {queried:?}"
        );
    }

    // Total scheduling wait, and tasks.
    let wait: u64 = by_file
        .values()
        .map(|s| num(&s["tasks"]["sched_wait_ns"]))
        .sum();
    let tasks: u64 = by_file.values().map(|s| num(&s["tasks"]["tasks"])).sum();
    let rows = query_json(
        "SELECT sum(sched_wait_ns) AS wait, count(*) AS tasks FROM tasks",
        &[dir],
    );
    assert_eq!(num(&rows[0]["wait"]), wait);
    assert_eq!(num(&rows[0]["tasks"]), tasks);

    // One row per snapshot, with the program's version.
    let rows = query_json(
        "SELECT program_version, count(*) AS n FROM snapshots GROUP BY 1 ORDER BY 1",
        &[dir],
    );
    let versions: BTreeMap<String, u64> = rows
        .iter()
        .map(|r| (r["program_version"].as_str().unwrap().into(), num(&r["n"])))
        .collect();
    let expected: BTreeMap<String, u64> = PROGRAMS
        .iter()
        .map(|&(_, v, _, files)| (v.to_string(), files as u64))
        .collect();
    assert_eq!(versions, expected);
}

/// Checks, for every file and spawn location, that the nearest-rank p99 of `column` computed in
/// SQL over `polls` lies in the summary's histogram bucket for that location (`latency` is the
/// location's key in `summary --json`), and that both count the same polls.
fn p99_falls_in_the_summary_bucket(column: &str, latency: &str) {
    let dir = corpus().to_str().unwrap();
    let by_file = summaries_by_file();
    let names = file_names(dir);
    assert_eq!(names.len(), SNAPSHOTS);
    // Nearest rank: the ceil(0.99 n)-th smallest value, as the summary's histogram ranks.
    let rows = query_json(
        &format!(
            "WITH ranked AS ( \
               SELECT snapshot_id, coalesce(location, 'unknown') AS location, {column} AS value, \
                      row_number() OVER (PARTITION BY snapshot_id, location ORDER BY {column}) AS rn, \
                      count(*) OVER (PARTITION BY snapshot_id, location) AS n \
               FROM polls WHERE {column} IS NOT NULL) \
             SELECT snapshot_id, location, n, value AS p99 FROM ranked \
             WHERE rn = CAST(ceil(0.99 * n) AS BIGINT)"
        ),
        &[dir],
    );
    let mut checked = 0;
    for row in &rows {
        let file = &names[row["snapshot_id"].as_str().unwrap()];
        let summary = &by_file[file];
        let location = row["location"].as_str().unwrap();
        let l = summary["locations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["location"] == location)
            .unwrap_or_else(|| panic!("{file}: no location {location} in the summary"));
        let latency = &l[latency];
        assert_eq!(num(&latency["count"]), num(&row["n"]), "{file} {location}");
        let exact = num(&row["p99"]);
        let summary_p99 = num(&latency["p99_ns"]);
        // The summary's value is the middle of the log-linear bucket (32 per power of two) that
        // holds the exact value: within half a bucket's width, 1/64 of the value.
        let half_width = (exact / 64).max(1);
        assert!(
            exact.abs_diff(summary_p99) <= half_width,
            "{file} {location}: p99 {column} {exact} in SQL, {summary_p99} in the summary"
        );
        checked += 1;
    }
    assert!(checked >= SNAPSHOTS, "{checked} locations checked");
}

#[test]
fn p99_poll_duration_per_location_falls_in_the_summary_bucket() {
    p99_falls_in_the_summary_bucket("duration_ns", "poll_duration");
}

#[test]
fn p99_scheduling_latency_per_location_falls_in_the_summary_bucket() {
    p99_falls_in_the_summary_bucket("sched_wait_ns", "sched_latency");
}

#[test]
fn the_longest_poll_per_location_equals_the_summary() {
    let dir = corpus().to_str().unwrap();
    let by_file = summaries_by_file();
    let names = file_names(dir);
    // The longest poll per location and file is exact in both.
    let rows = query_json(
        "SELECT snapshot_id, coalesce(location, 'unknown') AS location, max(duration_ns) AS longest \
         FROM polls GROUP BY 1, 2",
        &[dir],
    );
    for row in &rows {
        let file = &names[row["snapshot_id"].as_str().unwrap()];
        let location = row["location"].as_str().unwrap();
        let l = by_file[file]["locations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["location"] == location)
            .unwrap();
        assert_eq!(
            num(&row["longest"]),
            num(&l["longest_poll_ns"]),
            "{file} {location}"
        );
    }
}

#[test]
fn overlapping_snapshots_deduplicate_on_the_event_identity() {
    let dir = corpus().to_str().unwrap();
    let rows = query_json(
        "SELECT count(*) AS rows, \
                (SELECT count(*) FROM (SELECT DISTINCT pid, process_start_ns, thread, chunk_base, \
                                       event_index FROM polls)) AS distinct_polls, \
                (SELECT max(n) FROM (SELECT count(*) AS n FROM polls GROUP BY snapshot_id)) AS largest \
         FROM polls",
        &[dir],
    );
    let rows_n = num(&rows[0]["rows"]);
    let distinct = num(&rows[0]["distinct_polls"]);
    let largest = num(&rows[0]["largest"]);
    // Periodic files every 25 ms of a 200 ms window: each poll is in several files.
    assert!(distinct < rows_n, "{distinct} distinct of {rows_n}");
    assert!(
        distinct >= largest,
        "{distinct} distinct, a file has {largest}"
    );
}
