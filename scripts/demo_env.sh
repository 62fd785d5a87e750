# Sourced by the test scripts: starts `ioc demo` on loopback ports and reads what it prints.
#   start_demo path/to/ioc [demo options...]   starts it (stopped at exit), waits for its banner
#   demo_field "operator token" 3              a column of one of its banner lines

start_demo() {
  local ioc=$1
  shift
  DEMO_OUT=$(mktemp -t ioc-demo.XXXXXX)
  "$ioc" demo "$@" --ingest-listen 127.0.0.1:0 --dashboard-listen 127.0.0.1:0 \
    --router-listen 127.0.0.1:0 >"$DEMO_OUT" 2>&1 &
  DEMO_PID=$!
  trap 'kill -INT $DEMO_PID 2>/dev/null || true; wait $DEMO_PID 2>/dev/null || true' EXIT
  for _ in $(seq 1 60); do
    if grep -aq "^  camera key" "$DEMO_OUT"; then return 0; fi
    if ! kill -0 "$DEMO_PID" 2>/dev/null; then cat "$DEMO_OUT"; echo "the demo exited" >&2; exit 1; fi
    sleep 0.5
  done
  cat "$DEMO_OUT"
  echo "the demo did not start within 30 s" >&2
  exit 1
}

# The demo's own lines start with two spaces (log lines do not).
demo_field() { grep -a "^  $1" "$DEMO_OUT" | head -1 | awk "{print \$$2}"; }
