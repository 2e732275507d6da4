#!/usr/bin/env bash
# The demo, end to end on this machine (127.0.0.1 only, no Docker):
#   MCP SDK client (OpenTelemetry on, context only in params._meta)
#     -> Envoy 127.0.0.1:10000 with mcp-trace-filter (envoy/envoy.yaml)
#     -> MCP SDK server 127.0.0.1:8000 (prints the trace headers it received)
# Installs and builds first (idempotent), stops everything it started on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/build.sh

run=.run/demo
mkdir -p "$run"
pids=()

cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for port in 10000 8000 9901; do
  if listening "$port"; then
    echo "demo: 127.0.0.1:$port is already in use; stop whatever listens there and retry." >&2
    exit 1
  fi
done

# wait_port PORT PID NAME LOG: until PORT accepts connections, failing if PID dies or after 30 s.
wait_port() {
  local i
  for i in $(seq 1 300); do
    listening "$1" && return 0
    if ! kill -0 "$2" 2>/dev/null; then
      echo "demo: $3 exited; its log ($4):" >&2
      tail -n 40 "$4" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "demo: $3 not listening on 127.0.0.1:$1 after 30 s; its log ($4):" >&2
  tail -n 40 "$4" >&2
  exit 1
}

echo "== starting the MCP server (127.0.0.1:8000)"
.venv/bin/python demo/server.py > "$run/server.log" 2>&1 &
pids+=("$!")
wait_port 8000 "$!" "MCP server" "$run/server.log"

echo "== starting Envoy with the filter (listener 127.0.0.1:10000, admin 127.0.0.1:9901)"
.venv/bin/envoy -c envoy/envoy.yaml --disable-hot-restart --log-level warning > "$run/envoy.log" 2>&1 &
pids+=("$!")
wait_port 10000 "$!" "Envoy" "$run/envoy.log"

echo "== running the MCP client"
status=0
.venv/bin/python demo/client.py --url http://127.0.0.1:10000/mcp || status=$?

echo "== the MCP server's own log of that call"
grep '^\[server\]   ' "$run/server.log" || true

echo "== filter counters (http://127.0.0.1:9901/stats?filter=wasmcustom.mcp_trace_filter)"
.venv/bin/python - <<'PY' || true
import urllib.request
with urllib.request.urlopen("http://127.0.0.1:9901/stats?filter=wasmcustom.mcp_trace_filter", timeout=5) as r:
    for line in r.read().decode().splitlines():
        print("  " + line)
PY
exit "$status"
