//! Uploads of the dump files to S3-compatible object storage (cargo feature `upload`).
//!
//! One background thread, `flight-recorder-upload`, owns a small current-thread tokio runtime
//! and an [`object_store`] S3 client. Capture hands it each file it writes through a bounded
//! queue that never blocks the writer: when the queue is full (or its lock busy), the file stays
//! pending on disk and the next rescan of the dump directory finds it. The directory is rescanned
//! when the uploader starts, when the queue has drained after a full queue, after uploads
//! recover from an error, and once a minute while idle.
//!
//! A file uploaded is remembered by a hidden marker next to it,
//! `.<file name>.uploaded` ([`super::upload_marker`]), holding the object key; garbage
//! collection removes the marker with the file, and keeps files without a marker beyond the size
//! budget until a margin is passed ([`UploadSettings::budget_margin_percent`]).
//!
//! Objects are named `<prefix>/service=<service>/date=<YYYY-MM-DD>/host=<host>/<file name>`,
//! the date in UTC from the file's name, the service (`FLIGHT_RECORDER_SERVICE`, by default the
//! program's name) and host from the file's header.
//!
//! A failed upload is retried with exponential backoff (from 500 ms, doubling, with jitter, at
//! most `max_backoff`); the error is printed once on standard error when it is seen twice in a
//! row (or after five failures in a row), again only when it changes or after uploads have
//! worked again.

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::fs;
use std::hash::BuildHasher;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart};

use super::dump_dir::{list_dumps, upload_marker, MARKER_SUFFIX};
use super::{log_line, report_error};
use crate::error::Error;
use crate::record::sync::lock;

/// Where and how automatic capture uploads its files (cargo feature `upload`): the `upload`
/// field of [`CaptureSettings`](super::CaptureSettings), `None` (the default) for no uploads.
///
/// Code or the environment set it (`FLIGHT_RECORDER_UPLOAD=s3://bucket/prefix` and the usual
/// `AWS_*` variables, see `docs/CAPTURE.md`), never the HTTP endpoint, which does not show it.
/// A field left `None` falls back to what `object_store` reads from the environment
/// (`AmazonS3Builder::from_env`: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`, container and web-identity
/// credentials, …). `Debug` shows no credential.
///
/// ```
/// use flight_recorder::capture::{CaptureSettings, UploadSettings};
///
/// let upload = UploadSettings {
///     endpoint: Some("http://127.0.0.1:9000".into()),
///     access_key_id: Some("AKIDEXAMPLE".into()),
///     secret_access_key: Some("wJalrXUtnFEMI".into()),
///     allow_http: true,
///     ..UploadSettings::new("traces", "prod/eu")
/// };
/// let debug = format!("{upload:?}");
/// assert!(!debug.contains("wJalrXUtnFEMI") && !debug.contains("AKIDEXAMPLE"));
/// let settings = CaptureSettings {
///     upload: Some(upload),
///     ..CaptureSettings::default()
/// };
/// assert!(settings.validate().is_ok());
/// ```
/// New fields may come: build it with `..UploadSettings::new(bucket, prefix)`, as above.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadSettings {
    /// The bucket. Must not be empty.
    pub bucket: String,
    /// The key prefix inside the bucket (`prod/eu`; may be empty). Slashes separate its parts;
    /// each part is cleaned like the other parts of a key.
    pub prefix: String,
    /// The endpoint of an S3-compatible server (`http://127.0.0.1:9000`); `None`: AWS itself, or
    /// `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// The region; `None`: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// The access key id; `None`: from the environment or the instance.
    pub access_key_id: Option<String>,
    /// The secret access key; `None`: from the environment or the instance.
    pub secret_access_key: Option<String>,
    /// A session token for temporary credentials.
    pub session_token: Option<String>,
    /// Allow a plain `http://` endpoint (default off; `AWS_ALLOW_HTTP`).
    pub allow_http: bool,
    /// How far beyond `total_dump_size_limit`, in percent of it, files not yet uploaded are kept
    /// (default 50: up to one and a half times the limit). Past that the oldest are deleted
    /// anyway, counted in [`UploadStatus::deleted_before_upload`] and reported on standard error.
    pub budget_margin_percent: u32,
    /// The longest wait between two tries of a failed upload (default 60 s); the waits start at
    /// 500 ms and double, with jitter.
    pub max_backoff: Duration,
    /// The files the upload queue holds (default 64); a file written while it is full is found
    /// by the next rescan of the dump directory.
    pub queue_capacity: usize,
    /// The longest time one request may take (default 2 minutes).
    pub request_timeout: Duration,
}

