//! `/dumps` (the dump directory's files), `/dumps/{name}` (one of them) and `POST /dump`.
//!
//! A name from the URL is never joined onto a path: the directory is listed (only the
//! recorder's own files, as garbage collection sees them) and the name compared with each
//! listed file's name; the file opened is the listed one, without following a symbolic link.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path as FsPath, PathBuf};

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use flight_recorder_format::dump_files::MAX_NAME_LEN;
use serde::Deserialize;
use serde_json::{json, Value};

use super::body;
use super::error::{json_response, ApiError};
use super::snapshot::download_response;
use super::{AppState, BASE_PATH};
use crate::capture::{self, list_dumps, parse_dump_name, DumpFile, DumpOutcome};

/// The most bytes of a file read to find its header in the listing.
const HEADER_READ_LIMIT: u64 = 1 << 20;

/// The longest reason accepted by `POST /dump`.
const MAX_REASON_LEN: usize = 256;

/// The dump directory: the configured one, or automatic capture's.
fn dump_dir(state: &AppState) -> Result<PathBuf, ApiError> {
    if let Some(dir) = &state.config.dump_dir {
        return Ok(dir.clone());
    }
    capture::settings().map(|s| s.dump_dir).ok_or_else(|| {
        ApiError::unavailable(
            "automatic capture (flight_recorder::capture) is not running and no dump directory \
             was given to the HTTP endpoint",
        )
    })
}

fn file_name(file: &DumpFile) -> &str {
    file.path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
}

/// `2006-01-02T15_04_05.000` → `2006-01-02T15:04:05.000Z`.
fn stamp_to_time(stamp: &str) -> String {
    format!("{}Z", stamp.replace('_', ":"))
}

/// Opens a listed file for reading, refusing a symbolic link (swapped in since the listing) and
/// anything but a regular file.
fn open_listed(path: &FsPath) -> io::Result<(File, u64)> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "not a regular file",
        ));
    }
    Ok((file, meta.len()))
}

/// The reason written in a file's header.
fn read_reason(path: &FsPath) -> Result<String, String> {
    let (file, _) = open_listed(path).map_err(|e| e.to_string())?;
    let input = BufReader::new(file.take(HEADER_READ_LIMIT));
    flight_recorder_format::TraceReader::new(input)
        .map(|reader| reader.header().reason.clone())
        .map_err(|e| e.to_string())
}

/// `GET /dumps`: the files, oldest first.
pub(super) async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let dir = dump_dir(&state)?;
    let listing = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let files = list_dumps(&dir)
            .map_err(|e| ApiError::internal(format!("cannot list the dump directory: {e}")))?;
        #[cfg(feature = "upload")]
        let upload = capture::status().upload;
        let total: u64 = files.iter().map(|f| f.size).sum();
        let files: Vec<Value> = files
            .iter()
            .map(|file| {
                let mut entry = json!({
                    "name": file_name(file),
                    "time": stamp_to_time(&file.stamp),
                    "tag": file.tag,
                    "size": file.size,
                });
                match read_reason(&file.path) {
                    Ok(reason) => entry["reason"] = Value::String(reason),
                    Err(e) => {
                        entry["reason"] = Value::Null;
                        entry["error"] = Value::String(e);
                    }
                }
                #[cfg(feature = "upload")]
                if upload.is_some() {
                    entry["uploaded"] = Value::Bool(capture::upload_marker(&file.path).exists());
                }
                entry
            })
            .collect();
        #[allow(unused_mut)]
        let mut listing = json!({
            "dump_dir": dir.display().to_string(),
            "total_size": total,
            "files": files,
        });
        // Counters only: where files go, and as whom, is never shown over HTTP.
        #[cfg(feature = "upload")]
        if let Some(upload) = upload {
            listing["upload"] = json!({
                "uploaded": upload.uploaded,
                "queued": upload.queued,
                "failed_attempts": upload.failed_attempts,
                "deleted_before_upload": upload.deleted_before_upload,
                "failing": upload.last_error.is_some(),
            });
        }
        Ok(listing)
    })
    .await
    .map_err(ApiError::task)??;
    Ok(json_response(StatusCode::OK, &listing))
}

