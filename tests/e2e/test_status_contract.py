"""The status contract, end to end: the operator as a ServiceAccount on a real kube-apiserver."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import httpx
from kubernetes import client as k8s

from payscope_operator.api import conditions as api_conditions
from tests.e2e import cluster
from tests.e2e.conftest import RunningOperator

ALL_TYPES = {t.value for t in api_conditions.ConditionType}


def _workload_spec(interval: str = "2s") -> dict[str, Any]:
    return {"workloads": {"api": {"name": "payscope-api"}}, "audit": {"interval": interval, "probeTimeout": "1s"}}


def _settled(api: k8s.ApiClient, namespace: str, name: str, generation: int | None = None) -> Any:
    obj = cluster.psd(api, namespace, name)
    want = generation if generation is not None else obj["metadata"]["generation"]
    status = obj.get("status") or {}
    if status.get("observedGeneration") != want:
        return None
    conds = cluster.conditions(obj)
    if set(conds) != ALL_TYPES or conds["Reconciling"]["status"] == "True":
        return None
    return obj


def test_sample_gets_a_full_status_within_ten_seconds(
    operator: RunningOperator, kube_api: k8s.ApiClient, namespace: str
) -> None:
    cluster.create_deployment(kube_api, namespace, "payscope-api")
    started = time.monotonic()
    cluster.create_psd(kube_api, namespace, "sample", _workload_spec())
    obj = cluster.wait_for(lambda: _settled(kube_api, namespace, "sample"), what="settled status", timeout=10)
    assert time.monotonic() - started < 10
    conds = cluster.conditions(obj)
    for ctype, cond in conds.items():
        assert cond["reason"], ctype
        assert cond["observedGeneration"] == obj["metadata"]["generation"]
    assert conds["InfrastructureReady"]["status"] == "True"
    assert conds["Ready"]["status"] == "True", conds["Ready"]
    assert conds["Stalled"]["status"] == "False"
    assert obj["status"]["dimensions"]["Infrastructure"]["score"] == 100
    ids = [c["id"] for c in obj["status"]["checks"]]
    assert "A.workloads.api_available" in ids


def test_kubectl_get_shows_dimension_columns(
    operator: RunningOperator, kube_api: k8s.ApiClient, namespace: str
) -> None:
    cluster.create_deployment(kube_api, namespace, "payscope-api")
    cluster.create_psd(kube_api, namespace, "cols", _workload_spec())
    cluster.wait_for(lambda: _settled(kube_api, namespace, "cols"), what="settled status", timeout=15)
    out = subprocess.run(
        ["kubectl", "get", "psd", "cols", "-n", namespace], capture_output=True, text=True, check=True
    ).stdout
    header = out.splitlines()[0].split()
    for column in ("READY", "REASON", "INFRA", "DATA", "PIPELINE", "AGENTS", "APIS", "OBS", "SECURITY", "AGE"):
        assert column in header, out
    row = out.splitlines()[1].split()
    assert row[header.index("READY")] == "True"
    assert row[header.index("INFRA")] == "True"


def test_failing_workload_turns_infrastructure_false_and_back(
    operator: RunningOperator, kube_api: k8s.ApiClient, namespace: str
) -> None:
    cluster.create_deployment(kube_api, namespace, "payscope-api")
    cluster.create_psd(kube_api, namespace, "flip", _workload_spec())
    cluster.wait_for(lambda: _settled(kube_api, namespace, "flip"), what="settled", timeout=15)
    cluster.set_deployment_available(kube_api, namespace, "payscope-api", 0, 2)

    conds = cluster.wait_condition(kube_api, namespace, "flip", "InfrastructureReady", "False", timeout=10)
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "ChecksFailing"
    checks = {c["id"]: c for c in cluster.psd(kube_api, namespace, "flip")["status"]["checks"]}
    assert checks["A.workloads.api_available"]["status"] == "Fail"
    assert next(iter(checks)) == "A.workloads.api_available"  # failing first
    cluster.set_deployment_available(kube_api, namespace, "payscope-api", 2, 2)
    cluster.wait_condition(kube_api, namespace, "flip", "Ready", timeout=10)
    # Events follow the status write that caused them: wait for them, not for the status.
    cluster.wait_for(
        lambda: (
            _transition_events(kube_api, namespace, "flip", "Ready")
            >= {("Warning", "ChecksFailing"), ("Normal", "AllChecksPassed")}
        ),
        what="the Ready transitions' Events",
        timeout=10,
    )


def _transition_events(api: k8s.ApiClient, namespace: str, name: str, ctype: str) -> set[tuple[str, str]]:
    """(type, reason) of the Events announcing ``ctype``'s transitions on PayScopeDeployment ``name``."""
    events = k8s.CoreV1Api(api).list_namespaced_event(namespace).items
    return {
        (e.type, e.reason)
        for e in events
        if e.involved_object.kind == "PayScopeDeployment"
        and e.involved_object.name == name
        and (e.message or "").startswith(f"{ctype} is ")
    }


