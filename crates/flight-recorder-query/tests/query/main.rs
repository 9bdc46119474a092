//! `flight-recorder-query` on real traces: against `flight-recorder summary`, against DuckDB over
//! the Parquet export, over S3 (s3s-fs), on bad input, and the documented table definitions
//! against the schema. One test binary, so that the corpus is written once per run.

mod bad_input;
mod corpus;
mod docs;
mod duckdb;
mod s3;
mod summary;
