"""What the API server demands of a CRD's openAPIV3Schema, and what it prunes from objects.

Offline stand-ins for apiextensions-apiserver's checks (pkg/apis/apiextensions/validation and
pkg/apiserver/schema/validation.go, Kubernetes 1.28-1.34): a CRD must carry a *structural*
schema, with value validations (anyOf, allOf, oneOf, not) that only restate what the schema
already specifies, and CEL rules whose inputs are bounded enough to pass the server's cost
estimate. An object is stored *pruned*: fields its schema does not declare are dropped, or
refused when the client asks for fieldValidation=Strict (kubectl's default). Each function
returns messages naming the node in the API server's own path syntax, e.g.
``openAPIV3Schema.properties[spec].additionalProperties``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

import jsonschema

Schema = dict[str, Any]

ROOT: Final = "openAPIV3Schema"
JUNCTORS: Final = ("allOf", "anyOf", "oneOf", "not")
#: The fields of apiextensions.k8s.io/v1 JSONSchemaProps: anything else is an unknown field,
#: which a strict create of the CRD refuses.
KEYWORDS: Final = frozenset(
    {
        "id", "$schema", "$ref", "description", "type", "format", "title", "default",
        "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength",
        "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "multipleOf", "enum",
        "maxProperties", "minProperties", "required", "items", "allOf", "oneOf", "anyOf",
        "not", "properties", "additionalProperties", "patternProperties", "dependencies",
        "additionalItems", "definitions", "externalDocs", "example", "nullable",
        "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string", "x-kubernetes-list-map-keys", "x-kubernetes-list-type",
        "x-kubernetes-map-type", "x-kubernetes-validations",
    }
)  # fmt: skip
#: JSONSchemaProps fields that a CRD may not use.
UNSUPPORTED: Final = ("id", "$ref", "definitions", "dependencies", "patternProperties")
#: What a value validation under a junctor may not set (type only in the int-or-string pattern).
NOT_UNDER_JUNCTORS: Final = (
    "type", "default", "description", "title", "nullable", "additionalProperties",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type", "x-kubernetes-validations",
)  # fmt: skip
INT_OR_STRING: Final = [{"type": "integer"}, {"type": "string"}]
#: The root keywords allowed when the status subresource is on (status is cut out of the
#: schema as properties[status], so nothing at the root may apply to it).
ROOT_WITH_STATUS: Final = frozenset(
    {
        "description", "type", "format", "title", "maximum", "exclusiveMaximum", "minimum",
        "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
        "uniqueItems", "multipleOf", "required", "items", "properties", "externalDocs",
        "example", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-validations",
    }
)  # fmt: skip
_SELF_PATH: Final = re.compile(r"\bself((?:\.[A-Za-z_][A-Za-z0-9_]*)*)")


def nodes(schema: Schema, path: str = ROOT) -> Iterator[tuple[str, Schema]]:
    """The specified nodes: the root, object fields, map values and array items."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from nodes(child, f"{path}.properties[{name}]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}.additionalProperties")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}.items")


def structural_errors(schema: Schema, *, status_subresource: bool = True) -> list[str]:
    """Why the API server would refuse ``schema`` as a CRD's openAPIV3Schema (empty: it won't)."""
    errors = [f"{path}: {error}" for path, node in nodes(schema) for error in _node_errors(node)]
    errors += [f"{ROOT}: {error}" for error in _root_errors(schema, status_subresource)]
    errors += default_errors(schema)
    return errors


def _node_errors(node: Schema) -> Iterator[str]:
    if unknown := sorted(set(node) - KEYWORDS):
        yield f"unknown schema fields {unknown}"
    for key in UNSUPPORTED:
        if key in node:
            yield f"{key} is not supported"
    if node.get("uniqueItems"):
        yield "uniqueItems cannot be set to true (x-kubernetes-list-type: set says it instead)"
    if node.get("properties") and "additionalProperties" in node:
        yield "additionalProperties and properties are mutual exclusive"
    int_or_string = node.get("x-kubernetes-int-or-string", False)
    if int_or_string and node.get("x-kubernetes-preserve-unknown-fields"):
        yield "x-kubernetes-preserve-unknown-fields must be false with x-kubernetes-int-or-string"
    kind = node.get("type")
    if not kind and not (int_or_string or node.get("x-kubernetes-preserve-unknown-fields")):
        yield "type must not be empty (except for int-or-string or preserve-unknown-fields)"
    if kind == "array" and not isinstance(node.get("items"), dict):
        yield "items must be one schema"
    if "x-kubernetes-list-type" in node and kind != "array":
        yield "x-kubernetes-list-type needs type array"
    if "x-kubernetes-map-type" in node and kind != "object":
        yield "x-kubernetes-map-type needs type object"
    for junctor in JUNCTORS:
        if junctor not in node:
            continue
        if junctor == "anyOf" and int_or_string and node["anyOf"] == INT_OR_STRING:
            continue  # the one place a junctor may name types
        branches = [node[junctor]] if junctor == "not" else node[junctor]
        for index, branch in enumerate(branches):
            where = junctor if junctor == "not" else f"{junctor}[{index}]"
            yield from _value_validation_errors(branch, node, where)


