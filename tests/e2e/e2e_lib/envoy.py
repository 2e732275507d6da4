"""Render one Envoy bootstrap with several listeners (one plugin configuration each) and run it.

Everything is 127.0.0.1 on free ports. The process is started from the repository root so the wasm
path in the config is the repository-relative `target/wasm32-wasip1/release/mcp_trace_filter.wasm`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .ports import free_ports

REPO_ROOT = Path(__file__).resolve().parents[3]
WASM_PATH = "target/wasm32-wasip1/release/mcp_trace_filter.wasm"
# MCP_E2E_ENVOY=/path/to/envoy runs the suite on another Envoy binary (scripts/matrix.sh does, per
# version); unset or empty, the project venv's pinned one.
ENVOY_BIN = Path(os.environ.get("MCP_E2E_ENVOY") or REPO_ROOT / ".venv" / "bin" / "envoy").absolute()
COUNTER_NAMES = ("lifted", "no_context", "invalid_context", "not_mcp", "oversize")
# Every counter the filter defines. COUNTER_NAMES above are the per-request outcomes most tests
# assert exactly; the others move alongside them (invalid_values counts values, not requests).
ALL_COUNTER_NAMES = COUNTER_NAMES + ("header_kept", "invalid_values", "body_synced")
# The test listeners' per-connection buffer limit. Envoy answers 413 when a held body plus one read
# passes the stream's limit; the shipped configs bound a read with a 1 MiB connection limit and raise
# the stream's with `request_body_buffer_limit` (README, "Host buffer limit"). These listeners raise
# the connection limit instead, which holds for the bodies the suite sends; tests/e2e/test_framing.py
# covers the framings where it does not.
BUFFER_LIMIT = 4 * 1024 * 1024


@dataclass
class ListenerSpec:
    """One listener: `plugin_config` is the filter's JSON configuration (a dict, or a raw string to send
    unparsed), or None for a control listener without the filter. `cluster` names the upstream."""

    name: str
    plugin_config: dict[str, Any] | str | None
    cluster: str = "recorder"
    port: int = 0
    # None keeps Envoy's default per-connection buffer limit (1 MiB).
    buffer_limit: int | None = BUFFER_LIMIT


def wasm_filter(plugin_config: dict[str, Any] | str) -> dict[str, Any]:
    """The `envoy.filters.http.wasm` entry for one plugin configuration."""
    raw = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "mcp_trace_filter",
                # Without it a Pause from on_http_request_headers becomes "stop all" and the body
                # callbacks never run (DESIGN.md fact 1).
                "allow_on_headers_stop_iteration": True,
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": raw},
                "vm_config": {
                    "vm_id": "mcp_trace_filter",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": WASM_PATH}},
                },
            },
        },
    }


def _listener(spec: ListenerSpec) -> dict[str, Any]:
    http_filters = [] if spec.plugin_config is None else [wasm_filter(spec.plugin_config)]
    http_filters.append(
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }
    )
    listener = {
        "name": f"listener_{spec.name}",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": spec.port}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network."
                            "http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": spec.name,
                            # AUTO: HTTP/1.1 and HTTP/2 prior knowledge (h2c) on the same port.
                            "codec_type": "AUTO",
                            "route_config": {
                                "name": f"route_{spec.name}",
                                "virtual_hosts": [
                                    {
                                        "name": "all",
                                        "domains": ["*"],
                                        "routes": [
                                            {
                                                "match": {"prefix": "/"},
                                                # A real upstream, never direct_response: body
                                                # callbacks do not run on direct_response (fact 2).
                                                "route": {"cluster": spec.cluster, "timeout": "10s"},
                                            }
                                        ],
                                    }
                                ],
                            },
                            "http_filters": http_filters,
                        },
                    }
                ]
            }
        ],
    }
    if spec.buffer_limit is not None:
        listener["per_connection_buffer_limit_bytes"] = spec.buffer_limit
    return listener


def _cluster(name: str, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}
            ],
        },
    }


def render_bootstrap(listeners: list[ListenerSpec], clusters: dict[str, int], admin_port: int) -> dict[str, Any]:
    """A complete static bootstrap: the listeners, one STATIC cluster per `clusters` entry, the admin."""
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [_listener(s) for s in listeners],
            "clusters": [_cluster(n, p) for n, p in clusters.items()],
        },
    }


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """Ends a process we started, if it still runs: TERM, then KILL after 10 s."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class EnvoyProcess:
    """One running Envoy started by us; `stop()` ends exactly this PID."""

    listeners: dict[str, ListenerSpec]
    admin_port: int
    config_path: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    saw_failure: bool = False  # set by conftest when a test using this Envoy failed
    _log_file: Any = field(default=None, repr=False)

    def url(self, listener: str, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.listeners[listener].port}{path}"

    def port(self, listener: str) -> int:
        return self.listeners[listener].port

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, timeout: float = 30.0, wait_ready: bool = True) -> "EnvoyProcess":
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                str(ENVOY_BIN),
                "-c", str(self.config_path),
                "--disable-hot-restart",  # no shared-memory base-id clash with other Envoys on the machine
                "--concurrency", "1",
                "--log-level", "info",
                "--component-log-level", "wasm:debug",
            ],
            cwd=REPO_ROOT,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        if wait_ready:
            self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"envoy exited with {self.proc.returncode} during startup:\n{self.log_tail()}")
            try:
                r = httpx.get(f"{self.admin_url}/ready", timeout=1.0)
                if r.status_code == 200 and r.text.strip() == "LIVE":
                    listening = httpx.get(f"{self.admin_url}/listeners?format=json", timeout=1.0).json()
                    if len(listening.get("listener_statuses", [])) == len(self.listeners):
                        return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"envoy not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit status if Envoy exits within `timeout`, else None (still running)."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        stop_process(self.proc)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stats(self, contains: str = "mcp_trace_filter") -> dict[str, int]:
        """Admin counters whose name contains `contains` (full Envoy stat names)."""
        # verify=False: plain HTTP anyway, and it spares building a TLS context (~50 ms) per call.
        r = httpx.get(f"{self.admin_url}/stats", params={"format": "json", "filter": contains}, timeout=2.0,
                      verify=False)
        r.raise_for_status()
        return {s["name"]: s["value"] for s in r.json().get("stats", []) if "value" in s}

    def counters(self, names: tuple[str, ...] = COUNTER_NAMES) -> dict[str, int]:
        """The filter's counters `names` keyed by short name (`lifted`, ...); 0 when not yet defined."""
        full = self.stats()
        out = dict.fromkeys(names, 0)
        for name, value in full.items():
            short = name.rsplit("mcp_trace_filter.", 1)[-1]
            if short in out:
                out[short] += value
        return out


