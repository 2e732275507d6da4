"""A tiny OTLP/HTTP trace receiver for the demo (stand-in for an OpenTelemetry Collector).

    python demo/otlp_receiver.py --port 4318 --out .run/demo/spans.jsonl

Accepts `POST /v1/traces` with an `ExportTraceServiceRequest` as protobuf (what Envoy's OpenTelemetry
tracer and the Python OTLP/HTTP exporter send), with a Content-Length or a chunked body (Envoy sends
chunked), optionally gzip-encoded. Every span is appended to `--out` as one JSON object per line.
"""

from __future__ import annotations

import argparse
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


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


def spans_of(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    out = []
    for rs in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append({
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "name": s.name,
                    "service": str(resource.get("service.name", "")),
                    "kind": s.kind,
                    "start_ns": s.start_time_unix_nano,
                    "end_ns": s.end_time_unix_nano,
                    "status_code": s.status.code,
                    "status_message": s.status.message,
                    "attributes": {kv.key: _value(kv.value) for kv in s.attributes},
                })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--out", required=True, help="JSON-lines file the spans are appended to")
    args = parser.parse_args()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:  # quiet
            pass

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        break
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()  # CRLF after the chunk
                body = b"".join(parts)
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            return body

        def _reply(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            body = self._body()
            if self.path.split("?", 1)[0] != "/v1/traces":
                self._reply(404, b"only /v1/traces")
                return
            req = ExportTraceServiceRequest()
            try:
                req.ParseFromString(body)
            except Exception as e:  # noqa: BLE001
                self._reply(400, str(e).encode())
                return
            spans = spans_of(req)
            with lock, open(args.out, "a", encoding="utf-8") as f:
                for s in spans:
                    f.write(json.dumps(s) + "\n")
            self._reply(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"[otlp] OTLP/HTTP receiver on http://{args.host}:{args.port}/v1/traces -> {args.out}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
