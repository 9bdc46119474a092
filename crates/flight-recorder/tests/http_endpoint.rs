//! The HTTP admin endpoint, with a real server on an ephemeral loopback port and a real HTTP
//! client (hyper's).
#![cfg(feature = "http")]

mod capture_common;
mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use capture_common::{settings, start, Running};
use common::{read_trace, serial};
use flight_recorder::capture::{self, CaptureSettings};
use flight_recorder::http::{self, HttpConfig, HttpServer};
use flight_recorder::{ErrorKind, FlightRecorder, FlightRecorderConfig};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

const BASE: &str = "/debug/flight-recorder";

/// A response, read whole.
struct Reply {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        assert_eq!(
            self.headers
                .get("content-type")
                .map(|v| v.to_str().unwrap()),
            Some("application/json"),
            "not JSON: {} {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// A JSON error with this status, its message checked to be there.
    fn expect_error(&self, status: StatusCode) -> Value {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
        assert_eq!(body["status"], status.as_u16(), "{body}");
        body
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// Sends one request on a new connection; `path` goes on the wire as it is.
async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("whole body")
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, Method::GET, path, None, None).await
}

async fn put_json(addr: SocketAddr, path: &str, body: Value) -> Reply {
    send(
        addr,
        Method::PUT,
        path,
        None,
        Some(serde_json::to_vec(&body).unwrap()),
    )
    .await
}

/// Runs an async test on its own runtime, one test at a time (the recorder is process-wide).
fn run(test: impl std::future::Future<Output = ()>) {
    let _serial = serial();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(test);
}

async fn server(config: HttpConfig) -> HttpServer {
    http::serve(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("the server starts")
}

/// Capture with files in `dir` (no rate limit unless `min_dump_interval` says so).
fn capture_in(dir: &Path, change: impl FnOnce(&mut CaptureSettings)) -> Running {
    let mut s = settings(dir);
    change(&mut s);
    start(s)
}

fn some_events(label: &str) {
    for i in 0..50 {
        let _region = flight_recorder::region("http_test_region");
        flight_recorder::log("http_test", &format!("{label} {i}"));
    }
}

/// Whether a trace's logs hold `text`.
fn logs_contain(bytes: Vec<u8>, text: &str) -> bool {
    let trace = read_trace(bytes);
    trace
        .events
        .iter()
        .any(|e| trace.describe(e).contains(text))
}

#[test]
fn the_index_page_links_every_endpoint() {
    run(async {
        let server = server(HttpConfig::default()).await;
        for path in [BASE.to_string(), format!("{BASE}/")] {
            let reply = get(server.local_addr(), &path).await;
            assert_eq!(reply.status, StatusCode::OK);
            assert!(reply
                .header("content-type")
                .unwrap()
                .starts_with("text/html"));
            let html = String::from_utf8(reply.body).unwrap();
            for link in [
                "/snapshot",
                "/trace?seconds=",
                "/dumps",
                "/settings",
                "/dump",
            ] {
                assert!(html.contains(&format!("{BASE}{link}")), "{link} missing");
            }
        }
        // Unknown paths under the base are clear JSON errors.
        get(server.local_addr(), &format!("{BASE}/nope"))
            .await
            .expect_error(StatusCode::NOT_FOUND);
        server.shutdown().await.unwrap();
    });
}

#[test]
fn a_snapshot_downloads_a_readable_trace_of_the_window() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let _capture = capture_in(dir.path(), |s| s.program_version = "http-test 1.0".into());
        some_events("before the snapshot");
        let server = server(HttpConfig::default()).await;
        let reply = get(server.local_addr(), &format!("{BASE}/snapshot")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.header("content-type"),
            Some("application/octet-stream")
        );
        let disposition = reply.header("content-disposition").unwrap();
        assert!(
            disposition.starts_with("attachment; filename=\"executiontrace.")
                && disposition.ends_with(".http.out\""),
            "{disposition}"
        );
        let trace = read_trace(reply.body.clone());
        assert!(!trace.events.is_empty());
        let header = trace.reader.header();
        assert_eq!(header.mode, "flight-recorder");
        assert_eq!(header.reason, "http");
        assert_eq!(header.program_version, "http-test 1.0");
        assert!(logs_contain(reply.body, "before the snapshot 49"));
        // Nothing was written to the dump directory.
        assert!(capture::list_dumps(dir.path()).unwrap().is_empty());
        server.shutdown().await.unwrap();
    });
}

#[test]
fn a_snapshot_converts_to_perfetto_on_the_way_out() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let _capture = capture_in(dir.path(), |_| {});
        some_events("perfetto marker");
        let server = server(HttpConfig::default()).await;
        let reply = get(
            server.local_addr(),
            &format!("{BASE}/snapshot?format=perfetto"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply
            .header("content-disposition")
            .unwrap()
            .ends_with(".http.pftrace\""));
        // A protobuf `Trace`: a sequence of `packet` fields (field 1, length-delimited).
        assert!(reply.body.len() > 100);
        assert_eq!(reply.body[0], 0x0a);
        let text = String::from_utf8_lossy(&reply.body);
        assert!(text.contains("perfetto marker 49"), "our log is in it");
        let bad = get(server.local_addr(), &format!("{BASE}/snapshot?format=pdf")).await;
        bad.expect_error(StatusCode::BAD_REQUEST);
        let unknown = get(
            server.local_addr(),
            &format!("{BASE}/snapshot?formats=perfetto"),
        )
        .await;
        unknown.expect_error(StatusCode::BAD_REQUEST);
        server.shutdown().await.unwrap();
    });
}

