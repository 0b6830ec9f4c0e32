"""Generation of the PayScopeDeployment CustomResourceDefinition from the pydantic models.

Why this module exists: the models in ``spec`` and ``status`` are the single source of
truth; ``build_crd`` turns their JSON schema into an apiextensions.k8s.io/v1 CRD with a
structural schema (refs inlined, Optional flattened, no ``additionalProperties: false``,
defaults without nulls, CEL rules kept), and ``render_crd_yaml`` is the exact text of
``crds/`` and the chart's CRD, which a golden test compares. ``payscope-operator crd``
and ``python -m payscope_operator.api.crd`` print it.

What it must not do: talk to a cluster (applying the CRD is the installer's job), or
invent schema that the models do not declare: anything the apiserver enforces must be
enforced by pydantic too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from payscope_operator.api import conditions, fields, spec, status

GROUP = "payscope.io"
VERSION = "v1alpha1"
KIND = "PayScopeDeployment"
PLURAL = "payscopedeployments"
SINGULAR = "payscopedeployment"
SHORT_NAMES = ("psd",)
CATEGORIES = ("payscope",)
CRD_NAME = f"{PLURAL}.{GROUP}"
API_VERSION = f"{GROUP}/{VERSION}"

HEADER = (
    "# Generated from the pydantic models in payscope_operator.api by `payscope-operator crd`\n"
    "# (python -m payscope_operator.api.crd). Do not edit: change the models and regenerate.\n"
)

Schema = dict[str, Any]

DIMENSION_COLUMNS = {
    conditions.Dimension.INFRASTRUCTURE: "Infra",
    conditions.Dimension.DATA_LAYER: "Data",
    conditions.Dimension.PIPELINE: "Pipeline",
    conditions.Dimension.AGENTS: "Agents",
    conditions.Dimension.APIS: "APIs",
    conditions.Dimension.OBSERVABILITY: "Obs",
    conditions.Dimension.SECURITY: "Security",
}
"""Printer column name of each dimension condition."""

# Keywords an apiextensions/v1 schema must not contain once generation is done.
_FORBIDDEN = ("$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "const", "uniqueItems", "nullable", "propertyNames")
_ORDER = (
    "description", "type", "format", "enum", "default", "minimum", "maximum", "minLength", "maxLength",
    "pattern", "minItems", "maxItems", "maxProperties", "required", "properties", "additionalProperties",
    "items", "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-validations",
)  # fmt: skip


def _resolve(node: Any, defs: Schema) -> Any:
    """Inline ``$ref``s and flatten ``anyOf: [X, null]``; outer keys override the referenced ones."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    outer = {key: value for key, value in node.items() if key not in ("$ref", "allOf", "anyOf")}
    inner: Schema | None = None
    if "$ref" in node:
        inner = defs[node["$ref"].removeprefix("#/$defs/")]
    elif "allOf" in node and len(node["allOf"]) == 1:
        inner = node["allOf"][0]
    elif "anyOf" in node:
        branches = [branch for branch in node["anyOf"] if branch != {"type": "null"}]
        if len(branches) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {node['anyOf']}")
        inner = branches[0]
        if outer.get("default", ...) is None:
            del outer["default"]
    elif "allOf" in node:
        raise ValueError(f"cannot express allOf in a structural schema: {node['allOf']}")
    resolved = {key: _resolve(value, defs) for key, value in outer.items()}
    if inner is None:
        return resolved
    merged: Schema = _resolve(inner, defs)
    rules = merged.get("x-kubernetes-validations", []) + resolved.pop("x-kubernetes-validations", [])
    merged.update(resolved)
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


def _prune_default(value: Any) -> Any:
    """Drop nulls and empty lists from a default: absent and empty mean the same to the models."""
    if isinstance(value, dict):
        return {k: _prune_default(v) for k, v in value.items() if v is not None and v != []}
    return value


