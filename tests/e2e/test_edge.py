"""Edge header hygiene of the shipped traced configs: a client cannot forge the gateway span's
name, nor smuggle Envoy's control headers or its own x-request-id to the MCP server.

envoy/traced.yaml and envoy/traced-single.yaml run as shipped (ports replaced, fast OTLP flush),
in front of the recording upstream, exporting to a real OTLP receiver. Each request carries the
headers a client could use to steer Envoy: `x-envoy-decorator-operation` (renames the span of a
traced HCM that accepts it), the filter's own `x-mcp-*` span headers, `x-envoy-internal`,
`x-envoy-force-trace`, a fixed `x-request-id` and the other `x-envoy-*` headers Envoy trusts from
internal peers. Judged for an MCP `tools/call` and for a request that is not MCP (a GET, which the
filter never reads): the exported gateway span has the name Envoy or the filter gives it, no
attribute carries a forged value, and no forged header value reaches the upstream.

Envoy's default span name for a request without MCP data is the route's decorator or, without
one, `ingress` (the HCM's traffic direction); the shipped configs set neither, so it is
`ingress`. That is checked against the same GET without forged headers, not assumed.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_lib.otlp import OtlpReceiver, Span
from e2e_lib.recording_upstream import Recorded, RecordingUpstream
from e2e_lib.shipped import ENVOY_DIR, ShippedEnvoy

CONFIGS = ("traced.yaml", "traced-single.yaml")

FORGED_REQUEST_ID = "6f1c2f0a-0b1e-4c3d-9e8f-123456789abc"
FORGED: dict[str, str] = {
    "x-envoy-decorator-operation": "forged-decorator",
    "x-mcp-span-name": "forged-span-name",
    "x-mcp-method-name": "forged-method",
    "x-mcp-tool-name": "forged-tool",
    "x-envoy-internal": "true",
    "x-envoy-force-trace": "true",
    "x-request-id": FORGED_REQUEST_ID,
    "x-envoy-downstream-service-cluster": "forged-cluster",
    "x-envoy-downstream-service-node": "forged-node",
    "x-envoy-external-address": "203.0.113.66",
    "x-envoy-original-path": "/forged-path",
    "x-envoy-ip-tags": "forged-tag",
    "x-envoy-retry-on": "5xx",
    "x-envoy-max-retries": "7",
    "x-envoy-upstream-rq-timeout-ms": "123456",
    "x-envoy-expected-rq-timeout-ms": "123456",
    "x-envoy-hedge-on-per-try-timeout": "true",
}
# Headers Envoy itself writes on this hop (not the client's value, and checked to be Envoy's).
ENVOY_WRITES = {"x-request-id", "x-envoy-external-address", "x-envoy-expected-rq-timeout-ms"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    rx = OtlpReceiver().start()
    yield rx
    rx.stop()


@pytest.fixture(scope="module")
def gateways(upstream: RecordingUpstream, receiver: OtlpReceiver,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ShippedEnvoy]]:
    out = {name: ShippedEnvoy(ENVOY_DIR / name, tmp_path_factory.mktemp(f"edge_{Path(name).stem}"),
                              upstream=upstream.port, otlp=receiver.port) for name in CONFIGS}
    try:
        for g in out.values():
            g.start()
        for g in out.values():
            g.wait_ready()
        yield out
    finally:
        for g in out.values():
            g.stop()


def tools_call(marker: str) -> bytes:
    return json.dumps({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "get_weather", "arguments": {"city": marker},
                   "_meta": {"traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"}},
    }).encode()


def send(gw: ShippedEnvoy, upstream: RecordingUpstream, kind: str, headers: dict[str, str]) -> Recorded:
    path = f"/mcp/edge/{kind}/{uuid.uuid4().hex[:12]}"
    if kind == "mcp":
        r = httpx.post(gw.url(path), content=tools_call(path), timeout=10,
                       headers={"content-type": "application/json", "accept": "application/json", **headers})
    else:
        r = httpx.get(gw.url(path), timeout=10, headers={"accept": "text/event-stream", **headers})
    assert r.status_code == 200, (gw.source.name, kind, r.status_code, r.text[:200])
    return upstream.wait_for(path)


def without_trace_reason(request_id: str) -> str:
    return request_id[:14] + request_id[15:]


def gateway_span(receiver: OtlpReceiver, rec: Recorded) -> Span:
    """The Envoy span of this request: the router injected its id as the upstream's parent (one
    server span per request, no upstream span)."""
    tps = rec.values("traceparent")
    assert len(tps) == 1, tps
    _, trace_id, span_id, _ = tps[0].split("-")
    return receiver.wait_span(trace_id=trace_id, span_id=span_id, service="mcp-gateway")


@pytest.mark.parametrize("kind", ["mcp", "not_mcp"])
@pytest.mark.parametrize("config", CONFIGS)
def test_client_cannot_forge_span_or_internal_headers(
    config: str, kind: str, gateways: dict[str, ShippedEnvoy], upstream: RecordingUpstream,
    receiver: OtlpReceiver,
) -> None:
    gw = gateways[config]
    honest = gateway_span(receiver, send(gw, upstream, kind, {}))
    rec = send(gw, upstream, kind, FORGED)
    span = gateway_span(receiver, rec)

    # Every finding is collected, so a failure lists all that a client could forge at once.
    problems: dict[str, object] = {}
    # The span's name is the one Envoy or the filter gives it, as for the honest request.
    expected_name = "tools/call get_weather" if kind == "mcp" else "ingress"
    assert honest.name == expected_name, honest
    if span.name != expected_name:
        problems["span name"] = span.name
    telltales = ("forged", FORGED_REQUEST_ID, FORGED["x-envoy-external-address"])
    leaked = {k: v for k, v in span.attributes.items() if any(t in str(v) for t in telltales)}
    if leaked:
        problems["span attributes"] = leaked
    if kind == "mcp":
        assert span.attributes["gen_ai.tool.name"] == "get_weather"
        assert span.attributes["mcp.method.name"] == "tools/call"

    # No forged value reaches the upstream; the headers Envoy writes on this hop are its own.
    arrived = {name: rec.values(name) for name in FORGED}
    smuggled = {name: values for name, values in arrived.items() if FORGED[name] in values}
    if smuggled:
        problems["forged headers upstream"] = smuggled
    extra = {name: values for name, values in arrived.items() if values and name not in ENVOY_WRITES}
    if extra:
        problems["client-only headers upstream"] = extra
    if rec.values("x-envoy-external-address") != ["127.0.0.1"]:
        problems["x-envoy-external-address"] = rec.values("x-envoy-external-address")
    # A traced HCM rewrites one digit of x-request-id (its trace reason, UUID position 14), so a
    # client id that survived shows up with that digit changed: compare without it.
    request_id = rec.values("x-request-id")
    if len(request_id) != 1 or without_trace_reason(request_id[0]) == without_trace_reason(FORGED_REQUEST_ID):
        problems["x-request-id"] = request_id
    assert problems == {}, f"{config} {kind}: {problems}"
    uuid.UUID(request_id[0])  # generated by Envoy
