#!/usr/bin/env python3
"""Writes the hand-made seed corpus under fuzz/corpus/<target>/.

The seeds are small, readable starting points (W3C example values, MCP request bodies, config
samples); libFuzzer grows its own corpus from them in a scratch folder that is never committed.
Run again after editing; it rewrites the folders from scratch.
"""

import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "corpus"

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TP_SDK = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"
TP_FUTURE = "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-will-be-like"

# 20 members: two of 200 characters (cut first), then short ones from the right until 512.
LONG_TRACESTATE = ",".join(
    [f"big{i}=" + "b" * 195 for i in range(2)] + [f"v{i:02}=" + "s" * 40 for i in range(18)]
)

TRACEPARENTS = [
    TP,
    TP_SDK,
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    TP_FUTURE,
    "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-09-",
    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "00-00000000000000000000000000000000-b7ad6b7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
    "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nx-evil: 1",
    # A later version of exactly 55 bytes, and one whose suffix is not visible ASCII.
    "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "02-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-a b",
    " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "",
]

TRACESTATES = [
    "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    "congo=t61rcWkgMzE",
    "foo=1 \t , \t bar=2",
    "tenant@system=v, 0t@s=x",
    "a=1,,b=2,",
    "foo= x",
    "foo=1,foo=2",
    "FOO=1",
    ",".join(f"k{i:02}={i}" for i in range(1, 33)),
    ",".join(f"k{i:02}={i}" for i in range(1, 34)),
    "foo=1\r\nx-evil: 1",
    " \t ",
    # Longer than the 512 bytes the filter lifts, with members over 128 characters.
    LONG_TRACESTATE,
]

BAGGAGES = [
    "userId=alice,serverNode=DF%2028,isProduction=false",
    "key1=value1;property1;property2=p2, key2=v2",
    " a = 1 ; p1 = x ;p2 , b\t=\t2 ",
    "k=%e2%9C%93",
    "k=100%",
    "a=1,,b=2",
    "k=v\r\nx-evil: 1",
    "!#$%&'*+-.^_`|~09AZaz=1",
    "k=" + "v" * 8190,
    ",".join(f"k{i:03}=v" for i in range(180)),
]

CONFIGS = [
    "",
    "{}",
    '{"precedence":"header","baggage":"merge","max_body_bytes":4096,"span_headers":true,"role":"upstream"}',
    '{"precedence":"meta","baggage":"drop"}',
    '{"baggage":"header","max_body_bytes":67108864}',
    '{"max_body_bytes":67108865}',
    '{"max_body_bytes":0}',
    '{"max_body_bytes":1.5}',
    '{"precedance":"meta"}',
    '{"_rules_":[{"x":1}],"_match_route_":["a"],"role":"gateway"}',
    '{"span_headers":"yes"}',
    '[]',
    '{"baggage":"meta","baggage":"keep"}',
    '{"span_metadata":true,"header_mismatch":"count"}',
    '{"header_mismatch":"ignore"}',
    '{"span_metadata":1}',
    '{"export":{"cluster":"otel","authority":"127.0.0.1:4318","timeout_ms":60000,"batch_size":1},"client_span":true}',
    '{"export":{"address":"otel:4318","metrics_path":null,"resource_attributes":{"env":"prod"}},"root_sampling_ratio":0.25,"inject_meta":true,"server_spans":"forward_and_strip"}',
    '{"export":{"cluster":"a","address":"b"}}',
    '{"export":{"path":"v1/traces","cluster":"otel"}}',
    '{"export":{"cluster":"otel"},"role":"upstream"}',
    '{"client_span":true}',
    '{"export":{"cluster":"otel","queue_size":0}}',
    '{"export":{"cluster":"otel"},"root_sampling_ratio":1.5}',
]


def tools_call(meta, name="get_weather", request_id=7, method="tools/call"):
    params = {"name": name, "arguments": {"city": "Paris"}}
    if meta is not None:
        params["_meta"] = meta
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params},
        separators=(",", ":"),
    )


TP_OTHER = "00-11111111111111111111111111111111-2222222222222222-01"

# A batch whose messages carry two different contexts, the first one twice plainly and once
# escaped: the upstream role rewrites the first context's three copies and keeps the other.
TWO_CONTEXTS = (
    "["
    + tools_call({"traceparent": TP_SDK, "tracestate": "a=1"}, request_id=1)
    + ","
    + tools_call({"traceparent": TP_OTHER, "baggage": "k=other"}, request_id=2)
    + ","
    + tools_call({"traceparent": TP_SDK}, request_id=3)
    + ","
    + '{"jsonrpc":"2.0","id":4,"method":"ping","params":{"_meta":{"traceparent":"\\u0030'
    + TP_SDK[1:]
    + '"}}}'
    + "]"
)


