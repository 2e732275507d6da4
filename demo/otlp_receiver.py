"""A tiny OTLP/HTTP trace receiver for the demo (stand-in for an OpenTelemetry Collector).

    python demo/otlp_receiver.py --port 4318 --out .run/demo/spans.jsonl

It is the end-to-end suite's receiver (protobuf or OTLP/JSON, Content-Length or chunked bodies as
Envoy sends them, optionally gzip), run in the foreground; every span is appended to `--out` as one
JSON object per line, which demo/trace_tree.py reads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from e2e_lib.otlp import OtlpReceiver, Span  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--out", required=True, type=Path, help="JSON-lines file the spans are appended to")
    args = parser.parse_args()

    def append(spans: list[Span]) -> None:
        with open(args.out, "a", encoding="utf-8") as out:
            for span in spans:
                out.write(json.dumps(dataclasses.asdict(span)) + "\n")

    receiver = OtlpReceiver(port=args.port, host=args.host, on_spans=append).start()
    print(f"[otlp] OTLP/HTTP receiver on {receiver.endpoint} -> {args.out}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        receiver.stop()


if __name__ == "__main__":
    main()
