#!/usr/bin/env bash
# Benchmark: bare Envoy, Envoy's buffer filter, the minimal wasm filter of bench/floor (bench.py
# builds it), Envoy's native MCP filter and this filter (defaults, and every feature on),
# interleaved in one run, for 1 KB, 64 KB and 1 MB MCP bodies.
# Prints the table and writes bench/results/<date>.md. Options: see `scripts/bench.sh --help`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh  # also installs wrk
bash scripts/build.sh
exec .venv/bin/python bench/bench.py "$@"