BODIES = [
    tools_call({"traceparent": TP_SDK, "tracestate": "rojo=00f067aa0ba902b7", "baggage": "k=v"}),
    tools_call({"traceparent": TP, "progressToken": 3}),
    tools_call(None),
    tools_call({"traceparent": 5, "tracestate": None, "baggage": ["x"]}),
    tools_call({"traceparent": TP.upper()}),
    '{"jsonrpc":"2.0","id":"r1","method":"resources/read","params":{"uri":"file:///a b",'
    '"_meta":{"traceparent":"\\u0030' + TP[1:] + '"}}}',
    '{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"greet","_meta":"x"}}',
    '[{"jsonrpc":"2.0","id":1,"method":"tools/list"},'
    '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t","_meta":{"traceparent":"'
    + TP + '"}}}]',
    '{"jsonrpc":"2.0","method":"notifications/initialized"}',
    '{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no"}}',
    '{"jsonrpc":"2.0","id":3,"result":{"content":[],"isError":true}}',
    '{"params":{"_meta":{"traceparent":"x"}},"params":{"name":"\\ud83d\\ude00"}}',
    '{"a":[1,2,{"b":null}],"c":"\\u00e9\\n","d":-0.5e-3,"e":1e400}',
    '{"params":{"arguments":{"_meta":{"traceparent":"' + TP + '"}}}}',
    " \n[]\t",
    '"just a string"',
    '{"id":1,"method":"tools/call","params":{"name":"a\\r\\nx-evil: 1"}}',
    "[" * 40 + "]" * 40,
    TWO_CONTEXTS,
    tools_call({"traceparent": TP}, method="my/custom"),
    tools_call({"traceparent": TP}, name="a\u0000b\u001b[31m\u007f\u0085c"),
    '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":'
    '{"io.modelcontextprotocol/protocolVersion":"2026-07-28","traceparent":"' + TP_FUTURE + '"}}}',
]


def plan_input(config_bits, present, headers, upstream, body):
    """Packs one request_plan input (see RequestInput in fuzz/src/lib.rs): seven header values
    (traceparent, tracestate, baggage, mcp-session-id, mcp-protocol-version, mcp-method,
    mcp-name), the upstream traceparent and the body."""
    headers = list(headers) + [""] * (7 - len(headers))
    fields = [h.encode() for h in headers] + [upstream.encode(), body.encode()]
    return bytes([config_bits, present]) + b"\xff".join(fields)


# Presence bits of plan_input's headers.
TRACEPARENT, TRACESTATE, BAGGAGE, SESSION, PROTOCOL, METHOD, NAME = (1 << i for i in range(7))

# Configuration bits.
PRECEDENCE_HEADER = 1
MERGE, HEADER_BAGGAGE, DROP = 1 << 1, 2 << 1, 3 << 1
SPAN_HEADERS = 8


