//! An HTTP admin endpoint (cargo feature `http`): an axum [`Router`] a service mounts on its
//! admin port, or serves on its own loopback listener with [`serve`].
//!
//! | method and path | what |
//! |---|---|
//! | `GET /debug/flight-recorder/` | a small HTML page linking the rest |
//! | `GET /debug/flight-recorder/snapshot` | a snapshot of the flight-recorder window, as a file download; `?format=perfetto` converts it for ui.perfetto.dev |
//! | `HEAD /debug/flight-recorder/snapshot`, `HEAD …/trace` | the headers of that download only: no snapshot is taken, no trace started |
//! | `GET /debug/flight-recorder/trace?seconds=N` | a full trace of the next `N` seconds (1 by default, at most [`HttpConfig::max_trace_seconds`]), streamed as it is written |
//! | `GET /debug/flight-recorder/dumps` | the dump directory's trace files (JSON: name, time, reason, tag, size) |
//! | `GET /debug/flight-recorder/dumps/{name}` | one of them (download) |
//! | `POST /debug/flight-recorder/dump` | a triggered dump now (the rate limit applies) |
//! | `GET`, `PUT /debug/flight-recorder/settings` | automatic capture's settings (JSON), read and changed at run time |
//!
//! Snapshots come from the [`FlightRecorder`] given in [`HttpConfig::recorder`], or, when none
//! is given, from the window that automatic capture ([`crate::capture`]) records. Dumps and
//! settings belong to automatic capture. When nothing records, the endpoints answer
//! `503 Service Unavailable` with a JSON error. Errors are always JSON:
//! `{"error": "…", "status": 409}`. `docs/HTTP.md` has the whole story.
//!
//! Security: [`serve`] binds a loopback address unless told otherwise; an optional bearer token
//! (compared in constant time) guards every route; a file name from a URL is only ever compared
//! with the names of the listed dump files, never joined onto a path; request bodies and query
//! strings are bounded.
//!
//! ```no_run
//! use flight_recorder::capture::{self, CaptureSettings};
//! use flight_recorder::http::{self, HttpConfig};
//!
//! # async fn run() -> Result<(), flight_recorder::Error> {
//! capture::start(CaptureSettings::default())?;
//! // Its own listener, 127.0.0.1:6060 …
//! let server = http::serve(HttpConfig::default(), http::DEFAULT_ADDR).await?;
//! println!("flight recorder at http://{}/debug/flight-recorder/", server.local_addr());
//! // … or merged into the service's own admin router.
//! let admin: axum::Router = axum::Router::new().merge(http::router(HttpConfig {
//!     token: Some("s3cret".into()),
//!     ..HttpConfig::default()
//! }));
//! # let _ = admin;
//! # Ok(())
//! # }
//! ```

mod body;
mod dumps;
mod error;
mod settings;
mod snapshot;

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::flight::FlightRecorder;
use error::ApiError;

/// The examples of `docs/HTTP.md`, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/HTTP.md")]
pub struct HttpDocs;

/// Where every route lives.
pub const BASE_PATH: &str = "/debug/flight-recorder";

/// The address [`serve`] is usually given: `127.0.0.1:6060`, loopback only.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 6060));

/// The longest query string accepted, bytes.
pub const MAX_QUERY_BYTES: usize = 1024;

/// The settings of the HTTP endpoint.
///
/// ```
/// use flight_recorder::http::HttpConfig;
///
/// let config = HttpConfig {
///     token: Some("s3cret".into()),
///     max_trace_seconds: 30,
///     ..HttpConfig::default()
/// };
/// assert_eq!(config.max_body_bytes, 16 << 10);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct HttpConfig {
    /// A bearer token every request must carry (`Authorization: Bearer <token>`), compared in
    /// constant time; `None` (the default) asks for none. An empty token refuses every request.
    pub token: Option<String>,
    /// The flight recorder snapshots come from. `None` (the default): the window automatic
    /// capture records ([`crate::capture`]).
    pub recorder: Option<Arc<FlightRecorder>>,
    /// The dump directory listed and served by `/dumps`. `None` (the default): automatic
    /// capture's `dump_dir`, as it is at the time of the request.
    pub dump_dir: Option<PathBuf>,
    /// The longest trace `/trace?seconds=N` accepts (default 60).
    pub max_trace_seconds: u64,
    /// The largest snapshot `/snapshot` builds in memory before sending it (default 256 MiB; the
    /// window itself is bounded by its `max_bytes`, 10 MiB by default).
    pub max_snapshot_bytes: usize,
    /// The largest request body accepted (default 16 KiB).
    pub max_body_bytes: usize,
    /// Let [`serve`] bind an address other than a loopback one (default `false`). A token is
    /// then required.
    pub allow_non_loopback: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            token: None,
            recorder: None,
            dump_dir: None,
            max_trace_seconds: 60,
            max_snapshot_bytes: 256 << 20,
            max_body_bytes: 16 << 10,
            allow_non_loopback: false,
        }
    }
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field(
                "recorder",
                &self.recorder.as_ref().map(|_| "FlightRecorder"),
            )
            .field("dump_dir", &self.dump_dir)
            .field("max_trace_seconds", &self.max_trace_seconds)
            .field("max_snapshot_bytes", &self.max_snapshot_bytes)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("allow_non_loopback", &self.allow_non_loopback)
            .finish()
    }
}

/// What the handlers share.
pub(crate) struct Shared {
    config: HttpConfig,
}

type AppState = Arc<Shared>;

