"""Allocation-targeting bodies through a real Envoy: the filter's wasm memory stays within a small
multiple of the body, and traffic is answered exactly as without the filter.

Each body is built to make a naive implementation allocate per message, per key, per nesting
level or per escape, at exactly 1 MiB (the default `max_body_bytes`) and at 8 MiB (a listener
with `max_body_bytes: 8388608` and a 16 MiB connection buffer):

  requests   a batch [{},{},...], a batch of minimal requests [{"jsonrpc":"2.0","method":"ping"},...],
             an object (`_meta`) of 100 000 keys (at 8 MiB: as many as fit), arrays nested
             [[[...]]] half a body deep, a run of `\\\\` escapes in params.name; each ends with a
             valid `_meta.traceparent`, so lifting it proves the whole body was scanned;
  responses  (the upstream answers them) to a tools/call with an id, on a `span_metadata`
             listener: a JSON batch [{},{},...], one SSE event holding such a batch, one SSE event
             split over one `data:` line per message; the JSON-RPC error answering the request
             comes last, so finding its code (access log: filter state `wasm.error.type`) proves
             the whole response was watched.

Two Envoys, one per size, each with filter listeners and a twin without the filter. Every case
is sent through both; verdicts: same status and answer as the twin, body byte-identical at the
upstream, the expected counters (and lifted context), a normal MCP request right afterwards on the
same listener still lifted, the response outcome found. Then, after at least one 5 s memory tick,
the `wasm_memory_bytes` gauge must have grown by at most 4 x the largest body + 2 MiB per Envoy.

Point MCP_E2E_WASM (and MCP_E2E_WASM_LEGACY) at another build to run these against it
(e2e_lib/wasm_under_test.py).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from e2e_lib.answering_upstream import AnsweringUpstream
from e2e_lib.envoy import ALL_COUNTER_NAMES, EnvoyProcess, ListenerSpec
from e2e_lib.recording_upstream import Recorded
from e2e_lib.values import TP_META, dumps, meta, rpc
from e2e_lib.wasm_under_test import (
    add_access_log,
    is_legacy,
    launch_envoy_under_test,
    plugin_config,
    wait_until_ready,
    wasm_memory_bytes,
    wasm_path,
)

MIB = 1024 * 1024
BIG = 8 * MIB
BIG_BUFFER = 16 * MIB
COUNTERS = ALL_COUNTER_NAMES + ("meta_dropped", "header_mismatch")
LIFTED_ONCE = {name: int(name == "lifted") for name in COUNTERS}  # every case: its context lifted, nothing else
TICK_WAIT = 6.0  # each VM adds its memory growth to the gauge every 5 s
MEMORY_SLACK = 2 * MIB
ERROR_CODE = -32001
RESPONSE_ID = 7
ACCESS_FORMAT = "%REQ(:PATH)% %FILTER_STATE(wasm.mcp.method.name:PLAIN)% %FILTER_STATE(wasm.error.type:PLAIN)%\n"

# ---------------------------------------------------------------------------------- request bodies

TP = TP_META.encode()


def tools_call(pad: int, *, name: bytes = b"t", arguments_extra: bytes = b"", meta_extra: bytes = b"") -> bytes:
    """A tools/call whose `_meta.traceparent` comes last, with `pad` bytes in arguments.pad."""
    return (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"' + name
            + b'","arguments":{"pad":"' + b"p" * pad + b'"' + arguments_extra + b'},"_meta":{'
            + meta_extra + b'"traceparent":"' + TP + b'"}}}')


def exactly(size: int, build: Callable[[int], bytes]) -> bytes:
    """`build(pad)` grown by its padding to exactly `size` bytes."""
    pad = size - len(build(0))
    assert pad >= 0, (size, len(build(0)))
    body = build(pad)
    assert len(body) == size
    return body


def batch_of(element: bytes, size: int) -> bytes:
    """[element,element,...,tools_call] of `size` bytes."""
    count = (size - len(tools_call(0)) - 2) // len(element)
    return exactly(size, lambda pad: b"[" + element * count + tools_call(pad) + b"]")


def many_keys_in_meta(size: int) -> bytes:
    """`_meta` with 100 000 distinct keys (at 8 MiB: as many 6-digit keys as fit), then traceparent."""
    width = 5 if size <= MIB else 6
    keys = 100_000 if size <= MIB else (size - len(tools_call(0))) // len(b'"%0*x":0,' % (width, 0))
    extra = b"".join(b'"%0*x":0,' % (width, i) for i in range(keys))
    return exactly(size, lambda pad: tools_call(pad, meta_extra=extra))


def deep_arrays(size: int) -> bytes:
    """arguments.deep = [[[...]]] nested as deep as fits, then _meta."""
    depth = (size - len(tools_call(0, arguments_extra=b',"deep":'))) // 2
    extra = b',"deep":' + b"[" * depth + b"]" * depth
    return exactly(size, lambda pad: tools_call(pad, arguments_extra=extra))


def escapes_in_name(size: int) -> bytes:
    r"""params.name = \\\\... (one escaped backslash per two bytes), then _meta."""
    run = (size - len(tools_call(0))) // 2
    return exactly(size, lambda pad: tools_call(pad, name=b"\\\\" * run))


REQUEST_SHAPES: dict[str, tuple[Callable[[int], bytes], str]] = {
    # name -> (builder, span name method the request describes: the first message with a method)
    "batch_empty_objects": (lambda size: batch_of(b"{},", size), "tools/call"),
    "batch_pings": (lambda size: batch_of(b'{"jsonrpc":"2.0","method":"ping"},', size), "ping"),
    "meta_keys": (many_keys_in_meta, "tools/call"),
    "deep_arrays": (deep_arrays, "tools/call"),
    "name_escapes": (escapes_in_name, "tools/call"),
}

# --------------------------------------------------------------------------------- response bodies


def error_answer(pad: int) -> bytes:
    """The JSON-RPC error answering the request (id RESPONSE_ID), its message padded."""
    return (b'{"jsonrpc":"2.0","id":%d,"error":{"code":%d,"message":"' % (RESPONSE_ID, ERROR_CODE)
            + b"m" * pad + b'"}}')


def response_batch(size: int) -> bytes:
    """[{},{},...,error_answer] of `size` bytes."""
    count = (size - len(error_answer(0)) - 2) // 3
    return exactly(size, lambda pad: b"[" + b"{}," * count + error_answer(pad) + b"]")


def sse_one_event(size: int) -> bytes:
    head, tail = b"event: message\ndata: ", b"\n\n"
    return head + response_batch(size - len(head) - len(tail)) + tail


def sse_many_lines(size: int) -> bytes:
    """One event whose data is the batch, one `data:` line per element."""
    head, line, tail = b"event: message\ndata: [\n", b"data: {},\n", b"]\n\n"
    count = (size - len(head) - len(tail) - len(b"data: ") - len(error_answer(0))) // len(line)
    return exactly(size, lambda pad: head + line * count + b"data: " + error_answer(pad) + tail)


RESPONSE_SHAPES: dict[str, tuple[Callable[[int], bytes], str]] = {
    "json_batch": (response_batch, "application/json"),
    "sse_batch_event": (sse_one_event, "text/event-stream"),
    "sse_many_data_lines": (sse_many_lines, "text/event-stream"),
}
RESPONSE_REQUEST = dumps(rpc(meta(TP_META), id=RESPONSE_ID, params={"name": "t"}))

# ------------------------------------------------------------------------------------------ envoys


@dataclass(frozen=True)
class Size:
    """One Envoy: bodies of `size` bytes, its filter listeners and the twin without the filter."""

    name: str
    size: int
    request_listeners: tuple[str, ...]
    response_listener: str
    twin: str
    specs: tuple[tuple[str, dict[str, object] | None], ...]
    buffer_limit: int


SIZES = (
    Size("1mib", MIB, ("plain", "span"), "span", "bare",
         (("plain", {}), ("span", {"span_metadata": True}), ("bare", None)), 4 * MIB),
    Size("8mib", BIG, ("big",), "big_span", "bare_big",
         (("big", {"max_body_bytes": BIG}), ("big_span", {"max_body_bytes": BIG, "span_metadata": True}),
          ("bare_big", None)), BIG_BUFFER),
)


@dataclass(frozen=True)
class Case:
    name: str
    size: Size
    listener: str
    kind: str  # "request" | "response"
    shape: str

    def body(self) -> bytes:
        shapes = REQUEST_SHAPES if self.kind == "request" else RESPONSE_SHAPES
        return shapes[self.shape][0](self.size.size)


CASES = [
    *(Case(f"request_{s.name}_{listener}_{shape}", s, listener, "request", shape)
      for s in SIZES for listener in s.request_listeners for shape in REQUEST_SHAPES),
    *(Case(f"response_{s.name}_{shape}", s, s.response_listener, "response", shape)
      for s in SIZES for shape in RESPONSE_SHAPES),
]

# ------------------------------------------------------------------------------------------ sending


@dataclass(frozen=True)
class Leg:
    """One request through one listener: the answer and what reached the upstream."""

    path: str
    status: int | str
    body: bytes
    content_type: str | None
    rec: Recorded | None


@dataclass(frozen=True)
class Run:
    case: Case
    sent: bytes  # the request body
    answer: bytes  # what the upstream answered
    filtered: Leg
    twin: Leg
    deltas: dict[str, int]
    followup_tp: str
    followup: Leg


@dataclass
class Results:
    runs: dict[str, Run]
    envoys: dict[str, EnvoyProcess]
    memory_before: dict[str, int]
    memory_after: dict[str, int]
    access_logs: dict[str, Path]


def send(env: EnvoyProcess, upstream: AnsweringUpstream, listener: str, body: bytes, answer: tuple[bytes, str] | None,
         label: str) -> Leg:
    path = f"/alloc/{label}/{listener}/{uuid.uuid4().hex[:8]}"
    if answer is not None:
        upstream.answer(path, answer[0], answer[1], pieces=16)
    try:
        with httpx.Client(timeout=30.0, verify=False) as client:
            resp = client.post(env.url(listener, path), content=body, headers={"content-type": "application/json"})
        status: int | str = resp.status_code
        content, ctype = resp.content, resp.headers.get("content-type")
    except httpx.HTTPError as e:
        status, content, ctype = f"{type(e).__name__}: {e}", b"", None
    if status == 200:
        return Leg(path, status, content, ctype, upstream.wait_for(path))
    time.sleep(0.2)
    got = upstream.records(path)
    return Leg(path, status, content, ctype, got[0] if got else None)


def settled(env: EnvoyProcess, before: dict[str, int], want: dict[str, int]) -> dict[str, int]:
    """Counter deltas since `before`, polled briefly (the filter may count just after the answer)."""
    deadline = time.monotonic() + 3.0
    while True:
        try:
            now = env.counters(COUNTERS)
        except httpx.HTTPError:
            now = before
        got = {k: now[k] - before[k] for k in COUNTERS}
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def execute(env: EnvoyProcess, upstream: AnsweringUpstream, case: Case) -> Run:
    if case.kind == "request":
        sent, answer = case.body(), None
        answer_body = b'{"jsonrpc":"2.0","id":1,"result":{}}'
    else:
        answer_body = case.body()
        sent, answer = RESPONSE_REQUEST, (answer_body, RESPONSE_SHAPES[case.shape][1])
    before = env.counters(COUNTERS)
    filtered = send(env, upstream, case.listener, sent, answer, case.name)
    deltas = settled(env, before, LIFTED_ONCE)
    followup_tp = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    followup = send(env, upstream, case.listener, dumps(rpc(meta(followup_tp))), None, case.name + "_followup")
    twin = send(env, upstream, case.size.twin, sent, answer, case.name)
    return Run(case, sent, answer_body, filtered, twin, deltas, followup_tp, followup)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Results]:
    if not wasm_path().is_file():
        pytest.fail(f"{wasm_path()} is missing: run `bash scripts/build.sh` first", pytrace=False)
    upstream = AnsweringUpstream().start()
    envoys: dict[str, EnvoyProcess] = {}
    logs: dict[str, Path] = {}
    try:
        for s in SIZES:
            workdir = tmp_path_factory.mktemp(f"envoy_alloc_{s.name}")
            logs[s.name] = workdir / "access.log"

            def patch(bootstrap: dict, s: Size = s, log: Path = logs[s.name]) -> None:
                for listener in {s.response_listener, *s.request_listeners}:
                    add_access_log(bootstrap, listener, log, ACCESS_FORMAT)

            specs = [ListenerSpec(n, None if c is None else plugin_config(c), buffer_limit=s.buffer_limit)
                     for n, c in s.specs]
            envoys[s.name] = launch_envoy_under_test(specs, {"recorder": upstream.port}, workdir, patch,
                                                     wait_ready=False)
        for env in envoys.values():
            wait_until_ready(env)
        memory_before = {name: wasm_memory_bytes(env) for name, env in envoys.items()}
        runs = {}
        for case in CASES:
            runs[case.name] = execute(envoys[case.size.name], upstream, case)
        time.sleep(TICK_WAIT)  # at least one memory tick after the last request of either Envoy
        memory_after = {name: wasm_memory_bytes(env) for name, env in envoys.items()}
        yield Results(runs, envoys, memory_before, memory_after, logs)
    finally:
        for env in envoys.values():
            env.stop()
        upstream.stop()


def access_line(results: Results, run: Run) -> list[str]:
    """The access log fields (path, method, error type) of the case's filtered request."""
    log = results.access_logs[run.case.size.name]
    deadline = time.monotonic() + 3.0
    while True:
        text = log.read_text() if log.exists() else ""
        lines = [line.split(" ") for line in text.splitlines() if line.startswith(run.filtered.path + " ")]
        if lines or time.monotonic() > deadline:
            assert len(lines) == 1, f"{len(lines)} access log lines for {run.filtered.path}"
            return lines[0]
        time.sleep(0.05)