def plan_inputs():
    full_meta = BODIES[0]
    batch = BODIES[7]
    nothing = ["", "", "", "", ""]
    long_state = tools_call({"traceparent": TP, "tracestate": LONG_TRACESTATE})
    future = tools_call({"traceparent": TP_FUTURE, "tracestate": "f=1", "baggage": "k=v"})
    future_55 = tools_call({"traceparent": "01" + TP[2:]})
    empty_name = tools_call({"traceparent": TP}, name="")
    uri = (
        '{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a b",'
        '"_meta":{"traceparent":"' + TP + '","baggage":"k=v"}}}'
    )
    return [
        plan_input(0, 0, nothing, "", full_meta),
        plan_input(0, TRACEPARENT | TRACESTATE | BAGGAGE | SESSION | PROTOCOL,
                   [TP, "congo=t61rcWkgMzE", "a=1", "sess-1", "2025-06-18"], "", full_meta),
        plan_input(PRECEDENCE_HEADER, TRACEPARENT | TRACESTATE | BAGGAGE,
                   [TP, "congo=1", "h=2"], "", full_meta),
        plan_input(MERGE, BAGGAGE, ["", "", "a=1,k=2"], "", full_meta),
        plan_input(HEADER_BAGGAGE | PRECEDENCE_HEADER, BAGGAGE, ["", "", "h=1"], "", full_meta),
        plan_input(DROP | PRECEDENCE_HEADER, 0, nothing, "", full_meta),
        plan_input(SPAN_HEADERS, SESSION | PROTOCOL, ["", "", "", "s", "2025-06-18"], TP, batch),
        plan_input(SPAN_HEADERS | MERGE, TRACESTATE | BAGGAGE, ["", "x=1", "bad baggage"], "", BODIES[3]),
        plan_input(0, 0, nothing, TP_FUTURE, BODIES[5]),
        plan_input(SPAN_HEADERS, 0, nothing, "", BODIES[16]),
        plan_input(0, 0, nothing, "", BODIES[12]),
        # The rules of the bounded digest and the version-00 lift.
        plan_input(0, TRACESTATE, ["", "old=1"], "", long_state),
        plan_input(MERGE, BAGGAGE, ["", "", "h=1;p, k=header"], "", future),
        plan_input(0, 0, nothing, "", future_55),
        plan_input(PRECEDENCE_HEADER, TRACEPARENT, [TP_OTHER], "", TWO_CONTEXTS),
        plan_input(0, TRACESTATE, ["", "h=1"], "", TWO_CONTEXTS),
        plan_input(0, 0, nothing, TP_OTHER, TWO_CONTEXTS),
        # `precedence: header` keeps a later-version header in its version-00 form, and lifts
        # `_meta` when there is no header, whatever becomes of the baggage.
        plan_input(PRECEDENCE_HEADER, TRACEPARENT | TRACESTATE, [TP_FUTURE, "h=1"], "", full_meta),
        plan_input(PRECEDENCE_HEADER | HEADER_BAGGAGE, TRACEPARENT | BAGGAGE, [TP_FUTURE, "", "h=1"], "", full_meta),
        plan_input(PRECEDENCE_HEADER | HEADER_BAGGAGE, BAGGAGE, ["", "", "h=1"], "", full_meta),
        # A lifted context without a (valid) tracestate of its own removes the header's.
        plan_input(0, TRACEPARENT | TRACESTATE, [TP_OTHER, "h=1"], "", BODIES[1]),
        plan_input(0, TRACESTATE, ["", "h=1"], "", tools_call({"traceparent": TP, "tracestate": "BAD KEY=1"})),
        # `baggage: header` ignores an invalid header; `drop` counts as dropped.
        plan_input(HEADER_BAGGAGE, BAGGAGE, ["", "", "not baggage"], "", full_meta),
        plan_input(DROP, BAGGAGE, ["", "", "h=1"], "", tools_call({"baggage": "k=v"})),
        # Span values: methods outside MCP, control characters, an empty tool name, the
        # protocol version from `_meta`.
        plan_input(SPAN_HEADERS, SESSION, ["", "", "", "s\u001b1"], "", BODIES[19]),
        plan_input(SPAN_HEADERS, PROTOCOL, ["", "", "", "", "2025-06-18\t"], "", BODIES[20]),
        plan_input(SPAN_HEADERS, 0, nothing, "", BODIES[21]),
        plan_input(SPAN_HEADERS, 0, nothing, "", empty_name),
        # SEP-2243: Mcp-Method / Mcp-Name agreeing, contradicting, base64, undecodable.
        plan_input(0, METHOD | NAME, nothing + ["tools/call", "get_weather"], "", full_meta),
        plan_input(0, METHOD, nothing + ["tools/list"], "", full_meta),
        plan_input(0, NAME, nothing + ["", "=?base64?Z2V0X3dlYXRoZXI=?="], "", full_meta),
        plan_input(0, NAME, nothing + ["", "=?base64?Z2V0X3dlYXRoZXJ=?="], "", full_meta),
        plan_input(0, METHOD | NAME, nothing + ["resources/read", "file:///a b"], "", uri),
        plan_input(0, METHOD | NAME, nothing + ["tools/call", "t"], "", TWO_CONTEXTS),
        plan_input(0, METHOD, nothing + ["tools/call"], "", BODIES[9]),
    ]


def write(target, items):
    folder = ROOT / target
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for index, item in enumerate(items):
        data = item if isinstance(item, bytes) else item.encode()
        (folder / f"seed-{index:02}").write_bytes(data)


def main():
    write("traceparent", TRACEPARENTS)
    write("tracestate", TRACESTATES)
    # A 0xFF byte splits a baggage input in two, which the target also merges.
    merges = [b"k=v,a=1\xffa=2,h=3", b"\xffx=1", b" \xff"]
    # The header's first new member does not fit: the union stops there (a prefix), even
    # though a later, smaller one would.
    merges.append(b"w=0123456789\xffbig=" + b"v" * 8180 + b",s=1")
    write("baggage", BAGGAGES + merges)
    write("config", CONFIGS)
    write("scan_body", BODIES)
    write("request_plan", plan_inputs())


if __name__ == "__main__":
    main()
