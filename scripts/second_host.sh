#!/usr/bin/env bash
# Runs the built filter under a second proxy-wasm host: the `proxy-wasm-host` crate (wasmtime and
# Cranelift, not Envoy's V8), from tests/second_host/. It loads the .wasm, configures a root
# ({} and a refused {"precedance":1}) and drives HTTP contexts through the real ABI callbacks,
# checking the pauses, the header map writes, the body, local responses and metrics.
#
# The host crate is its own workspace with its own Cargo.lock and is built into
# target/second_host, so repeated runs are incremental (about 20 s). A clean build (wasmtime +
# Cranelift, dev profile) and run takes about 4 minutes on 2 cores. proxy-wasm-host 0.2.0
# declares rust-version 1.96 but builds and runs on 1.95, hence --ignore-rust-version.
#
# Usage: scripts/second_host.sh [path/to/mcp_trace_filter.wasm]   (default: build it first)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ge 1 ]; then
  wasm=$1
else
  bash scripts/build.sh
  wasm=target/wasm32-wasip1/release/mcp_trace_filter.wasm
fi

export CARGO_TARGET_DIR="$PWD/target/second_host"
cargo build --manifest-path tests/second_host/Cargo.toml --locked --ignore-rust-version
"$CARGO_TARGET_DIR/debug/second-host" "$wasm"
