#!/usr/bin/env bash
# The demo, end to end on this machine (127.0.0.1 only, no Docker), with distributed tracing:
#   scripts/demo.sh [own-span|traced]     (default own-span)
#   MCP SDK client, service "agent" (OpenTelemetry on, context only in params._meta)
#     -> Envoy 127.0.0.1:10000 with mcp-trace-filter, either
#          own-span: envoy/own-span.yaml, one listener, the filter makes and exports the gateway spans
#          traced:   envoy/traced.yaml, Envoy's tracer in a two-stage chain with an upstream sync
#     -> MCP SDK server 127.0.0.1:8000, service "weather-mcp-server" (prints the trace headers it received)
#   all three export OTLP/HTTP to a small receiver on 127.0.0.1:4318 (demo/otlp_receiver.py),
#   and the demo prints the resulting trace as a tree: agent -> mcp-gateway -> weather-mcp-server.
# Installs and builds first (idempotent), stops everything it started on exit.
# Exit status non-zero if the call fails or the trace is not client -> gateway -> server.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-own-span}
case "$mode" in
  own-span | traced) ;;
  *) echo "usage: scripts/demo.sh [own-span|traced]" >&2; exit 2 ;;
esac

bash scripts/setup.sh
bash scripts/build.sh

run=.run/demo
mkdir -p "$run"
pids=()
otlp=http://127.0.0.1:4318/v1/traces

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

for port in 10000 8000 9901 4318; do
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

echo "== starting the OTLP/HTTP receiver (127.0.0.1:4318, spans -> $run/spans.jsonl)"
: > "$run/spans.jsonl"
.venv/bin/python demo/otlp_receiver.py --port 4318 --out "$run/spans.jsonl" > "$run/otlp.log" 2>&1 &
pids+=("$!")
wait_port 4318 "$!" "OTLP receiver" "$run/otlp.log"

echo "== starting the MCP server (127.0.0.1:8000, service weather-mcp-server)"
.venv/bin/python demo/server.py --otlp-endpoint "$otlp" --service-name weather-mcp-server > "$run/server.log" 2>&1 &
pids+=("$!")
wait_port 8000 "$!" "MCP server" "$run/server.log"

if [ "$mode" = traced ]; then
  # envoy/traced.yaml as shipped, plus a runtime layer so Envoy exports spans every 200 ms (default 5 s).
  # Envoy runs from the repository root, so the config's relative wasm path stays valid.
  grep -q '^layered_runtime:' envoy/traced.yaml && { echo "demo: envoy/traced.yaml already has a layered_runtime" >&2; exit 1; }
  {
    cat envoy/traced.yaml
    printf '\nlayered_runtime:\n  layers:\n  - name: demo_static\n    static_layer:\n      tracing.opentelemetry.flush_interval_ms: 200\n'
  } > "$run/envoy.yaml"
else
  # envoy/own-span.yaml as shipped: the filter exports its spans itself (every second).
  cp envoy/own-span.yaml "$run/envoy.yaml"
fi

echo "== starting Envoy with the filter (envoy/$mode.yaml; listener 127.0.0.1:10000, admin 127.0.0.1:9901)"
.venv/bin/envoy -c "$run/envoy.yaml" --disable-hot-restart --log-level warning > "$run/envoy.log" 2>&1 &
pids+=("$!")
wait_port 10000 "$!" "Envoy" "$run/envoy.log"

echo "== running the MCP client (service agent)"
status=0
rm -f "$run/trace_id"
.venv/bin/python demo/client.py --url http://127.0.0.1:10000/mcp \
  --otlp-endpoint "$otlp" --service-name agent --trace-id-file "$run/trace_id" || status=$?

echo "== the MCP server's own log of that call"
grep '^\[server\]   ' "$run/server.log" || true

echo "== filter counters (http://127.0.0.1:9901/stats?filter=wasmcustom.mcp_trace_filter)"
.venv/bin/python - <<'PY' || true
import urllib.request
with urllib.request.urlopen("http://127.0.0.1:9901/stats?filter=wasmcustom.mcp_trace_filter", timeout=5) as r:
    for line in r.read().decode().splitlines():
        print("  " + line)
PY

echo "== the trace (spans received on 127.0.0.1:4318; waiting up to 15 s for client, gateway and server spans)"
if [ ! -s "$run/trace_id" ]; then
  echo "demo: the client reported no trace id" >&2
  exit 1
fi
.venv/bin/python demo/trace_tree.py --spans "$run/spans.jsonl" --trace-id "$(cat "$run/trace_id")" --timeout 15 \
  --client-service agent --gateway-service mcp-gateway --server-service weather-mcp-server || status=1
exit "$status"
