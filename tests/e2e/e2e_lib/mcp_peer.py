"""A real MCP SDK server for the end-to-end tests, run as a subprocess:

    python mcp_peer.py PORT RECORD_FILE

`MCPServer` (streamable HTTP at /mcp) with an `echo` tool, wrapped in an ASGI layer that appends every
HTTP request it receives (method, path, headers, exact body) as one JSON line to RECORD_FILE, before
the SDK sees it. The tests compare that record with what the MCP client sent.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer


class RecordRequests:
    """ASGI wrapper: read the whole request body, record it, then replay it to the app unchanged."""

    def __init__(self, app: Any, record_path: str) -> None:
        self.app = app
        self.record_path = record_path
        self._lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        messages: list[dict[str, Any]] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
        line = json.dumps(
            {
                "method": scope["method"],
                "path": scope["path"],
                "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
                "body_b64": base64.b64encode(body).decode(),
            }
        )
        with self._lock, open(self.record_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

        async def replay() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            return await receive()

        await self.app(scope, replay, send)


def build_app(record_path: str) -> Any:
    server = MCPServer("e2e-peer")

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    return RecordRequests(server.streamable_http_app(), record_path)


def main() -> None:
    port, record_path = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(build_app(record_path), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
