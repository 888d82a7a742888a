#!/usr/bin/env bash
# Dependency vulnerability scan with govulncheck, offline from vuln.go.dev:
# the Go vulnerability database is taken from the golang.org/x/vulndb module
# (served by the Go module proxy, which this machine reaches), its OSV files
# are indexed into a local database with vulndb's own indexdb, and govulncheck
# reads it with -db file://. Exits non-zero when a vulnerability is reachable
# from our code (govulncheck's own rule: symbol-level findings only).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${CHATWARDEN_STACK_DIR:-$ROOT/.stack}/vulndb"
VULNDB_VERSION="${CHATWARDEN_VULNDB_VERSION:-latest}"
GOVULNCHECK_VERSION="${CHATWARDEN_GOVULNCHECK_VERSION:-v1.9.0}"
export PATH="/usr/local/go/bin:$PATH"
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.26.11}"
mkdir -p "$DIR/bin"

if [ ! -x "$DIR/bin/govulncheck" ]; then
	GOBIN="$DIR/bin" go install "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION"
fi

moddir=$(cd /tmp && go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
[ -d "$moddir/data/osv" ] || { echo "vulncheck: no data/osv in $moddir" >&2; exit 1; }
version=$(basename "$moddir")
if [ "$(cat "$DIR/db.version" 2>/dev/null)" != "$version" ]; then
	(cd "$moddir" && GOFLAGS=-mod=mod go build -o "$DIR/bin/indexdb" ./cmd/indexdb)
	rm -rf "$DIR/db"
	"$DIR/bin/indexdb" -vulns "$moddir/data/osv" -out "$DIR/db"
	echo "$version" >"$DIR/db.version"
fi
echo "vulncheck: database $version ($(ls "$moddir/data/osv" | wc -l) advisories)" >&2
cd "$ROOT"
"$DIR/bin/govulncheck" -db "file://$DIR/db" ./...