/// The default of [`UploadSettings::budget_margin_percent`].
pub const DEFAULT_BUDGET_MARGIN_PERCENT: u32 = 50;

/// The highest [`UploadSettings::budget_margin_percent`] accepted.
pub const MAX_BUDGET_MARGIN_PERCENT: u32 = 1000;

/// The first wait after a failed upload.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// How often an idle uploader rescans the dump directory.
const RESCAN_EVERY: Duration = Duration::from_secs(60);

/// How often a waiting uploader looks at the rescan flag and the stop deadline.
const TICK: Duration = Duration::from_millis(250);

/// Files larger than this are sent in parts (multipart upload) instead of one request.
const SINGLE_PUT_MAX: u64 = 32 << 20;

/// The size of a part of a multipart upload.
const PART_SIZE: usize = 16 << 20;

/// How much of a file is read to find its header.
const HEADER_READ_LIMIT: u64 = 1 << 20;

impl UploadSettings {
    /// Settings for `bucket` and `prefix`, every other field at its default (credentials,
    /// endpoint and region from the environment).
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        UploadSettings {
            bucket: bucket.into(),
            prefix: prefix.into(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            allow_http: false,
            budget_margin_percent: DEFAULT_BUDGET_MARGIN_PERCENT,
            max_backoff: Duration::from_secs(60),
            queue_capacity: 64,
            request_timeout: Duration::from_secs(120),
        }
    }

    /// Reads a destination `s3://bucket[/prefix]`, as `FLIGHT_RECORDER_UPLOAD` gives it.
    ///
    /// ```
    /// use flight_recorder::capture::UploadSettings;
    ///
    /// let s = UploadSettings::from_url("s3://traces/prod/eu/").unwrap();
    /// assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("traces", "prod/eu"));
    /// assert!(UploadSettings::from_url("https://example.com/x").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<Self, String> {
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(format!(
                "{url:?} is not an s3:// destination; use e.g. s3://bucket/prefix"
            ));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!(
                "{url:?} names no bucket; use e.g. s3://bucket/prefix"
            ));
        }
        Ok(UploadSettings::new(bucket, prefix.trim_matches('/')))
    }

    /// Checks the settings; the error says which one is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: String| Err(Error::invalid_settings(what));
        if self.bucket.is_empty() || self.bucket.contains('/') {
            return bad(format!(
                "upload.bucket {:?} must be a bucket name, not empty and without '/'",
                self.bucket
            ));
        }
        if self.budget_margin_percent > MAX_BUDGET_MARGIN_PERCENT {
            return bad(format!(
                "upload.budget_margin_percent must be at most {MAX_BUDGET_MARGIN_PERCENT}, not {}",
                self.budget_margin_percent
            ));
        }
        if self.queue_capacity == 0 {
            return bad("upload.queue_capacity must be more than zero".to_string());
        }
        if self.max_backoff < FIRST_BACKOFF {
            return bad("upload.max_backoff must be at least 500ms".to_string());
        }
        if self.request_timeout.is_zero() {
            return bad("upload.request_timeout must be more than zero".to_string());
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                return bad(format!(
                    "upload.endpoint {endpoint:?} must be an http:// or https:// URL"
                ));
            }
        }
        Ok(())
    }

    /// Where files go, without credentials: `s3://bucket/prefix at http://127.0.0.1:9000`.
    pub fn describe(&self) -> String {
        let destination = if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        };
        let endpoint = match (&self.endpoint, &self.region) {
            (Some(endpoint), _) => endpoint.clone(),
            (None, Some(region)) => format!("AWS ({region})"),
            (None, None) => "AWS".into(),
        };
        format!("{destination} at {endpoint}")
    }

    /// Fills `endpoint` and `region`, when not set, from the environment variables
    /// `object_store` reads (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT`, `AWS_REGION`,
    /// `AWS_DEFAULT_REGION`), so that the start-up line names the server files really go to.
    pub(crate) fn fill_from_env(&mut self) {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if self.endpoint.is_none() {
            self.endpoint = var("AWS_ENDPOINT_URL").or_else(|| var("AWS_ENDPOINT"));
        }
        if self.region.is_none() {
            self.region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION"));
        }
    }

    /// The size the dump directory may reach with files not yet uploaded: the limit plus the
    /// margin.
    pub(crate) fn hard_limit(&self, limit: u64) -> u64 {
        limit.saturating_add(limit / 100 * u64::from(self.budget_margin_percent))
    }
}

