"""A recording upstream that can answer a chosen response per path.

Like RecordingUpstream (it records every request the same way and has the same `records` /
`wait_for`), but `answer(path, body, content_type)` makes the request to exactly that path get
that body, e.g. an 8 MiB JSON-RPC batch or a `text/event-stream` event, written in `pieces`
socket writes so it reaches Envoy as several chunks. Other paths get REPLY_BODY.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .recording_upstream import REPLY_BODY, Recorded, RecordingUpstream, _Handler, _Server


@dataclass(frozen=True)
class Answer:
    body: bytes
    content_type: str
    pieces: int = 1
    status: int = 200


class _AnsweringServer(_Server):
    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.RequestHandlerClass = _AnsweringHandler
        self.answers: dict[str, Answer] = {}


class _AnsweringHandler(_Handler):
    server: _AnsweringServer

    def _answer(self) -> None:
        body, chunked = self._read_body()
        self.server.store(Recorded(
            method=self.command,
            path=self.path,
            headers=[(k.lower(), v) for k, v in self.headers.items()],
            body=body,
            chunked=chunked,
        ))
        with self.server._cond:
            answer = self.server.answers.get(self.path)
        if answer is None:
            answer = Answer(REPLY_BODY, "application/json")
        self.send_response(answer.status)
        self.send_header("content-type", answer.content_type)
        self.send_header("content-length", str(len(answer.body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        step = max(1, -(-len(answer.body) // answer.pieces))
        for start in range(0, len(answer.body), step):
            self.wfile.write(answer.body[start:start + step])

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer


class AnsweringUpstream(RecordingUpstream):
    def __init__(self, port: int = 0) -> None:  # noqa: D107 - replaces the parent's server
        self._server = _AnsweringServer(port)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="answering-upstream", daemon=True)

    def answer(self, path: str, body: bytes, content_type: str, pieces: int = 1, status: int = 200) -> None:
        """The request to `path` (query included) will be answered with `body`."""
        with self._server._cond:
            self._server.answers[path] = Answer(body, content_type, pieces, status)
