"""Liveness end to end: ``/healthz`` turns 500 when the operator's watch really misses changes.

The operator runs as the chart's ServiceAccount, connected to the API server
through ``tests.apiserver_proxy``. Freezing the proxy's watch streams leaves
kopf's watch connection open and silent, as a half-open connection behind a
load balancer would: every other request still works, so the operator keeps
listing resourceVersions and sees that the server holds a change its watch
never delivered. With ``--watch-stale-after 4`` (and the comparison every 2 s,
as every e2e operator runs), ``/healthz`` must fail after the threshold, and
recover once the watch delivers again. Meanwhile the change the watch missed is
reconciled from that list: the operator does not wait for a restart to act on it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes import client as k8s

from tests.apiserver_proxy import ApiServerProxy, kubeconfig_through
from tests.e2e import cluster

STALE_AFTER = 4.0


@pytest.fixture
def proxied_operator(
    operator_identity: tuple[str, Path, str], namespace: str, tmp_path: Path
) -> Iterator[tuple[cluster.OperatorProcess, ApiServerProxy]]:
    _, kubeconfig, _ = operator_identity
    with ApiServerProxy() as proxy:
        through = kubeconfig_through(proxy, kubeconfig, tmp_path / "kubeconfig")
        running = cluster.start_operator(
            through,
            tmp_path / "op.log",
            namespaces=(namespace,),
            extra_args=("--watch-stale-after", str(STALE_AFTER)),
        )
        try:
            yield running, proxy
        finally:
            running.stop()


def _healthz(running: cluster.OperatorProcess) -> httpx.Response:
    return httpx.get(f"{running.metrics_url}/healthz", timeout=5)


def test_healthz_fails_while_the_watch_misses_changes_and_recovers(
    proxied_operator: tuple[cluster.OperatorProcess, ApiServerProxy], kube_api: k8s.ApiClient, namespace: str
) -> None:
    running, proxy = proxied_operator
    cluster.create_deployment(kube_api, namespace, "payscope-api")
    audit = {"interval": "2s", "probeTimeout": "1s", "waivers": cluster.WORKLOADS_ONLY}
    spec = {"workloads": {"api": {"name": "payscope-api"}}, "audit": audit}
    cluster.create_psd(kube_api, namespace, "watched", spec)

    cluster.wait_condition(kube_api, namespace, "watched", "Ready", timeout=20)
    assert _healthz(running).status_code == 200
    watches = [r for r in proxy.requests if r.watch and r.path.endswith(f"/namespaces/{namespace}/payscopedeployments")]
    assert watches, "the operator's watch goes through the proxy"

    proxy.freeze_watches()
    changed = cluster.patch_psd(kube_api, namespace, "watched", {"spec": {"audit": {"interval": "3s"}}})
    missed_at = time.monotonic()
    failed = cluster.wait_for(
        lambda: (response := _healthz(running)).status_code == 500 and response,
        what="/healthz 500 while the watch is frozen",
        timeout=30,
        interval=0.5,
    )
    assert time.monotonic() - missed_at > STALE_AFTER  # never before the threshold
    assert "missed changes to 1 resource" in failed.json()["reason"]
    # Meanwhile the change the watch missed is reconciled from the operator's own list (main._catch_up).
    cluster.wait_for(
        lambda: (
            cluster.psd(kube_api, namespace, "watched")["status"]["observedGeneration"]
            == changed["metadata"]["generation"]
        ),
        what="the missed change reconciled from the list while the watch is frozen",
        timeout=20,
    )
    assert _healthz(running).status_code == 500  # and liveness still says the watch is broken

    proxy.thaw_watches()
    cluster.wait_for(lambda: _healthz(running).status_code == 200, what="/healthz 200 again", timeout=20, interval=0.5)
    log = running.log.read_text()
    assert "the watch lags behind the API server" in log
    assert "found by listing, not yet by the watch" in log