#[test]
fn a_snapshot_comes_from_the_recorder_given_in_the_config() {
    run(async {
        capture::stop();
        let recorder = Arc::new(FlightRecorder::new(FlightRecorderConfig::default()));
        recorder.start().unwrap();
        some_events("own recorder");
        let server = server(HttpConfig {
            recorder: Some(recorder.clone()),
            ..HttpConfig::default()
        })
        .await;
        let reply = get(server.local_addr(), &format!("{BASE}/snapshot")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(logs_contain(reply.body, "own recorder 49"));
        // Stopped: a clear 503.
        recorder.stop();
        let reply = get(server.local_addr(), &format!("{BASE}/snapshot")).await;
        let body = reply.expect_error(StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body["error"].as_str().unwrap().contains("not running"),
            "{body}"
        );
        server.shutdown().await.unwrap();
    });
}

#[test]
fn with_nothing_recording_every_endpoint_says_503() {
    run(async {
        capture::stop();
        let server = server(HttpConfig::default()).await;
        let addr = server.local_addr();
        for path in [
            "/snapshot",
            "/snapshot?format=perfetto",
            "/dumps",
            "/settings",
        ] {
            let reply = get(addr, &format!("{BASE}{path}")).await;
            let body = reply.expect_error(StatusCode::SERVICE_UNAVAILABLE);
            assert!(
                body["error"].as_str().unwrap().contains("not running"),
                "{path}: {body}"
            );
        }
        send(addr, Method::POST, &format!("{BASE}/dump"), None, None)
            .await
            .expect_error(StatusCode::SERVICE_UNAVAILABLE);
        put_json(addr, &format!("{BASE}/settings"), json!({"interval": "1m"}))
            .await
            .expect_error(StatusCode::SERVICE_UNAVAILABLE);
        // Listing a dump directory given in the config works without capture.
        let dir = tempfile::tempdir().unwrap();
        let listed = server_with_dir(dir.path()).await;
        let reply = get(listed.local_addr(), &format!("{BASE}/dumps")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["files"], json!([]));
        listed.shutdown().await.unwrap();
        server.shutdown().await.unwrap();
    });
}

async fn server_with_dir(dir: &Path) -> HttpServer {
    server(HttpConfig {
        dump_dir: Some(dir.to_path_buf()),
        ..HttpConfig::default()
    })
    .await
}

#[test]
fn a_timed_trace_streams_the_next_seconds() {
    run(async {
        let server = server(HttpConfig::default()).await;
        let addr = server.local_addr();
        let logger = std::thread::spawn(|| {
            for i in 0..20 {
                flight_recorder::log("http_test", &format!("during the trace {i}"));
                std::thread::sleep(Duration::from_millis(25));
            }
        });
        let started = std::time::Instant::now();
        let reply = get(addr, &format!("{BASE}/trace?seconds=1")).await;
        logger.join().unwrap();
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(started.elapsed() >= Duration::from_millis(950));
        assert_eq!(reply.header("x-flight-recorder-seconds"), Some("1"));
        let trace = read_trace(reply.body.clone());
        assert_eq!(trace.reader.header().mode, "trace");
        assert!(logs_contain(reply.body, "during the trace"));
        server.shutdown().await.unwrap();
    });
}

#[test]
fn trace_seconds_out_of_range_is_400() {
    run(async {
        let server = server(HttpConfig {
            max_trace_seconds: 5,
            ..HttpConfig::default()
        })
        .await;
        for seconds in [
            "0",
            "6",
            "61",
            "-1",
            "1.5",
            "abc",
            "",
            "99999999999999999999999",
        ] {
            let reply = get(
                server.local_addr(),
                &format!("{BASE}/trace?seconds={seconds}"),
            )
            .await;
            let body = reply.expect_error(StatusCode::BAD_REQUEST);
            assert_eq!(body["max_seconds"], 5, "{seconds}: {body}");
        }
        get(server.local_addr(), &format!("{BASE}/trace?second=1"))
            .await
            .expect_error(StatusCode::BAD_REQUEST);
        let long = format!("{BASE}/trace?seconds={}", "1".repeat(2000));
        get(server.local_addr(), &long)
            .await
            .expect_error(StatusCode::BAD_REQUEST);
        server.shutdown().await.unwrap();
    });
}

#[test]
fn a_second_trace_while_one_runs_is_409() {
    run(async {
        let server = server(HttpConfig::default()).await;
        let addr = server.local_addr();
        // The first one's status line arrives once its trace runs; its body is read later.
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let request = Request::get(format!("{BASE}/trace?seconds=2"))
            .header("host", addr.to_string())
            .body(Full::new(Bytes::new()))
            .unwrap();
        let first = sender.send_request(request).await.unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        let second = get(addr, &format!("{BASE}/trace?seconds=1")).await;
        let body = second.expect_error(StatusCode::CONFLICT);
        assert!(body["error"].as_str().unwrap().contains("already running"));
        let retry: u64 = second.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry), "{retry}");
        let first = first.into_body().collect().await.unwrap().to_bytes();
        read_trace(first.to_vec());
        // Once it ended, a trace can run again.
        let third = get(addr, &format!("{BASE}/trace?seconds=1")).await;
        assert_eq!(third.status, StatusCode::OK);
        read_trace(third.body);
        server.shutdown().await.unwrap();
    });
}