def _prepare(listeners: list[ListenerSpec], clusters: dict[str, int], workdir: Path) -> EnvoyProcess:
    ports = free_ports(len(listeners) + 1)
    for spec, port in zip(listeners, ports[1:]):
        spec.port = port
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "envoy.json"
    config_path.write_text(json.dumps(render_bootstrap(listeners, clusters, ports[0]), indent=2))
    return EnvoyProcess(
        listeners={s.name: s for s in listeners},
        admin_port=ports[0],
        config_path=config_path,
        log_path=workdir / "envoy.log",
    )


def launch_envoy(
    listeners: list[ListenerSpec], clusters: dict[str, int], workdir: Path, timeout: float = 30.0
) -> EnvoyProcess:
    """Assign free ports, write the config into `workdir`, start Envoy and wait until every listener is up."""
    env = _prepare(listeners, clusters, workdir)
    try:
        return env.start(timeout)
    except BaseException:
        env.stop()
        raise


def envoy_exit_status(
    listeners: list[ListenerSpec], clusters: dict[str, int], workdir: Path, timeout: float = 20.0
) -> tuple[int | None, str]:
    """Start Envoy with this config and report (exit status, log) if it exits within `timeout`;
    (None, log) if it is still running then (it is stopped)."""
    env = _prepare(listeners, clusters, workdir)
    env.start(wait_ready=False)
    try:
        status = env.wait_exit(timeout)
    finally:
        env.stop()
    return status, env.log_text()
