"""deploy/kong/mcp_trace_filter.meta.json accepts exactly what the filter's parser accepts.

Kong (3.4 - 3.10) validates a filter's configuration against the draft-4 `config_schema` of
`<name>.meta.json` before the filter sees it, so the schema must refuse what the filter would
refuse (on ngx_wasm_module a refused configuration leaves the filter unconfigured) and accept
everything it takes. Every document here goes to both: jsonschema's Draft4Validator and the
filter's own Config::parse (examples/check_config.rs), and their verdicts must agree.
"""

import json
import pathlib
import random

import jsonschema
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
META = ROOT / "deploy/kong/mcp_trace_filter.meta.json"

ENUMS = {
    "precedence": ["meta", "header"],
    "baggage": ["meta", "merge", "header", "drop"],
    "header_mismatch": ["reject", "count"],
    "role": ["gateway", "upstream"],
    "host": ["auto", "envoy", "ngx_wasm_module", "higress"],
}
BOOLS = ["span_metadata", "span_headers"]
KEYS = list(ENUMS) + BOOLS + ["max_body_bytes"]

# Values of every JSON type, edge numbers first; each is valid for some key and not others.
ANY_VALUES = [0, 1, 2, 4096, 1048576, 67108863, 67108864, 67108865, 2**31, 2**32, 2**63,
              2**64, 2**70, -1, -67108864, 1.0, 1.5, 0.5, 67108864.0, 1e3, -0.0, True, False,
              None, "", "1", "1048576", "meta", "header", "merge", "drop", "reject", "count",
              "gateway", "upstream", "auto", "envoy", "ngx_wasm_module", "higress", "Meta",
              "META", " meta", "meta ", "kong", "true", [], [1], ["meta"], {}, {"a": 1}]
OTHER_KEYS = ["_", "_rules_", "_match_route_", "_match_domain_", "__x", "_host", "_é",
              "precedance", "Host", "HOST", "host ", " host", "", "x", "rules", "_rules_ ",
              "max-body-bytes", "spanHeaders", "\u00e9", "é_", "max_body_bytes_"]


def schema_validator():
    schema = json.loads(META.read_text())["config_schema"]
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def schema_accepts(validator, text):
    return validator.is_valid(json.loads(text))


def valid_value(rng, key):
    if key in ENUMS:
        return rng.choice(ENUMS[key])
    if key in BOOLS:
        return rng.choice([True, False])
    return rng.choice([1, 2, 8192, 1048576, 67108863, 67108864, rng.randint(1, 67108864)])


def generated_documents(count, seed):
    """Random objects mixing valid and invalid keys and values, as JSON text."""
    rng = random.Random(seed)
    documents = []
    for i in range(count):
        document = {}
        for _ in range(rng.randint(0, 6)):
            roll = rng.random()
            if roll < 0.55:
                key = rng.choice(KEYS)
                document[key] = valid_value(rng, key) if rng.random() < 0.7 else rng.choice(
                    ANY_VALUES)
            elif roll < 0.8:
                key = rng.choice([k for k in OTHER_KEYS if k.startswith("_")])
                document[key] = rng.choice(ANY_VALUES)
            else:
                document[rng.choice(OTHER_KEYS)] = rng.choice(ANY_VALUES)
        documents.append(json.dumps(document, allow_nan=False, ensure_ascii=bool(i % 2)))
    # Not only objects: a document of another type is refused by both.
    for value in ANY_VALUES[:12] + [None, "", [], [{}], True]:
        documents.append(json.dumps(value))
    return documents


