"""The filter's counters, read from Envoy's admin /stats (`wasmcustom.mcp_trace_filter.*`)."""

from __future__ import annotations

from e2e_lib.envoy import COUNTER_NAMES, EnvoyProcess
from e2e_lib.gateway import Gateway
from e2e_lib.listeners import SMALL_LIMIT
from e2e_lib.values import BG_META, TP_HDR, TP_INVALID, TP_META, TS_META, dumps, meta, rpc


def test_counters_are_published_under_wasmcustom(envoy: EnvoyProcess) -> None:
    """Envoy prefixes proxy-wasm metrics with `wasmcustom.`; dashboards rely on these exact names."""
    names = set(envoy.stats())
    for short in COUNTER_NAMES:
        assert f"wasmcustom.mcp_trace_filter.{short}" in names, sorted(names)


def test_lifted_counts_once_per_request(gw: Gateway) -> None:
    """One lifted request is one `lifted`, however many values it lifted."""
    w = gw.counter_watch()
    gw.send("default", dumps(rpc(meta(TP_META, TS_META, BG_META))))
    w.expect(lifted=1)
    w = gw.counter_watch()
    for _ in range(3):
        gw.send("default", dumps(rpc(meta(TP_META))))
    w.expect(lifted=3)


def test_no_context_counted(gw: Gateway) -> None:
    w = gw.counter_watch()
    gw.send("default", dumps(rpc(None)), {"traceparent": TP_HDR})
    w.expect(no_context=1)


def test_invalid_context_counted(gw: Gateway) -> None:
    w = gw.counter_watch()
    gw.send("default", dumps(rpc(meta(TP_INVALID["uppercase_hex"]))))
    w.expect(invalid_context=1)


def test_not_mcp_counted_for_malformed_json(gw: Gateway) -> None:
    w = gw.counter_watch()
    gw.send("default", b'{"jsonrpc":"2.0",')
    w.expect(not_mcp=1)


def test_oversize_counted_with_and_without_content_length(gw: Gateway) -> None:
    """Over max_body_bytes: counted whether the size was declared up front or found while buffering."""
    body = dumps(rpc(meta(TP_META), params={"arguments": {"pad": "p" * SMALL_LIMIT}}))
    w = gw.counter_watch()
    gw.send("small_body", body)
    w.expect(oversize=1)
    w = gw.counter_watch()
    gw.send("small_body", body, chunks=[body[:100], body[100:]])
    w.expect(oversize=1)


def test_untouched_requests_never_count_as_lifted(gw: Gateway) -> None:
    """A GET and a text/plain POST with _meta bodies: nothing lifted, nothing counted as lifted."""
    w = gw.counter_watch()
    gw.send("default", dumps(rpc(meta(TP_META))), method="GET")
    gw.send("default", dumps(rpc(meta(TP_META))), content_type="text/plain")
    d = w.deltas()
    assert d["lifted"] == 0 and d["no_context"] == 0 and d["invalid_context"] == 0 and d["oversize"] == 0, d