impl fmt::Debug for UploadSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |set: &Option<String>| set.as_ref().map(|_| "<redacted>");
        f.debug_struct("UploadSettings")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &redacted(&self.access_key_id))
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("allow_http", &self.allow_http)
            .field("budget_margin_percent", &self.budget_margin_percent)
            .field("max_backoff", &self.max_backoff)
            .field("queue_capacity", &self.queue_capacity)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// What the uploader has done since capture started: part of
/// [`CaptureStatus`](super::CaptureStatus) (and of the HTTP endpoint's `/dumps` listing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadStatus {
    /// Files uploaded.
    pub uploaded: u64,
    /// Files waiting in the upload queue (more may wait on disk for the next rescan).
    pub queued: u64,
    /// Tries that failed (each is retried).
    pub failed_attempts: u64,
    /// Files deleted by garbage collection before they were uploaded, because the dump
    /// directory had passed its limit by more than the margin.
    pub deleted_before_upload: u64,
    /// The last upload error, until an upload works again.
    pub last_error: Option<String>,
}

/// The uploader of a running capture.
pub(crate) struct Uploader {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    settings: UploadSettings,
    dir: PathBuf,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Set when a file could not be queued: the directory is rescanned once the queue drains.
    rescan: AtomicBool,
    uploaded: AtomicU64,
    failed_attempts: AtomicU64,
    deleted_before_upload: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Files uploaded whose marker could not be written (a read-only directory): not uploaded
    /// again by this process.
    unmarked: Mutex<HashSet<PathBuf>>,
}

struct Queue {
    files: VecDeque<PathBuf>,
    /// Once capture stops: the time by which the thread exits.
    stop_by: Option<Instant>,
    exited: bool,
}

