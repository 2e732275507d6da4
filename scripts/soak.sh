#!/usr/bin/env bash
# Soak: saturating mixed MCP traffic through the filter (default 10 minutes); fails on any error,
# a dead Envoy or growing memory. Writes bench/soak-<date>.md. Options: `scripts/soak.sh --help`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh  # also installs wrk
bash scripts/build.sh
exec .venv/bin/python bench/soak.py "$@"
