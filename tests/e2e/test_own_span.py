"""The own-span mode (envoy/own-span.yaml), all real parts, one listener, one trace end to end:

    MCP SDK 2.3 client (OTel SDK, context only in params._meta)
      -> Envoy rendered from envoy/own-span.yaml (free ports, fast flush); Envoy's tracer is off,
         the filter makes the gateway SERVER + CLIENT spans and exports them as OTLP/HTTP JSON
      -> MCP SDK server (OTel SDK, parents on _meta)
    every span -> one OTLP/HTTP receiver (e2e_lib/otlp.py, strict OTLP/JSON parsing)

Stacks: the shipped file in front of an SSE server and a JSON server; the same with `inject_meta`;
and one whose collector address points at a closed port (collector down).
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from e2e_lib.envoy import ENVOY_BIN, REPO_ROOT, WASM_PATH
from e2e_lib.otlp import KIND_CLIENT, KIND_SERVER, STATUS_ERROR, STATUS_UNSET, OtlpReceiver, Span
from e2e_lib.ports import free_port, free_ports, wait_for_port
from e2e_lib.recording_upstream import Recorded, read_recorded
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from traced_peers import RPC_FAIL_CODE

OWN_SPAN_YAML = REPO_ROOT / "envoy" / "own-span.yaml"
PEERS_SCRIPT = Path(__file__).resolve().parent / "traced_peers.py"
GATEWAY = "mcp-gateway"


def render_own_span(*, listen: int, admin: int, mcp_server: int, otlp: int, extra: str = "") -> str:
    """envoy/own-span.yaml with its fixed ports replaced, a 200 ms flush and `extra` plugin keys;
    everything else is the shipped file byte for byte."""
    text = OWN_SPAN_YAML.read_text()
    replacements = {
        "port_value: 10000": f"port_value: {listen}",
        "port_value: 9901": f"port_value: {admin}",
        "port_value: 8000": f"port_value: {mcp_server}",
        "port_value: 4318": f"port_value: {otlp}",
        '"authority": "127.0.0.1:4318"': f'"authority": "127.0.0.1:{otlp}"',
        '"flush_interval_ms": 1000': '"flush_interval_ms": 200',
        '"client_span": true': '"client_span": true' + extra,
    }
    for old, new in replacements.items():
        # Not followed by a digit: a free port already written (43189) holds "4318" too.
        pattern = re.compile(re.escape(old) + r"(?!\d)")
        count = len(pattern.findall(text))
        if count != 1:
            raise AssertionError(f"{OWN_SPAN_YAML}: expected exactly one {old!r}, found {count}")
        text = pattern.sub(new, text)
    return text


class Stack:
    """One Envoy rendered from envoy/own-span.yaml in front of one traced MCP server."""

    def __init__(self, mode: str, receiver: OtlpReceiver, workdir: Path, extra: str = "",
                 collector_port: int | None = None) -> None:
        self.mode = mode
        self.listen, self.admin, self.server_port = free_ports(3)
        self.record = workdir / "requests.jsonl"
        self.config = workdir / "envoy.yaml"
        self.config.write_text(render_own_span(
            listen=self.listen, admin=self.admin, mcp_server=self.server_port,
            otlp=receiver.port if collector_port is None else collector_port, extra=extra))
        self.envoy_log = workdir / "envoy.log"
        self.server_log = workdir / "server.log"
        self.receiver = receiver
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[Any] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen}/mcp"

    def start(self) -> "Stack":
        slog = open(self.server_log, "wb")
        elog = open(self.envoy_log, "wb")
        self._logs += [slog, elog]
        self.procs.append(subprocess.Popen(
            [sys.executable, str(PEERS_SCRIPT), str(self.server_port), self.receiver.endpoint, str(self.record),
             self.mode],
            stdout=slog, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        ))
        self.procs.append(subprocess.Popen(
            [str(ENVOY_BIN), "-c", str(self.config), "--disable-hot-restart", "--concurrency", "1",
             "--log-level", "warning"],
            cwd=REPO_ROOT, stdout=elog, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        ))
        return self

    def wait_ready(self) -> None:
        for proc, port, log in ((self.procs[0], self.server_port, self.server_log),
                                (self.procs[1], self.listen, self.envoy_log)):
            try:
                wait_for_port(port, timeout=30)
            except TimeoutError:
                raise RuntimeError(f"{log.name} (exit {proc.poll()}):\n{log.read_text()[-3000:]}") from None

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for f in self._logs:
            f.close()

    def received_with(self, marker: str) -> Recorded:
        found = [r for r in read_recorded(self.record) if marker.encode() in r.body]
        assert len(found) == 1, f"{len(found)} requests carry {marker!r}"
        return found[0]

    def stat(self, name: str) -> int:
        r = httpx.get(f"http://127.0.0.1:{self.admin}/stats", params={"format": "json", "filter": name}, timeout=2)
        return sum(s.get("value", 0) for s in r.json().get("stats", []) if s["name"].endswith(name))


class _Switchable(SpanExporter):
    """Forwards to OTLP while this module runs; a no-op afterwards (the global provider outlives us)."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.enabled = True

    def export(self, spans: Any) -> SpanExportResult:
        return self.inner.export(spans) if self.enabled else SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.enabled = False


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def client_tracing(receiver: OtlpReceiver) -> Iterator[None]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": "mcp-client"})))
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = _Switchable(OTLPSpanExporter(endpoint=receiver.endpoint, timeout=2))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield
    exporter.enabled = False


