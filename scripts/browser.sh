#!/usr/bin/env bash
# Browser tests of the web pages: runs `ioc demo` with no simulated load and no simulated staff,
# then drives Debian's headless Chromium through the console, the ward page and the citizen's
# page with Playwright for Python (tests/browser/test_pages.py). Installs chromium (apt) and
# playwright (PyPI) when missing. Screenshots go to target/browser-artifacts/.
# Usage: bash scripts/browser.sh [path/to/ioc]
set -euo pipefail
cd "$(dirname "$0")/.."

IOC=${1:-target/debug/ioc}
PLAYWRIGHT=1.49.1

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (apt-get)"
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
if ! python3 -c "import playwright" 2>/dev/null; then
  echo "installing playwright $PLAYWRIGHT for Python (pip; the system chromium is used, no browser download)"
  python3 -m pip install --quiet --disable-pip-version-check "playwright==$PLAYWRIGHT"
fi

OUT=$(mktemp -t ioc-browser-demo.XXXXXX)
"$IOC" demo --rate 0 --no-staff --ingest-listen 127.0.0.1:0 --dashboard-listen 127.0.0.1:0 \
  --router-listen 127.0.0.1:0 >"$OUT" 2>&1 &
DEMO=$!
trap 'kill -INT $DEMO 2>/dev/null || true; wait $DEMO 2>/dev/null || true' EXIT

field() { grep -a "^  $1" "$OUT" | head -1 | awk "{print \$$2}"; }
for _ in $(seq 1 60); do
  if grep -aq "^  camera key" "$OUT"; then break; fi
  if ! kill -0 "$DEMO" 2>/dev/null; then cat "$OUT"; echo "the demo exited" >&2; exit 1; fi
  sleep 0.5
done
export IOC_INGEST=$(field "ingest API " 3)
export IOC_DASHBOARD=$(field "dashboard API " 3)
export IOC_OPERATOR_TOKEN=$(field "operator token" 3)
export IOC_WARD_TOKEN=$(field "ward token" 3)
export IOC_WARD=$(grep -a "^  ward token" "$OUT" | sed -E 's/.*unit of ward ([^);]+).*/\1/')
export IOC_ARTIFACTS=target/browser-artifacts
[ -n "$IOC_INGEST" ] && [ -n "$IOC_DASHBOARD" ] && [ -n "$IOC_OPERATOR_TOKEN" ] && [ -n "$IOC_WARD_TOKEN" ] && [ -n "$IOC_WARD" ] \
  || { cat "$OUT"; echo "could not read the demo's addresses and tokens" >&2; exit 1; }
mkdir -p "$IOC_ARTIFACTS"
timeout 600 python3 tests/browser/test_pages.py
