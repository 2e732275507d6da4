"""Trace-context values and JSON-RPC body builders shared by the tests."""

from __future__ import annotations

import json
from typing import Any

# Valid W3C values. Each side (the body's _meta and the arriving headers) gets its own, so an
# assertion always shows which side won.
TP_META = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TS_META = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
BG_META = "userId=alice,serverNode=DF%2028,isProduction=false"

TP_HDR = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TS_HDR = "vendorh=hdr1"
BG_HDR = "tenant=acme;scope=org,userId=bob"

# A second valid _meta context, for batches (must never win over the first one).
TP_META_2 = "00-11111111111111111111111111111111-2222222222222222-01"
TS_META_2 = "second=2"

# Invalid traceparent values: none may ever reach the upstream.
TP_INVALID = {
    "uppercase_hex": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
    "version_ff": "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "zero_trace_id": "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "zero_span_id": "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    "missing_flags": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
    "v00_trailing_data": TP_META + "-extra",
    "crlf_injection": TP_META + "\r\nx-injected: 1",
    "nul_byte": TP_META + "\x00",
    "short_trace_id": "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
    "empty": "",
}


def tracestate_members(n: int) -> str:
    """A syntactically valid tracestate of `n` list members."""
    return ",".join(f"k{i}=v{i}" for i in range(n))


def baggage_members(n: int) -> str:
    """A valid baggage of `n` list members."""
    return ",".join(f"k{i}=v{i}" for i in range(n))


def baggage_of_size(total: int) -> str:
    """A valid one-member baggage exactly `total` bytes long."""
    return "big=" + "a" * (total - 4)


def meta(traceparent: Any = None, tracestate: Any = None, baggage: Any = None, **extra: Any) -> dict[str, Any]:
    """A `_meta` object with only the given keys."""
    out: dict[str, Any] = dict(extra)
    for key, value in (("traceparent", traceparent), ("tracestate", tracestate), ("baggage", baggage)):
        if value is not None:
            out[key] = value
    return out


def rpc(
    meta_obj: dict[str, Any] | None = None,
    *,
    method: str = "tools/call",
    id: int | str | None = 1,  # noqa: A002 - JSON-RPC field name
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A JSON-RPC request (or a notification when id is None) with `params._meta` = meta_obj."""
    p: dict[str, Any] = dict(params) if params is not None else {"name": "get_weather", "arguments": {"city": "Paris"}}
    if meta_obj is not None:
        p["_meta"] = meta_obj
    msg: dict[str, Any] = {"jsonrpc": "2.0"}
    if id is not None:
        msg["id"] = id
    msg["method"] = method
    msg["params"] = p
    return msg


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes (ASCII-escaped, so control characters become JSON escapes like \\r\\n)."""
    return json.dumps(obj, separators=(",", ":")).encode()
