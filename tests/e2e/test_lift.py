"""The core promise: `params._meta` trace context arrives upstream as headers, body untouched."""

from __future__ import annotations

import json

import pytest
from e2e_lib.gateway import Gateway
from e2e_lib.values import BG_HDR, BG_META, TP_HDR, TP_META, TP_META_2, TS_HDR, TS_META, TS_META_2, dumps, meta, rpc

ALL_THREE = {"traceparent": TP_META, "tracestate": TS_META, "baggage": BG_META}


def test_lifts_traceparent_tracestate_and_baggage(gw: Gateway) -> None:
    """All three _meta values become upstream headers, verbatim."""
    ex = gw.send("default", dumps(rpc(meta(TP_META, TS_META, BG_META))))
    assert ex.trace_headers() == ALL_THREE


def test_control_listener_without_filter_lifts_nothing(gw: Gateway) -> None:
    """Harness check: the same request through a listener without the filter gets no trace headers,
    so every lift seen elsewhere is the filter's doing."""
    ex = gw.send("plain", dumps(rpc(meta(TP_META, TS_META, BG_META))))
    assert ex.trace_headers() == {"traceparent": None, "tracestate": None, "baggage": None}


def test_lifts_traceparent_alone(gw: Gateway) -> None:
    """A _meta with only traceparent lifts only traceparent."""
    ex = gw.send("default", dumps(rpc(meta(TP_META))))
    assert ex.trace_headers() == {"traceparent": TP_META, "tracestate": None, "baggage": None}


def test_meta_replaces_arriving_headers_by_default(gw: Gateway) -> None:
    """Default precedence `meta`: the body's context replaces the transport headers, once each."""
    hdrs = {"traceparent": TP_HDR, "tracestate": TS_HDR, "baggage": BG_HDR}
    ex = gw.send("default", dumps(rpc(meta(TP_META, TS_META, BG_META))), hdrs)
    assert ex.trace_headers() == ALL_THREE


def test_explicit_defaults_and_underscore_keys_behave_like_default(gw: Gateway) -> None:
    """A config spelling out the defaults plus `_`-prefixed keys loads and acts like `{}`."""
    hdrs = {"traceparent": TP_HDR, "tracestate": TS_HDR, "baggage": BG_HDR}
    ex = gw.send("explicit_defaults", dumps(rpc(meta(TP_META, TS_META, BG_META))), hdrs)
    assert ex.trace_headers() == ALL_THREE


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",  # not sampled
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",  # MCP SDK 2.3 flags (random bit)
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",  # any flags byte is valid hex
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # future version, same shape
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
    ],
    ids=["flags00", "flags03", "flagsff", "version01", "future_version_extra_fields"],
)
def test_valid_variants_forwarded_as_version_00(gw: Gateway, traceparent: str) -> None:
    """Valid traceparents (other flags, future versions) are forwarded in their version-00 form:
    the same trace id, parent id and flags, 55 bytes, which every tracer reads."""
    ex = gw.send("default", dumps(rpc(meta(traceparent))))
    assert ex.traceparent == "00" + traceparent[2:55]


def test_json_escapes_are_decoded_before_lifting(gw: Gateway) -> None:
    """`\\u0030` is '0' and `\\u003d` is '=': the lifted header carries the decoded string."""
    raw_tp = "\\u0030\\u0030" + TP_META[2:]
    raw_ts = "congo\\u003dt61rcWkgMzE"
    raw_bg = "user\\u0049d=alice\\u002cx=1"  # \u002c is ',' : two members
    body = (
        '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"t","_meta":'
        f'{{"traceparent":"{raw_tp}","tracestate":"{raw_ts}","baggage":"{raw_bg}"}}}}}}'
    ).encode()
    assert json.loads(body)["params"]["_meta"]["traceparent"] == TP_META  # the test's own premise
    ex = gw.send("default", body)
    assert ex.trace_headers() == {"traceparent": TP_META, "tracestate": "congo=t61rcWkgMzE", "baggage": "userId=alice,x=1"}


def test_meta_key_order_and_other_meta_keys_do_not_matter(gw: Gateway) -> None:
    """_meta is found whatever its position in params and whatever else it holds (progressToken...)."""
    body = (
        '{"params":{"_meta":{"progressToken":5,"baggage":"' + BG_META + '","x":{"traceparent":"' + TP_META_2
        + '"},"tracestate":"' + TS_META + '","traceparent":"' + TP_META + '"},"name":"t"},'
        '"method":"tools/call","id":"abc","jsonrpc":"2.0"}'
    ).encode()
    ex = gw.send("default", body)
    assert ex.trace_headers() == ALL_THREE


def test_notification_without_id_is_lifted(gw: Gateway) -> None:
    """Notifications (no id) carry _meta too."""
    body = dumps(rpc(meta(TP_META, TS_META), method="notifications/progress", id=None,
                     params={"progressToken": 1, "progress": 0.5}))
    ex = gw.send("default", body)
    assert (ex.traceparent, ex.tracestate) == (TP_META, TS_META)


