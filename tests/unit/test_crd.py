"""The generated CRD: golden files, structural schema, bounds for CEL cost, printer columns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from payscope_operator.api import conditions, crd

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_FILES = [
    ROOT / "crds/payscope.io_payscopedeployments.yaml",
    ROOT / "charts/payscope-operator/crds/payscope.io_payscopedeployments.yaml",
]
REGENERATE = "regenerate: python -m payscope_operator.api.crd " + " ".join(
    f"-o {path.relative_to(ROOT)}" for path in GOLDEN_FILES
)


def _version() -> dict[str, Any]:
    versions: list[dict[str, Any]] = crd.build_crd()["spec"]["versions"]
    assert len(versions) == 1
    return versions[0]


def _root_schema() -> dict[str, Any]:
    schema: dict[str, Any] = _version()["schema"]["openAPIV3Schema"]
    return schema


def _nodes(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node below ``node`` with its path."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _nodes(node[key], f"{path}[{key}]")


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_golden_file_matches_models(path: Path) -> None:
    assert path.read_text(encoding="utf-8") == crd.render_crd_yaml(), REGENERATE


def test_rendering_is_deterministic_and_parses_back() -> None:
    text = crd.render_crd_yaml()
    assert text == crd.render_crd_yaml()
    assert yaml.safe_load(text) == crd.build_crd()


def test_identity_names_and_subresources() -> None:
    body = crd.build_crd()
    assert body["apiVersion"] == "apiextensions.k8s.io/v1"
    assert body["metadata"]["name"] == "payscopedeployments.payscope.io"
    spec = body["spec"]
    assert (spec["group"], spec["scope"]) == ("payscope.io", "Namespaced")
    assert spec["names"]["kind"] == "PayScopeDeployment"
    assert spec["names"]["plural"] == "payscopedeployments"
    assert spec["names"]["shortNames"] == ["psd"]
    assert spec["names"]["categories"] == ["payscope"]
    version = _version()
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_schema_is_structural() -> None:
    forbidden = {
        "$ref",
        "$defs",
        "anyOf",
        "allOf",
        "oneOf",
        "nullable",
        "title",
        "x-kubernetes-preserve-unknown-fields",
    }
    for path, node in _nodes(_root_schema(), "root"):
        assert not forbidden & node.keys(), path
        assert node.get("type") in {"object", "array", "string", "integer", "boolean"}, path
        assert node.get("additionalProperties") is not False, path
        if node["type"] == "object" and path != "root.metadata":
            assert "properties" in node or "additionalProperties" in node, path
        if node["type"] == "array":
            assert "items" in node, path
        for default in [node["default"]] if "default" in node else []:
            assert default is not None, path
            assert default != [], path


def test_every_spec_and_status_field_is_documented() -> None:
    root = _root_schema()
    for section in ("spec", "status"):
        for path, node in _nodes(root["properties"][section], section):
            if not path.endswith("[items]") and not path.endswith("[additionalProperties]"):
                assert node.get("description"), f"{path} has no description"


def test_spec_is_bounded_for_cel_cost() -> None:
    for path, node in _nodes(_root_schema()["properties"]["spec"], "spec"):
        if node["type"] == "array":
            assert "maxItems" in node, f"{path}: arrays need maxItems"
        if node["type"] == "string":
            assert "maxLength" in node or "enum" in node, f"{path}: strings need maxLength"
        if node["type"] == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, f"{path}: maps need maxProperties"


def test_defaults_and_cel_rules_are_in_place() -> None:
    props = _root_schema()["properties"]
    assert props["status"]["default"] == {}
    assert props["status"]["properties"]["observedGeneration"]["default"] == -1
    assert props["spec"]["default"] == {}
    assert props["spec"]["properties"]["managementPolicy"]["default"] == "Full"
    assert props["spec"]["properties"]["deletionPolicy"]["default"] == "Retain"
    index = props["spec"]["properties"]["pinecone"]["properties"]["indexes"]
    assert index["x-kubernetes-list-type"] == "map"
    assert index["x-kubernetes-list-map-keys"] == ["name"]
    rules = index["items"]["x-kubernetes-validations"]
    assert {"rule": "has(self.serverless) != has(self.pod)", "fieldPath": ".serverless"}.items() <= rules[0].items()
    conditions_schema = props["status"]["properties"]["conditions"]
    assert conditions_schema["x-kubernetes-list-map-keys"] == ["type"]


def test_printer_columns() -> None:
    columns = {column["name"]: column for column in _version()["additionalPrinterColumns"]}
    expected = ["Ready", "Reason", "Infra", "Data", "Pipeline", "Agents", "APIs", "Obs", "Security", "Age", "Message"]
    assert list(columns) == expected
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Reason"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].reason'
    for dimension in conditions.Dimension:
        column = columns[crd.DIMENSION_COLUMNS[dimension]]
        assert column["jsonPath"] == f'.status.conditions[?(@.type=="{dimension.condition_type}")].status'
    assert columns["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    assert columns["Message"]["priority"] == 1


def test_main_prints_and_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert crd.main([]) == 0
    assert capsys.readouterr().out == crd.render_crd_yaml()
    target = tmp_path / "crd.yaml"
    assert crd.main(["-o", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == crd.render_crd_yaml()
    assert capsys.readouterr().out == ""
