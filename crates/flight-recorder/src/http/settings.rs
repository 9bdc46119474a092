//! `GET` and `PUT /settings`: automatic capture's settings as JSON.
//!
//! Durations are strings in the format of the environment variables (`"30s"`, `"250ms"`, `"0"`),
//! sizes are numbers of bytes or strings with a unit (`"512MiB"`), the signal a name, a number or
//! `null`. `PUT` takes any subset of the fields; the whole change is checked before anything is
//! applied, so a refused change leaves the settings as they were, and an error names the value
//! given and shows a valid one. `stacks`, `dump_dir`, `program_version`, `announce`, `ring` and
//! `rules` (the rule triggers, `{"sched_delay": "50ms/1s", "alive_tasks": "+1000/10s",
//! "blocking_queue": "1s", "probe_interval": "100ms"}`, `null` for a rule that is off) are
//! shown but cannot be changed over HTTP (a `PUT` may repeat their current value, so what `GET`
//! returns can be sent back). The signal can only be turned off (`null`) or set back to the one
//! chosen at start (or repeated as it is): a caller of the endpoint never takes `SIGTERM` or any other signal
//! away from the process.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use super::error::{json_response, ApiError};
use crate::capture::{
    self, dump_signals_text, duration_text, parse_duration, parse_signal, parse_size, signal_name,
    CaptureSettings,
};

/// The longest `interval` accepted over HTTP.
const MAX_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest `duration` and `min_dump_interval` accepted over HTTP.
const MAX_DAY: Duration = Duration::from_secs(24 * 3600);
/// The longest `slow_poll_threshold` accepted over HTTP.
const MAX_SLOW_POLL: Duration = Duration::from_secs(3600);
/// The shortest non-zero `slow_poll_threshold` accepted over HTTP.
const MIN_SLOW_POLL: Duration = Duration::from_millis(1);
/// The largest in-memory window (`max_bytes`) accepted over HTTP.
const MAX_WINDOW_BYTES: u64 = 1 << 30;
/// The smallest in-memory window accepted over HTTP: one thread buffer.
const MIN_WINDOW_BYTES: u64 = 64 << 10;

const NOT_RUNNING: &str = "automatic capture (flight_recorder::capture) is not running";

/// The fields `PUT` can change.
const CHANGEABLE: [&str; 9] = [
    "interval",
    "duration",
    "total_dump_size_limit",
    "max_bytes",
    "min_dump_interval",
    "slow_poll_threshold",
    "slow_poll_delay",
    "panic",
    "signal",
];

/// The fields shown by `GET` that `PUT` may only repeat.
const SHOWN_ONLY: [&str; 6] = [
    "stacks",
    "dump_dir",
    "program_version",
    "announce",
    "ring",
    "rules",
];

/// The rule triggers as shown: each rule in the form of its environment variable, `null` when
/// off.
fn rules_json(rules: &capture::RuleSettings) -> Value {
    json!({
        "sched_delay": rules.sched_delay.map(|r| r.to_string()),
        "alive_tasks": rules.alive_tasks.map(|r| r.to_string()),
        "blocking_queue": rules.blocking_queue.map(duration_text),
        "probe_interval": duration_text(rules.probe_interval),
    })
}

fn settings_json(s: &CaptureSettings) -> Value {
    let signal = match s.signal {
        None => Value::Null,
        Some(n) => {
            let name = signal_name(n);
            if name.starts_with("SIG") {
                Value::String(name)
            } else {
                Value::from(n)
            }
        }
    };
    json!({
        "interval": duration_text(s.interval),
        "duration": duration_text(s.duration),
        "total_dump_size_limit": s.total_dump_size_limit,
        "max_bytes": s.max_bytes,
        "min_dump_interval": duration_text(s.min_dump_interval),
        "slow_poll_threshold": duration_text(s.slow_poll_threshold),
        "slow_poll_delay": duration_text(s.slow_poll_delay),
        "stacks": s.stacks,
        "panic": s.panic,
        "signal": signal,
        "dump_dir": s.dump_dir.display().to_string(),
        "program_version": s.program_version,
        "announce": s.announce,
        "ring": s.ring,
        "rules": rules_json(&s.rules),
    })
}