impl Uploader {
    /// Starts the upload thread for the files of `dir`.
    pub(crate) fn start(settings: UploadSettings, dir: PathBuf) -> io::Result<Uploader> {
        let shared = Arc::new(Shared {
            settings,
            dir,
            queue: Mutex::new(Queue {
                files: VecDeque::new(),
                stop_by: None,
                exited: false,
            }),
            wake: Condvar::new(),
            rescan: AtomicBool::new(true),
            uploaded: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            deleted_before_upload: AtomicU64::new(0),
            last_error: Mutex::new(None),
            unmarked: Mutex::new(HashSet::new()),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("flight-recorder-upload".into())
            .spawn(move || {
                run(&worker);
                lock(&worker.queue).exited = true;
                worker.wake.notify_all();
            })?;
        Ok(Uploader {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The settings the uploader runs with.
    pub(crate) fn settings(&self) -> &UploadSettings {
        &self.shared.settings
    }

    /// Queues a file just written. Never blocks: when the queue is full or busy, the file is left
    /// for the next rescan.
    pub(crate) fn enqueue(&self, path: PathBuf) {
        let shared = &self.shared;
        let mut queue = match shared.queue.try_lock() {
            Ok(queue) => queue,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                shared.rescan.store(true, Ordering::Relaxed);
                return;
            }
        };
        if queue.files.len() < shared.settings.queue_capacity {
            if !queue.files.contains(&path) {
                queue.files.push_back(path);
            }
        } else {
            shared.rescan.store(true, Ordering::Relaxed);
        }
        drop(queue);
        shared.wake.notify_all();
    }

    /// Counts files deleted before they were uploaded.
    pub(crate) fn count_deleted_before_upload(&self, n: u64) -> u64 {
        self.shared
            .deleted_before_upload
            .fetch_add(n, Ordering::Relaxed)
            + n
    }

    /// What the uploader has done.
    pub(crate) fn status(&self) -> UploadStatus {
        let shared = &self.shared;
        UploadStatus {
            uploaded: shared.uploaded.load(Ordering::Relaxed),
            queued: lock(&shared.queue).files.len() as u64,
            failed_attempts: shared.failed_attempts.load(Ordering::Relaxed),
            deleted_before_upload: shared.deleted_before_upload.load(Ordering::Relaxed),
            last_error: lock(&shared.last_error).clone(),
        }
    }

    /// Stops the thread: it goes on with the files queued until `wait` has passed (without
    /// retrying a failure), then exits; this waits for it at most that long. What is left is
    /// uploaded by the next start.
    pub(crate) fn stop(&self, wait: Duration) {
        let deadline = Instant::now() + wait;
        // The thread looks at the deadline every tick, so it is out shortly after it.
        let give_up = deadline + TICK * 2;
        let mut queue = lock(&self.shared.queue);
        queue.stop_by = Some(deadline);
        self.shared.wake.notify_all();
        while !queue.exited {
            let now = Instant::now();
            if now >= give_up {
                break;
            }
            queue = match self.shared.wake.wait_timeout(queue, give_up - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        let exited = queue.exited;
        drop(queue);
        if let Some(thread) = lock(&self.thread).take() {
            if exited {
                let _ = thread.join();
            }
            // Else it is left to finish on its own: a request that outlives the wait must not
            // hold up the program.
        }
    }
}

impl Shared {
    fn stopping(&self) -> Option<Instant> {
        lock(&self.queue).stop_by
    }

    /// Waits `duration`, or less when capture stops; returns whether capture stops.
    fn pause(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut queue = lock(&self.queue);
        while queue.stop_by.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            queue = match self.wake.wait_timeout(queue, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }

    /// Queues the files of the directory that have no marker, oldest first, as many as the
    /// queue holds; removes markers whose file is gone.
    fn rescan(&self) {
        self.rescan.store(false, Ordering::Relaxed);
        remove_orphan_markers(&self.dir);
        lock(&self.unmarked).retain(|path| path.exists());
        let files = match list_dumps(&self.dir) {
            Ok(files) => files,
            Err(e) => {
                report_error(&format!("uploads: listing {}", self.dir.display()), &e);
                return;
            }
        };
        // The markers are looked at before the queue is locked: capture's writer never waits
        // for a scan.
        let pending: Vec<PathBuf> = files
            .into_iter()
            .map(|file| file.path)
            .filter(|path| !upload_marker(path).exists() && !lock(&self.unmarked).contains(path))
            .collect();
        let mut queue = lock(&self.queue);
        for path in pending {
            if queue.files.contains(&path) {
                continue;
            }
            if queue.files.len() >= self.settings.queue_capacity {
                self.rescan.store(true, Ordering::Relaxed);
                break;
            }
            queue.files.push_back(path);
        }
        // Oldest first, the files written since the last scan among them.
        queue
            .files
            .make_contiguous()
            .sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    }
}

/// What became of one upload.
enum Outcome {
    Uploaded,
    /// The file is gone (deleted by garbage collection) or was uploaded already.
    Nothing,
}

/// The upload thread's loop.
fn run(shared: &Shared) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            report_error(
                "uploads: starting the upload runtime; files stay on disk",
                &e,
            );
            return;
        }
    };
    let store = match build_store(&shared.settings) {
        Ok(store) => store,
        Err(e) => {
            report_error(
                &format!(
                    "uploads to {}: the S3 client cannot be built; files stay on disk",
                    shared.settings.describe()
                ),
                &e,
            );
            return;
        }
    };
    let mut backoff = Backoff::new(shared.settings.max_backoff);
    // The error printed (by its fingerprint), the last one seen, and the failures in a row: an
    // error is printed once it is seen twice in a row (a stale pooled connection fails once and
    // is gone at the next try), or after five failures in a row whatever they are.
    let mut reported: Option<String> = None;
    let mut last_seen: Option<String> = None;
    let mut in_a_row = 0u32;
    let mut last_scan: Option<Instant> = None;
    loop {
        let next = {
            let mut queue = lock(&shared.queue);
            loop {
                if let Some(stop_by) = queue.stop_by {
                    if queue.files.is_empty() || Instant::now() >= stop_by {
                        return;
                    }
                }
                if let Some(front) = queue.files.front() {
                    break Some(front.clone());
                }
                if shared.rescan.load(Ordering::Relaxed)
                    || last_scan.is_none_or(|at| at.elapsed() >= RESCAN_EVERY)
                {
                    break None;
                }
                queue = match shared.wake.wait_timeout(queue, TICK) {
                    Ok((guard, _)) => guard,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
        };
        let Some(path) = next else {
            shared.rescan();
            last_scan = Some(Instant::now());
            continue;
        };
        match upload_one(shared, &runtime, &store, &path) {
            Ok(outcome) => {
                let mut queue = lock(&shared.queue);
                if queue.files.front() == Some(&path) {
                    queue.files.pop_front();
                }
                drop(queue);
                if let Outcome::Uploaded = outcome {
                    shared.uploaded.fetch_add(1, Ordering::Relaxed);
                }
                if reported.take().is_some() {
                    *lock(&shared.last_error) = None;
                    log_line(&format!(
                        "flight-recorder: uploads to {} work again",
                        shared.settings.describe()
                    ));
                    // Files that could not be queued meanwhile.
                    shared.rescan.store(true, Ordering::Relaxed);
                }
                backoff.reset();
                last_seen = None;
                in_a_row = 0;
            }
            Err(e) => {
                shared.failed_attempts.fetch_add(1, Ordering::Relaxed);
                let text = e.to_string();
                let fingerprint = fingerprint(&text);
                in_a_row += 1;
                let confirmed = last_seen.as_ref() == Some(&fingerprint) || in_a_row >= 5;
                last_seen = Some(fingerprint.clone());
                if confirmed && reported.as_ref() != Some(&fingerprint) {
                    reported = Some(fingerprint);
                    report_error(
                        &format!(
                            "uploading to {} (retrying with backoff up to {}; recording and \
                             local dumps go on, files wait on disk)",
                            shared.settings.describe(),
                            super::duration_text(shared.settings.max_backoff)
                        ),
                        &text,
                    );
                }
                *lock(&shared.last_error) = Some(text);
                if shared.stopping().is_some() || shared.pause(backoff.next()) {
                    return;
                }
            }
        }
    }
}

/// The S3 client: the environment's `AWS_*` settings, overridden by the fields that are set,
/// without `object_store`'s own retries (the loop retries).
fn build_store(settings: &UploadSettings) -> object_store::Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&settings.bucket)
        .with_retry(RetryConfig {
            max_retries: 0,
            retry_timeout: settings.request_timeout,
            ..RetryConfig::default()
        })
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            format!("{}ms", settings.request_timeout.as_millis()),
        )
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            "5s",
        );
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &settings.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &settings.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &settings.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(token) = &settings.session_token {
        builder = builder.with_token(token);
    }
    if settings.allow_http {
        builder = builder.with_allow_http(true);
    }
    Ok(Arc::new(builder.build()?))
}

/// Uploads one file and writes its marker.
fn upload_one(
    shared: &Shared,
    runtime: &tokio::runtime::Runtime,
    store: &Arc<dyn ObjectStore>,
    path: &Path,
) -> Result<Outcome, String> {
    let marker = upload_marker(path);
    if marker.exists() || lock(&shared.unmarked).contains(path) {
        return Ok(Outcome::Nothing);
    }
    let size = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Outcome::Nothing),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let key = object_key(&shared.settings.prefix, path);
    let location = ObjectPath::from(key.as_str());
    let result = if size <= SINGLE_PUT_MAX {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Outcome::Nothing),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        runtime.block_on(until_stopped(shared, async {
            store.put(&location, bytes.into()).await.map(|_| ())
        }))
    } else {
        let mut file = match fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Outcome::Nothing),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        runtime.block_on(until_stopped(shared, async {
            let upload = store.put_multipart(&location).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let mut buffer = vec![0; 1 << 20];
            loop {
                let n = match file.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        writer.abort().await?;
                        return Err(object_store::Error::Generic {
                            store: "file",
                            source: Box::new(e),
                        });
                    }
                };
                writer.wait_for_capacity(2).await?;
                writer.write(&buffer[..n]);
            }
            writer.finish().await.map(|_| ())
        }))
    };
    match result {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(format!("{}: {}", summary(&e), error_text(&e))),
        None => return Err("capture stopped before the upload finished".into()),
    }
    if path.exists() {
        if let Err(e) = fs::write(&marker, format!("{key}\n")) {
            // Uploaded, but not remembered across a restart: the next process uploads it again
            // (under the same key).
            report_error(&format!("uploads: writing {}", marker.display()), &e);
            lock(&shared.unmarked).insert(path.to_path_buf());
        }
    }
    Ok(Outcome::Uploaded)
}

