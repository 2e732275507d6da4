"""`baggage` setting: meta (default) | merge | header | drop. An invalid _meta baggage never removes a
valid header baggage."""

from __future__ import annotations

import pytest
from e2e_lib.gateway import Gateway
from e2e_lib.values import BG_HDR, BG_META, TP_META, baggage_of_size, dumps, meta, rpc

INVALID_BAGGAGE = {
    "too_long": baggage_of_size(8193),
    "too_many_members": ",".join(f"k{i}=v" for i in range(181)),
    "crlf": "a=1\r\nx-injected: 1",
    "no_equals": "justakey",
}


def body_with(baggage: str | None) -> bytes:
    return dumps(rpc(meta(TP_META, baggage=baggage)))


# ---- meta (default) --------------------------------------------------------------------------

def test_meta_mode_replaces_header_baggage(gw: Gateway) -> None:
    """Valid _meta baggage replaces the header's, verbatim."""
    ex = gw.send("default", body_with(BG_META), {"baggage": BG_HDR})
    assert ex.baggage == BG_META


def test_meta_mode_without_meta_baggage_keeps_header_baggage(gw: Gateway) -> None:
    """No _meta baggage: the header baggage stays."""
    ex = gw.send("default", body_with(None), {"baggage": BG_HDR})
    assert (ex.traceparent, ex.baggage) == (TP_META, BG_HDR)


@pytest.mark.parametrize("listener", ["default", "baggage_merge"])
@pytest.mark.parametrize("kind", sorted(INVALID_BAGGAGE))
def test_invalid_meta_baggage_never_forwarded_never_removes_header(gw: Gateway, listener: str, kind: str) -> None:
    """Invalid _meta baggage is not forwarded in any mode, and the valid header baggage survives it."""
    ex = gw.send(listener, body_with(INVALID_BAGGAGE[kind]), {"baggage": BG_HDR}, counts={"lifted": 1})
    assert ex.baggage == BG_HDR
    assert ex.traceparent == TP_META  # the rest of the context is still lifted
    assert ex.rec.values("x-injected") == []


@pytest.mark.parametrize("kind", sorted(INVALID_BAGGAGE))
def test_invalid_meta_baggage_without_header_sends_none(gw: Gateway, kind: str) -> None:
    """Invalid _meta baggage and no header baggage: no baggage header at all."""
    ex = gw.send("default", body_with(INVALID_BAGGAGE[kind]), counts={"lifted": 1})
    assert (ex.traceparent, ex.baggage) == (TP_META, None)


@pytest.mark.parametrize(
    "value",
    [baggage_of_size(8192), ",".join(f"k{i}=v" for i in range(180)), "k=v;prop1;prop2=x, k2 = v2"],
    ids=["exactly_8192_bytes", "exactly_180_members", "properties_and_inner_spaces"],
)
def test_meta_baggage_at_the_limits_is_valid(gw: Gateway, value: str) -> None:
    """The W3C limits are inclusive: 8192 bytes and 180 members are still valid and forwarded verbatim."""
    ex = gw.send("default", body_with(value))
    assert ex.baggage == value


# ---- merge -----------------------------------------------------------------------------------

def test_merge_meta_first_then_header_members_meta_wins_per_key(gw: Gateway) -> None:
    """Union: _meta members first, then header members whose key is not in _meta (userId=bob dropped)."""
    ex = gw.send("baggage_merge", body_with(BG_META), {"baggage": BG_HDR})
    assert ex.baggage == BG_META + ",tenant=acme;scope=org"


def test_merge_without_header_is_meta_verbatim(gw: Gateway) -> None:
    ex = gw.send("baggage_merge", body_with(BG_META))
    assert ex.baggage == BG_META


def test_merge_without_meta_baggage_is_header_verbatim(gw: Gateway) -> None:
    ex = gw.send("baggage_merge", body_with(None), {"baggage": BG_HDR}, counts={"lifted": 1})
    assert ex.baggage == BG_HDR


def test_merge_all_header_keys_overridden(gw: Gateway) -> None:
    """Every header key also in _meta: the result is just the _meta members."""
    ex = gw.send("baggage_merge", body_with("tenant=x,userId=y"), {"baggage": BG_HDR})
    assert ex.baggage == "tenant=x,userId=y"


# ---- header ----------------------------------------------------------------------------------

def test_header_mode_keeps_present_header(gw: Gateway) -> None:
    ex = gw.send("baggage_header", body_with(BG_META), {"baggage": BG_HDR}, counts={"lifted": 1})
    assert ex.baggage == BG_HDR


def test_header_mode_uses_meta_when_header_absent(gw: Gateway) -> None:
    ex = gw.send("baggage_header", body_with(BG_META))
    assert ex.baggage == BG_META


# ---- drop ------------------------------------------------------------------------------------

def test_drop_mode_never_lifts_meta_baggage(gw: Gateway) -> None:
    """`drop`: _meta baggage is never lifted; traceparent still is."""
    ex = gw.send("baggage_drop", body_with(BG_META))
    assert (ex.traceparent, ex.baggage) == (TP_META, None)


def test_drop_mode_keeps_header_baggage(gw: Gateway) -> None:
    ex = gw.send("baggage_drop", body_with(BG_META), {"baggage": BG_HDR})
    assert (ex.traceparent, ex.baggage) == (TP_META, BG_HDR)
