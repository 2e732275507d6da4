"""The shipped Envoy configs, read as data: every wasm filter in them is loaded the way the filter
needs (body access flag, fail-open policy, the built module, a configuration the filter accepts),
and each whole config passes Envoy's own validation."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_lib.envoy import ENVOY_BIN, REPO_ROOT, WASM_PATH

WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
CONFIGS = sorted((REPO_ROOT / "envoy").glob("*.yaml"))
KNOWN_KEYS = {"precedence", "baggage", "max_body_bytes", "span_metadata", "span_headers", "header_mismatch", "role",
              "export", "client_span", "root_sampling_ratio", "inject_meta", "server_spans"}


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every mapping in the document, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def wasm_filters(document: Any) -> list[dict[str, Any]]:
    return [node["config"] for node in walk(document) if node.get("@type") == WASM_TYPE]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_wasm_filter_is_loaded_safely(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    filters = wasm_filters(document)
    assert filters, f"{path.name} loads no wasm filter"
    for config in filters:
        # Without the flag Envoy turns the header pause into "stop all" and every JSON POST hangs.
        assert config.get("allow_on_headers_stop_iteration") is True, config.get("name")
        # A VM fault (a trap, an allocation failure) must never take traffic down.
        assert config.get("failure_policy") == "FAIL_OPEN", config.get("name")
        assert config["vm_config"]["code"]["local"]["filename"] == WASM_PATH
        plugin = json.loads(config["configuration"]["value"])
        assert isinstance(plugin, dict) and set(plugin) <= KNOWN_KEYS, plugin
        if "export" in plugin:
            # The own-span mode exports through a cluster of the same config.
            clusters = {c["name"] for c in document["static_resources"]["clusters"]}
            assert plugin["export"]["cluster"] in clusters, (plugin["export"], clusters)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_envoy_accepts_the_config(path: Path) -> None:
    """`envoy --mode validate`, from the repository root like the README says to start them."""
    result = subprocess.run([str(ENVOY_BIN), "--mode", "validate", "-c", str(path.relative_to(REPO_ROOT))],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
