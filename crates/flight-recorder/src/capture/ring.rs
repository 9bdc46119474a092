//! Automatic capture keeps its chunks in a ring (`crate::ring`) and, when it starts, recovers the
//! rings of processes that died, into the dump directories they recorded.
//!
//! On by default on Unix; [`CaptureSettings::ring`] turns it off and
//! [`CaptureSettings::ring_dir`] sets the ring directory (default
//! [`crate::ring::default_ring_dir`]); the environment sets them with `FLIGHT_RECORDER_RING` and
//! `FLIGHT_RECORDER_RING_DIR` (`super::env`).

use std::path::PathBuf;

use super::settings::CaptureSettings;
use crate::ring::{recover_rings, RecoveryOutcome, RingConfig};

/// The variable that turns the ring on or off (`on`/`off`, `1`/`0`, `true`/`false`, `yes`/`no`).
pub const RING_ENV: &str = "FLIGHT_RECORDER_RING";
/// The variable that sets the ring directory.
pub const RING_DIR_ENV: &str = "FLIGHT_RECORDER_RING_DIR";

/// The ring directory of `settings`, `None` when the ring is off.
fn ring_dir(settings: &CaptureSettings) -> Option<PathBuf> {
    settings.ring.then(|| settings.ring_dir_or_default())
}

/// The ring of automatic capture's recorder: in the ring directory, recovered into the dump
/// directory; `None` when turned off.
pub(crate) fn config(settings: &CaptureSettings) -> Option<RingConfig> {
    Some(RingConfig {
        dir: ring_dir(settings)?,
        dump_dir: settings.dump_dir.clone(),
        ..RingConfig::default()
    })
}

/// Recovers the rings of dead processes in the ring directory (each into the dump directory it
/// recorded) and says what it did on standard error.
pub(crate) fn recover_at_start(settings: &CaptureSettings) {
    let Some(dir) = ring_dir(settings) else {
        return;
    };
    match recover_rings(&dir, None) {
        Ok(reports) => {
            for report in reports {
                match report.outcome {
                    RecoveryOutcome::Recovered {
                        file, pid, ended, ..
                    } => super::log_line(&format!(
                        "flight-recorder: recovered the last events of process {pid} ({ended}) \
                         into {}",
                        file.display()
                    )),
                    RecoveryOutcome::Skipped(why) => super::report_error(
                        &format!("ring {}", report.ring.display()),
                        &format!("skipped: {why}"),
                    ),
                    _ => {}
                }
            }
        }
        Err(e) => super::report_error(&format!("recovering rings in {}", dir.display()), &e),
    }
}