/// Runs `work` until it ends, or until the stop deadline has passed (`None`).
async fn until_stopped<T>(
    shared: &Shared,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    let mut work = std::pin::pin!(work);
    loop {
        match tokio::time::timeout(TICK, &mut work).await {
            Ok(value) => return Some(value),
            Err(_) => {
                if shared.stopping().is_some_and(|by| Instant::now() >= by) {
                    return None;
                }
            }
        }
    }
}

/// The object key of a dump file:
/// `<prefix>/service=<service>/date=<YYYY-MM-DD>/host=<host>/<file name>`, every part cleaned
/// by [`clean_part`].
pub(crate) fn object_key(prefix: &str, path: &Path) -> String {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let date = super::parse_dump_name(name)
        .map(|(stamp, _)| stamp[..10].to_string())
        .unwrap_or_else(|| "unknown".into());
    let (service, host) = service_and_host(path);
    let mut parts: Vec<String> = prefix
        .split('/')
        .filter(|p| !p.is_empty())
        .map(clean_part)
        .collect();
    parts.push(format!("service={}", clean_part(&service)));
    parts.push(format!("date={}", clean_part(&date)));
    parts.push(format!("host={}", clean_part(&host)));
    parts.push(clean_part(name));
    parts.join("/")
}

/// The service and host a file's header names; this process's when the header cannot be read.
fn service_and_host(path: &Path) -> (String, String) {
    let header = fs::File::open(path).ok().and_then(|file| {
        let input = BufReader::new(file.take(HEADER_READ_LIMIT));
        flight_recorder_format::TraceReader::new(input)
            .ok()
            .map(|reader| reader.header().clone())
    });
    match header {
        // The file's service, or its program's name for a file older than the service field.
        Some(header) => (header.service_name().to_string(), header.host),
        None => (
            crate::file::process::service_name(),
            crate::file::process::process_info().host.clone(),
        ),
    }
}