#[test]
fn dumps_are_triggered_listed_and_downloaded() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let _capture = capture_in(dir.path(), |s| {
            s.min_dump_interval = Duration::from_secs(60)
        });
        some_events("dump content");
        let server = server(HttpConfig::default()).await;
        let addr = server.local_addr();
        let body = serde_json::to_vec(&json!({"reason": "operator asked", "tag": "ops"})).unwrap();
        let reply = send(
            addr,
            Method::POST,
            &format!("{BASE}/dump"),
            None,
            Some(body),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let written = reply.json();
        let name = written["name"].as_str().unwrap().to_string();
        assert!(
            name.starts_with("executiontrace.") && name.ends_with(".ops.out"),
            "{name}"
        );
        assert_eq!(
            reply.header("location"),
            Some(format!("{BASE}/dumps/{name}").as_str())
        );
        // The rate limit applies: the next one is refused with the reason.
        let again = send(addr, Method::POST, &format!("{BASE}/dump"), None, None).await;
        let refused = again.expect_error(StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused["outcome"], "rate_limited", "{refused}");
        assert!(refused["error"].as_str().unwrap().contains("rate limited"));
        let retry: u64 = again.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");

        // A file of another tool, and a periodic-looking one written by hand.
        std::fs::write(dir.path().join("notes.txt"), "not a trace").unwrap();
        let listing = get(addr, &format!("{BASE}/dumps")).await;
        assert_eq!(listing.status, StatusCode::OK);
        let listing = listing.json();
        let files = listing["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{listing}");
        let file = &files[0];
        assert_eq!(file["name"], name.as_str());
        assert_eq!(file["reason"], "operator asked");
        assert_eq!(file["tag"], "ops");
        let on_disk = std::fs::read(dir.path().join(&name)).unwrap();
        assert_eq!(file["size"], on_disk.len() as u64);
        let time = file["time"].as_str().unwrap();
        assert!(time.ends_with('Z') && time.contains(':'), "{time}");

        let download = get(addr, &format!("{BASE}/dumps/{name}")).await;
        assert_eq!(download.status, StatusCode::OK);
        assert_eq!(
            download.header("content-disposition"),
            Some(format!("attachment; filename=\"{name}\"").as_str())
        );
        assert_eq!(download.body, on_disk);
        assert!(logs_contain(download.body, "dump content 49"));

        // A bad tag or body is a 400, not a file.
        for body in [json!({"tag": "../x"}), json!({"tagg": "x"}), json!([1])] {
            let reply = send(
                addr,
                Method::POST,
                &format!("{BASE}/dump"),
                None,
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await;
            reply.expect_error(StatusCode::BAD_REQUEST);
        }
        server.shutdown().await.unwrap();
    });
}

