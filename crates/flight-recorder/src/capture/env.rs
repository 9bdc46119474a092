//! Configuration from environment variables, so that a service turns capture on with one line at
//! start-up and operators tune it without a rebuild. Each variable and its format is in
//! [`ENV_VARS`] (and the table of `docs/CAPTURE.md`). A variable that cannot be parsed is
//! reported, naming the value given and showing a valid one, and its default kept: a typo never
//! stops the program.

use std::path::PathBuf;
use std::time::Duration;

use super::settings::{check_dump_signal_beside, realtime_signals, signal_name, DUMP_DIR_NAME};
use super::{report_error, start, CaptureSettings};

/// The environment variables read by [`config_from_env`]: name, and what it sets.
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        "FLIGHT_RECORDER_CAPTURE",
        "on or off (1/0, true/false, yes/no); default on",
    ),
    (
        "FLIGHT_RECORDER_LOG_DIR",
        "the log directory; the dump directory is <log dir>/executiontrace_dump; default: the current directory",
    ),
    (
        "FLIGHT_RECORDER_DUMP_DIR",
        "the dump directory itself (wins over FLIGHT_RECORDER_LOG_DIR)",
    ),
    (
        "FLIGHT_RECORDER_INTERVAL",
        "interval, a duration such as 30s, 5m, 1h; 0 turns periodic traces off; default 0",
    ),
    (
        "FLIGHT_RECORDER_DURATION",
        "duration, the history each file covers; default 10s",
    ),
    (
        "FLIGHT_RECORDER_TOTAL_DUMP_SIZE_LIMIT",
        "total_dump_size_limit, a size such as 4GiB, 500MB, 1048576; default 4GiB",
    ),
    (
        "FLIGHT_RECORDER_MAX_BYTES",
        "max_bytes, the in-memory window's size bound; default 10MiB",
    ),
    (
        "FLIGHT_RECORDER_MIN_DUMP_INTERVAL",
        "min_dump_interval, the minimum time between two triggered dumps; default 10s",
    ),
    (
        "FLIGHT_RECORDER_SLOW_POLL",
        "slow_poll_threshold; 0 or off turns the watchdog off; default off",
    ),
    (
        "FLIGHT_RECORDER_SLOW_POLL_DELAY",
        "slow_poll_delay, wait this long after a slow poll before writing; default 0",
    ),
    (
        "FLIGHT_RECORDER_CPU_SAMPLE_HZ",
        "cpu_sample_hz, CPU samples of the runtime's threads per second (1 to 1000); 0 or off turns them off; default off",
    ),
    (
        "FLIGHT_RECORDER_STACKS",
        "stacks, capture a slow poll's worker stack, on or off; default on",
    ),
    (
        "FLIGHT_RECORDER_STACK_SIGNAL",
        "the signal that asks a worker for its stack: a real-time signal (RTMIN+4, RTMAX-2, a number); default RTMIN+4",
    ),
    (
        "FLIGHT_RECORDER_PANIC",
        "dump on panic, on or off; default on",
    ),
    (
        "FLIGHT_RECORDER_SIGNAL",
        "the dump signal: USR1, USR2, a real-time signal (RTMIN, RTMIN+3, RTMAX-1, a number), or off; default USR2",
    ),
    (
        "FLIGHT_RECORDER_PROGRAM_VERSION",
        "the program version written into files (wins over the one given in code)",
    ),
    (
        "FLIGHT_RECORDER_SERVICE",
        "the service name written into every file's header, which groups a fleet's files (wins over the one given in code); default the program's name",
    ),
    (
        "FLIGHT_RECORDER_ANNOUNCE",
        "print the start-up line, on or off; default on",
    ),
    (
        "FLIGHT_RECORDER_RING",
        "ring, keep the recent events in a crash-surviving ring file, on or off; default on (Unix)",
    ),
    (
        "FLIGHT_RECORDER_RING_DIR",
        "ring_dir, the ring directory; default $XDG_RUNTIME_DIR/flight-recorder, else /dev/shm/flight-recorder",
    ),
    (
        "FLIGHT_RECORDER_RULE_SCHED_DELAY",
        "rules.sched_delay, dump when a watched runtime's scheduling delay stays over <threshold> for <time>: 50ms/1s; off; default off",
    ),
    (
        "FLIGHT_RECORDER_RULE_ALIVE_TASKS",
        "rules.alive_tasks, dump when a watched runtime's alive tasks grow by <n> over <time>: +1000/10s; off; default off",
    ),
    (
        "FLIGHT_RECORDER_RULE_BLOCKING_QUEUE",
        "rules.blocking_queue, dump when a watched runtime's blocking queue stays non-empty this long (needs --cfg tokio_unstable): 1s; off; default off",
    ),
    (
        "FLIGHT_RECORDER_UPLOAD",
        "upload, upload every file to S3-compatible storage: s3://bucket/prefix, or off (cargo feature `upload`; endpoint, region and credentials from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ALLOW_HTTP); default off",
    ),
    (
        "FLIGHT_RECORDER_UPLOAD_MARGIN",
        "upload.budget_margin_percent, how far past total_dump_size_limit files not yet uploaded are kept, in percent of it: 50%, 0 to 1000; default 50%",
    ),
    (
        "FLIGHT_RECORDER_UPLOAD_MAX_BACKOFF",
        "upload.max_backoff, the longest wait between two tries of a failed upload (at least 500ms); default 60s",
    ),
    (
        "FLIGHT_RECORDER_RULE_PROBE_INTERVAL",
        "rules.probe_interval, how often rules are evaluated and the scheduling-delay probe spawned (1ms to 10s); default 100ms",
    ),
];

