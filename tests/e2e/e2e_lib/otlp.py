"""A small OTLP/HTTP trace receiver for the end-to-end tests (127.0.0.1, a free port, a thread).

Accepts `POST /v1/traces` with an `ExportTraceServiceRequest` as protobuf (what Envoy's OpenTelemetry
tracer and the Python OTLP/HTTP exporter send) or as OTLP/JSON, with a Content-Length or a
`Transfer-Encoding: chunked` body (Envoy sends chunked), optionally gzip-encoded. Every span is kept
as a flat `Span` record; `wait_for` polls until a predicate matches.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus

STATUS_UNSET = PbStatus.STATUS_CODE_UNSET
STATUS_OK = PbStatus.STATUS_CODE_OK
STATUS_ERROR = PbStatus.STATUS_CODE_ERROR
KIND_SERVER = PbSpan.SPAN_KIND_SERVER
KIND_CLIENT = PbSpan.SPAN_KIND_CLIENT


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


@dataclass(frozen=True)
class Span:
    trace_id: str  # 32 lowercase hex
    span_id: str  # 16 lowercase hex
    parent_span_id: str  # "" for a root span
    name: str
    service: str  # resource attribute service.name
    kind: int  # opentelemetry.proto SpanKind value (KIND_SERVER, ...)
    status_code: int  # STATUS_UNSET / STATUS_OK / STATUS_ERROR
    status_message: str
    attributes: dict[str, Any] = field(default_factory=dict)
    flags: int = 0
    start_ns: int = 0
    end_ns: int = 0
    trace_state: str = ""
    links: tuple[tuple[str, str], ...] = ()  # (trace_id, span_id) of each link

    def __repr__(self) -> str:
        return (f"Span({self.service}:{self.name!r} {self.trace_id}/{self.span_id} parent={self.parent_span_id or '-'} "
                f"status={self.status_code} attrs={self.attributes})")


def spans_of(request: ExportTraceServiceRequest) -> list[Span]:
    out = []
    for rs in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    Span(
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        name=s.name,
                        service=str(resource.get("service.name", "")),
                        kind=s.kind,
                        status_code=s.status.code,
                        status_message=s.status.message,
                        attributes={kv.key: _value(kv.value) for kv in s.attributes},
                        flags=s.flags,
                        start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano,
                        trace_state=s.trace_state,
                        links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in s.links),
                    )
                )
    return out


class OtlpReceiver:
    """Collects spans from OTLP/HTTP exports. `endpoint` is the full `/v1/traces` URL.
    `on_spans`, when given, also sees every export's spans as they arrive (the demo writes them
    to a file)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1",
                 on_spans: Callable[[list[Span]], None] | None = None) -> None:
        self._spans: list[Span] = []
        self._lock = threading.Lock()
        self.requests = 0
        self.chunked_requests = 0
        self.json_requests = 0
        # Every metrics export (POST /v1/metrics), strictly parsed, as protobuf's JSON dict.
        self.metrics: list[dict[str, Any]] = []
        # How the receiver answers: a status other than 200 refuses the export (its spans are not
        # kept), and a delay holds every answer that long (a slow or hanging collector).
        self.answer_status = 200
        self.answer_delay_s = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    receiver.chunked_requests += 1
                    parts = []
                    while True:
                        size_line = self.rfile.readline()
                        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                        if size == 0:
                            # trailers until the empty line
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            break
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()  # CRLF after the chunk
                    body = b"".join(parts)
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    body = gzip.decompress(body)
                return body

            def do_POST(self) -> None:  # noqa: N802
                body = self._body()
                if receiver.answer_delay_s:
                    time.sleep(receiver.answer_delay_s)
                if receiver.answer_status != 200:
                    with receiver._lock:
                        receiver.requests += 1
                    try:
                        self.send_response(receiver.answer_status)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    except OSError:
                        pass  # the sender gave up waiting (export timeout)
                    return
                ctype = self.headers.get("Content-Type", "")
                if self.path.startswith("/v1/metrics"):
                    self._metrics(body, ctype)
                    return
                req = ExportTraceServiceRequest()
                try:
                    if "json" in ctype:
                        # Strict: a field OTLP does not define is an encoding bug in the sender.
                        json_format.Parse(body, req, ignore_unknown_fields=False)
                        receiver.json_requests += 1
                        # OTLP/JSON ids are hex strings; json_format read them as base64 bytes.
                        _fix_json_ids(req, body)
                    else:
                        req.ParseFromString(body)
                except Exception as e:  # noqa: BLE001
                    self.send_response(400)
                    msg = str(e).encode()
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                spans = spans_of(req)
                with receiver._lock:
                    receiver.requests += 1
                    receiver._spans.extend(spans)
                    if on_spans is not None:
                        on_spans(spans)
                out = ExportTraceServiceResponse().SerializeToString()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-protobuf")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass  # the sender gave up waiting (export timeout)

            def _metrics(self, body: bytes, ctype: str) -> None:
                req = ExportMetricsServiceRequest()
                try:
                    if "json" in ctype:
                        json_format.Parse(body, req, ignore_unknown_fields=False)
                    else:
                        req.ParseFromString(body)
                except Exception as e:  # noqa: BLE001
                    self.send_response(400)
                    msg = str(e).encode()
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                with receiver._lock:
                    receiver.metrics.append(json_format.MessageToDict(req))
                out = ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def start(self) -> "OtlpReceiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()

    def wait_for(self, predicate: Callable[[list[Span]], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
        """Poll until `predicate(all spans)` returns something truthy; return that value."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self.spans())
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"no match after {timeout}s; spans so far:\n" + "\n".join(map(repr, self.spans())))
            time.sleep(interval)

    def wait_span(self, timeout: float = 10.0, **match: Any) -> Span:
        """The first span whose fields equal `match` (e.g. name=..., service=..., trace_id=...)."""

        def find(spans: list[Span]) -> Span | None:
            for s in spans:
                if all(getattr(s, k) == v for k, v in match.items()):
                    return s
            return None

        return self.wait_for(find, timeout)


def _fix_json_ids(req: ExportTraceServiceRequest, body: bytes) -> None:
    """OTLP/JSON encodes trace/span ids as hex, not base64: re-read them from the raw JSON."""
    import json

    raw = json.loads(body)
    for rs_pb, rs in zip(req.resource_spans, raw.get("resourceSpans", [])):
        for ss_pb, ss in zip(rs_pb.scope_spans, rs.get("scopeSpans", [])):
            for s_pb, s in zip(ss_pb.spans, ss.get("spans", [])):
                for key, attr in (("traceId", "trace_id"), ("spanId", "span_id"), ("parentSpanId", "parent_span_id")):
                    if s.get(key):
                        setattr(s_pb, attr, bytes.fromhex(s[key]))
                for link_pb, link in zip(s_pb.links, s.get("links", [])):
                    link_pb.trace_id = bytes.fromhex(link["traceId"])
                    link_pb.span_id = bytes.fromhex(link["spanId"])
