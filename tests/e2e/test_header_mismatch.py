"""SEP-2243 (MCP 2026-07-28): `Mcp-Method` / `Mcp-Name` request headers that contradict the body.

An intermediary that reads the body must reject such a request with HTTP 400 and a JSON-RPC
`HeaderMismatch` error (-32020); values may travel as `=?base64?<UTF-8>?=`. Listeners, all to the
recording upstream: `reject` (`{}`, the default) and `count` (`{"header_mismatch": "count"}`: the
request goes on, counted). Each case is sent through both and judged on the status, the answer,
what reached the upstream and the `header_mismatch` / `lifted` counters.

A real MCP SDK 2.3 client (which sends both headers, base64 for a tool name that is not plain
header text) goes through a third listener, `sdk` (`{}`), to a real MCP SDK server.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from e2e_lib.envoy import EnvoyProcess, ListenerSpec, launch_envoy
from e2e_lib.ports import free_port, wait_for_port
from e2e_lib.recording_upstream import Recorded, RecordingUpstream, read_recorded
from e2e_lib.routing_peer import UNICODE_TOOL
from e2e_lib.values import TP_META, dumps, meta, rpc
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

COUNTERS = ("lifted", "header_mismatch", "not_mcp", "oversize", "no_context", "invalid_context")
HEADER_MISMATCH = -32020
PEER_SCRIPT = Path(__file__).resolve().parent / "e2e_lib" / "routing_peer.py"


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """The MCP SDK server behind the `sdk` listener: (port, its request log)."""
    workdir = tmp_path_factory.mktemp("routing_peer")
    port, record = free_port(), workdir / "requests.jsonl"
    log = open(workdir / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, str(PEER_SCRIPT), str(port), str(record)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=20)
        yield port, record
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture(scope="module")
def envoy(wasm_file: Path, upstream: RecordingUpstream, peer: tuple[int, Path],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyProcess]:
    specs = [ListenerSpec("reject", {}), ListenerSpec("count", {"header_mismatch": "count"}),
             ListenerSpec("sdk", {}, cluster="routing_peer")]
    env = launch_envoy(specs, {"recorder": upstream.port, "routing_peer": peer[0]},
                       tmp_path_factory.mktemp("envoy_header_mismatch"))
    yield env
    env.stop()


def b64(text: str) -> str:
    return f"=?base64?{base64.b64encode(text.encode()).decode()}?="


def call(name: str = "get_weather", id: int | str | None = 41) -> dict[str, Any]:  # noqa: A002
    return rpc(meta(TP_META), id=id, params={"name": name, "arguments": {"city": "Paris"}})


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    headers: dict[str, str]
    # None: headers agree (or are absent). Otherwise the header the error names and the id it carries.
    mismatch: str | None = None
    reply_id: Any = None


CASES = [
    Case("match", dumps(call()), {"Mcp-Method": "tools/call", "Mcp-Name": "get_weather"}),
    Case("absent", dumps(call()), {}),
    Case("method_only", dumps(call()), {"Mcp-Method": "tools/call"}),
    Case("method_differs", dumps(call()), {"Mcp-Method": "tools/list"}, "Mcp-Method", 41),
    Case("name_differs", dumps(call()), {"Mcp-Method": "tools/call", "Mcp-Name": "delete_all"}, "Mcp-Name", 41),
    Case("name_differs_string_id", dumps(call(id="req-7")), {"Mcp-Name": "delete_all"}, "Mcp-Name", "req-7"),
    Case("base64_match", dumps(call()), {"Mcp-Method": b64("tools/call"), "Mcp-Name": b64("get_weather")}),
    Case("base64_unicode_match", dumps(call(UNICODE_TOOL)), {"Mcp-Method": "tools/call", "Mcp-Name": b64(UNICODE_TOOL)}),
    Case("base64_differs", dumps(call()), {"Mcp-Method": "tools/call", "Mcp-Name": b64("delete_all")}, "Mcp-Name", 41),
    Case("base64_undecodable", dumps(call()), {"Mcp-Method": "tools/call", "Mcp-Name": "=?base64?!!!!?="},
         "decodable", 41),
    Case("batch_agrees", dumps([call(id=1), call(id=2)]), {"Mcp-Method": "tools/call", "Mcp-Name": "get_weather"}),
    # The answer carries the first request's id, whichever message disagrees.
    Case("batch_second_differs", dumps([call(id=1), call("delete_all", id=2)]),
         {"Mcp-Method": "tools/call", "Mcp-Name": "get_weather"}, "Mcp-Name", 1),
]


@dataclass(frozen=True)
class Result:
    status: int
    reply: bytes
    content_type: str | None
    upstream: Recorded | None
    deltas: dict[str, int]


def send(envoy: EnvoyProcess, upstream: RecordingUpstream, listener: str, case: Case) -> Result:
    path = f"/mcp/sep2243/{case.name}/{uuid.uuid4().hex[:8]}"
    before = envoy.counters(COUNTERS)
    r = httpx.post(envoy.url(listener, path), content=case.body, timeout=10,
                   headers={"content-type": "application/json", **case.headers})
    rec = upstream.wait_for(path) if r.status_code == 200 else None
    want_moved = case.mismatch is not None or r.status_code == 200
    deadline = time.monotonic() + 2
    while True:  # counters move just after the answer reaches the client
        now = envoy.counters(COUNTERS)
        deltas = {k: now[k] - before[k] for k in COUNTERS if now[k] != before[k]}
        if (deltas or not want_moved) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    if rec is None:
        time.sleep(0.2)  # would a rejected request still reach the upstream?
        assert upstream.records(path) == [], f"{case.name}: a rejected request reached the upstream"
    return Result(r.status_code, r.content, r.headers.get("content-type"), rec, deltas)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_reject(case: Case, envoy: EnvoyProcess, upstream: RecordingUpstream) -> None:
    """Default: a contradiction is answered 400 with the JSON-RPC HeaderMismatch error carrying the
    request's id, never forwarded, counted; agreeing or absent headers are lifted and forwarded."""
    got = send(envoy, upstream, "reject", case)
    if case.mismatch is None:
        assert got.status == 200, got
        assert got.upstream is not None and got.upstream.body == case.body
        assert got.upstream.one("traceparent") == TP_META
        assert got.deltas == {"lifted": 1}, got.deltas
        return
    assert got.status == 400, got
    assert got.content_type == "application/json", got
    answer = json.loads(got.reply)
    assert set(answer) == {"jsonrpc", "id", "error"} and answer["jsonrpc"] == "2.0", answer
    assert answer["id"] == case.reply_id and type(answer["id"]) is type(case.reply_id), answer
    assert set(answer["error"]) == {"code", "message"}, answer
    assert answer["error"]["code"] == HEADER_MISMATCH, answer
    assert case.mismatch in answer["error"]["message"], answer
    assert got.deltas == {"header_mismatch": 1}, got.deltas


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_count(case: Case, envoy: EnvoyProcess, upstream: RecordingUpstream) -> None:
    """`"header_mismatch": "count"`: every request is forwarded byte-identical and lifted; a
    contradiction is only counted."""
    got = send(envoy, upstream, "count", case)
    assert got.status == 200, got
    assert got.upstream is not None and got.upstream.body == case.body
    assert got.upstream.one("traceparent") == TP_META
    for name, value in case.headers.items():
        assert got.upstream.values(name) == [value], name  # the headers travel as sent
    want = {"lifted": 1} | ({"header_mismatch": 1} if case.mismatch else {})
    assert got.deltas == want, got.deltas


