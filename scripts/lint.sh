#!/usr/bin/env bash
# golangci-lint with the repository's .golangci.yml (errorlint, depguard,
# forbidigo, gocognit). The pinned version is built from the Go module
# proxy with `go install` once per machine and kept in the user's cache
# folder, so later runs (and CI on the same machine) start at once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${CHATWARDEN_GOLANGCI_LINT_VERSION:-v2.15.0}"
export PATH="/usr/local/go/bin:$PATH"
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.26.11}"
BIN_DIR="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/chatwarden/golangci-lint-$VERSION"
if [ ! -x "$BIN_DIR/golangci-lint" ]; then
	echo "lint: installing golangci-lint $VERSION into $BIN_DIR (go install, once per machine)" >&2
	mkdir -p "$BIN_DIR"
	GOBIN="$BIN_DIR" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$VERSION"
fi
cd "$ROOT"
# --allow-parallel-runners: another checkout of the project linting on the
# same machine must not fail this run ("parallel golangci-lint is running").
"$BIN_DIR/golangci-lint" run --allow-parallel-runners ./...
