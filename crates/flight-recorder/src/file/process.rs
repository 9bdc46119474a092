//! What a trace file says about the process that wrote it.

use std::sync::{LazyLock, RwLock};

/// The process's name, id, host and command line, read once.
pub(crate) struct ProcessInfo {
    pub program: String,
    pub pid: u64,
    pub host: String,
    pub cmdline: String,
}

static PROCESS: LazyLock<ProcessInfo> = LazyLock::new(|| {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let program = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| args.first().cloned())
        .unwrap_or_default();
    ProcessInfo {
        program,
        pid: u64::from(std::process::id()),
        host: host_name(),
        cmdline: args.join(" "),
    }
});

pub(crate) fn process_info() -> &'static ProcessInfo {
    &PROCESS
}

/// The service name given in code; `FLIGHT_RECORDER_SERVICE` wins over it.
static SERVICE: RwLock<Option<String>> = RwLock::new(None);

/// The environment variable that names the service.
const SERVICE_ENV: &str = "FLIGHT_RECORDER_SERVICE";

/// The name of the service this process belongs to, written into the header of every trace file
/// it writes to group a fleet's files.
///
/// It is, in order: the `FLIGHT_RECORDER_SERVICE` environment variable when set and not blank
/// (so that operators can name a service without a new build, as `FLIGHT_RECORDER_PROGRAM_VERSION`
/// does for the version), the name given to [`set_service_name`], or the program's name.
pub fn service_name() -> String {
    if let Some(name) = std::env::var(SERVICE_ENV)
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
    {
        return name;
    }
    SERVICE
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(|| process_info().program.clone())
}

/// Names the service this process belongs to, for every trace file written from now on, unless
/// `FLIGHT_RECORDER_SERVICE` names another (see [`service_name`]). A blank name goes back to the
/// default.
///
/// ```
/// flight_recorder::set_service_name("checkout");
/// # if std::env::var_os("FLIGHT_RECORDER_SERVICE").is_none() {
/// assert_eq!(flight_recorder::service_name(), "checkout");
/// # }
/// ```
pub fn set_service_name(name: impl Into<String>) {
    let name = name.into().trim().to_string();
    *SERVICE.write().unwrap_or_else(|e| e.into_inner()) = (!name.is_empty()).then_some(name);
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}