# Hand-written: (document, accepted by the filter).
HAND_WRITTEN = [
    ("{}", True),
    ('{"precedence":"meta"}', True),
    ('{"precedence":"header","baggage":"merge","max_body_bytes":4096,"span_headers":true,'
     '"span_metadata":true,"header_mismatch":"count","role":"upstream","host":"ngx_wasm_module"}',
     True),
    ('{"baggage":"drop"}', True),
    ('{"max_body_bytes":1}', True),
    ('{"max_body_bytes":67108864}', True),
    ('{"max_body_bytes":67108865}', False),
    ('{"max_body_bytes":0}', False),
    ('{"max_body_bytes":-1}', False),
    ('{"max_body_bytes":-0}', False),
    ('{"max_body_bytes":1.0}', False),
    ('{"max_body_bytes":1.5}', False),
    ('{"max_body_bytes":1e3}', False),
    ('{"max_body_bytes":1E6}', False),
    ('{"max_body_bytes":18446744073709551616}', False),
    ('{"max_body_bytes":"1048576"}', False),
    ('{"max_body_bytes":true}', False),
    ('{"max_body_bytes":null}', False),
    ('{"span_headers":1}', False),
    ('{"span_headers":"true"}', False),
    ('{"span_metadata":false}', True),
    ('{"span_metadata":null}', False),
    ('{"precedence":"Meta"}', False),
    ('{"precedence":null}', False),
    ('{"baggage":["meta"]}', False),
    ('{"header_mismatch":"allow"}', False),
    ('{"role":"edge"}', False),
    ('{"host":"kong"}', False),
    ('{"host":"higress"}', True),
    ('{"host":"auto"}', True),
    ('{"precedance":"meta"}', False),
    ('{"":1}', False),
    ('{"Host":"envoy"}', False),
    ('{"_rules_":[{"_match_route_":["default/mcp"],"baggage":"drop"}],"host":"higress"}', True),
    ('{"_match_domain_":null,"_":{"anything":[1,2]}}', True),
    ('{"_x":"\\u0000"}', True),
    ('{"baggage":"keep","_ok":1}', False),
    ('{"baggage":"meta","baggage":"drop"}', True),
    ('{"baggage":"bogus","baggage":"drop"}', True),
    ('{"baggage":"drop","baggage":"bogus"}', False),
    ("[]", False),
    ("null", False),
    ('"meta"', False),
    ("1", False),
    ("true", False),
]


@pytest.fixture(scope="module")
def validator():
    return schema_validator()


def test_hand_written_configurations(validator, parse_configs):
    texts = [text for text, _ in HAND_WRITTEN]
    parsed = parse_configs(texts)
    for (text, expected), by_parser in zip(HAND_WRITTEN, parsed):
        assert by_parser == expected, f"parser: {text}"
        assert schema_accepts(validator, text) == expected, f"schema: {text}"


def test_generated_configurations_agree(validator, parse_configs):
    documents = generated_documents(800, seed=8)
    parsed = parse_configs(documents)
    disagreements = [(d, p) for d, p in zip(documents, parsed)
                     if schema_accepts(validator, d) != p]
    assert not disagreements, disagreements[:10]
    accepted = sum(parsed)
    # Both verdicts must be well represented, or the agreement says little.
    assert accepted >= len(documents) // 5, accepted
    assert len(documents) - accepted >= len(documents) // 5, accepted
    print(f"{len(documents)} generated configurations: {accepted} accepted, "
          f"{len(documents) - accepted} rejected, schema and parser agree on all")


def test_every_single_key_value_pair_agrees(validator, parse_configs):
    """Every key (known, underscore, unknown) with every value, alone in its object."""
    documents = [json.dumps({key: value}) for key in KEYS + OTHER_KEYS for value in ANY_VALUES]
    parsed = parse_configs(documents)
    for document, by_parser in zip(documents, parsed):
        assert schema_accepts(validator, document) == by_parser, document


def test_schema_names_every_key_the_filter_knows():
    schema = json.loads(META.read_text())["config_schema"]
    assert set(schema["properties"]) == set(KEYS)
    source = (ROOT / "src/config.rs").read_text()
    for key in KEYS:
        assert f'"{key}" =>' in source, key
    for key, values in ENUMS.items():
        assert schema["properties"][key]["enum"] == values, key
