//! Uploads to S3-compatible object storage (cargo feature `upload`), against a real S3 server,
//! s3s-fs, which checks SigV4 signatures against the key given on its command line and stores
//! objects as files under its root (`<root>/<bucket>/<key>`). The test starts it on a free
//! loopback port (so that it can stop and restart it), and runs a real child process (this test
//! binary again, [`upload_child`]) with capture, periodic dumps and uploads configured through
//! the environment.
//!
//! s3s-fs must be installed: `cargo install s3s-fs --version 0.14.1 --locked --features binary`
//! (`scripts/install-test-tools.sh` does it). Without it these tests fail, saying so.
#![cfg(feature = "upload")]

mod capture_common;
mod common;

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use capture_common::{dumps, read, wait_until};
use flight_recorder::capture::{self, upload_marker, CaptureSettings, UploadSettings};

const ACCESS_KEY: &str = "FRTESTACCESSKEY";
const SECRET_KEY: &str = "fr-test-secret-key-0123456789";
const BUCKET: &str = "traces";
const PREFIX: &str = "fr-test/eu";

/// The s3s-fs binary: on `PATH`, else in cargo's bin directory; the test fails without it.
fn s3s_fs() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("s3s-fs"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        candidates.push(PathBuf::from(home).join("bin/s3s-fs"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/s3s-fs"));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "s3s-fs, the S3 server these tests upload to, is not installed; install it with \
             `cargo install s3s-fs --version 0.14.1 --locked --features binary` (or run \
             scripts/install-test-tools.sh)"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running s3s-fs, killed when dropped.
struct Server {
    child: Option<Child>,
    root: PathBuf,
    port: u16,
}

impl Server {
    /// Starts s3s-fs on `port` with objects under `root`, where the bucket is a directory.
    fn start(root: &Path, port: u16) -> Server {
        std::fs::create_dir_all(root.join(BUCKET)).unwrap();
        let mut server = Server {
            child: None,
            root: root.to_path_buf(),
            port,
        };
        server.restart();
        server
    }

    fn restart(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(s3s_fs())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&self.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        self.child = Some(child);
        let port = self.port;
        assert!(
            wait_until(Duration::from_secs(20), || {
                TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
            }),
            "s3s-fs does not listen on port {port}"
        );
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The object stored under `key`, if any.
    fn object(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.root.join(BUCKET).join(key)).ok()
    }

    /// Every object's key under the bucket (s3s-fs's own hidden files left out).
    fn keys(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, keys: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                if path.is_dir() {
                    walk(&path, base, keys);
                } else {
                    let key = path.strip_prefix(base).unwrap();
                    keys.push(key.to_string_lossy().into_owned());
                }
            }
        }
        let mut keys = Vec::new();
        let bucket = self.root.join(BUCKET);
        walk(&bucket, &bucket, &mut keys);
        keys.sort();
        keys
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The body of the child process; does nothing in a normal run. It records with capture from
/// the environment until the file `FR_UPLOAD_STOP` appears, then stops capture and prints its
/// status.
#[test]
fn upload_child() {
    let Some(stop_file) = std::env::var_os("FR_UPLOAD_STOP") else {
        return;
    };
    let running = flight_recorder::capture_from_env!();
    println!("capture running: {running}");
    let mut i = 0u64;
    while !Path::new(&stop_file).exists() {
        let _region = flight_recorder::region("upload_child_work");
        flight_recorder::log("upload_child", &format!("step {i}"));
        i += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    let status = capture::status();
    let stopping = Instant::now();
    capture::stop();
    let upload = status.upload.unwrap_or_default();
    println!(
        "status: files_written={} uploaded={} failed_attempts={} deleted_before_upload={} \
         stop_ms={}",
        status.files_written,
        upload.uploaded,
        upload.failed_attempts,
        upload.deleted_before_upload,
        stopping.elapsed().as_millis()
    );
}

/// A child process running [`upload_child`].
struct Program {
    child: Child,
    stop_file: PathBuf,
}

impl Program {
    fn start(dump_dir: &Path, vars: &[(&str, String)]) -> Program {
        let stop_file = dump_dir.with_extension("stop");
        let _ = std::fs::remove_file(&stop_file);
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["upload_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("FR_UPLOAD_STOP", &stop_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in capture::ENV_VARS {
            command.env_remove(name);
        }
        for (name, _) in std::env::vars() {
            if name.starts_with("AWS_") {
                command.env_remove(name);
            }
        }
        let defaults = [
            ("FLIGHT_RECORDER_DUMP_DIR", dump_dir.display().to_string()),
            ("FLIGHT_RECORDER_INTERVAL", "300ms".into()),
            ("FLIGHT_RECORDER_DURATION", "1s".into()),
            ("FLIGHT_RECORDER_SIGNAL", "off".into()),
            ("FLIGHT_RECORDER_PANIC", "off".into()),
            ("FLIGHT_RECORDER_RING", "off".into()),
            ("FLIGHT_RECORDER_SERVICE", "checkout api/v2".into()),
            ("FLIGHT_RECORDER_UPLOAD", format!("s3://{BUCKET}/{PREFIX}")),
            ("FLIGHT_RECORDER_UPLOAD_MAX_BACKOFF", "1s".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ];
        for (name, value) in defaults.iter().chain(vars) {
            command.env(name, value);
        }
        Program {
            child: command.spawn().expect("the child starts"),
            stop_file,
        }
    }

    /// Asks the child to stop and returns its standard output and error.
    fn stop(mut self) -> (String, String) {
        std::fs::write(&self.stop_file, b"").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the child does not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = self.child.wait().unwrap();
        let (stdout, stderr) = self.output();
        assert!(status.success(), "{stdout}\n{stderr}");
        (stdout, stderr)
    }

    /// Kills the child (`SIGKILL`) and returns its standard error.
    fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.output().1
    }

    fn output(&mut self) -> (String, String) {
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        (stdout, stderr)
    }
}

/// The key a dump file is uploaded under, as documented: the service and host from its header,
/// the date from its name.
fn expected_key(path: &Path) -> String {
    let name = path.file_name().unwrap().to_str().unwrap();
    let trace = read(path);
    let header = trace.reader.header();
    let date = &name["executiontrace.".len().."executiontrace.2026-11-28".len()];
    let clean = |part: &str| -> String {
        part.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || ".-_=".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    assert_eq!(header.service_name(), "checkout api/v2");
    format!(
        "{PREFIX}/service={}/date={date}/host={}/{name}",
        clean(header.service_name()),
        clean(&header.host)
    )
}

/// Whether every dump file of `dir` has its marker.
fn all_uploaded(dir: &Path) -> bool {
    let files = dumps(dir);
    !files.is_empty() && files.iter().all(|f| upload_marker(f).exists())
}

fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("flight-recorder: uploading to"))
        .collect()
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn dumps_are_uploaded_under_the_documented_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("s3"), free_port());
    let dump_dir = dir.path().join("dumps");
    let program = Program::start(&dump_dir, &[("AWS_ENDPOINT_URL", server.endpoint())]);
    assert!(
        wait_until(Duration::from_secs(30), || dumps(&dump_dir).len() >= 4
            && all_uploaded(&dump_dir)),
        "{:?}",
        capture_common::entries(&dump_dir)
    );
    let (stdout, stderr) = program.stop();
    // Files written during the stop are uploaded before it ends (or by the next start).
    let files = dumps(&dump_dir);
    let uploaded: Vec<&PathBuf> = files.iter().filter(|f| upload_marker(f).exists()).collect();
    assert!(uploaded.len() >= 4, "{stdout}\n{stderr}");
    for file in &files {
        if upload_marker(file).exists() {
            let key = expected_key(file);
            assert_eq!(server.object(&key).unwrap(), std::fs::read(file).unwrap());
        }
    }
    assert_eq!(
        server.keys().len(),
        uploaded.len(),
        "one object per file: {:?}",
        server.keys()
    );
    let key = expected_key(&files[0]);
    // The service from the header, its space and slash cleaned out of the key.
    assert!(
        key.starts_with("fr-test/eu/service=checkout_api_v2/")
            && key.contains("/date=20")
            && key.contains("/host="),
        "{key}"
    );
    // The start-up line says where files go, without credentials.
    let startup = stderr
        .lines()
        .find(|l| l.starts_with("flight-recorder: recording"))
        .unwrap_or_else(|| panic!("no start-up line: {stderr}"));
    assert!(
        startup.contains(&format!(
            "uploads to s3://{BUCKET}/{PREFIX} at {}",
            server.endpoint()
        )),
        "{startup}"
    );
    assert!(
        !stderr.contains(SECRET_KEY) && !stderr.contains(ACCESS_KEY),
        "{stderr}"
    );
    assert!(error_lines(&stderr).is_empty(), "{stderr}");
    // How long from a file written to its upload remembered, on loopback.
    let mut delays: Vec<Duration> = uploaded
        .iter()
        .map(|f| {
            modified(&upload_marker(f))
                .duration_since(modified(f))
                .unwrap_or_default()
        })
        .collect();
    delays.sort();
    println!(
        "written → uploaded: median {:?}, max {:?} ({} files of {} KiB on average)",
        delays[delays.len() / 2],
        delays[delays.len() - 1],
        delays.len(),
        uploaded
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum::<u64>()
            / uploaded.len() as u64
            / 1024
    );
}

#[test]
fn an_outage_and_restarts_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("s3"), free_port());
    let dump_dir = dir.path().join("dumps");
    let vars = [("AWS_ENDPOINT_URL", server.endpoint())];
    let program = Program::start(&dump_dir, &vars);
    assert!(wait_until(Duration::from_secs(30), || dumps(&dump_dir)
        .len()
        >= 2
        && all_uploaded(&dump_dir)));
    server.stop();
    let before = dumps(&dump_dir).len();
    // Long enough for a few tries (the backoff is at most 1 s here): the error is printed once
    // it is seen twice in a row.
    std::thread::sleep(Duration::from_secs(3));
    // Files written while the server is down wait on disk.
    assert!(wait_until(Duration::from_secs(30), || {
        dumps(&dump_dir)
            .iter()
            .filter(|f| !upload_marker(f).exists())
            .count()
            >= 4
    }));
    assert!(dumps(&dump_dir).len() >= before + 3);
    // The program dies while the server is down.
    let stderr = program.kill();
    let lines = error_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("the server cannot be reached"),
        "{}",
        lines[0]
    );
    let pending = dumps(&dump_dir)
        .iter()
        .filter(|f| !upload_marker(f).exists())
        .count();
    assert!(pending >= 4);
    // Both come back: the new process finds the files left and uploads them.
    server.restart();
    let program = Program::start(&dump_dir, &vars);
    assert!(
        wait_until(Duration::from_secs(60), || all_uploaded(&dump_dir)),
        "{:?}",
        capture_common::entries(&dump_dir)
    );
    let (_, stderr) = program.stop();
    assert!(error_lines(&stderr).is_empty(), "{stderr}");
    check_uploaded_or_written_at_stop(&dump_dir, &server);
}