def _clean(node: Schema, path: str) -> Schema:
    """Make one resolved schema node structural and canonically ordered; fail on what k8s rejects."""
    node = {key: value for key, value in node.items() if key != "title"}
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    if "default" in node and (node["default"] is None or node["default"] == []):
        del node["default"]
    elif "default" in node:
        node["default"] = _prune_default(node["default"])
    for key in _FORBIDDEN:
        if key in node:
            raise ValueError(f"{path}: {key} is not allowed in a structural schema")
    kind = node.get("type")
    if kind not in ("object", "array", "string", "integer", "number", "boolean"):
        raise ValueError(f"{path}: every schema needs a type, got {kind!r}")
    if kind == "array" and ({"minLength", "maxLength", "pattern"} & node.keys() or "items" not in node):
        raise ValueError(f"{path}: arrays need items and no string constraints")
    if kind == "object" and "properties" not in node and "additionalProperties" not in node:
        raise ValueError(f"{path}: objects need properties or additionalProperties")
    if not isinstance(node.get("exclusiveMinimum", False), bool) or not isinstance(
        node.get("exclusiveMaximum", False), bool
    ):
        raise ValueError(f"{path}: use ge/le, not gt/lt (OpenAPI v3.0 exclusive bounds are booleans)")
    if "x-kubernetes-validations" in node:
        node["x-kubernetes-validations"] = [
            {key: rule[key] for key in ("rule", "message", "fieldPath", "reason") if key in rule}
            for rule in node["x-kubernetes-validations"]
        ]
    if "properties" in node:
        node["properties"] = {name: _clean(sub, f"{path}.{name}") for name, sub in node["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            node[key] = _clean(node[key], f"{path}.{key}")
    rank = {key: index for index, key in enumerate(_ORDER)}
    return dict(sorted(node.items(), key=lambda item: rank.get(item[0], len(rank))))


def structural_schema(model: type[fields.SpecModel], path: str) -> Schema:
    """The structural OpenAPI v3 schema of one model, as a CRD embeds it."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    cleaned: Schema = _clean(_resolve(raw, defs), path)
    return cleaned


def _condition_column(name: str, condition_type: conditions.ConditionType, field: str = "status") -> Schema:
    return {
        "name": name,
        "type": "string",
        "jsonPath": f'.status.conditions[?(@.type=="{condition_type.value}")].{field}',
    }


def printer_columns() -> list[Schema]:
    """Ready, Reason, one column per audit dimension, Age (and Message with -o wide)."""
    ready = conditions.ConditionType.READY
    columns = [_condition_column("Ready", ready), _condition_column("Reason", ready, "reason")]
    columns += [_condition_column(DIMENSION_COLUMNS[d], d.condition_type) for d in conditions.Dimension]
    columns.append({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
    columns.append({**_condition_column("Message", ready, "message"), "priority": 1})
    return columns


def _with_default(schema: Schema, default: Any) -> Schema:
    """``schema`` with a default, placed after description and type for readability."""
    head = {"description": schema["description"], "type": schema["type"], "default": default}
    return {**head, **{key: value for key, value in schema.items() if key not in head}}


def build_crd() -> Schema:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of PayScopeDeployment."""
    spec_schema = structural_schema(spec.PayScopeSpec, "spec")
    status_schema = structural_schema(status.PayScopeStatus, "status")
    root: Schema = {
        "description": "PayScopeDeployment provisions PayScope's data layer and audits the installation"
        " against the production-readiness checklist.",
        "type": "object",
        "properties": {
            "apiVersion": {"description": "APIVersion of this object.", "type": "string"},
            "kind": {"description": "Kind of this object.", "type": "string"},
            "metadata": {"type": "object"},
            "spec": _with_default(spec_schema, {}),
            "status": _with_default(status_schema, {}),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "payscope-operator", "app.kubernetes.io/component": "crd"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printer_columns(),
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render_crd_yaml() -> str:
    """The CRD as YAML: deterministic, keys in generation order, no line folding."""
    body = yaml.safe_dump(build_crd(), sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 16)
    return HEADER + body


def main(argv: Sequence[str] | None = None) -> int:
    """Print the CRD, or write it to each ``--output`` file."""
    parser = argparse.ArgumentParser(prog="python -m payscope_operator.api.crd", description=main.__doc__)
    parser.add_argument("-o", "--output", action="append", type=Path, default=[], help="file to write")
    args = parser.parse_args(argv)
    text = render_crd_yaml()
    for path in args.output:
        path.write_text(text, encoding="utf-8")
    if not args.output:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
