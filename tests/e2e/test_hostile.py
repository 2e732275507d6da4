"""Hostile traffic through a real Envoy, each case judged against the same request through a
listener WITHOUT the filter.

One table (CASES) lists every hostile request: its body, headers, how it travels (one write with a
Content-Length, chunked, trickled, `Expect: 100-continue`, HTTP/2) and the counters it must move.
Each case is sent once per listener pair (a module-scoped parametrised fixture), then five verdicts
are drawn from that one exchange:

  (a) same status and answer as through the bare listener, same upstream request apart from the
      headers the filter owns (trace context, span headers);
  (b) the body reaches the upstream byte-identical;
  (c) nothing invalid is forwarded: trace headers are absent, the client's own, or valid W3C values
      (and exactly the expected ones); no forged internal header and no injected header survives;
  (d) the worker keeps serving: a valid MCP request right afterwards is still lifted;
  (e) the filter's counters moved by exactly the expected amounts.

The module runs its own Envoy (overriding the session `envoy` fixture), so a case that took the
VM down cannot leak into other modules, and `conftest.py` still attaches Envoy's log on failure.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from e2e_lib import raw_http
from e2e_lib.envoy import ALL_COUNTER_NAMES, REPO_ROOT, EnvoyProcess, ListenerSpec, launch_envoy
from e2e_lib.recording_upstream import Recorded, RecordingUpstream
from e2e_lib.values import (
    BG_HDR,
    BG_META,
    TP_HDR,
    TP_META,
    TP_META_2,
    TS_HDR,
    TS_META,
    W3C_CHECKS,
    baggage_members,
    baggage_of_size,
    dumps,
    is_header_text,
    meta,
    rpc,
    tracestate_members,
)

TRACE_HEADERS = ("traceparent", "tracestate", "baggage")


def owned_headers_from_source() -> tuple[str, ...]:
    """The owned headers as src/header_policy.rs lists them, so a header added there is tested here too."""
    source = (REPO_ROOT / "src" / "header_policy.rs").read_text()
    m = re.search(r"pub const REQUEST_HEADERS: \[\(&str, Use\); (\d+)\] = \[(.*?)\n\];", source, re.S)
    assert m, "REQUEST_HEADERS not found in src/header_policy.rs"
    entries = re.findall(r'\(\s*"([^"]+)",\s*Use::(Read|Owned)\(', m.group(2))
    assert len(entries) == int(m.group(1)), entries
    names = tuple(name for name, use in entries if use == "Owned")
    assert names and all(n == n.lower() for n in names), names
    return names


OWNED_HEADERS = owned_headers_from_source()
FORGED = tuple((name, f"forged-{name}") for name in OWNED_HEADERS)

# Listener pairs: each filter listener and the listener without the filter it is compared with.
LISTENER_SPECS = [
    ListenerSpec("filter", {}),
    ListenerSpec("bare", None),
    ListenerSpec("filter_spans", {"span_headers": True}),
    ListenerSpec("filter_header_precedence", {"precedence": "header"}),
    # Envoy's default 1 MiB per-connection buffer limit (the others raise it to 4 MiB).
    ListenerSpec("filter_envoy_buffer", {}, buffer_limit=None),
    ListenerSpec("bare_envoy_buffer", None, buffer_limit=None),
]
BASELINE = {"filter": "bare", "filter_spans": "bare", "filter_header_precedence": "bare",
            "filter_envoy_buffer": "bare_envoy_buffer"}


@pytest.fixture(scope="module")
def envoy(wasm_file: Path, upstream: RecordingUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyProcess]:
    """This module's own Envoy: the filter listeners and their bare twins, all to the recorder."""
    env = launch_envoy(LISTENER_SPECS, {"recorder": upstream.port}, tmp_path_factory.mktemp("envoy_hostile"))
    yield env
    env.stop()


# ------------------------------------------------------------------------------------------ bodies

META_BODY = dumps(rpc(meta(TP_META, TS_META, BG_META)))
TP_BODY = dumps(rpc(meta(TP_META)))
MIB = 1024 * 1024


def with_params(params: str) -> bytes:
    """A tools/call request whose `params` is `params`, written verbatim (escapes, duplicates)."""
    return ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":' + params + "}").encode()


def with_meta(meta_json: str) -> bytes:
    """A tools/call request whose `params._meta` is `meta_json`, written verbatim."""
    return with_params('{"name":"get_weather","arguments":{"city":"Paris"},"_meta":' + meta_json + "}")


def tp_is(value: str) -> str:
    return f'{{"traceparent":"{value}"}}'


def nested(depth: int, kind: str) -> str:
    """`depth` nested arrays (`[[...]]`) or objects (`{"a":{"a":...1}}`)."""
    if kind == "arrays":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def deep_in_params(depth: int, kind: str) -> bytes:
    return with_params('{"name":"t","arguments":{"deep":' + nested(depth, kind) + '},"_meta":' + tp_is(TP_META) + "}")


def deep_in_meta(depth: int, kind: str) -> bytes:
    return with_meta('{"deep":' + nested(depth, kind) + ',"traceparent":"' + TP_META + '"}')


def padded(size: int) -> bytes:
    """A valid tools/call with a valid _meta first, padded inside arguments to exactly `size` bytes."""
    base = dumps(rpc(None, params={"name": "t", "_meta": meta(TP_META, TS_META), "arguments": {"pad": ""}}))
    body = base.replace(b'"pad":""', b'"pad":"' + b"p" * (size - len(base)) + b'"')
    assert len(body) == size
    return body