#[test]
fn names_in_urls_never_reach_outside_the_dump_directory() {
    run(async {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("executiontrace_dump");
        std::fs::create_dir(&dir).unwrap();
        let secret = "TOP SECRET CONTENT";
        std::fs::write(root.path().join("secret.txt"), secret).unwrap();
        std::fs::write(
            root.path()
                .join("executiontrace.2026-01-01T00_00_09.000.out"),
            secret,
        )
        .unwrap();
        std::fs::write(dir.join("notes.txt"), secret).unwrap();
        // A link with our name pattern, pointing outside: never listed, never served.
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            root.path().join("secret.txt"),
            dir.join("executiontrace.2026-01-01T00_00_00.000.out"),
        )
        .unwrap();
        let real = "executiontrace.2026-01-01T00_00_01.000.out";
        std::fs::write(dir.join(real), "a trace").unwrap();
        let server = server_with_dir(&dir).await;
        let addr = server.local_addr();

        let listing = get(addr, &format!("{BASE}/dumps")).await.json();
        let names: Vec<&str> = listing["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [real]);
        assert_eq!(
            get(addr, &format!("{BASE}/dumps/{real}")).await.body,
            b"a trace"
        );

        let abs = root
            .path()
            .join("secret.txt")
            .display()
            .to_string()
            .replace('/', "%2F");
        let attempts = [
            "..%2fsecret.txt".to_string(),
            "..%2F..%2F..%2Fetc%2Fpasswd".to_string(),
            "%2e%2e%2fsecret.txt".to_string(),
            "..%2fexecutiontrace.2026-01-01T00_00_09.000.out".to_string(),
            "%2Fetc%2Fpasswd".to_string(),
            abs,
            "notes.txt".to_string(),
            "executiontrace.2026-01-01T00_00_00.000.out".to_string(),
            "executiontrace.2026-01-01T00_00_01.000.out%00".to_string(),
            "executiontrace.2026-01-01T00_00_01.000.out%00.txt".to_string(),
            "%00".to_string(),
            "executiontrace.2026-01-01T00_00_01.000.out%2f..%2f..%2fsecret.txt".to_string(),
            "..".to_string(),
            "%2e%2e".to_string(),
            "%ff%fe".to_string(),
            "..%5csecret.txt".to_string(),
        ];
        for attempt in &attempts {
            let reply = get(addr, &format!("{BASE}/dumps/{attempt}")).await;
            assert!(
                matches!(
                    reply.status,
                    StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST
                ),
                "{attempt}: {}",
                reply.status
            );
            reply.json();
            assert!(
                !String::from_utf8_lossy(&reply.body).contains(secret),
                "{attempt} leaked the file"
            );
        }
        // Unencoded: the router never matches more than one segment.
        for raw in [
            format!("{BASE}/dumps/../../secret.txt"),
            format!("{BASE}/dumps/../secret.txt"),
            format!("{BASE}/dumps//etc/passwd"),
            format!("{BASE}/dumps/{real}/../../secret.txt"),
        ] {
            let reply = get(addr, &raw).await;
            assert!(
                matches!(
                    reply.status,
                    StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST
                ),
                "{raw}: {}",
                reply.status
            );
            assert!(
                !String::from_utf8_lossy(&reply.body).contains(secret),
                "{raw}"
            );
        }
        server.shutdown().await.unwrap();
    });
}

#[test]
fn a_wrong_or_missing_token_is_401() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let _capture = capture_in(dir.path(), |_| {});
        let server = server(HttpConfig {
            token: Some("correct horse".into()),
            ..HttpConfig::default()
        })
        .await;
        let addr = server.local_addr();
        for path in [
            "/",
            "/snapshot",
            "/settings",
            "/dumps",
            "/trace?seconds=1",
            "/nope",
        ] {
            let path = format!("{BASE}{path}");
            for token in [
                None,
                Some("wrong"),
                Some("correct hors"),
                Some("correct horse!"),
            ] {
                let reply = send(addr, Method::GET, &path, token, None).await;
                reply.expect_error(StatusCode::UNAUTHORIZED);
                assert_eq!(
                    reply.header("www-authenticate").map(|v| &v[..6]),
                    Some("Bearer")
                );
            }
        }
        // Another scheme is refused too.
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let request = Request::get(format!("{BASE}/settings"))
            .header("host", addr.to_string())
            .header("authorization", "Basic Y29ycmVjdCBob3JzZQ==")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        // POST and PUT are guarded before their bodies are looked at.
        let reply = send(
            addr,
            Method::POST,
            &format!("{BASE}/dump"),
            Some("nope"),
            None,
        )
        .await;
        reply.expect_error(StatusCode::UNAUTHORIZED);
        assert_eq!(capture::status().files_written, 0);
        // The right token opens every door.
        let reply = send(
            addr,
            Method::GET,
            &format!("{BASE}/settings"),
            Some("correct horse"),
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        let reply = send(
            addr,
            Method::GET,
            &format!("{BASE}/snapshot"),
            Some("correct horse"),
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        read_trace(reply.body);
        server.shutdown().await.unwrap();
    });
}

#[test]
fn settings_are_read_and_changed_at_run_time() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let _capture = capture_in(dir.path(), |_| {});
        let server = server(HttpConfig::default()).await;
        let addr = server.local_addr();
        let url = format!("{BASE}/settings");
        let reply = get(addr, &url).await;
        assert_eq!(reply.status, StatusCode::OK);
        let shown = reply.json();
        assert_eq!(shown["interval"], "0s");
        assert_eq!(shown["duration"], "10s");
        assert_eq!(shown["total_dump_size_limit"], 4u64 << 30);
        assert_eq!(shown["max_bytes"], 10u64 << 20);
        assert_eq!(shown["signal"], Value::Null);

        let reply = put_json(
            addr,
            &url,
            json!({
                "interval": "30s",
                "duration": "5s",
                "total_dump_size_limit": "512MiB",
                "slow_poll_threshold": "100ms",
                "min_dump_interval": "1m",
            }),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let now = capture::settings().unwrap();
        assert_eq!(now.interval, Duration::from_secs(30));
        assert_eq!(now.duration, Duration::from_secs(5));
        assert_eq!(now.total_dump_size_limit, 512 << 20);
        assert_eq!(now.slow_poll_threshold, Duration::from_millis(100));
        assert_eq!(now.min_dump_interval, Duration::from_secs(60));
        let answered = reply.json();
        assert_eq!(answered["interval"], "30s");
        assert_eq!(answered["min_dump_interval"], "1m");
        // What GET returns can be sent back as it is.
        let shown = get(addr, &url).await.json();
        let reply = put_json(addr, &url, shown.clone()).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json(), shown);
        assert_eq!(capture::settings().unwrap(), now);
        // Turning the slow-poll watchdog off.
        put_json(addr, &url, json!({"slow_poll_threshold": "off"})).await;
        assert_eq!(
            capture::settings().unwrap().slow_poll_threshold,
            Duration::ZERO
        );
        server.shutdown().await.unwrap();
    });
}