/// Settings read from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvConfig {
    /// Whether capture should run (`FLIGHT_RECORDER_CAPTURE`).
    pub enabled: bool,
    /// The settings: defaults, overridden by each variable that is set and valid.
    pub settings: CaptureSettings,
    /// The stack signal (`FLIGHT_RECORDER_STACK_SIGNAL`), set with
    /// [`crate::stack::set_signal`] by [`init_from_env`]; `None` keeps the one chosen in code or
    /// the default.
    pub stack_signal: Option<i32>,
    /// One line per variable that could not be used (its default was kept).
    pub problems: Vec<String>,
}

/// Reads the settings from the process's environment (see [`ENV_VARS`]).
pub fn config_from_env() -> EnvConfig {
    config_from_vars(|name| std::env::var(name).ok())
}

/// Reads the settings through `var`, which returns a variable's value (for tests and for
/// programs that keep their configuration elsewhere).
///
/// ```
/// use flight_recorder::capture::config_from_vars;
/// use std::time::Duration;
///
/// let config = config_from_vars(|name| match name {
///     "FLIGHT_RECORDER_INTERVAL" => Some("1m".into()),
///     "FLIGHT_RECORDER_TOTAL_DUMP_SIZE_LIMIT" => Some("512MiB".into()),
///     "FLIGHT_RECORDER_SIGNAL" => Some("off".into()),
///     _ => None,
/// });
/// assert!(config.enabled);
/// assert_eq!(config.settings.interval, Duration::from_secs(60));
/// assert_eq!(config.settings.total_dump_size_limit, 512 << 20);
/// assert_eq!(config.settings.signal, None);
/// assert!(config.problems.is_empty());
/// ```
pub fn config_from_vars(var: impl Fn(&str) -> Option<String>) -> EnvConfig {
    let mut settings = CaptureSettings::default();
    let mut problems = Vec::new();
    let mut enabled = true;
    let mut stack_signal = None;
    let mut read = |name: &str, apply: &mut dyn FnMut(&str) -> Result<(), String>| {
        if let Some(value) = var(name) {
            let value = value.trim();
            if let Err(why) = apply(value) {
                problems.push(format!("{name}: {why}; using the default"));
            }
        }
    };
    read("FLIGHT_RECORDER_CAPTURE", &mut |v| {
        enabled = parse_bool(v)?;
        Ok(())
    });
    read("FLIGHT_RECORDER_LOG_DIR", &mut |v| {
        settings.dump_dir = PathBuf::from(directory(v)?).join(DUMP_DIR_NAME);
        Ok(())
    });
    read("FLIGHT_RECORDER_DUMP_DIR", &mut |v| {
        settings.dump_dir = PathBuf::from(directory(v)?);
        Ok(())
    });
    read("FLIGHT_RECORDER_INTERVAL", &mut |v| {
        settings.interval = parse_duration(v)?;
        Ok(())
    });
    read("FLIGHT_RECORDER_DURATION", &mut |v| {
        let d = parse_duration(v)?;
        if d.is_zero() {
            return Err(format!(
                "{v:?} is not allowed: the duration must be more than zero"
            ));
        }
        settings.duration = d;
        Ok(())
    });
    read("FLIGHT_RECORDER_TOTAL_DUMP_SIZE_LIMIT", &mut |v| {
        settings.total_dump_size_limit = parse_size(v)?;
        Ok(())
    });
    read("FLIGHT_RECORDER_MAX_BYTES", &mut |v| {
        let n = parse_size(v)?;
        if n == 0 {
            return Err(format!(
                "{v:?} is not allowed: max_bytes must be more than zero"
            ));
        }
        settings.max_bytes =
            usize::try_from(n).map_err(|_| format!("{v:?} is too large for this machine"))?;
        Ok(())
    });
    read("FLIGHT_RECORDER_MIN_DUMP_INTERVAL", &mut |v| {
        settings.min_dump_interval = parse_duration(v)?;
        Ok(())
    });
    read("FLIGHT_RECORDER_SLOW_POLL", &mut |v| {
        settings.slow_poll_threshold = if is_off(v) {
            Duration::ZERO
        } else {
            parse_duration(v)?
        };
        Ok(())
    });
    read("FLIGHT_RECORDER_SLOW_POLL_DELAY", &mut |v| {
        let d = parse_duration(v)?;
        if d > super::settings::MAX_SLOW_POLL_DELAY {
            return Err(format!("{v:?} is too long; use at most 60s"));
        }
        settings.slow_poll_delay = d;
        Ok(())
    });
    read("FLIGHT_RECORDER_CPU_SAMPLE_HZ", &mut |v| {
        settings.cpu_sample_hz = parse_hz(v)?;
        Ok(())
    });
    read("FLIGHT_RECORDER_STACKS", &mut |v| {
        settings.stacks = parse_bool(v)?;
        Ok(())
    });
    read("FLIGHT_RECORDER_STACK_SIGNAL", &mut |v| {
        let number = parse_signal(v)?.ok_or_else(|| {
            format!("{v:?} is not a stack signal; FLIGHT_RECORDER_STACKS=off turns stacks off")
        })?;
        match realtime_signals() {
            Some((min, max)) if (min..=max).contains(&number) => {
                stack_signal = Some(number);
                Ok(())
            }
            Some((min, max)) => Err(format!(
                "{v:?} ({}) is not a real-time signal; use e.g. RTMIN+4 ({min}..={max} here)",
                signal_name(number)
            )),
            None => Err(format!("{v:?}: stacks are not captured on this platform")),
        }
    });
    read("FLIGHT_RECORDER_PANIC", &mut |v| {
        settings.panic = parse_bool(v)?;
        Ok(())
    });
    read("FLIGHT_RECORDER_SIGNAL", &mut |v| {
        let signal = parse_signal(v)?;
        if let Some(number) = signal {
            let stacks = stack_signal.unwrap_or_else(crate::stack::signal);
            check_dump_signal_beside(number, stacks).map_err(|why| format!("{v:?}: {why}"))?;
        }
        settings.signal = signal;
        Ok(())
    });
    read("FLIGHT_RECORDER_PROGRAM_VERSION", &mut |v| {
        settings.program_version = v.to_string();
        Ok(())
    });
    read("FLIGHT_RECORDER_ANNOUNCE", &mut |v| {
        settings.announce = parse_bool(v)?;
        Ok(())
    });
    read("FLIGHT_RECORDER_RING", &mut |v| {
        settings.ring = parse_bool(v)?;
        Ok(())
    });
    read("FLIGHT_RECORDER_RING_DIR", &mut |v| {
        settings.ring_dir = Some(PathBuf::from(directory(v)?));
        Ok(())
    });
    read("FLIGHT_RECORDER_RULE_SCHED_DELAY", &mut |v| {
        settings.rules.sched_delay = if is_off(v) { None } else { Some(v.parse()?) };
        Ok(())
    });
    read("FLIGHT_RECORDER_RULE_ALIVE_TASKS", &mut |v| {
        settings.rules.alive_tasks = if is_off(v) { None } else { Some(v.parse()?) };
        Ok(())
    });
    read("FLIGHT_RECORDER_RULE_BLOCKING_QUEUE", &mut |v| {
        if is_off(v) {
            settings.rules.blocking_queue = None;
            return Ok(());
        }
        let d = parse_duration(v)
            .map_err(|_| format!("{v:?} is not a duration; use e.g. 1s, or off"))?;
        if d > super::rules::MAX_RULE_DURATION {
            return Err(format!("{v:?} is too long; use at most 1h"));
        }
        // Zero is off, as for the other durations of this file.
        settings.rules.blocking_queue = Some(d).filter(|d| !d.is_zero());
        Ok(())
    });
    read("FLIGHT_RECORDER_RULE_PROBE_INTERVAL", &mut |v| {
        let d = parse_duration(v)?;
        if !(super::rules::MIN_PROBE_INTERVAL..=super::rules::MAX_PROBE_INTERVAL).contains(&d) {
            return Err(format!("{v:?} is out of range; use from 1ms to 10s"));
        }
        settings.rules.probe_interval = d;
        Ok(())
    });
    #[cfg(feature = "upload")]
    read_upload(&var, &mut settings, &mut problems);
    #[cfg(not(feature = "upload"))]
    read("FLIGHT_RECORDER_UPLOAD", &mut |v| {
        if is_off(v) {
            Ok(())
        } else {
            Err(format!(
                "{v:?}: uploads are not built in (build flight-recorder with the cargo feature \
                 `upload`)"
            ))
        }
    });
    // A window too short for the probe interval: the rule is left off, with the reason.
    if let Err(why) = settings.rules.validate() {
        problems.push(format!(
            "FLIGHT_RECORDER_RULE_ALIVE_TASKS: {why}; the rule is off"
        ));
        settings.rules.alive_tasks = None;
    }
    EnvConfig {
        enabled,
        settings,
        stack_signal,
        problems,
    }
}

