"""Soak: saturating load through the filter for a long time; errors must stay at 0 and memory flat
and bounded.

The front Envoy runs the filter twice, as a gateway with every feature on and in the upstream role
on the cluster, and wrk rotates a mix of requests over 16 connections:

- ordinary: MCP bodies of 1 KB, 64 KB and 1 MB with `_meta`, one without trace values, one with
  invalid ones, malformed JSON, a JSON batch, a non-MCP JSON object and a body over `max_body_bytes`;
- allocation-targeting, each just under `max_body_bytes` (1 MiB): a batch of empty objects
  `[{},{},...]`, a batch of minimal requests `[{"jsonrpc":"2.0","method":"ping"},...]`, a `_meta`
  with 100 000 keys, arrays nested 500 000 deep, and `arguments` holding a long run of escapes
  (`\\\\` then `\\u00e9`);
- two small requests answered with allocation-targeting responses of about 1 MB: a JSON batch
  `[{},{},...]` and an event stream whose one event has 100 000 `data:` lines.

First a warm-up with the ordinary requests only. Every few seconds it samples Envoy's resident
memory, its heap, and the filter's own `wasm_memory_bytes` gauge (the VMs' linear memory). It fails
on any error, a dead Envoy, memory that grows between the middle and the end of the run, or linear
memory that ends more than WASM_GROWTH_BOUND_MIB above its level after the warm-up.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rig import (META_TRACEPARENT, REPLY_BATCH, REPLY_SSE, REPO_ROOT, Rig, Variant, machine_facts, mcp_body,
                 run_wrk, upstream_filter)
from e2e_lib.envoy import wasm_filter

MAX_BODY_BYTES = 1024 * 1024  # the filter's default; well under the rig's 4 MiB buffer limit
GATEWAY_CONFIG = {"precedence": "header", "baggage": "merge", "span_metadata": True, "span_headers": True, "max_body_bytes": MAX_BODY_BYTES}
# Size of each allocation-targeting body: as large as the filter will scan.
SHAPE_BYTES = 1_000_000
# Allowed growth between the middle and the end of the run: allocator and V8 heap jitter, not a leak.
FLAT_TOLERANCE = 0.05
FLAT_SLACK_KIB = 4096
# Allowed growth of the linear memory of all the filter's VMs together, from the sample after the
# warm-up to the end of the run. Wasm memory never shrinks, so the end sample is the run's peak.
# The warm-up has already sent the largest ordinary body (1 MB), so each VM has grown to what a body
# of the largest scanned size legitimately needs: its copy, the scan's state, a rewritten body. What
# is left is a few more body-sized blocks (a request and a response held at once by the gateway and
# the upstream role) and allocator fragmentation: 16 MiB covers that several times over for the two
# VMs of this rig (one worker, one main thread). A filter whose memory follows the number of
# elements, keys or escapes in a body rather than its size misses it by far: one 1 MB `[{},{},...]`
# grew the linear memory by about 165 MB.
WASM_GROWTH_BOUND_MIB = 16


def _message(meta: dict, id_: int = 3) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "method": "tools/call",
                       "params": {"_meta": meta, "name": "lookup", "arguments": {"q": "weather"}}}).encode()


def ordinary_bodies() -> dict[str, bytes]:
    """The everyday request mix (also the warm-up), named by what the filter should count."""
    return {
        "mcp_1KB": mcp_body(1_000),
        "mcp_64KB": mcp_body(64_000),
        "mcp_1MB": mcp_body(SHAPE_BYTES),
        "no_context": _message({"progressToken": 1}),
        "invalid_context": _message({"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                                     "baggage": "bad key=1"}),
        "malformed": _message({"traceparent": META_TRACEPARENT})[:-3],
        "batch": b"[" + _message({"traceparent": META_TRACEPARENT}) + b"]",
        "not_mcp": b'{"hello": "world", "items": [1, 2, 3]}',
        "oversize": mcp_body(MAX_BODY_BYTES + 50_000),
    }


def _base36(n: int) -> bytes:
    digits = b"0123456789abcdefghijklmnopqrstuvwxyz"
    out = bytearray()
    while True:
        n, d = divmod(n, 36)
        out.append(digits[d])
        if n == 0:
            return bytes(reversed(out))


def allocation_bodies(size: int = SHAPE_BYTES) -> dict[str, bytes]:
    """Bodies of at most `size` bytes whose shape, not their size, would make a careless scanner
    allocate: many small values, many keys, deep nesting, many escapes."""
    empty = b"{}"
    ping = b'{"jsonrpc":"2.0","method":"ping"}'
    # `_meta` is on the path the scanner records; its 100 000 keys come before the traceparent.
    wide_head = b'{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"lookup","arguments":{},"_meta":{'
    wide_tail = b'"traceparent":"' + META_TRACEPARENT.encode() + b'"}}}'
    keys, used = [], len(wide_head) + len(wide_tail)
    for i in range(100_000):
        entry = b'"' + _base36(i) + b'":0,'
        if used + len(entry) > size:
            break
        keys.append(entry)
        used += len(entry)
    escapes_head = (b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"_meta":{"traceparent":"'
                    + META_TRACEPARENT.encode() + b'"},"name":"lookup","arguments":{"text":"')
    escapes_tail = b'"}}}'
    room = size - len(escapes_head) - len(escapes_tail)
    backslashes = room // 2 // 2  # `\\`, 2 bytes each, in the first half
    accents = (room - 2 * backslashes) // 6  # `\u00e9`, 6 bytes each, in the second
    depth = size // 2
    bodies = {
        "empty_objects": b"[" + b",".join([empty] * ((size - 1) // (len(empty) + 1))) + b"]",
        "pings": b"[" + b",".join([ping] * ((size - 1) // (len(ping) + 1))) + b"]",
        "wide_meta": wide_head + b"".join(keys) + wide_tail,
        "deep": b"[" * depth + b"]" * depth,
        "escapes": escapes_head + b"\\\\" * backslashes + b"\\u00e9" * accents + escapes_tail,
    }
    for name, body in bodies.items():
        assert len(body) <= size, (name, len(body))
        if name != "deep":  # too deep for Python's parser; valid by construction
            json.loads(body)
    return bodies


def reply_requests() -> dict[str, tuple[bytes, str]]:
    """Small MCP requests the upstream answers with an allocation-targeting response (rig.py)."""
    return {
        "reply_batch": (_message({"traceparent": META_TRACEPARENT}, 8), REPLY_BATCH),
        "reply_sse": (_message({"traceparent": META_TRACEPARENT}, 9), REPLY_SSE),
    }


@dataclass
class Sample:
    label: str
    at_s: float
    rss_kib: int
    heap_kib: int
    wasm_kib: int


def sample(rig: Rig, started: float, label: str) -> Sample:
    assert rig.front is not None
    stats = rig.front.stats("memory_heap_size")
    wasm = rig.front.stats("wasm_memory_bytes")
    return Sample(
        label=label,
        at_s=time.monotonic() - started,
        rss_kib=rig.front.rss_kib(),
        heap_kib=sum(stats.values()) // 1024,
        wasm_kib=sum(wasm.values()) // 1024,
    )


def is_flat(middle: int, end: int) -> bool:
    return end <= middle * (1 + FLAT_TOLERANCE) + FLAT_SLACK_KIB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=600, help="total load duration (default 10 minutes)")
    parser.add_argument("--segment", type=int, default=10, help="seconds per wrk run between memory samples")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of ordinary requests before the baseline")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--output", type=Path, default=None, help="report file (default bench/soak-<date>.md)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mcp-soak-") as tmp:
        work = Path(tmp)

        def write(name: str, body: bytes) -> Path:
            path = work / f"{name}.json"
            path.write_bytes(body)
            return path

        warmup_files = [write(name, body) for name, body in ordinary_bodies().items()]
        files = warmup_files + [write(name, body) for name, body in allocation_bodies().items()]
        replies = [""] * len(files)
        for name, (body, reply) in reply_requests().items():
            files.append(write(name, body))
            replies.append(reply)
        variant = Variant("soak", [wasm_filter(GATEWAY_CONFIG)], cluster="upstream_synced")
        with Rig([variant], work, {"upstream_synced": [upstream_filter({"role": "upstream"})]}) as rig:
            assert rig.front is not None
            started = time.monotonic()
            time.sleep(6)  # one memory tick of the filter (every 5 s), so the gauge has its first value
            samples = [sample(rig, started, "before load")]
            warm = run_wrk(rig.url("soak"), warmup_files, args.warmup, args.connections)
            requests, errors = warm.requests, warm.errors + warm.non_2xx
            time.sleep(6)  # a tick after the warm-up, so the gauge includes all of it
            samples.append(sample(rig, started, "after warm-up"))
            print(f"warm-up {warm.rps:8.0f} req/s errors {warm.errors + warm.non_2xx}  wasm {samples[-1].wasm_kib} KiB",
                  flush=True)
            segments = max(1, args.seconds // args.segment)
            for index in range(segments):
                result = run_wrk(rig.url("soak"), files, args.segment, args.connections, replies=replies)
                requests += result.requests
                errors += result.errors + result.non_2xx
                samples.append(sample(rig, started, f"segment {index + 1}"))
                s = samples[-1]
                print(f"{index + 1}/{segments} {result.rps:8.0f} req/s errors {result.errors + result.non_2xx}"
                      f"  rss {s.rss_kib} KiB heap {s.heap_kib} KiB wasm {s.wasm_kib} KiB", flush=True)
            time.sleep(6)
            samples.append(sample(rig, started, "end"))
            counters = {k.rsplit(".", 1)[-1]: v for k, v in rig.front.stats("mcp_trace_filter").items()}
            version = rig.front.version()
            alive = rig.front.proc is not None and rig.front.proc.poll() is None

    facts = machine_facts()
    date = datetime.date.today().isoformat()
    # samples: before load, after warm-up, one per segment, end. "start" is the first segment's.
    before, warm_s, start, end = samples[0], samples[1], samples[2], samples[-1]
    middle = samples[2 + (len(samples) - 3) // 2]
    flat = {
        "rss": is_flat(middle.rss_kib, end.rss_kib),
        "heap": is_flat(middle.heap_kib, end.heap_kib),
        "wasm": is_flat(middle.wasm_kib, end.wasm_kib),
    }
    growth_kib = end.wasm_kib - warm_s.wasm_kib
    bounded = growth_kib <= WASM_GROWTH_BOUND_MIB * 1024
    failures = []
    if errors:
        failures.append(f"{errors} errors (socket or non-2xx)")
    if not alive:
        failures.append("the front Envoy died")
    failures += [f"{k} memory grew between the middle and the end ({middle_v} -> {end_v} KiB)"
                 for k, middle_v, end_v in (("rss", middle.rss_kib, end.rss_kib), ("heap", middle.heap_kib, end.heap_kib),
                                            ("wasm", middle.wasm_kib, end.wasm_kib)) if not flat[k]]
    if not bounded:
        failures.append(
            f"the filter's wasm linear memory (all VMs) grew by {growth_kib / 1024:.1f} MiB after the warm-up "
            f"({warm_s.wasm_kib / 1024:.1f} -> {end.wasm_kib / 1024:.1f} MiB), over the bound of "
            f"{WASM_GROWTH_BOUND_MIB} MiB: some request or response shape makes it allocate far more than "
            f"the {MAX_BODY_BYTES // 1024} KiB body it holds")
    ok = not failures
    kinds = len(files)
    lines = [
        f"# Soak {date}",
        "",
        f"- machine: {facts['cpu']}, {facts['memory']}; Envoy {version}; filter commit {facts['commit']}, wasm {facts['wasm']}",
        f"- command: `scripts/soak.sh --seconds {args.seconds}` (wrk -t1 -c{args.connections}, {args.warmup} s warm-up "
        f"with {len(warmup_files)} ordinary request kinds, then {kinds} kinds in rotation, gateway + upstream-role "
        f"filter, max_body_bytes {MAX_BODY_BYTES})",
        f"- requests: {requests}, errors (socket + non-2xx): {errors}, Envoy still running: {alive}",
        "",
        "| when | seconds | Envoy RSS KiB | Envoy heap KiB | filter wasm memory KiB |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, s in (("before load", before), ("after warm-up", warm_s), ("start", start), ("middle", middle),
                     ("end", end)):
        lines.append(f"| {label} | {s.at_s:.0f} | {s.rss_kib} | {s.heap_kib} | {s.wasm_kib} |")
    lines += [
        "",
        "Flat means end <= middle x 1.05 + 4 MiB: "
        + ", ".join(f"{k} {'flat' if v else 'GREW'}" for k, v in flat.items()),
        "",
        f"Bounded means wasm memory at the end <= after warm-up + {WASM_GROWTH_BOUND_MIB} MiB: "
        f"{'bounded' if bounded else 'OVER'} (+{growth_kib} KiB)",
        "",
        "Filter counters: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())),
        "",
        f"Verdict: {'PASS' if ok else 'FAIL'}",
        "",
    ]
    lines += [f"- FAIL: {text}" for text in failures]
    if failures:
        lines.append("")
    report = "\n".join(lines)
    print()
    print(report)
    output = args.output or REPO_ROOT / "bench" / f"soak-{date}.md"
    output.write_text(report)
    print(f"written to {output}")
    if failures:
        print("soak FAILED:\n" + "\n".join(f"  - {text}" for text in failures), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
