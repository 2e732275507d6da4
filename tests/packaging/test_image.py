"""The OCI image of scripts/image.sh, through a real registry and back.

Builds the layout, starts Debian's docker-registry on 127.0.0.1 (its own config, a free port,
storage in a temporary directory), pushes the layout with skopeo, pulls it back into a new
layout and checks what Istio, Higress and Envoy Gateway look at in a "compat" wasm image: one
tar+gzip layer whose only file is plugin.wasm, byte-identical to the built module, and the
manifest annotation module.wasm.image/variant=compat.
"""

import gzip
import hashlib
import io
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
WASM = ROOT / "target/wasm32-wasip1/release/mcp_trace_filter.wasm"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_layout(layout):
    """(manifest, {digest: blob bytes}) of the one image in an OCI layout."""
    index = json.loads((layout / "index.json").read_text())
    assert len(index["manifests"]) == 1, index

    def blob(digest):
        algo, hexdigest = digest.split(":")
        data = (layout / "blobs" / algo / hexdigest).read_bytes()
        assert hashlib.sha256(data).hexdigest() == hexdigest, digest
        return data

    assert index["manifests"][0]["mediaType"] == OCI_MANIFEST
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    return manifest, blob


def check_compat_image(layout):
    manifest, blob = read_layout(layout)
    # umoci leaves the manifest's own (optional) mediaType out; the index names it.
    assert manifest.get("mediaType", OCI_MANIFEST) == OCI_MANIFEST
    assert manifest["schemaVersion"] == 2
    assert manifest["annotations"]["module.wasm.image/variant"] == "compat"
    layers = manifest["layers"]
    assert len(layers) == 1, layers
    assert layers[0]["mediaType"] == LAYER_GZIP
    data = blob(layers[0]["digest"])
    assert data[:2] == b"\x1f\x8b", "layer is not gzip"
    config = json.loads(blob(manifest["config"]["digest"]))
    raw = gzip.decompress(data)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(raw).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["plugin.wasm"], [m.name for m in members]
        assert members[0].isfile()
        content = tar.extractfile(members[0]).read()
    assert content == WASM.read_bytes()


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    out = tmp_path_factory.mktemp("image")
    subprocess.run(["bash", str(ROOT / "scripts/image.sh"), str(out / "oci")], check=True,
                   stdout=subprocess.DEVNULL)
    return out


def test_layout_is_the_compat_variant(image):
    check_compat_image(image / "oci")


def test_release_checksum_matches_the_wasm(image):
    line = (image / "mcp_trace_filter.wasm.sha256").read_text()
    digest, name = line.split()
    assert name == "mcp_trace_filter.wasm"
    assert digest == hashlib.sha256(WASM.read_bytes()).hexdigest()
    subprocess.run(["sha256sum", "--check", "--quiet", "mcp_trace_filter.wasm.sha256"],
                   cwd=image, check=True)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry not installed: run scripts/setup.sh")
    work = tmp_path_factory.mktemp("registry")
    port = free_port()
    (work / "storage").mkdir()
    config = work / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {work / 'storage'}\n"
        "  delete:\n    enabled: true\n"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n"
    )
    log = open(work / "registry.log", "wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("registry did not start: "
                                   + (work / "registry.log").read_text(errors="replace"))
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def test_push_and_pull_through_a_registry(image, registry, tmp_path):
    ref = f"docker://{registry}/mcp-trace-filter:test"
    env = dict(os.environ, HOME=str(tmp_path))  # no user policy or auth file is read
    policy = tmp_path / "policy.json"
    policy.write_text('{"default":[{"type":"insecureAcceptAnything"}]}')
    common = ["skopeo", "--policy", str(policy), "copy", "--quiet"]
    subprocess.run(common + ["--dest-tls-verify=false", f"oci:{image / 'oci'}:latest", ref],
                   check=True, env=env, timeout=60)
    pulled = tmp_path / "pulled"
    subprocess.run(common + ["--src-tls-verify=false", ref, f"oci:{pulled}:test"],
                   check=True, env=env, timeout=60)
    check_compat_image(pulled)
    # What the registry itself serves: the manifest Istio's fetcher reads.
    request = urllib.request.Request(
        f"http://{registry}/v2/mcp-trace-filter/manifests/test",
        headers={"Accept": OCI_MANIFEST})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"] == OCI_MANIFEST
        served = json.loads(response.read())
    assert served["annotations"]["module.wasm.image/variant"] == "compat"
    assert [layer["mediaType"] for layer in served["layers"]] == [LAYER_GZIP]
    pushed, _ = read_layout(image / "oci")
    assert served["layers"][0]["digest"] == pushed["layers"][0]["digest"]
