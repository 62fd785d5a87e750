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

source scripts/demo_env.sh
start_demo "$IOC" --rate 0 --no-staff
export IOC_INGEST=$(demo_field "ingest API " 3)
export IOC_DASHBOARD=$(demo_field "dashboard API " 3)
export IOC_OPERATOR_TOKEN=$(demo_field "operator token" 3)
export IOC_WARD_TOKEN=$(demo_field "ward token" 3)
export IOC_POLICE_TOKEN=$(demo_field "police token" 3)
export IOC_CAMERA_KEY=$(demo_field "camera key" 3)
export IOC_WARD=$(grep -a "^  ward token" "$DEMO_OUT" | sed -E 's/.*unit of ward ([^);]+).*/\1/')
export IOC_ARTIFACTS=target/browser-artifacts
[ -n "$IOC_INGEST" ] && [ -n "$IOC_DASHBOARD" ] && [ -n "$IOC_OPERATOR_TOKEN" ] && [ -n "$IOC_WARD_TOKEN" ] && [ -n "$IOC_WARD" ] \
  && [ -n "$IOC_POLICE_TOKEN" ] && [ -n "$IOC_CAMERA_KEY" ] \
  || { cat "$DEMO_OUT"; echo "could not read the demo's addresses and tokens" >&2; exit 1; }
mkdir -p "$IOC_ARTIFACTS"
timeout 600 python3 tests/browser/test_pages.py
