#!/usr/bin/env bash
# The project's whole test run: format, lints (native and wasm), unit and property tests,
# the wasm build with its size budget, the same .wasm under a second proxy-wasm host
# (scripts/second_host.sh: wasmtime, not V8), the end-to-end suite against a real Envoy, and
# its lift subset on every supported Envoy release (scripts/matrix.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "setup"
bash scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy (native, all targets)"
cargo clippy --all-targets --locked -- -D warnings

step "clippy (wasm32-wasip1)"
cargo clippy --target wasm32-wasip1 --lib --locked -- -D warnings

step "cargo test"
cargo test --locked

step "scanner unit tests as wasm (simd128 vector code in Node's V8, not the native stand-in)"
unit_wasm=$(cargo test --target wasm32-wasip1 --lib --no-run --locked --message-format=json |
  .venv/bin/python -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])')
node --no-warnings tests/wasm/run.cjs "$unit_wasm" --test-threads=1 mcp::

step "fuzz targets: format, and seed corpus and regressions replayed through their checks"
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo test --manifest-path fuzz/Cargo.toml --locked

step "build"
bash scripts/build.sh
wasm=target/wasm32-wasip1/release/mcp_trace_filter.wasm
# 340 KiB since the own-span mode (span model, OTLP encoding, export queue, duration metrics, SEP-2448): ~90 KiB of it.
budget=$((340 * 1024))
size=$(stat -c %s "$wasm")
if [ "$size" -gt "$budget" ]; then
  echo "wasm size $size bytes is over the budget of $budget bytes" >&2
  exit 1
fi

step "packaging (Kong schema vs the filter's parser, Kong/Higress manifests, OCI image via a local registry)"
.venv/bin/python -m pytest tests/packaging -q -p no:cacheprovider

step "second proxy-wasm host (proxy-wasm-host on wasmtime: load, configure, HTTP contexts)"
cargo fmt --manifest-path tests/second_host/Cargo.toml -- --check
bash scripts/second_host.sh "$wasm"

step "load rigs (smoke: the benchmark's sanity checks and a short soak)"
smoke=$(mktemp -d)
.venv/bin/python bench/bench.py --rounds 1 --seconds 1 --sizes 1KB --output "$smoke/bench.md"
.venv/bin/python bench/soak.py --seconds 10 --segment 5 --output "$smoke/soak.md"
rm -rf "$smoke"

step "end-to-end (real Envoy, real MCP SDK)"
.venv/bin/python -m pytest tests/e2e -q -p no:cacheprovider

step "Envoy version matrix"
bash scripts/matrix.sh
