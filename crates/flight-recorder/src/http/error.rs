//! Errors as HTTP responses: a status code and a JSON body, `{"error": "…", "status": 409}`,
//! sometimes with more fields and a `Retry-After` or `WWW-Authenticate` header.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind};

/// An error answered to the client.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
    /// More fields of the JSON body.
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
            extra: Map::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds.max(1));
        self
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> ApiError {
        self.extra.insert(name.to_string(), value.into());
        self
    }

    /// A recorder's error, with `not_started` as the message for [`ErrorKind::NotStarted`].
    pub fn from_recorder(error: Error, not_started: &str) -> ApiError {
        match error.kind() {
            ErrorKind::NotStarted => ApiError::unavailable(not_started),
            ErrorKind::SnapshotInProgress => ApiError::new(
                StatusCode::CONFLICT,
                "a snapshot is already being written; try again when it is done",
            )
            .retry_after(1),
            ErrorKind::AnotherRecorderRunning | ErrorKind::AlreadyStarted => {
                ApiError::new(StatusCode::CONFLICT, error.to_string()).retry_after(1)
            }
            ErrorKind::InvalidTag | ErrorKind::InvalidSettings => {
                ApiError::bad_request(error.to_string())
            }
            ErrorKind::Io => ApiError::internal(error.to_string()),
        }
    }

    /// A blocking task that did not finish (it panicked or the runtime is shutting down).
    pub fn task(error: tokio::task::JoinError) -> ApiError {
        ApiError::internal(format!("the request's worker failed: {error}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("error".into(), Value::String(self.message));
        body.insert("status".into(), Value::from(self.status.as_u16()));
        body.extend(self.extra);
        let mut response = json_response(self.status, &Value::Object(body));
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"flight-recorder\""),
            );
        }
        response
    }
}

/// A JSON response (`application/json`, not cached).
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    // Serializing a `Value` cannot fail.
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
