"""The traced two-stage chain (envoy/traced.yaml), all real parts, one trace end to end:

    MCP SDK 2.3 client (OTel SDK, context only in params._meta)
      -> Envoy rendered from envoy/traced.yaml (free ports, fast OTLP flush)
      -> MCP SDK server (OTel SDK, parents on _meta)
    every span -> one OTLP/HTTP receiver (e2e_lib/otlp.py)

Two stacks run side by side: the server answering text/event-stream (SDK default) and one with
json_response=True. Raw-HTTP cases replay a tools/call the SDK client really sent, with edits.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from e2e_lib.envoy import ENVOY_BIN, REPO_ROOT, WASM_PATH
from e2e_lib.otlp import KIND_SERVER, STATUS_ERROR, STATUS_UNSET, OtlpReceiver, Span
from e2e_lib.ports import free_ports, wait_for_port
from e2e_lib.recording_upstream import Recorded, read_recorded
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from traced_peers import RPC_FAIL_CODE, TRACED_YAML, render_traced

SINGLE_YAML = REPO_ROOT / "envoy" / "traced-single.yaml"

PEERS_SCRIPT = Path(__file__).resolve().parent / "traced_peers.py"
MODES = ("sse", "json")


# --------------------------------------------------------------------------------------------- peers


class Stack:
    """One traced Envoy (rendered from envoy/traced.yaml) in front of one traced MCP server."""

    def __init__(self, mode: str, receiver: OtlpReceiver, workdir: Path, source: Path = TRACED_YAML) -> None:
        self.mode = mode
        self.listen, self.admin, self.server_port = free_ports(3)
        self.record = workdir / "requests.jsonl"
        self.config = workdir / "envoy.yaml"
        self.config.write_text(
            render_traced(listen=self.listen, admin=self.admin, mcp_server=self.server_port, otlp=receiver.port,
                          source=source)
        )
        self.envoy_log = workdir / "envoy.log"
        self.server_log = workdir / "server.log"
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
            [sys.executable, str(PEERS_SCRIPT), str(self.server_port), _receiver.endpoint, str(self.record), self.mode],
            stdout=slog, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        ))
        self.procs.append(subprocess.Popen(
            [str(ENVOY_BIN), "-c", str(self.config), "--disable-hot-restart", "--concurrency", "1",
             "--log-level", "warning"],
            cwd=REPO_ROOT, stdout=elog, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        ))
        return self

    def wait_ready(self) -> None:
        for proc, port, log in ((self.procs[0], self.server_port, self.server_log), (self.procs[1], self.listen, self.envoy_log)):
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

    def received(self) -> list[Recorded]:
        return read_recorded(self.record)

    def received_with(self, marker: str) -> Recorded:
        """The single request whose body contains `marker`."""
        found = [r for r in self.received() if marker.encode() in r.body]
        assert len(found) == 1, f"{len(found)} requests carry {marker!r}"
        return found[0]

    def counter(self, name: str) -> int:
        r = httpx.get(f"http://127.0.0.1:{self.admin}/stats", params={"format": "json", "filter": name}, timeout=2)
        return sum(s.get("value", 0) for s in r.json().get("stats", []) if s["name"].endswith(name))


_receiver: OtlpReceiver


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
    global _receiver
    _receiver = OtlpReceiver().start()
    yield _receiver
    _receiver.stop()


@pytest.fixture(scope="module")
def client_tracing(receiver: OtlpReceiver) -> Iterator[None]:
    """An OTel SDK TracerProvider for the MCP client, exporting OTLP to the receiver. If another test
    module already installed the process-wide provider, our exporter is added to that one."""
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
def stacks(receiver: OtlpReceiver, client_tracing: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Stack]]:
    if not (REPO_ROOT / WASM_PATH).is_file():
        pytest.fail(f"{WASM_PATH} is missing: run `bash scripts/build.sh` first", pytrace=False)
    out = {m: Stack(m, receiver, tmp_path_factory.mktemp(f"traced_{m}")) for m in MODES}
    # envoy/traced-single.yaml, in front of its own SSE server.
    out["single"] = Stack("sse", receiver, tmp_path_factory.mktemp("traced_single"), source=SINGLE_YAML)
    try:
        for s in out.values():
            s.start()
        for s in out.values():
            s.wait_ready()
        yield out
    finally:
        for s in out.values():
            s.stop()


@pytest.fixture(params=MODES)
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
    """Call `tool` through the gateway with the real SDK client; returns (result or MCPError, the
    `_meta.traceparent` the client put in that tools/call)."""
    result, sent = anyio.run(_sdk_call, stack.url, tool, args)
    calls = [json.loads(r.content) for r in sent if r.method == "POST" and r.content]
    call = [c for c in calls if c.get("method") == "tools/call" and c["params"]["name"] == tool]
    assert len(call) == 1
    return result, call[0]["params"]["_meta"]["traceparent"]


def tp_ids(tp: str) -> tuple[str, str, str]:
    _, trace_id, span_id, flags = tp.split("-")
    return trace_id, span_id, flags


def chain(receiver: OtlpReceiver, trace_id: str, name: str) -> tuple[Span, Span, Span]:
    """(client, gateway, server) spans of one call, waiting until all three arrived."""

    def find(spans: list[Span]) -> tuple[Span, Span, Span] | None:
        mine = [s for s in spans if s.trace_id == trace_id]
        client = [s for s in mine if s.name == f"MCP send {name}"]
        gateway = [s for s in mine if s.service == "mcp-gateway"]
        server = [s for s in mine if s.service == "mcp-server"]
        if client and gateway and server:
            assert len(client) == len(gateway) == len(server) == 1, mine
            return client[0], gateway[0], server[0]
        return None

    return receiver.wait_for(find, timeout=10)


def replay_tools_call(stack: Stack, meta_tp: str, headers: dict[str, str] | None = None) -> tuple[httpx.Response, str]:
    """POST the tools/call body the SDK client really sends (captured from one real call), with
    `_meta.traceparent` = meta_tp and a unique marker argument, plus extra `headers`."""
    _, sent = anyio.run(_sdk_call, stack.url, "get_weather", {"city": "template"})
    template = next(r for r in sent if r.method == "POST" and b'"tools/call"' in r.content)
    body = json.loads(template.content)
    marker = f"m-{secrets.token_hex(6)}"
    body["params"]["arguments"] = {"city": marker}
    body["params"]["_meta"]["traceparent"] = meta_tp
    body["params"]["_meta"].pop("tracestate", None)
    hdrs = {k: v for k, v in template.headers.items() if k.lower() in ("accept", "content-type", "mcp-protocol-version", "mcp-method", "mcp-name")}
    hdrs.update(headers or {})
    r = httpx.post(stack.url, content=json.dumps(body).encode(), headers=hdrs, timeout=10)
    return r, marker


def new_tp(flags: str = "01") -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-{flags}"


# ------------------------------------------------------------------------------------------- tests


def test_sdk_trace_is_one_chain(stack: Stack, receiver: OtlpReceiver) -> None:
    """client span -> Envoy span "tools/call get_weather" with the MCP attributes -> server span,
    one trace id; the server got the Envoy span in both the traceparent header and _meta."""
    synced_before = stack.counter("mcp_trace_filter.body_synced")
    result, meta_tp = sdk_call(stack, "get_weather", {"city": f"Paris-{stack.mode}"})
    assert not isinstance(result, MCPError) and not result.is_error
    trace_id, client_span_id, _ = tp_ids(meta_tp)
    client, gw, server = chain(receiver, trace_id, "tools/call get_weather")

    assert client.span_id == client_span_id
    assert gw.name == "tools/call get_weather"
    assert gw.parent_span_id == client.span_id
    assert server.parent_span_id == gw.span_id
    assert gw.kind == KIND_SERVER and gw.status_code == STATUS_UNSET
    a = gw.attributes
    assert a["mcp.method.name"] == "tools/call"
    assert a["gen_ai.tool.name"] == "get_weather"
    assert a["gen_ai.operation.name"] == "execute_tool"
    assert a["network.transport"] == "tcp"
    assert a["jsonrpc.request.id"] == client.attributes["jsonrpc.request.id"] == server.attributes["jsonrpc.request.id"]
    assert a["mcp.protocol.version"] == server.attributes["mcp.protocol.version"]
    # Attributes with no filter state are omitted, not exported as "-" or "".
    for absent in ("gen_ai.prompt.name", "mcp.resource.uri", "jsonrpc.protocol.version", "mcp.session.id",
                   "error.type", "rpc.response.status_code", "error", "grpc.status_code"):
        assert absent not in a, (absent, a[absent])

    got = stack.received_with(f"Paris-{stack.mode}")
    envoy_tp = f"00-{trace_id}-{gw.span_id}-"
    assert got.values("traceparent")[0].startswith(envoy_tp)
    assert got.json()["params"]["_meta"]["traceparent"] == got.values("traceparent")[0]
    assert stack.counter("mcp_trace_filter.body_synced") > synced_before


def test_tool_error_marks_span(stack: Stack, receiver: OtlpReceiver) -> None:
    """A tools/call result with isError: error.type=tool_error, error=true, status ERROR."""
    result, meta_tp = sdk_call(stack, "fail_tool", {"reason": stack.mode})
    assert not isinstance(result, MCPError) and result.is_error
    _, gw, server = chain(receiver, tp_ids(meta_tp)[0], "tools/call fail_tool")
    assert gw.name == "tools/call fail_tool"
    assert gw.attributes["error.type"] == "tool_error" == server.attributes["error.type"]
    assert gw.attributes["error"] == "true"
    assert "rpc.response.status_code" not in gw.attributes
    assert gw.status_code == STATUS_ERROR
    assert server.parent_span_id == gw.span_id


def test_unknown_tool_is_a_tool_error(stacks: dict[str, Stack], receiver: OtlpReceiver) -> None:
    """The SDK 2.3 server answers an unknown tool with an isError result, not a JSON-RPC error."""
    result, meta_tp = sdk_call(stacks["sse"], "no_such_tool", {})
    assert not isinstance(result, MCPError) and result.is_error
    _, gw, _ = chain(receiver, tp_ids(meta_tp)[0], "tools/call no_such_tool")
    assert gw.attributes["error.type"] == "tool_error" and gw.status_code == STATUS_ERROR


def test_jsonrpc_error_marks_span(stack: Stack, receiver: OtlpReceiver) -> None:
    """A JSON-RPC error response: error.type and rpc.response.status_code = the code, status ERROR."""
    result, meta_tp = sdk_call(stack, "rpc_fail", {})
    assert isinstance(result, MCPError) and result.code == RPC_FAIL_CODE
    _, gw, server = chain(receiver, tp_ids(meta_tp)[0], "tools/call rpc_fail")
    code = str(RPC_FAIL_CODE)
    assert gw.attributes["error.type"] == code == server.attributes["error.type"]
    assert gw.attributes["rpc.response.status_code"] == code
    assert gw.attributes["error"] == "true"
    assert gw.status_code == STATUS_ERROR
    assert server.parent_span_id == gw.span_id


def test_unsampled_context_exports_no_envoy_span(stacks: dict[str, Stack], receiver: OtlpReceiver) -> None:
    """`-00` in _meta: no Envoy (or server) span is exported, and the server still receives the
    same trace id with flags 00 in both the header and _meta."""
    stack = stacks["sse"]
    unsampled = new_tp("00")
    r, marker = replay_tools_call(stack, unsampled)
    assert r.status_code == 200, r.text
    sampled = new_tp("01")
    r2, _ = replay_tools_call(stack, sampled)
    assert r2.status_code == 200
    # Once the later sampled call's Envoy span is here, the earlier one would have been too.
    receiver.wait_span(trace_id=tp_ids(sampled)[0], service="mcp-gateway")
    time.sleep(0.3)
    assert [s for s in receiver.spans() if s.trace_id == tp_ids(unsampled)[0]] == []

    got = stack.received_with(marker)
    header = got.values("traceparent")[0]
    assert header[3:35] == tp_ids(unsampled)[0] and header.endswith("-00")
    assert got.json()["params"]["_meta"]["traceparent"] == header


def test_meta_wins_over_a_different_header(stacks: dict[str, Stack], receiver: OtlpReceiver) -> None:
    """Header traceparent != _meta.traceparent: the Envoy span's parent is the _meta context, and the
    server gets the Envoy span as its parent in header and body. Also carries Mcp-Session-Id."""
    stack = stacks["json"]
    meta_tp, hdr_tp = new_tp(), new_tp()
    r, marker = replay_tools_call(stack, meta_tp, {"traceparent": hdr_tp, "mcp-session-id": "sess-e2e"})
    assert r.status_code == 200, r.text
    trace_id, meta_span, _ = tp_ids(meta_tp)
    gw = receiver.wait_span(trace_id=trace_id, service="mcp-gateway")
    server = receiver.wait_span(trace_id=trace_id, service="mcp-server")
    assert gw.parent_span_id == meta_span
    assert gw.name == "tools/call get_weather"
    assert gw.attributes["mcp.session.id"] == "sess-e2e"
    assert server.parent_span_id == gw.span_id
    assert [s for s in receiver.spans() if s.trace_id == tp_ids(hdr_tp)[0]] == []

    got = stack.received_with(marker)
    expected = f"00-{trace_id}-{gw.span_id}-01"
    assert got.values("traceparent") == [expected]
    assert got.json()["params"]["_meta"]["traceparent"] == expected


def test_forged_span_name_headers_are_ignored(stacks: dict[str, Stack], receiver: OtlpReceiver) -> None:
    """A client sending x-envoy-decorator-operation / x-mcp-span-name cannot rename the span, and
    those headers never reach the server."""
    stack = stacks["sse"]
    meta_tp = new_tp()
    forged = {"x-envoy-decorator-operation": "forged-op", "x-mcp-span-name": "forged-name",
              "x-mcp-tool-name": "forged-tool"}
    r, marker = replay_tools_call(stack, meta_tp, forged)
    assert r.status_code == 200, r.text
    gw = receiver.wait_span(trace_id=tp_ids(meta_tp)[0], service="mcp-gateway")
    assert gw.name == "tools/call get_weather"
    assert gw.attributes["gen_ai.tool.name"] == "get_weather"
    got = stack.received_with(marker)
    for h in forged:
        assert got.values(h) == [], h


def test_single_listener_names_but_cannot_reparent(stacks: dict[str, Stack], receiver: OtlpReceiver) -> None:
    """envoy/traced-single.yaml: the Envoy span has the MCP name and attributes and the server is its
    child, but the span is a new root: the client's _meta context is not its parent (the limit the
    file documents)."""
    stack = stacks["single"]
    result, meta_tp = sdk_call(stack, "get_weather", {"city": "single"})
    assert not result.is_error
    client_trace, _, _ = tp_ids(meta_tp)
    got = stack.received_with('"single"')
    envoy_trace, envoy_span, _ = tp_ids(got.values("traceparent")[0])
    assert envoy_trace != client_trace
    gw = receiver.wait_span(trace_id=envoy_trace, service="mcp-gateway")
    server = receiver.wait_span(trace_id=envoy_trace, service="mcp-server")
    assert gw.span_id == envoy_span and gw.parent_span_id == ""
    assert gw.name == "tools/call get_weather" and gw.attributes["gen_ai.tool.name"] == "get_weather"
    assert server.parent_span_id == gw.span_id
    assert got.json()["params"]["_meta"]["traceparent"] == got.values("traceparent")[0]


def test_single_listener_follows_a_header_context(stacks: dict[str, Stack], receiver: OtlpReceiver) -> None:
    """With a traceparent *header* the single listener's span is its child (the header, not _meta,
    is what the HCM saw), and an MCP error still gives status ERROR."""
    stack = stacks["single"]
    hdr_tp = new_tp()
    r, _ = replay_tools_call(stack, new_tp(), {"traceparent": hdr_tp})
    assert r.status_code == 200
    trace_id, hdr_span, _ = tp_ids(hdr_tp)
    gw = receiver.wait_span(trace_id=trace_id, service="mcp-gateway")
    assert gw.parent_span_id == hdr_span and gw.name == "tools/call get_weather"

    result, _ = sdk_call(stack, "fail_tool", {"reason": "single"})
    assert result.is_error
    gw_err = receiver.wait_for(lambda spans: next(
        (x for x in spans if x.service == "mcp-gateway" and x.name == "tools/call fail_tool"
         and x.attributes.get("http.url") == stack.url), None))
    assert gw_err.status_code == STATUS_ERROR and gw_err.attributes["error.type"] == "tool_error"


def test_envoy_exports_chunked_otlp(receiver: OtlpReceiver, stacks: dict[str, Stack]) -> None:
    """Envoy's OTLP/HTTP exporter sends chunked bodies; the receiver decoded them (runs last)."""
    assert receiver.chunked_requests > 0