def context(results: Results, run: Run) -> str:
    env = results.envoys[run.case.size.name]
    tail = "\n".join(env.log_text().splitlines()[-8:])
    return f"case {run.case.name} (wasm {wasm_path()}); envoy log tail:\n{tail}"


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def run(request: pytest.FixtureRequest, results: Results) -> Run:
    return results.runs[request.param.name]


# ------------------------------------------------------------------------------------------ verdicts


def test_case_bodies(run: Run) -> None:
    """Premise: every allocation-targeting body has exactly the size it is meant to have."""
    shaped = run.sent if run.case.kind == "request" else run.answer
    assert len(shaped) == run.case.size.size


def test_same_answer_as_without_the_filter(results: Results, run: Run) -> None:
    """Status, answer body and content type equal the twin's, and the upstream got the request
    body byte for byte."""
    f, t = run.filtered, run.twin
    assert t.status == 200, context(results, run)  # the comparison's premise
    assert (f.status, f.content_type) == (t.status, t.content_type), context(results, run)
    assert f.body == t.body == run.answer, (
        f"answer of {len(f.body)} bytes, twin {len(t.body)}, upstream sent {len(run.answer)}; {context(results, run)}")
    assert f.rec is not None and f.rec.body == run.sent, context(results, run)
    assert t.rec is not None and t.rec.body == run.sent


def test_scanned_whole_and_lifted(results: Results, run: Run) -> None:
    """The request was scanned to its end: the traceparent sitting last was lifted, counted once."""
    assert run.filtered.rec is not None, context(results, run)
    assert run.filtered.rec.values("traceparent") == [TP_META], context(results, run)
    assert run.deltas == LIFTED_ONCE, context(results, run)


def test_span_metadata_and_outcome(results: Results, run: Run) -> None:
    """On span_metadata listeners the span describes the request (the method of the first message
    with one) and a response's outcome, the error answering the request last in the body, is
    found; without span_metadata nothing is published."""
    _, method, error_type = access_line(results, run)
    if run.case.kind == "request":
        config = dict(run.case.size.specs)[run.case.listener] or {}
        want = REQUEST_SHAPES[run.case.shape][1] if plugin_config(config).get("span_metadata", is_legacy()) else "-"
        assert (method, error_type) == (want, "-"), context(results, run)
    else:
        assert (method, error_type) == ("tools/call", str(ERROR_CODE)), context(results, run)


def test_worker_keeps_serving(results: Results, run: Run) -> None:
    """A normal MCP request right afterwards on the same listener is still lifted."""
    f = run.followup
    assert f.status == 200 and f.rec is not None, f"follow-up got {f.status!r}; {context(results, run)}"
    assert f.rec.values("traceparent") == [run.followup_tp], context(results, run)


@pytest.mark.parametrize("size", SIZES, ids=[s.name for s in SIZES])
def test_wasm_memory_bounded(results: Results, size: Size) -> None:
    """After every case of this size and a memory tick, the filter's wasm memory grew by at most
    4 x the body + 2 MiB (linear memory never shrinks: this bounds the peak)."""
    before, after = results.memory_before[size.name], results.memory_after[size.name]
    growth = after - before
    bound = 4 * size.size + MEMORY_SLACK
    down = [r.case.name for r in results.runs.values() if r.case.size == size and r.followup.status != 200]
    assert not down, f"the filter stopped serving after {down[0]} (a dead VM no longer updates the gauge)"
    print(f"{size.name}: wasm_memory_bytes {before} -> {after} (+{growth / MIB:.2f} MiB), bound {bound / MIB:.0f} MiB")
    assert before > 0, "the gauge was never set"
    assert growth <= bound, (
        f"wasm memory grew by {growth / MIB:.1f} MiB ({before} -> {after} bytes) over the {size.name} cases, "
        f"bound {bound / MIB:.0f} MiB (wasm {wasm_path()})")
