"""Demo MCP client (MCP Python SDK 2.3 with an OpenTelemetry SDK TracerProvider).

Calls `get_weather` once through Envoy (http://127.0.0.1:10000/mcp by default). With a TracerProvider
set, the SDK puts the W3C trace context in the JSON-RPC body (`params._meta.traceparent`, `baggage`)
and sends no trace headers. The filter in Envoy lifts it into headers. This script prints the `_meta`
it sent (captured from the outgoing HTTP request) and the headers the server says it received.
Exit status 1 if the server did not get a `traceparent` header in the client's trace.

With `--otlp-endpoint URL` the TracerProvider (service `--service-name`, default `agent`) also exports
the client's spans over OTLP/HTTP, and `--trace-id-file` receives the trace id of the call.
Behind envoy/envoy.yaml (lift only) the server gets exactly the client's `_meta.traceparent`; behind
envoy/traced.yaml it gets the same trace id with the gateway span as parent (header and `_meta`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

TRACE_KEYS = ("traceparent", "tracestate", "baggage")


def show(value: Any) -> str:
    return "(none)" if value is None else str(value)


async def call_weather(url: str, city: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Returns (the tools/call `_meta` sent, the trace headers sent, the tool's JSON result)."""
    sent_meta: dict[str, Any] = {}
    sent_headers: dict[str, Any] = {}

    async def capture(request: httpx2.Request) -> None:
        if request.method != "POST" or not request.content:
            return
        try:
            msg = json.loads(request.content)
        except ValueError:
            return
        if isinstance(msg, dict) and msg.get("method") == "tools/call":
            sent_meta.update(msg.get("params", {}).get("_meta", {}))
            sent_headers.update({key: request.headers.get(key) for key in TRACE_KEYS})

    tracer = trace.get_tracer("weather-agent")
    async with httpx2.AsyncClient(event_hooks={"request": [capture]}, timeout=httpx2.Timeout(30.0)) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            with tracer.start_as_current_span("weather-agent: plan trip"):
                token = context.attach(baggage.set_baggage("user.id", "demo-user"))
                try:
                    result = await client.call_tool("get_weather", {"city": city})
                finally:
                    context.detach(token)
    if result.is_error:
        raise SystemExit(f"tool call failed: {result.content}")
    text = "".join(getattr(block, "text", "") for block in result.content)
    return sent_meta, sent_headers, json.loads(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:10000/mcp", help="MCP endpoint (Envoy listener)")
    parser.add_argument("--city", default="Paris")
    parser.add_argument("--otlp-endpoint", help="OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces")
    parser.add_argument("--service-name", default="agent")
    parser.add_argument("--trace-id-file", help="write the call's trace id (32 hex) to this file")
    args = parser.parse_args()

    # An OpenTelemetry SDK TracerProvider: this is what makes the MCP SDK inject `_meta` trace context.
    provider = TracerProvider(resource=Resource.create({"service.name": args.service_name}))
    if args.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=args.otlp_endpoint, timeout=5)))
    trace.set_tracer_provider(provider)

    try:
        sent_meta, sent_headers, answer = anyio.run(call_weather, args.url, args.city)
    finally:
        provider.shutdown()  # flushes the client's spans
    got = answer["received_headers"]
    got_meta = answer.get("received_meta", {})

    print()
    print(f"client -> {args.url}  tools/call get_weather(city={args.city!r})")
    print("  sent in the body, params._meta:")
    for key in TRACE_KEYS:
        print(f"    {key:<12} {show(sent_meta.get(key))}")
    print("  sent as HTTP headers:")
    for key in TRACE_KEYS:
        print(f"    {key:<12} {show(sent_headers.get(key))}")
    print("server received HTTP headers (after Envoy + mcp-trace-filter):")
    for key in TRACE_KEYS:
        print(f"    {key:<12} {show(got.get(key))}")
    print("server received in the body, params._meta:")
    print(f"    {'traceparent':<12} {show(got_meta.get('traceparent'))}")
    print(f"tool answer: {answer['city']}: {answer['forecast']}")
    print()

    sent_tp, got_tp = sent_meta.get("traceparent"), got.get("traceparent")
    trace_id = sent_tp.split("-")[1] if sent_tp and sent_tp.count("-") == 3 else None
    if trace_id:
        print(f"trace id: {trace_id}")
        if args.trace_id_file:
            with open(args.trace_id_file, "w", encoding="utf-8") as f:
                f.write(trace_id + "\n")
    if sent_tp is not None and got_tp == sent_tp:
        print("OK: the server got traceparent == the client's params._meta.traceparent "
              "(the client sent no traceparent header).")
        return 0
    if trace_id and got_tp and got_tp.count("-") == 3 and got_tp.split("-")[1] == trace_id:
        print("OK: the server got a traceparent header in the client's trace, whose parent is now the "
              f"gateway's span ({got_tp.split('-')[2]}), not the client's ({sent_tp.split('-')[2]}); "
              + ("_meta.traceparent matches it." if got_meta.get("traceparent") == got_tp
                 else "but _meta.traceparent differs."))
        return 0
    print("FAIL: the server did not receive the client's trace context as a header.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
