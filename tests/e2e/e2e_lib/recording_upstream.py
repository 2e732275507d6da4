"""A recording HTTP/1.1 upstream: remembers exactly what Envoy forwarded, answers 200 with a small JSON body.

Each request is stored with its method, path, headers (ordered (lowercased name, value) pairs, duplicates
kept) and the exact body bytes (chunked transfer coding removed). Tests correlate by unique path.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPLY_BODY = b'{"jsonrpc":"2.0","id":1,"result":{}}'


@dataclass(frozen=True)
class Recorded:
    """One request as the upstream saw it."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    chunked: bool = field(default=False)

    def values(self, name: str) -> list[str]:
        """Every value of header `name` (case-insensitive), in arrival order."""
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def one(self, name: str) -> str | None:
        """The single value of header `name`, None when absent; a repeated header is an error."""
        vals = self.values(name)
        assert len(vals) <= 1, f"header {name!r} arrived {len(vals)} times: {vals!r}"
        return vals[0] if vals else None

    def json(self) -> Any:
        return json.loads(self.body)


def read_recorded(path: Path) -> list[Recorded]:
    """The requests an MCP peer logged to `path` (JSON lines written by mcp_peer.py)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        headers = [(k.lower(), v) for k, v in r["headers"]]
        out.append(Recorded(r["method"], r["path"], headers, base64.b64decode(r["body_b64"])))
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: pytest output stays readable

    def _read_body(self) -> tuple[bytes, bool]:
        te = (self.headers.get("transfer-encoding") or "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # trailers until the empty line
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out), True
                out += self.rfile.read(size)
                self.rfile.readline(3)  # CRLF after the chunk
        length = int(self.headers.get("content-length") or 0)
        return (self.rfile.read(length) if length else b""), False

    def _handle(self) -> None:
        body, chunked = self._read_body()
        rec = Recorded(
            method=self.command,
            path=self.path,
            headers=[(k.lower(), v) for k, v in self.headers.items()],
            body=body,
            chunked=chunked,
        )
        self.server.store(rec)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(REPLY_BODY)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(REPLY_BODY)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self._cond = threading.Condition()
        self._records: list[Recorded] = []

    def store(self, rec: Recorded) -> None:
        with self._cond:
            self._records.append(rec)
            self._cond.notify_all()


class RecordingUpstream:
    """Start/stop wrapper and query API around the threaded server."""

    def __init__(self, port: int = 0) -> None:
        self._server = _Server(port)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="recording-upstream", daemon=True)

    def start(self) -> "RecordingUpstream":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def records(self, path: str) -> list[Recorded]:
        """All requests received for exactly this path (query string included)."""
        with self._server._cond:
            return [r for r in self._server._records if r.path == path]

    def wait_for(self, path: str, timeout: float = 5.0) -> Recorded:
        """The single request received for `path`, waiting up to `timeout`; fails if none or several."""
        deadline = time.monotonic() + timeout
        with self._server._cond:
            while True:
                got = [r for r in self._server._records if r.path == path]
                if got:
                    assert len(got) == 1, f"{len(got)} requests reached the upstream for {path}"
                    return got[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no request reached the upstream for {path} within {timeout}s")
                self._server._cond.wait(left)