/// A part of an object key: ASCII letters, digits, `.`, `_`, `-` and `=` kept, anything else
/// (a `/` among them) replaced by `_`; never empty, `.` or `..`.
pub(crate) fn clean_part(part: &str) -> String {
    let cleaned: String = part
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '=') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match cleaned.as_str() {
        "" => "unknown".into(),
        "." | ".." => cleaned.replace('.', "_"),
        _ => cleaned,
    }
}

/// What an upload error most likely means, for the start of its line.
fn summary(error: &object_store::Error) -> &'static str {
    use object_store::Error as E;
    match error {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            "the server refused the credentials (check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, \
             AWS_SESSION_TOKEN and the region)"
        }
        E::NotFound { .. } => "the bucket does not exist",
        _ => {
            let text = error_text(error);
            if text.contains("error sending request") || text.contains("timed out") {
                "the server cannot be reached"
            } else if text.contains("NoSuchBucket") {
                "the bucket does not exist"
            } else {
                "the upload failed"
            }
        }
    }
}

/// An error and its causes, `error: cause: cause`, so that the line says why (`Connection
/// refused`, not only `error sending request`).
fn error_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// An error's text with what changes from one try to the next (times such as `in 850.2µs`,
/// ports, sizes) left out, so that the same failure is reported once.
fn fingerprint(text: &str) -> String {
    text.split_whitespace()
        .filter(|word| !word.starts_with(|c: char| c.is_ascii_digit()))
        .map(|word| word.replace(|c: char| c.is_ascii_digit(), ""))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Removes the markers of `dir` whose dump file is gone.
fn remove_orphan_markers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(dump) = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(MARKER_SUFFIX))
        else {
            continue;
        };
        if super::parse_dump_name(dump).is_some() && !dir.join(dump).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Exponential backoff with jitter: from 500 ms, doubling, at most `max`; each wait is drawn