# ------------------------------------------------------------------------- a real MCP SDK client


async def sdk_call(url: str, tool: str, tamper: dict[str, str] | None = None) -> tuple[Any, list[httpx2.Request]]:
    """One SDK session through `url` calling `tool` with a unique argument (so the server's log
    tells this call's body apart). `tamper` overwrites headers of the tools/call POST on its way
    out (a client that lies in its headers)."""
    sent: list[httpx2.Request] = []

    async def hook(request: httpx2.Request) -> None:
        if tamper and request.method == "POST" and b'"tools/call"' in request.content:
            for name, value in tamper.items():
                request.headers[name] = value
        sent.append(request)

    async with httpx2.AsyncClient(event_hooks={"request": [hook]}, timeout=httpx2.Timeout(20.0)) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            try:
                result: Any = await client.call_tool(tool, {"city": f"Lyon-{uuid.uuid4().hex[:8]}"})
            except MCPError as e:
                result = e
    return result, sent


def tools_call_sent(sent: list[httpx2.Request], tool: str) -> httpx2.Request:
    calls = [r for r in sent if r.method == "POST" and r.content and json.loads(r.content).get("method") == "tools/call"]
    assert len(calls) == 1 and json.loads(calls[0].content)["params"]["name"] == tool
    return calls[0]


@pytest.mark.parametrize("tool", ["get_weather", UNICODE_TOOL])
def test_sdk_client_headers_agree(tool: str, envoy: EnvoyProcess, peer: tuple[int, Path]) -> None:
    """The SDK 2.3 client sends Mcp-Method and Mcp-Name itself (base64 for `météo`); they agree with
    its body, so the call goes through and the server receives both headers."""
    before = envoy.counters(COUNTERS)
    result, sent = anyio.run(sdk_call, envoy.url("sdk", "/mcp"), tool)
    assert not isinstance(result, MCPError) and not result.is_error, result
    request = tools_call_sent(sent, tool)
    name_header = tool if tool.isascii() else b64(tool)
    assert (request.headers["mcp-method"], request.headers["mcp-name"]) == ("tools/call", name_header)
    served = [r for r in read_recorded(peer[1]) if r.body == request.content]
    assert len(served) == 1
    assert (served[0].one("mcp-method"), served[0].one("mcp-name")) == ("tools/call", name_header)
    assert envoy.counters(COUNTERS)["header_mismatch"] == before["header_mismatch"]


def test_sdk_client_with_a_lying_header_gets_the_error(envoy: EnvoyProcess, peer: tuple[int, Path]) -> None:
    """The same client with Mcp-Name rewritten to another tool: the gateway answers HeaderMismatch
    and the SDK takes it as an MCPError with code -32020. On that code the SDK 2.3 client re-lists
    the tools and resends the call once (the spec's recovery for a stale tool listing); the resent
    call carries the same lie, is rejected too, and the error is raised. The server never sees
    either call."""
    before = envoy.counters(COUNTERS)
    result, sent = anyio.run(sdk_call, envoy.url("sdk", "/mcp"), UNICODE_TOOL, {"mcp-name": "get_weather"})
    assert isinstance(result, MCPError) and result.code == HEADER_MISMATCH, result
    methods = [json.loads(r.content).get("method") for r in sent if r.method == "POST" and r.content]
    first = methods.index("tools/call")
    assert methods[first:] == ["tools/call", "tools/list", "tools/call"], methods
    calls = [r for r in sent if r.method == "POST" and r.content and b'"tools/call"' in r.content]
    assert all(r.headers["mcp-name"] == "get_weather" for r in calls)
    served = {r.body for r in read_recorded(peer[1])}
    assert all(r.content not in served for r in calls)
    assert envoy.counters(COUNTERS)["header_mismatch"] == before["header_mismatch"] + 2
