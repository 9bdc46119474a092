#!/usr/bin/env bash
# Builds the Go overhead program (bench/go/overhead, or $OUT) with the Go that install-go.sh
# installs. The program uses the standard library only: the build needs no network.
#
#   OUT          the binary to write (default: overhead beside this script)
#   GO           a go binary to use instead of running install-go.sh
#   GOCACHE, GOPATH  default to folders under /tmp/flight-recorder-go
#
# Prints the binary's absolute path on the last line of stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${OUT:-$here/overhead}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
go="${GO:-$("$here/install-go.sh" | tail -n1)}"

export GOCACHE="${GOCACHE:-/tmp/flight-recorder-go/cache}"
export GOPATH="${GOPATH:-/tmp/flight-recorder-go/gopath}"
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=local
export GOPROXY=off
export CGO_ENABLED=0

cd "$here"
"$go" build -o "$out" .
echo "$out"
