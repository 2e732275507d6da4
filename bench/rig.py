"""The load rig shared by the benchmark and the soak: a fast upstream Envoy, a front Envoy with one
listener per variant under test, MCP request bodies of a chosen size, and wrk driving load.

Everything binds 127.0.0.1 on free ports; every process started here is stopped by its own PID.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))

from e2e_lib.envoy import ENVOY_BIN, WASM_PATH, stop_process, wasm_filter  # noqa: E402
from e2e_lib.ports import free_ports, wait_for_port  # noqa: E402

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_post.lua"
# The `floor` filter (bench/floor): the least a body-reading proxy-wasm filter can do.
FLOOR_MANIFEST = REPO_ROOT / "bench" / "floor" / "Cargo.toml"
FLOOR_WASM = REPO_ROOT / "bench" / "floor" / "target" / "wasm32-wasip1" / "release" / "bench_floor_filter.wasm"
# The constant it writes into `traceparent` (TRACEPARENT in bench/floor/src/lib.rs).
FLOOR_TRACEPARENT = "00-0f100f100f100f100f100f100f100f10-0f100f100f100f10-01"
# Above the largest body, so no variant is cut short by Envoy's own per-connection limit.
BUFFER_LIMIT = 4 * 1024 * 1024
# What the body's `_meta` carries, and a different client header context (so `precedence: header`
# keeps the header and the upstream stage has a body to rewrite).
META_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
HEADER_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"
META_TRACESTATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
META_BAGGAGE = "userId=alice,serverNode=DF%2028,isProduction=false"
# The native MCP filter only looks at POSTs that accept both MCP response types.
REQUEST_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "traceparent": HEADER_TRACEPARENT,
}
SEEN_TRACEPARENT = "x-upstream-saw-traceparent"
SEEN_BAGGAGE = "x-upstream-saw-baggage"
UPSTREAM_REPLY = '{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"ok"}],"isError":false}}'
# A request carrying this header gets one of the upstream's large replies instead (see
# `reply_bodies`): the soak uses them to aim at the filter's response scan.
REPLY_HEADER = "x-bench-reply"
REPLY_BATCH = "batch"
REPLY_SSE = "sse"
# Size of each large reply: under the soak's `max_body_bytes` (1 MiB), so the filter scans it.
REPLY_SIZE = 1_000_000


def reply_bodies(size: int = REPLY_SIZE) -> dict[str, tuple[str, bytes]]:
    """The upstream's large replies, by REPLY_HEADER value: (content type, body of about `size`
    bytes). `batch` is a JSON batch of empty objects `[{},{},...]`; `sse` is an event stream with
    one event of about `size / 10` `data:` lines, whose data (the lines joined by newlines) is
    again such a batch."""
    count = (size - 2) // 3
    batch = b"[" + b",".join([b"{}"] * count) + b"]"
    lines = (size - 32) // 10
    sse = b"event: message\ndata: [{}\n" + b"data: ,{}\n" * lines + b"data: ]\n\n"
    return {REPLY_BATCH: ("application/json", batch), REPLY_SSE: ("text/event-stream", sse)}


def mcp_body(size: int) -> bytes:
    """A `tools/call` request of exactly `size` bytes: `_meta` first, then `arguments` padded with
    realistic text (escapes and non-ASCII included) so the scanner does real work."""
    def render(filler: str) -> bytes:
        message = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {
                "_meta": {
                    "traceparent": META_TRACEPARENT,
                    "tracestate": META_TRACESTATE,
                    "baggage": META_BAGGAGE,
                    "progressToken": 7,
                },
                "name": "summarise_document",
                "arguments": {"title": "Quarterly report", "lines": filler},
            },
        }
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()

    unit = 'The "gateway" checks each line\\ttwice — café, naïve, 東京. '
    base = len(render(""))
    if size < base:
        raise ValueError(f"a body of {size} bytes is smaller than the smallest message ({base})")
    filler = (unit * (size // len(unit.encode()) + 1))
    # Trim by characters until the encoded length fits, then pad with ASCII to the exact size.
    while len(render(filler)) > size:
        filler = filler[: max(0, len(filler) - max(1, (len(render(filler)) - size) // 4))]
    filler += "x" * (size - len(render(filler)))
    body = render(filler)
    assert len(body) == size
    return body


def _router() -> dict[str, Any]:
    return {"name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


def buffer_filter() -> dict[str, Any]:
    """Envoy's own buffer filter: the cost floor of any filter that reads the whole body."""
    return {"name": "envoy.filters.http.buffer",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                             "max_request_bytes": BUFFER_LIMIT}}