/// `GET /dumps/{name}`: one listed file, streamed.
pub(super) async fn download(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = name.map_err(|e| ApiError::bad_request(format!("bad file name: {e}")))?;
    let missing = || {
        ApiError::not_found(
            "no dump file by that name; GET /debug/flight-recorder/dumps lists them",
        )
    };
    // A cheap first filter: only names of the recorder's own pattern can be listed.
    if name.len() > MAX_NAME_LEN || parse_dump_name(&name).is_none() {
        return Err(missing());
    }
    let dir = dump_dir(&state)?;
    let shown_name = name.clone();
    let (file, size) = tokio::task::spawn_blocking(move || -> Result<(File, u64), ApiError> {
        let files = list_dumps(&dir)
            .map_err(|e| ApiError::internal(format!("cannot list the dump directory: {e}")))?;
        let listed = files
            .iter()
            .find(|f| file_name(f) == name)
            .ok_or_else(missing)?;
        open_listed(&listed.path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => missing(),
            _ => ApiError::internal(format!("cannot open the dump file: {e}")),
        })
    })
    .await
    .map_err(ApiError::task)??;
    let (writer, body) = body::channel();
    tokio::task::spawn_blocking(move || copy_file(file, size, writer));
    let mut response = download_response(Body::new(body), &shown_name);
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    Ok(response)
}

/// Streams `size` bytes of `file` into the body; a failure cuts the body.
fn copy_file(file: File, size: u64, mut writer: body::ChannelWriter) {
    let failer = writer.clone_writer();
    let mut input = file.take(size);
    let mut buf = vec![0u8; 64 << 10];
    let mut sent = 0u64;
    loop {
        match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if writer.write_all(&buf[..n]).is_err() {
                    return;
                }
                sent += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return failer.fail(e),
        }
    }
    if sent < size {
        failer.fail(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file became shorter while it was sent",
        ));
    }
}

/// The body of `POST /dump`, all optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DumpRequest {
    reason: Option<String>,
    tag: Option<String>,
}

/// `POST /dump`: a triggered dump now, through the rate limit.
pub(super) async fn dump_now(body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let request: DumpRequest = if body.iter().all(u8::is_ascii_whitespace) {
        DumpRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))?
    };
    let reason = request.reason.unwrap_or_else(|| "http".into());
    if reason.len() > MAX_REASON_LEN {
        return Err(ApiError::bad_request(format!(
            "reason is longer than {MAX_REASON_LEN} bytes"
        )));
    }
    let tag = request.tag.unwrap_or_else(|| "http".into());
    let outcome = tokio::task::spawn_blocking(move || capture::dump_now(&reason, &tag))
        .await
        .map_err(ApiError::task)?;
    match outcome {
        Ok(DumpOutcome::Written(path)) => {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let size = std::fs::metadata(&path).map(|m| m.len()).ok();
            let mut response = json_response(
                StatusCode::CREATED,
                &json!({ "outcome": "written", "name": name, "size": size }),
            );
            if let Ok(location) = HeaderValue::from_str(&format!("{BASE_PATH}/dumps/{name}")) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
        Ok(DumpOutcome::Coalesced) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "another dump is being written; this request was folded into it",
        )
        .with("outcome", "coalesced")
        .retry_after(1)),
        Ok(DumpOutcome::RateLimited { retry_after }) => {
            let settings = capture::settings();
            let interval = settings
                .map(|s| capture::duration_text(s.min_dump_interval))
                .unwrap_or_default();
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "rate limited: at most one triggered dump per {interval}; try again in {:.1}s",
                    retry_after.as_secs_f64()
                ),
            )
            .with("outcome", "rate_limited")
            .with("retry_after_ms", retry_after.as_millis() as u64)
            .retry_after(retry_after.as_secs_f64().ceil() as u64))
        }
        Err(e) => Err(ApiError::from_recorder(
            e,
            "automatic capture (flight_recorder::capture) is not running",
        )),
    }
}