#[test]
fn invalid_settings_are_400_and_the_old_ones_stay() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let _capture = capture_in(dir.path(), |s| s.interval = Duration::from_secs(60));
        let before = capture::settings().unwrap();
        let server = server(HttpConfig::default()).await;
        let addr = server.local_addr();
        let url = format!("{BASE}/settings");
        let bad_bodies = [
            json!({"interval": "-5s"}),
            json!({"interval": -5}),
            json!({"interval": "5 parsecs"}),
            json!({"interval": "10000h"}),
            json!({"duration": "0"}),
            json!({"max_bytes": 0}),
            json!({"max_bytes": -1}),
            json!({"max_bytes": "64GiB"}),
            json!({"total_dump_size_limit": -1}),
            json!({"total_dump_size_limit": 1.5}),
            json!({"slow_poll_delay": "2m"}),
            json!({"slow_poll_threshold": "1ns"}),
            json!({"signal": 9}),
            json!({"signal": "SIGNOPE"}),
            json!({"panic": "maybe"}),
            json!({"dump_dir": "/etc"}),
            json!({"program_version": "evil"}),
            json!({"unknown_setting": true}),
            // A good field beside a bad one changes nothing.
            json!({"interval": "5s", "duration": "0"}),
            json!({"total_dump_size_limit": 100, "Interval": "5s"}),
            json!("interval=5s"),
            json!(null),
        ];
        for body in bad_bodies {
            let reply = put_json(addr, &url, body.clone()).await;
            let error = reply.expect_error(StatusCode::BAD_REQUEST);
            assert!(!error["error"].as_str().unwrap().is_empty(), "{body}");
            assert_eq!(
                capture::settings().unwrap(),
                before,
                "{body} changed the settings"
            );
        }
        // Not JSON at all, and a body over the limit.
        let reply = send(
            addr,
            Method::PUT,
            &url,
            None,
            Some(b"{\"interval\": ".to_vec()),
        )
        .await;
        reply.expect_error(StatusCode::BAD_REQUEST);
        let huge = format!("{{\"program_version\": \"{}\"}}", "x".repeat(20 << 10));
        let reply = send(addr, Method::PUT, &url, None, Some(huge.into_bytes())).await;
        reply.expect_error(StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(capture::settings().unwrap(), before);
        server.shutdown().await.unwrap();
    });
}

/// A writer that holds a snapshot open until told to let go.
struct Stuck {
    entered: Option<mpsc::Sender<()>>,
    release: mpsc::Receiver<()>,
}

