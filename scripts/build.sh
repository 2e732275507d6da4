#!/usr/bin/env bash
# Builds the filter: target/wasm32-wasip1/release/mcp_trace_filter.wasm
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --target wasm32-wasip1
wasm=target/wasm32-wasip1/release/mcp_trace_filter.wasm
echo "built $wasm ($(stat -c %s "$wasm") bytes)"
