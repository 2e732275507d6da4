"""Structural checks of deploy/kong and deploy/higress.

No Kong, nginx or Higress runs here, and no registry package carries Kong's declarative schema
or Higress's WasmPlugin CRD schema, so these read the files and check what the filter needs
from them; every filter configuration in them also goes through the filter's own parser (and,
for Kong, the meta.json schema).
"""

import json
import pathlib
import re

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
KONG = ROOT / "deploy/kong"
HIGRESS = ROOT / "deploy/higress"
DEFAULT_MAX_BODY_BYTES = 1048576


def owned_headers():
    """The headers the filter writes, from its header table (src/header_policy.rs)."""
    source = (ROOT / "src/header_policy.rs").read_text()
    names = re.findall(r'\(\s*"([^"]+)",\s*Use::Owned', source)
    assert "x-mcp-span-name" in names and len(names) >= 5, names
    return names


def kong_conf():
    settings = {}
    for line in (KONG / "kong.conf").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, value = (part.strip() for part in line.split("=", 1))
            assert name not in settings, f"{name} set twice"
            settings[name] = value
    return settings


def nginx_size(text):
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", text)
    assert match, text
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    return int(match.group(1)) * scale


def kong_filters():
    document = yaml.safe_load((KONG / "kong.yml").read_text())
    assert document["_format_version"] == "3.0"
    chains = list(document.get("filter_chains", []))
    for service in document.get("services", []):
        chains += service.get("filter_chains", [])
        for route in service.get("routes", []):
            chains += route.get("filter_chains", [])
    filters = [f for chain in chains for f in chain["filters"] if chain.get("enabled", True)]
    assert filters, "kong.yml has no filter chain"
    return document, filters


def test_kong_conf_turns_wasm_on_with_a_body_buffer_that_holds_max_body_bytes():
    settings = kong_conf()
    assert settings["wasm"] == "on"
    assert settings["wasm_filters_path"].startswith("/")
    buffer = nginx_size(settings["nginx_http_client_body_buffer_size"])
    _, filters = kong_filters()
    for f in filters:
        assert buffer >= f["config"].get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    assert settings.get("nginx_http_client_max_body_size", "0") == "0"


def test_kong_filter_name_is_the_wasm_and_meta_file_name(parse_configs):
    _, filters = kong_filters()
    assert (KONG / "mcp_trace_filter.meta.json").is_file()
    validator = jsonschema.Draft4Validator(
        json.loads((KONG / "mcp_trace_filter.meta.json").read_text())["config_schema"])
    for f in filters:
        assert f["name"] == "mcp_trace_filter"  # mcp_trace_filter.wasm in wasm_filters_path
        assert validator.is_valid(f["config"]), f["config"]
        assert parse_configs([json.dumps(f["config"])]) == [True]
        assert f["config"]["host"] == "ngx_wasm_module"


def test_kong_drops_client_copies_of_owned_headers_and_tracestate():
    document, _ = kong_filters()
    plugins = [p for s in document["services"] for p in s.get("plugins", [])]
    transformer = [p for p in plugins if p["name"] == "request-transformer"]
    assert len(transformer) == 1, plugins
    removed = transformer[0]["config"]["remove"]["headers"]
    assert sorted(removed) == sorted(owned_headers() + ["tracestate"])
    # The plugin sits on the same service as the filter chain.
    for service in document["services"]:
        if service.get("filter_chains"):
            assert any(p["name"] == "request-transformer" for p in service["plugins"])


# Fields of Higress's WasmPlugin spec (higress api, extensions/v1alpha1/wasm.proto) this
# manifest may use, and those of a matchRules entry.
WASMPLUGIN_FIELDS = {"url", "sha256", "imagePullPolicy", "imagePullSecret", "phase", "priority",
                     "defaultConfig", "defaultConfigDisable", "matchRules", "pluginName",
                     "failStrategy"}
MATCH_RULE_FIELDS = {"ingress", "domain", "service", "config", "configDisable"}


def higress_plugin():
    documents = list(yaml.safe_load_all((HIGRESS / "wasmplugin.yaml").read_text()))
    assert len(documents) == 1
    return documents[0]


def test_higress_wasmplugin_structure():
    plugin = higress_plugin()
    assert plugin["apiVersion"] == "extensions.higress.io/v1alpha1"
    assert plugin["kind"] == "WasmPlugin"
    assert plugin["metadata"]["name"]
    spec = plugin["spec"]
    assert set(spec) <= WASMPLUGIN_FIELDS, set(spec) - WASMPLUGIN_FIELDS
    assert spec["url"].startswith("oci://")
    assert spec["phase"] in {"UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"}
    assert isinstance(spec["priority"], int)
    assert spec["imagePullPolicy"] in {"UNSPECIFIED_POLICY", "IfNotPresent", "Always"}
    assert isinstance(spec["defaultConfig"], dict)
    assert spec["matchRules"]
    kinds = set()
    for rule in spec["matchRules"]:
        assert set(rule) <= MATCH_RULE_FIELDS, rule
        selectors = [k for k in ("ingress", "domain", "service") if k in rule]
        assert len(selectors) == 1, rule
        assert all(isinstance(v, str) and v for v in rule[selectors[0]])
        kinds.add(selectors[0])
        assert isinstance(rule["config"], dict)
    assert {"ingress", "domain"} <= kinds


def test_higress_configs_load_in_the_filter(parse_configs):
    spec = higress_plugin()["spec"]
    configs = [spec["defaultConfig"]] + [rule["config"] for rule in spec["matchRules"]]
    for config in configs:
        assert config["host"] == "higress"
        assert config["span_metadata"] is True
    # What Higress hands the filter at run time: defaultConfig plus its own `_rules_` keys.
    rules = []
    for rule in spec["matchRules"]:
        entry = dict(rule["config"])
        if "ingress" in rule:
            entry["_match_route_"] = rule["ingress"]
        if "domain" in rule:
            entry["_match_domain_"] = rule["domain"]
        rules.append(entry)
    runtime = dict(spec["defaultConfig"], _rules_=rules)
    documents = [json.dumps(c) for c in configs + [runtime]]
    assert parse_configs(documents) == [True] * len(documents)
