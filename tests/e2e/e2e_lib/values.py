"""Trace-context values and JSON-RPC body builders shared by the tests."""

from __future__ import annotations

import json
import re
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


# ---- Strict W3C checks for what reaches the upstream ---------------------------------------------
# Written from the W3C Trace Context and Baggage grammars, independently of the filter's parsers, so
# an upstream value that passes them is one a conforming tracer would accept.

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[\x21-\x7e]*)?")
_TS_KEY = re.compile(r"[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}")
_TS_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_BAGGAGE_VALUE = r"(?:[\x21\x23-\x24\x26-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]|%[0-9A-Fa-f]{2})*"
_BAGGAGE_MEMBER = re.compile(
    rf"{_TOKEN} *= *{_BAGGAGE_VALUE}(?: *; *{_TOKEN}(?: *= *{_BAGGAGE_VALUE})?)*"
)
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


def is_header_text(value: str) -> bool:
    """Visible ASCII with inner spaces only: no CR, LF, NUL, tab, non-ASCII, outer whitespace."""
    return _VISIBLE_ASCII.fullmatch(value) is not None


def is_valid_traceparent(value: str) -> bool:
    """W3C traceparent: version 00 exactly 55 characters; other versions (never ff) may carry a
    `-`-separated suffix; lowercase hex; trace id and parent id not all zeros."""
    m = _TRACEPARENT.fullmatch(value)
    if m is None:
        return False
    version, trace_id, parent_id, _flags, suffix = m.groups()
    if version == "ff" or (version == "00" and suffix is not None):
        return False
    return trace_id != "0" * 32 and parent_id != "0" * 16


def is_valid_tracestate(value: str) -> bool:
    """W3C tracestate: at most 32 non-empty members of `key=value`, no duplicate keys."""
    if not is_header_text(value):
        return False
    keys = []
    for member in (m.strip(" ") for m in value.split(",")):
        if not member:
            continue
        key, eq, member_value = member.partition("=")
        if not eq or not _TS_KEY.fullmatch(key) or not _TS_VALUE.fullmatch(member_value):
            return False
        keys.append(key)
    return 0 < len(keys) <= 32 and len(set(keys)) == len(keys)


def is_valid_baggage(value: str) -> bool:
    """W3C baggage: at most 8192 bytes and 180 members, each `key=value` with properties; no empty
    members."""
    if len(value.encode()) > 8192 or not is_header_text(value):
        return False
    members = [m.strip(" ") for m in value.split(",")]
    return len(members) <= 180 and all(_BAGGAGE_MEMBER.fullmatch(m) for m in members)


W3C_CHECKS = {"traceparent": is_valid_traceparent, "tracestate": is_valid_tracestate, "baggage": is_valid_baggage}
