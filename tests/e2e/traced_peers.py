"""Peers for test_traced.py: a test rendering of envoy/traced.yaml, and a traced MCP SDK server.

As a script, the traced MCP server:

    python traced_peers.py PORT OTLP_ENDPOINT RECORD_FILE {sse|json}

`MCPServer` (streamable HTTP at /mcp; `json` sets json_response=True, `sse` keeps the SDK default of
text/event-stream responses) with an OpenTelemetry SDK TracerProvider (service `mcp-server`,
SimpleSpanProcessor -> OTLP/HTTP) and tools `get_weather`, `fail_tool` (isError result) and
`rpc_fail` (a JSON-RPC error -32602). Every HTTP request is recorded like e2e_lib/mcp_peer.py does.
"""

from __future__ import annotations

import re
from typing import Any
import sys
from pathlib import Path

TRACED_YAML = Path(__file__).resolve().parents[2] / "envoy" / "traced.yaml"
RPC_FAIL_CODE = -32602


def render_traced(
    *, listen: int, admin: int, mcp_server: int, otlp: int, flush_interval_ms: int = 200,
    source: Path = TRACED_YAML,
) -> str:
    """envoy/traced.yaml with its fixed ports replaced and a fast OTel flush, as YAML text.

    Everything else is the shipped file byte for byte, so the tests exercise what users run."""
    text = source.read_text()
    replacements = {
        "port_value: 10000": f"port_value: {listen}",
        "port_value: 9901": f"port_value: {admin}",
        "port_value: 8000": f"port_value: {mcp_server}",
        "port_value: 4318": f"port_value: {otlp}",
        "http://127.0.0.1:4318/v1/traces": f"http://127.0.0.1:{otlp}/v1/traces",
    }
    for old, new in replacements.items():
        # Not followed by a digit: a free port already written (43189) holds "4318" too.
        pattern = re.compile(re.escape(old) + r"(?!\d)")
        count = len(pattern.findall(text))
        if count != 1:
            raise AssertionError(f"{source}: expected exactly one {old!r}, found {count}")
        text = pattern.sub(new, text)
    if re.search(r"^layered_runtime:", text, re.M):
        raise AssertionError(f"{source} already has a layered_runtime; update render_traced")
    # A top-level key appended at the end: the tracer exports every `flush_interval_ms`, not 5 s.
    text += (
        "\nlayered_runtime:\n  layers:\n  - name: test_static\n    static_layer:\n"
        f"      tracing.opentelemetry.flush_interval_ms: {flush_interval_ms}\n"
    )
    return text


def _server_main(argv: list[str]) -> None:
    port, endpoint, record_path, mode = int(argv[0]), argv[1], argv[2], argv[3]

    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "mcp-server"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)

    import uvicorn
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.shared.exceptions import MCPError

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from e2e_lib.mcp_peer import RecordRequests

    server = MCPServer("traced-peer")

    @server.tool()
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return f"sunny in {city}"

    @server.tool()
    def fail_tool(reason: str) -> str:
        """Always fails as a tool (CallToolResult.isError = true)."""
        raise ToolError(f"failed: {reason}")

    @server.tool()
    def rpc_fail() -> str:
        """Always fails as a JSON-RPC error."""
        raise MCPError(RPC_FAIL_CODE, "rejected by rpc_fail")

    @server.tool()
    def passback() -> Any:
        """Returns its own span in result._meta.otel.traces (SEP-2448 telemetry passback)."""
        from mcp.types import CallToolResult, TextContent

        context = trace.get_current_span().get_span_context()
        span = {
            "traceId": format(context.trace_id, "032x"),
            "spanId": "5e55a9e5a9e5a9e5",
            "parentSpanId": format(context.span_id, "016x"),
            "name": "passback work",
            "kind": 1,
            "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000000100000000",
        }
        otel = {"traces": {"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "mcp-server-passback"}}]},
            "scopeSpans": [{"scope": {"name": "passback"}, "spans": [span]}],
        }]}}
        return CallToolResult(content=[TextContent(type="text", text="done")], _meta={"otel": otel})

    app = server.streamable_http_app(json_response=(mode == "json"))
    uvicorn.run(RecordRequests(app, record_path), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    _server_main(sys.argv[1:])