def cut(body: bytes, at: int) -> bytes:
    return body[:at]


MID_TRACEPARENT = META_BODY.index(TP_META.encode()) + 20


# ---------------------------------------------------------------------------------- premise checks

def python_rejects(body: bytes) -> bool:
    """Python's json (what MCP SDK servers parse with) refuses the body."""
    try:
        json.loads(body)
    except ValueError:
        return True
    return False


def carries_meta_python_rejects(body: bytes) -> bool:
    """The body carries a _meta traceparent, yet is no JSON text to Python: never lifted."""
    return TP_META.encode() in body and python_rejects(body)


def carries_meta_not_utf8(body: bytes) -> bool:
    """The body carries a _meta traceparent but is not valid UTF-8 (strictly: no encoded surrogates,
    which Python's json.loads(bytes) lets through with `surrogatepass`)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return TP_META.encode() in body
    return False


def python_traceparent(expected: object) -> Callable[[bytes], bool]:
    """The server would read `expected` as params._meta.traceparent (`...` = no such key)."""
    def check(body: bytes) -> bool:
        m = json.loads(body)["params"].get("_meta")
        return (m.get("traceparent", ...) if isinstance(m, dict) else ...) == expected
    return check


def escaped_not_raw(body: bytes) -> bool:
    """Control characters travel as JSON escapes only, and decode to CR/LF/NUL for the server."""
    text = json.dumps(json.loads(body))
    return not re.search(rb"[\x00-\x1f]", body) and bool(re.search(r"\\u0000|\\r|\\n", text))


# ------------------------------------------------------------------------------------------- cases

@dataclass(frozen=True)
class Case:
    """One hostile request and what must come of it."""

    name: str
    body: bytes | Callable[[], bytes]
    # Expected counter deltas (unnamed counters: 0).
    counts: dict[str, int]
    headers: tuple[tuple[str, str], ...] = ()
    # Exact trace headers upstream; None means "exactly as the client sent them".
    upstream: dict[str, str | None] | None = None
    # length: one write with Content-Length | chunked: Transfer-Encoding chunked in `pieces` writes
    # | raw: Content-Length over a plain socket, in `pieces` writes, optionally Expect: 100-continue
    # | h2: HTTP/2 prior knowledge with content-length | h2_streamed: HTTP/2 DATA frames, no length
    # | h2_trailers: HTTP/2 DATA frames, no length, then a trailers frame ends the request
    send: str = "length"
    pieces: int = 1
    delay: float = 0.0
    expect_continue: bool = False
    listener: str = "filter"
    method: str = "POST"
    content_type: str | None = "application/json"
    # Status both listeners answer (Envoy's own behaviour; the filter never changes it).
    status: int = 200
    # A fact about the body itself that makes the case mean what its name says.
    premise: Callable[[bytes], bool] | None = None

    def build(self) -> bytes:
        return self.body() if callable(self.body) else self.body


def up(tp: str | None = None, ts: str | None = None, bg: str | None = None) -> dict[str, str | None]:
    return {"traceparent": tp, "tracestate": ts, "baggage": bg}


NOTHING_UP = up()
HDR = (("traceparent", TP_HDR), ("tracestate", TS_HDR), ("baggage", BG_HDR))
TP_HDR_ONLY = (("traceparent", TP_HDR),)
NOT_MCP = {"not_mcp": 1}
NO_CONTEXT = {"no_context": 1}
OVERSIZE = {"oversize": 1}
INVALID = {"invalid_context": 1, "invalid_values": 1}


def lifted(invalid_values: int = 0) -> dict[str, int]:
    return {"lifted": 1, "invalid_values": invalid_values}


TRICKLE = {"pieces": 24, "delay": 0.05}  # ~1.2 s per request, each piece a separate read at Envoy
BIG_CHUNKS = {"pieces": 32, "delay": 0.005}  # 8 MiB in 256 KiB writes

CASES: list[Case] = [
    # ---- malformed JSON that still carries a _meta context (the header context must pass untouched)
    *(Case(f"malformed_{name}", body, NOT_MCP, HDR, premise=carries_meta_python_rejects) for name, body in {
        "unterminated": META_BODY[:-1],
        "trailing_bytes": META_BODY + b"x",
        "two_values": META_BODY + META_BODY,
        "trailing_comma": META_BODY[:-2] + b",}}",
        "double_comma": META_BODY.replace(b',"id"', b',,"id"'),
        "single_quotes": META_BODY.replace(b'"', b"'"),
        "unquoted_key": META_BODY.replace(b'"jsonrpc"', b"jsonrpc"),
        "leading_zero_number": META_BODY.replace(b'"id":1', b'"id":01'),
        "not_json_at_all": b"traceparent=" + TP_META.encode(),
    }.items()),
    Case("malformed_only_whitespace", b" \r\n\t ", NOT_MCP, HDR, premise=python_rejects),
    Case("malformed_trailing_bytes_no_headers", META_BODY + b"x", NOT_MCP, upstream=NOTHING_UP),
    # Python's json accepts these two (NaN literal, UTF-8 BOM), the filter does not: not lifted.
    Case("malformed_nan_literal", META_BODY.replace(b'"id":1', b'"id":NaN'), NOT_MCP, HDR),
    Case("malformed_utf8_bom_prefix", b"\xef\xbb\xbf" + META_BODY, NOT_MCP, HDR),
    Case("top_level_string", b'"' + TP_META.encode() + b'"', NOT_MCP, HDR),
    Case("top_level_number", b"42", NOT_MCP),
    Case("top_level_null", b"null", NOT_MCP),
    # ---- truncated JSON: a valid body cut at several points
    *(Case(f"truncated_at_{label}", cut(META_BODY, at), NOT_MCP, upstream=NOTHING_UP, premise=python_rejects)
      for label, at in {"1": 1, "25": 25, "mid_traceparent": MID_TRACEPARENT, "len_minus_2": len(META_BODY) - 2,
                        "len_minus_1": len(META_BODY) - 1}.items()),
    Case("truncated_mid_traceparent_with_header_context", cut(META_BODY, MID_TRACEPARENT), NOT_MCP, HDR),
    # ---- nesting 1 000 and 100 000 deep, arrays and objects, inside params and inside _meta
    *(Case(f"nest_{depth}_{kind}_in_{where}", functools.partial(build, depth, kind), lifted(), upstream=up(TP_META))
      for depth in (1000, 100_000) for kind in ("arrays", "objects")
      for where, build in (("params", deep_in_params), ("meta", deep_in_meta))),
    Case("nest_100000_arrays_as_traceparent", lambda: with_meta('{"traceparent":' + nested(100_000, "arrays") + "}"),
         INVALID, upstream=NOTHING_UP),
    Case("nest_100000_objects_hide_traceparent", lambda: with_meta(
        '{"a":' * 100_000 + tp_is(TP_META) + "}" * 100_000), NO_CONTEXT, upstream=NOTHING_UP),
    Case("nest_100000_top_level_arrays", lambda: nested(100_000, "arrays").encode(), NO_CONTEXT),
    Case("nest_100000_unclosed", lambda: b"[" * 100_000, NOT_MCP),
    Case("nest_100000_unclosed_objects_in_meta", lambda: with_meta('{"a":' * 100_000)[:-2], NOT_MCP),
    Case("nest_100000_arrays_in_params_h2", lambda: deep_in_params(100_000, "arrays"), lifted(),
         upstream=up(TP_META), send="h2"),
    # ---- 8 MiB bodies: never held, pass as oversize (the header context untouched)
    Case("big_8mib_content_length", lambda: padded(8 * MIB), OVERSIZE, HDR),
    Case("big_8mib_chunked", lambda: padded(8 * MIB), OVERSIZE, send="chunked", **BIG_CHUNKS),
    Case("big_8mib_h2_streamed", lambda: padded(8 * MIB), OVERSIZE, send="h2_streamed", **BIG_CHUNKS),
    Case("big_8mib_h2_content_length", lambda: padded(8 * MIB), OVERSIZE, HDR, send="h2"),
    Case("big_8mib_content_length_envoy_buffer", lambda: padded(8 * MIB), OVERSIZE, HDR,
         listener="filter_envoy_buffer"),
    Case("big_8mib_chunked_envoy_buffer", lambda: padded(8 * MIB), OVERSIZE, send="chunked",
         listener="filter_envoy_buffer", **BIG_CHUNKS),
    Case("big_8mib_expect_continue", lambda: padded(8 * MIB), OVERSIZE, send="raw", expect_continue=True),
    # Without a length the filter holds at most half of max_body_bytes (README "Host buffer limit"),
    # so 600 KiB in one write is already oversize; with a Content-Length it would be lifted.
    Case("big_600kib_chunked_one_write_envoy_buffer", lambda: padded(600 * 1024), OVERSIZE, send="chunked",
         listener="filter_envoy_buffer"),
    # ---- invalid UTF-8 (no valid JSON text): not lifted
    *(Case(f"utf8_{name}", body, NOT_MCP, HDR, premise=carries_meta_not_utf8) for name, body in {
        "invalid_byte_in_string": META_BODY.replace(b'"Paris"', b'"Par\xffis"'),
        "overlong_encoding": META_BODY.replace(b'"Paris"', b'"\xc0\xafParis"'),
        "invalid_in_key": META_BODY.replace(b'"city"', b'"ci\xfety"'),
        "invalid_in_meta_key": META_BODY.replace(b'"tracestate"', b'"trace\xffstate"'),
        "invalid_in_traceparent": META_BODY.replace(TP_META.encode(), TP_META.encode() + b"\xff"),
        "raw_surrogate": META_BODY.replace(b'"Paris"', b'"\xed\xa0\x80"'),
        "truncated_sequence": META_BODY.replace(b'"Paris"', b'"Paris\xe2\x82"'),
    }.items()),
    Case("utf8_invalid_byte_in_string_no_headers", META_BODY.replace(b'"Paris"', b'"Par\xffis"'), NOT_MCP,
         upstream=NOTHING_UP),
    Case("utf8_invalid_in_traceparent_no_headers", META_BODY.replace(TP_META.encode(), TP_META.encode() + b"\xff"),
         NOT_MCP, upstream=NOTHING_UP),
    Case("escaped_lone_surrogate_in_traceparent", with_meta(tp_is(TP_META + "\\ud800")), INVALID,
         upstream=NOTHING_UP),
    Case("non_ascii_in_traceparent", with_meta(tp_is(TP_META + "é")), INVALID, upstream=NOTHING_UP),
    # ---- NUL bytes: raw (not JSON), escaped (never forwarded)
    Case("nul_raw_in_string", META_BODY.replace(b'"Paris"', b'"Pa\x00ris"'), NOT_MCP, HDR, premise=python_rejects),
    Case("nul_raw_between_tokens", META_BODY.replace(b',"id"', b',\x00"id"'), NOT_MCP, HDR, premise=python_rejects),
    Case("nul_raw_in_traceparent", with_meta(tp_is(TP_META + "\x00")), NOT_MCP, upstream=NOTHING_UP,
         premise=python_rejects),
    Case("nul_escaped_in_traceparent", dumps(rpc(meta(TP_META + "\x00", TS_META))), INVALID,
         upstream=NOTHING_UP, premise=escaped_not_raw),
    Case("nul_escaped_in_traceparent_with_header_context", dumps(rpc(meta(TP_META + "\x00", TS_META))), INVALID,
         HDR, premise=escaped_not_raw),
    Case("nul_escaped_in_tracestate", dumps(rpc(meta(TP_META, "congo=t61rcWkgMzE\x00"))), lifted(1),
         HDR[:2], upstream=up(TP_META), premise=escaped_not_raw),
    Case("nul_escaped_in_baggage", dumps(rpc(meta(TP_META, baggage="a=1\x00"))), lifted(1),
         upstream=up(TP_META), premise=escaped_not_raw),
    # ---- duplicate keys: the last one wins, as in the server's JSON parser
    Case("dup_meta_last_wins", with_params(f'{{"_meta":{tp_is(TP_META)},"_meta":{tp_is(TP_META_2)}}}'),
         lifted(), upstream=up(TP_META_2), premise=python_traceparent(TP_META_2)),
    Case("dup_meta_last_empty", with_params(f'{{"_meta":{tp_is(TP_META)},"_meta":{{}}}}'), NO_CONTEXT,
         upstream=NOTHING_UP, premise=python_traceparent(...)),
    Case("dup_meta_last_wrong_type", with_params(f'{{"_meta":{tp_is(TP_META)},"_meta":"x"}}'), INVALID,
         upstream=NOTHING_UP, premise=python_traceparent(...)),
    Case("dup_meta_first_wrong_type", with_params(f'{{"_meta":[1],"_meta":{tp_is(TP_META)}}}'), lifted(),
         upstream=up(TP_META), premise=python_traceparent(TP_META)),
    Case("dup_params_last_without_meta", with_params(f'{{"_meta":{tp_is(TP_META)}}},"params":{{}}'), NO_CONTEXT,
         upstream=NOTHING_UP, premise=python_traceparent(...)),
    Case("dup_traceparent_last_wins", with_meta(f'{{"traceparent":"{TP_META}","traceparent":"{TP_META_2}"}}'),
         lifted(), upstream=up(TP_META_2), premise=python_traceparent(TP_META_2)),
    Case("dup_traceparent_last_invalid", with_meta(f'{{"traceparent":"{TP_META}","traceparent":"00-bad"}}'),
         INVALID, upstream=NOTHING_UP, premise=python_traceparent("00-bad")),
    Case("dup_traceparent_last_not_a_string", with_meta(f'{{"traceparent":"{TP_META}","traceparent":5}}'),
         INVALID, upstream=NOTHING_UP, premise=python_traceparent(5)),
    Case("dup_traceparent_first_invalid", with_meta(f'{{"traceparent":"00-bad","traceparent":"{TP_META}"}}'),
         lifted(), upstream=up(TP_META), premise=python_traceparent(TP_META)),
    Case("dup_traceparent_10000_times", with_meta(
        "{" + ",".join(f'"traceparent":"00-{i + 1:032x}-{i + 1:016x}-01"' for i in range(10_000)) + "}"),
        lifted(), upstream=up(f"00-{10_000:032x}-{10_000:016x}-01"),
        premise=python_traceparent(f"00-{10_000:032x}-{10_000:016x}-01")),
    Case("dup_tracestate_last_invalid",
         with_meta(f'{{"traceparent":"{TP_META}","tracestate":"{TS_META}","tracestate":"UPPER=1"}}'),
         lifted(1), upstream=up(TP_META)),
    # ---- _meta of the wrong type
    *(Case(f"meta_is_{name}", with_params('{"name":"t","_meta":' + value + "}"), INVALID, upstream=NOTHING_UP)
      for name, value in {"array": f'["{TP_META}"]', "string": json.dumps(tp_is(TP_META)), "number": "1",
                          "null": "null", "bool": "true"}.items()),
    Case("meta_is_array_with_header_context", with_params(f'{{"_meta":[{tp_is(TP_META)}]}}'), INVALID, HDR),
    # ---- non-string traceparent (the header's traceparent stays, the _meta tracestate never joins it)
    *(Case(f"traceparent_is_{name}", dumps(rpc({"traceparent": value, "tracestate": TS_META})), INVALID,
           TP_HDR_ONLY, upstream=up(TP_HDR))
      for name, value in {"number": 12345, "object": {"traceparent": TP_META}, "array": [TP_META], "bool": True,
                          "null": None}.items()),
    # ---- CR/LF and header injection inside _meta values
    Case("crlf_traceparent_escaped", dumps(rpc(meta(TP_META + "\r\nx-evil: 1", TS_META))), INVALID,
         upstream=NOTHING_UP, premise=escaped_not_raw),
    Case("crlf_traceparent_escaped_with_header_context", dumps(rpc(meta(TP_META + "\r\nx-evil: 1", TS_META))),
         INVALID, HDR, premise=escaped_not_raw),
    Case("crlf_traceparent_unicode_escapes", with_meta(tp_is(TP_META + "\\u000d\\u000ax-evil: 1")), INVALID,
         upstream=NOTHING_UP, premise=escaped_not_raw),
    Case("crlf_before_traceparent", with_meta(tp_is("\\r\\n" + TP_META)), INVALID, upstream=NOTHING_UP),
    Case("lf_only_traceparent", with_meta(tp_is(TP_META + "\\nx-evil: 1")), INVALID, upstream=NOTHING_UP),
    Case("cr_only_traceparent", with_meta(tp_is(TP_META + "\\rx-evil: 1")), INVALID, upstream=NOTHING_UP),
    Case("crlf_raw_in_traceparent", with_meta(tp_is(TP_META + "\r\nx-evil: 1")), NOT_MCP, TP_HDR_ONLY,
         premise=python_rejects),
    Case("crlf_tracestate_escaped", dumps(rpc(meta(TP_META, "congo=t61rcWkgMzE\r\nx-evil: 1"))), lifted(1),
         HDR[:2], upstream=up(TP_META), premise=escaped_not_raw),
    Case("crlf_tracestate_unicode_escapes",
         with_meta(f'{{"traceparent":"{TP_META}","tracestate":"congo=1\\u000d\\u000ax-evil: 1"}}'), lifted(1),
         upstream=up(TP_META), premise=escaped_not_raw),
    Case("crlf_tracestate_obs_fold", dumps(rpc(meta(TP_META, "congo=1\r\n rojo=2"))), lifted(1),
         upstream=up(TP_META)),
    Case("crlf_baggage_escaped", dumps(rpc(meta(TP_META, baggage="a=1\r\nx-evil: 1"))), lifted(1),
         upstream=up(TP_META), premise=escaped_not_raw),
    Case("crlf_baggage_unicode_escapes_with_header_context",
         with_meta(f'{{"traceparent":"{TP_META}","baggage":"a=1\\u000d\\u000ax-evil: 1"}}'), lifted(1), HDR,
         upstream=up(TP_META, None, BG_HDR), premise=escaped_not_raw),
    Case("line_separator_in_baggage", dumps(rpc(meta(TP_META, baggage="a=1\u2028x-evil: 1"))), lifted(1),
         upstream=up(TP_META)),
    Case("crlf_in_tool_name_span_headers",
         dumps(rpc(meta(TP_META), params={"name": "get\r\nx-evil: 1", "arguments": {}})), lifted(),
         upstream=up(TP_META), listener="filter_spans"),
    # ---- oversize tracestate and baggage
    Case("tracestate_33_members", dumps(rpc(meta(TP_META, tracestate_members(33)))), lifted(1), HDR[:2],
         upstream=up(TP_META)),
    Case("tracestate_33_members_over_512_bytes",
         dumps(rpc(meta(TP_META, ",".join(f"k{i}={'v' * 30}" for i in range(33))))), lifted(1),
         upstream=up(TP_META)),
    # W3C sets no byte limit (only 32 members, 256-character keys and values): forwarded verbatim.
    # A valid list over 512 bytes is cut the W3C way: members from the right until it fits.
    Case("tracestate_32_members_over_512_bytes",
         dumps(rpc(meta(TP_META, ",".join(f"k{i}={'v' * 30}" for i in range(32))))), lifted(),
         upstream=up(TP_META, ",".join(f"k{i}={'v' * 30}" for i in range(14)))),
    # Every member is over 128 characters, so none is kept: the header goes without tracestate.
    Case("tracestate_32_maximal_members_16kib",
         dumps(rpc(meta(TP_META, ",".join(f"k{i:03d}{'k' * 252}={'v' * 256}" for i in range(32))))), lifted(),
         upstream=up(TP_META)),
    Case("tracestate_value_257_characters", dumps(rpc(meta(TP_META, "a=" + "v" * 257))), lifted(1),
         upstream=up(TP_META)),
    Case("tracestate_duplicate_keys", dumps(rpc(meta(TP_META, "a=1,b=2,a=3"))), lifted(1), upstream=up(TP_META)),
    Case("baggage_8193_bytes", dumps(rpc(meta(TP_META, baggage=baggage_of_size(8193)))), lifted(1),
         upstream=up(TP_META)),
    Case("baggage_64_kib", dumps(rpc(meta(TP_META, baggage=baggage_of_size(64 * 1024)))), lifted(1),
         (("baggage", BG_HDR),), upstream=up(TP_META, None, BG_HDR)),
    Case("baggage_181_members", dumps(rpc(meta(TP_META, baggage=baggage_members(181)))), lifted(1),
         upstream=up(TP_META)),
    Case("baggage_1000_members_over_8192_bytes", dumps(rpc(meta(TP_META, baggage=baggage_members(1000)))),
         lifted(1), upstream=up(TP_META)),
    # ---- client-forged internal headers: always removed by the filter
    Case("forged_owned_headers", META_BODY, lifted(), FORGED, upstream=up(TP_META, TS_META, BG_META)),
    Case("forged_owned_headers_repeated", META_BODY, lifted(), FORGED + FORGED,
         upstream=up(TP_META, TS_META, BG_META)),
    Case("forged_owned_headers_mixed_case", META_BODY, lifted(), tuple((n.title(), v) for n, v in FORGED),
         upstream=up(TP_META, TS_META, BG_META)),
    Case("forged_owned_headers_malformed_body", META_BODY[:-1], NOT_MCP, FORGED),
    Case("forged_owned_headers_get_without_body", b"", {}, FORGED, method="GET", content_type=None),
    Case("forged_owned_headers_h2", META_BODY, lifted(), FORGED, upstream=up(TP_META, TS_META, BG_META), send="h2"),
    Case("forged_owned_headers_span_headers", META_BODY, lifted(), FORGED, upstream=up(TP_META, TS_META, BG_META),
         listener="filter_spans"),
    # ---- slowly trickled bodies
    Case("trickle_chunked_valid", META_BODY, lifted(), upstream=up(TP_META, TS_META, BG_META), send="chunked",
         **TRICKLE),
    Case("trickle_content_length_valid", META_BODY, lifted(), upstream=up(TP_META, TS_META, BG_META), send="raw",
         **TRICKLE),
    Case("trickle_chunked_malformed", META_BODY[:-1] + b",", NOT_MCP, HDR, send="chunked", **TRICKLE),
    Case("trickle_h2_valid", META_BODY, lifted(), upstream=up(TP_META, TS_META, BG_META), send="h2_streamed",
         **TRICKLE),
    # ---- Expect: 100-continue (the client waits for the interim answer the filter must not block)
    Case("expect_continue_valid", dumps(rpc(meta(TP_META), params={"arguments": {"pad": "p" * 2000}})), lifted(),
         upstream=up(TP_META), send="raw", expect_continue=True),
    Case("expect_continue_malformed", META_BODY[:-1], NOT_MCP, HDR, send="raw", expect_continue=True),
    Case("expect_continue_crlf_traceparent", dumps(rpc(meta(TP_META + "\r\nx-evil: 1"))), INVALID,
         upstream=NOTHING_UP, send="raw", expect_continue=True),
    # ---- HTTP/2 prior knowledge
    Case("h2_valid_replaces_header_context", META_BODY, lifted(), HDR, upstream=up(TP_META, TS_META, BG_META),
         send="h2"),
    Case("h2_malformed", META_BODY + b"x", NOT_MCP, HDR, send="h2"),
    Case("h2_streamed_truncated", META_BODY[:-3], NOT_MCP, send="h2_streamed", pieces=3),
    Case("h2_crlf_traceparent", dumps(rpc(meta(TP_META + "\r\nx-evil: 1"))), INVALID, HDR, send="h2"),
    Case("h2_trailers_valid", META_BODY, lifted(), upstream=up(TP_META, TS_META, BG_META), send="h2_trailers",
         pieces=3),
    Case("h2_trailers_malformed", META_BODY[:-1], NOT_MCP, HDR, send="h2_trailers"),
    Case("h2_trailers_forged_owned_headers", META_BODY, lifted(), FORGED, upstream=up(TP_META, TS_META, BG_META),
         send="h2_trailers"),
    # ---- request smuggling shape: Content-Length and Transfer-Encoding together; Envoy refuses it
    # itself (400) before any filter runs, with or without ours
    Case("content_length_with_transfer_encoding", b"%x\r\n%s\r\n0\r\n\r\n" % (len(TP_BODY), TP_BODY), {},
         (("transfer-encoding", "chunked"),), send="raw", status=400),
    # ---- precedence `header`: a valid header context is kept whatever _meta holds
    Case("header_precedence_keeps_header_over_meta", dumps(rpc(meta(TP_META, TS_META))), {"header_kept": 1}, HDR,
         listener="filter_header_precedence"),
    Case("header_precedence_crlf_meta", dumps(rpc(meta(TP_META + "\r\nx-evil: 1", TS_META))), INVALID, HDR,
         listener="filter_header_precedence"),
    Case("header_precedence_forged_header_context_is_invalid", dumps(rpc(meta(TP_META, TS_META))), lifted(),
         (("traceparent", TP_HDR.upper()), ("tracestate", TS_HDR)), upstream=up(TP_META, TS_META),
         listener="filter_header_precedence"),
    # ---- not a single request: batches, responses
    Case("batch_first_valid_message_wins",
         dumps([rpc(meta(TP_META + "\r\nx-evil: 1"), id=1), rpc(meta(TP_META_2), id=2), rpc(meta(TP_META), id=3)]),
         lifted(), upstream=up(TP_META_2)),
    Case("batch_all_invalid", dumps([rpc(meta("00-bad"), id=1), rpc(None, id=2)]), INVALID, HDR),
    Case("batch_empty", b"[]", NO_CONTEXT, HDR),
    Case("batch_of_scalars", b'[1,"' + TP_META.encode() + b'",null]', NO_CONTEXT),
    Case("response_object_as_request", b'{"jsonrpc":"2.0","id":1,"result":{"_meta":' + tp_is(TP_META).encode() + b"}}",
         NO_CONTEXT),
    Case("error_response_as_request", b'{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"x"}}',
         NO_CONTEXT, HDR),
]


# ------------------------------------------------------------------------------------------ sending

@dataclass(frozen=True)
class Reply:
    """What the client got back."""

    status: int | str  # an error description when the exchange failed at the transport
    body: bytes
    headers: tuple[tuple[str, str], ...]  # content-type and content-length only
    interim: str | None = None
    http_version: str = "HTTP/1.1"


@dataclass(frozen=True)
class Leg:
    """One request through one listener: the answer and what reached the upstream (None: nothing)."""

    reply: Reply
    rec: Recorded | None


def _pick(headers: object) -> tuple[tuple[str, str], ...]:
    items = headers.items() if hasattr(headers, "items") else headers  # type: ignore[union-attr]
    return tuple(sorted((k.lower(), v) for k, v in items if k.lower() in ("content-type", "content-length")))


def _pieces(body: bytes, pieces: int, delay: float) -> Iterator[bytes]:
    step = max(1, -(-len(body) // pieces))
    for i, start in enumerate(range(0, len(body), step)):
        if i and delay:
            time.sleep(delay)  # separate reads at Envoy: separate body callbacks
        yield body[start:start + step]


def transmit(envoy: EnvoyProcess, listener: str, path: str, case: Case, body: bytes) -> Reply:
    headers = [("content-type", case.content_type)] if case.content_type else []
    headers += list(case.headers)
    if case.send == "raw":
        r = raw_http.post(envoy.port(listener), path, body, headers, pieces=case.pieces, delay=case.delay,
                          expect_continue=case.expect_continue)
        return Reply(r.status, r.body, _pick(r.headers), r.interim)
    if case.send == "h2_trailers":
        r = raw_http.post_h2_with_trailers(envoy.port(listener), path, body, headers, pieces=case.pieces,
                                           delay=case.delay)
        return Reply(r.status, r.body, _pick(r.headers), None, "HTTP/2")
    http2 = case.send.startswith("h2")
    content: bytes | Iterator[bytes] | None = body
    if case.send in ("chunked", "h2_streamed"):
        content = _pieces(body, case.pieces, case.delay)
    elif not body and case.method == "GET":
        content = None
    try:
        # A fresh connection per request; verify=False (plain HTTP) skips a ~50 ms TLS context build.
        with httpx.Client(http1=not http2, http2=http2, timeout=20.0, verify=False) as client:
            resp = client.request(case.method, envoy.url(listener, path), content=content, headers=headers)
    except httpx.HTTPError as e:
        return Reply(f"{type(e).__name__}: {e}", b"", ())
    return Reply(resp.status_code, resp.content, _pick(resp.headers), None, resp.http_version)


def leg(envoy: EnvoyProcess, upstream: RecordingUpstream, listener: str, case: Case, body: bytes) -> Leg:
    path = f"/hostile/{case.name}/{listener}/{uuid.uuid4().hex[:8]}"
    reply = transmit(envoy, listener, path, case, body)
    if reply.status == 200:
        return Leg(reply, upstream.wait_for(path))
    time.sleep(0.3)  # anything that was forwarded has arrived by now
    got = upstream.records(path)
    return Leg(reply, got[0] if got else None)


def settled_deltas(envoy: EnvoyProcess, before: dict[str, int], want: dict[str, int]) -> dict[str, int]:
    """Counter deltas since `before`, polled briefly: the filter may count just after the answer."""
    deadline = time.monotonic() + 3.0
    while True:
        now = envoy.counters(ALL_COUNTER_NAMES)
        got = {k: now[k] - before[k] for k in ALL_COUNTER_NAMES}
        if got == want:
            time.sleep(0.05)  # and nothing more arrives
            now = envoy.counters(ALL_COUNTER_NAMES)
            return {k: now[k] - before[k] for k in ALL_COUNTER_NAMES}
        if time.monotonic() > deadline:
            return got
        time.sleep(0.02)


@dataclass(frozen=True)
class Run:
    """Everything one case produced, judged by the verdict tests below."""

    case: Case
    body: bytes
    filtered: Leg
    deltas: dict[str, int]
    expected_deltas: dict[str, int]
    followup_traceparent: str
    followup: Leg
    baseline: Leg
    log: str = field(repr=False)

    def context(self) -> str:
        tail = "\n".join(self.log.splitlines()[-40:])
        return f"case {self.case.name}; envoy log during the case:\n{tail}"


def execute(envoy: EnvoyProcess, upstream: RecordingUpstream, case: Case) -> Run:
    body = case.build()
    want = {k: case.counts.get(k, 0) for k in ALL_COUNTER_NAMES}
    assert set(case.counts) <= set(ALL_COUNTER_NAMES), case.counts
    log_offset = envoy.log_size()
    before = envoy.counters(ALL_COUNTER_NAMES)
    filtered = leg(envoy, upstream, case.listener, case, body)
    deltas = settled_deltas(envoy, before, want)
    # Right afterwards, on the same listener: a valid MCP request must still be lifted.
    followup_tp = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    followup_case = Case(f"{case.name}_followup", b"", {})
    followup = leg(envoy, upstream, case.listener, followup_case, dumps(rpc(meta(followup_tp))))
    baseline = leg(envoy, upstream, BASELINE[case.listener], case, body)
    return Run(case, body, filtered, deltas, want, followup_tp, followup, baseline, envoy.log_since(log_offset))


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def run(request: pytest.FixtureRequest, envoy: EnvoyProcess, upstream: RecordingUpstream) -> Run:
    """Each case is sent once; pytest groups the verdict tests by case."""
    return execute(envoy, upstream, request.param)


def comparable(rec: Recorded) -> list[tuple[str, str]]:
    """The upstream request's headers minus the ones the filter owns (trace context, span headers)
    and the per-request values Envoy makes up (x-request-id, and host, which names the listener port)."""
    skip = set(TRACE_HEADERS) | set(OWNED_HEADERS)
    return sorted((k, "*" if k in ("x-request-id", "host") else v) for k, v in rec.headers if k not in skip)


# ------------------------------------------------------------------------------------------ verdicts

def test_a_same_answer_as_without_the_filter(run: Run) -> None:
    """Status, answer and upstream request equal what the listener without the filter gives."""
    f, b = run.filtered, run.baseline
    assert (f.reply.status, b.reply.status) == (run.case.status, run.case.status), run.context()
    assert f.reply == b.reply, run.context()
    if run.case.expect_continue:
        assert f.reply.interim == "HTTP/1.1 100 Continue", run.context()
    if run.case.send.startswith("h2"):
        assert f.reply.http_version == "HTTP/2"
    assert (f.rec is None) == (b.rec is None), run.context()
    if f.rec is not None and b.rec is not None:
        assert (f.rec.method, f.rec.chunked) == (b.rec.method, b.rec.chunked)
        assert comparable(f.rec) == comparable(b.rec)


def test_b_body_arrives_byte_identical(run: Run) -> None:
    if run.case.status != 200:  # Envoy itself refuses the request, with or without the filter
        assert run.filtered.rec is None and run.baseline.rec is None, run.context()
        return
    assert run.filtered.rec is not None, run.context()
    assert run.filtered.rec.body == run.body, (
        f"sent {len(run.body)} bytes, upstream got {len(run.filtered.rec.body)}; {run.context()}")
    assert run.baseline.rec is not None and run.baseline.rec.body == run.body  # the comparison's premise


def test_c_nothing_invalid_forwarded(run: Run) -> None:
    """Trace headers: absent, the client's own, or valid W3C values (and exactly the expected ones);
    no client-forged internal header; no header the bare listener did not also forward."""
    rec, case = run.filtered.rec, run.case
    if rec is None and case.status != 200:
        return  # nothing was forwarded at all (test_a checks the bare listener forwarded nothing either)
    assert rec is not None, run.context()
    for name in TRACE_HEADERS:
        sent = [v for k, v in case.headers if k.lower() == name]
        got = rec.values(name)
        for value in got:
            assert value in sent or W3C_CHECKS[name](value), f"invalid {name} forwarded: {value!r}"
        want = sent if case.upstream is None else [v for v in (case.upstream[name],) if v is not None]
        assert got == want, f"{name}: upstream got {got!r}, expected {want!r}"
    owned = [(k, v) for k, v in rec.headers if k in OWNED_HEADERS]
    if case.listener == "filter_spans":
        # The filter's own span headers are allowed here; forged values and unsafe text are not.
        assert all(is_header_text(v) and not v.startswith("forged-") for _, v in owned), owned
    else:
        assert owned == [], f"internal headers reached the upstream: {owned}"
    assert run.baseline.rec is not None
    forged = {k.lower() for k, _ in case.headers if k.lower() in OWNED_HEADERS}
    if forged:  # premise: without the filter the forgery reaches the upstream (Envoy may join repeats)
        assert forged == {k for k, v in run.baseline.rec.headers if k in OWNED_HEADERS and "forged-" in v}
    extra = {k for k, _ in rec.headers} - {k for k, _ in run.baseline.rec.headers} - set(TRACE_HEADERS)
    extra -= set(OWNED_HEADERS) if case.listener == "filter_spans" else set()
    assert not extra, f"headers only the filter listener forwarded: {extra}"
    assert rec.values("x-evil") == []


def test_d_worker_keeps_serving(run: Run) -> None:
    """A valid MCP request right after the hostile one, on the same listener, is still lifted."""
    f = run.followup
    assert f.reply.status == 200 and f.rec is not None, run.context()
    assert f.rec.values("traceparent") == [run.followup_traceparent], run.context()


def test_e_counters(run: Run) -> None:
    assert run.deltas == run.expected_deltas, run.context()


# ------------------------------------------------------------------------------------------ premises

@pytest.mark.parametrize("case", [c for c in CASES if c.premise], ids=lambda c: c.name)
def test_case_premise(case: Case) -> None:
    """The body really is what the case name claims (e.g. Python's json rejects it, or reads the
    duplicate key the case expects to win)."""
    assert case.premise is not None and case.premise(case.build())


def test_case_table_is_sound() -> None:
    """Unique names, known listeners and send modes, chunk counts that really split the body."""
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
    for c in CASES:
        assert c.listener in BASELINE, c.name
        assert c.send in ("length", "chunked", "raw", "h2", "h2_streamed", "h2_trailers"), c.name
        assert not c.expect_continue or c.send == "raw", c.name
    assert len(OWNED_HEADERS) >= 9 and "x-envoy-decorator-operation" in OWNED_HEADERS
