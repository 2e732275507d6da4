"""Invalid `_meta` trace values are never forwarded, and never remove a valid header value."""

from __future__ import annotations

import json

import pytest
from e2e_lib.gateway import Gateway
from e2e_lib.values import (
    BG_HDR,
    TP_HDR,
    TP_INVALID,
    TP_META,
    TS_HDR,
    TS_META,
    dumps,
    meta,
    rpc,
    tracestate_members,
)

BAD_TP = sorted(TP_INVALID)


def test_crlf_premise_is_json_escaped() -> None:
    """The CR/LF case really travels as the JSON escapes \\r\\n (not raw bytes) in the body."""
    body = dumps(rpc(meta(TP_INVALID["crlf_injection"])))
    assert b"\\r\\n" in body and b"\r" not in body


@pytest.mark.parametrize("bad", BAD_TP)
def test_invalid_meta_traceparent_not_forwarded(gw: Gateway, bad: str) -> None:
    """No header context and an invalid _meta traceparent: no traceparent (nor its tracestate) upstream."""
    ex = gw.send("default", dumps(rpc(meta(TP_INVALID[bad], TS_META))), counts={"invalid_context": 1})
    assert (ex.traceparent, ex.tracestate) == (None, None)
    assert ex.rec.values("x-injected") == []


@pytest.mark.parametrize("bad", BAD_TP)
def test_invalid_meta_traceparent_keeps_header_context(gw: Gateway, bad: str) -> None:
    """An invalid _meta traceparent never removes or alters the valid header context."""
    ex = gw.send("default", dumps(rpc(meta(TP_INVALID[bad], TS_META))),
                 {"traceparent": TP_HDR, "tracestate": TS_HDR, "baggage": BG_HDR}, counts={"invalid_context": 1})
    assert ex.trace_headers() == {"traceparent": TP_HDR, "tracestate": TS_HDR, "baggage": BG_HDR}


@pytest.mark.parametrize("value", [12345, None, True, {"traceparent": TP_META}, [TP_META]],
                         ids=["number", "null", "bool", "object", "array"])
def test_non_string_meta_traceparent_not_lifted(gw: Gateway, value: object) -> None:
    """Only string values count: a number/object/array traceparent is ignored."""
    body = dumps(rpc({"traceparent": value, "tracestate": TS_META}))
    ex = gw.send("default", body, {"traceparent": TP_HDR}, counts={"invalid_context": 1})
    assert (ex.traceparent, ex.tracestate) == (TP_HDR, None)


@pytest.mark.parametrize(
    "tracestate",
    [
        tracestate_members(33),
        "congo=t61rcWkgMzE\r\nx-injected: 1",
        "congo=t61rcWkgMzE\x00",
        "UPPER=1",
        "a=" + "x" * 300,
    ],
    ids=["33_members", "crlf", "nul", "uppercase_key", "value_too_long"],
)
def test_invalid_meta_tracestate_not_forwarded(gw: Gateway, tracestate: str) -> None:
    """Valid _meta traceparent + invalid _meta tracestate: traceparent lifted, no tracestate at all
    (the header tracestate belongs to the replaced context, so it goes too)."""
    ex = gw.send("default", dumps(rpc(meta(TP_META, tracestate))), {"traceparent": TP_HDR, "tracestate": TS_HDR},
                 counts={"lifted": 1})
    assert (ex.traceparent, ex.tracestate) == (TP_META, None)
    assert ex.rec.values("x-injected") == []


def test_32_tracestate_members_is_the_limit(gw: Gateway) -> None:
    """32 list members is still valid and forwarded verbatim."""
    ts = tracestate_members(32)
    ex = gw.send("default", dumps(rpc(meta(TP_META, ts))))
    assert (ex.traceparent, ex.tracestate) == (TP_META, ts)


def test_raw_control_bytes_in_json_string_are_not_json(gw: Gateway) -> None:
    """A raw (unescaped) CR LF inside a JSON string is not valid JSON: nothing lifted, body unchanged."""
    body = ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"traceparent":"'
            + TP_META + '\r\nx-injected: 1"}}}').encode()
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    ex = gw.send("default", body, {"traceparent": TP_HDR}, counts={"not_mcp": 1})
    assert ex.traceparent == TP_HDR
    assert ex.rec.values("x-injected") == []


def test_lone_surrogate_escape_in_traceparent_not_forwarded(gw: Gateway) -> None:
    """`\\ud800` decodes to no valid Unicode text: the value is unusable, never forwarded."""
    body = ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"traceparent":"'
            + TP_META + '\\ud800"}}}').encode()
    ex = gw.send("default", body, counts={"invalid_context": 1})
    assert ex.traceparent is None