impl Write for Stuck {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(entered) = self.entered.take() {
            let _ = entered.send(());
            let _ = self.release.recv();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn concurrent_snapshots_get_a_clear_409() {
    run(async {
        capture::stop();
        let recorder = Arc::new(FlightRecorder::new(FlightRecorderConfig::default()));
        recorder.start().unwrap();
        some_events("concurrent");
        let server = server(HttpConfig {
            recorder: Some(recorder.clone()),
            ..HttpConfig::default()
        })
        .await;
        let addr = server.local_addr();

        // A snapshot being written (here by the program itself) refuses the request at once.
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let holder = {
            let recorder = recorder.clone();
            std::thread::spawn(move || {
                let mut stuck = Stuck {
                    entered: Some(entered_tx),
                    release: release_rx,
                };
                recorder.write_to(&mut stuck).map(|_| ())
            })
        };
        entered_rx.recv().unwrap();
        let reply = get(addr, &format!("{BASE}/snapshot")).await;
        let body = reply.expect_error(StatusCode::CONFLICT);
        assert!(
            body["error"].as_str().unwrap().contains("already"),
            "{body}"
        );
        assert_eq!(reply.header("retry-after"), Some("1"));
        release_tx.send(()).unwrap();
        holder.join().unwrap().unwrap();

        // Two requests at once: each one is a whole trace or a clear 409, and at least one wins.
        // A round where both are refused is one where the previous round's response was still
        // finishing on the server after the client had read it whole (its snapshot slot is let go
        // when the body's last chunk is sent): that round is run again after the Retry-After
        // pause the 409 asks for, scaled down.
        let mut refused = 0;
        let mut rounds = 0;
        for _ in 0..5 {
            let mut ok = 0;
            for _attempt in 0..20 {
                rounds += 1;
                let a = tokio::spawn(async move {
                    get(addr, &format!("{BASE}/snapshot?format=perfetto")).await
                });
                let b = tokio::spawn(async move { get(addr, &format!("{BASE}/snapshot")).await });
                let (a, b) = (a.await.unwrap(), b.await.unwrap());
                for reply in [a, b] {
                    match reply.status {
                        StatusCode::OK => ok += 1,
                        StatusCode::CONFLICT => {
                            refused += 1;
                            reply.expect_error(StatusCode::CONFLICT);
                            assert_eq!(reply.header("retry-after"), Some("1"));
                        }
                        other => panic!("unexpected {other}"),
                    }
                }
                if ok >= 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(ok >= 1, "every attempt of a round was refused");
        }
        eprintln!("{refused} of {} concurrent snapshot requests were refused", 2 * rounds);
        let reply = get(addr, &format!("{BASE}/snapshot")).await;
        assert_eq!(reply.status, StatusCode::OK);
        read_trace(reply.body);
        recorder.stop();
        server.shutdown().await.unwrap();
    });
}

#[test]
fn serve_refuses_public_addresses_by_default() {
    run(async {
        let public: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let refused = http::serve(HttpConfig::default(), public).await;
        assert!(
            matches!(refused, Err(ref e) if e.kind() == ErrorKind::InvalidSettings),
            "{refused:?}"
        );
        let no_token = http::serve(
            HttpConfig {
                allow_non_loopback: true,
                ..HttpConfig::default()
            },
            public,
        )
        .await;
        assert!(matches!(no_token, Err(ref e) if e.kind() == ErrorKind::InvalidSettings));
        let empty_token = http::serve(
            HttpConfig {
                token: Some(String::new()),
                ..HttpConfig::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await;
        assert!(matches!(empty_token, Err(ref e) if e.kind() == ErrorKind::InvalidSettings));
        // An empty token given to the router refuses everything.
        let app = http::router(HttpConfig {
            token: Some(String::new()),
            ..HttpConfig::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move { axum::serve(listener, app).await });
        let reply = send(addr, Method::GET, BASE, Some(""), None).await;
        reply.expect_error(StatusCode::UNAUTHORIZED);
        task.abort();
    });
}

/// The signals a caller of the endpoint must never take from the process.
const TAKEN_SIGNALS: [&str; 7] = ["TERM", "INT", "HUP", "QUIT", "PIPE", "SEGV", "ABRT"];

#[cfg(all(target_os = "linux", feature = "signal"))]
#[test]
fn over_http_the_signal_is_only_turned_off_or_set_back() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let _capture = capture_in(dir.path(), |s| s.signal = Some(libc::SIGUSR2));
        let before = capture::settings().unwrap();
        let server = server(HttpConfig::default()).await;
        let addr = server.local_addr();
        let url = format!("{BASE}/settings");
        let mut refused: Vec<Value> = TAKEN_SIGNALS.iter().map(|s| json!(s)).collect();
        refused.extend([
            json!("SIGTERM"),
            json!("sigkill"),
            json!(libc::SIGTERM),
            json!(libc::SIGCHLD),
            json!("ALRM"),
            json!("BUS"),
            json!("FPE"),
            json!("ILL"),
            // Allowed in code, but not the one chosen at start.
            json!("USR1"),
            json!("RTMIN+1"),
        ]);
        for signal in refused {
            let reply = put_json(addr, &url, json!({ "signal": signal })).await;
            let body = reply.expect_error(StatusCode::BAD_REQUEST);
            let error = body["error"].as_str().unwrap();
            assert!(error.contains(&signal.to_string()), "{error}");
            assert!(
                error.contains("SIGUSR2, the one chosen at start"),
                "{error}"
            );
            assert_eq!(body["field"], "signal");
            assert_eq!(capture::settings().unwrap(), before, "{signal} changed it");
        }
        // Off, and back to the one chosen at start.
        let reply = put_json(addr, &url, json!({"signal": null})).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(capture::settings().unwrap().signal, None);
        let reply = put_json(addr, &url, json!({"signal": "TERM"})).await;
        reply.expect_error(StatusCode::BAD_REQUEST);
        assert_eq!(capture::settings().unwrap().signal, None);
        let reply = put_json(addr, &url, json!({"signal": "USR2"})).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["signal"], "SIGUSR2");
        assert_eq!(capture::settings().unwrap(), before);
        // Code may still choose another dump signal, and HTTP may repeat it.
        capture::update_settings(|s| s.signal = Some(libc::SIGUSR1)).unwrap();
        let reply = put_json(addr, &url, json!({"signal": "SIGUSR1"})).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(capture::update_settings(|s| s.signal = Some(libc::SIGTERM)).is_err());
        assert_eq!(capture::settings().unwrap().signal, Some(libc::SIGUSR1));
        server.shutdown().await.unwrap();
    });
}

#[test]
fn with_no_signal_chosen_at_start_http_can_only_keep_it_off() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let _capture = capture_in(dir.path(), |_| {});
        let before = capture::settings().unwrap();
        assert_eq!(before.signal, None);
        let server = server(HttpConfig::default()).await;
        let addr = server.local_addr();
        let url = format!("{BASE}/settings");
        for signal in TAKEN_SIGNALS.iter().chain(&["USR2"]) {
            let reply = put_json(addr, &url, json!({ "signal": signal })).await;
            let body = reply.expect_error(StatusCode::BAD_REQUEST);
            assert!(
                body["error"]
                    .as_str()
                    .unwrap()
                    .contains("none was chosen at start"),
                "{body}"
            );
            assert_eq!(capture::settings().unwrap(), before);
        }
        let reply = put_json(addr, &url, json!({"signal": null})).await;
        assert_eq!(reply.status, StatusCode::OK);
        server.shutdown().await.unwrap();
    });
}

