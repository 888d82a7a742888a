#!/usr/bin/env bash
# Installs what the test suite needs beyond the stack: Debian's chromium for
# the dashboards' browser tests. Idempotent: does nothing when it is there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "scripts/deps.sh: chromium is missing and apt-get is not available" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null
echo "scripts/deps.sh: installed $(chromium --version 2>/dev/null || echo chromium)"
