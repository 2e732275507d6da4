"""Only `$.params._meta.*` counts. Trace-looking data anywhere else in the body is the caller's data
(tool arguments, echoed payloads) and must never become a header."""

from __future__ import annotations

import json

import pytest
from e2e_lib.gateway import Gateway
from e2e_lib.values import BG_META, TP_HDR, TP_META, TS_HDR, TS_META, dumps

CTX = {"traceparent": TP_META, "tracestate": TS_META, "baggage": BG_META}
# The filter did scan the body and found no usable params._meta context.
SCANNED_NOTHING = [{"no_context": 1}, {"invalid_context": 1}]

NOT_PARAMS_META = {
    "in_arguments": {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                     "params": {"name": "t", "arguments": {"_meta": CTX}}},
    "in_arguments_params_meta": {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                 "params": {"name": "t", "arguments": {"params": {"_meta": CTX}}}},
    "top_level_meta": {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "_meta": CTX, "params": {}},
    "top_level_keys": {"jsonrpc": "2.0", "id": 1, "method": "ping", **CTX},
    "params_keys_without_meta": {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": CTX},
    "nested_deeper": {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"nested": {"_meta": CTX}}},
    "meta_inside_meta": {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                         "params": {"_meta": {"inner": CTX}}},
    "inside_a_string": {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                        "params": {"name": "t", "arguments": {"text": json.dumps({"params": {"_meta": CTX}})}}},
    "meta_is_a_string": {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                         "params": {"_meta": json.dumps(CTX)}},
    "params_is_array": {"jsonrpc": "2.0", "id": 1, "method": "x", "params": [{"_meta": CTX}]},
    "result_meta": {"jsonrpc": "2.0", "id": 1, "result": {"_meta": CTX}},
    "key_is_similar": {"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"_meta ": CTX, "meta": CTX, "_Meta": CTX}},
    "batch_meta_in_arguments": [{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                 "params": {"arguments": {"_meta": CTX}}}],
    "nested_batch": [[{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"_meta": CTX}}]],
}


@pytest.mark.parametrize("case", sorted(NOT_PARAMS_META))
def test_meta_outside_params_meta_not_lifted(gw: Gateway, case: str) -> None:
    """No headers arrive, so nothing may appear upstream."""
    ex = gw.send("default", dumps(NOT_PARAMS_META[case]), counts=SCANNED_NOTHING)
    assert ex.trace_headers() == {"traceparent": None, "tracestate": None, "baggage": None}


@pytest.mark.parametrize("case", ["in_arguments", "inside_a_string", "nested_deeper", "top_level_meta"])
def test_meta_outside_params_meta_keeps_header_context(gw: Gateway, case: str) -> None:
    """With a header context present, the header context passes unchanged."""
    ex = gw.send("default", dumps(NOT_PARAMS_META[case]), {"traceparent": TP_HDR, "tracestate": TS_HDR},
                 counts=SCANNED_NOTHING)
    assert ex.trace_headers() == {"traceparent": TP_HDR, "tracestate": TS_HDR, "baggage": None}


def test_decoy_before_real_meta_real_one_wins(gw: Gateway) -> None:
    """A decoy context in arguments (earlier in the text) must not shadow the real params._meta."""
    decoy = "00-dddddddddddddddddddddddddddddddd-dddddddddddddddd-01"
    msg = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"arguments": {"_meta": {"traceparent": decoy}, "x": {"params": {"_meta": {"traceparent": decoy}}}},
                      "_meta": {"traceparent": TP_META}}}
    ex = gw.send("default", dumps(msg))
    assert ex.traceparent == TP_META


# Duplicate `_meta` / `traceparent` keys (the last one wins, as in the server's parser): test_hostile.py.


def test_escaped_key_names_are_params_meta(gw: Gateway) -> None:
    """`"p\\u0061rams"` / `"_m\\u0065ta"` / `"tr\\u0061ceparent"` are the keys params/_meta/traceparent
    to any JSON parser, so this is `$.params._meta.traceparent` and is lifted."""
    body = ('{"jsonrpc":"2.0","id":1,"method":"x","p\\u0061rams":{"_m\\u0065ta":{"tr\\u0061ceparent":"'
            + TP_META + '"}}}').encode()
    assert json.loads(body)["params"]["_meta"]["traceparent"] == TP_META
    ex = gw.send("default", body)
    assert ex.traceparent == TP_META
