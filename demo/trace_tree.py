"""Print one trace as a tree, from the spans demo/otlp_receiver.py stored.

    python demo/trace_tree.py --spans .run/demo/spans.jsonl --trace-id <32 hex> [--timeout 15]

Waits until the trace holds a span of the client service whose child is a gateway span whose child
is a server span (client -> gateway -> server), then prints every span of the trace, one line each,
indented by parentage. Exit status 1 if that three-level chain did not arrive before the timeout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

KEY_ATTRS = ("mcp.method.name", "gen_ai.tool.name", "jsonrpc.request.id", "error.type")
STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
KIND = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def load(path: Path, trace_id: str) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    spans = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            s = json.loads(line)
        except ValueError:
            continue  # a line still being written
        if s.get("trace_id") == trace_id:
            spans.append(s)
    return spans


def chain(spans: list[dict[str, Any]], services: tuple[str, str, str]) -> list[dict[str, Any]] | None:
    """(client span, gateway span, server span), each the parent of the next, or None. The gateway
    may be more than one span (the own-span mode's SERVER span and its CLIENT child): the client
    span is the parent of the outermost one."""
    by_id = {s["span_id"]: s for s in spans}
    client_svc, gateway_svc, server_svc = services
    for server in spans:
        if server["service"] != server_svc:
            continue
        gateway = by_id.get(server["parent_span_id"])
        if not gateway or gateway["service"] != gateway_svc:
            continue
        outermost = gateway
        while (parent := by_id.get(outermost["parent_span_id"])) and parent["service"] == gateway_svc:
            outermost = parent
        client = by_id.get(outermost["parent_span_id"])
        if client and client["service"] == client_svc:
            return [client, outermost, server]
    return None


def line(span: dict[str, Any], depth: int) -> str:
    ms = (span["end_ns"] - span["start_ns"]) / 1e6
    attrs = span["attributes"]
    parts = [f"{k}={attrs[k]}" for k in KEY_ATTRS if attrs.get(k) not in (None, "")]
    status = STATUS.get(span["status_code"], str(span["status_code"]))
    if span.get("status_message"):
        status += f" ({span['status_message']})"
    parts.append(f"status={status}")
    head = "   " * depth + ("└─ " if depth else "") + f"[{span['service']}] {span['name']}"
    return f"{head:<62} {ms:8.2f} ms  {KIND.get(span['kind'], '?'):<8} " + " ".join(parts)


def print_tree(spans: list[dict[str, Any]]) -> None:
    ids = {s["span_id"] for s in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    roots = []
    for s in spans:
        if s["parent_span_id"] and s["parent_span_id"] in ids:
            children.setdefault(s["parent_span_id"], []).append(s)
        else:
            roots.append(s)

    def walk(span: dict[str, Any], depth: int) -> None:
        print(line(span, depth))
        for c in sorted(children.get(span["span_id"], []), key=lambda x: x["start_ns"]):
            walk(c, depth + 1)

    for r in sorted(roots, key=lambda x: x["start_ns"]):
        if r["parent_span_id"]:
            print(f"(parent {r['parent_span_id']} not received)")
        walk(r, 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", required=True, type=Path, help="JSON-lines file from otlp_receiver.py")
    parser.add_argument("--trace-id", required=True)
    parser.add_argument("--timeout", type=float, default=15.0)
    parser.add_argument("--client-service", default="agent")
    parser.add_argument("--gateway-service", default="mcp-gateway")
    parser.add_argument("--server-service", default="weather-mcp-server")
    args = parser.parse_args()
    trace_id = args.trace_id.lower()
    services = (args.client_service, args.gateway_service, args.server_service)

    deadline = time.monotonic() + args.timeout
    found = None
    while time.monotonic() < deadline:
        found = chain(load(args.spans, trace_id), services)
        if found:
            break
        time.sleep(0.1)
    time.sleep(0.3)  # let any straggler of the same export batch land
    spans = load(args.spans, trace_id)
    found = chain(spans, services)

    print(f"trace {trace_id}  ({len(spans)} spans)")
    print_tree(spans)
    print()
    if found:
        print("OK: " + " -> ".join(f"{s['service']} ({s['name']})" for s in found))
        return 0
    print(f"FAIL: no {' -> '.join(services)} parent chain in trace {trace_id} after {args.timeout:g} s "
          f"(services seen: {sorted({s['service'] for s in spans}) or 'none'})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
