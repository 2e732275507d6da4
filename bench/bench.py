"""Throughput and latency of the filter against Envoy's own baselines, interleaved in one run.

Variants (one front-Envoy listener each, same upstream, same requests):
  bare          Envoy with only the router
  buffer        Envoy's buffer filter: the floor for any filter that reads the whole body
  floor         bench/floor, the least a proxy-wasm filter that reads the whole body can do: pause,
                copy the body into the VM once, write one header; the floor for any wasm filter
  floor_lift    the same filter plus the host calls a lift makes (the whole header map in one call,
                three header writes, a counter), and none of a lift's own work
  floor_export  floor_lift plus the host calls the own-span mode cannot avoid (clock, random ids,
                three properties, the body written back, response status and chunks, two histogram
                records, a span-sized OTLP POST per span on a 100 ms tick): the floor of any filter
                that is its own tracer
  native_mcp    Envoy's C++ MCP filter, trace context and baggage propagation on
  ours          this filter with its defaults
  ours_all      this filter with every feature: header precedence, baggage merge, span headers,
                plus the upstream-role filter on the cluster rewriting `_meta.traceparent` in the body
  ours_export   the own-span mode: the filter makes SERVER and CLIENT spans, rewrites
                `_meta.traceparent` to them, records the duration metrics and exports spans and
                metrics as OTLP/HTTP JSON to a collector (answered by the upstream Envoy process)

Rounds interleave every (size, variant) cell, so drift on a noisy machine hits all variants alike;
each figure is the median over rounds. Results go to stdout and to bench/results/<date>.md.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

from rig import (REPO_ROOT, Rig, Variant, WrkResult, buffer_filter, floor_filter, machine_facts, mcp_body,
                 native_mcp_filter, run_wrk, upstream_filter, FLOOR_TRACEPARENT, HEADER_TRACEPARENT, META_BAGGAGE,
                 META_TRACEPARENT, REQUEST_HEADERS, SEEN_BAGGAGE, SEEN_TRACEPARENT)
from e2e_lib.envoy import wasm_filter

SIZES = {"1KB": 1_000, "64KB": 64_000, "1MB": 1_000_000}
ALL_FEATURES = {"precedence": "header", "baggage": "merge", "span_metadata": True, "span_headers": True}
OWN_SPAN = {"export": {"cluster": "collector", "authority": "collector"}, "client_span": True}
# Targets for `ours` (the filter with `{}`), as (size, baseline, least ratio of req/s). Checked,
# printed and written to the results file; never asserted: a missed target does not fail the run.
TARGETS = [
    *((size, baseline, 0.95) for size in ("1KB", "64KB", "1MB") for baseline in ("floor", "buffer")),
    *((size, "floor", 0.9, "ours_export") for size in ("1KB", "64KB", "1MB")),
    ("1KB", "native_mcp", 1.2),
    ("64KB", "native_mcp", 3.0),
]
# The ratios reported per size, as (numerator, denominator) variants.
RATIOS = [("floor", "buffer"), ("floor_lift", "floor"), ("ours", "floor_lift"), ("floor_export", "floor"),
          ("ours_export", "floor_export"), *((ours, base) for ours in ("ours", "ours_all", "ours_export")
                                 for base in ("floor", "buffer", "native_mcp"))]


def variants() -> tuple[list[Variant], dict[str, list]]:
    chain = [
        Variant("bare", []),
        Variant("buffer", [buffer_filter()]),
        Variant("floor", [floor_filter()]),
        Variant("floor_lift", [floor_filter("lift")]),
        Variant("floor_export", [floor_filter("export")]),
        Variant("native_mcp", [native_mcp_filter()]),
        Variant("ours", [wasm_filter({})]),
        Variant("ours_all", [wasm_filter(ALL_FEATURES)], cluster="upstream_synced"),
        Variant("ours_export", [wasm_filter(OWN_SPAN)]),
    ]
    return chain, {"upstream_synced": [upstream_filter({"role": "upstream"})]}


def filter_counters(rig: Rig) -> dict[str, int]:
    assert rig.front is not None
    return {name.rsplit(".", 1)[-1]: value for name, value in rig.front.stats("mcp_trace_filter").items()}


# What the upstream must receive from each variant: (traceparent, baggage). Proves that the native
# filter and ours really lift at every size, so the comparison is like for like.
EXPECTED_UPSTREAM = {
    "bare": (HEADER_TRACEPARENT, None),
    "buffer": (HEADER_TRACEPARENT, None),
    "floor": (FLOOR_TRACEPARENT, None),  # its one header write
    "floor_lift": (FLOOR_TRACEPARENT, META_BAGGAGE),  # and the lift's other two
    "floor_export": (FLOOR_TRACEPARENT, META_BAGGAGE),
    "native_mcp": (META_TRACEPARENT, META_BAGGAGE),
    "ours": (META_TRACEPARENT, META_BAGGAGE),
    "ours_all": (HEADER_TRACEPARENT, META_BAGGAGE),  # precedence: header; baggage: merge
    # The gateway's CLIENT span in the _meta trace: same trace id, a span id of its own.
    "ours_export": (lambda tp: tp is not None and tp[3:35] == META_TRACEPARENT[3:35] and tp != META_TRACEPARENT,
                    META_BAGGAGE),
}


def upstream_matches(expected: tuple, seen: tuple) -> bool:
    return all(want(got) if callable(want) else want == got for want, got in zip(expected, seen))


def check_variants_work(rig: Rig, body_dir: Path) -> None:
    """One request per variant and size before measuring: 200, the trace context each variant
    should forward arrived upstream, and our filter's counters moved."""
    before = filter_counters(rig)
    for size_name in SIZES:
        body = (body_dir / f"{size_name}.json").read_bytes()
        for name in rig.variants:
            r = httpx.post(rig.url(name), content=body, headers=REQUEST_HEADERS, timeout=30)
            if r.status_code != 200:
                raise SystemExit(f"{name} answered {r.status_code} for {size_name}: {r.text[:200]}")
            seen = (r.headers.get(SEEN_TRACEPARENT), r.headers.get(SEEN_BAGGAGE))
            if not upstream_matches(EXPECTED_UPSTREAM[name], seen):
                raise SystemExit(f"{name} at {size_name}: upstream got {seen}, expected {EXPECTED_UPSTREAM[name]}")
    after = filter_counters(rig)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    # `ours` lifts everything; `ours_all` keeps the header traceparent but lifts (merges) baggage,
    # and its upstream stage rewrites the body's traceparent to the kept header one.
    # `ours_export` lifts too and rewrites the body's traceparent to its CLIENT span.
    want = {"lifted": 3 * len(SIZES), "body_synced": 2 * len(SIZES)}
    for key, count in want.items():
        if delta.get(key) != count:
            raise SystemExit(f"sanity check: expected {key} +{count}, counters moved {delta}")