#[test]
fn every_setting_s_parse_error_names_the_value_given() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let _capture = capture_in(dir.path(), |_| {});
        let before = capture::settings().unwrap();
        let server = server(HttpConfig::default()).await;
        let addr = server.local_addr();
        let url = format!("{BASE}/settings");
        let cases = [
            (
                "interval",
                json!("bogus"),
                "\"bogus\" is not a duration; use e.g. 30s, 5m, 0",
            ),
            ("interval", json!(5), "5 is not a duration; use e.g."),
            ("interval", json!("1000h"), "\"1000h\" is too long"),
            ("duration", json!("soon"), "\"soon\" is not a duration"),
            ("duration", json!("0"), "\"0\" is not allowed"),
            (
                "total_dump_size_limit",
                json!("lots"),
                "\"lots\" is not a size; use e.g. 4GiB, 500MB, 1048576",
            ),
            ("total_dump_size_limit", json!(-1), "-1 is not a size"),
            ("max_bytes", json!("many"), "\"many\" is not a size"),
            ("max_bytes", json!("64GiB"), "\"64GiB\" is out of range"),
            (
                "min_dump_interval",
                json!("later"),
                "\"later\" is not a duration",
            ),
            (
                "slow_poll_threshold",
                json!("slow"),
                "\"slow\" is not a duration",
            ),
            ("slow_poll_threshold", json!("1ns"), "\"1ns\" is too short"),
            (
                "slow_poll_delay",
                json!("2 fortnights"),
                "\"2 fortnights\" is not a duration",
            ),
            ("slow_poll_delay", json!("2m"), "\"2m\" is too long"),
            (
                "panic",
                json!("sometimes"),
                "\"sometimes\" is not true or false; use e.g. true",
            ),
            (
                "signal",
                json!("SIGNOPE"),
                "\"SIGNOPE\" is not a signal; use e.g. USR2",
            ),
            ("signal", json!([15]), "[15] is not a signal"),
            (
                "dump_dir",
                json!("/etc"),
                "\"/etc\" cannot be set over HTTP",
            ),
            (
                "program_version",
                json!("evil"),
                "\"evil\" cannot be set over HTTP",
            ),
            ("announce", json!(true), "true cannot be set over HTTP"),
        ];
        for (field, value, says) in cases {
            let reply = put_json(addr, &url, json!({ field: value })).await;
            let body = reply.expect_error(StatusCode::BAD_REQUEST);
            let error = body["error"].as_str().unwrap();
            assert!(error.starts_with(&format!("{field}: ")), "{error}");
            assert!(error.contains(says), "{field}={value}: {error}");
            assert_eq!(body["field"], field);
            assert_eq!(capture::settings().unwrap(), before);
        }
        // An unknown field lists only what can be changed.
        let reply = put_json(addr, &url, json!({"output_dir": "/tmp"})).await;
        let body = reply.expect_error(StatusCode::BAD_REQUEST);
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("\"output_dir\""), "{error}");
        assert!(error.contains("interval, duration"), "{error}");
        for shown_only in ["dump_dir", "program_version", "announce"] {
            assert!(!error.contains(shown_only), "{error}");
        }
        server.shutdown().await.unwrap();
    });
}

#[test]
fn head_on_a_snapshot_answers_headers_and_takes_none() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let _capture = capture_in(dir.path(), |_| {});
        some_events("head");
        let server = server(HttpConfig::default()).await;
        let addr = server.local_addr();
        let url = format!("{BASE}/snapshot");
        let before = FlightRecorder::snapshots_written();
        for path in [url.clone(), format!("{url}?format=perfetto")] {
            let reply = send(addr, Method::HEAD, &path, None, None).await;
            assert_eq!(reply.status, StatusCode::OK);
            assert!(reply.body.is_empty());
            assert_eq!(
                reply.header("content-type"),
                Some("application/octet-stream")
            );
            assert!(reply
                .header("content-disposition")
                .unwrap()
                .starts_with("attachment; filename=\"executiontrace."));
        }
        assert_eq!(FlightRecorder::snapshots_written(), before);
        // A bad query is refused as for GET.
        let reply = send(addr, Method::HEAD, &format!("{url}?format=pdf"), None, None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);

        // HEAD holds no slot: it answers while a snapshot is being written, when GET cannot.
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let holder = std::thread::spawn(move || {
            let mut stuck = Stuck {
                entered: Some(entered_tx),
                release: release_rx,
            };
            capture::write_snapshot(
                &mut stuck,
                &flight_recorder::SnapshotMeta::new("test", "test"),
                Duration::from_secs(5),
            )
            .map(|_| ())
        });
        entered_rx.recv().unwrap();
        let reply = send(addr, Method::HEAD, &url, None, None).await;
        assert_eq!(reply.status, StatusCode::OK);
        get(addr, &url).await.expect_error(StatusCode::CONFLICT);
        release_tx.send(()).unwrap();
        holder.join().unwrap().unwrap();
        let written = FlightRecorder::snapshots_written();
        assert_eq!(written, before + 1, "only the program's own snapshot");

        // GET takes one, and the count shows it.
        let reply = get(addr, &url).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(FlightRecorder::snapshots_written(), written + 1);
        server.shutdown().await.unwrap();
    });
    // Nothing recording: 503, as for GET.
    run(async {
        capture::stop();
        let server = server(HttpConfig::default()).await;
        let reply = send(
            server.local_addr(),
            Method::HEAD,
            &format!("{BASE}/snapshot"),
            None,
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        server.shutdown().await.unwrap();
    });
}

