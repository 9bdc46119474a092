//! An independent engine: DuckDB (PyPI `duckdb`, pinned in scripts/install-test-tools.sh) over
//! the Parquet export of the corpus gives the same figures as `query` over the traces and over
//! the same Parquet files.

use std::process::Command;

use crate::corpus::{corpus, parquet_export, query_json};

/// The figures compared, each a query giving rows of text; `{polls}`, `{long_polls}`, `{tasks}`,
/// `{snapshots}` name the tables.
const QUERIES: &[&str] = &[
    "SELECT coalesce(location, 'unknown') AS k, count(*) AS n FROM {polls} GROUP BY 1",
    "SELECT service || ' ' || date AS k, count(*) AS n FROM {long_polls} GROUP BY 1",
    "SELECT 'wait' AS k, sum(sched_wait_ns) AS n FROM {tasks}",
    "SELECT 'tasks' AS k, count(*) AS n FROM {tasks}",
    "SELECT program_version AS k, count(*) AS n FROM {snapshots} GROUP BY 1",
    "SELECT 'distinct polls' AS k, count(*) AS n FROM (SELECT DISTINCT pid, process_start_ns, \
     thread, chunk_base, event_index FROM {polls}) AS d",
    "SELECT service AS k, count(*) AS n FROM {polls} WHERE duration_ns >= 10000000 GROUP BY 1",
];

const TABLES: &[&str] = &["polls", "long_polls", "tasks", "snapshots"];

/// The rows of a query as sorted `key=value` lines.
fn lines(rows: &[serde_json::Value]) -> Vec<String> {
    let mut out: Vec<String> = rows
        .iter()
        .map(|r| format!("{}={}", r["k"].as_str().unwrap_or("null"), r["n"]))
        .collect();
    out.sort();
    out
}

/// Runs the queries in DuckDB over the Parquet export; its rows as `key=value` lines.
fn duckdb(root: &std::path::Path) -> Vec<Vec<String>> {
    let mut script = String::from(
        "import duckdb, json, sys\n\
         con = duckdb.connect()\n\
         out = []\n",
    );
    for sql in QUERIES {
        let mut sql = sql.to_string();
        for table in TABLES {
            // hive_partitioning off: service, date and host are columns of the files already.
            sql = sql.replace(
                &format!("{{{table}}}"),
                &format!(
                    "read_parquet('{}/{table}/**/*.parquet', hive_partitioning = false)",
                    root.display()
                ),
            );
        }
        script.push_str(&format!(
            "out.append(sorted('%s=%s' % (k if k is not None else 'null', n) for k, n in con.execute({sql:?}).fetchall()))\n"
        ));
    }
    script.push_str("json.dump(out, sys.stdout)\n");
    let output = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        !err.contains("No module named 'duckdb'"),
        "DuckDB is missing: install it with scripts/install-test-tools.sh (pip install duckdb)"
    );
    assert!(output.status.success(), "duckdb failed: {err}");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The queries with the tables of `query`.
fn ours(input: &str) -> Vec<Vec<String>> {
    QUERIES
        .iter()
        .map(|sql| {
            let mut sql = sql.to_string();
            for table in TABLES {
                sql = sql.replace(&format!("{{{table}}}"), table);
            }
            lines(&query_json(&sql, &[input]))
        })
        .collect()
}

#[test]
fn duckdb_over_the_parquet_export_agrees_with_query() {
    let export = parquet_export();
    let traces = ours(corpus().to_str().unwrap());
    let parquet = ours(export.to_str().unwrap());
    let duck = duckdb(export);
    for (i, sql) in QUERIES.iter().enumerate() {
        assert!(!traces[i].is_empty(), "{sql}");
        assert_eq!(traces[i], parquet[i], "traces and Parquet differ: {sql}");
        assert_eq!(traces[i], duck[i], "query and DuckDB differ: {sql}");
    }
}
