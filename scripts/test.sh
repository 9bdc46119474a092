#!/usr/bin/env bash
# The project's test command: formatting, lints, the loom models of the recording protocol, the
# doc tests, then every unit and integration test.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

echo "== loom models of the chunk / window / snapshot protocol"
RUSTFLAGS="--cfg flight_recorder_loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p flight-recorder --lib --release loom

echo "== doc tests"
cargo test --workspace --doc

echo "== unit and integration tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi
