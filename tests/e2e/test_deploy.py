"""The Kubernetes manifests in deploy/istio and deploy/envoy-gateway, checked with real tools.

- Istio: every resource against Istio's CRD schemas (npm @kubernetes-models/istio, run by
  tests/deploy/validate_istio.cjs, which also refuses unknown fields the way `kubectl apply` does),
  and every Envoy fragment in an EnvoyFilter patch parsed strictly as the Envoy message it is
  (envoy-data-plane: an unknown field, enum value or `@type` is an error).
- Envoy Gateway: no registry package carries its CRD schemas, so structural checks: the Wasm
  filter Envoy Gateway generates for the EnvoyExtensionPolicy (name, config) is rebuilt here, the
  EnvoyPatchPolicy's JSONPath is applied to it and must set the flag on exactly that filter, and the
  result parses strictly as an Envoy HTTP connection manager.
- Both Wasm configs, with the pulled image replaced by the built module, lift in the local Envoy;
  the Envoy Gateway one without the patch (what EnvoyExtensionPolicy or a WasmPlugin alone gives
  Envoy) hangs the request.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import shutil
import subprocess
import uuid
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from e2e_lib.envoy import REPO_ROOT, WASM_PATH
from e2e_lib.recording_upstream import RecordingUpstream
from e2e_lib.shipped import ShippedEnvoy

# envoy-data-plane's classes are pydantic dataclasses when pydantic is installed (the MCP SDK brings
# it), and their oneof validators trip pydantic deprecation warnings on import.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    # Importing a module registers its message types, which an Any (`@type`) may then name.
    import envoy_data_plane.envoy.extensions.filters.http.router.v3  # noqa: F401
    import envoy_data_plane.envoy.extensions.filters.http.wasm.v3  # noqa: F401
    from envoy_data_plane.envoy.config.core.v3 import TypedExtensionConfig
    from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
        HttpConnectionManager,
        HttpFilter,
    )
    from envoy_data_plane.envoy.extensions.wasm.v3 import FailurePolicy

from test_shipped_configs import KNOWN_KEYS

DEPLOY = REPO_ROOT / "deploy"
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
VALIDATOR = REPO_ROOT / "tests" / "deploy" / "validate_istio.cjs"


def documents(directory: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(directory.glob("*.yaml")):
        out += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert out, f"no manifests in {directory}"
    return out


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc.get("kind") == kind]


def istio_check(resources: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    node = shutil.which("node")
    assert node, "node is missing: run scripts/setup.sh"
    result = subprocess.run([node, str(VALIDATOR)], input=json.dumps(resources), capture_output=True,
                            text=True, timeout=60)
    lines = result.stdout.splitlines()
    # One line per resource, or the validator itself failed (e.g. .venv/node missing: scripts/setup.sh).
    assert result.returncode in (0, 1) and len(lines) == len(resources), result.stdout + result.stderr
    return result.returncode, [json.loads(line) for line in lines]


def check_plugin_config(config: Any) -> None:
    """The filter's PluginConfig, as envoy-data-plane parsed it: what the filter needs to load safely."""
    # Without the flag the header pause turns into "stop all" and every JSON POST hangs.
    assert config.allow_on_headers_stop_iteration is True
    assert config.failure_policy == FailurePolicy.FAIL_OPEN
    assert config.root_id == "mcp_trace_filter"
    assert config.vm_config.runtime == "envoy.wasm.runtime.v8"


# --- Istio ---------------------------------------------------------------------------------------

ISTIO = documents(DEPLOY / "istio")


def test_istio_manifests_match_istios_crd_schemas() -> None:
    code, results = istio_check(ISTIO)
    assert code == 0 and len(results) == len(ISTIO), results
    assert all(not r["errors"] for r in results), results


def test_istio_schema_check_refuses_bad_resources() -> None:
    """The validator is live: an unknown field, a wrong enum value and a missing patch operation
    in copies of the shipped EnvoyFilter are each reported."""
    (envoy_filter,) = by_kind(ISTIO, "EnvoyFilter")
    unknown = copy.deepcopy(envoy_filter)
    unknown["spec"]["configPatches"][0]["patchh"] = unknown["spec"]["configPatches"][0].pop("patch")
    enum = copy.deepcopy(envoy_filter)
    enum["spec"]["configPatches"][1]["match"]["context"] = "INGRESS"
    operation = copy.deepcopy(envoy_filter)
    operation["spec"]["configPatches"][1]["patch"]["operation"] = "PREPEND"
    code, results = istio_check([unknown, enum, operation])
    assert code == 1 and [bool(r["errors"]) for r in results] == [True, True, True], results


