#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, unit and end-to-end tests on the embedded
# broker, then the end-to-end tests again against a real Kafka-protocol broker (tansu), which this
# script installs if missing, starts on a free loopback port, and stops when done; last, the
# pipeline over TLS (a second tansu behind a TLS terminator).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

TANSU_LOG=$(mktemp -t tansu-install.XXXXXX)
TANSU_PID=""
TLS_TANSU_PID=""
TLS_FRONT_PID=""
SCRAM_PID=""
STARTED_PID=""
INSTALL_PID=""
cleanup() {
  for pid in "$STARTED_PID" "$TANSU_PID" "$TLS_TANSU_PID" "$TLS_FRONT_PID" "$SCRAM_PID" "$INSTALL_PID"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits until something listens on 127.0.0.1:$1, or fails if process $2 has exited (log: $3).
wait_for_port() {
  for _ in $(seq 1 60); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then cat "$3"; echo "the process for port $1 exited" >&2; exit 1; fi
    sleep 0.5
  done
  echo "nothing listens on port $1 after 30 s" >&2
  exit 1
}

# Starts tansu with in-memory storage listening on 127.0.0.1:$1 and advertising port $2 (log: $3),
# waits until it listens, and leaves its process id in $STARTED_PID.
start_memory_tansu() {
  tansu broker --listener-url "tcp://127.0.0.1:$1" --advertised-listener-url "tcp://127.0.0.1:$2" \
    --storage-engine memory://tansu/ >"$3" 2>&1 &
  STARTED_PID=$!
  wait_for_port "$1" "$STARTED_PID" "$3"
}

# librdkafka is built with TLS, which needs OpenSSL's headers.
if ! dpkg -s libssl-dev pkg-config >/dev/null 2>&1; then
  log "installing OpenSSL's headers and pkg-config (apt-get)"
  apt-get update -qq && apt-get install -y -qq libssl-dev pkg-config >/dev/null
fi

# The Frigate test subscribes to a real MQTT broker: Debian's mosquitto, started by the test.
if [ ! -x /usr/sbin/mosquitto ] && ! command -v mosquitto >/dev/null 2>&1; then
  log "installing mosquitto, an MQTT broker for the Frigate test (apt-get)"
  apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null
fi

# tansu's build takes 12-20 minutes, so it starts first and runs beside our own build.
if ! command -v tansu >/dev/null 2>&1; then
  log "tansu not found: installing it in the background (cargo install tansu --locked --features dynostore,libsql; log: $TANSU_LOG)"
  cargo install tansu --locked --features dynostore,libsql >"$TANSU_LOG" 2>&1 &
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

log "the web pages in headless Chromium (Playwright)"
bash scripts/browser.sh target/debug/ioc

if [ -n "$INSTALL_PID" ]; then
  log "waiting for the tansu install to finish"
  if ! wait "$INSTALL_PID"; then
    tail -n 40 "$TANSU_LOG"
    echo "installing tansu failed; see $TANSU_LOG" >&2
    exit 1
  fi
  INSTALL_PID=""
fi

PORT=$(free_port)
log "starting tansu on 127.0.0.1:$PORT (in-memory storage)"
start_memory_tansu "$PORT" "$PORT" "${TANSU_LOG}.broker"
TANSU_PID=$STARTED_PID

log "end-to-end tests against tansu"
IOC_TEST_BROKERS="127.0.0.1:$PORT" timeout 1200 cargo test --locked --test pipeline --test boundaries --test reform --test lifecycle --test service_levels \
  --test restarts --test open311 --test contracts --test hostile
kill "$TANSU_PID"; wait "$TANSU_PID" 2>/dev/null || true

# The dashboards' failover runs on a tansu of its own: on one that every test above has used,
# tansu now and then leaves a killed member's partition unheld (RELIABILITY.md, "Open").
PORT=$(free_port)
log "starting a fresh tansu on 127.0.0.1:$PORT for two dashboards and their failover"
start_memory_tansu "$PORT" "$PORT" "${TANSU_LOG}.broker2"
TANSU_PID=$STARTED_PID
IOC_TEST_BROKERS="127.0.0.1:$PORT" timeout 600 cargo test --locked --test two_dashboards

# tansu 0.6 cannot serve TLS from its command line (clap makes --cert and --key exclude each
# other), so a TLS terminator stands in front of a second tansu, which advertises the TLS port.
log "the pipeline over TLS (tansu behind a TLS terminator, a certificate made for this run)"
TLS_DIR=$(mktemp -d -t ioc-tls.XXXXXX)
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=localhost" \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
  -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" 2>/dev/null
PLAIN_PORT=$(free_port)
TLS_PORT=$(free_port)
start_memory_tansu "$PLAIN_PORT" "$TLS_PORT" "$TLS_DIR/broker.log"
TLS_TANSU_PID=$STARTED_PID
python3 scripts/tls_front.py "$TLS_PORT" "$PLAIN_PORT" "$TLS_DIR/cert.pem" "$TLS_DIR/key.pem" >"$TLS_DIR/front.log" 2>&1 &
TLS_FRONT_PID=$!
wait_for_port "$TLS_PORT" "$TLS_FRONT_PID" "$TLS_DIR/front.log"
IOC_TEST_TLS_BROKERS="127.0.0.1:$TLS_PORT" IOC_TEST_TLS_CA="$TLS_DIR/cert.pem" timeout 600 cargo test --locked --test secured

# SCRAM needs a user, and tansu creates users only for a client that is already signed in (or
# while authentication is off); so the user is made on durable storage first, and the broker is
# started again with --authentication on the same file. That needs tansu's libsql storage, which
# this script builds in; a tansu installed without it gets a printed skip.
log "the pipeline signed in with SASL/SCRAM-SHA-512 (tansu with --authentication)"
SCRAM_DIR=$(mktemp -d -t ioc-scram.XXXXXX)
SCRAM_PORT=$(free_port)
SCRAM_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
start_scram_broker() {
  (cd "$SCRAM_DIR" && exec tansu broker --listener-url "tcp://127.0.0.1:$SCRAM_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$SCRAM_PORT" --storage-engine sqlite://scram.db "$@") \
    >>"$SCRAM_DIR/broker.log" 2>&1 &
  SCRAM_PID=$!
  for _ in $(seq 1 40); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$SCRAM_PORT") 2>/dev/null; then return 0; fi
    if ! kill -0 "$SCRAM_PID" 2>/dev/null; then SCRAM_PID=""; return 1; fi
    sleep 0.5
  done
  return 1
}
if start_scram_broker; then
  tansu user create --broker "tcp://127.0.0.1:$SCRAM_PORT" ioc-test "$SCRAM_PASSWORD" --mechanism scram512 \
    >>"$SCRAM_DIR/broker.log" 2>&1
  kill "$SCRAM_PID"; wait "$SCRAM_PID" 2>/dev/null || true
  start_scram_broker --authentication || { cat "$SCRAM_DIR/broker.log"; echo "tansu with --authentication did not start" >&2; exit 1; }
  IOC_TEST_SCRAM_BROKERS="127.0.0.1:$SCRAM_PORT" IOC_TEST_SCRAM_USER=ioc-test IOC_TEST_SCRAM_PASSWORD="$SCRAM_PASSWORD" \
    timeout 600 cargo test --locked --test secured scram
else
  tail -n 5 "$SCRAM_DIR/broker.log"
  echo "skipped: this tansu cannot store to sqlite (it was installed without --features libsql; reinstall it with: cargo install tansu --locked --force --features dynostore,libsql)"
fi

# The fault harness, short: two processes of each stage on a tansu of its own, stage processes
# killed with SIGKILL at random and restarted, every accepted event checked afterwards (RELIABILITY.md
# has the longer runs and what is still open).
log "faults on purpose: stage processes killed with SIGKILL (benches/faults.rs, short run)"
timeout 900 cargo test --locked --bench faults -- --events 3000 --kills 4 --outage 0s --rate 150 --storage memory://tansu/

log "all tests passed"
