#!/usr/bin/env bash
# Soak: saturating mixed MCP traffic through the filter (default 10 minutes); fails on any error,
# a dead Envoy or growing memory. Writes bench/soak-<date>.md. Options: `scripts/soak.sh --help`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk
fi
bash scripts/setup.sh
bash scripts/build.sh
exec .venv/bin/python bench/soak.py "$@"
