"""Plugin configuration: invalid configurations are rejected when Envoy loads the plugin (fail closed,
naming the key), and `_`-prefixed keys are ignored (see the `explicit_defaults` listener)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e_lib.envoy import ListenerSpec, envoy_exit_status, launch_envoy
from e2e_lib.gateway import Gateway
from e2e_lib.values import TP_META, dumps, meta, rpc

BAD_CONFIGS: dict[str, tuple[Any, str]] = {
    "unknown_key": ({"precedence": "meta", "preceedence": "header"}, "preceedence"),
    "bad_precedence": ({"precedence": "sideways"}, "precedence"),
    "bad_baggage": ({"baggage": "keep"}, "baggage"),
    "precedence_wrong_type": ({"precedence": 1}, "precedence"),
    "max_body_bytes_string": ({"max_body_bytes": "1048576"}, "max_body_bytes"),
    "max_body_bytes_negative": ({"max_body_bytes": -5}, "max_body_bytes"),
    "max_body_bytes_fraction": ({"max_body_bytes": 1.5}, "max_body_bytes"),
    "not_json": ("{precedence: meta}", ""),
    "not_an_object": ('["meta"]', ""),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_invalid_plugin_config_fails_to_load(wasm_file: Path, tmp_path: Path, case: str) -> None:
    """Envoy refuses to start with the plugin (it exits non-zero) and the log says why."""
    cfg, key = BAD_CONFIGS[case]
    status, log = envoy_exit_status([ListenerSpec("bad", cfg)], {"recorder": 9}, tmp_path)
    assert status is not None and status != 0, f"envoy kept running with plugin config {cfg!r}"
    assert "Plugin mcp_trace_filter failed to load" in log
    assert f"`{key}`" in log if key else "invalid configuration" in log


def test_valid_nondefault_config_loads(wasm_file: Path, tmp_path: Path) -> None:
    """Control for the test above: the same launcher with valid non-default values comes up ready."""
    cfg = {"precedence": "header", "baggage": "merge", "max_body_bytes": 1, "_x": {"anything": [1, None]}}
    env = launch_envoy([ListenerSpec("ok", cfg)], {"recorder": 9}, tmp_path)
    try:
        assert env.stats()["wasmcustom.mcp_trace_filter.lifted"] == 0
    finally:
        env.stop()


def test_underscore_keys_listener_lifts(gw: Gateway) -> None:
    """The session listener configured with `_rules_`/`_comment` keys is up and lifting."""
    ex = gw.send("explicit_defaults", dumps(rpc(meta(TP_META))), counts={"lifted": 1})
    assert ex.traceparent == TP_META
