//! `flight-recorder-query`: SQL over trace files, Parquet exports and S3 prefixes of them (see
//! the library, `flight_recorder_query`).

use std::process::ExitCode;

fn main() -> ExitCode {
    flight_recorder_query::run()
}