/// The endpoint's routes, under `/debug/flight-recorder`, each behind the token check. Merge
/// it into the service's admin router (`Router::merge`; a router with state merges it after its
/// own `with_state`), or serve it with [`serve`].
pub fn router(config: HttpConfig) -> Router {
    let max_body = config.max_body_bytes;
    let state = Arc::new(Shared { config });
    let base = BASE_PATH;
    Router::new()
        .route(base, get(index))
        .route(&format!("{base}/"), get(index))
        .route(
            &format!("{base}/snapshot"),
            get(snapshot::snapshot).head(snapshot::snapshot_head),
        )
        .route(
            &format!("{base}/trace"),
            get(snapshot::trace).head(snapshot::trace_head),
        )
        .route(&format!("{base}/dumps"), get(dumps::list))
        .route(&format!("{base}/dumps/{{name}}"), get(dumps::download))
        .route(&format!("{base}/dump"), post(dumps::dump_now))
        .route(
            &format!("{base}/settings"),
            get(settings::get_settings).put(settings::put_settings),
        )
        .route(&format!("{base}/{{*rest}}"), get(not_found).post(not_found))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Every request: the token, then the query string's size.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.config.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        let ok = match given {
            Some(given) => {
                !token.is_empty() && constant_time_eq(token.as_bytes(), given.as_bytes())
            }
            None => false,
        };
        if !ok {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (Authorization: Bearer <token>)",
            )
            .into_response();
        }
    }
    if request.uri().query().map_or(0, str::len) > MAX_QUERY_BYTES {
        return ApiError::bad_request(format!(
            "the query string is longer than {MAX_QUERY_BYTES} bytes"
        ))
        .into_response();
    }
    next.run(request).await
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

/// Compares a secret with a given value in time that depends only on the secret's length.
fn constant_time_eq(secret: &[u8], given: &[u8]) -> bool {
    let mut diff = u8::from(secret.len() != given.len());
    for (i, &s) in secret.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(!s);
        diff |= s ^ g;
    }
    std::hint::black_box(diff) == 0
}

/// Anything else under the base path.
async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /debug/flight-recorder/")
}

/// The index page.
async fn index() -> Response {
    let mut response = INDEX_HTML.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

const INDEX_HTML: &str = r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>flight-recorder</title>
<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}code{background:#eee;padding:0 .2em}</style>
</head>
<body>
<h1>flight-recorder</h1>
<ul>
<li><a href="/debug/flight-recorder/snapshot">snapshot</a> — the flight recorder's window as a trace file
(<a href="/debug/flight-recorder/snapshot?format=perfetto">for Perfetto</a>)</li>
<li><a href="/debug/flight-recorder/trace?seconds=5">trace?seconds=5</a> — a full trace of the next 5 seconds</li>
<li><a href="/debug/flight-recorder/dumps">dumps</a> — the dump directory's files (JSON); <code>dumps/NAME</code> downloads one</li>
<li><a href="/debug/flight-recorder/settings">settings</a> — automatic capture's settings (JSON; <code>PUT</code> to change)</li>
<li><code>POST /debug/flight-recorder/dump</code> — write a dump now</li>
</ul>
<p>Read a file with <code>flight-recorder summary FILE</code>; open a Perfetto file at ui.perfetto.dev.</p>
</body>
</html>
"#;

/// A running [`serve`]: its address, and a way to stop it. Dropping it stops the server too
/// (requests in progress finish).
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl HttpServer {
    /// The address the server listens on (with the port chosen when `:0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and waits for the requests in progress to finish.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match self.task.take() {
            Some(task) => match task.await {
                Ok(result) => result.map_err(Error::from),
                Err(e) => Err(Error::from(io::Error::other(e))),
            },
            None => Ok(()),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Serves [`router`]`(config)` on `addr` (usually [`DEFAULT_ADDR`], or `127.0.0.1:0` for a port
/// chosen by the system), on a task of the current tokio runtime, which must have I/O enabled.
///
/// Refuses (with an error of kind [`ErrorKind::InvalidSettings`](crate::ErrorKind)) an address
/// that is not a loopback one unless `config.allow_non_loopback` is set and a token is given, and
/// an empty token. Fails with [`ErrorKind::Io`](crate::ErrorKind) when called outside a tokio
/// runtime or when the address cannot be bound.
pub async fn serve(config: HttpConfig, addr: SocketAddr) -> Result<HttpServer, Error> {
    if config.token.as_deref() == Some("") {
        return Err(Error::invalid_settings(
            "the HTTP endpoint's token must not be empty",
        ));
    }
    if !addr.ip().is_loopback() {
        if !config.allow_non_loopback {
            return Err(Error::invalid_settings(format!(
                "refusing to serve the flight recorder on {addr}, which is not a loopback address \
                 (set allow_non_loopback and a token to do so)"
            )));
        }
        if config.token.is_none() {
            return Err(Error::invalid_settings(format!(
                "serving the flight recorder on {addr}, which is not a loopback address, needs a \
                 token"
            )));
        }
    }
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        Error::from(io::Error::other(
            "flight_recorder::http::serve must run inside a tokio runtime",
        ))
    })?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let app = router(config);
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = runtime.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(HttpServer {
        local_addr,
        shutdown: Some(shutdown),
        task: Some(task),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"secret", b"secre"));
        assert!(!constant_time_eq(b"secret", b""));
        assert!(!constant_time_eq(b"a", b"\xff\xff"));
    }

    #[test]
    fn bearer_headers_are_parsed() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn the_router_builds() {
        let _ = router(HttpConfig::default());
    }
}