/// Reads `FLIGHT_RECORDER_UPLOAD` and its companions, and the `AWS_*` variables that say where
/// and as whom (read through `var` like the others, so that tests and programs with their own
/// configuration see the same).
#[cfg(feature = "upload")]
fn read_upload(
    var: &impl Fn(&str) -> Option<String>,
    settings: &mut CaptureSettings,
    problems: &mut Vec<String>,
) {
    let get = |name: &str| {
        var(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let Some(destination) = get("FLIGHT_RECORDER_UPLOAD") else {
        return;
    };
    if is_off(&destination) {
        return;
    }
    let mut upload = match super::UploadSettings::from_url(&destination) {
        Ok(upload) => upload,
        Err(why) => {
            problems.push(format!("FLIGHT_RECORDER_UPLOAD: {why}; uploads are off"));
            return;
        }
    };
    upload.endpoint = get("AWS_ENDPOINT_URL").or_else(|| get("AWS_ENDPOINT"));
    upload.region = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION"));
    upload.access_key_id = get("AWS_ACCESS_KEY_ID");
    upload.secret_access_key = get("AWS_SECRET_ACCESS_KEY");
    upload.session_token = get("AWS_SESSION_TOKEN").or_else(|| get("AWS_TOKEN"));
    if let Some(v) = get("AWS_ALLOW_HTTP") {
        match parse_bool(&v) {
            Ok(allow) => upload.allow_http = allow,
            Err(why) => problems.push(format!("AWS_ALLOW_HTTP: {why}; using the default")),
        }
    }
    if let Some(v) = get("FLIGHT_RECORDER_UPLOAD_MARGIN") {
        let max = super::MAX_BUDGET_MARGIN_PERCENT;
        match v.trim_end_matches('%').trim().parse::<u32>() {
            Ok(percent) if percent <= max => upload.budget_margin_percent = percent,
            _ => problems.push(format!(
                "FLIGHT_RECORDER_UPLOAD_MARGIN: {v:?} is not a percentage from 0 to {max}; use \
                 e.g. 50%; using the default"
            )),
        }
    }
    if let Some(v) = get("FLIGHT_RECORDER_UPLOAD_MAX_BACKOFF") {
        match parse_duration(&v) {
            Ok(d) if d >= Duration::from_millis(500) => upload.max_backoff = d,
            Ok(_) => problems.push(format!(
                "FLIGHT_RECORDER_UPLOAD_MAX_BACKOFF: {v:?} is too short; use at least 500ms; \
                 using the default"
            )),
            Err(why) => problems.push(format!(
                "FLIGHT_RECORDER_UPLOAD_MAX_BACKOFF: {why}; using the default"
            )),
        }
    }
    if let Err(e) = upload.validate() {
        problems.push(format!("FLIGHT_RECORDER_UPLOAD: {e}; uploads are off"));
        return;
    }
    settings.upload = Some(upload);
}

/// Starts automatic capture as the environment says (see [`ENV_VARS`]); the one line a service
/// adds at start-up. `program_version` is written into every file unless
/// `FLIGHT_RECORDER_PROGRAM_VERSION` overrides it; the
/// [`capture_from_env!`](crate::capture_from_env) macro passes the calling crate's name and
/// version.
///
/// Problems are reported on standard error, never as a panic; returns whether capture runs.
///
/// ```no_run
/// flight_recorder::capture::init_from_env("my-service 1.4.2");
/// // … the service …
/// ```
pub fn init_from_env(program_version: &str) -> bool {
    let mut config = config_from_env();
    for problem in &config.problems {
        report_error("environment", problem);
    }
    if !config.enabled {
        if config.settings.announce {
            super::log_line("flight-recorder: automatic capture off (FLIGHT_RECORDER_CAPTURE)");
        }
        return false;
    }
    if let Some(signal) = config.stack_signal {
        if let Err(e) = crate::stack::set_signal(signal) {
            report_error("environment: FLIGHT_RECORDER_STACK_SIGNAL", &e);
        }
    }
    if config.settings.program_version.is_empty() {
        config.settings.program_version = program_version.to_string();
    }
    match start(config.settings) {
        Ok(()) => true,
        Err(e) => {
            report_error("starting automatic capture", &e);
            false
        }
    }
}

/// A directory: any non-empty text.
fn directory(v: &str) -> Result<&str, String> {
    if v.is_empty() {
        Err(format!("{v:?} is not a directory; use e.g. /var/log/app"))
    } else {
        Ok(v)
    }
}

fn is_off(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "off" | "false" | "no" | "none" | "0"
    )
}

/// A CPU sampling rate: `off` or 0 to 1000.
fn parse_hz(v: &str) -> Result<u32, String> {
    if is_off(v) {
        return Ok(0);
    }
    let max = super::settings::MAX_CPU_SAMPLE_HZ;
    match v
        .trim_end_matches("Hz")
        .trim_end_matches("hz")
        .trim()
        .parse::<u32>()
    {
        Ok(hz) if hz <= max => Ok(hz),
        Ok(_) => Err(format!("{v:?} is too high; use at most {max} (such as 99)")),
        Err(_) => Err(format!(
            "{v:?} is not a rate per second (such as 99, or off)"
        )),
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err(format!("{v:?} is not on or off; use e.g. on, off, 1, 0")),
    }
}

/// `0`, or a number (with an optional fraction) and a unit: `ns`, `us`, `ms`, `s`, `m`, `h`.
/// The error names `v` and shows valid durations.
pub(crate) fn parse_duration(v: &str) -> Result<Duration, String> {
    duration_of(v).ok_or_else(|| format!("{v:?} is not a duration; use e.g. 30s, 5m, 0"))
}

fn duration_of(v: &str) -> Option<Duration> {
    if v == "0" {
        return Some(Duration::ZERO);
    }
    let split = v.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = v.split_at(split);
    let number: f64 = number.parse().ok()?;
    let unit_ns = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    let ns = number * unit_ns;
    if !ns.is_finite() || ns > 1e18 {
        return None;
    }
    Some(Duration::from_nanos(ns.round() as u64))
}

/// A number of bytes, with an optional unit: `B`, `KB`, `MB`, `GB`, `TB` (powers of 1000) or
/// `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024), case-insensitive. The error names `v` and shows
/// valid sizes.
pub(crate) fn parse_size(v: &str) -> Result<u64, String> {
    size_of(v).ok_or_else(|| format!("{v:?} is not a size; use e.g. 4GiB, 500MB, 1048576"))
}

fn size_of(v: &str) -> Option<u64> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// `off`, a signal number, or a name with or without `SIG` (`USR2`, `SIGUSR1`, `RTMIN`,
/// `RTMIN+3`, `SIGRTMAX-1`). Only the parse: whether the signal may trigger dumps is checked by
/// the settings. The error names `v` and shows valid signals.
pub(crate) fn parse_signal(v: &str) -> Result<Option<i32>, String> {
    if is_off(v) {
        return Ok(None);
    }
    signal_of(v)
        .map(Some)
        .ok_or_else(|| format!("{v:?} is not a signal; use e.g. USR2, SIGUSR1, RTMIN+1, off"))
}

fn signal_of(v: &str) -> Option<i32> {
    if let Ok(number) = v.parse::<i32>() {
        return Some(number);
    }
    let upper = v.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((min, max)) = realtime_signals() {
        if let Some(rest) = name.strip_prefix("RTMIN") {
            return match rest {
                "" => Some(min),
                _ => Some(min + i32::from(rest.strip_prefix('+')?.parse::<u8>().ok()?)),
            };
        }
        if let Some(rest) = name.strip_prefix("RTMAX") {
            return match rest {
                "" => Some(max),
                _ => Some(max - i32::from(rest.strip_prefix('-')?.parse::<u8>().ok()?)),
            };
        }
    }
    #[cfg(all(unix, feature = "signal"))]
    {
        (1..65).find(|&number| {
            signal_hook::low_level::signal_name(number).and_then(|known| known.strip_prefix("SIG"))
                == Some(name)
        })
    }
    #[cfg(not(all(unix, feature = "signal")))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> EnvConfig {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        config_from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn nothing_set_gives_the_defaults() {
        let c = config(&[]);
        assert!(c.enabled);
        assert_eq!(c.settings, CaptureSettings::default());
        assert!(c.problems.is_empty());
    }

    #[test]
    fn every_variable_is_read() {
        let c = config(&[
            ("FLIGHT_RECORDER_CAPTURE", "on"),
            ("FLIGHT_RECORDER_LOG_DIR", "/var/log/app"),
            ("FLIGHT_RECORDER_INTERVAL", "5m"),
            ("FLIGHT_RECORDER_DURATION", "2.5s"),
            ("FLIGHT_RECORDER_TOTAL_DUMP_SIZE_LIMIT", "500MB"),
            ("FLIGHT_RECORDER_MAX_BYTES", "64MiB"),
            ("FLIGHT_RECORDER_MIN_DUMP_INTERVAL", "30s"),
            ("FLIGHT_RECORDER_SLOW_POLL", "100ms"),
            ("FLIGHT_RECORDER_SLOW_POLL_DELAY", "200ms"),
            ("FLIGHT_RECORDER_PANIC", "off"),
            ("FLIGHT_RECORDER_STACKS", "off"),
            ("FLIGHT_RECORDER_SIGNAL", "usr1"),
            ("FLIGHT_RECORDER_PROGRAM_VERSION", "svc 2.0"),
            ("FLIGHT_RECORDER_ANNOUNCE", "no"),
            ("FLIGHT_RECORDER_RING", "off"),
            ("FLIGHT_RECORDER_RING_DIR", "/run/rings"),
            ("FLIGHT_RECORDER_RULE_SCHED_DELAY", "50ms/1s"),
            ("FLIGHT_RECORDER_RULE_ALIVE_TASKS", "+1000/10s"),
            ("FLIGHT_RECORDER_RULE_BLOCKING_QUEUE", "1s"),
            ("FLIGHT_RECORDER_RULE_PROBE_INTERVAL", "200ms"),
        ]);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        let s = c.settings;
        assert_eq!(
            s.dump_dir,
            PathBuf::from("/var/log/app/executiontrace_dump")
        );
        assert_eq!(s.interval, Duration::from_secs(300));
        assert_eq!(s.duration, Duration::from_millis(2500));
        assert_eq!(s.total_dump_size_limit, 500_000_000);
        assert_eq!(s.max_bytes, 64 << 20);
        assert_eq!(s.min_dump_interval, Duration::from_secs(30));
        assert_eq!(s.slow_poll_threshold, Duration::from_millis(100));
        assert_eq!(s.slow_poll_delay, Duration::from_millis(200));
        assert!(!s.panic);
        assert!(!s.stacks);
        #[cfg(all(unix, feature = "signal"))]
        assert_eq!(s.signal, Some(signal_hook::consts::SIGUSR1));
        assert_eq!(s.program_version, "svc 2.0");
        assert!(!s.announce);
        assert!(!s.ring);
        assert_eq!(s.ring_dir, Some(PathBuf::from("/run/rings")));
        assert_eq!(
            s.rules.sched_delay,
            Some(crate::capture::SchedDelayRule {
                threshold: Duration::from_millis(50),
                sustained: Duration::from_secs(1),
            })
        );
        assert_eq!(
            s.rules.alive_tasks,
            Some(crate::capture::AliveTasksRule {
                growth: 1000,
                over: Duration::from_secs(10),
            })
        );
        assert_eq!(s.rules.blocking_queue, Some(Duration::from_secs(1)));
        assert_eq!(s.rules.probe_interval, Duration::from_millis(200));
    }

    #[test]
    fn rules_from_the_environment() {
        for off in ["off", "0", "no"] {
            let c = config(&[
                ("FLIGHT_RECORDER_RULE_SCHED_DELAY", off),
                ("FLIGHT_RECORDER_RULE_ALIVE_TASKS", off),
                ("FLIGHT_RECORDER_RULE_BLOCKING_QUEUE", off),
            ]);
            assert!(c.problems.is_empty(), "{off}: {:?}", c.problems);
            assert!(!c.settings.rules.any(), "{off}");
        }
        let c = config(&[("FLIGHT_RECORDER_RULE_ALIVE_TASKS", "500/1m")]);
        assert_eq!(c.settings.rules.alive_tasks.map(|r| r.growth), Some(500));
        // A window shorter than ten probe intervals leaves the rule off, and says why.
        let c = config(&[
            ("FLIGHT_RECORDER_RULE_ALIVE_TASKS", "+100/2s"),
            ("FLIGHT_RECORDER_RULE_PROBE_INTERVAL", "1s"),
        ]);
        assert_eq!(c.settings.rules.alive_tasks, None);
        assert_eq!(c.settings.rules.probe_interval, Duration::from_secs(1));
        assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
        assert!(
            c.problems[0].contains("FLIGHT_RECORDER_RULE_ALIVE_TASKS")
                && c.problems[0].contains("at least 10s"),
            "{:?}",
            c.problems
        );
        assert!(c.settings.validate().is_ok());
    }

    #[test]
    fn the_ring_from_the_environment() {
        for (value, on) in [("on", true), ("1", true), ("off", false), ("no", false)] {
            let c = config(&[("FLIGHT_RECORDER_RING", value)]);
            assert!(c.problems.is_empty(), "{value}: {:?}", c.problems);
            assert_eq!(c.settings.ring, on, "{value}");
        }
        let c = config(&[
            ("FLIGHT_RECORDER_RING", "sometimes"),
            ("FLIGHT_RECORDER_RING_DIR", ""),
        ]);
        assert_eq!(c.settings.ring, cfg!(unix), "the default is kept");
        assert_eq!(c.settings.ring_dir, None, "the default is kept");
        assert_eq!(c.problems.len(), 2, "{:?}", c.problems);
        assert!(
            c.problems[0].contains("FLIGHT_RECORDER_RING:") && c.problems[0].contains("sometimes"),
            "{:?}",
            c.problems
        );
        assert!(
            c.problems[1].contains("FLIGHT_RECORDER_RING_DIR") && c.problems[1].contains("\"\""),
            "{:?}",
            c.problems
        );
    }

    #[test]
    fn cpu_sample_rates_from_the_environment() {
        for (value, hz) in [
            ("99", 99),
            ("1000", 1000),
            ("199Hz", 199),
            ("0", 0),
            ("off", 0),
        ] {
            let c = config(&[("FLIGHT_RECORDER_CPU_SAMPLE_HZ", value)]);
            assert!(c.problems.is_empty(), "{value}: {:?}", c.problems);
            assert_eq!(c.settings.cpu_sample_hz, hz, "{value}");
        }
        for value in ["5000", "fast", "-1"] {
            let c = config(&[("FLIGHT_RECORDER_CPU_SAMPLE_HZ", value)]);
            assert_eq!(c.settings.cpu_sample_hz, 0);
            assert_eq!(c.problems.len(), 1, "{value}");
            assert!(
                c.problems[0].contains("FLIGHT_RECORDER_CPU_SAMPLE_HZ")
                    && c.problems[0].contains(value),
                "{:?}",
                c.problems
            );
        }
    }

    #[test]
    fn the_dump_dir_wins_over_the_log_dir() {
        let c = config(&[
            ("FLIGHT_RECORDER_DUMP_DIR", "/data/traces"),
            ("FLIGHT_RECORDER_LOG_DIR", "/var/log/app"),
        ]);
        assert_eq!(c.settings.dump_dir, PathBuf::from("/data/traces"));
    }

    #[test]
    fn bad_values_keep_the_default_and_are_reported() {
        let c = config(&[
            ("FLIGHT_RECORDER_CAPTURE", "maybe"),
            ("FLIGHT_RECORDER_INTERVAL", "10"),
            ("FLIGHT_RECORDER_DURATION", "0"),
            ("FLIGHT_RECORDER_TOTAL_DUMP_SIZE_LIMIT", "4 potatoes"),
            ("FLIGHT_RECORDER_SIGNAL", "SIGNOPE"),
        ]);
        assert!(c.enabled);
        assert_eq!(c.settings, CaptureSettings::default());
        assert_eq!(c.problems.len(), 5, "{:?}", c.problems);
        assert!(c.problems[1].contains("FLIGHT_RECORDER_INTERVAL"));
    }

    #[test]
    fn every_problem_names_the_value_given() {
        for (name, value, says) in [
            ("FLIGHT_RECORDER_CAPTURE", "maybe", "is not on or off"),
            ("FLIGHT_RECORDER_LOG_DIR", "", "is not a directory"),
            ("FLIGHT_RECORDER_DUMP_DIR", "", "is not a directory"),
            (
                "FLIGHT_RECORDER_INTERVAL",
                "bogus",
                "is not a duration; use e.g. 30s, 5m, 0",
            ),
            ("FLIGHT_RECORDER_DURATION", "0", "must be more than zero"),
            (
                "FLIGHT_RECORDER_TOTAL_DUMP_SIZE_LIMIT",
                "lots",
                "is not a size; use e.g.",
            ),
            ("FLIGHT_RECORDER_MAX_BYTES", "12 potatoes", "is not a size"),
            (
                "FLIGHT_RECORDER_MIN_DUMP_INTERVAL",
                "soon",
                "is not a duration",
            ),
            ("FLIGHT_RECORDER_SLOW_POLL", "slow", "is not a duration"),
            ("FLIGHT_RECORDER_SLOW_POLL_DELAY", "2m", "use at most 60s"),
            ("FLIGHT_RECORDER_PANIC", "sometimes", "is not on or off"),
            ("FLIGHT_RECORDER_STACKS", "perhaps", "is not on or off"),
            (
                "FLIGHT_RECORDER_STACK_SIGNAL",
                "SIGNOPE",
                "is not a signal; use e.g.",
            ),
            (
                "FLIGHT_RECORDER_SIGNAL",
                "SIGNOPE",
                "is not a signal; use e.g. USR2",
            ),
            ("FLIGHT_RECORDER_ANNOUNCE", "loud", "is not on or off"),
            (
                "FLIGHT_RECORDER_RULE_SCHED_DELAY",
                "50ms",
                "is not <threshold>/<for>; use e.g. 50ms/1s",
            ),
            (
                "FLIGHT_RECORDER_RULE_SCHED_DELAY",
                "0s/1s",
                "must be more than zero",
            ),
            (
                "FLIGHT_RECORDER_RULE_ALIVE_TASKS",
                "lots/10s",
                "is not +<tasks>/<over>; use e.g. +1000/10s",
            ),
            ("FLIGHT_RECORDER_RULE_ALIVE_TASKS", "+0/10s", "at least +1"),
            (
                "FLIGHT_RECORDER_RULE_BLOCKING_QUEUE",
                "full",
                "is not a duration; use e.g. 1s",
            ),
            (
                "FLIGHT_RECORDER_RULE_BLOCKING_QUEUE",
                "2h",
                "use at most 1h",
            ),
            (
                "FLIGHT_RECORDER_RULE_PROBE_INTERVAL",
                "1m",
                "use from 1ms to 10s",
            ),
            (
                "FLIGHT_RECORDER_RULE_PROBE_INTERVAL",
                "often",
                "is not a duration",
            ),
        ] {
            let c = config(&[(name, value)]);
            assert_eq!(c.problems.len(), 1, "{name}: {:?}", c.problems);
            let problem = &c.problems[0];
            assert!(problem.starts_with(name), "{problem}");
            assert!(problem.contains(&format!("{value:?}")), "{problem}");
            assert!(problem.contains(says), "{problem}");
        }
    }

    #[cfg(all(target_os = "linux", feature = "signal"))]
    #[test]
    fn only_dump_signals_are_taken_from_the_environment() {
        for taken in [
            "TERM", "SIGINT", "HUP", "QUIT", "PIPE", "SEGV", "ABRT", "9", "CHLD",
        ] {
            let c = config(&[("FLIGHT_RECORDER_SIGNAL", taken)]);
            assert_eq!(
                c.settings.signal,
                CaptureSettings::default().signal,
                "{taken}"
            );
            assert!(
                c.problems[0].contains(&format!("{taken:?}")),
                "{:?}",
                c.problems
            );
            assert!(
                c.problems[0].contains("cannot trigger dumps"),
                "{:?}",
                c.problems
            );
        }
        let rtmin = libc::SIGRTMIN();
        for (given, number) in [
            ("USR1", libc::SIGUSR1),
            ("sigusr2", libc::SIGUSR2),
            ("RTMIN", rtmin),
            ("SIGRTMIN+3", rtmin + 3),
            ("RTMAX-1", libc::SIGRTMAX() - 1),
        ] {
            let c = config(&[("FLIGHT_RECORDER_SIGNAL", given)]);
            assert!(c.problems.is_empty(), "{given}: {:?}", c.problems);
            assert_eq!(c.settings.signal, Some(number), "{given}");
        }
    }

    #[cfg(all(target_os = "linux", feature = "signal"))]
    #[test]
    fn the_stack_signal_is_a_realtime_signal_apart_from_the_dump_signal() {
        let rtmin = libc::SIGRTMIN();
        let c = config(&[("FLIGHT_RECORDER_STACK_SIGNAL", "SIGRTMIN+6")]);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.stack_signal, Some(rtmin + 6));
        for (bad, says) in [
            ("USR1", "is not a real-time signal"),
            ("TERM", "is not a real-time signal"),
            ("off", "FLIGHT_RECORDER_STACKS=off"),
        ] {
            let c = config(&[("FLIGHT_RECORDER_STACK_SIGNAL", bad)]);
            assert_eq!(c.stack_signal, None, "{bad}");
            assert!(
                c.problems[0].contains(&format!("{bad:?}")),
                "{:?}",
                c.problems
            );
            assert!(c.problems[0].contains(says), "{:?}", c.problems);
        }
        // The dump signal may not be the stack signal, the default one or the one chosen.
        let c = config(&[
            ("FLIGHT_RECORDER_STACK_SIGNAL", "RTMIN+6"),
            ("FLIGHT_RECORDER_SIGNAL", "RTMIN+6"),
        ]);
        assert_eq!(c.settings.signal, CaptureSettings::default().signal);
        assert!(c.problems[0].contains("stacks use it"), "{:?}", c.problems);
        let c = config(&[(
            "FLIGHT_RECORDER_SIGNAL",
            &crate::stack::signal().to_string(),
        )]);
        assert!(c.problems[0].contains("stacks use it"), "{:?}", c.problems);
    }

    #[test]
    #[cfg(feature = "upload")]
    fn uploads_from_the_environment() {
        let c = config(&[
            ("FLIGHT_RECORDER_UPLOAD", "s3://traces/prod/eu"),
            ("FLIGHT_RECORDER_UPLOAD_MARGIN", "20%"),
            ("FLIGHT_RECORDER_UPLOAD_MAX_BACKOFF", "5s"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_DEFAULT_REGION", "eu-west-3"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("AWS_ALLOW_HTTP", "true"),
        ]);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        let u = c.settings.upload.clone().unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.prefix.as_str()),
            ("traces", "prod/eu")
        );
        assert_eq!(u.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(u.region.as_deref(), Some("eu-west-3"));
        assert_eq!(u.secret_access_key.as_deref(), Some("s3cr3t"));
        assert!(u.allow_http);
        assert_eq!(u.budget_margin_percent, 20);
        assert_eq!(u.max_backoff, Duration::from_secs(5));
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let line = c.settings.describe();
        assert!(
            line.contains("uploads to s3://traces/prod/eu at http://127.0.0.1:9000"),
            "{line}"
        );
        assert!(!line.contains("s3cr3t") && !line.contains("AKID"), "{line}");
        // Off, or not set: no uploads; a wrong destination or margin is reported.
        assert_eq!(
            config(&[("FLIGHT_RECORDER_UPLOAD", "off")]).settings.upload,
            None
        );
        assert_eq!(
            config(&[("AWS_ACCESS_KEY_ID", "AKID")]).settings.upload,
            None
        );
        let c = config(&[("FLIGHT_RECORDER_UPLOAD", "https://bucket")]);
        assert_eq!(c.settings.upload, None);
        assert!(
            c.problems[0].contains("is not an s3:// destination"),
            "{:?}",
            c.problems
        );
        let c = config(&[
            ("FLIGHT_RECORDER_UPLOAD", "s3://b"),
            ("FLIGHT_RECORDER_UPLOAD_MARGIN", "lots"),
        ]);
        assert_eq!(c.settings.upload.unwrap().budget_margin_percent, 50);
        assert!(c.problems[0].contains("\"lots\""), "{:?}", c.problems);
    }

    #[test]
    #[cfg(not(feature = "upload"))]
    fn uploads_need_the_feature() {
        let c = config(&[("FLIGHT_RECORDER_UPLOAD", "s3://traces/prod")]);
        assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
        assert!(c.problems[0].contains("cargo feature"), "{:?}", c.problems);
        assert!(config(&[("FLIGHT_RECORDER_UPLOAD", "off")])
            .problems
            .is_empty());
    }

    #[test]
    fn capture_can_be_turned_off() {
        assert!(!config(&[("FLIGHT_RECORDER_CAPTURE", "0")]).enabled);
        let off = config(&[("FLIGHT_RECORDER_SLOW_POLL", "off")]);
        assert_eq!(off.settings.slow_poll_threshold, Duration::ZERO);
        for off in ["0", "off", "false"] {
            assert!(!config(&[("FLIGHT_RECORDER_STACKS", off)]).settings.stacks);
        }
    }

    #[test]
    fn units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("s").is_err());
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("10kb"), Ok(10_000));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("1EiB").is_err());
    }
}
