#!/usr/bin/env bash
# The scanner's throughput inside V8: builds this crate for wasm32-wasip1 and runs it with Node's
# WASI (Node's V8 compiles wasm with the same tiers as Envoy's). Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --quiet --release --target wasm32-wasip1
node --version >/dev/null
exec node --no-warnings run.cjs target/wasm32-wasip1/release/wasm-scan-bench.wasm
