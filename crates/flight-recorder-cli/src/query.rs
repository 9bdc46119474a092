//! `flight-recorder query "SQL" FILE|DIR|s3://bucket/prefix...`: runs the
//! `flight-recorder-query` executable (SQL with DataFusion, a crate of its own so that this
//! command stays light), found beside this executable or on `PATH`, with the same arguments, and
//! returns its exit status.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The executable that answers `query`.
pub const EXECUTABLE: &str = "flight-recorder-query";

/// Where the query executable is: beside `current_exe`'s directory first, then on `path` (a
/// `PATH`-style list).
pub fn find_executable(
    current_exe: Option<&Path>,
    path: Option<&std::ffi::OsStr>,
) -> Option<PathBuf> {
    let name = format!("{EXECUTABLE}{}", std::env::consts::EXE_SUFFIX);
    let beside = current_exe
        .and_then(Path::parent)
        .map(|dir| dir.join(&name));
    let on_path = path
        .into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(&name));
    beside.into_iter().chain(on_path).find(|p| p.is_file())
}

/// Runs the query executable with `args` and returns its exit status; when it is missing or
/// cannot start, one line on standard error saying how to install it, and exit status 2.
pub fn query(args: Vec<OsString>) -> ExitCode {
    let current = std::env::current_exe().ok();
    let path = std::env::var_os("PATH");
    let Some(executable) = find_executable(current.as_deref(), path.as_deref()) else {
        eprintln!(
            "flight-recorder: query needs the {EXECUTABLE} executable, beside this one or on PATH: \
             install it with `cargo install --path crates/flight-recorder-query` (or build it \
             with `cargo build --release -p flight-recorder-query`)"
        );
        return ExitCode::from(2);
    };
    match Command::new(&executable).args(args).status() {
        Ok(status) => match status.code() {
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => ExitCode::FAILURE,
        },
        Err(e) => {
            eprintln!("flight-recorder: {}: {e}", executable.display());
            ExitCode::from(2)
        }
    }
}
