"""Requests the filter must leave exactly as they came: headers unchanged, body byte-identical."""

from __future__ import annotations

import pytest
from e2e_lib.gateway import Gateway
from e2e_lib.listeners import SMALL_LIMIT
from e2e_lib.values import BG_HDR, BG_META, TP_HDR, TP_META, TS_HDR, TS_META, dumps, meta, rpc

HDR_CTX = {"traceparent": TP_HDR, "tracestate": TS_HDR, "baggage": BG_HDR}
NO_CTX = {"traceparent": None, "tracestate": None, "baggage": None}
META_BODY = dumps(rpc(meta(TP_META, TS_META, BG_META)))
# Requests the filter does not act on may be counted as not_mcp or not at all; never as anything else.
NOT_ACTED_ON = [{}, {"not_mcp": 1}]


def padded_to(size: int) -> bytes:
    """A valid JSON-RPC body with a valid _meta, padded (inside arguments) to exactly `size` bytes."""
    base = dumps(rpc(meta(TP_META, TS_META), params={"name": "t", "arguments": {"pad": ""}}))
    body = base.replace(b'"pad":""', b'"pad":"' + b"p" * (size - len(base)) + b'"')
    assert len(body) == size
    return body


def test_header_only_context_untouched(gw: Gateway) -> None:
    """Trace headers and a JSON-RPC body without _meta: all three headers arrive unchanged."""
    ex = gw.send("default", dumps(rpc(None)), HDR_CTX, counts={"no_context": 1})
    assert ex.trace_headers() == HDR_CTX


def test_header_only_context_untouched_with_empty_meta(gw: Gateway) -> None:
    """An empty _meta (or one with only other keys) is no context either."""
    ex = gw.send("default", dumps(rpc({"progressToken": 1})), HDR_CTX, counts={"no_context": 1})
    assert ex.trace_headers() == HDR_CTX


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonl", "application/json-seq",
     "text/json"],
)
def test_non_json_content_type_not_lifted(gw: Gateway, content_type: str | None) -> None:
    """Only application/json is scanned; a _meta in any other media type is not lifted."""
    ex = gw.send("default", META_BODY, HDR_CTX, content_type=content_type, counts=NOT_ACTED_ON)
    assert ex.trace_headers() == HDR_CTX


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_non_post_not_lifted(gw: Gateway, method: str) -> None:
    """Only POST is scanned, even with a JSON body carrying _meta."""
    ex = gw.send("default", META_BODY, method=method, counts=NOT_ACTED_ON)
    assert ex.trace_headers() == NO_CTX


def test_get_without_body_passes(gw: Gateway) -> None:
    """The SSE GET of streamable HTTP (no body) passes with its headers."""
    ex = gw.send("default", b"", HDR_CTX, method="GET", content_type=None, counts=NOT_ACTED_ON)
    assert ex.trace_headers() == HDR_CTX


def test_post_json_with_empty_body_does_not_hang(gw: Gateway) -> None:
    """POST application/json with no body (headers end the stream) passes at once."""
    ex = gw.send("default", b"", HDR_CTX, counts=NOT_ACTED_ON)
    assert ex.trace_headers() == HDR_CTX


# Malformed, truncated and invalid-UTF-8 bodies are in test_hostile.py, judged against a listener
# without the filter.


def test_body_at_limit_is_lifted(gw: Gateway) -> None:
    """Exactly max_body_bytes is not over the limit."""
    ex = gw.send("small_body", padded_to(SMALL_LIMIT), counts={"lifted": 1})
    assert (ex.traceparent, ex.tracestate) == (TP_META, TS_META)


def test_body_one_over_limit_passes_unlifted(gw: Gateway) -> None:
    """One byte over max_body_bytes: the request continues as it came (header context intact)."""
    ex = gw.send("small_body", padded_to(SMALL_LIMIT + 1), HDR_CTX, counts={"oversize": 1})
    assert ex.trace_headers() == HDR_CTX


def test_oversize_chunked_body_with_meta_in_first_chunk(gw: Gateway) -> None:
    """The _meta is complete in the first chunk, but the body grows over the limit: not lifted."""
    msg = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"_meta": meta(TP_META), "arguments": {"pad": "p" * (SMALL_LIMIT * 3)}}}
    body = dumps(msg)
    chunks = [body[:150], body[150:400], body[400:800], body[800:]]
    ex = gw.send("small_body", body, chunks=chunks, counts={"oversize": 1})
    assert ex.trace_headers() == NO_CTX


def test_oversize_over_default_limit_byte_identical(gw: Gateway) -> None:
    """Default 1 MiB limit: a body of 1 MiB + 1 passes unlifted and byte-identical (no 413, no hang)."""
    ex = gw.send("default", padded_to(1048576 + 1), HDR_CTX, counts={"oversize": 1})
    assert ex.trace_headers() == HDR_CTX


def test_body_exactly_default_limit_lifted(gw: Gateway) -> None:
    """Exactly 1 MiB (the default max_body_bytes) is still scanned."""
    ex = gw.send("default", padded_to(1048576), counts={"lifted": 1})
    assert ex.traceparent == TP_META


def test_oversize_chunked_over_default_limit(gw: Gateway) -> None:
    """2 MiB in chunks with no content-length: passes unlifted and byte-identical."""
    body = padded_to(2 * 1048576)
    step = 256 * 1024
    chunks = [body[i:i + step] for i in range(0, len(body), step)]
    ex = gw.send("default", body, chunks=chunks, chunk_delay=0.01, counts={"oversize": 1})
    assert ex.trace_headers() == NO_CTX


def test_envoy_default_buffer_limit_never_gives_413(gw: Gateway) -> None:
    """With Envoy's default 1 MiB buffer limit and `{}`: a 2 MiB body sent without a content-length
    passes byte-identical (no 413), and a 1 MiB body with one is still lifted. (8 MiB, chunked and
    with a content-length, on such a listener: test_hostile.py.)"""
    body = padded_to(2 * 1048576)
    step = 256 * 1024
    chunks = [body[i:i + step] for i in range(0, len(body), step)]
    ex = gw.send("envoy_default_buffer", body, chunks=chunks, chunk_delay=0.005, counts={"oversize": 1})
    assert ex.trace_headers() == NO_CTX
    ex = gw.send("envoy_default_buffer", padded_to(1048576), counts={"lifted": 1})
    assert ex.traceparent == TP_META


def test_chunked_body_within_half_the_limit_is_lifted(gw: Gateway) -> None:
    """Without a content-length the filter holds at most half of max_body_bytes (headroom for the
    chunk that crosses it); a chunked body under that is lifted."""
    body = padded_to(400 * 1024)
    chunks = [body[i:i + 64 * 1024] for i in range(0, len(body), 64 * 1024)]
    ex = gw.send("envoy_default_buffer", body, chunks=chunks, chunk_delay=0.005, counts={"lifted": 1})
    assert ex.traceparent == TP_META
