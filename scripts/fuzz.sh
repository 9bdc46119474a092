#!/usr/bin/env bash
# Fuzzes the trace reader, the analyses and the CLI's file handling with libFuzzer (cargo-fuzz),
# each target for SECONDS (default 30, the CI run), and fails on any crash, hang or unbounded
# allocation. Usage:
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: reader analysis cli_files (default: all)
#   scripts/fuzz.sh --seeds                   rewrite the committed seed corpus (fuzz/corpus)
#
# Works on stable Rust: the targets are built without a sanitizer (`-s none`, so no -Z flag is
# needed; the code under test has one `unsafe` block, the Perfetto encoder's, which the test
# command runs under Miri), with coverage instrumentation and with debug
# assertions, so an arithmetic overflow is a crash too. Limits: an input runs at most 10 s
# (-timeout: a hang), the process stays under 1 GiB (-rss_limit_mb), and one allocation above
# 64 MiB aborts (the targets' allocator, fuzz/src/lib.rs). New corpus entries go to
# fuzz/target/corpus/<target>; the committed seeds in fuzz/corpus/<target> are only read.
# A crash is saved under fuzz/artifacts/<target>/ and shown with `cargo fuzz fmt`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if [ "${1:-}" = "--seeds" ]; then
    rm -rf fuzz/corpus
    cargo run --release --manifest-path fuzz/Cargo.toml -p flight-recorder-fuzz-seeds -- fuzz/corpus
    exit 0
fi

seconds="${1:-30}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(reader analysis cli_files)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

build_flags=(-s none --release --debug-assertions)
cargo fuzz build "${build_flags[@]}"

status=0
summary=""
for target in "${targets[@]}"; do
    work="fuzz/target/corpus/$target"
    mkdir -p "$work" "fuzz/artifacts/$target"
    log="fuzz/target/fuzz-$target.log"
    echo "== fuzz $target for ${seconds}s"
    if cargo fuzz run "${build_flags[@]}" "$target" "$work" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=64 \
        -max_len=262144 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1; then
        result="ok"
    else
        result="FAILED"
        status=1
        grep -E "panicked|ERROR|SUMMARY|Test unit written|allocation above" "$log" | head -20 || true
    fi
    runs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" || echo "?")
    cov=$(grep -oE "cov: [0-9]+" "$log" | tail -1 | grep -oE "[0-9]+" || echo "?")
    line="fuzz $target: $result, $runs executions in ${seconds}s, coverage $cov edges"
    echo "$line"
    summary+="$line"$'\n'
done
printf '%s' "$summary"
if [ "$status" -ne 0 ]; then
    echo "fuzz: a target failed; see fuzz/target/fuzz-<target>.log and fuzz/artifacts/" >&2
fi
exit "$status"
