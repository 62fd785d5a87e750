#!/usr/bin/env bash
# Schema-driven fuzzing: runs `ioc demo` on loopback ports and points schemathesis at the OpenAPI
# document each stage serves. Fails on any 5xx, any status code or content type the document
# does not list, and any JSON answer that does not match its documented schema. Installs
# schemathesis (PyPI) when missing. Usage: bash scripts/schemathesis.sh [path/to/ioc]
set -euo pipefail
cd "$(dirname "$0")/.."

IOC=${1:-target/debug/ioc}
VERSION=4.32.5
EXAMPLES=${IOC_SCHEMATHESIS_EXAMPLES:-30}

if ! command -v schemathesis >/dev/null 2>&1; then
  echo "installing schemathesis $VERSION (pip)"
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

source scripts/demo_env.sh
start_demo "$IOC" --rate 5
INGEST=$(demo_field "ingest API " 3)
DASHBOARD=$(demo_field "dashboard API " 3)
ROUTER=$(demo_field "router " 2 | sed 's#/metrics##')
OPERATOR=$(demo_field "operator token" 3)
CAMERA=$(demo_field "camera key" 3)
[ -n "$INGEST" ] && [ -n "$DASHBOARD" ] && [ -n "$ROUTER" ] && [ -n "$OPERATOR" ] && [ -n "$CAMERA" ] \
  || { cat "$DEMO_OUT"; echo "could not read the demo's addresses and credentials" >&2; exit 1; }

CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
run() {
  local name=$1 url=$2 secret=$3; shift 3
  echo "==> schemathesis against the $name ($url/openapi.json)"
  timeout 600 schemathesis run "$url/openapi.json" -H "Authorization: Bearer $secret" \
    --checks "$CHECKS" -n "$EXAMPLES" --seed 20261124 --no-shrink --request-timeout 10 "$@"
}
run ingest "$INGEST" "$CAMERA"
# The live streams never end, so a fuzzer cannot read a whole answer; tests/hostile.rs and
# tests/pipeline.rs cover them.
run dashboard "$DASHBOARD" "$OPERATOR" --exclude-path /v1/stream --exclude-path /v1/violations/stream
run router "$ROUTER" "$OPERATOR"
