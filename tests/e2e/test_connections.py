"""Per-request state under real connection patterns: keep-alive reuse, concurrent HTTP/2 streams,
repeated headers, and nesting past a recursive parser's limit. (`Expect: 100-continue` and nesting
100 000 deep: test_hostile.py.)"""

from __future__ import annotations

import uuid

import anyio
import httpx
from e2e_lib.gateway import Gateway
from e2e_lib.values import BG_META, TP_HDR, TP_META, TP_META_2, dumps, meta, rpc


def unique_traceparent(i: int) -> str:
    return f"00-{uuid.uuid4().hex}-{i + 1:016x}-01"


def test_keep_alive_connection_requests_do_not_share_state(gw: Gateway) -> None:
    """On one HTTP/1.1 connection: lift, no _meta, malformed, lift again - each judged on its own."""
    plan = [
        (dumps(rpc(meta(TP_META))), TP_META),
        (dumps(rpc(None)), None),
        (b'{"params":{"_meta":{"traceparent":"' + TP_META_2.encode() + b'"}', None),
        (dumps(rpc(meta(TP_META_2))), TP_META_2),
    ]
    paths = [f"/mcp/keepalive/{uuid.uuid4().hex}" for _ in plan]
    with httpx.Client(timeout=10) as client:
        for path, (body, _) in zip(paths, plan):
            r = client.post(gw.envoy.url("default", path), content=body, headers={"content-type": "application/json"})
            assert r.status_code == 200
    for path, (body, want) in zip(paths, plan):
        rec = gw.upstream.wait_for(path)
        assert rec.body == body
        assert rec.one("traceparent") == want, path


def test_concurrent_http2_streams_each_get_their_own_context(gw: Gateway) -> None:
    """20 concurrent streams on one h2c connection, each with its own _meta traceparent: every
    upstream request carries exactly its own value."""
    n = 20
    tps = [unique_traceparent(i) for i in range(n)]
    paths = [f"/mcp/h2concurrent/{i}-{uuid.uuid4().hex[:8]}" for i in range(n)]
    bodies = [dumps(rpc(meta(tp), id=i)) for i, tp in enumerate(tps)]

    async def run() -> None:
        async with httpx.AsyncClient(http1=False, http2=True, timeout=15) as client:
            async def one(i: int) -> None:
                r = await client.post(gw.envoy.url("default", paths[i]), content=bodies[i],
                                      headers={"content-type": "application/json"})
                assert r.status_code == 200 and r.http_version == "HTTP/2"

            async with anyio.create_task_group() as tg:
                for i in range(n):
                    tg.start_soon(one, i)

    anyio.run(run)
    for i in range(n):
        rec = gw.upstream.wait_for(paths[i])
        assert rec.body == bodies[i]
        assert rec.one("traceparent") == tps[i]


def test_repeated_arriving_headers_replaced_by_one_value(gw: Gateway) -> None:
    """Two traceparent and two baggage header lines plus a _meta context: exactly one of each arrives,
    the _meta value (a leftover copy would give the upstream two parents)."""
    hdrs = [("traceparent", TP_HDR), ("traceparent", TP_META_2), ("baggage", "a=1"), ("baggage", "b=2")]
    ex = gw.send("default", dumps(rpc(meta(TP_META, baggage=BG_META))), hdrs)
    assert ex.rec.values("traceparent") == [TP_META]
    assert ex.rec.values("baggage") == [BG_META]


def test_repeated_arriving_headers_untouched_without_meta(gw: Gateway) -> None:
    """Without a _meta context the repeated header lines pass as they came."""
    hdrs = [("traceparent", TP_HDR), ("traceparent", TP_META_2)]
    ex = gw.send("default", dumps(rpc(None)), hdrs)
    assert ex.rec.values("traceparent") == [TP_HDR, TP_META_2]


def nested_body(depth: int, traceparent: str) -> bytes:
    return (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"d":'
            + b"[" * depth + b"]" * depth + b'},"_meta":{"traceparent":"' + traceparent.encode() + b'"}}}')


def test_deep_but_plausible_nesting_is_lifted(gw: Gateway) -> None:
    """300 levels of nesting in arguments (past serde_json's default recursion limit of 128) is
    still one valid JSON value: lifted."""
    ex = gw.send("default", nested_body(300, TP_META))
    assert ex.traceparent == TP_META
