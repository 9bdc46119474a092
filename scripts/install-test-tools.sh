#!/usr/bin/env bash
# Installs what the test command needs beyond the stable toolchain, when it is missing: Miri on
# the nightly toolchain, cargo-hack for the feature matrix, the minimum Rust version that
# Cargo.toml declares, DuckDB (Python) and s3s-fs, the S3 server the upload and query tests run
# against. Quick when everything is there already.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    if rustup toolchain list | grep -q '^nightly'; then
        rustup component add --toolchain nightly miri rust-src
    else
        rustup toolchain install nightly --profile minimal --component miri,rust-src
    fi
fi
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
if ! rustup toolchain list | grep -q "^$msrv"; then
    rustup toolchain install "$msrv" --profile minimal
fi
if ! cargo hack --version >/dev/null 2>&1; then
    cargo install cargo-hack --locked
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install cargo-nextest --locked
fi
# DuckDB reads the Parquet export in flight-recorder-query's tests (an engine independent of
# DataFusion).
if ! python3 -c 'import duckdb' >/dev/null 2>&1; then
    python3 -m pip install --quiet duckdb==1.5.6
fi
# A debug build: it compiles in a fifth of the time of a release build, and serves the tests'
# small files fast enough.
if ! command -v s3s-fs >/dev/null 2>&1; then
    cargo install s3s-fs --version 0.14.1 --locked --features binary --debug
fi
