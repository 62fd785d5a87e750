#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, unit and end-to-end tests on the embedded
# broker, then the end-to-end tests again against a real Kafka-protocol broker (tansu), which this
# script installs if missing, starts on a free loopback port, and stops when done.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

TANSU_LOG=$(mktemp -t tansu-install.XXXXXX)
TANSU_PID=""
INSTALL_PID=""
cleanup() {
  [ -n "$TANSU_PID" ] && kill "$TANSU_PID" 2>/dev/null || true
  [ -n "$INSTALL_PID" ] && kill "$INSTALL_PID" 2>/dev/null || true
}
trap cleanup EXIT

# tansu's build takes 12-20 minutes, so it starts first and runs beside our own build.
if ! command -v tansu >/dev/null 2>&1; then
  log "tansu not found: installing it in the background (cargo install tansu --locked --features dynostore; log: $TANSU_LOG)"
  cargo install tansu --locked --features dynostore >"$TANSU_LOG" 2>&1 &
  INSTALL_PID=$!
fi

log "formatting"
cargo fmt --all -- --check

log "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Every wait inside the tests is bounded; these outer bounds only turn a hang into a failure.
log "unit, property and end-to-end tests (embedded broker)"
timeout 2400 cargo test --workspace --all-targets --locked

log "doc tests"
cargo test --workspace --doc --locked

log "schema-driven fuzzing of every HTTP API (schemathesis against ioc demo)"
cargo build --locked
bash scripts/schemathesis.sh target/debug/ioc

if [ -n "$INSTALL_PID" ]; then
  log "waiting for the tansu install to finish"
  if ! wait "$INSTALL_PID"; then
    tail -n 40 "$TANSU_LOG"
    echo "installing tansu failed; see $TANSU_LOG" >&2
    exit 1
  fi
  INSTALL_PID=""
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
log "starting tansu on 127.0.0.1:$PORT (in-memory storage)"
tansu broker --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" \
  --storage-engine memory://tansu/ >"${TANSU_LOG}.broker" 2>&1 &
TANSU_PID=$!
for _ in $(seq 1 60); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  if ! kill -0 "$TANSU_PID" 2>/dev/null; then cat "${TANSU_LOG}.broker"; echo "tansu exited" >&2; exit 1; fi
  sleep 0.5
done

log "end-to-end tests against tansu"
IOC_TEST_BROKERS="127.0.0.1:$PORT" timeout 1200 cargo test --locked --test pipeline --test boundaries --test lifecycle --test service_levels \
  --test restarts --test open311 --test contracts --test hostile

log "all tests passed"
