//! Bad SQL, unknown tables, empty or missing inputs, a corrupt file among good ones, the output
//! formats, and `flight-recorder query` running this executable.

use std::process::Output;

use crate::corpus::{cli, cli_bin, corpus, num, query, query_json};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// One error line, `flight-recorder-query: …`, and nothing on standard output.
fn one_error(output: &Output, code: i32, needle: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("flight-recorder-query: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
    assert!(output.stdout.is_empty());
}

/// A few trace files of the corpus's first program (`checkout`) in a directory of their own.
fn some_files(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().contains(".p0_"))
        .collect();
    files.sort();
    for file in files.iter().take(n) {
        std::fs::copy(file, dir.path().join(file.file_name().unwrap())).unwrap();
    }
    dir
}

#[test]
fn bad_sql_is_one_error_with_status_1() {
    let dir = some_files(2);
    let output = query(&["SELEC count(*) FROM polls", dir.path().to_str().unwrap()]);
    one_error(&output, 1, "SQL error");
}

#[test]
fn an_unknown_table_or_column_is_one_error_with_status_1() {
    let dir = some_files(2);
    let output = query(&["SELECT count(*) FROM pols", dir.path().to_str().unwrap()]);
    one_error(&output, 1, "pols");
    let output = query(&["SELECT nope FROM polls", dir.path().to_str().unwrap()]);
    one_error(&output, 1, "nope");
}

#[test]
fn statements_that_write_are_refused() {
    let dir = some_files(1);
    let out = tempfile::tempdir().unwrap();
    let sql = format!("COPY (SELECT 1) TO '{}/x.csv'", out.path().display());
    let output = query(&[&sql, dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(std::fs::read_dir(out.path()).unwrap().next().is_none());
    let output = query(&["CREATE TABLE t AS SELECT 1", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
}

#[test]
fn no_input_files_is_one_error_with_status_2() {
    let empty = tempfile::tempdir().unwrap();
    let output = query(&["SELECT 1", empty.path().to_str().unwrap()]);
    one_error(&output, 2, "holds no trace files");
    let output = query(&["SELECT 1", "/nonexistent/traces"]);
    one_error(&output, 2, "/nonexistent/traces");
    let output = query(&["SELECT 1", "gs://bucket/prefix"]);
    one_error(&output, 2, "gs://bucket/prefix");
    // No input at all: a usage error from the argument parser.
    let output = query(&["SELECT 1"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_corrupt_file_is_skipped_with_a_warning_and_the_query_runs() {
    let dir = some_files(3);
    let good = query_json(
        "SELECT count(*) AS n FROM polls",
        &[dir.path().to_str().unwrap()],
    );
    let good = num(&good[0]["n"]);
    assert!(good > 0);
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    // One file torn in its middle, one that is not a trace at all.
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(
        dir.path()
            .join("executiontrace.2026-01-01T00_00_00.000.out"),
        b"junk",
    )
    .unwrap();
    let output = query(&[
        "SELECT count(*) AS n FROM polls",
        dir.path().to_str().unwrap(),
        "--format",
        "csv",
    ]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    let rows: Vec<&str> = std::str::from_utf8(&output.stdout)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(rows[0], "n");
    let after: u64 = rows[1].parse().unwrap();
    assert!(after < good && after > 0, "{after} of {good}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning:")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("2026-01-01T00_00_00.000.out")),
        "{err}"
    );
    assert!(err.contains("2 of 4 trace files skipped"), "{err}");
}

#[test]
fn formats_table_csv_and_json() {
    let dir = some_files(2);
    let d = dir.path().to_str().unwrap();
    let sql = "SELECT service, count(*) AS snapshots FROM snapshots GROUP BY service";
    let table = query(&[sql, d]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.starts_with("+--"), "{text}");
    assert!(text.contains("| service "), "{text}");
    assert!(text.contains("| 2 "), "{text}");
    let csv = query(&[sql, d, "--format", "csv"]);
    assert_eq!(
        String::from_utf8(csv.stdout).unwrap(),
        "service,snapshots\ncheckout,2\n"
    );
    let json = query_json(sql, &[d]);
    assert_eq!(
        json,
        vec![serde_json::json!({"service": "checkout", "snapshots": 2})]
    );
    // An empty result still has its header (CSV) and is an empty array (JSON).
    let sql = "SELECT service FROM snapshots WHERE false";
    let csv = query(&[sql, d, "--format", "csv"]);
    assert_eq!(String::from_utf8(csv.stdout).unwrap(), "service\n");
    assert!(query_json(sql, &[d]).is_empty());
}

#[test]
fn the_cli_runs_the_query_executable() {
    let dir = some_files(2);
    let output = cli(&[
        "query",
        "SELECT count(*) AS n FROM snapshots",
        dir.path().to_str().unwrap(),
        "--format",
        "csv",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "n\n2\n");
    // Its exit status passes through.
    let output = cli(&["query", "SELEC", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));

    // Without the executable beside it or on PATH: how to install it.
    let alone = tempfile::tempdir().unwrap();
    let copy = alone.path().join("flight-recorder");
    std::fs::copy(cli_bin(), &copy).unwrap();
    let output = std::process::Command::new(&copy)
        .args(["query", "SELECT 1", "x"])
        .env("PATH", alone.path())
        .output()
        .unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cargo install --path crates/flight-recorder-query"),
        "{err}"
    );
}
