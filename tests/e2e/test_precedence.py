"""`precedence`: which context wins when both the headers and `_meta` carry one. A context (traceparent
with its tracestate) always travels whole: never one side's traceparent with the other's tracestate."""

from __future__ import annotations

import pytest
from e2e_lib.gateway import Gateway
from e2e_lib.values import TP_HDR, TP_INVALID, TP_META, TS_HDR, TS_META, dumps, meta, rpc


# ---- precedence "meta" (default) -------------------------------------------------------------

def test_meta_precedence_meta_without_tracestate_removes_header_tracestate(gw: Gateway) -> None:
    """_meta traceparent wins; the header tracestate belongs to the other context, so it is removed."""
    ex = gw.send("default", dumps(rpc(meta(TP_META))), {"traceparent": TP_HDR, "tracestate": TS_HDR})
    assert (ex.traceparent, ex.tracestate) == (TP_META, None)


def test_meta_precedence_invalid_meta_tracestate_is_removed_not_mixed(gw: Gateway) -> None:
    """Valid _meta traceparent with an invalid _meta tracestate: traceparent lifted, no tracestate at all
    (neither the invalid one nor the header's)."""
    ex = gw.send("default", dumps(rpc(meta(TP_META, "Not A Valid=Tracestate"))),
                 {"traceparent": TP_HDR, "tracestate": TS_HDR})
    assert (ex.traceparent, ex.tracestate) == (TP_META, None)


def test_meta_precedence_tracestate_only_in_meta_changes_nothing(gw: Gateway) -> None:
    """A _meta tracestate without a _meta traceparent is no context: headers untouched."""
    ex = gw.send("default", dumps(rpc(meta(tracestate=TS_META))), {"traceparent": TP_HDR, "tracestate": TS_HDR},
                 counts=[{"no_context": 1}, {"invalid_context": 1}])
    assert (ex.traceparent, ex.tracestate) == (TP_HDR, TS_HDR)


def test_meta_precedence_no_meta_keeps_header_context(gw: Gateway) -> None:
    """No _meta at all: the header context passes as it came."""
    ex = gw.send("default", dumps(rpc(None)), {"traceparent": TP_HDR, "tracestate": TS_HDR}, counts={"no_context": 1})
    assert (ex.traceparent, ex.tracestate) == (TP_HDR, TS_HDR)


def test_meta_precedence_tracestate_header_alone_replaced_by_meta_context(gw: Gateway) -> None:
    """Header tracestate without header traceparent, _meta context complete: _meta context whole."""
    ex = gw.send("default", dumps(rpc(meta(TP_META, TS_META))), {"tracestate": TS_HDR})
    assert (ex.traceparent, ex.tracestate) == (TP_META, TS_META)


# ---- precedence "header" ---------------------------------------------------------------------

def test_header_precedence_valid_header_context_kept(gw: Gateway) -> None:
    """A valid header traceparent keeps the whole header context; _meta is ignored."""
    ex = gw.send("precedence_header", dumps(rpc(meta(TP_META, TS_META))),
                 {"traceparent": TP_HDR, "tracestate": TS_HDR})
    assert (ex.traceparent, ex.tracestate) == (TP_HDR, TS_HDR)


def test_header_precedence_header_without_tracestate_gets_no_meta_tracestate(gw: Gateway) -> None:
    """Header traceparent alone wins; the _meta tracestate must not be attached to it."""
    ex = gw.send("precedence_header", dumps(rpc(meta(TP_META, TS_META))), {"traceparent": TP_HDR})
    assert (ex.traceparent, ex.tracestate) == (TP_HDR, None)


def test_header_precedence_no_header_context_lifts_meta(gw: Gateway) -> None:
    """No header traceparent: the _meta context is lifted as with `meta`."""
    ex = gw.send("precedence_header", dumps(rpc(meta(TP_META, TS_META))))
    assert (ex.traceparent, ex.tracestate) == (TP_META, TS_META)


def test_header_precedence_orphan_header_tracestate_replaced(gw: Gateway) -> None:
    """Header tracestate without a header traceparent is no context: _meta context lifted whole,
    _meta without tracestate removes the orphan."""
    ex = gw.send("precedence_header", dumps(rpc(meta(TP_META))), {"tracestate": TS_HDR})
    assert (ex.traceparent, ex.tracestate) == (TP_META, None)


@pytest.mark.parametrize("bad", ["uppercase_hex", "version_ff", "zero_trace_id"])
def test_header_precedence_invalid_header_traceparent_yields_to_meta(gw: Gateway, bad: str) -> None:
    """An invalid header traceparent is no context: the _meta context replaces it (with its tracestate)."""
    ex = gw.send("precedence_header", dumps(rpc(meta(TP_META, TS_META))),
                 {"traceparent": TP_INVALID[bad], "tracestate": TS_HDR})
    assert (ex.traceparent, ex.tracestate) == (TP_META, TS_META)


def test_header_precedence_neither_valid_leaves_headers(gw: Gateway) -> None:
    """Nothing valid on either side: headers pass as they came."""
    bad = TP_INVALID["uppercase_hex"]
    ex = gw.send("precedence_header", dumps(rpc(meta(TP_INVALID["version_ff"]))),
                 {"traceparent": bad, "tracestate": TS_HDR}, counts={"invalid_context": 1})
    assert (ex.traceparent, ex.tracestate) == (bad, TS_HDR)
