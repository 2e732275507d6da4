"""The traced two-stage chain (envoy/traced.yaml) with hostile and unusual trace contexts, all real
parts: Envoy rendered from the shipped file (free ports, fast OTLP flush), an OTLP receiver, and
behind it either the traced MCP SDK server of traced_peers.py or a recording upstream.

  - a future-version `_meta.traceparent` (`01-<trace>-<parent>-01-extra`) is continued as
    version 00: the server gets `00-<trace>-...`, Envoy's span is exported as a child of
    `<parent>`, and the MCP server span is a child of Envoy's (the upstream filter rewrites the
    body's longer `_meta.traceparent` to Envoy's 55-byte one and fixes `Content-Length`);
  - a higher version with a 200 KB suffix: no 431, only the 55-byte version-00 value goes on;
  - a JSON batch of two tools/call with different contexts A and B: the upstream filter rewrites
    message 1's `_meta.traceparent` (A) to Envoy's span and leaves message 2's (B) and every other
    byte alone.

Raw requests (httpx), no MCP client. Point MCP_E2E_WASM (and MCP_E2E_WASM_LEGACY) at another build
to run these against it (e2e_lib/wasm_under_test.py).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_lib.envoy import ENVOY_BIN, REPO_ROOT, stop_process
from e2e_lib.otlp import OtlpReceiver, Span
from e2e_lib.ports import free_ports, wait_for_port
from e2e_lib.recording_upstream import Recorded, RecordingUpstream, read_recorded
from e2e_lib.wasm_under_test import use_wasm_in_yaml, wasm_path
from traced_peers import render_traced

PEERS_SCRIPT = Path(__file__).resolve().parent / "traced_peers.py"
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@dataclass
class TracedEnvoy:
    """envoy/traced.yaml rendered in front of the MCP server port `server_port`."""

    workdir: Path
    server_port: int
    otlp_port: int
    listen: int = 0
    admin: int = 0
    proc: subprocess.Popen[bytes] | None = None
    _log: Any = field(default=None, repr=False)

    def start(self) -> "TracedEnvoy":
        self.listen, self.admin = free_ports(2)
        config = self.workdir / "envoy.yaml"
        config.write_text(use_wasm_in_yaml(render_traced(
            listen=self.listen, admin=self.admin, mcp_server=self.server_port, otlp=self.otlp_port)))
        self._log = open(self.workdir / "envoy.log", "wb")
        self.proc = subprocess.Popen(
            [str(ENVOY_BIN), "-c", str(config), "--disable-hot-restart", "--concurrency", "1",
             "--log-level", "warning"],
            cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        return self

    def wait_ready(self) -> None:
        try:
            wait_for_port(self.listen, timeout=30)
        except TimeoutError:
            raise RuntimeError(f"traced envoy not up (exit {self.proc and self.proc.poll()}):\n{self.log()}") from None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.listen}{path}"

    def log(self) -> str:
        path = self.workdir / "envoy.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-20:]) if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)
        if self._log is not None:
            self._log.close()


@dataclass
class Chain:
    receiver: OtlpReceiver
    sdk: TracedEnvoy  # -> the traced MCP SDK server
    sdk_record: Path  # every request the SDK server received
    rec: TracedEnvoy  # -> the recording upstream
    upstream: RecordingUpstream

    session: dict[str, str] = field(default_factory=dict)

    def sdk_headers(self) -> dict[str, str]:
        """MCP headers for the SDK server, in a session opened (once) by a raw initialize."""
        if not self.session:
            init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "e2e-raw", "version": "0"}}}
            r = httpx.post(self.sdk.url("/mcp"), json=init, headers=MCP_HEADERS, timeout=15)
            assert r.status_code == 200, f"initialize: HTTP {r.status_code} {r.text[:300]!r}"
            self.session = {**MCP_HEADERS, "mcp-session-id": r.headers["mcp-session-id"],
                            "mcp-protocol-version": r.json()["result"]["protocolVersion"]}
            note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            r = httpx.post(self.sdk.url("/mcp"), json=note, headers=self.session, timeout=15)
            assert r.status_code == 202, f"notifications/initialized: HTTP {r.status_code}"
        return self.session

    def sdk_received_with(self, marker: str) -> Recorded:
        found = [r for r in read_recorded(self.sdk_record) if marker.encode() in r.body]
        assert len(found) == 1, f"{len(found)} requests carrying {marker!r} reached the MCP server"
        return found[0]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    if not wasm_path().is_file():
        pytest.fail(f"{wasm_path()} is missing: run `bash scripts/build.sh` first", pytrace=False)
    receiver = OtlpReceiver().start()
    upstream = RecordingUpstream().start()
    workdir = tmp_path_factory.mktemp("traced_hardening")
    (workdir / "sdk").mkdir()
    (workdir / "rec").mkdir()
    server_port = free_ports(1)[0]
    record = workdir / "sdk" / "requests.jsonl"
    server_log = open(workdir / "sdk" / "server.log", "wb")
    server = subprocess.Popen(
        [sys.executable, str(PEERS_SCRIPT), str(server_port), receiver.endpoint, str(record), "json"],
        stdout=server_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    sdk = TracedEnvoy(workdir / "sdk", server_port, receiver.port)
    rec = TracedEnvoy(workdir / "rec", upstream.port, receiver.port)
    try:
        sdk.start()
        rec.start()
        try:
            wait_for_port(server_port, timeout=30)
        except TimeoutError:
            raise RuntimeError(f"MCP server not up: {(workdir / 'sdk' / 'server.log').read_text()[-2000:]}") from None
        sdk.wait_ready()
        rec.wait_ready()
        yield Chain(receiver, sdk, record, rec, upstream)
    finally:
        for envoy in (sdk, rec):
            envoy.stop()
        stop_process(server)
        server_log.close()
        upstream.stop()
        receiver.stop()


def ids() -> tuple[str, str]:
    return secrets.token_hex(16), secrets.token_hex(8)


def tools_call(traceparent: str, marker: str, id: int = 1) -> dict[str, Any]:  # noqa: A002 - JSON-RPC field
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "get_weather", "arguments": {"city": marker}, "_meta": {"traceparent": traceparent}}}


def gateway_span(chain: Chain, trace_id: str) -> Span:
    return chain.receiver.wait_span(trace_id=trace_id, service="mcp-gateway")


def upstream_traceparent(rec: Recorded) -> str:
    values = rec.values("traceparent")
    assert len(values) == 1, f"the server got traceparent {values!r}"
    return values[0]


# ------------------------------------------------------------------------------------------- tests


def future_version_call(chain: Chain) -> tuple[str, str, Recorded]:
    """Sends a tools/call with `_meta.traceparent` = `01-<trace>-<parent>-01-extra` to the SDK
    server through the chain; returns (trace, parent, what the server received)."""
    trace_id, parent = ids()
    marker = f"future-{uuid.uuid4().hex[:8]}"
    body = json.dumps(tools_call(f"01-{trace_id}-{parent}-01-extra", marker)).encode()
    r = httpx.post(chain.sdk.url("/mcp"), content=body, headers=chain.sdk_headers(), timeout=15)
    assert r.status_code == 200, f"HTTP {r.status_code} {r.text[:300]!r}\n{chain.sdk.log()}"
    return trace_id, parent, chain.sdk_received_with(marker)


def test_future_version_is_continued_as_version_00(chain: Chain) -> None:
    """`01-<trace>-<parent>-01-extra` in _meta: the Envoy span is exported as a child of <parent>
    in <trace>, and the server gets `00-<trace>-<Envoy span>-01`."""
    trace_id, parent, got = future_version_call(chain)
    header = upstream_traceparent(got)
    assert len(header) == 55 and header.startswith(f"00-{trace_id}-"), (
        f"the server got traceparent {header!r}, expected 00-{trace_id}-<Envoy span>-01")
    gw = gateway_span(chain, trace_id)
    assert gw.parent_span_id == parent, gw
    assert header == f"00-{trace_id}-{gw.span_id}-01"


def test_future_version_server_span_is_child_of_envoy_span(chain: Chain) -> None:
    """Same request: the MCP server span is a child of the Envoy span (one chain, as for 00)."""
    trace_id, _, got = future_version_call(chain)
    gw = gateway_span(chain, trace_id)
    server = chain.receiver.wait_span(trace_id=trace_id, service="mcp-server")
    assert server.parent_span_id == gw.span_id, (
        f"MCP server span {server!r} is not the child of the Envoy span {gw.span_id}; the server received "
        f"_meta {got.json()['params']['_meta']!r} and header traceparent {got.values('traceparent')!r}")


def test_future_version_with_a_200kb_suffix(chain: Chain) -> None:
    """A higher-version `_meta.traceparent` with a 200 KB suffix: no 431, the request succeeds,
    and what goes on to the server is the 55-byte version-00 value."""
    trace_id, parent = ids()
    marker = f"long-{uuid.uuid4().hex[:8]}"
    long_tp = f"cc-{trace_id}-{parent}-01-" + "x" * 200_000
    body = json.dumps(tools_call(long_tp, marker)).encode()
    r = httpx.post(chain.sdk.url("/mcp"), content=body, headers=chain.sdk_headers(), timeout=15)
    assert r.status_code == 200, f"HTTP {r.status_code} {r.text[:300]!r}\n{chain.sdk.log()}"

    got = upstream_traceparent(chain.sdk_received_with(marker))
    assert len(got) == 55 and got.startswith(f"00-{trace_id}-") and got.endswith("-01"), got[:120]
    gw = gateway_span(chain, trace_id)
    assert gw.parent_span_id == parent and got == f"00-{trace_id}-{gw.span_id}-01"


def test_batch_sync_rewrites_only_the_lifted_context(chain: Chain) -> None:
    """A batch of two tools/call with contexts A and B: upstream, message 1's _meta.traceparent is
    Envoy's span (trace A) and message 2's is still B; every other byte is unchanged."""
    (trace_a, span_a), (trace_b, span_b) = ids(), ids()
    tp_a, tp_b = f"00-{trace_a}-{span_a}-01", f"00-{trace_b}-{span_b}-01"
    marker = uuid.uuid4().hex[:8]
    body = json.dumps([tools_call(tp_a, f"a-{marker}", 1), tools_call(tp_b, f"b-{marker}", 2)],
                      separators=(",", ":")).encode()
    path = f"/mcp/batch-{marker}"
    r = httpx.post(chain.rec.url(path), content=body, headers=MCP_HEADERS, timeout=15)
    assert r.status_code == 200, f"HTTP {r.status_code} {r.text[:300]!r}\n{chain.rec.log()}"

    rec = chain.upstream.wait_for(path)
    gw = gateway_span(chain, trace_a)
    assert gw.parent_span_id == span_a, gw
    envoy_tp = upstream_traceparent(rec)
    assert envoy_tp == f"00-{trace_a}-{gw.span_id}-01"
    expected = body.replace(tp_a.encode(), envoy_tp.encode(), 1)
    assert body.count(tp_a.encode()) == 1 and body.count(tp_b.encode()) == 1  # premise
    messages = json.loads(rec.body)
    got = [m["params"]["_meta"]["traceparent"] for m in messages]
    assert got == [envoy_tp, tp_b], (
        f"upstream _meta.traceparent of messages 1, 2: {got}; expected [Envoy span {envoy_tp}, B {tp_b}]")
    assert rec.body == expected, "bytes other than message 1's traceparent changed"