/// [`check_uploaded`], allowing the files written while the child stopped to be left for the
/// next start.
fn check_uploaded_or_written_at_stop(dir: &Path, server: &Server) {
    let files = dumps(dir);
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !upload_marker(f).exists())
        .collect();
    assert!(missing.len() <= 1, "not uploaded: {missing:?}");
    for file in files.iter().filter(|f| upload_marker(f).exists()) {
        let key = expected_key(file);
        assert_eq!(
            server.object(&key).as_deref(),
            Some(std::fs::read(file).unwrap().as_slice()),
            "{key}"
        );
    }
}

#[test]
fn an_outage_in_one_process_is_caught_up_when_the_server_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("s3"), free_port());
    let dump_dir = dir.path().join("dumps");
    let program = Program::start(&dump_dir, &[("AWS_ENDPOINT_URL", server.endpoint())]);
    assert!(wait_until(Duration::from_secs(30), || all_uploaded(
        &dump_dir
    )));
    server.stop();
    std::thread::sleep(Duration::from_secs(3));
    assert!(wait_until(Duration::from_secs(30), || {
        dumps(&dump_dir)
            .iter()
            .filter(|f| !upload_marker(f).exists())
            .count()
            >= 3
    }));
    server.restart();
    assert!(wait_until(Duration::from_secs(30), || {
        let files = dumps(&dump_dir);
        // All but possibly the file being written now.
        files
            .iter()
            .rev()
            .skip(1)
            .all(|f| upload_marker(f).exists())
    }));
    let (_, stderr) = program.stop();
    assert_eq!(error_lines(&stderr).len(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "flight-recorder: uploads to s3://{BUCKET}/{PREFIX} at {} work again",
            server.endpoint()
        )),
        "{stderr}"
    );
    check_uploaded_or_written_at_stop(&dump_dir, &server);
}