/// `GET /settings`.
pub(super) async fn get_settings() -> Result<Response, ApiError> {
    let settings = capture::settings().ok_or_else(|| ApiError::unavailable(NOT_RUNNING))?;
    Ok(json_response(StatusCode::OK, &settings_json(&settings)))
}

/// A `null` kept apart from a missing field.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The body of `PUT /settings`: any subset of the fields (unknown ones are refused by
/// [`parse_patch`], whose error lists only the fields that can be changed).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Patch {
    interval: Option<Value>,
    duration: Option<Value>,
    total_dump_size_limit: Option<Value>,
    max_bytes: Option<Value>,
    min_dump_interval: Option<Value>,
    slow_poll_threshold: Option<Value>,
    slow_poll_delay: Option<Value>,
    panic: Option<Value>,
    stacks: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    signal: Option<Value>,
    dump_dir: Option<Value>,
    program_version: Option<Value>,
    announce: Option<Value>,
    ring: Option<Value>,
    rules: Option<Value>,
}

fn bad(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("{field}: {why}")).with("field", field)
}

/// How a refused value is named in errors: as JSON (`"bogus"`, `5`, `null`).
fn given(value: &Value) -> String {
    value.to_string()
}

fn duration_value(field: &str, value: &Value, max: Duration) -> Result<Duration, ApiError> {
    let Value::String(text) = value else {
        return Err(bad(
            field,
            format!(
                "{} is not a duration; use e.g. \"30s\", \"5m\", \"0\"",
                given(value)
            ),
        ));
    };
    let d = parse_duration(text.trim()).map_err(|e| bad(field, e))?;
    if d > max {
        return Err(bad(
            field,
            format!(
                "{} is too long; use at most {}",
                given(value),
                capture::duration_text(max)
            ),
        ));
    }
    Ok(d)
}

fn size_value(field: &str, value: &Value) -> Result<u64, ApiError> {
    match value {
        Value::Number(n) => n.as_u64().ok_or_else(|| {
            bad(
                field,
                format!(
                    "{} is not a size; use a whole number of bytes such as 1048576, or \"512MiB\"",
                    given(value)
                ),
            )
        }),
        Value::String(text) => parse_size(text.trim()).map_err(|e| bad(field, e)),
        _ => Err(bad(
            field,
            format!(
                "{} is not a size; use e.g. 1048576 or \"512MiB\"",
                given(value)
            ),
        )),
    }
}

fn bool_value(field: &str, value: &Value) -> Result<bool, ApiError> {
    value.as_bool().ok_or_else(|| {
        bad(
            field,
            format!("{} is not true or false; use e.g. true", given(value)),
        )
    })
}

/// The signal a `PUT` asks for. Over HTTP it can only be turned off, set back to `start` (the
/// one chosen at start, by code or the environment) or repeated as it is (`current`).
fn signal_value(
    value: &Value,
    current: Option<i32>,
    start: Option<i32>,
) -> Result<Option<i32>, ApiError> {
    let not_a_signal = || {
        bad(
            "signal",
            format!(
                "{} is not a signal; use e.g. \"USR2\" or null (off)",
                given(value)
            ),
        )
    };
    let signal = match value {
        Value::Null => None,
        Value::String(text) => parse_signal(text.trim()).map_err(|e| bad("signal", e))?,
        Value::Number(n) => Some(
            n.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(not_a_signal)?,
        ),
        _ => return Err(not_a_signal()),
    };
    match signal {
        None => Ok(None),
        Some(n) if Some(n) == start || Some(n) == current => Ok(Some(n)),
        Some(n) => {
            let allowed = match start {
                Some(start) => format!(
                    "turned off (null) or set back to {}, the one chosen at start",
                    signal_name(start)
                ),
                None => "turned off (null): none was chosen at start".into(),
            };
            Err(bad(
                "signal",
                format!(
                    "{} ({}) cannot be set over HTTP; there the signal can only be {allowed} \
                     (code and the environment may choose {})",
                    given(value),
                    signal_name(n),
                    dump_signals_text()
                ),
            ))
        }
    }
}