/// The environment variable that makes [`sigterm_child`] serve the endpoint; the value is a
/// directory for its address.
const SIGTERM_CHILD_DIR: &str = "FLIGHT_RECORDER_HTTP_SIGTERM_CHILD_DIR";

/// In the child process of [`a_real_sigterm_still_ends_a_process_whose_capture_runs`]: capture
/// with `SIGUSR2` as its dump signal and the endpoint on a loopback port (written to `addr` in
/// the directory), until a signal ends the process. In a normal test run, does nothing.
#[cfg(all(target_os = "linux", feature = "signal"))]
#[test]
fn sigterm_child() {
    let Some(dir) = std::env::var_os(SIGTERM_CHILD_DIR) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    // Code cannot choose SIGTERM either.
    let taken = capture::start(CaptureSettings {
        signal: Some(libc::SIGTERM),
        ..settings(&dir)
    });
    assert!(
        matches!(&taken, Err(e) if e.kind() == flight_recorder::ErrorKind::InvalidSettings),
        "{taken:?}"
    );
    capture::start(CaptureSettings {
        signal: Some(libc::SIGUSR2),
        ..settings(&dir)
    })
    .unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let server = server(HttpConfig::default()).await;
            let addr = server.local_addr().to_string();
            std::fs::write(dir.join("addr.tmp"), addr).unwrap();
            std::fs::rename(dir.join("addr.tmp"), dir.join("addr")).unwrap();
            loop {
                some_events("child");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
}

#[cfg(all(target_os = "linux", feature = "signal"))]
#[test]
fn a_real_sigterm_still_ends_a_process_whose_capture_runs() {
    use std::os::unix::process::ExitStatusExt;

    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigterm_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SIGTERM_CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr_file = dir.path().join("addr");
    let started = capture_common::wait_until(Duration::from_secs(60), || {
        addr_file.exists() || child.try_wait().unwrap().is_some()
    });
    assert!(started && addr_file.exists(), "the child did not start");
    let addr: SocketAddr = std::fs::read_to_string(&addr_file)
        .unwrap()
        .parse()
        .unwrap();
    // The endpoint refuses to take SIGTERM (or any other signal) from the process.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let url = format!("{BASE}/settings");
            for signal in TAKEN_SIGNALS {
                let reply = put_json(addr, &url, json!({ "signal": signal })).await;
                reply.expect_error(StatusCode::BAD_REQUEST);
            }
            let shown = get(addr, &url).await.json();
            assert_eq!(shown["signal"], "SIGUSR2");
        });
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut ended = None;
    capture_common::wait_until(Duration::from_secs(20), || {
        ended = child.try_wait().unwrap();
        ended.is_some()
    });
    let Some(ended) = ended else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the child survived SIGTERM");
    };
    assert_eq!(ended.signal(), Some(libc::SIGTERM), "{ended:?}");
    // SIGTERM wrote no dump: it is not the dump signal.
    assert!(capture::list_dumps(dir.path()).unwrap().is_empty());
}

#[test]
fn head_on_a_trace_answers_headers_and_starts_none() {
    run(async {
        let server = server(HttpConfig::default()).await;
        let addr = server.local_addr();
        let started = std::time::Instant::now();
        let reply = send(
            addr,
            Method::HEAD,
            &format!("{BASE}/trace?seconds=60"),
            None,
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.body.is_empty());
        assert_eq!(reply.header("x-flight-recorder-seconds"), Some("60"));
        assert!(started.elapsed() < Duration::from_secs(5));
        // No trace runs: the next one starts at once.
        let reply = get(addr, &format!("{BASE}/trace?seconds=1")).await;
        assert_eq!(reply.status, StatusCode::OK);
        read_trace(reply.body);
        let reply = send(
            addr,
            Method::HEAD,
            &format!("{BASE}/trace?seconds=0"),
            None,
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        server.shutdown().await.unwrap();
    });
}
