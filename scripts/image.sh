#!/usr/bin/env bash
# Writes the filter as an OCI image layout: the "compat" wasm image variant that Istio, Higress
# and Envoy Gateway pull. FROM scratch, one tar+gzip layer holding only `plugin.wasm`, manifest
# annotation `module.wasm.image/variant=compat`. Built daemonless with umoci (Debian package).
# Also writes the release checksum of the .wasm next to the layout.
#
#   scripts/image.sh [DIR]        DIR defaults to target/oci; the image is tagged DIR:latest
#   MCP_IMAGE_TAG=0.1.0 scripts/image.sh target/oci
#
# Writes DIR (replaced whole), DIR/../mcp_trace_filter.wasm.sha256 (`sha256sum` format, checked
# with `sha256sum -c` from that directory) and DIR/../mcp_trace_filter.wasm beside it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/target/oci}"
tag="${MCP_IMAGE_TAG:-latest}"
wasm="$root/target/wasm32-wasip1/release/mcp_trace_filter.wasm"

command -v umoci >/dev/null || { echo "umoci not found: run scripts/setup.sh" >&2; exit 1; }
if [ ! -f "$wasm" ] || [ -n "${MCP_IMAGE_REBUILD:-}" ]; then
  bash "$root/scripts/build.sh" >/dev/null
fi

mkdir -p "$(dirname "$dir")"
dir="$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")"
out="$(dirname "$dir")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The layer: a plain tar with one regular file, owned by root, fixed time and mode. umoci
# compresses it with gzip (application/vnd.oci.image.layer.v1.tar+gzip).
mkdir "$work/rootfs"
cp "$wasm" "$work/rootfs/plugin.wasm"
tar --format=ustar --owner=0 --group=0 --numeric-owner --mtime=@0 --mode=0644 \
  -cf "$work/layer.tar" -C "$work/rootfs" plugin.wasm

rm -rf "$dir"
umoci init --layout "$dir"
umoci new --image "$dir:$tag"
umoci raw add-layer --image "$dir:$tag" \
  --history.created_by "scripts/image.sh: plugin.wasm" "$work/layer.tar"
umoci config --image "$dir:$tag" --no-history \
  --manifest.annotation module.wasm.image/variant=compat \
  --config.label org.opencontainers.image.title=mcp-trace-filter
umoci gc --layout "$dir"
chmod -R a+rX "$dir"

# The release checksum, next to a copy of the .wasm it names.
cp "$wasm" "$out/mcp_trace_filter.wasm"
(cd "$out" && sha256sum mcp_trace_filter.wasm > mcp_trace_filter.wasm.sha256)

echo "OCI layout: $dir (tag $tag)"
echo "checksum:   $out/mcp_trace_filter.wasm.sha256 ($(cut -d' ' -f1 "$out/mcp_trace_filter.wasm.sha256"))"
