"""Clients that control exactly how a request body travels, for the framing tests.

`post_chunked` sends an HTTP/1.1 `Transfer-Encoding: chunked` request as a list of socket writes,
each one `sendall`, with a pause between them: the test decides what Envoy can read at once.
`post_h2` sends an h2c (prior knowledge) request without a content-length as bursts of DATA frames,
each frame as large as Envoy allows and each burst in one write; the client first raises its own
receive windows so nothing but Envoy's flow control limits either side.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events
import h2.settings

MAX_WINDOW = 2**31 - 1


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes


def chunk(data: bytes) -> bytes:
    """One chunk of the chunked transfer coding."""
    return b"%x\r\n" % len(data) + data + b"\r\n"


LAST_CHUNK = b"0\r\n\r\n"


def chunked_head(path: str, headers: Sequence[tuple[str, str]] = ()) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _read_reply(sock: socket.socket) -> Reply:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed before a response: {buf[:200]!r}")
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ", 2)[1])
    fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
    length = int(fields.get(b"content-length", b"0").strip())
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            break
        rest += data
    return Reply(status, rest[:length])


def post_chunked(port: int, writes: Sequence[bytes], pause: float = 0.3, timeout: float = 20.0) -> Reply:
    """Send `writes` (request head and chunk framing included, as built by the caller) one
    `sendall` each, `pause` seconds apart, and read the response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for i, data in enumerate(writes):
            if i and pause:
                time.sleep(pause)
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                break  # Envoy answered early and closed; its answer is read below
        return _read_reply(sock)


def post_h2(port: int, path: str, bursts: Sequence[bytes], headers: Sequence[tuple[str, str]] = (),
            pause: float = 0.3, timeout: float = 20.0) -> tuple[Reply, int]:
    """POST the concatenation of `bursts` over h2c without a content-length. Each burst goes out
    as DATA frames of the largest size Envoy accepts, all in one write (waiting only when Envoy's
    flow-control window is used up); `pause` seconds between bursts. Returns the reply and the
    largest DATA frame sent."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    largest = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        conn.initiate_connection()
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: MAX_WINDOW})
        conn.increment_flow_control_window(MAX_WINDOW - conn.inbound_flow_control_window)
        sock.sendall(conn.data_to_send())
        status: int | None = None
        body = bytearray()
        ended = False
        settled = False

        def pump() -> None:
            nonlocal status, ended, settled
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed before the response ended")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    settled = True
                elif isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[":status"])
                elif isinstance(event, h2.events.DataReceived):
                    body.extend(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    ended = True
            sock.sendall(conn.data_to_send())

        while not settled:  # Envoy's SETTINGS: its max frame size and initial window
            pump()
        stream = conn.get_next_available_stream_id()
        request = [(":method", "POST"), (":path", path), (":scheme", "http"), (":authority", "127.0.0.1")]
        conn.send_headers(stream, request + [(k.lower(), v) for k, v in headers])
        sock.sendall(conn.data_to_send())
        for i, burst in enumerate(bursts):
            if i and pause:
                time.sleep(pause)
            last_burst = i == len(bursts) - 1
            rest = burst
            while rest:
                while conn.local_flow_control_window(stream) == 0 and not ended:
                    sock.sendall(conn.data_to_send())
                    pump()
                if ended:
                    break  # answered (and reset) early
                n = min(len(rest), conn.local_flow_control_window(stream), conn.max_outbound_frame_size)
                conn.send_data(stream, rest[:n], end_stream=last_burst and n == len(rest))
                largest = max(largest, n)
                rest = rest[n:]
            sock.sendall(conn.data_to_send())
        while not ended:
            pump()
        assert status is not None, "stream ended without a response"
        return Reply(status, bytes(body)), largest
