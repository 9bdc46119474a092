#!/usr/bin/env bash
# Installs the tools the viewer tests of flight-recorder-analysis use. Idempotent: a tool that is
# already there is not installed again.
#
# - chromium (Debian package): renders the HTML report and speedscope headless;
# - perfetto (PyPI): the Perfetto trace schema as Python protobuf classes, an independent decoder
#   of our Perfetto export (it pulls in protobuf);
# - speedscope (npm): a Chrome JSON viewer, installed into target/viewer-tools (not committed).
#
# The tests find them as `chromium` on PATH, `python3 -c 'import perfetto'` and
# target/viewer-tools/node_modules/speedscope (or $FLIGHT_RECORDER_VIEWER_TOOLS).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${FLIGHT_RECORDER_VIEWER_TOOLS:-$root/target/viewer-tools}"
start=$(date +%s)

if ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
fi

if ! python3 -c 'import perfetto.protos.perfetto.trace.perfetto_trace_pb2' >/dev/null 2>&1; then
    echo "installing perfetto (pip)"
    python3 -m pip install --quiet --disable-pip-version-check perfetto
fi

if [ ! -f "$tools/node_modules/speedscope/dist/release/index.html" ]; then
    echo "installing speedscope (npm) into $tools"
    mkdir -p "$tools"
    npm install --prefix "$tools" --no-audit --no-fund --silent speedscope
fi

echo "viewer tools ready in $(( $(date +%s) - start ))s: $(command -v chromium), python perfetto, $tools/node_modules/speedscope"