def test_batch_first_valid_message_provides_the_context(gw: Gateway) -> None:
    """Batch: messages without a valid _meta traceparent are skipped; the first valid one wins whole
    (its tracestate and baggage too), later ones are ignored."""
    batch = [
        rpc(None, id=1),
        rpc(meta("00-BAD", "bad=1"), id=2),
        rpc(meta(TP_META, TS_META, BG_META), id=3),
        rpc(meta(TP_META_2, TS_META_2), id=4),
    ]
    ex = gw.send("default", dumps(batch))
    assert ex.trace_headers() == ALL_THREE


def test_batch_without_valid_context_leaves_headers(gw: Gateway) -> None:
    """A batch with no valid _meta traceparent changes no header."""
    hdrs = {"traceparent": TP_HDR, "tracestate": TS_HDR}
    ex = gw.send("default", dumps([rpc(None, id=1), rpc(meta("nope"), id=2)]), hdrs, counts={"invalid_context": 1})
    assert (ex.traceparent, ex.tracestate) == (TP_HDR, TS_HDR)


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "APPLICATION/JSON", "Application/Json;charset=UTF-8"],
)
def test_json_content_type_with_parameters_or_other_case(gw: Gateway, content_type: str) -> None:
    """Media type matching is case-insensitive and ignores parameters."""
    ex = gw.send("default", dumps(rpc(meta(TP_META))), content_type=content_type)
    assert ex.traceparent == TP_META


def test_chunked_body_in_several_pieces(gw: Gateway) -> None:
    """A chunked body arriving in pieces (cut inside the traceparent and inside an escape) is
    buffered whole before scanning."""
    body = dumps(rpc(meta(TP_META, TS_META, BG_META)))
    raw = body.replace(b"t61rcWkgMzE", b"t61rc\\u0057kgMzE")  # \u0057 = 'W'
    assert raw != body
    cut_tp = raw.index(TP_META.encode()) + 20
    cut_esc = raw.index(b"\\u0057") + 3
    chunks = [raw[:10], raw[10:cut_tp], raw[cut_tp:cut_esc], raw[cut_esc:-5], raw[-5:]]
    ex = gw.send("default", raw, chunks=chunks)
    assert ex.trace_headers() == ALL_THREE


def test_http2_prior_knowledge(gw: Gateway) -> None:
    """h2c with prior knowledge (HCM codec AUTO) is lifted the same way."""
    ex = gw.send("default", dumps(rpc(meta(TP_META, TS_META, BG_META))), {"traceparent": TP_HDR}, http2=True)
    assert ex.http_version == "HTTP/2"
    assert ex.trace_headers() == ALL_THREE


def test_http2_streamed_body_in_several_data_frames(gw: Gateway) -> None:
    """HTTP/2 body without content-length, in several DATA frames."""
    body = dumps(rpc(meta(TP_META, TS_META, BG_META)))
    chunks = [body[:40], body[40:90], body[90:]]
    ex = gw.send("default", body, chunks=chunks, http2=True)
    assert ex.http_version == "HTTP/2"
    assert ex.trace_headers() == ALL_THREE


def test_large_body_under_default_limit_with_meta_at_the_end(gw: Gateway) -> None:
    """A ~900 KiB body (many body callbacks) whose _meta comes after the big arguments is lifted."""
    msg = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": "t", "arguments": {"blob": "x" * (900 * 1024)}, "_meta": meta(TP_META, TS_META)}}
    body = dumps(msg)
    ex = gw.send("default", body)
    assert (ex.traceparent, ex.tracestate) == (TP_META, TS_META)


def test_trailing_whitespace_after_the_value_is_still_one_json_value(gw: Gateway) -> None:
    """JSON allows whitespace around the value (RFC 8259): a trailing newline still lifts."""
    ex = gw.send("default", b" \n" + dumps(rpc(meta(TP_META))) + b"\r\n\t ")
    assert ex.traceparent == TP_META


def test_unicode_elsewhere_in_body_is_fine(gw: Gateway) -> None:
    """Valid UTF-8 (raw multi-byte and escaped surrogate pairs) outside _meta does not block the lift."""
    body = (
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"météo ☀",'
        '"arguments":{"e":"\\ud83d\\ude00 😀"},"_meta":{"traceparent":"' + TP_META + '"}}}'
    ).encode()
    ex = gw.send("default", body)
    assert ex.traceparent == TP_META


def _members(value: str | None) -> list[str]:
    assert value is not None
    assert "\t" not in value and value == value.strip(" \t"), f"not normalised: {value!r}"
    return [m.strip(" ") for m in value.split(",")]


def test_list_values_with_tabs_or_outer_whitespace_are_normalised(gw: Gateway) -> None:
    """Tracestate/baggage that are valid only thanks to optional whitespace (tabs, outer spaces) are
    not forwarded verbatim: they arrive without tabs or surrounding whitespace, members intact."""
    ts = " congo=t61rcWkgMzE,\trojo=00f067aa0ba902b7\t"
    bg = "\tuserId=alice ,\tisProduction=false "
    ex = gw.send("default", dumps(rpc(meta(TP_META, ts, bg))))
    assert ex.traceparent == TP_META
    assert _members(ex.tracestate) == ["congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7"]
    assert _members(ex.baggage) == ["userId=alice", "isProduction=false"]