def _value_validation_errors(branch: Schema, outside: Schema, where: str) -> Iterator[str]:
    """A junctor's branch may only restrict what ``outside`` specifies, never specify more."""
    for key in NOT_UNDER_JUNCTORS:
        if key in branch:
            yield f"{where}.{key} must not be set under a junctor to be structural"
    for name, child in branch.get("properties", {}).items():
        if name == "metadata":
            yield f"{where}.properties[metadata] must not be specified in a nested context"
        specified = outside.get("properties", {}).get(name)
        if specified is None:
            yield f"{where}.properties[{name}] is not specified outside the junctor"
        else:
            yield from _value_validation_errors(child, specified, f"{where}.properties[{name}]")
    if isinstance(branch.get("items"), dict):
        if not isinstance(outside.get("items"), dict):
            yield f"{where}.items is not specified outside the junctor"
        else:
            yield from _value_validation_errors(branch["items"], outside["items"], f"{where}.items")
    for junctor in JUNCTORS:
        if junctor in branch:
            nested = [branch[junctor]] if junctor == "not" else branch[junctor]
            for index, child in enumerate(nested):
                yield from _value_validation_errors(child, outside, f"{where}.{junctor}[{index}]")


def _root_errors(schema: Schema, status_subresource: bool) -> Iterator[str]:
    if schema.get("type") != "object":
        yield "type must be object at the root"
    if "additionalProperties" in schema:
        yield "additionalProperties must not be used at the root"
    if schema.get("nullable"):
        yield "nullable cannot be true at the root"
    if status_subresource and (extra := sorted(set(schema) - ROOT_WITH_STATUS)):
        yield f"with the status subresource the root may not set {extra}"
    properties = schema.get("properties", {})
    for name in ("apiVersion", "kind"):
        if name in properties and properties[name].get("type") != "string":
            yield f"properties[{name}].type must be string"
    for name in ("apiVersion", "kind", "metadata"):
        if "default" in properties.get(name, {}):
            yield f"properties[{name}].default must not be set in top-level {name}"
    metadata = properties.get("metadata")
    if metadata is not None:
        # ObjectMeta is the API server's: a CRD may only restrict name and generateName.
        if metadata.get("type") != "object" or set(metadata) - {"type", "properties"}:
            yield "properties[metadata] must be just {type: object} (plus name/generateName)"
        if set(metadata.get("properties", {})) - {"name", "generateName"}:
            yield "properties[metadata] must not specify anything other than name and generateName"


def default_errors(schema: Schema) -> list[str]:
    """Defaults the API server refuses: invalid for their own node, or with pruned fields."""
    errors = []
    for path, node in nodes(schema):
        if "default" not in node:
            continue
        for error in jsonschema.Draft4Validator(node).iter_errors(node["default"]):
            errors.append(f"{path}.default: {error.message}")
        for field in unknown_fields(node["default"], node):
            errors.append(f"{path}.default: {field or 'the value'} would be pruned")
    return errors


def cel_cost_errors(schema: Schema) -> list[str]:
    """CEL rules that read a value the API server cannot bound when it estimates their cost.

    A rule's cost is estimated from the largest value its inputs could hold: an array without
    maxItems, or a string without maxLength, is sized to fill a whole request (3 MiB), and a
    rule that searches or iterates it (``'otlp' in self.enabled``) can exceed the per-rule or
    per-CRD limit. Every value a rule reads (``self``, ``self.a.b``) must be bounded.
    """
    errors = []
    for path, node in nodes(schema):
        for index, validation in enumerate(node.get("x-kubernetes-validations", [])):
            where = f"{path}.x-kubernetes-validations[{index}]"
            for dotted in _SELF_PATH.findall(validation["rule"]):
                target, name = node, "self"
                for part in dotted.split(".")[1:]:
                    child = target.get("properties", {}).get(part)
                    if child is None:  # a macro or function, e.g. self.all(...)
                        break
                    target, name = child, f"{name}.{part}"
                errors += [f"{where}: {name} {problem}" for problem in unbounded(target)]
    return sorted(set(errors))


def unbounded(node: Schema) -> list[str]:
    """What leaves the size of a value of ``node`` open (empty: it is bounded)."""
    problems = []
    if node.get("type") == "array":
        if "maxItems" not in node:
            problems.append("is an array without maxItems")
        items = node.get("items", {})
        if items.get("type") == "string" and "maxLength" not in items:
            problems.append("has string items without maxLength")
    if node.get("type") == "string" and "maxLength" not in node:
        problems.append("is a string without maxLength")
    if isinstance(node.get("additionalProperties"), dict) and "maxProperties" not in node:
        problems.append("is a map without maxProperties")
    return problems


def unknown_fields(value: Any, schema: Schema, path: str = "") -> Iterator[str]:
    """Paths in ``value`` that a structural schema does not declare: what pruning drops.

    The API server removes them from what it stores, without a word, or refuses the request
    with ``unknown field`` when the client asks for fieldValidation=Strict. An object node
    without properties or additionalProperties declares no field at all; the root's
    ``metadata`` is ObjectMeta, which the API server prunes by its own schema.
    """
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}"
            if key in properties:
                if not (path == "" and key == "metadata"):
                    yield from unknown_fields(item, properties[key], where)
            elif isinstance(additional, dict):
                yield from unknown_fields(item, additional, where)
            elif additional is not True:
                yield where
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from unknown_fields(item, schema["items"], f"{path}[{index}]")