def test_istio_uses_ecds_not_wasmplugin() -> None:
    """No WasmPlugin (it cannot set the flag): one EXTENSION_CONFIG patch carrying the filter and
    one HTTP_FILTER patch that takes it from ECDS by the same name."""
    assert not by_kind(ISTIO, "WasmPlugin")
    (envoy_filter,) = by_kind(ISTIO, "EnvoyFilter")
    patches = {p["applyTo"]: p for p in envoy_filter["spec"]["configPatches"]}
    assert set(patches) == {"EXTENSION_CONFIG", "HTTP_FILTER"}
    extension = TypedExtensionConfig.from_dict(patches["EXTENSION_CONFIG"]["patch"]["value"])
    http_filter = HttpFilter.from_dict(patches["HTTP_FILTER"]["patch"]["value"])
    assert patches["EXTENSION_CONFIG"]["patch"]["operation"] == "ADD"
    assert http_filter.name == extension.name
    assert http_filter.config_discovery.type_urls == [WASM_TYPE]
    assert extension.typed_config.type_url == WASM_TYPE
    assert patches["HTTP_FILTER"]["match"]["listener"]["filterChain"]["filter"]["name"] == \
        "envoy.filters.network.http_connection_manager"


def test_istio_wasm_fragment_parses_strictly() -> None:
    (envoy_filter,) = by_kind(ISTIO, "EnvoyFilter")
    (patch,) = [p for p in envoy_filter["spec"]["configPatches"] if p["applyTo"] == "EXTENSION_CONFIG"]
    value = patch["patch"]["value"]
    TypedExtensionConfig.from_dict(value)  # the whole fragment, Any included
    wasm = envoy_data_plane.envoy.extensions.filters.http.wasm.v3.Wasm.from_dict(
        {k: v for k, v in value["typed_config"].items() if k != "@type"})
    check_plugin_config(wasm.config)
    uri = wasm.config.vm_config.code.remote.http_uri.uri
    assert uri.startswith("oci://"), uri
    plugin = json.loads(value["typed_config"]["config"]["configuration"]["value"])
    assert isinstance(plugin, dict) and set(plugin) <= KNOWN_KEYS, plugin


def test_strict_parsing_refuses_unknown_fields_and_types() -> None:
    """envoy-data-plane is strict: a misspelt field, a bad enum value or an unknown `@type` in the
    shipped fragment is an error, not silently dropped."""
    (envoy_filter,) = by_kind(ISTIO, "EnvoyFilter")
    (patch,) = [p for p in envoy_filter["spec"]["configPatches"] if p["applyTo"] == "EXTENSION_CONFIG"]
    good = patch["patch"]["value"]
    misspelt = copy.deepcopy(good)
    misspelt["typed_config"]["config"]["allow_on_header_stop_iteration"] = \
        misspelt["typed_config"]["config"].pop("allow_on_headers_stop_iteration")
    enum = copy.deepcopy(good)
    enum["typed_config"]["config"]["failure_policy"] = "FAIL_SOMETIMES"
    type_url = copy.deepcopy(good)
    type_url["typed_config"]["@type"] = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasmm"
    for bad in (misspelt, enum, type_url):
        with pytest.raises((KeyError, ValueError, TypeError)):
            TypedExtensionConfig.from_dict(bad)


# --- Envoy Gateway -------------------------------------------------------------------------------

EG = documents(DEPLOY / "envoy-gateway")
JSONPATH = re.compile(r"\.\.http_filters\[\?match\(@\.name, '([^']+)'\)\]\.typed_config\.config\.(\w+)")