def test_missing_secret_stalls_then_recovers_without_restart(
    operator: RunningOperator, kube_api: k8s.ApiClient, namespace: str
) -> None:
    spec = {
        "redis": {"connection": {"secretRef": {"name": "redis", "key": "url"}}},
        "audit": {"interval": "2s", "probeTimeout": "1s"},
    }
    cluster.create_psd(kube_api, namespace, "stall", spec)

    conds = cluster.wait_condition(kube_api, namespace, "stall", "Stalled", timeout=10)
    assert conds["Stalled"]["reason"] == "SecretNotFound"
    assert "'redis'" in conds["Stalled"]["message"]
    assert "'url'" in conds["Stalled"]["message"]
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "SecretNotFound"
    assert conds["Reconciling"]["status"] == "False"  # never both True

    cluster.create_secret(kube_api, namespace, "redis", {"url": "redis://127.0.0.1:1/0"})
    started = time.monotonic()
    cluster.wait_condition(kube_api, namespace, "stall", "Stalled", "False", timeout=8)
    assert time.monotonic() - started < 2 + 4  # one audit interval plus a pass


def test_unchanged_installation_makes_zero_writes(
    operator: RunningOperator, kube_api: k8s.ApiClient, namespace: str
) -> None:
    cluster.create_deployment(kube_api, namespace, "payscope-api")
    cluster.create_psd(kube_api, namespace, "quiet", _workload_spec(interval="1s"))
    cluster.wait_for(lambda: _settled(kube_api, namespace, "quiet"), what="settled", timeout=15)
    # A pass posts its Events after its status write and counts itself after both: once one more
    # pass has finished, the pass that settled the status has posted everything it will.
    settled_at = _passes(operator, namespace, "quiet")
    cluster.wait_for(
        lambda: _passes(operator, namespace, "quiet") > settled_at, what="a pass after settling", timeout=10
    )
    before = cluster.writes(operator.username, namespace)
    passes_before = _passes(operator, namespace, "quiet")
    cluster.wait_for(
        lambda: _passes(operator, namespace, "quiet") >= passes_before + 3, what="three audit cycles", timeout=15
    )
    after = cluster.writes(operator.username, namespace)
    assert after == before, [f"{e.verb} {e.resource}/{e.subresource}" for e in after[len(before) :]]
    status_writes = [e for e in before if e.subresource == "status"]
    assert 1 <= len(status_writes) <= 3, status_writes  # one write per change


def _passes(operator: RunningOperator, namespace: str, name: str) -> float:
    """Finished passes over one resource, from the operator's own metrics."""
    labels = (f'name="{name}"', f'namespace="{namespace}"')
    for line in operator.process.metrics().splitlines():
        if line.startswith("payscope_reconcile_duration_seconds_count{") and all(x in line for x in labels):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_paused_annotation_reports_paused(operator: RunningOperator, kube_api: k8s.ApiClient, namespace: str) -> None:
    cluster.create_deployment(kube_api, namespace, "payscope-api")
    cluster.create_psd(kube_api, namespace, "paused", _workload_spec(), annotations={"payscope.io/paused": "true"})

    def paused() -> Any:
        conds = cluster.conditions(cluster.psd(kube_api, namespace, "paused"))
        return conds.get("Ready", {}).get("reason") == "Paused" and conds

    conds = cluster.wait_for(paused, what="Paused", timeout=10)
    assert conds["Ready"]["status"] == "False"
    cluster.patch_psd(kube_api, namespace, "paused", {"metadata": {"annotations": {"payscope.io/paused": None}}})
    cluster.wait_for(
        lambda: cluster.conditions(cluster.psd(kube_api, namespace, "paused"))["Ready"]["status"] == "True",
        what="unpaused Ready",
        timeout=10,
    )


def test_kubectl_wait_sees_ready_only_for_the_current_generation(
    operator: RunningOperator, kube_api: k8s.ApiClient, namespace: str
) -> None:
    cluster.create_deployment(kube_api, namespace, "payscope-api")
    cluster.create_psd(kube_api, namespace, "waiter", _workload_spec())
    subprocess.run(
        ["kubectl", "wait", "--for=condition=Ready", "psd/waiter", "-n", namespace, "--timeout=15s"],
        check=True,
        capture_output=True,
    )
    # A spec change points at a Deployment that does not exist: Ready must not stay True for it.
    patched = cluster.patch_psd(kube_api, namespace, "waiter", {"spec": {"workloads": {"api": {"name": "missing"}}}})
    generation = patched["metadata"]["generation"]
    result = subprocess.run(
        ["kubectl", "wait", "--for=condition=Ready", "psd/waiter", "-n", namespace, "--timeout=4s"],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0, result.stdout
    obj = cluster.psd(kube_api, namespace, "waiter")
    assert obj["status"]["observedGeneration"] == generation
    assert cluster.conditions(obj)["Ready"]["status"] == "False"


def test_liveness_stays_healthy_while_the_watch_keeps_up(
    operator: RunningOperator, kube_api: k8s.ApiClient, namespace: str
) -> None:
    cluster.create_deployment(kube_api, namespace, "payscope-api")
    cluster.create_psd(kube_api, namespace, "alive", _workload_spec(interval="1s"))
    cluster.wait_for(lambda: _settled(kube_api, namespace, "alive"), what="settled", timeout=15)
    time.sleep(5)  # at least two watch checks (every 2 s here) over resources whose status keeps changing
    response = httpx.get(f"{operator.process.metrics_url}/healthz", timeout=5)
    assert response.status_code == 200, response.text
    assert "the watch lags" not in operator.process.log.read_text()