def median_result(runs: list[WrkResult]) -> dict[str, float]:
    return {
        "rps": statistics.median(r.rps for r in runs),
        "p50": statistics.median(r.p50_ms for r in runs),
        "p99": statistics.median(r.p99_ms for r in runs),
        "requests": sum(r.requests for r in runs),
        "errors": sum(r.errors + r.non_2xx for r in runs),
    }


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def render(results: dict[str, dict[str, dict[str, float]]], facts: dict[str, str], args: argparse.Namespace,
           counters: dict[str, int]) -> str:
    lines = [
        f"# Benchmark {facts['date']}",
        "",
        f"- machine: {facts['cpu']}, {facts['memory']}, kernel {facts['kernel']}",
        f"- Envoy {facts['envoy']} (`--concurrency 1`, front and upstream), {facts['wrk']}",
        f"- filter: commit {facts['commit']}, wasm {facts['wasm']}; `floor` filter (bench/floor) wasm {facts['floor_wasm']}",
        f"- load: `wrk -t1 -c{args.connections}`, {args.rounds} interleaved rounds x {args.seconds:g} s per cell, "
        "median of the rounds; body = MCP `tools/call` with `_meta` (traceparent, tracestate, baggage)",
        f"- command: `scripts/bench.sh --rounds {args.rounds} --seconds {args.seconds:g}`",
        "",
        "| size | variant | req/s | p50 ms | p99 ms | vs bare | vs buffer | vs floor | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, by_variant in results.items():
        base = {name: by_variant[name]["rps"] for name in ("bare", "buffer", "floor")}
        for name, r in by_variant.items():
            lines.append(f"| {size} | {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
                         + " | ".join(f"{ratio(r['rps'], base[b]):.2f}" for b in ("bare", "buffer", "floor"))
                         + f" | {r['errors']:.0f} |")
    lines += ["", "## Ratios (req/s)", "",
              "`floor / buffer` is the platform's floor: the share of the buffer filter's throughput left to a "
              "wasm filter that only reads the body (V8 and the proxy-wasm round trips, no work of its own). "
              "`floor_lift / floor` is what the host calls of a lift cost on top (header map, three header writes, a "
              "counter); `ours / floor_lift` is what is left to the filter's own work. `floor_export / floor` is "
              "what the host calls of the own-span mode cost (spans and metrics exported, none of the work of "
              "making them); `ours_export / floor_export` is what is left to the filter's own work there.", "",
              "| size | " + " | ".join(f"{a} / {b}" for a, b in RATIOS) + " |",
              "| --- |" + " ---: |" * len(RATIOS)]
    for size, by_variant in results.items():
        lines.append(f"| {size} | "
                     + " | ".join(f"{ratio(by_variant[a]['rps'], by_variant[b]['rps']):.2f}" for a, b in RATIOS)
                     + " |")
    lines += ["", "## Targets (`ours`, the filter with `{}`; `ours_export`, the own-span mode)", ""]
    for size, baseline, least, *variant in TARGETS:
        name = variant[0] if variant else "ours"
        if size not in results:
            lines.append(f"- not run: {name} / {baseline} at {size} >= {least}")
            continue
        value = ratio(results[size][name]["rps"], results[size][baseline]["rps"])
        lines.append(f"- {'met' if value >= least else 'MISSED'}: {name} / {baseline} at {size} >= {least}: {value:.2f}")
    lines += ["", "## Filter counters after the run", "",
              ", ".join(f"{k}={v}" for k, v in sorted(counters.items())), ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per cell and round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--sizes", default=",".join(SIZES), help="subset of " + ",".join(SIZES))
    parser.add_argument("--output", type=Path, default=None, help="results file (default bench/results/<date>.md)")
    args = parser.parse_args()
    sizes = [s for s in args.sizes.split(",") if s]
    unknown = set(sizes) - set(SIZES)
    if unknown:
        parser.error(f"unknown sizes {sorted(unknown)}")

    with tempfile.TemporaryDirectory(prefix="mcp-bench-") as tmp:
        work = Path(tmp)
        for size_name, size in SIZES.items():
            (work / f"{size_name}.json").write_bytes(mcp_body(size))
        chain, upstream_chains = variants()
        with Rig(chain, work, upstream_chains) as rig:
            check_variants_work(rig, work)
            runs: dict[str, dict[str, list[WrkResult]]] = {s: {v: [] for v in rig.variants} for s in sizes}
            for round_no in range(args.rounds):
                for size_name in sizes:
                    order = list(rig.variants)
                    # Rotate the order each round so no variant always runs first (or last).
                    order = order[round_no % len(order):] + order[:round_no % len(order)]
                    for name in order:
                        body = [work / f"{size_name}.json"]
                        run_wrk(rig.url(name), body, 1, args.connections)  # warm connections and caches
                        result = run_wrk(rig.url(name), body, args.seconds, args.connections)
                        runs[size_name][name].append(result)
                        print(f"round {round_no + 1}/{args.rounds} {size_name:>5} {name:<10} "
                              f"{result.rps:9.0f} req/s  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms"
                              f"  errors {result.errors + result.non_2xx}", flush=True)
            results = {s: {v: median_result(r) for v, r in by_v.items()} for s, by_v in runs.items()}
            assert rig.front is not None
            facts = machine_facts()
            facts["envoy"] = rig.front.version()
            facts["date"] = datetime.date.today().isoformat()
            report = render(results, facts, args, filter_counters(rig))
    print()
    print(report)
    output = args.output or REPO_ROOT / "bench" / "results" / f"{facts['date']}.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report)
    print(f"written to {output.relative_to(REPO_ROOT) if output.is_relative_to(REPO_ROOT) else output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
