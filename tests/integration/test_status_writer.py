"""The status writer against the real kube-apiserver: the optimistic lock, no-op passes, retried writes.

Each test works on a PayScopeDeployment of its own namespace through the
operator's own ``kube.gateway.Gateway``. The API server's audit log says what
was written and what it answered (409 for a stale resourceVersion). Failures
the server will not produce on request (a 503, an answer that never comes in
time) come from ``tests.apiserver_proxy``, a TLS proxy in front of the real
server that the gateway is pointed at; the proxy also counts the requests a
pass makes, which is how "the probes ran once" is observed.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from payscope_operator import telemetry
from payscope_operator.api import conditions, status
from payscope_operator.kube import gateway
from payscope_operator.reconcile import readiness, reconciler, report, status_writer
from tests.apiserver_proxy import ApiServerProxy, kubeconfig_through
from tests.e2e import cluster

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)
ADMIN = "admin"  # the test environment's kubeconfig user
FAST = status_writer.Backoff(first=0.2, factor=2.0, cap=1.0, attempts=5)
SPEC = {"workloads": {"api": {"name": "payscope-api"}}, "audit": {"waivers": cluster.WORKLOADS_ONLY}}


@pytest.fixture(scope="module")
def crd(kube_api: k8s.ApiClient) -> None:
    cluster.install_crd(kube_api)


@pytest.fixture
def proxy(testenv: dict[str, str]) -> Iterator[ApiServerProxy]:
    with ApiServerProxy() as running:
        yield running


def _proxied_gateway(
    proxy: ApiServerProxy, tmp_path: Path, *, timeout: float = gateway.REQUEST_TIMEOUT
) -> gateway.Gateway:
    config = kubeconfig_through(proxy, Path(os.environ["KUBECONFIG"]), tmp_path / "kubeconfig")
    return gateway.Gateway(k8s_config.new_client_from_config(config_file=str(config)), timeout=timeout)


def _resource(obj: dict[str, Any]) -> reconciler.Resource:
    meta = obj["metadata"]
    return reconciler.Resource(
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta["uid"],
        generation=meta["generation"],
        resource_version=meta["resourceVersion"],
        annotations=meta.get("annotations") or {},
        spec=obj.get("spec") or {},
        status=obj.get("status"),
    )


def _status_writes(namespace: str) -> list[int]:
    """The answers to the status writes made in ``namespace``, in order, from the audit log."""
    return [e.code for e in cluster.writes(ADMIN, namespace) if e.subresource == "status" and e.verb == "patch"]


def _draft(generation: int, *results: status.CheckResult) -> report.Draft:
    provisioned = readiness.Provisioning(status.ConditionStatus.TRUE, conditions.Reason.PROVISIONED, "ok")
    return report.Draft(readiness.Facts(generation, results, provisioned), checks=results)


def _check(check_id: str, state: status.CheckStatus) -> status.CheckResult:
    return status.CheckResult(
        id=check_id, dimension=conditions.Dimension.of_check(check_id), status=state, severity=status.Severity.HIGH
    )


async def test_a_stale_resource_version_gets_409_and_the_writer_rereads_and_converges(
    kube_api: k8s.ApiClient, crd: None, namespace: str
) -> None:
    snapshot = _resource(cluster.create_psd(kube_api, namespace, "stale", SPEC))
    # Someone else writes the status after our snapshot was taken.
    others = gateway.Gateway(kube_api)
    first = status_writer.StatusWriter(others, snapshot.ref, snapshot.status, backoff=FAST)
    assert (await first.publish(_draft(1, _check("A.x.ok", status.CheckStatus.PASS)), now=NOW)).written

    ours = status_writer.StatusWriter(gateway.Gateway(kube_api), snapshot.ref, snapshot.status, backoff=FAST)
    failing = _draft(1, _check("A.x.ok", status.CheckStatus.FAIL))
    published = await ours.publish(failing, now=NOW)

    assert published.written
    assert _status_writes(namespace) == [200, 409, 200]  # theirs, our stale one refused, ours after the re-read
    held = cluster.psd(kube_api, namespace, "stale")
    assert held["status"] == report.to_wire(published.status)
    assert held["metadata"]["resourceVersion"] == ours.resource_version
    ready = cluster.conditions(held)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "ChecksFailing")


async def test_a_conflict_with_the_status_already_there_writes_nothing_more(
    kube_api: k8s.ApiClient, crd: None, namespace: str
) -> None:
    snapshot = _resource(cluster.create_psd(kube_api, namespace, "same", SPEC))
    wanted = _draft(1, _check("A.x.ok", status.CheckStatus.PASS))
    theirs = status_writer.StatusWriter(gateway.Gateway(kube_api), snapshot.ref, snapshot.status, backoff=FAST)
    assert (await theirs.publish(wanted, now=NOW)).written
    ours = status_writer.StatusWriter(gateway.Gateway(kube_api), snapshot.ref, snapshot.status, backoff=FAST)
    published = await ours.publish(wanted, now=NOW)
    assert not published.written
    assert _status_writes(namespace) == [200, 409]  # the re-read found it there: no second write


async def test_an_unchanged_pass_writes_nothing(kube_api: k8s.ApiClient, crd: None, namespace: str) -> None:
    cluster.create_deployment(kube_api, namespace, "payscope-api")
    cluster.create_psd(kube_api, namespace, "quiet", SPEC)
    cluster_gateway = gateway.Gateway(kube_api)
    deps = reconciler.Dependencies(cluster=cluster_gateway, observer=telemetry.Metrics(), backoff=FAST)
    first = await reconciler.reconcile(deps, _resource(cluster.psd(kube_api, namespace, "quiet")))
    assert first.written
    writes_before, audited_before = cluster_gateway.writes, cluster.writes(ADMIN, namespace)

    second = await reconciler.reconcile(deps, _resource(cluster.psd(kube_api, namespace, "quiet")))

    assert not second.written
    assert cluster_gateway.writes == writes_before
    assert cluster.writes(ADMIN, namespace) == audited_before  # the API server saw no write at all
    assert second.status == first.status


async def test_a_write_answered_503_is_retried_alone_and_the_probes_run_once(
    kube_api: k8s.ApiClient, crd: None, namespace: str, proxy: ApiServerProxy, tmp_path: Path
) -> None:
    cluster.create_deployment(kube_api, namespace, "payscope-api")
    resource = _resource(cluster.create_psd(kube_api, namespace, "flaky", SPEC))
    proxy.fail("PATCH", f"/{namespace}/payscopedeployments/flaky/status", 503, times=2)
    metrics = telemetry.Metrics()
    deps = reconciler.Dependencies(cluster=_proxied_gateway(proxy, tmp_path), observer=metrics, backoff=FAST)

    result = await reconciler.reconcile(deps, resource)

    assert result.written
    assert result.write_failure is None
    # Reconciling's write refused twice, then written; then the pass's own status.
    patches = proxy.seen("PATCH", "/payscopedeployments/flaky/status")
    assert [(p.status, p.injected) for p in patches] == [(503, True), (503, True), (200, False), (200, False)]
    # The audit ran once: kubernetes.workloads and kubernetes.pods (for its selector) each read the Deployment once.
    assert len(proxy.seen("GET", f"/{namespace}/deployments/payscope-api")) == 2
    assert (
        metrics.registry.get_sample_value(
            "payscope_reconcile_duration_seconds_count", {"namespace": namespace, "name": "flaky"}
        )
        == 1
    )
    held = cluster.psd(kube_api, namespace, "flaky")
    assert held["status"] == dict(result.stored or {})
    ready = cluster.conditions(held)["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "AllChecksPassed"), ready


async def test_a_write_that_timed_out_after_reaching_the_server_is_not_written_twice(
    kube_api: k8s.ApiClient, crd: None, namespace: str, proxy: ApiServerProxy, tmp_path: Path
) -> None:
    snapshot = _resource(cluster.create_psd(kube_api, namespace, "slow", SPEC))
    proxy.delay("PATCH", f"/{namespace}/payscopedeployments/slow/status", 3.0)
    proxied = _proxied_gateway(proxy, tmp_path, timeout=1.0)
    writer = status_writer.StatusWriter(proxied, snapshot.ref, snapshot.status, backoff=FAST)

    published = await writer.publish(_draft(1, _check("A.x.ok", status.CheckStatus.FAIL)), now=NOW)

    assert published.written  # it did land: the timed-out attempt
    assert _status_writes(namespace) == [200, 409]  # the retry hit the lock, the re-read found the status there
    assert cluster.psd(kube_api, namespace, "slow")["status"] == report.to_wire(published.status)
    reasons = {e.reason for e in k8s.CoreV1Api(kube_api).list_namespaced_event(namespace).items}
    assert "ChecksFailing" in reasons  # the transition was announced although the answer was lost


async def test_events_that_cannot_be_posted_never_abort_the_pass(
    kube_api: k8s.ApiClient, crd: None, namespace: str, proxy: ApiServerProxy, tmp_path: Path
) -> None:
    cluster.create_deployment(kube_api, namespace, "payscope-api")
    resource = _resource(cluster.create_psd(kube_api, namespace, "muted", SPEC))
    proxy.fail("POST", f"/namespaces/{namespace}/events", 500, times=100)
    deps = reconciler.Dependencies(cluster=_proxied_gateway(proxy, tmp_path), observer=telemetry.Metrics())

    result = await reconciler.reconcile(deps, resource)

    assert result.written
    assert result.write_failure is None
    refused = proxy.seen("POST", f"/namespaces/{namespace}/events")
    assert refused
    assert all(p.status == 500 for p in refused)  # every transition's Event was refused ...
    ready = cluster.conditions(cluster.psd(kube_api, namespace, "muted"))["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "AllChecksPassed")  # ... and the status is complete
