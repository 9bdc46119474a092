# Sourced by the CI and test scripts: `step NAME` starts a named step and prints its heading; when
# the script exits, however it exits, the time each step took is printed, so that the end of a
# long log tells where the time went.
step_names=()
step_starts=()

step() {
    step_names+=("$1")
    step_starts+=("$SECONDS")
    echo "== $1"
    if [ "${FLIGHT_RECORDER_PRUNE_BUILDS:-}" = 1 ]; then
        echo "   (disk: $(df -BM --output=avail . | tail -1 | tr -d ' ') free)"
    fi
}

# `done_with DIR...`: build directories that no later step uses. With
# FLIGHT_RECORDER_PRUNE_BUILDS=1 (the CI run, on a machine whose disk may be small) they are
# removed; otherwise they are kept, so that the next run reuses them.
done_with() {
    if [ "${FLIGHT_RECORDER_PRUNE_BUILDS:-}" = 1 ]; then
        rm -rf "$@"
    fi
}

print_step_times() {
    local status=$? i end
    echo "== time per step ($(basename "$0"), exit status $status)"
    for i in "${!step_names[@]}"; do
        end=${step_starts[$((i + 1))]:-$SECONDS}
        printf '%6ss  %s\n' "$((end - step_starts[i]))" "${step_names[i]}"
    done
    printf '%6ss  in all\n' "$SECONDS"
    if [ "${FLIGHT_RECORDER_PRUNE_BUILDS:-}" = 1 ]; then
        echo "   (disk: $(df -BM --output=avail . | tail -1 | tr -d ' ') free at the end)"
    fi
}

trap print_step_times EXIT
