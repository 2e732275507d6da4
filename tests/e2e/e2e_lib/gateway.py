"""Send requests through an Envoy listener and fetch what the recording upstream received."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import httpx

from .envoy import COUNTER_NAMES, EnvoyProcess
from .recording_upstream import Recorded, RecordingUpstream

Headers = dict[str, str] | Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Exchange:
    """A request as sent and as the upstream received it."""

    sent_body: bytes
    status: int
    rec: Recorded
    http_version: str

    @property
    def traceparent(self) -> str | None:
        return self.rec.one("traceparent")

    @property
    def tracestate(self) -> str | None:
        return self.rec.one("tracestate")

    @property
    def baggage(self) -> str | None:
        return self.rec.one("baggage")

    def trace_headers(self) -> dict[str, str | None]:
        """The three W3C headers as they reached the upstream (None = absent)."""
        return {"traceparent": self.traceparent, "tracestate": self.tracestate, "baggage": self.baggage}


class Gateway:
    """Per-test client: every request gets a unique path so the upstream record is unambiguous."""

    def __init__(self, envoy: EnvoyProcess, upstream: RecordingUpstream, test_name: str) -> None:
        self.envoy = envoy
        self.upstream = upstream
        self._prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)[:80]
        self._n = 0

    def _path(self) -> str:
        self._n += 1
        return f"/mcp/{self._prefix}/{self._n}-{uuid.uuid4().hex[:8]}"

    def send(
        self,
        listener: str,
        body: bytes,
        headers: Headers | None = None,
        *,
        content_type: str | None = "application/json",
        method: str = "POST",
        http2: bool = False,
        chunks: Sequence[bytes] | None = None,
        chunk_delay: float = 0.03,
        counts: dict[str, int] | Sequence[dict[str, int]] | None = None,
    ) -> Exchange:
        """Send `body` (or `chunks`, which must join to `body`, as a chunked/streamed body) and return the
        upstream's record. Always asserts a 200 and a byte-identical body at the upstream. With `counts`,
        also asserts the filter's counter deltas for this request (a dict, or a list of acceptable dicts)."""
        watch = CounterWatch(self.envoy) if counts is not None else None
        path = self._path()
        hdrs: list[tuple[str, str]] = []
        if content_type is not None:
            hdrs.append(("content-type", content_type))
        if headers:
            hdrs.extend(headers.items() if isinstance(headers, dict) else headers)
        content: bytes | Iterator[bytes] = body
        if chunks is not None:
            assert b"".join(chunks) == body, "chunks must join to the body"

            def paced() -> Iterator[bytes]:
                for i, c in enumerate(chunks):
                    if i:
                        time.sleep(chunk_delay)  # separate reads at Envoy: several body callbacks
                    yield c

            content = paced()
        with httpx.Client(http1=not http2, http2=http2, timeout=15.0) as client:
            resp = client.request(method, self.envoy.url(listener, path), content=content, headers=hdrs)
        assert resp.status_code == 200, f"{method} {path} via {listener}: HTTP {resp.status_code} {resp.text[:300]!r}"
        rec = self.upstream.wait_for(path)
        assert rec.method == method
        assert rec.body == body, (
            f"body changed on the way: sent {len(body)} bytes, upstream got {len(rec.body)} bytes"
        )
        if watch is not None:
            watch.expect_any([counts] if isinstance(counts, dict) else counts)
        return Exchange(sent_body=body, status=resp.status_code, rec=rec, http_version=resp.http_version)

    def counter_watch(self) -> "CounterWatch":
        return CounterWatch(self.envoy)


class CounterWatch:
    """Snapshot of the filter's counters; `expect()` asserts the exact deltas since the snapshot."""

    def __init__(self, envoy: EnvoyProcess) -> None:
        self.envoy = envoy
        self.before = envoy.counters()

    def deltas(self) -> dict[str, int]:
        now = self.envoy.counters()
        return {k: now[k] - self.before[k] for k in COUNTER_NAMES}

    def expect(self, timeout: float = 3.0, **want: int) -> None:
        """Every counter moved by exactly `want[name]` (0 when not named)."""
        self.expect_any([want], timeout)

    def expect_any(self, options: Sequence[dict[str, int]], timeout: float = 3.0) -> None:
        """The deltas equal one of `options` (each: counter -> delta, 0 when not named). Counters may be
        bumped just after the response reaches the client, so poll briefly before judging."""
        wanted = []
        for want in options:
            unknown = set(want) - set(COUNTER_NAMES)
            assert not unknown, f"unknown counters {unknown}"
            wanted.append({k: want.get(k, 0) for k in COUNTER_NAMES})
        deadline = time.monotonic() + timeout
        got = self.deltas()
        while got not in wanted and time.monotonic() < deadline:
            time.sleep(0.02)
            got = self.deltas()
        if got in wanted:
            time.sleep(0.05)  # nothing else should still be arriving
            got = self.deltas()
        assert got in wanted, f"counter deltas {got}, expected {' or '.join(map(str, wanted))}"
