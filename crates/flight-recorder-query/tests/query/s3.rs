//! `s3://bucket/prefix` inputs against a real S3 server, `s3s-fs` (crates.io, SigV4 checked
//! against its keys, objects stored as files): the Parquet export and the raw traces, uploaded
//! with object_store, give the same figures as the local files; wrong keys give one error.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};

use crate::corpus::{corpus, parquet_export, query_bin, query_json};

const ACCESS_KEY: &str = "flight-recorder-test";
const SECRET_KEY: &str = "flight-recorder-secret-key";
const BUCKET: &str = "traces";

/// A running s3s-fs on a free loopback port, killed when dropped.
struct S3Server {
    child: Child,
    endpoint: String,
    _root: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The s3s-fs executable: `S3S_FS`, else on PATH.
fn s3s_fs() -> PathBuf {
    if let Some(path) = std::env::var_os("S3S_FS") {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("s3s-fs"))
        .find(|p| p.is_file())
        .expect(
            "s3s-fs is missing: install it with `cargo install s3s-fs --version 0.14.1 --locked \
             --features binary` (scripts/install-test-tools.sh), or set S3S_FS",
        )
}

fn start_server() -> S3Server {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join(BUCKET)).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(s3s_fs())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "s3s-fs did not listen on {address}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    S3Server {
        child,
        endpoint: format!("http://{address}"),
        _root: root,
    }
}

/// Uploads `(local file, key)` pairs.
fn upload(server: &S3Server, files: &[(PathBuf, String)]) {
    let store = AmazonS3Builder::new()
        .with_endpoint(&server.endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(BUCKET)
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(SECRET_KEY)
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for (file, key) in files {
            let bytes = std::fs::read(file).unwrap();
            store
                .put(&ObjectPath::from(key.as_str()), PutPayload::from(bytes))
                .await
                .unwrap();
        }
    });
}

/// Every file under `dir`, with its path relative to `dir`.
fn files_under(dir: &Path, base: &Path, out: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, base, out);
        } else {
            let relative = path
                .strip_prefix(base)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            out.push((path, relative));
        }
    }
}

/// `flight-recorder-query` with the S3 settings in its environment.
fn query_s3(server: &S3Server, secret: &str, args: &[&str]) -> Output {
    let mut command = Command::new(query_bin());
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("AWS_")) {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &server.endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .output()
        .unwrap()
}

fn json_rows(output: &Output) -> Vec<serde_json::Value> {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&output.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

const FIGURES: &str = "SELECT p.service, p.polls, l.long_polls, t.wait \
    FROM (SELECT service, count(*) AS polls FROM polls GROUP BY service) p \
    JOIN (SELECT service, count(*) AS long_polls FROM long_polls GROUP BY service) l \
      ON p.service = l.service \
    JOIN (SELECT service, sum(sched_wait_ns) AS wait FROM tasks GROUP BY service) t \
      ON p.service = t.service \
    ORDER BY p.service";

#[test]
fn s3_prefixes_of_parquet_and_of_traces_give_the_same_figures() {
    let server = start_server();
    let local = query_json(FIGURES, &[corpus().to_str().unwrap()]);
    assert!(local.len() >= 3, "{local:?}");

    // The Parquet export under exports/, the traces as automatic capture uploads them.
    let export = parquet_export();
    let mut files = Vec::new();
    files_under(export, export, &mut files);
    let mut uploads: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|(path, relative)| (path, format!("exports/{relative}")))
        .collect();
    for row in query_json(
        "SELECT file_name, service, date, host FROM snapshots",
        &[corpus().to_str().unwrap()],
    ) {
        let name = row["file_name"].as_str().unwrap();
        uploads.push((
            corpus().join(name),
            format!(
                "raw/service={}/date={}/host={}/{name}",
                row["service"].as_str().unwrap(),
                row["date"].as_str().unwrap(),
                row["host"].as_str().unwrap()
            ),
        ));
    }
    upload(&server, &uploads);

    let parquet = query_s3(
        &server,
        SECRET_KEY,
        &[
            FIGURES,
            &format!("s3://{BUCKET}/exports"),
            "--format",
            "json",
        ],
    );
    assert_eq!(json_rows(&parquet), local);
    let traces = query_s3(
        &server,
        SECRET_KEY,
        &[FIGURES, &format!("s3://{BUCKET}/raw/"), "--format", "json"],
    );
    assert_eq!(json_rows(&traces), local);
    // A narrower prefix: one service.
    let one = query_s3(
        &server,
        SECRET_KEY,
        &[
            "SELECT DISTINCT service FROM snapshots",
            &format!("s3://{BUCKET}/raw/service=search"),
            "--format",
            "csv",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&one.stdout), "service\nsearch\n");

    // Wrong keys: one error line, nothing queried.
    let denied = query_s3(
        &server,
        "not-the-secret",
        &[FIGURES, &format!("s3://{BUCKET}/exports")],
    );
    let err = String::from_utf8_lossy(&denied.stderr);
    assert_eq!(denied.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("access denied"), "{err}");
    assert!(denied.stdout.is_empty());

    // An empty prefix.
    let empty = query_s3(
        &server,
        SECRET_KEY,
        &["SELECT 1", &format!("s3://{BUCKET}/nothing")],
    );
    assert_eq!(empty.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no trace files"));
}