/// between half and all of the current step.
struct Backoff {
    step: Duration,
    max: Duration,
    random: RandomState,
    draws: u64,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Backoff {
            step: FIRST_BACKOFF,
            max,
            random: RandomState::new(),
            draws: 0,
        }
    }

    fn reset(&mut self) {
        self.step = FIRST_BACKOFF;
    }

    fn next(&mut self) -> Duration {
        self.draws += 1;
        let fraction = (self.random.hash_one(self.draws) % 1000) as f64 / 1000.0;
        let wait = self.step.mul_f64(0.5 + fraction / 2.0);
        self.step = (self.step * 2).min(self.max);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_cleaned_and_laid_out() {
        assert_eq!(clean_part("a/b"), "a_b");
        assert_eq!(clean_part(""), "unknown");
        assert_eq!(clean_part(".."), "__");
        assert_eq!(clean_part("host-1.example"), "host-1.example");
        let dir = tempfile::tempdir().unwrap();
        let path = dir
            .path()
            .join("executiontrace.2026-11-28T02_35_36.123.panic.out");
        std::fs::write(&path, b"not a trace").unwrap();
        let key = object_key("/prod//eu/", &path);
        let process = crate::file::process::process_info();
        assert_eq!(
            key,
            format!(
                "prod/eu/service={}/date=2026-11-28/host={}/executiontrace.2026-11-28T02_35_36.123.panic.out",
                clean_part(&crate::file::process::service_name()),
                clean_part(&process.host)
            )
        );
    }

    #[test]
    fn destinations_and_checks() {
        let s = UploadSettings::from_url("s3://bucket").unwrap();
        assert_eq!(s.prefix, "");
        assert_eq!(s.describe(), "s3://bucket at AWS");
        assert!(UploadSettings::from_url("s3:///x").is_err());
        let mut s = UploadSettings::new("b", "p");
        assert!(s.validate().is_ok());
        s.endpoint = Some("localhost:9000".into());
        assert!(s.validate().is_err());
        s.endpoint = None;
        s.budget_margin_percent = 5000;
        assert!(s.validate().is_err());
        assert_eq!(UploadSettings::new("b", "").hard_limit(1000), 1500);
    }

    #[test]
    fn debug_shows_no_credential() {
        let s = UploadSettings {
            access_key_id: Some("AKIAEXAMPLEKEY".into()),
            secret_access_key: Some("very-secret-value".into()),
            session_token: Some("session-token-value".into()),
            ..UploadSettings::new("bucket", "prefix")
        };
        let debug = format!("{s:?}");
        for secret in ["AKIAEXAMPLEKEY", "very-secret-value", "session-token-value"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(
            debug.contains("<redacted>") && debug.contains("bucket"),
            "{debug}"
        );
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_secs(4));
        let waits: Vec<Duration> = (0..8).map(|_| b.next()).collect();
        assert!(waits[0] >= Duration::from_millis(250) && waits[0] <= FIRST_BACKOFF);
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(4)));
        assert!(waits[7] >= Duration::from_secs(2));
        b.reset();
        assert!(b.next() <= FIRST_BACKOFF);
    }

    #[test]
    fn the_same_failure_has_one_fingerprint() {
        assert_eq!(
            fingerprint("Error performing PUT http://127.0.0.1:4012/b/k in 1.022757ms - HTTP"),
            fingerprint("Error performing PUT http://127.0.0.1:4012/b/k in 850.244µs - HTTP")
        );
        assert_ne!(
            fingerprint("403 Forbidden: SignatureDoesNotMatch"),
            fingerprint("error sending request: Connection refused")
        );
        assert_eq!(
            fingerprint("error sending request for url (http://127.0.0.1:4012/b/k) in 3ms"),
            fingerprint("error sending request for url (http://127.0.0.1:4012/b/k) in 15ms")
        );
    }
}
