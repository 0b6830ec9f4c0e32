"""The API server freezes or dies under the operator: the operator stays up and picks up where it was.

The operator runs as the chart's ServiceAccount against the fault tests' own
control plane, through ``tests.apiserver_proxy`` (a TLS proxy standing for the
load balancer in front of a real API server). kube-apiserver is frozen (SIGSTOP)
for a minute, and the proxy silently loses the operator's watch stream as it
freezes (the connection stays open, nothing more comes, not even its end); or
kube-apiserver is killed and started again on the same port and etcd.
Afterwards the same operator process must still be running, its watch must
deliver again, and a spec change made after the API server is back must be
reconciled within 10 s: kopf's watch timeouts notice the silent stream (a minute
and ten seconds at most, not five and a half), its retries of refused requests
never sleep long, and a pass stuck retrying against the dead server is superseded
by the new generation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client as k8s

from tests.apiserver_proxy import ApiServerProxy, kubeconfig_through
from tests.e2e import cluster
from tests.e2e.faults import status
from tests.e2e.faults.identity import Identity
from tests.testenv import faults, process

FROZEN_FOR = 60.0
DOWN_FOR = 30.0
WITHIN = 10.0
SPEC = {"workloads": {"api": {"name": "payscope-api"}}, "audit": {"interval": "10s", "probeTimeout": "3s"}}


@dataclass
class Running:
    operator: cluster.OperatorProcess
    proxy: ApiServerProxy


@pytest.fixture
def running(
    fault_identity: Identity, fault_api: k8s.ApiClient, fault_namespace: str, tmp_path: Path
) -> Iterator[Running]:
    with ApiServerProxy() as proxy:
        through = kubeconfig_through(proxy, fault_identity.kubeconfig, tmp_path / "kubeconfig")
        operator = cluster.start_operator(through, tmp_path / "operator.log", namespaces=(fault_namespace,))
        try:
            for name in ("payscope-api", "payscope-api-v2", "payscope-api-v3"):
                cluster.create_deployment(fault_api, fault_namespace, name)
            cluster.create_psd(fault_api, fault_namespace, "psd", SPEC)
            status.wait_reflects(fault_api, fault_namespace, "psd", 1, timeout=30)
            yield Running(operator, proxy)
        finally:
            operator.stop()


def _change_and_time(api: k8s.ApiClient, namespace: str, workload: str) -> float:
    """Change the spec; return how long until the status reflects the new generation."""
    patched = cluster.patch_psd(api, namespace, "psd", {"spec": {"workloads": {"api": {"name": workload}}}})
    clock = status.Clock()
    status.wait_reflects(api, namespace, "psd", patched["metadata"]["generation"], timeout=30)
    return clock.seconds


def test_a_minute_frozen_api_server_that_loses_the_watch(
    running: Running, fault_api: k8s.ApiClient, fault_namespace: str
) -> None:
    watches = f"/namespaces/{fault_namespace}/payscopedeployments"
    assert [r for r in running.proxy.requests if r.watch and r.path.endswith(watches)], "the watch is proxied"
    with faults.frozen(faults.apiserver_pid()):
        running.proxy.drop_watches()
        frozen = status.Clock()
        while frozen.seconds < FROZEN_FOR:
            assert process.is_alive(running.operator.pid), "the operator died while the API server was frozen"
            time.sleep(1)
    seconds = _change_and_time(fault_api, fault_namespace, "payscope-api-v2")
    print(f"frozen {FROZEN_FOR:.0f}s: a change after resume reconciled in {seconds:.1f}s")
    assert seconds < WITHIN
    assert process.is_alive(running.operator.pid)
    assert running.operator.healthy()
    seconds = _change_and_time(fault_api, fault_namespace, "payscope-api-v3")  # and the watch keeps delivering
    assert seconds < WITHIN


def test_a_killed_and_restarted_api_server(running: Running, fault_api: k8s.ApiClient, fault_namespace: str) -> None:
    old = faults.kill_apiserver()
    try:
        down = status.Clock()
        while down.seconds < DOWN_FOR:
            assert process.is_alive(running.operator.pid), "the operator died while the API server was down"
            time.sleep(0.5)
    finally:
        faults.restart_apiserver(old)
    seconds = _change_and_time(fault_api, fault_namespace, "payscope-api-v2")
    print(f"down {DOWN_FOR:.0f}s: a change after the restart reconciled in {seconds:.1f}s")
    assert seconds < WITHIN
    assert process.is_alive(running.operator.pid)
    assert running.operator.healthy()
    seconds = _change_and_time(fault_api, fault_namespace, "payscope-api-v3")
    assert seconds < WITHIN
