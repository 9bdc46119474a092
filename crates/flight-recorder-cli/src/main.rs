//! `flight-recorder`: reads flight-recorder trace files (see the library, `flight_recorder_cli`,
//! for the commands).

use std::process::ExitCode;

fn main() -> ExitCode {
    flight_recorder_cli::run()
}