def build_floor() -> Path:
    """Builds the `floor` filter (cargo does nothing when it is up to date) and returns its path."""
    subprocess.run(["cargo", "build", "--quiet", "--release", "--locked", "--target", "wasm32-wasip1",
                    "--manifest-path", str(FLOOR_MANIFEST)], check=True)
    return FLOOR_WASM


def floor_filter(mode: str = "") -> dict[str, Any]:
    """The `floor` filter as an Envoy HTTP filter; `mode` "lift" adds the host calls a lift makes
    (bench/floor/src/lib.rs). Like ours it pauses in its headers callback, so it needs
    `allow_on_headers_stop_iteration` (otherwise the body callbacks never run)."""
    return {"name": "envoy.filters.http.wasm",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                             "config": {"name": f"floor{mode}",
                                        "allow_on_headers_stop_iteration": True,
                                        "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                                          "value": mode},
                                        "vm_config": {"vm_id": f"floor{mode}",
                                                      "runtime": "envoy.wasm.runtime.v8",
                                                      "code": {"local": {"filename": str(build_floor())}}}}}}


def native_mcp_filter() -> dict[str, Any]:
    """Envoy's C++ MCP filter with trace context and baggage propagation on, and a body limit raised
    from its 8 KiB default so it parses every size we send."""
    return {"name": "envoy.filters.http.mcp",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.mcp.v3.Mcp",
                             "max_request_body_size": BUFFER_LIMIT,
                             "propagate_trace_context": {},
                             "propagate_baggage": {}}}


@dataclass
class Variant:
    """One front-Envoy listener: its HTTP filters (before the router) and the cluster it routes to."""

    name: str
    filters: list[dict[str, Any]]
    cluster: str = "upstream"
    port: int = 0


def _listener(v: Variant) -> dict[str, Any]:
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": v.name,
        "codec_type": "AUTO",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": v.cluster, "timeout": "30s"}}]}]},
        "http_filters": [*v.filters, _router()],
    }
    return {
        "name": v.name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": v.port}},
        "per_connection_buffer_limit_bytes": BUFFER_LIMIT,
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
    }


def _cluster(name: str, port: int, upstream_filters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "per_connection_buffer_limit_bytes": BUFFER_LIMIT,
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
    }
    if upstream_filters is not None:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http_protocol_options": {}},
                "http_filters": [*upstream_filters, {
                    "name": "envoy.filters.http.upstream_codec",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"}}],
            }
        }
    return cluster


def upstream_filter(plugin_config: dict[str, Any]) -> dict[str, Any]:
    """Our filter as an upstream (cluster) HTTP filter."""
    entry = wasm_filter(plugin_config)
    entry["name"] = "mcp_trace_filter_upstream"
    return entry


def _upstream_bootstrap(port: int, admin_port: int, workdir: Path) -> dict[str, Any]:
    """The fast upstream: reads the whole request (buffer filter), answers a fixed JSON-RPC result,
    or one of `reply_bodies` when the request carries REPLY_HEADER."""
    def content_type(value: str) -> list[dict[str, Any]]:
        return [{"header": {"key": "content-type", "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]

    routes = []
    for kind, (media_type, body) in reply_bodies().items():
        path = workdir / f"upstream-reply-{kind}"
        path.write_bytes(body)
        routes.append({"match": {"prefix": "/", "headers": [{"name": REPLY_HEADER, "string_match": {"exact": kind}}]},
                       "direct_response": {"status": 200, "body": {"filename": str(path)}},
                       "response_headers_to_add": content_type(media_type)})
    routes.append({"match": {"prefix": "/"},
                   "direct_response": {"status": 200, "body": {"inline_string": UPSTREAM_REPLY}},
                   "response_headers_to_add": content_type("application/json")})
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "upstream",
        "codec_type": "AUTO",
        "route_config": {
            "max_direct_response_body_size_bytes": 2 * REPLY_SIZE,
            "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes,
                               "response_headers_to_add": [
                                   # What the upstream received, so the benchmark can check each variant's effect.
                                   {"header": {"key": SEEN_TRACEPARENT, "value": "%REQ(traceparent)%"}},
                                   {"header": {"key": SEEN_BAGGAGE, "value": "%REQ(baggage)%"}}]}]},
        "http_filters": [buffer_filter(), _router()],
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {"listeners": [{
            "name": "upstream",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "per_connection_buffer_limit_bytes": BUFFER_LIMIT,
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
        }]},
    }