#[test]
fn a_wrong_credential_is_one_clear_line_and_recording_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("s3"), free_port());
    let dump_dir = dir.path().join("dumps");
    let program = Program::start(
        &dump_dir,
        &[
            ("AWS_ENDPOINT_URL", server.endpoint()),
            ("AWS_SECRET_ACCESS_KEY", "not-the-secret".into()),
        ],
    );
    // Several tries (the backoff is at most 1 s here) and several files.
    assert!(wait_until(Duration::from_secs(30), || dumps(&dump_dir)
        .len()
        >= 8));
    std::thread::sleep(Duration::from_secs(3));
    let (stdout, stderr) = program.stop();
    let lines = error_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    let line = lines[0];
    println!("{line}");
    assert!(
        line.contains(&format!("s3://{BUCKET}/{PREFIX}"))
            && line.contains("the server refused the credentials")
            && line.contains("403"),
        "{line}"
    );
    assert!(
        !line.contains("not-the-secret") && !line.contains(SECRET_KEY),
        "{line}"
    );
    let failed: u64 = stdout
        .split("failed_attempts=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(failed >= 3, "{stdout}");
    // Stopping while uploads fail does not wait for them: capture stops within its bounded wait.
    let stop_ms: u64 = stdout
        .split("stop_ms=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(stop_ms < 6000, "{stdout}");
    println!("capture stopped in {stop_ms} ms while uploads failed");
    assert!(stdout.contains("uploaded=0"), "{stdout}");
    // Recording went on: the files are there, readable, and none is marked uploaded.
    let files = dumps(&dump_dir);
    assert!(files.len() >= 8);
    assert!(files.iter().all(|f| !upload_marker(f).exists()));
    let _ = read(files.last().unwrap());
    assert!(server.keys().is_empty());
}

fn total_size(dir: &Path) -> u64 {
    capture::list_dumps(dir)
        .unwrap()
        .iter()
        .map(|f| f.size)
        .sum()
}

#[test]
fn the_budget_keeps_files_not_uploaded_until_the_margin_is_passed() {
    let dir = tempfile::tempdir().unwrap();
    // No server on this port until later: nothing can be uploaded.
    let port = free_port();
    let dump_dir = dir.path().join("dumps");
    // How big a file is, from a first run without a limit.
    let sizing_dir = dir.path().join("sizing");
    let program = Program::start(
        &sizing_dir,
        &[("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))],
    );
    assert!(wait_until(Duration::from_secs(30), || dumps(&sizing_dir)
        .len()
        >= 4));
    program.stop();
    let size = capture::list_dumps(&sizing_dir).unwrap()[2].size;
    let limit = size * 3;
    let hard_limit = limit * 2; // a margin of 100%
    let program = Program::start(
        &dump_dir,
        &[
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
            ("FLIGHT_RECORDER_TOTAL_DUMP_SIZE_LIMIT", limit.to_string()),
            ("FLIGHT_RECORDER_UPLOAD_MARGIN", "100%".into()),
        ],
    );
    // Past the limit the files not uploaded stay …
    assert!(wait_until(Duration::from_secs(30), || total_size(
        &dump_dir
    ) > limit + size / 2));
    let count_past_limit = dumps(&dump_dir).len();
    assert!(count_past_limit >= 4, "{count_past_limit}");
    // … until the margin is passed: then the oldest go, and the total stays about the hard
    // limit (the newest file is always kept).
    let first = dumps(&dump_dir)[0].clone();
    assert!(wait_until(Duration::from_secs(30), || !first.exists()));
    for _ in 0..5 {
        assert!(total_size(&dump_dir) <= hard_limit + size * 2);
        std::thread::sleep(Duration::from_millis(300));
    }
    // The server comes up: the files left are uploaded, and the budget falls back to the limit.
    let mut server = Server::start(&dir.path().join("s3"), port);
    assert!(wait_until(Duration::from_secs(30), || {
        total_size(&dump_dir) <= limit + size * 2
            && dumps(&dump_dir)
                .iter()
                .rev()
                .skip(1)
                .all(|f| upload_marker(f).exists())
    }));
    let (stdout, stderr) = program.stop();
    server.stop();
    let deleted: u64 = stdout
        .split("deleted_before_upload=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(deleted >= 1, "{stdout}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("not yet uploaded"))
        .collect();
    assert!(!lines.is_empty(), "{stderr}");
    assert!(
        lines[0].contains("passed the limit") && lines[0].contains("margin (100%)"),
        "{}",
        lines[0]
    );
    // No marker is left without its file.
    for entry in capture_common::entries(&dump_dir) {
        if let Some(dump) = entry
            .strip_prefix('.')
            .and_then(|e| e.strip_suffix(".uploaded"))
        {
            assert!(dump_dir.join(dump).exists(), "orphan marker {entry}");
        }
    }
}

#[test]
fn markers_are_not_dump_files() {
    let dir = tempfile::tempdir().unwrap();
    let name = "executiontrace.2026-01-01T00_00_01.000.out";
    std::fs::write(dir.path().join(name), [0u8; 10]).unwrap();
    std::fs::write(upload_marker(&dir.path().join(name)), b"key\n").unwrap();
    let listed = capture::list_dumps(dir.path()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, 10);
    // Garbage collection deletes the marker with its file.
    let newer = "executiontrace.2026-01-01T00_00_02.000.out";
    std::fs::write(dir.path().join(newer), [0u8; 10]).unwrap();
    let report = capture::collect_garbage(dir.path(), 15).unwrap();
    assert_eq!(report.deleted.len(), 1);
    assert_eq!(capture_common::entries(dir.path()), vec![newer.to_string()]);
}

#[test]
fn settings_debug_shows_no_credential() {
    let upload = UploadSettings {
        endpoint: Some("http://127.0.0.1:1".into()),
        region: Some("eu-west-3".into()),
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
        session_token: Some("session-token-xyz".into()),
        ..UploadSettings::new(BUCKET, PREFIX)
    };
    let settings = CaptureSettings {
        upload: Some(upload),
        ..CaptureSettings::default()
    };
    for debug in [format!("{settings:?}"), format!("{settings:#?}")] {
        for secret in [ACCESS_KEY, SECRET_KEY, "session-token-xyz"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("<redacted>"), "{debug}");
    }
    let config = capture::config_from_vars(|name| match name {
        "FLIGHT_RECORDER_UPLOAD" => Some(format!("s3://{BUCKET}/{PREFIX}")),
        "AWS_SECRET_ACCESS_KEY" => Some(SECRET_KEY.into()),
        "AWS_ACCESS_KEY_ID" => Some(ACCESS_KEY.into()),
        _ => None,
    });
    assert!(config.problems.is_empty(), "{:?}", config.problems);
    let upload = config.settings.upload.as_ref().unwrap();
    assert_eq!(upload.secret_access_key.as_deref(), Some(SECRET_KEY));
    assert!(!format!("{config:?}").contains(SECRET_KEY));
}

/// The HTTP endpoint's settings and dump listing show no endpoint, bucket, region or
/// credential; the listing shows the upload counters.
#[cfg(feature = "http")]
#[test]
fn http_shows_counters_but_no_destination_or_credential() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("s3"), free_port());
    let endpoint = server.endpoint();
    let mut settings = capture_common::settings(&dir.path().join("dumps"));
    settings.upload = Some(UploadSettings {
        endpoint: Some(endpoint.clone()),
        region: Some("eu-west-3".into()),
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
        allow_http: true,
        ..UploadSettings::new("secretbucketname", "hidden-prefix")
    });
    let _running = capture_common::start(settings);
    capture::dump_now("test", "http").unwrap();
    assert!(wait_until(Duration::from_secs(20), || {
        capture::status().upload.is_some_and(|u| u.uploaded >= 1)
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = flight_recorder::http::serve(
            flight_recorder::http::HttpConfig::default(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let get = |path: &'static str| {
            let addr = http.local_addr();
            async move {
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                let request = format!(
                    "GET /debug/flight-recorder{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: \
                     close\r\n\r\n"
                );
                stream.write_all(request.as_bytes()).await.unwrap();
                let mut response = String::new();
                stream.read_to_string(&mut response).await.unwrap();
                response
            }
        };
        for path in ["/settings", "/dumps"] {
            let response = get(path).await;
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
            for hidden in [
                endpoint.as_str(),
                "127.0.0.1:",
                "secretbucketname",
                "hidden-prefix",
                "eu-west-3",
                ACCESS_KEY,
                SECRET_KEY,
            ] {
                assert!(
                    !response.contains(hidden),
                    "{path} shows {hidden}: {response}"
                );
            }
            if path == "/dumps" {
                let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
                let json: serde_json::Value = serde_json::from_str(body).unwrap();
                assert!(json["upload"]["uploaded"].as_u64().unwrap() >= 1, "{json}");
                assert_eq!(json["upload"]["deleted_before_upload"], 0, "{json}");
                assert_eq!(json["files"][0]["uploaded"], true, "{json}");
                // The marker beside the file is not listed.
                assert_eq!(json["files"].as_array().unwrap().len(), 1, "{json}");
            }
        }
        http.shutdown().await.unwrap();
    });
}

/// A file over 32 MiB goes in parts (multipart upload); a file left in the directory before the
/// program starts is found by the rescan at start; a file whose header cannot be read is named
/// after this process's service and host.
#[test]
fn a_large_file_left_from_before_goes_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("s3"), free_port());
    let dump_dir = dir.path().join("dumps");
    std::fs::create_dir_all(&dump_dir).unwrap();
    let name = "executiontrace.2026-01-02T03_04_05.678.big.out";
    let big = dump_dir.join(name);
    let bytes: Vec<u8> = (0..40u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(&big, &bytes).unwrap();
    let started = Instant::now();
    let program = Program::start(&dump_dir, &[("AWS_ENDPOINT_URL", server.endpoint())]);
    assert!(wait_until(Duration::from_secs(60), || upload_marker(&big).exists()));
    println!(
        "40 MiB in parts: uploaded {:?} after the program started",
        started.elapsed()
    );
    program.stop();
    let key = std::fs::read_to_string(upload_marker(&big)).unwrap();
    let key = key.trim();
    assert!(
        key.starts_with("fr-test/eu/service=checkout_api_v2/date=2026-01-02/host=")
            && key.ends_with(&format!("/{name}")),
        "{key}"
    );
    assert!(server.object(key).unwrap() == bytes, "{key} differs");
}

/// A server that accepts connections and never answers: uploads hang, recording goes on, and
/// stopping capture waits at most its bounded wait (5 s) for the upload in flight.
#[test]
fn a_server_that_never_answers_does_not_hold_up_the_program() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(100) {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let dump_dir = dir.path().join("dumps");
    let program = Program::start(
        &dump_dir,
        &[("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))],
    );
    assert!(wait_until(Duration::from_secs(30), || dumps(&dump_dir)
        .len()
        >= 6));
    let (stdout, _) = program.stop();
    let stop_ms: u64 = stdout
        .split("stop_ms=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!((4000..7000).contains(&stop_ms), "{stdout}");
    assert!(stdout.contains("uploaded=0"), "{stdout}");
    println!("capture stopped in {stop_ms} ms with an upload hanging");
}

/// A queue of one file, full while the server is down: the files written meanwhile wait on disk
/// (the writer never waits for the queue), and the rescan after the queue drains finds them all.
#[test]
fn files_that_find_the_queue_full_are_found_by_the_rescan() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let dump_dir = dir.path().join("dumps");
    let mut settings = capture_common::settings(&dump_dir);
    settings.upload = Some(UploadSettings {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
        allow_http: true,
        queue_capacity: 1,
        max_backoff: Duration::from_millis(500),
        ..UploadSettings::new(BUCKET, PREFIX)
    });
    let _running = capture_common::start(settings);
    let mut slowest = Duration::ZERO;
    for i in 0..6 {
        flight_recorder::log("queue_test", &format!("dump {i}"));
        let started = Instant::now();
        capture::dump_now("queue test", "queue").unwrap();
        slowest = slowest.max(started.elapsed());
    }
    assert_eq!(dumps(&dump_dir).len(), 6);
    let status = capture::status().upload.unwrap();
    assert!(status.queued <= 1, "{status:?}");
    assert_eq!(status.uploaded, 0);
    println!("dump_now with the upload queue full: slowest {slowest:?}");
    let server = Server::start(&dir.path().join("s3"), port);
    assert!(
        wait_until(Duration::from_secs(30), || all_uploaded(&dump_dir)),
        "{:?}",
        capture::status()
    );
    assert_eq!(capture::status().upload.unwrap().uploaded, 6);
    assert_eq!(server.keys().len(), 6);
}