@pytest.fixture(scope="module")
def flaky_collector() -> Iterator[OtlpReceiver]:
    """The gateway's collector for the failure tests: the MCP server keeps exporting to the main
    receiver, so making this one fail or hang slows nothing but the gateway's exports."""
    r = OtlpReceiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def stacks(receiver: OtlpReceiver, flaky_collector: OtlpReceiver, client_tracing: None,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Stack]]:
    if not (REPO_ROOT / WASM_PATH).is_file():
        pytest.fail(f"{WASM_PATH} is missing: run `bash scripts/build.sh` first", pytrace=False)
    out = {
        "sse": Stack("sse", receiver, tmp_path_factory.mktemp("own_sse")),
        "json": Stack("json", receiver, tmp_path_factory.mktemp("own_json")),
        "inject": Stack("sse", receiver, tmp_path_factory.mktemp("own_inject"),
                        extra=', "inject_meta": true, "server_spans": "forward_and_strip"'),
        "down": Stack("json", receiver, tmp_path_factory.mktemp("own_down"), collector_port=free_port()),
        "flaky": Stack("json", receiver, tmp_path_factory.mktemp("own_flaky"), collector_port=flaky_collector.port),
    }
    try:
        for s in out.values():
            s.start()
        for s in out.values():
            s.wait_ready()
        yield out
    finally:
        for s in out.values():
            s.stop()


@pytest.fixture(params=("sse", "json"))
def stack(request: pytest.FixtureRequest, stacks: dict[str, Stack]) -> Stack:
    return stacks[request.param]


# ------------------------------------------------------------------------------------------ helpers


async def _sdk_call(url: str, tool: str, args: dict[str, Any]) -> tuple[Any, list[httpx2.Request]]:
    sent: list[httpx2.Request] = []

    async def record(request: httpx2.Request) -> None:
        sent.append(request)

    async with httpx2.AsyncClient(event_hooks={"request": [record]}, timeout=httpx2.Timeout(20.0)) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            try:
                result: Any = await client.call_tool(tool, args)
            except MCPError as e:
                result = e
    return result, sent


def sdk_call(stack: Stack, tool: str, args: dict[str, Any]) -> tuple[Any, str]:
    """Calls `tool` with the real SDK client; (result or MCPError, the client's _meta.traceparent)."""
    result, sent = anyio.run(_sdk_call, stack.url, tool, args)
    calls = [json.loads(r.content) for r in sent if r.method == "POST" and r.content]
    call = [c for c in calls if c.get("method") == "tools/call" and c["params"]["name"] == tool]
    assert len(call) == 1
    return result, call[0]["params"]["_meta"]["traceparent"]


