"""Bodies without a Content-Length against Envoy's buffer limit: which framings are lifted, which
pass through as oversize, and which (if any) Envoy answers with 413.

Why a framing can matter: while the filter holds a body, Envoy appends every new piece of it to the
held bytes *before* the filter sees the piece, and answers 413 when that total passes the stream's
buffer limit. Without a Content-Length the filter holds at most max_body_bytes / 2 (src/gate.rs
`hold_limit`) and lets the body go with the first piece that takes it past that. So it depends on
the stream's limit and on how large one piece can be:

  * HTTP/1.1: the limit is per_connection_buffer_limit_bytes (1 MiB by default), and a piece is
    whatever one read of the connection brought, whatever the chunking (the codec hands the body
    bytes of one read to the filters at once). One read brings up to the same limit plus part of
    one 128 KiB socket read (measured: 1 064 717 bytes). A body of at most 1 MiB can never pass a
    1 MiB limit; a larger one gets 413 when a read after the first brings more than 1 MiB minus
    what is already held.
  * HTTP/2: the limit is the stream's flow-control window (16 MiB in Envoy 1.40, measured), not
    the connection's, and Envoy accepts DATA frames of at most 16 KiB: with `{}` no framing comes
    near it.

Listener `envoy_default`: Envoy's default buffer limit, `{}` (max_body_bytes 1 MiB, so the filter
holds at most 524 288 bytes of a body without a Content-Length). The shipped configs (envoy/*.yaml,
public listener) keep the default connection limit, which bounds a read, and raise the stream's
limit with `request_body_buffer_limit: 4 MiB`, so the held bytes plus one read always fit.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e_lib.envoy import EnvoyProcess, ListenerSpec, launch_envoy
from e2e_lib.framing import LAST_CHUNK, chunk, chunked_head, post_chunked, post_h2
from e2e_lib.otlp import OtlpReceiver
from e2e_lib.recording_upstream import RecordingUpstream
from e2e_lib.shipped import ENVOY_DIR, ShippedEnvoy
from e2e_lib.values import TP_META

KIB = 1024
MIB = 1024 * KIB
HOLD = 512 * KIB  # max_body_bytes / 2 with `{}`
JSON = [("content-type", "application/json")]
SHIPPED = ("envoy.yaml", "traced.yaml", "traced-single.yaml")


def mcp_body(size: int) -> bytes:
    """A tools/call of exactly `size` bytes with a _meta traceparent (lifted when held whole)."""
    head = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"_meta": {"traceparent": TP_META}, "name": "get_weather"}})[:-2].encode()
    head += b',"arguments":{"pad":"'
    tail = b'"}}}'
    body = head + b"x" * (size - len(head) - len(tail)) + tail
    assert len(body) == size and json.loads(body)["params"]["_meta"]["traceparent"] == TP_META
    return body


@pytest.fixture(scope="module")
def envoy(wasm_file: Path, upstream: RecordingUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyProcess]:
    """This module's own Envoy: one listener with Envoy's default buffer limit and `{}`."""
    env = launch_envoy([ListenerSpec("envoy_default", {}, buffer_limit=None)], {"recorder": upstream.port},
                       tmp_path_factory.mktemp("envoy_framing"))
    yield env
    env.stop()


@dataclass(frozen=True)
class Outcome:
    """Status, what reached the upstream and the filter's counter deltas of one request."""

    status: int
    arrived: bytes | None
    deltas: dict[str, int]

    def __repr__(self) -> str:
        size = None if self.arrived is None else len(self.arrived)
        return f"Outcome(status={self.status}, upstream_bytes={size}, counters={self.deltas})"


def counted(counters: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in counters.items() if v != before.get(k, 0)}


Counters = Callable[[], dict[str, int]]


def outcome(counters: Counters, upstream: RecordingUpstream, path: str, status: int,
            before: dict[str, int]) -> Outcome:
    records = upstream.records(path)
    if status == 200:
        records = [upstream.wait_for(path)]
    deadline = time.monotonic() + 2
    deltas = counted(counters(), before)
    while not deltas and time.monotonic() < deadline:  # counters move just after the response
        time.sleep(0.02)
        deltas = counted(counters(), before)
    return Outcome(status, records[0].body if records else None, deltas)


