"""Real peers: MCP Python SDK 2.3 client (with an OpenTelemetry SDK TracerProvider) -> Envoy with the
filter -> MCP Python SDK server. The SDK client puts the trace context only in `params._meta` and sends
no `traceparent` header; after the filter, the server must receive it as headers too."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from e2e_lib.envoy import EnvoyProcess
from e2e_lib.ports import wait_for_port
from e2e_lib.recording_upstream import Recorded, read_recorded
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

PEER_SCRIPT = Path(__file__).resolve().parent / "e2e_lib" / "mcp_peer.py"


class McpPeer:
    """The MCP server subprocess and its request log."""

    def __init__(self, port: int, record_path: Path) -> None:
        self.port = port
        self.record_path = record_path
        self.proc: subprocess.Popen[bytes] | None = None

    def received(self) -> list[Recorded]:
        return read_recorded(self.record_path)


@pytest.fixture(scope="module")
def mcp_peer(mcp_peer_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpPeer]:
    workdir = tmp_path_factory.mktemp("mcp_peer")
    peer = McpPeer(mcp_peer_port, workdir / "requests.jsonl")
    log = open(workdir / "server.log", "wb")
    peer.proc = subprocess.Popen(
        [sys.executable, str(PEER_SCRIPT), str(mcp_peer_port), str(peer.record_path)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        wait_for_port(mcp_peer_port, timeout=20)
        yield peer
    finally:
        peer.proc.terminate()
        try:
            peer.proc.wait(10)
        except subprocess.TimeoutExpired:
            peer.proc.kill()
            peer.proc.wait(5)
        log.close()


@pytest.fixture(scope="module")
def client_spans() -> InMemorySpanExporter:
    """An OpenTelemetry SDK TracerProvider: with it set, the MCP client injects `_meta` trace context.
    The global provider can be set once per process: reuse an SDK provider another module installed."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def call_echo(url: str, text: str) -> tuple[str, list[Recorded]]:
    """One MCP session through `url`: call the `echo` tool with baggage `tenant=acme` in context.
    Returns the tool result text and every HTTP request the client sent (captured by an httpx2 hook)."""
    sent: list[Recorded] = []

    async def record(request: httpx2.Request) -> None:
        sent.append(Recorded(request.method, request.url.path,
                         [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.headers.raw],
                         request.content))

    async with httpx2.AsyncClient(event_hooks={"request": [record]}, timeout=httpx2.Timeout(20.0)) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            token = context.attach(baggage.set_baggage("tenant", "acme"))
            try:
                result = await client.call_tool("echo", {"text": text})
            finally:
                context.detach(token)
    assert not result.is_error, result
    return "".join(getattr(c, "text", "") for c in result.content), sent


def tools_call(requests: list[Recorded], text: str) -> Recorded:
    """The single POST carrying tools/call echo(text)."""
    found = [r for r in requests if r.method == "POST" and r.body
             and isinstance(r.json(), dict) and r.json().get("method") == "tools/call"
             and r.json()["params"].get("arguments", {}).get("text") == text]
    assert len(found) == 1, f"expected one tools/call with text={text!r}, got {len(found)}"
    return found[0]


def received_twin(peer: McpPeer, sent: Recorded) -> Recorded:
    """The server-side record of `sent`, matched by its exact body bytes (which the filter must keep)."""
    same = [r for r in peer.received() if r.method == sent.method and r.body == sent.body]
    assert len(same) == 1, f"server received {len(same)} requests with the exact body the client sent"
    return same[0]


def test_sdk_client_sends_context_only_in_meta(
    envoy: EnvoyProcess, mcp_peer: McpPeer, client_spans: InMemorySpanExporter
) -> None:
    """Premise, seen from both ends through the listener WITHOUT the filter: the SDK client puts
    traceparent and baggage in `_meta` and sends no trace headers, so the server gets none."""
    text, sent = anyio.run(call_echo, envoy.url("mcp_plain", "/mcp"), "via-plain")
    assert text == "via-plain"
    out = tools_call(sent, "via-plain")
    m = out.json()["params"]["_meta"]
    assert m["traceparent"].startswith("00-") and len(m["traceparent"]) == 55
    assert m["baggage"] == "tenant=acme"
    assert out.values("traceparent") == [] and out.values("baggage") == []
    got = received_twin(mcp_peer, out)
    assert got.values("traceparent") == [] and got.values("tracestate") == [] and got.values("baggage") == []


def test_sdk_meta_context_arrives_as_headers(
    envoy: EnvoyProcess, mcp_peer: McpPeer, client_spans: InMemorySpanExporter
) -> None:
    """Through the filter the server receives `traceparent` equal to the client's `_meta.traceparent`
    (the client's own span), `baggage` equal to `_meta.baggage`, and the body byte-identical."""
    client_spans.clear()
    text, sent = anyio.run(call_echo, envoy.url("mcp", "/mcp"), "via-filter")
    assert text == "via-filter"
    out = tools_call(sent, "via-filter")
    m = out.json()["params"]["_meta"]
    assert out.values("traceparent") == []  # the client sent it only in the body

    # The injected value is the client's "MCP send tools/call" span.
    span = next(s for s in client_spans.get_finished_spans() if s.name == "MCP send tools/call echo")
    ctx = span.get_span_context()
    assert m["traceparent"][3:52] == f"{ctx.trace_id:032x}-{ctx.span_id:016x}"

    got = received_twin(mcp_peer, out)
    assert got.values("traceparent") == [m["traceparent"]]
    assert got.values("baggage") == [m["baggage"]] == ["tenant=acme"]
    assert got.values("tracestate") == ([m["tracestate"]] if "tracestate" in m else [])


def test_sdk_every_message_with_meta_is_lifted(
    envoy: EnvoyProcess, mcp_peer: McpPeer, client_spans: InMemorySpanExporter
) -> None:
    """Every POST of the session that carried a `_meta.traceparent` (discover/initialize, tools/call...)
    reached the server with the matching header; the others with none."""
    _, sent = anyio.run(call_echo, envoy.url("mcp", "/mcp"), "every-message")
    posts = [s for s in sent if s.method == "POST"]
    assert len(posts) >= 2
    lifted = 0
    for out in posts:
        msg = out.json()
        tp = msg.get("params", {}).get("_meta", {}).get("traceparent") if isinstance(msg, dict) else None
        got = received_twin(mcp_peer, out)
        assert got.values("traceparent") == ([tp] if tp else []), f"{msg.get('method')}: {got.values('traceparent')}"
        lifted += bool(tp)
    assert lifted >= 2