def tp_ids(tp: str) -> tuple[str, str, str]:
    _, trace_id, span_id, flags = tp.split("-")
    return trace_id, span_id, flags


def new_tp(flags: str = "01") -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-{flags}"


def gateway_pair(receiver: OtlpReceiver, trace_id: str) -> tuple[Span, Span]:
    """The gateway's SERVER and CLIENT spans of one trace, once both arrived."""

    def find(spans: list[Span]) -> tuple[Span, Span] | None:
        mine = [s for s in spans if s.trace_id == trace_id and s.service == GATEWAY]
        server = [s for s in mine if s.kind == KIND_SERVER]
        client = [s for s in mine if s.kind == KIND_CLIENT]
        if server and client:
            assert len(server) == len(client) == 1, mine
            return server[0], client[0]
        return None

    return receiver.wait_for(find, timeout=10)


def mcp_server_span(receiver: OtlpReceiver, trace_id: str) -> Span:
    return receiver.wait_span(trace_id=trace_id, service="mcp-server")


def tools_call_body(marker: str, meta: dict[str, str] | None) -> bytes:
    params: dict[str, Any] = {"name": "get_weather", "arguments": {"city": marker}}
    if meta is not None:
        params["_meta"] = meta
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}).encode()


BASE_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
_sessions: dict[tuple[int, int], str] = {}


def session_id(stack: Stack) -> str:
    """An initialized MCP session on `stack`'s (stateful) server, one per thread, opened once."""
    key = (stack.listen, threading.get_ident())
    if key not in _sessions:
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                           "clientInfo": {"name": "e2e-raw", "version": "1"}}}
        r = httpx.post(stack.url, json=init, headers=BASE_HEADERS, timeout=10)
        assert r.status_code == 200, r.text
        sid = r.headers["mcp-session-id"]
        done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        r = httpx.post(stack.url, json=done, headers={**BASE_HEADERS, "mcp-session-id": sid}, timeout=10)
        assert r.status_code == 202, r.text
        _sessions[key] = sid
    return _sessions[key]