def h1(port: int, counters: Counters, upstream: RecordingUpstream, body: bytes, first: int | None = None,
       chunk_size: int | None = None) -> Outcome:
    """HTTP/1.1 chunked. `first=None`: the request head and the whole body (one chunk, or chunks of
    `chunk_size`) in ONE write. `first=n`: the head and the first n bytes as one chunk, a pause
    (Envoy reads them and the filter holds them), then the rest as one chunk in one write."""
    path = f"/framing/h1/{uuid.uuid4().hex[:12]}"
    before = counters()
    if first is None:
        size = chunk_size or len(body)
        framed = b"".join(chunk(body[i:i + size]) for i in range(0, len(body), size)) + LAST_CHUNK
        reply = post_chunked(port, [chunked_head(path, JSON) + framed])
    else:
        reply = post_chunked(port, [chunked_head(path, JSON) + chunk(body[:first]),
                                        chunk(body[first:]) + LAST_CHUNK])
    return outcome(counters, upstream, path, reply.status, before)


def h2(port: int, counters: Counters, upstream: RecordingUpstream, body: bytes, first: int | None = None) -> Outcome:
    """HTTP/2 without a content-length: the body in one burst of maximal DATA frames, or the first
    `first` bytes, a pause, then the rest in one burst."""
    path = f"/framing/h2/{uuid.uuid4().hex[:12]}"
    before = counters()
    bursts = [body] if first is None else [body[:first], body[first:]]
    reply, largest = post_h2(port, path, bursts, JSON)
    assert largest == 16384, f"Envoy accepted DATA frames of {largest} bytes"
    return outcome(counters, upstream, path, reply.status, before)


def assert_passed(got: Outcome, body: bytes, counter: str) -> None:
    """200, the body byte-identical at the upstream, and exactly one `counter` (lifted/oversize)."""
    assert got.status == 200, got
    assert got.arrived == body, got
    assert got.deltas == {counter: 1}, got


# ---------------------------------------------------------------- Envoy's default 1 MiB buffer


@pytest.mark.parametrize("size", [600 * KIB, 1 * MIB])
@pytest.mark.parametrize("chunk_size", [None, 1 * KIB], ids=["one_chunk", "1KiB_chunks"])
def test_h1_one_write_up_to_the_limit_passes(envoy: EnvoyProcess, upstream: RecordingUpstream, size: int,
                                             chunk_size: int | None) -> None:
    """Up to 1 MiB in one write, one chunk or many: over half of max_body_bytes, so not held
    to the end, passed through untouched and counted oversize."""
    body = mcp_body(size)
    assert_passed(h1(envoy.port("envoy_default"), envoy.counters, upstream, body, chunk_size=chunk_size),
                  body, "oversize")


def test_h1_held_then_a_large_read_up_to_the_limit_passes(envoy: EnvoyProcess, upstream: RecordingUpstream) -> None:
    """The worst HTTP/1.1 framing at the largest size that is safe: 100 KiB held, then the rest in
    one read. The held bytes never pass the body's size, so a body of 1 MiB never gets 413."""
    body = mcp_body(1 * MIB)
    assert_passed(h1(envoy.port("envoy_default"), envoy.counters, upstream, body, first=100 * KIB),
                  body, "oversize")


def test_h1_pieces_of_half_the_limit_pass(envoy: EnvoyProcess, upstream: RecordingUpstream) -> None:
    """What the hold limit guarantees over HTTP/1.1: 2 MiB in four writes of 512 KiB, each read on
    its own. At most 512 KiB is held when the next 512 KiB arrives, so the held bytes reach 1 MiB
    and no more; the body passes through untouched and counted oversize. (Holding up to the whole
    max_body_bytes, as the filter did before `hold_limit`, gets 413 here.)"""
    body = mcp_body(2 * MIB)
    path = f"/framing/h1/{uuid.uuid4().hex[:12]}"
    before = envoy.counters()
    pieces = [chunk(body[i:i + HOLD]) for i in range(0, len(body), HOLD)]
    pieces[0] = chunked_head(path, JSON) + pieces[0]
    pieces[-1] += LAST_CHUNK
    reply = post_chunked(envoy.port("envoy_default"), pieces)
    assert_passed(outcome(envoy.counters, upstream, path, reply.status, before), body, "oversize")


# Not strict: whether Envoy reads the second write in one piece is up to the kernel (30 of 30 did
# here at this size), and a run where it did not is no fix of the limit.
@pytest.mark.xfail(strict=False, reason=(
    "known limit: with Envoy's default 1 MiB buffer, a chunked HTTP/1.1 body over 1 MiB gets 413 "
    "when, after the filter began holding it, one read brings the held bytes over 1 MiB (the held "
    "half of max_body_bytes is no headroom against a read of up to 1 MiB + 128 KiB). The shipped "
    "configs avoid it with request_body_buffer_limit (test_shipped_configs_never_answer_413)."))
@pytest.mark.parametrize("first", [100 * KIB, HOLD])
def test_h1_held_then_a_large_read_over_the_limit(envoy: EnvoyProcess, upstream: RecordingUpstream,
                                                  first: int) -> None:
    """1 MiB + 1 byte: `first` bytes held, then the rest in one write, which Envoy reads at once:
    413 (the reproducer of the limit). A single write of 1.5 MiB or 4 MiB hits it now and then,
    when Envoy's first read of the body happens to be short."""
    body = mcp_body(MIB + 1)
    assert_passed(h1(envoy.port("envoy_default"), envoy.counters, upstream, body, first=first), body, "oversize")


@pytest.mark.parametrize("size", [600 * KIB, 1 * MIB, 1536 * KIB, 4 * MIB])
def test_h2_maximal_frames_in_one_burst_pass(envoy: EnvoyProcess, upstream: RecordingUpstream, size: int) -> None:
    """HTTP/2 without a content-length, the whole body at once in 16 KiB DATA frames (the largest
    Envoy accepts) under a window the client raised to the maximum: passed through untouched,
    counted oversize, never 413."""
    body = mcp_body(size)
    assert_passed(h2(envoy.port("envoy_default"), envoy.counters, upstream, body), body, "oversize")


def test_h2_held_then_a_large_burst_passes(envoy: EnvoyProcess, upstream: RecordingUpstream) -> None:
    """The HTTP/1.1 413 framing over HTTP/2: 500 KiB held, then 4 MiB in one burst. Each frame is
    its own piece and the stream's limit is its 16 MiB window: the body is let go, never 413."""
    body = mcp_body(500 * KIB + 4 * MIB)
    assert_passed(h2(envoy.port("envoy_default"), envoy.counters, upstream, body, first=500 * KIB),
                  body, "oversize")


@pytest.mark.parametrize("size,counter", [(HOLD, "lifted"), (HOLD + 1, "oversize")], ids=["hold", "hold_plus_1"])
@pytest.mark.parametrize("transport", ["h1_one_write", "h1_two_writes", "h2"])
def test_half_of_max_body_bytes_is_the_boundary(envoy: EnvoyProcess, upstream: RecordingUpstream, size: int,
                                                counter: str, transport: str) -> None:
    """Without a Content-Length a body of max_body_bytes / 2 is lifted and one byte more passes
    through as oversize, however it is framed."""
    body = mcp_body(size)
    port = envoy.port("envoy_default")
    if transport == "h2":
        got = h2(port, envoy.counters, upstream, body)
    else:
        got = h1(port, envoy.counters, upstream, body, first=None if transport == "h1_one_write" else 300 * KIB)
    assert_passed(got, body, counter)


# ---------------------------------------------------------------- the shipped configs


@pytest.fixture(scope="module")
def shipped(upstream: RecordingUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ShippedEnvoy]]:
    receiver = OtlpReceiver().start()  # the traced configs export; nothing here reads the spans
    out = {name: ShippedEnvoy(ENVOY_DIR / name, tmp_path_factory.mktemp(f"framing_{Path(name).stem}"),
                              upstream=upstream.port, otlp=receiver.port) for name in SHIPPED}
    try:
        for g in out.values():
            g.start()
        for g in out.values():
            g.wait_ready()
        yield out
    finally:
        for g in out.values():
            g.stop()
        receiver.stop()


@pytest.mark.parametrize("config", SHIPPED)
def test_shipped_configs_never_answer_413(config: str, shipped: dict[str, ShippedEnvoy],
                                          upstream: RecordingUpstream) -> None:
    """Through each shipped config's public listener: 500 KiB held, then 4 MiB in one write (Envoy
    answered it with 413 when the listener's own limit was raised to 4 MiB instead), and 4 MiB in a
    single write: 200, byte-identical, oversize."""
    gw = shipped[config]
    body = mcp_body(500 * KIB + 4 * MIB)
    got = h1(gw.listen, gw.counters, upstream, body, first=500 * KIB)
    assert got.status == 200 and got.arrived == body, got
    assert got.deltas.get("oversize", 0) >= 1, got
    body = mcp_body(4 * MIB)
    got = h1(gw.listen, gw.counters, upstream, body)
    assert got.status == 200 and got.arrived == body, got
