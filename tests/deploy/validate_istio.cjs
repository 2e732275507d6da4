// Validates Istio resources against Istio's CRD schemas (npm @kubernetes-models/istio, installed by
// scripts/setup.sh into .venv/node). Reads a JSON array of resources on stdin and prints one JSON
// result per resource: {"kind", "name", "errors": [...]}; exit status 1 if any resource has errors.
//
// Two checks per resource:
//  1. the package's own validator (ajv on the CRD's OpenAPI schema: types, enums, required fields);
//  2. no unknown fields, the way `kubectl apply` (strict field validation) refuses them: every key
//     of an object must be a property of its schema, unless the schema is free-form (has
//     additionalProperties, or lists no properties at all: that is how the package renders
//     x-kubernetes-preserve-unknown-fields, e.g. an EnvoyFilter patch's `value`, which the Python
//     test parses as an Envoy message instead). `metadata` is checked by (1) only.
"use strict";

const path = require("path");
const modules = path.resolve(__dirname, "../../.venv/node/node_modules");
const resolveFrom = (name) => require.resolve(name, { paths: [modules] });

// The package registers each schema with @kubernetes-models/validate when it first validates;
// catch the schemas on the way in so check (2) can walk them.
const schemas = new Map();
const validate = require(resolveFrom("@kubernetes-models/validate"));
const register = validate.register;
validate.register = (id, schema) => {
  schemas.set(id, schema);
  return register(id, schema);
};

const kinds = {
  "networking.istio.io/v1alpha3/EnvoyFilter": [
    "@kubernetes-models/istio/networking.istio.io/v1alpha3/EnvoyFilter", "EnvoyFilter",
    "networking.istio.io.v1alpha3.EnvoyFilter"],
  "extensions.istio.io/v1alpha1/WasmPlugin": [
    "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin", "WasmPlugin",
    "extensions.istio.io.v1alpha1.WasmPlugin"],
};

function unknownFields(value, schema, where, out) {
  if (value === null || typeof value !== "object" || schema === undefined) return;
  if (Array.isArray(value)) {
    value.forEach((item, i) => unknownFields(item, schema.items, `${where}[${i}]`, out));
    return;
  }
  const props = schema.properties;
  if (props === undefined || schema.additionalProperties !== undefined) return;
  if (Object.keys(props).length === 0) return; // free-form (preserve-unknown-fields)
  for (const [key, item] of Object.entries(value)) {
    if (!(key in props)) out.push(`${where}.${key}: unknown field`);
    else unknownFields(item, props[key], `${where}.${key}`, out);
  }
}

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  let failed = false;
  for (const resource of JSON.parse(input)) {
    const key = `${resource.apiVersion}/${resource.kind}`;
    const name = resource.metadata && resource.metadata.name;
    const errors = [];
    const known = kinds[key];
    if (known === undefined) {
      errors.push(`no Istio schema for ${key}`);
    } else {
      const [module, className, schemaId] = known;
      const Model = require(resolveFrom(module))[className];
      try {
        new Model(resource).validate();
      } catch (err) {
        errors.push(`schema: ${err.message}`);
      }
      const schema = schemas.get(schemaId);
      if (schema === undefined) errors.push(`schema ${schemaId} was not registered`);
      else {
        const { metadata, ...rest } = resource;
        unknownFields(rest, schema, key, errors);
      }
    }
    if (errors.length) failed = true;
    console.log(JSON.stringify({ kind: resource.kind, name, errors }));
  }
  process.exit(failed ? 1 : 0);
});