def post(stack: Stack, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    """POSTs `body` in an initialized session, as a raw HTTP client (no SDK, no _meta of its own)."""
    hdrs = {**BASE_HEADERS, "mcp-protocol-version": "2025-11-25", "mcp-session-id": session_id(stack)}
    hdrs.update(headers or {})
    return httpx.post(stack.url, content=body, headers=hdrs, timeout=10)


# ------------------------------------------------------------------------------------------- tests


def test_sdk_trace_is_one_chain_through_one_listener(stack: Stack) -> None:
    """client span -> gateway SERVER "tools/call get_weather" -> gateway CLIENT -> server span, one
    trace; the server received the CLIENT span in both its traceparent header and _meta."""
    receiver = stack.receiver
    result, meta_tp = sdk_call(stack, "get_weather", {"city": f"Paris-{stack.mode}"})
    assert not isinstance(result, MCPError) and not result.is_error
    trace_id, client_span_id, _ = tp_ids(meta_tp)
    server_span, client_span = gateway_pair(receiver, trace_id)
    backend = mcp_server_span(receiver, trace_id)

    assert server_span.name == client_span.name == "tools/call get_weather"
    assert server_span.parent_span_id == client_span_id
    assert client_span.parent_span_id == server_span.span_id
    assert backend.parent_span_id == client_span.span_id
    assert server_span.status_code == STATUS_UNSET
    assert server_span.start_ns <= client_span.start_ns <= client_span.end_ns <= server_span.end_ns
    a = server_span.attributes
    assert a["mcp.method.name"] == "tools/call"
    assert a["gen_ai.tool.name"] == "get_weather"
    assert a["gen_ai.operation.name"] == "execute_tool"
    assert a["network.transport"] == "tcp"
    assert a["jsonrpc.request.id"] == backend.attributes["jsonrpc.request.id"]
    assert a["mcp.protocol.version"] == backend.attributes["mcp.protocol.version"]
    assert a["client.address"] == "127.0.0.1" and isinstance(a["client.port"], int)
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == stack.listen
    assert a["network.protocol.version"] == "1.1"
    assert client_span.attributes["server.address"] == "127.0.0.1"
    assert client_span.attributes["server.port"] == stack.server_port
    for absent in ("error.type", "rpc.response.status_code", "client.address", "client.port"):
        assert absent not in client_span.attributes, absent

    got = stack.received_with(f"Paris-{stack.mode}")
    expected = f"00-{trace_id}-{client_span.span_id}-03"
    assert got.values("traceparent") == [expected]
    assert got.json()["params"]["_meta"]["traceparent"] == expected
    assert receiver.json_requests > 0


def test_tool_error_marks_the_gateway_span(stack: Stack) -> None:
    result, meta_tp = sdk_call(stack, "fail_tool", {"reason": stack.mode})
    assert not isinstance(result, MCPError) and result.is_error
    server_span, _ = gateway_pair(stack.receiver, tp_ids(meta_tp)[0])
    assert server_span.attributes["error.type"] == "tool_error"
    assert "rpc.response.status_code" not in server_span.attributes
    assert server_span.status_code == STATUS_ERROR


def test_jsonrpc_error_marks_the_gateway_span_with_its_message(stack: Stack) -> None:
    result, meta_tp = sdk_call(stack, "rpc_fail", {})
    assert isinstance(result, MCPError) and result.code == RPC_FAIL_CODE
    server_span, client_span = gateway_pair(stack.receiver, tp_ids(meta_tp)[0])
    code = str(RPC_FAIL_CODE)
    assert server_span.attributes["error.type"] == code
    assert server_span.attributes["rpc.response.status_code"] == code
    assert server_span.status_code == STATUS_ERROR == client_span.status_code
    assert server_span.status_message == result.message


def test_unsampled_context_exports_nothing_and_forwards_its_flags(stacks: dict[str, Stack]) -> None:
    stack = stacks["json"]
    unsampled, sampled = new_tp("00"), new_tp("01")
    marker = f"m-{secrets.token_hex(6)}"
    assert post(stack, tools_call_body(marker, {"traceparent": unsampled})).status_code == 200
    assert post(stack, tools_call_body("later", {"traceparent": sampled})).status_code == 200
    gateway_pair(stack.receiver, tp_ids(sampled)[0])
    time.sleep(0.5)
    assert [s for s in stack.receiver.spans() if s.trace_id == tp_ids(unsampled)[0]] == []
    got = stack.received_with(marker)
    header = got.values("traceparent")[0]
    assert header[3:35] == tp_ids(unsampled)[0] and header.endswith("-00")
    assert got.json()["params"]["_meta"]["traceparent"] == header


def test_a_different_header_context_is_a_link(stacks: dict[str, Stack]) -> None:
    stack = stacks["json"]
    meta_tp, header_tp = new_tp(), new_tp()
    marker = f"m-{secrets.token_hex(6)}"
    r = post(stack, tools_call_body(marker, {"traceparent": meta_tp}), {"traceparent": header_tp})
    assert r.status_code == 200, r.text
    server_span, _ = gateway_pair(stack.receiver, tp_ids(meta_tp)[0])
    assert server_span.parent_span_id == tp_ids(meta_tp)[1]
    assert server_span.links == ((tp_ids(header_tp)[0], tp_ids(header_tp)[1]),)


def test_a_header_only_client_gets_its_context_injected_into_meta(stacks: dict[str, Stack]) -> None:
    """No _meta: with `inject_meta` the server (which parents on _meta) continues the gateway's
    CLIENT span; the body stays valid JSON with a correct Content-Length."""
    stack = stacks["inject"]
    header_tp = new_tp()
    marker = f"m-{secrets.token_hex(6)}"
    r = post(stack, tools_call_body(marker, None), {"traceparent": header_tp})
    assert r.status_code == 200, r.text
    trace_id, header_span, _ = tp_ids(header_tp)
    server_span, client_span = gateway_pair(stack.receiver, trace_id)
    assert server_span.parent_span_id == header_span
    backend = mcp_server_span(stack.receiver, trace_id)
    assert backend.parent_span_id == client_span.span_id
    got = stack.received_with(marker)
    expected = f"00-{trace_id}-{client_span.span_id}-01"
    assert got.json()["params"]["_meta"]["traceparent"] == expected
    assert got.values("content-length") == [str(len(got.body))]
    assert stack.stat("mcp_trace_filter.meta_injected") >= 1


def test_without_injection_a_header_only_client_leaves_the_server_outside(stacks: dict[str, Stack]) -> None:
    """The contrast that makes injection worth having: the SDK server ignores the header."""
    stack = stacks["json"]
    header_tp = new_tp()
    marker = f"m-{secrets.token_hex(6)}"
    assert post(stack, tools_call_body(marker, None), {"traceparent": header_tp}).status_code == 200
    trace_id = tp_ids(header_tp)[0]
    gateway_pair(stack.receiver, trace_id)
    time.sleep(0.5)
    assert [s for s in stack.receiver.spans() if s.trace_id == trace_id and s.service == "mcp-server"] == []
    assert "_meta" not in stack.received_with(marker).json()["params"]


def test_a_request_without_context_gets_a_root_span(stacks: dict[str, Stack]) -> None:
    stack = stacks["json"]
    marker = f"m-{secrets.token_hex(6)}"
    assert post(stack, tools_call_body(marker, None)).status_code == 200
    header = stack.received_with(marker).values("traceparent")[0]
    trace_id, span_id, flags = tp_ids(header)
    assert flags == "03"
    server_span, client_span = gateway_pair(stack.receiver, trace_id)
    assert server_span.parent_span_id == "" and client_span.span_id == span_id


def _load(stack: Stack, count: int) -> list[float]:
    """`count` tools/calls over 8 threads; every one must succeed. Returns their latencies."""

    def one(i: int) -> float:
        started = time.monotonic()
        r = post(stack, tools_call_body(f"load-{i}", {"traceparent": new_tp()}))
        assert r.status_code == 200, r.text
        return time.monotonic() - started

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def test_a_collector_that_is_down_costs_spans_never_requests(stacks: dict[str, Stack]) -> None:
    stack = stacks["down"]
    _load(stack, 200)
    time.sleep(5.5)  # the memory gauge is sampled every 5 s
    memory_before = stack.stat("mcp_trace_filter.wasm_memory_bytes")
    _load(stack, 400)
    deadline = time.monotonic() + 10
    while stack.stat("mcp_trace_filter.spans_failed") < 1200 and time.monotonic() < deadline:
        time.sleep(0.2)
    # Two spans (SERVER, CLIENT) per request, every one failed, none kept.
    assert stack.stat("mcp_trace_filter.spans_failed") >= 1200
    assert stack.stat("mcp_trace_filter.spans_exported") == 0
    time.sleep(5.5)
    # Flat: 400 more requests' spans did not stay in memory (a page or two of allocator slack).
    assert stack.stat("mcp_trace_filter.wasm_memory_bytes") - memory_before <= 128 * 1024


def test_a_failing_or_hanging_collector_never_delays_requests(stacks: dict[str, Stack],
                                                              flaky_collector: OtlpReceiver) -> None:
    stack = stacks["flaky"]
    receiver = flaky_collector
    failed_before = stack.stat("mcp_trace_filter.spans_failed")
    receiver.answer_status = 500
    try:
        _load(stack, 200)
        deadline = time.monotonic() + 10
        while stack.stat("mcp_trace_filter.spans_failed") == failed_before and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        receiver.answer_status = 200
    assert stack.stat("mcp_trace_filter.spans_failed") > failed_before

    # A collector that holds every answer beyond the export timeout (2 s). A request that waited
    # for an export would take at least the hold; none does.
    hold_s = 3.0
    receiver.answer_delay_s = hold_s
    try:
        latencies = _load(stack, 200)
    finally:
        receiver.answer_delay_s = 0.0
    assert max(latencies) < hold_s, sorted(latencies)[-5:]
    deadline = time.monotonic() + 15
    while stack.stat("mcp_trace_filter.spans_dropped") == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    # Four exports in flight at most, each held past the timeout: spans fail or shed, counted.
    dropped = stack.stat("mcp_trace_filter.spans_dropped")
    failed = stack.stat("mcp_trace_filter.spans_failed")
    assert dropped + failed > failed_before


def _duration_points(receiver: OtlpReceiver, metric: str, tool: str) -> list[dict[str, Any]]:
    points = []
    for request in receiver.metrics:
        for rm in request.get("resourceMetrics", []):
            for sm in rm.get("scopeMetrics", []):
                for m in sm.get("metrics", []):
                    if m["name"] != metric:
                        continue
                    assert m["unit"] == "s"
                    for p in m["histogram"]["dataPoints"]:
                        attrs = {a["key"]: a["value"].get("stringValue") for a in p["attributes"]}
                        if attrs.get("gen_ai.tool.name") == tool:
                            points.append({**p, "attrs": attrs})
    return points


def test_operation_durations_reach_the_collector_and_envoy_histograms(stacks: dict[str, Stack]) -> None:
    """mcp.server/client.operation.duration per method and tool: OTLP delta histograms with the
    semconv buckets, and Envoy histograms with labels on /stats/prometheus."""
    stack = stacks["json"]
    for _ in range(3):
        result, _ = sdk_call(stack, "get_weather", {"city": "metrics"})
        assert not result.is_error
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        server = _duration_points(stack.receiver, "mcp.server.operation.duration", "get_weather")
        client = _duration_points(stack.receiver, "mcp.client.operation.duration", "get_weather")
        if sum(int(p["count"]) for p in server) >= 3 and client:
            break
        time.sleep(0.2)
    assert sum(int(p["count"]) for p in server) >= 3
    point = server[0]
    assert point["attrs"]["mcp.method.name"] == "tools/call"
    assert point["explicitBounds"] == [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]
    assert sum(int(c) for c in point["bucketCounts"]) == int(point["count"])
    assert 0 < point["sum"] < 10 * int(point["count"])

    # Envoy merges histograms at its stats flush (every 5 s by default).
    deadline = time.monotonic() + 15
    count = 0
    while count < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
        text = httpx.get(f"http://127.0.0.1:{stack.admin}/stats/prometheus", timeout=2).text
        lines = [line for line in text.splitlines()
                 if line.startswith("mcp_trace_filter_mcp_server_operation_duration_ms_count")
                 and 'gen_ai_tool_name="get_weather"' in line and 'mcp_method_name="tools_call"' in line]
        count = sum(int(float(line.rsplit(" ", 1)[1])) for line in lines)
    assert count >= 3, [line for line in text.splitlines() if "operation_duration" in line][:10]
    assert 'le="10"' in text and 'le="300000"' in text


def test_server_spans_pass_through_by_default(stacks: dict[str, Stack]) -> None:
    """SEP-2448: without `server_spans` the server's result._meta.otel reaches the client."""
    stack = stacks["json"]
    result, meta_tp = sdk_call(stack, "passback", {})
    assert not result.is_error
    assert result.meta is not None and "otel" in result.meta


def test_server_spans_are_forwarded_to_the_collector_and_stripped(stacks: dict[str, Stack]) -> None:
    """SEP-2448 with `forward_and_strip` (SSE server): the client gets the result without
    result._meta.otel, and the server's span arrives at the collector through the gateway."""
    stack = stacks["inject"]
    stripped_before = stack.stat("mcp_trace_filter.server_spans_stripped")
    result, meta_tp = sdk_call(stack, "passback", {})
    assert not result.is_error
    assert not (result.meta or {}).get("otel"), result.meta
    trace_id = tp_ids(meta_tp)[0]
    forwarded = stack.receiver.wait_span(trace_id=trace_id, service="mcp-server-passback")
    assert forwarded.name == "passback work"
    assert stack.stat("mcp_trace_filter.server_spans_stripped") == stripped_before + 1
