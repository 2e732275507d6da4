"""Soak: saturating load through the filter for a long time; errors must stay at 0 and memory flat.

The front Envoy runs the filter twice, as a gateway with every feature on and in the upstream role
on the cluster, and wrk rotates a mix of requests over 16 connections: MCP bodies of 1 KB and 64 KB
with `_meta`, one without trace values, one with invalid ones, malformed JSON, a JSON batch, a
non-MCP JSON object and a body over `max_body_bytes`. Every few seconds it samples Envoy's resident
memory, its heap, and the filter's own `wasm_memory_bytes` gauge (the VMs' linear memory); the
report compares the start, middle and end of the run.
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

from rig import META_TRACEPARENT, REPO_ROOT, Rig, Variant, machine_facts, mcp_body, run_wrk, upstream_filter
from e2e_lib.envoy import wasm_filter

GATEWAY_CONFIG = {"precedence": "header", "baggage": "merge", "span_headers": True, "max_body_bytes": 262144}
# Allowed growth between the middle and the end of the run: allocator and V8 heap jitter, not a leak.
FLAT_TOLERANCE = 0.05
FLAT_SLACK_KIB = 4096


def mixed_bodies() -> dict[str, bytes]:
    """The request mix, named by what the filter should count."""
    def message(meta: dict) -> bytes:
        return json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                           "params": {"_meta": meta, "name": "lookup", "arguments": {"q": "weather"}}}).encode()

    return {
        "mcp_1KB": mcp_body(1_000),
        "mcp_64KB": mcp_body(64_000),
        "no_context": message({"progressToken": 1}),
        "invalid_context": message({"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                                    "baggage": "bad key=1"}),
        "malformed": message({"traceparent": META_TRACEPARENT})[:-3],
        "batch": b"[" + message({"traceparent": META_TRACEPARENT}) + b"]",
        "not_mcp": b'{"hello": "world", "items": [1, 2, 3]}',
        "oversize": mcp_body(300_000),
    }


@dataclass
class Sample:
    at_s: float
    rss_kib: int
    heap_kib: int
    wasm_kib: int


def sample(rig: Rig, started: float) -> Sample:
    assert rig.front is not None
    stats = rig.front.stats("memory_heap_size")
    wasm = rig.front.stats("wasm_memory_bytes")
    return Sample(
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
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--output", type=Path, default=None, help="report file (default bench/soak-<date>.md)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mcp-soak-") as tmp:
        work = Path(tmp)
        files = []
        for name, body in mixed_bodies().items():
            path = work / f"{name}.json"
            path.write_bytes(body)
            files.append(path)
        variant = Variant("soak", [wasm_filter(GATEWAY_CONFIG)], cluster="upstream_synced")
        with Rig([variant], work, {"upstream_synced": [upstream_filter({"role": "upstream"})]}) as rig:
            assert rig.front is not None
            started = time.monotonic()
            time.sleep(6)  # one memory tick of the filter, so the gauge has its first value
            samples = [sample(rig, started)]
            requests = errors = 0
            segments = max(1, args.seconds // args.segment)
            for index in range(segments):
                result = run_wrk(rig.url("soak"), files, args.segment, args.connections)
                requests += result.requests
                errors += result.errors + result.non_2xx
                samples.append(sample(rig, started))
                s = samples[-1]
                print(f"{index + 1}/{segments} {result.rps:8.0f} req/s errors {result.errors + result.non_2xx}"
                      f"  rss {s.rss_kib} KiB heap {s.heap_kib} KiB wasm {s.wasm_kib} KiB", flush=True)
            time.sleep(6)
            samples.append(sample(rig, started))
            counters = {k.rsplit(".", 1)[-1]: v for k, v in rig.front.stats("mcp_trace_filter").items()}
            version = rig.front.version()
            alive = rig.front.proc is not None and rig.front.proc.poll() is None

    facts = machine_facts()
    date = datetime.date.today().isoformat()
    # The first sample is before any load; "start" is the first sample under load.
    start, middle, end = samples[1], samples[len(samples) // 2], samples[-1]
    flat = {
        "rss": is_flat(middle.rss_kib, end.rss_kib),
        "heap": is_flat(middle.heap_kib, end.heap_kib),
        "wasm": is_flat(middle.wasm_kib, end.wasm_kib),
    }
    ok = errors == 0 and alive and all(flat.values())
    lines = [
        f"# Soak {date}",
        "",
        f"- machine: {facts['cpu']}, {facts['memory']}; Envoy {version}; filter commit {facts['commit']}, wasm {facts['wasm']}",
        f"- command: `scripts/soak.sh --seconds {args.seconds}` (wrk -t1 -c{args.connections}, "
        f"{len(files)} request kinds in rotation, gateway + upstream-role filter)",
        f"- requests: {requests}, errors (socket + non-2xx): {errors}, Envoy still running: {alive}",
        "",
        "| when | seconds | Envoy RSS KiB | Envoy heap KiB | filter wasm memory KiB |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| before load | {samples[0].at_s:.0f} | {samples[0].rss_kib} | {samples[0].heap_kib} | {samples[0].wasm_kib} |",
    ]
    for label, s in (("start", start), ("middle", middle), ("end", end)):
        lines.append(f"| {label} | {s.at_s:.0f} | {s.rss_kib} | {s.heap_kib} | {s.wasm_kib} |")
    lines += [
        "",
        "Flat means end <= middle x 1.05 + 4 MiB: "
        + ", ".join(f"{k} {'flat' if v else 'GREW'}" for k, v in flat.items()),
        "",
        "Filter counters: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())),
        "",
        f"Verdict: {'PASS' if ok else 'FAIL'}",
        "",
    ]
    report = "\n".join(lines)
    print()
    print(report)
    output = args.output or REPO_ROOT / "bench" / f"soak-{date}.md"
    output.write_text(report)
    print(f"written to {output}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