class Envoy:
    """One Envoy process (concurrency 1, warnings only) started from the repository root."""

    def __init__(self, name: str, bootstrap: dict[str, Any], admin_port: int, workdir: Path):
        self.name = name
        self.admin_port = admin_port
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / f"{name}.json"
        self.config_path.write_text(json.dumps(bootstrap, indent=1))
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, listeners: int) -> "Envoy":
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(ENVOY_BIN), "-c", str(self.config_path), "--disable-hot-restart", "--concurrency", "1",
             "--log-level", "warn"],
            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} envoy exited {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                ready = httpx.get(f"{self.admin_url}/ready", timeout=1).text.strip() == "LIVE"
                up = httpx.get(f"{self.admin_url}/listeners?format=json", timeout=1).json()
                if ready and len(up.get("listener_statuses", [])) == listeners:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} envoy not ready:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stats(self, contains: str) -> dict[str, int]:
        r = httpx.get(f"{self.admin_url}/stats", params={"format": "json", "filter": contains}, timeout=5)
        r.raise_for_status()
        return {s["name"]: s["value"] for s in r.json().get("stats", []) if "value" in s}

    def rss_kib(self) -> int:
        """Resident memory of this Envoy from /proc (KiB)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return -1

    def version(self) -> str:
        out = subprocess.run([str(ENVOY_BIN), "--version"], capture_output=True, text=True).stdout
        match = re.search(r"version: \S+/([\d.]+)/", out)
        return match.group(1) if match else out.strip()

    def stop(self) -> None:
        stop_process(self.proc)


class Rig:
    """The upstream and the front Envoy with one listener per variant; use as a context manager."""

    def __init__(self, variants: list[Variant], workdir: Path, upstream_filters: dict[str, list[dict[str, Any]]]):
        self.variants = {v.name: v for v in variants}
        self.workdir = workdir
        self.upstream_filters = upstream_filters
        self.upstream: Envoy | None = None
        self.front: Envoy | None = None

    def __enter__(self) -> "Rig":
        up_port, up_admin, front_admin, *ports = free_ports(3 + len(self.variants))
        for variant, port in zip(self.variants.values(), ports):
            variant.port = port
        try:
            self.upstream = Envoy("upstream", _upstream_bootstrap(up_port, up_admin, self.workdir), up_admin, self.workdir).start(1)
            wait_for_port(up_port)
            # The collector of the own-span variant: the upstream Envoy answers its exports too
            # (a separate process, like a collector on the same machine).
            clusters = [_cluster("upstream", up_port), _cluster("collector", up_port)]
            clusters += [_cluster(name, up_port, filters) for name, filters in self.upstream_filters.items()]
            bootstrap = {
                "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": front_admin}}},
                "static_resources": {"listeners": [_listener(v) for v in self.variants.values()], "clusters": clusters},
            }
            self.front = Envoy("front", bootstrap, front_admin, self.workdir).start(len(self.variants))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        for envoy in (self.front, self.upstream):
            if envoy is not None:
                envoy.stop()

    def url(self, variant: str) -> str:
        return f"http://127.0.0.1:{self.variants[variant].port}/mcp"


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx: int


def run_wrk(url: str, body_files: list[Path], seconds: int, connections: int = 16, threads: int = 1,
            replies: list[str] | None = None) -> WrkResult:
    """wrk POSTing the given bodies (rotating when several) with the MCP request headers. `replies`,
    when given, has one entry per body: a REPLY_HEADER value to send with it, or "" for none."""
    env = dict(os.environ)
    env["BENCH_BODY_FILES"] = ":".join(str(p) for p in body_files)
    if replies is not None:
        if len(replies) != len(body_files) or any(not re.fullmatch(r"[a-z0-9_]*", r) for r in replies):
            raise ValueError(f"one reply kind ([a-z0-9_]*) per body file expected, got {replies}")
        env["BENCH_REPLY_HEADER"] = REPLY_HEADER
        env["BENCH_BODY_REPLIES"] = ":".join(r or "-" for r in replies)
    env["BENCH_HEADERS"] = json.dumps(REQUEST_HEADERS)
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
         "-s", str(WRK_SCRIPT), url],
        capture_output=True, text=True, env=env, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    data = json.loads(line[len("WRK_JSON "):])
    duration_s = data["duration_us"] / 1e6
    return WrkResult(
        requests=data["requests"],
        duration_s=duration_s,
        rps=data["requests"] / duration_s if duration_s else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        non_2xx=data["status"],
    )


def machine_facts() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = next((int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                    if ln.startswith("MemTotal:")), 0)
    wasm = REPO_ROOT / WASM_PATH
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("[")[0].strip()
    return {
        "cpu": f"{cpu} ({os.cpu_count()} cores)",
        "memory": f"{mem_kib // (1024 * 1024)} GiB",
        "kernel": os.uname().release,
        "wasm": f"{wasm.stat().st_size} bytes" if wasm.exists() else "missing",
        "floor_wasm": f"{FLOOR_WASM.stat().st_size} bytes" if FLOOR_WASM.exists() else "missing",
        "commit": commit.stdout.strip() or "unknown",
        "wrk": wrk_version,
    }
