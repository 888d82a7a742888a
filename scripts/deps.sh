#!/usr/bin/env bash
# Installs what the test suite needs beyond the stack: Debian's chromium for
# the dashboards' browser tests, and poppler-utils (pdftotext, pdftoppm) for
# the tests that read back the customer report's PDF (the product itself
# needs neither). Idempotent: does nothing when they are there.
set -euo pipefail
missing=()
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
	missing+=(chromium)
fi
if ! command -v pdftotext >/dev/null 2>&1 || ! command -v pdftoppm >/dev/null 2>&1; then
	missing+=(poppler-utils)
fi
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "scripts/deps.sh: ${missing[*]} missing and apt-get is not available" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
command -v chromium >/dev/null || command -v chromium-browser >/dev/null
command -v pdftotext >/dev/null
command -v pdftoppm >/dev/null
echo "scripts/deps.sh: installed ${missing[*]}"
