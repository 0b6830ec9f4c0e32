"""Render the resource reference (``docs/resource.md``) from the generated CRD schema.

Every field of ``spec`` and ``status`` with its type, default, constraints and
description, plus the condition and reason catalog: generated, never written by
hand, so the documentation cannot drift from the models (a test compares).
Run ``python -m payscope_operator.api.reference > docs/resource.md``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

from payscope_operator.api import conditions, crd


def _type(node: dict[str, Any]) -> str:
    kind = node.get("type", "object")
    if kind == "array":
        return f"[]{_type(node.get('items', {}))}"
    if kind == "object" and "additionalProperties" in node:
        return f"map[string]{_type(node['additionalProperties'])}"
    return str(kind)


def _constraints(node: dict[str, Any]) -> str:
    parts = []
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`")
    for key, word in (("minimum", "≥"), ("maximum", "≤"), ("minLength", "length ≥"), ("maxLength", "length ≤"),
                      ("minItems", "items ≥"), ("maxItems", "items ≤")):  # fmt: skip
        if key in node:
            parts.append(f"{word} {node[key]}")
    for rule in node.get("x-kubernetes-validations", []):
        parts.append(f"rule: {rule.get('message', rule['rule'])}")
    return "; ".join(parts)


def _rows(node: dict[str, Any], path: str, required: bool) -> Iterator[tuple[str, str, str, str, str]]:
    default = json.dumps(node["default"]) if "default" in node else ""
    yield (
        path,
        _type(node),
        ("yes" if required else ""),
        default,
        _constraints(node) + ((" — " if _constraints(node) else "") + node.get("description", "")),
    )
    target = node.get("items", node) if node.get("type") == "array" else node
    needed = set(target.get("required", []))
    for name, child in (target.get("properties") or {}).items():
        suffix = "[]" if node.get("type") == "array" else ""
        yield from _rows(child, f"{path}{suffix}.{name}", name in needed)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown() -> str:
    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    lines = [
        "# PayScopeDeployment reference",
        "",
        f"`{crd.GROUP}/{crd.VERSION}`, kind `{crd.KIND}`, short name `psd`. Generated from the pydantic models by",
        "`python -m payscope_operator.api.reference`; do not edit by hand.",
        "",
    ]
    for section in ("spec", "status"):
        lines += [
            f"## {section}",
            "",
            "| field | type | required | default | constraints and meaning |",
            "|---|---|---|---|---|",
        ]
        for path, kind, required, default, text in _rows(schema[section], section, False):
            if path == section:
                continue
            lines.append(f"| `{path}` | {kind} | {required} | {_escape(default)} | {_escape(text)} |")
        lines.append("")
    lines += ["## Conditions", "", "| type | meaning |", "|---|---|"]
    lines += [f"| `{t.value}` | {_escape(_CONDITION_MEANING[t])} |" for t in conditions.ConditionType]
    lines += ["", "## Reasons", "", "| reason | meaning |", "|---|---|"]
    lines += [f"| `{reason}` | {_escape(meaning)} |" for reason, meaning in conditions.reason_table()]
    lines.append("")
    return "\n".join(lines)


_CONDITION_MEANING = {
    conditions.ConditionType.READY: "The summary, worst-wins over the others; False while Reconciling or Stalled.",
    conditions.ConditionType.RECONCILING: "True while work for the current generation is in progress.",
    conditions.ConditionType.STALLED: "True when retrying cannot help: bad spec, missing Secret, no permission.",
    conditions.ConditionType.PROVISIONED: "Every declared external object exists and matches the spec.",
    **{
        d.condition_type: f"Audit dimension {d.letter}: every configured {d.value} check passes."
        for d in conditions.Dimension
    },
}


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
