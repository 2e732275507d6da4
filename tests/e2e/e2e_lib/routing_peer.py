"""A real MCP SDK server for the SEP-2243 tests, run as a subprocess:

    python routing_peer.py PORT RECORD_FILE

`MCPServer` (streamable HTTP at /mcp, JSON responses) with two tools, `get_weather` and `météo`
(a name the client must send base64-encoded in `Mcp-Name`), behind the same request recorder as
mcp_peer.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from mcp.server.mcpserver import MCPServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from e2e_lib.mcp_peer import RecordRequests  # noqa: E402

UNICODE_TOOL = "météo"


def main() -> None:
    port, record_path = int(sys.argv[1]), sys.argv[2]
    server = MCPServer("routing-peer")

    @server.tool()
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return f"sunny in {city}"

    @server.tool(name=UNICODE_TOOL)
    def meteo(city: str) -> str:
        """Weather for a city, under a name that is not plain header text."""
        return f"soleil à {city}"

    app = RecordRequests(server.streamable_http_app(json_response=True), record_path)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
