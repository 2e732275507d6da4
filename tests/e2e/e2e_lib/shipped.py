"""Run one of the shipped Envoy configs (envoy/*.yaml) as it is, on free 127.0.0.1 ports.

`render_shipped` replaces only the fixed ports (listener 10000, admin 9901, MCP server 8000,
OTLP 4318) and, for the traced configs, appends a fast OpenTelemetry flush; every other byte is the
shipped file, so a test exercises what users run. `ShippedEnvoy` starts it from the repository
root (the wasm path in the configs is repository-relative) and stops exactly the PID it started.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from .envoy import ENVOY_BIN, REPO_ROOT, stop_process
from .ports import free_ports

ENVOY_DIR = REPO_ROOT / "envoy"


def render_shipped(source: Path, *, listen: int, admin: int, upstream: int, otlp: int | None = None,
                   flush_interval_ms: int = 200) -> str:
    """`source` with its fixed ports replaced. Each fixed port must occur exactly once (OTLP only
    in the traced configs), so a config that changes shape fails loudly instead of half-rendered."""
    text = source.read_text()
    replacements = {
        "port_value: 10000": f"port_value: {listen}",
        "port_value: 9901": f"port_value: {admin}",
        "port_value: 8000": f"port_value: {upstream}",
    }
    traced = "envoy.tracers.opentelemetry" in text
    if traced:
        if otlp is None:
            raise ValueError(f"{source.name} exports OTLP: pass otlp=")
        replacements["port_value: 4318"] = f"port_value: {otlp}"
        replacements["http://127.0.0.1:4318/v1/traces"] = f"http://127.0.0.1:{otlp}/v1/traces"
    for old, new in replacements.items():
        # Not followed by a digit: a free port already written (43189) holds "4318" too.
        pattern = re.compile(re.escape(old) + r"(?!\d)")
        count = len(pattern.findall(text))
        if count != 1:
            raise AssertionError(f"{source.name}: expected exactly one {old!r}, found {count}")
        text = pattern.sub(new, text)
    if traced:
        if re.search(r"^layered_runtime:", text, re.M):
            raise AssertionError(f"{source.name} already has a layered_runtime; update render_shipped")
        text += (
            "\nlayered_runtime:\n  layers:\n  - name: test_static\n    static_layer:\n"
            f"      tracing.opentelemetry.flush_interval_ms: {flush_interval_ms}\n"
        )
    return text


class ShippedEnvoy:
    """One shipped config running in its own Envoy, in front of `upstream` (a port)."""

    def __init__(self, source: Path, workdir: Path, *, upstream: int, otlp: int | None = None) -> None:
        self.source = source
        self.listen, self.admin = free_ports(2)
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / source.name
        self.config.write_text(render_shipped(source, listen=self.listen, admin=self.admin,
                                              upstream=upstream, otlp=otlp))
        self.log_path = workdir / f"{source.stem}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.listen}{path}"

    def start(self) -> "ShippedEnvoy":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(ENVOY_BIN), "-c", str(self.config), "--disable-hot-restart", "--concurrency", "1",
             "--log-level", "warning"],
            cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the admin says LIVE and the public listener accepts connections."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.source.name}: envoy exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                r = httpx.get(f"http://127.0.0.1:{self.admin}/ready", timeout=1.0)
                if r.status_code == 200 and r.text.strip() == "LIVE":
                    httpx.get(self.url("/"), timeout=1.0)  # the listener answers (any status)
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.source.name}: envoy not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def counters(self) -> dict[str, int]:
        """The filter's counters by short name (`lifted`, `oversize`, ...), summed over the config's
        filter instances."""
        r = httpx.get(f"http://127.0.0.1:{self.admin}/stats",
                      params={"format": "json", "filter": "mcp_trace_filter"}, timeout=2.0)
        out: dict[str, int] = {}
        for s in r.json().get("stats", []):
            if "value" in s:
                short = s["name"].rsplit("mcp_trace_filter.", 1)[-1]
                out[short] = out.get(short, 0) + s["value"]
        return out

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        stop_process(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None
