"""The Grafana dashboard: every query parses with Prometheus' own parser and names only exported metrics.

The dashboard is ``charts/payscope-operator/dashboards/payscope.json`` (the chart ships
that file in a ConfigMap). Each panel query and each template-variable selector is
parsed by ``github.com/prometheus/prometheus/promql/parser`` (``tests.testenv.promql``),
after Grafana's variables are replaced by what Grafana would put there. The metric
names each query selects must be among the series a running operator exports: the
operator runs over a whole installation, provisions it, and corrects a drift, so the
provisioning and drift counters the dashboard plots have real samples too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import neo4j
import pytest
from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families

from tests import installation
from tests.conftest import unique
from tests.e2e import cluster
from tests.testenv import promql

DASHBOARD = Path(__file__).resolve().parents[2] / "charts/payscope-operator/dashboards/payscope.json"
GRAFANA_DURATIONS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h"}
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
_LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?(\w+)\)$")
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"), "gauge": ("",)}


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and template-variable selector, variables substituted."""
    dashboard = _dashboard()
    found = [(f"panel {p['title']!r}", t["expr"]) for p in _panels(dashboard) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = _LABEL_VALUES.match(variable["definition"])
            assert match, variable["definition"]
            if match.group(1):
                found.append((f"variable {variable['name']!r}", match.group(1)))
    return [(where, _substitute(expr)) for where, expr in found]


def _substitute(expr: str) -> str:
    for macro, value in GRAFANA_DURATIONS.items():
        expr = expr.replace(macro, value)
    expr = _VARIABLE.sub(".*", expr)  # a multi-value variable set to All (allValue .*), inside a regex matcher
    assert "$" not in expr, expr
    return expr


def exported_names(exposition: str) -> set[str]:
    """Every series name a scrape can return, from the # TYPE lines (families without samples included)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            base = family.removesuffix("_total") if kind == "counter" else family
            names.update(base + suffix for suffix in _SUFFIXES.get(kind, ("",)))
    return names


def _sample(exposition: str, name: str, labels: dict[str, str]) -> float:
    """The value of the first sample ``name`` whose labels include ``labels`` (0 when none)."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return 0.0


def test_every_query_parses_with_prometheus_parser() -> None:
    found = expressions()
    assert len(found) >= 20
    parsed = promql.parse([expr for _, expr in found])
    failures = [f"{where}: {r.error}\n  {r.expr}" for (where, _), r in zip(found, parsed, strict=True) if r.error]
    assert not failures, "\n".join(failures)
    assert all(result.metrics for result in parsed), "every query selects a metric"


def test_the_dashboard_covers_what_platform_teams_watch() -> None:
    dashboard = _dashboard()
    titles = {p["title"] for p in _panels(dashboard)}
    assert {
        "Dimension states over time",
        "Dimension scores over time",
        "Failing checks",
        "Failing checks by id over time",
        "Audit duration",
        "Errors by stage",
        "Provisioning changes",
        "Drift corrections",
        "Watch staleness",
    } <= titles
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in _panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
    dimension_query = next(
        t["expr"] for p in _panels(dashboard) if p["title"] == "Dimension states over time" for t in p["targets"]
    )
    for dimension in ("Infrastructure", "DataLayer", "Pipeline", "Agents", "APIs", "Observability", "Security"):
        assert f"{dimension}Ready" in dimension_query


@pytest.fixture
def scraped(
    operator_identity: tuple[str, Path, str], kube_api: k8s.ApiClient, testenv: dict[str, str], tmp_path: Path
) -> str:
    """/metrics of an operator that provisioned an installation and corrected one drift."""
    _, kubeconfig, _ = operator_identity
    namespace = unique("t-")
    k8s.CoreV1Api(kube_api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
    inst = installation.build(kube_api, namespace, testenv, tmp_path)
    running = cluster.start_operator(kubeconfig, tmp_path / "operator.log", namespaces=(namespace,))
    try:
        cluster.create_psd(kube_api, namespace, inst.name, inst.spec)

        def provisioned() -> Any:
            obj = cluster.psd(kube_api, namespace, inst.name)
            return cluster.conditions(obj).get("Provisioned", {}).get("status") == "True" and obj

        obj = cluster.wait_for(provisioned, what="Provisioned True", timeout=60, interval=0.5)
        constraint = next(i["name"] for i in obj["status"]["provisioned"]["neo4j"] if i["kind"] == "Constraint")
        auth = (testenv["PAYSCOPE_NEO4J_USER"], testenv["PAYSCOPE_NEO4J_PASSWORD"])
        with neo4j.GraphDatabase.driver(testenv["PAYSCOPE_NEO4J_URI"], auth=auth) as driver:
            driver.execute_query(f"DROP CONSTRAINT {constraint}")  # test-authored name from status
        drift = {"namespace": namespace, "name": inst.name, "system": "neo4j"}

        def corrected() -> str | None:
            (tmp_path / "metrics.txt").write_text(text := running.metrics())  # kept for a failure's diagnosis
            return text if _sample(text, "payscope_drift_corrections_total", drift) else None

        found: str = cluster.wait_for(corrected, what="the drift counter", timeout=40, interval=0.5)
        return found
    finally:
        running.stop()
        cluster.delete_psd(kube_api, namespace, inst.name)
        inst.stop()


def test_queries_name_only_metrics_the_operator_exports(scraped: str) -> None:
    exported = exported_names(scraped)
    assert "payscope_provisioning_changes_total" in exported
    assert _sample(scraped, "payscope_provisioning_changes_total", {"system": "neo4j", "verb": "create"})
    found = expressions()
    unknown = {
        f"{where}: {metric}"
        for (where, _), result in zip(found, promql.parse([e for _, e in found]), strict=True)
        for metric in result.metrics
        if metric not in exported
    }
    assert not unknown, f"the dashboard names metrics the operator does not export: {sorted(unknown)}"