/// Reads the body of `PUT /settings`: a JSON object of known fields.
fn parse_patch(body: &[u8]) -> Result<Patch, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))?;
    let Value::Object(fields) = &value else {
        return Err(ApiError::bad_request(format!(
            "bad JSON body: {} is not an object of settings; use e.g. {{\"interval\": \"30s\"}}",
            given(&value)
        )));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !CHANGEABLE.contains(&k.as_str()) && !SHOWN_ONLY.contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "unknown field {unknown:?}; the fields that can be changed over HTTP are {}",
            CHANGEABLE.join(", ")
        ))
        .with("field", unknown.as_str()));
    }
    serde_json::from_value(value).map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))
}

/// The settings with `patch` applied, checked; `current` is not changed. `start_signal` is the
/// dump signal chosen at start.
fn apply(
    patch: &Patch,
    current: &CaptureSettings,
    start_signal: Option<i32>,
) -> Result<CaptureSettings, ApiError> {
    let mut s = current.clone();
    if let Some(v) = &patch.interval {
        s.interval = duration_value("interval", v, MAX_INTERVAL)?;
    }
    if let Some(v) = &patch.duration {
        s.duration = duration_value("duration", v, MAX_DAY)?;
        if s.duration.is_zero() {
            return Err(bad(
                "duration",
                format!("{} is not allowed: it must be more than zero", given(v)),
            ));
        }
    }
    if let Some(v) = &patch.total_dump_size_limit {
        s.total_dump_size_limit = size_value("total_dump_size_limit", v)?;
    }
    if let Some(v) = &patch.max_bytes {
        let n = size_value("max_bytes", v)?;
        if !(MIN_WINDOW_BYTES..=MAX_WINDOW_BYTES).contains(&n) {
            return Err(bad(
                "max_bytes",
                format!(
                    "{} is out of range; use from {MIN_WINDOW_BYTES} (64 KiB) to \
                     {MAX_WINDOW_BYTES} (1 GiB)",
                    given(v)
                ),
            ));
        }
        s.max_bytes = usize::try_from(n)
            .map_err(|_| bad("max_bytes", format!("{} is too large", given(v))))?;
    }
    if let Some(v) = &patch.min_dump_interval {
        s.min_dump_interval = duration_value("min_dump_interval", v, MAX_DAY)?;
    }
    if let Some(v) = &patch.slow_poll_threshold {
        let off = v
            .as_str()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("off"));
        s.slow_poll_threshold = if off {
            Duration::ZERO
        } else {
            duration_value("slow_poll_threshold", v, MAX_SLOW_POLL)?
        };
        if !s.slow_poll_threshold.is_zero() && s.slow_poll_threshold < MIN_SLOW_POLL {
            return Err(bad(
                "slow_poll_threshold",
                format!("{} is too short; use 0 (off) or at least 1ms", given(v)),
            ));
        }
    }
    if let Some(v) = &patch.slow_poll_delay {
        s.slow_poll_delay = duration_value("slow_poll_delay", v, Duration::from_secs(60))?;
    }
    if let Some(v) = &patch.panic {
        s.panic = bool_value("panic", v)?;
    }
    if let Some(v) = &patch.signal {
        s.signal = signal_value(v, current.signal, start_signal)?;
    }
    let read_only = |field: &str, given_value: &Option<Value>, now: Value| match given_value {
        Some(v) if *v != now => Err(bad(
            field,
            format!(
                "{} cannot be set over HTTP; it is chosen by code or the environment",
                given(v)
            ),
        )),
        _ => Ok(()),
    };
    read_only(
        "dump_dir",
        &patch.dump_dir,
        Value::String(current.dump_dir.display().to_string()),
    )?;
    read_only(
        "program_version",
        &patch.program_version,
        Value::String(current.program_version.clone()),
    )?;
    read_only("announce", &patch.announce, Value::Bool(current.announce))?;
    read_only("stacks", &patch.stacks, Value::Bool(current.stacks))?;
    read_only("ring", &patch.ring, Value::Bool(current.ring))?;
    read_only("rules", &patch.rules, rules_json(&current.rules))?;
    s.validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(s)
}

