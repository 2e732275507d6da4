"""Which filter build a test runs, so the same test can be pointed at an older `.wasm` to show
that it fails there.

    MCP_E2E_WASM=/tmp/old/target/wasm32-wasip1/release/mcp_trace_filter.wasm
    MCP_E2E_WASM_LEGACY=1

`MCP_E2E_WASM` names the `.wasm` to load (default: the repository build, `WASM_PATH`).
`MCP_E2E_WASM_LEGACY=1` says that build predates the `span_metadata` key (commit 885250f and
older refuse it as unknown; there `{}` already published span metadata and watched responses),
so plugin configurations drop the key instead of making Envoy refuse to start.

Only the tests that use these helpers follow the variables; the session Envoy of conftest.py
always runs the repository build.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .envoy import ENVOY_BIN, REPO_ROOT, WASM_PATH, EnvoyProcess, ListenerSpec, render_bootstrap
from .ports import free_ports

SPAN_METADATA_ON = '{"span_metadata": true}'


def wasm_path() -> Path:
    """The `.wasm` under test, as an absolute path."""
    chosen = os.environ.get("MCP_E2E_WASM")
    return Path(chosen).resolve() if chosen else REPO_ROOT / WASM_PATH


def is_legacy() -> bool:
    return os.environ.get("MCP_E2E_WASM_LEGACY", "") not in ("", "0")


def plugin_config(config: dict[str, Any]) -> dict[str, Any]:
    """`config` for the build under test: without `span_metadata` for a legacy build."""
    if is_legacy():
        return {k: v for k, v in config.items() if k != "span_metadata"}
    return dict(config)


def use_wasm_in_bootstrap(node: Any) -> None:
    """Points every wasm `vm_config` in a bootstrap (a dict tree) at `wasm_path()`, in place."""
    if isinstance(node, dict):
        code = node.get("vm_config", {}).get("code", {}).get("local")
        if isinstance(code, dict) and "filename" in code:
            code["filename"] = str(wasm_path())
        for value in node.values():
            use_wasm_in_bootstrap(value)
    elif isinstance(node, list):
        for value in node:
            use_wasm_in_bootstrap(value)


def use_wasm_in_yaml(text: str) -> str:
    """A shipped Envoy YAML (e.g. rendered envoy/traced.yaml) loading `wasm_path()`; for a legacy
    build, its `{"span_metadata": true}` configurations become `{}`."""
    if WASM_PATH not in text:
        raise AssertionError(f"the config does not load {WASM_PATH}")
    text = text.replace(WASM_PATH, str(wasm_path()))
    if is_legacy():
        text = text.replace(SPAN_METADATA_ON, "{}")
    return text


class FlushingEnvoyProcess(EnvoyProcess):
    """An EnvoyProcess that flushes file access logs every 100 ms (Envoy's default is 10 s), so a
    test can read an access log line right after its request."""

    def start(self, timeout: float = 30.0, wait_ready: bool = True) -> "EnvoyProcess":
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                str(ENVOY_BIN),
                "-c", str(self.config_path),
                "--disable-hot-restart",
                "--concurrency", "1",
                "--log-level", "info",
                "--component-log-level", "wasm:debug",
                "--file-flush-interval-msec", "100",
            ],
            cwd=REPO_ROOT,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        if wait_ready:
            self._wait_ready(timeout)
        return self


def launch_envoy_under_test(
    listeners: list[ListenerSpec],
    clusters: dict[str, int],
    workdir: Path,
    patch: Callable[[dict[str, Any]], None] | None = None,
    timeout: float = 30.0,
    wait_ready: bool = True,
) -> EnvoyProcess:
    """Like envoy.launch_envoy, but loading `wasm_path()` and flushing access logs every 100 ms;
    `patch` may edit the bootstrap (a dict) before it is written (e.g. to add access logs). With
    `wait_ready=False` the caller waits (`wait_until_ready`), so several Envoys start together."""
    ports = free_ports(len(listeners) + 1)
    for spec, port in zip(listeners, ports[1:]):
        spec.port = port
    bootstrap = render_bootstrap(listeners, clusters, ports[0])
    use_wasm_in_bootstrap(bootstrap)
    if patch is not None:
        patch(bootstrap)
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "envoy.json"
    config_path.write_text(json.dumps(bootstrap, indent=2))
    env = FlushingEnvoyProcess(
        listeners={s.name: s for s in listeners},
        admin_port=ports[0],
        config_path=config_path,
        log_path=workdir / "envoy.log",
    )
    try:
        return env.start(timeout, wait_ready)
    except BaseException:
        env.stop()
        raise


def wait_until_ready(env: EnvoyProcess, timeout: float = 30.0) -> None:
    """Waits for an Envoy started with `wait_ready=False`; stops it if it never gets ready."""
    try:
        env._wait_ready(timeout)
    except BaseException:
        env.stop()
        raise


def add_access_log(bootstrap: dict[str, Any], listener: str, path: Path, line_format: str) -> None:
    """Adds a file access log with `line_format` to the HTTP connection manager of `listener`."""
    for spec in bootstrap["static_resources"]["listeners"]:
        if spec["name"] != f"listener_{listener}":
            continue
        hcm = spec["filter_chains"][0]["filters"][0]["typed_config"]
        hcm.setdefault("access_log", []).append({
            "name": "envoy.access_loggers.file",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                "path": str(path),
                "log_format": {"text_format_source": {"inline_string": line_format}},
            },
        })
        return
    raise AssertionError(f"no listener {listener!r} in the bootstrap")


def wasm_memory_bytes(env: EnvoyProcess) -> int:
    """The filter's `wasm_memory_bytes` gauge (summed over Envoy's VMs)."""
    stats = env.stats("mcp_trace_filter.wasm_memory_bytes")
    values = [v for k, v in stats.items() if k.endswith("mcp_trace_filter.wasm_memory_bytes")]
    assert len(values) == 1, f"wasm_memory_bytes gauge not found: {stats}"
    return int(values[0])
