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
]


def tools_call(meta, name="get_weather", request_id=7):
    params = {"name": name, "arguments": {"city": "Paris"}}
    if meta is not None:
        params["_meta"] = meta
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params},
        separators=(",", ":"),
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
]


def plan_input(config_bits, present, headers, upstream, body):
    """Packs one request_plan input (see RequestInput in fuzz/src/lib.rs)."""
    fields = [h.encode() for h in headers] + [upstream.encode(), body.encode()]
    return bytes([config_bits, present]) + b"\xff".join(fields)


def plan_inputs():
    full_meta = BODIES[0]
    batch = BODIES[7]
    return [
        plan_input(0, 0, ["", "", "", "", ""], "", full_meta),
        plan_input(0, 0b11111, [TP, "congo=t61rcWkgMzE", "a=1", "sess-1", "2025-06-18"], "", full_meta),
        plan_input(1, 0b00111, [TP, "congo=1", "h=2"], "", full_meta),
        plan_input(0b011, 0b00100, ["", "", "a=1,k=2"], "", full_meta),
        plan_input(0b101, 0b00100, ["", "", "h=1"], "", full_meta),
        plan_input(0b111, 0, ["", "", "", "", ""], "", full_meta),
        plan_input(0b1000, 0b11000, ["", "", "", "s", "2025-06-18"], TP, batch),
        plan_input(0b1010, 0b00110, ["", "x=1", "bad baggage"], "", BODIES[3]),
        plan_input(0, 0, ["", "", "", "", ""], TP_FUTURE, BODIES[5]),
        plan_input(0b1000, 0, ["", "", "", "", ""], "", BODIES[16]),
        plan_input(0, 0, ["", "", "", "", ""], "", BODIES[12]),
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
    write("baggage", BAGGAGES + merges)
    write("config", CONFIGS)
    write("scan_body", BODIES)
    write("request_plan", plan_inputs())


if __name__ == "__main__":
    main()