/// `PUT /settings`: changes the fields given, or nothing when anything is wrong.
pub(super) async fn put_settings(
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let patch = parse_patch(&body)?;
    let current = capture::settings().ok_or_else(|| ApiError::unavailable(NOT_RUNNING))?;
    let start_signal = capture::start_signal().ok_or_else(|| ApiError::unavailable(NOT_RUNNING))?;
    let new = apply(&patch, &current, start_signal)?;
    if new != current {
        // Applied as a whole: only the fields of this request change, even if another change
        // happened since `current` was read.
        let refused = tokio::task::spawn_blocking(move || {
            let mut refused = None;
            capture::update_settings(|s| match apply(&patch, s, start_signal) {
                Ok(merged) => *s = merged,
                Err(e) => refused = Some(e),
            })
            .map(|()| refused)
        })
        .await
        .map_err(ApiError::task)?
        .map_err(|e| ApiError::from_recorder(e, NOT_RUNNING))?;
        if let Some(error) = refused {
            return Err(error);
        }
    }
    let settings = capture::settings().ok_or_else(|| ApiError::unavailable(NOT_RUNNING))?;
    Ok(json_response(StatusCode::OK, &settings_json(&settings)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_back() {
        for d in [
            Duration::ZERO,
            Duration::from_secs(90),
            Duration::from_millis(250),
            Duration::from_micros(3),
            Duration::from_nanos(7),
        ] {
            assert_eq!(parse_duration(&duration_text(d)).unwrap(), d);
        }
    }

    #[test]
    fn what_get_returns_can_be_put_back() {
        let current = CaptureSettings {
            rules: capture::RuleSettings {
                sched_delay: Some("50ms/1s".parse().unwrap()),
                blocking_queue: Some(Duration::from_secs(1)),
                ..capture::RuleSettings::default()
            },
            ..CaptureSettings::default()
        };
        assert_eq!(
            settings_json(&current)["rules"],
            json!({
                "sched_delay": "50ms/1s",
                "alive_tasks": null,
                "blocking_queue": "1s",
                "probe_interval": "100ms",
            })
        );
        let value = settings_json(&current);
        let patch: Patch = serde_json::from_value(value).unwrap();
        assert_eq!(apply(&patch, &current, current.signal).unwrap(), current);
    }

    #[test]
    fn wrong_values_are_refused() {
        let current = CaptureSettings::default();
        for body in [
            json!({"interval": "-5s"}),
            json!({"interval": 5}),
            json!({"duration": "0"}),
            json!({"max_bytes": -1}),
            json!({"max_bytes": "2GiB"}),
            json!({"total_dump_size_limit": "lots"}),
            json!({"slow_poll_delay": "61s"}),
            json!({"interval": "1000h"}),
            json!({"slow_poll_threshold": "1us"}),
            json!({"panic": "yes"}),
            json!({"dump_dir": "/etc"}),
            json!({"stacks": false}),
            json!({"ring": !current.ring}),
            json!({"rules": {"sched_delay": "50ms/1s"}}),
        ] {
            let patch: Patch = serde_json::from_value(body.clone()).unwrap();
            assert!(
                apply(&patch, &current, current.signal).is_err(),
                "{body} accepted"
            );
        }
        let unknown = parse_patch(br#"{"intervall": "5s"}"#).err().unwrap();
        let message = unknown.message;
        assert!(message.contains("\"intervall\""), "{message}");
        assert!(message.contains("interval,"), "{message}");
        for shown_only in SHOWN_ONLY {
            assert!(!message.contains(shown_only), "{message}");
        }
    }
}
