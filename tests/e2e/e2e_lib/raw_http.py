"""Minimal clients over a plain socket, for what httpx cannot do: an HTTP/1.1 POST that waits for
`100 Continue` before sending the body or trickles a Content-Length body in timed pieces, and an
HTTP/2 (prior knowledge) POST that ends its request with trailers.

It reads exactly what the server sends (interim and final response), so a test can compare
two listeners' answers byte for byte where it matters: status, body, interim response.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events


@dataclass(frozen=True)
class RawReply:
    """The final response, and the interim `1xx` status line if one came first."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    interim: str | None


class _Reader:
    """Buffered reads from a socket: exactly the bytes asked for, nothing lost between calls."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            if not self._fill():
                raise ConnectionError(f"connection closed before {marker!r}: got {bytes(self.buf[:200])!r}")
        end = self.buf.index(marker) + len(marker)
        out = bytes(self.buf[:end])
        del self.buf[:end]
        return out

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError(f"connection closed after {len(self.buf)} of {n} bytes")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def rest(self) -> bytes:
        while self._fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def head(self) -> tuple[int, str, list[tuple[str, str]]]:
        raw = self.until(b"\r\n\r\n").decode("latin-1")
        status_line, *lines = raw[:-4].split("\r\n")
        headers = [(k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
        return int(status_line.split(" ", 2)[1]), status_line, headers

    def body(self, headers: list[tuple[str, str]]) -> bytes:
        fields = dict(headers)
        if "chunked" in fields.get("transfer-encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self.until(b"\r\n")
                    return bytes(out)
                out += self.exact(size)
                self.exact(2)
        if "content-length" in fields:
            return self.exact(int(fields["content-length"]))
        return self.rest()


def post(
    port: int,
    path: str,
    body: bytes,
    headers: Sequence[tuple[str, str]] = (),
    *,
    pieces: int = 1,
    delay: float = 0.0,
    expect_continue: bool = False,
    continue_timeout: float = 3.0,
    timeout: float = 15.0,
) -> RawReply:
    """POST `body` with a Content-Length to 127.0.0.1:`port`, in `pieces` writes `delay` seconds
    apart. With `expect_continue`, send `Expect: 100-continue` and wait (up to
    `continue_timeout`) for the interim response before the body, as curl does."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if expect_continue:
        lines.append("Expect: 100-continue")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        reader = _Reader(sock)
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        interim = None
        if expect_continue:
            sock.settimeout(continue_timeout)
            try:
                status, status_line, response_headers = reader.head()
            except TimeoutError:
                status = None
            sock.settimeout(timeout)
            if status is not None and status >= 200:
                # A final answer before the body: the body must not be sent.
                return RawReply(status, response_headers, reader.body(response_headers), None)
            if status is not None:
                interim = status_line
        step = max(1, -(-len(body) // pieces))
        try:
            for i, start in enumerate(range(0, len(body), step)):
                if i and delay:
                    time.sleep(delay)
                sock.sendall(body[start:start + step])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early and closed; its answer is read below
        status, _, response_headers = reader.head()
        while 100 <= status < 200:
            status, _, response_headers = reader.head()
        return RawReply(status, response_headers, reader.body(response_headers), interim)


def post_h2_with_trailers(
    port: int,
    path: str,
    body: bytes,
    headers: Sequence[tuple[str, str]] = (),
    trailers: Sequence[tuple[str, str]] = (("x-checksum", "0"),),
    *,
    pieces: int = 1,
    delay: float = 0.0,
    timeout: float = 15.0,
) -> RawReply:
    """POST `body` over h2c (prior knowledge) in `pieces` DATA frames without a content-length, and
    end the stream with a trailers HEADERS frame (as gRPC clients do)."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        request = [(":method", "POST"), (":path", path), (":scheme", "http"), (":authority", "127.0.0.1")]
        conn.send_headers(stream, request + [(k.lower(), v) for k, v in headers])
        sock.sendall(conn.data_to_send())
        status: int | None = None
        response_headers: list[tuple[str, str]] = []
        data = bytearray()
        ended = False

        def pump() -> None:
            nonlocal status, response_headers, ended
            received = sock.recv(65536)
            if not received:
                raise ConnectionError("connection closed before the response ended")
            for event in conn.receive_data(received):
                if isinstance(event, h2.events.ResponseReceived):
                    response_headers = [(k, v) for k, v in event.headers if not k.startswith(":")]
                    status = int(dict(event.headers)[":status"])
                elif isinstance(event, h2.events.DataReceived):
                    data.extend(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    ended = True
            sock.sendall(conn.data_to_send())

        step = max(1, -(-len(body) // pieces))
        for i, start in enumerate(range(0, len(body), step)):
            if i and delay:
                time.sleep(delay)
            piece = body[start:start + step]
            while piece:
                while conn.local_flow_control_window(stream) == 0:
                    pump()
                n = min(len(piece), conn.local_flow_control_window(stream), conn.max_outbound_frame_size)
                conn.send_data(stream, piece[:n])
                sock.sendall(conn.data_to_send())
                piece = piece[n:]
        conn.send_headers(stream, list(trailers), end_stream=True)
        sock.sendall(conn.data_to_send())
        while not ended:
            pump()
        assert status is not None, "stream ended without a response"
        return RawReply(status, response_headers, bytes(data), None)
