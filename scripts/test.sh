#!/usr/bin/env bash
# The project's test command: formatting, lints, the loom models of the recording protocol, a Miri
# run of the recorder's unit tests, the feature matrix, the minimum Rust version, the doc tests, a
# short fuzz run and a short soak (docs/RELIABILITY.md), then every unit and integration test.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/steps.sh

step "tools: nextest, Miri, cargo-hack, the minimum Rust version (installed when missing)"
scripts/install-test-tools.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "the overhead study's crate is formatted; its report arithmetic (bench/, docs/BENCHMARKS.md)"
cargo fmt --manifest-path bench/compare/Cargo.toml -- --check
python3 -m unittest discover -s bench -p 'test_*.py'

step "cargo clippy -D warnings (the query engine's crate included: its one check build)"
cargo clippy --workspace --all-features --all-targets -- -D warnings

step "loom models of the chunk / window / snapshot protocol"
# Without debug info or link-time optimization: the models' build is a release build of the crate
# and its dev-dependencies, which only has to be fast enough for loom to explore.
RUSTFLAGS="--cfg flight_recorder_loom" CARGO_TARGET_DIR=target/loom CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_LTO=false \
    cargo test -p flight-recorder --lib --release loom
done_with target/loom

step "Miri: the recorder's unit tests, the unsafe code among them, on the monotonic clock; the Perfetto encoder's"
# Every feature but `upload`, listed: Miri cannot run its network stack (object_store, reqwest,
# rustls with ring's assembly).
FLIGHT_RECORDER_CLOCK=monotonic MIRIFLAGS="-Zmiri-disable-isolation" CARGO_TARGET_DIR=target/miri \
    cargo +nightly miri test -p flight-recorder --lib \
    --features tokio,tracing,tokio-schedule-latency,signal,http
# The analysis crate's one unsafe block: the Perfetto encoder's packets written into a buffer's
# spare capacity.
MIRIFLAGS="-Zmiri-disable-isolation" CARGO_TARGET_DIR=target/miri \
    cargo +nightly miri test -p flight-recorder-analysis --lib perfetto::
done_with target/miri

# flight-recorder-query (DataFusion, about 210 crates) has no features of its own, and clippy has
# checked it above with warnings as errors: it is left out here, so that it is built in one profile
# only (the tests') and checked once.
step "features: every crate's library with each feature alone, none, and all (warnings are errors)"
RUSTFLAGS="--cfg tokio_unstable -C force-frame-pointers=yes -D warnings" CARGO_TARGET_DIR=target/features \
    cargo hack check --workspace --exclude flight-recorder-query --lib --each-feature --no-dev-deps
done_with target/features

# flight-recorder-query declares its own, newer rust-version (DataFusion's).
step "the declared minimum Rust version (rust-version in Cargo.toml) compiles the workspace"
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
CARGO_TARGET_DIR=target/msrv cargo "+$msrv" check --workspace --exclude flight-recorder-query \
    --all-features
done_with target/msrv

step "the recorder without tokio's unstable hooks (RUSTFLAGS overrides .cargo/config.toml)"
RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR=target/stable-tokio \
    cargo test -p flight-recorder --test tokio_runtime --test annotations --test snapshot \
    --test spawn_allocations --test stuck_worker --test capture_rules
done_with target/stable-tokio

step "doc tests"
cargo test --workspace --all-features --doc

step "fuzzing: the trace reader, the analyses, the CLI's file handling (30 s each)"
scripts/fuzz.sh "${FLIGHT_RECORDER_FUZZ_SECS:-30}"
done_with fuzz/target

step "soak: automatic capture under a tokio workload (FLIGHT_RECORDER_SOAK_SECS, default 20 s)"
cargo test --release -p flight-recorder --test soak -- --ignored --nocapture
done_with target/release

step "unit and integration tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --all-features --no-fail-fast
else
    cargo test --workspace --all-features --no-fail-fast
fi
