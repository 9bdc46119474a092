//! `/snapshot` (the flight recorder's window) and `/trace?seconds=N` (a full trace).

use std::io::{self, BufWriter, Cursor, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use tokio::sync::oneshot;

use super::body::{self, ChannelWriter, LimitedBuffer};
use super::error::ApiError;
use super::AppState;
use crate::error::{Error, ErrorKind};
use crate::file::files::{trace_file_name, FILE_SUFFIX};
use crate::flight::{FlightRecorder, SnapshotMeta};
use crate::trace::FullTrace;

/// How long a snapshot of capture's window waits for a dump file being written.
const CAPTURE_WAIT: Duration = Duration::from_secs(2);

/// One `/snapshot` request at a time in the process, from the snapshot to the end of the
/// Perfetto conversion.
static SNAPSHOT_BUSY: AtomicBool = AtomicBool::new(false);

struct Busy;

impl Busy {
    fn acquire() -> Option<Busy> {
        SNAPSHOT_BUSY
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Busy)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        SNAPSHOT_BUSY.store(false, Ordering::Release);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SnapshotQuery {
    format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TraceQuery {
    seconds: Option<String>,
}

fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request(format!("bad query string: {}", rejection.body_text()))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A file download: the body, with the headers of a download named `file_name`.
pub(super) fn download_response(body: Body, file_name: &str) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The names are ours: `[A-Za-z0-9_.-]` only.
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Whether a `/snapshot` query asks for Perfetto.
fn wants_perfetto(query: Result<Query<SnapshotQuery>, QueryRejection>) -> Result<bool, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    match query.format.as_deref() {
        None | Some("") | Some("trace") => Ok(false),
        Some("perfetto") => Ok(true),
        Some(_) => Err(ApiError::bad_request(
            "format must be \"trace\" (the default) or \"perfetto\"",
        )),
    }
}

/// The download name of a snapshot taken now.
fn snapshot_name(perfetto: bool) -> String {
    let name = trace_file_name(now_ns(), "http");
    if perfetto {
        format!(
            "{}.pftrace",
            name.strip_suffix(FILE_SUFFIX).unwrap_or(&name)
        )
    } else {
        name
    }
}

/// Why no snapshot can be taken now, when nothing records.
fn not_recording(recorder: Option<&FlightRecorder>) -> &'static str {
    match recorder {
        Some(_) => "the flight recorder given to the HTTP endpoint is not running",
        None => {
            "nothing is recording: automatic capture (flight_recorder::capture) is not \
             running and no flight recorder was given to the HTTP endpoint"
        }
    }
}

/// `HEAD /snapshot[?format=perfetto]`: the headers a `GET` would answer with, without taking a
/// snapshot or holding the snapshot slot (so a health check or a link checker costs nothing).
/// 503 when nothing records, as for `GET`; a `GET` may still meet a snapshot in progress (409).
pub(super) async fn snapshot_head(
    State(state): State<AppState>,
    query: Result<Query<SnapshotQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let perfetto = wants_perfetto(query)?;
    let recorder = state.config.recorder.as_deref();
    let recording = match recorder {
        Some(recorder) => recorder.is_running(),
        None => crate::capture::is_running(),
    };
    if !recording {
        return Err(ApiError::unavailable(not_recording(recorder)));
    }
    Ok(download_response(Body::empty(), &snapshot_name(perfetto)))
}

/// `GET /snapshot[?format=perfetto]`.
pub(super) async fn snapshot(
    State(state): State<AppState>,
    query: Result<Query<SnapshotQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let perfetto = wants_perfetto(query)?;
    let busy = Busy::acquire().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "another snapshot request is in progress; try again when it is done",
        )
        .retry_after(1)
    })?;
    let recorder = state.config.recorder.clone();
    let limit = state.config.max_snapshot_bytes;
    let bytes = tokio::task::spawn_blocking(move || take_snapshot(recorder.as_deref(), limit))
        .await
        .map_err(ApiError::task)??;
    let name = snapshot_name(perfetto);
    if !perfetto {
        drop(busy);
        return Ok(download_response(Body::from(bytes), &name));
    }
    let (writer, body) = body::channel();
    tokio::task::spawn_blocking(move || {
        let _busy = busy;
        convert_to_perfetto(bytes, writer);
    });
    Ok(download_response(Body::new(body), &name))
}

/// Writes the snapshot into memory, at most `limit` bytes.
fn take_snapshot(recorder: Option<&FlightRecorder>, limit: usize) -> Result<Vec<u8>, ApiError> {
    let meta = SnapshotMeta::new("http", "http").detail("trigger", "http");
    let mut out = LimitedBuffer::new(limit);
    let result = match recorder {
        Some(recorder) => recorder.write_to_with(&mut out, &meta),
        None => crate::capture::write_snapshot(&mut out, &meta, CAPTURE_WAIT),
    };
    match result {
        Ok(_) => Ok(out.bytes),
        Err(_) if out.overflowed => Err(ApiError::internal(format!(
            "the snapshot is larger than the endpoint's max_snapshot_bytes ({limit} bytes)"
        ))),
        Err(e) => Err(ApiError::from_recorder(e, not_recording(recorder))),
    }
}

/// Converts a snapshot to Perfetto into a response body; a failure cuts the body.
fn convert_to_perfetto(bytes: Vec<u8>, writer: ChannelWriter) {
    use flight_recorder_analysis::merge::MergeOptions;
    use flight_recorder_analysis::perfetto::write_perfetto;
    use flight_recorder_format::TraceReader;

    let failer = writer.clone_writer();
    let reader = match TraceReader::new(Cursor::new(bytes)) {
        Ok(reader) => reader,
        Err(e) => return failer.fail(io::Error::other(e.to_string())),
    };
    let out = BufWriter::with_capacity(64 << 10, writer);
    match write_perfetto(reader, out, MergeOptions::default(), &mut |_| {}) {
        Ok(mut out) => {
            if let Err(e) = out.flush() {
                failer.fail(e);
            }
        }
        Err(e) => failer.fail(io::Error::other(e.to_string())),
    }
}

/// The `seconds` of a `/trace` query, checked.
fn trace_seconds(
    state: &AppState,
    query: Result<Query<TraceQuery>, QueryRejection>,
) -> Result<u64, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let max = state.config.max_trace_seconds;
    match query.seconds.as_deref() {
        None => Ok(1),
        Some(text) => match text.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "seconds must be a whole number from 1 to {max}"
            ))
            .with("max_seconds", max)),
        },
    }
}

/// The response of a `/trace` request: a download of `body`, with the seconds in a header.
fn trace_response(body: Body, seconds: u64) -> Response {
    let name = trace_file_name(now_ns(), "http_trace");
    let mut response = download_response(body, &name);
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response
            .headers_mut()
            .insert("x-flight-recorder-seconds", value);
    }
    response
}

/// `HEAD /trace?seconds=N`: the headers `GET` would answer with, without starting a trace.
pub(super) async fn trace_head(
    State(state): State<AppState>,
    query: Result<Query<TraceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let seconds = trace_seconds(&state, query)?;
    Ok(trace_response(Body::empty(), seconds))
}

/// `GET /trace?seconds=N`.
pub(super) async fn trace(
    State(state): State<AppState>,
    query: Result<Query<TraceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let seconds = trace_seconds(&state, query)?;
    let (writer, body) = body::channel();
    let (started_tx, started_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("flight-recorder-http-trace".into())
        .spawn(move || run_trace(writer, Duration::from_secs(seconds), started_tx))
        .map_err(|e| ApiError::internal(format!("cannot start the trace's thread: {e}")))?;
    match started_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.kind() == ErrorKind::AnotherRecorderRunning => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "a full trace is already running (another /trace request, or the program's own); \
                 try again when it ends",
            )
            .retry_after(http_trace_left().unwrap_or(1)))
        }
        Ok(Err(e)) => return Err(ApiError::from_recorder(e, "the trace did not start")),
        Err(_) => return Err(ApiError::internal("the trace's thread ended early")),
    }
    Ok(trace_response(Body::new(body), seconds))
}

/// When the trace of a `/trace` request ends, milliseconds since the Unix epoch (0: none runs).
static HTTP_TRACE_END_MS: AtomicU64 = AtomicU64::new(0);

/// The seconds left of a `/trace` request's trace, if one runs.
fn http_trace_left() -> Option<u64> {
    let end = HTTP_TRACE_END_MS.load(Ordering::Relaxed);
    let now = now_ns() / 1_000_000;
    (end > now).then(|| (end - now).div_ceil(1000))
}

/// The trace's thread: a full trace into the response body for `duration`, or until the client
/// goes away.
fn run_trace(
    writer: ChannelWriter,
    duration: Duration,
    started: oneshot::Sender<Result<(), Error>>,
) {
    let watcher = writer.clone_writer();
    let trace = match FullTrace::start(writer) {
        Ok(trace) => trace,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    if started.send(Ok(())).is_err() {
        let _ = trace.stop();
        return;
    }
    let deadline = Instant::now() + duration;
    HTTP_TRACE_END_MS.store(
        now_ns() / 1_000_000 + duration.as_millis() as u64,
        Ordering::Relaxed,
    );
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || watcher.is_closed() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
    HTTP_TRACE_END_MS.store(0, Ordering::Relaxed);
    if let Err(e) = trace.stop() {
        watcher.fail(io::Error::other(e.to_string()));
    }
}
