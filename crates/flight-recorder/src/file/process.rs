//! What a trace file says about the process that wrote it.

use std::sync::LazyLock;

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

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}
