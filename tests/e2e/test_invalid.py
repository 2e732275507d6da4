"""Invalid `_meta` trace values are never forwarded, and never remove a valid header value.

CR/LF and NUL (escaped and raw), non-string values, lone surrogates and 33 tracestate members are
in test_hostile.py, each judged against the same request through a listener without the filter.
"""

from __future__ import annotations

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

BAD_TP = sorted(set(TP_INVALID) - {"crlf_injection", "nul_byte"})  # those two: test_hostile.py


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


@pytest.mark.parametrize(
    "tracestate",
    ["UPPER=1", "a=" + "x" * 300],
    ids=["uppercase_key", "value_too_long"],
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