def eg_generated_hcm(policy: dict[str, Any]) -> dict[str, Any]:
    """The HTTP connection manager Envoy Gateway builds for a listener with this
    EnvoyExtensionPolicy: one Wasm filter per `wasm` entry, named
    envoy.filters.http.wasm/envoyextensionpolicy/<namespace>/<name>/wasm/<index>, code fetched from
    EG's own wasm HTTP server, `config` as a StringValue, `failOpen` as FAIL_OPEN (EG 1.8/1.9)."""
    meta = policy["metadata"]
    filters = []
    for index, wasm in enumerate(policy["spec"]["wasm"]):
        filters.append({
            "name": f"envoy.filters.http.wasm/envoyextensionpolicy/{meta['namespace']}/{meta['name']}/wasm/{index}",
            "disabled": True,  # enabled per route
            "typed_config": {
                "@type": WASM_TYPE,
                "config": {
                    "name": wasm["name"],
                    "root_id": wasm["rootID"],
                    "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                      "value": json.dumps(wasm["config"])},
                    "failure_policy": "FAIL_OPEN" if wasm.get("failOpen") else "FAIL_CLOSED",
                    "vm_config": {
                        "vm_id": wasm["name"],
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": {"remote": {"http_uri": {"uri": "https://envoy-gateway:18002/sha256.wasm",
                                                         "cluster": "wasm_cluster", "timeout": "10s"}}},
                    },
                },
            },
        })
    filters.append({"name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
    return {"stat_prefix": "http-10080", "http_filters": filters}


def apply_patch(listener: dict[str, Any], operation: dict[str, Any]) -> int:
    """The EnvoyPatchPolicy's `add` at its JSONPath (the one form used here: a filter of every
    `http_filters` list, matched by name, then a key of its config). Returns how many it set."""
    assert operation["op"] == "add" and "path" not in operation, operation
    found = JSONPATH.fullmatch(operation["jsonPath"])
    assert found, operation["jsonPath"]
    name_re, key = re.compile(found.group(1)), found.group(2)
    hits = 0

    def walk(node: Any) -> None:
        nonlocal hits
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "http_filters" and isinstance(v, list):
                    for f in v:
                        if name_re.fullmatch(f["name"]):  # Envoy Gateway's match() is a full match
                            f["typed_config"]["config"][key] = operation["value"]
                            hits += 1
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(listener)
    return hits


def test_envoy_gateway_resources_are_consistent() -> None:
    (policy,) = by_kind(EG, "EnvoyExtensionPolicy")
    (patch_policy,) = by_kind(EG, "EnvoyPatchPolicy")
    (config_map,) = by_kind(EG, "ConfigMap")
    for doc in (policy, patch_policy):
        assert doc["apiVersion"] == "gateway.envoyproxy.io/v1alpha1"
    # EnvoyPatchPolicy is ignored unless Envoy Gateway enables it.
    eg_config = yaml.safe_load(config_map["data"]["envoy-gateway.yaml"])
    assert eg_config["kind"] == "EnvoyGateway" and eg_config["extensionApis"]["enableEnvoyPatchPolicy"] is True
    # The policy loads the module from an OCI image, fail-open, with a configuration the filter takes.
    (wasm,) = policy["spec"]["wasm"]
    assert wasm["code"]["type"] == "Image" and wasm["code"]["image"]["url"]
    assert wasm["failOpen"] is True and wasm["rootID"] == "mcp_trace_filter"
    assert isinstance(wasm["config"], dict) and set(wasm["config"]) <= KNOWN_KEYS
    # The patch targets the Gateway's listener, <gateway namespace>/<gateway>/<listener>.
    target = patch_policy["spec"]["targetRef"]
    assert (target["group"], target["kind"]) == ("gateway.networking.k8s.io", "Gateway")
    assert patch_policy["spec"]["type"] == "JSONPatch"
    (json_patch,) = patch_policy["spec"]["jsonPatches"]
    assert json_patch["type"] == "type.googleapis.com/envoy.config.listener.v3.Listener"
    namespace, gateway, _listener = json_patch["name"].split("/")
    assert gateway == target["name"] and namespace == patch_policy["metadata"]["namespace"]


def test_envoy_gateway_patch_sets_the_flag_on_the_generated_filter() -> None:
    (policy,) = by_kind(EG, "EnvoyExtensionPolicy")
    (patch_policy,) = by_kind(EG, "EnvoyPatchPolicy")
    (json_patch,) = patch_policy["spec"]["jsonPatches"]
    hcm = eg_generated_hcm(policy)
    # Before the patch: what EnvoyExtensionPolicy alone gives Envoy, without the flag (a hang).
    before = HttpConnectionManager.from_dict(copy.deepcopy(hcm))
    assert before.http_filters[0].typed_config.type_url == WASM_TYPE
    listener = {"name": json_patch["name"],
                "default_filter_chain": {"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                       "typed_config": hcm}]}}
    assert apply_patch(listener, json_patch["operation"]) == 1
    patched = listener["default_filter_chain"]["filters"][0]["typed_config"]
    HttpConnectionManager.from_dict(copy.deepcopy(patched))  # strict, Any included
    wasm = envoy_data_plane.envoy.extensions.filters.http.wasm.v3.Wasm.from_dict(
        {k: v for k, v in patched["http_filters"][0]["typed_config"].items() if k != "@type"})
    check_plugin_config(wasm.config)
    # The router (and any other filter) is untouched.
    assert "config" not in patched["http_filters"][1]["typed_config"]


# --- The Wasm config each manifest gives Envoy, in a real Envoy ---------------------------------

def istio_wasm_config() -> dict[str, Any]:
    (envoy_filter,) = by_kind(ISTIO, "EnvoyFilter")
    (patch,) = [p for p in envoy_filter["spec"]["configPatches"] if p["applyTo"] == "EXTENSION_CONFIG"]
    return copy.deepcopy(patch["patch"]["value"]["typed_config"]["config"])


def eg_wasm_config(*, patched: bool) -> dict[str, Any]:
    (policy,) = by_kind(EG, "EnvoyExtensionPolicy")
    (patch_policy,) = by_kind(EG, "EnvoyPatchPolicy")
    listener = {"filter_chains": [{"filters": [{"typed_config": eg_generated_hcm(policy)}]}]}
    if patched:
        assert apply_patch(listener, patch_policy["spec"]["jsonPatches"][0]["operation"]) == 1
    return listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]["typed_config"]["config"]


def with_local_code(config: dict[str, Any]) -> dict[str, Any]:
    """What Envoy finally loads: istio-agent (and Envoy Gateway's wasm cache) fetch the module and
    Envoy reads the same bytes; here the built module stands in for the pulled image."""
    config = copy.deepcopy(config)
    config["vm_config"]["code"] = {"local": {"filename": WASM_PATH}}
    return config


def envoy_with(config: dict[str, Any], workdir: Path, upstream: RecordingUpstream) -> ShippedEnvoy:
    """envoy/envoy.yaml with its Wasm filter's config replaced by `config`."""
    document = yaml.safe_load((REPO_ROOT / "envoy" / "envoy.yaml").read_text())
    hcm = document["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    (wasm_filter,) = [f for f in hcm["http_filters"] if f["typed_config"]["@type"] == WASM_TYPE]
    wasm_filter["typed_config"]["config"] = config
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "envoy.yaml"
    source.write_text(yaml.safe_dump(document, sort_keys=False))
    return ShippedEnvoy(source, workdir / "run", upstream=upstream.port)


def tools_call(path: str) -> tuple[bytes, str]:
    traceparent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "get_weather", "arguments": {"city": path},
                                  "_meta": {"traceparent": traceparent}}}).encode(), traceparent


def test_manifest_wasm_configs_run_in_envoy(wasm_file: Path, upstream: RecordingUpstream, tmp_path: Path) -> None:
    """The Istio and (patched) Envoy Gateway Wasm configs lift in Envoy 1.40; the Envoy Gateway
    config without the EnvoyPatchPolicy, i.e. what EnvoyExtensionPolicy (or a WasmPlugin) alone
    gives Envoy, hangs the request: the reason the patches exist."""
    gateways = {
        "istio": envoy_with(with_local_code(istio_wasm_config()), tmp_path / "istio", upstream),
        "envoy_gateway": envoy_with(with_local_code(eg_wasm_config(patched=True)), tmp_path / "eg", upstream),
        "without_flag": envoy_with(with_local_code(eg_wasm_config(patched=False)), tmp_path / "noflag", upstream),
    }
    try:
        for gw in gateways.values():
            gw.start()
        for gw in gateways.values():
            gw.wait_ready()
        for name in ("istio", "envoy_gateway"):
            path = f"/mcp/deploy/{name}/{uuid.uuid4().hex[:12]}"
            body, traceparent = tools_call(path)
            r = httpx.post(gateways[name].url(path), content=body, timeout=10,
                           headers={"content-type": "application/json", "accept": "application/json"})
            assert r.status_code == 200, (name, r.status_code, r.text[:200])
            assert upstream.wait_for(path).values("traceparent") == [traceparent], name
            assert gateways[name].counters().get("lifted") == 1, (name, gateways[name].counters())
        path = f"/mcp/deploy/without_flag/{uuid.uuid4().hex[:12]}"
        body, _ = tools_call(path)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(gateways["without_flag"].url(path), content=body, timeout=2,
                       headers={"content-type": "application/json", "accept": "application/json"})
        assert not upstream.records(path)
    finally:
        for gw in gateways.values():
            gw.stop()
