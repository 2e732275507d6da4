"""Demo MCP server (MCP Python SDK 2.3, streamable HTTP on http://127.0.0.1:8000/mcp).

One tool, `get_weather`. For every call it prints the W3C trace headers the HTTP request carried,
next to the `_meta` trace context from the JSON-RPC body, and returns them to the client too, so the
demo can show what arrived after Envoy and the filter.

With `--otlp-endpoint URL` an OpenTelemetry SDK TracerProvider (service `--service-name`, default
`weather-mcp-server`) exports the SDK's server spans over OTLP/HTTP; the MCP SDK parents them on
the `_meta.traceparent` of each request.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mcp.server.mcpserver import Context, MCPServer

TRACE_KEYS = ("traceparent", "tracestate", "baggage")

server = MCPServer("weather-demo", instructions="Weather for a city (demo of mcp-trace-filter).")


@server.tool()
def get_weather(city: str, ctx: Context) -> str:
    """Current weather for `city` (canned data), plus the trace context this server received."""
    headers = ctx.headers or {}
    received = {key: headers.get(key) for key in TRACE_KEYS}
    meta = ctx.request_context.meta
    meta_dict: dict[str, Any] = dict(meta) if meta else {}  # `_meta` as the SDK parsed it from the body
    body_meta = {key: meta_dict.get(key) for key in TRACE_KEYS}
    print(f"[server] tools/call get_weather(city={city!r})", flush=True)
    for key in TRACE_KEYS:
        print(f"[server]   {key + ' header:':<20} {received[key]}", flush=True)
    print(f"[server]   {'_meta.traceparent:':<20} {body_meta['traceparent']}", flush=True)
    return json.dumps(
        {
            "city": city,
            "forecast": "sunny, 21°C",
            "received_headers": received,
            "received_meta": body_meta,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--otlp-endpoint", help="OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces")
    parser.add_argument("--service-name", default="weather-mcp-server")
    args = parser.parse_args()
    if args.otlp_endpoint:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": args.service_name}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=args.otlp_endpoint, timeout=5)))
        trace.set_tracer_provider(provider)
        print(f"[server] OpenTelemetry: service {args.service_name!r} -> {args.otlp_endpoint}", flush=True)
    print(f"[server] MCP server on http://{args.host}:{args.port}/mcp", flush=True)
    server.run("streamable-http", host=args.host, port=args.port)


if __name__ == "__main__":
    main()
