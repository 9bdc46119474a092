//! `flight-recorder recover`: turns the rings of processes that died into trace files.
//!
//! The ring's layout is the runtime crate's (`flight_recorder::ring`): its chunk headers are the
//! very structures the recording threads write, and its file writer makes the output, so the
//! command calls the runtime crate rather than keeping a second reader of that layout here.

use std::io::Write;
use std::path::Path;

use flight_recorder::ring::{recover_rings, RecoveryOutcome};

use crate::failure::Failure;

pub(crate) fn recover(
    ring_dir: &Path,
    out_dir: Option<&Path>,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let reports = recover_rings(ring_dir, out_dir)
        .map_err(|e| Failure::Trace(ring_dir.to_path_buf(), e.to_string()))?;
    let mut failed = false;
    let mut recovered = 0;
    for report in &reports {
        let ring = report.ring.display();
        match &report.outcome {
            RecoveryOutcome::Recovered {
                file,
                pid,
                program,
                ended,
                chunks,
                corrupt_chunks,
            } => {
                recovered += 1;
                writeln!(
                    out,
                    "{}: process {pid} ({program}), {ended}: {chunks} chunks{}",
                    file.display(),
                    if *corrupt_chunks > 0 {
                        format!(", {corrupt_chunks} corrupt chunks left out")
                    } else {
                        String::new()
                    }
                )?;
            }
            RecoveryOutcome::Removed => {
                writeln!(out, "{ring}: the process exited cleanly; removed")?;
            }
            RecoveryOutcome::Live => writeln!(out, "{ring}: process alive; left alone")?,
            RecoveryOutcome::Skipped(why) => {
                failed = true;
                eprintln!("flight-recorder: {ring}: skipped: {why}");
            }
            _ => {}
        }
    }
    if reports.is_empty() {
        writeln!(out, "no ring in {}", ring_dir.display())?;
    } else if recovered == 0 && !failed {
        writeln!(out, "nothing to recover in {}", ring_dir.display())?;
    }
    if failed {
        return Err(Failure::Reported);
    }
    Ok(())
}
