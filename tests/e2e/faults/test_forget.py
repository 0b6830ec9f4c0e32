"""A deleted resource leaves nothing behind in the operator, not even when a pass was in flight.

The operator's ``/metrics`` is scraped: every series labelled with the resource
(condition and check gauges, scores, durations, error and transition counters)
must disappear once the resource is deleted, and must not come back when the pass
that was running at that moment would have ended. The pass is made slow on
purpose (its Redis answers nothing, so the probe waits its whole timeout), and
the resource is deleted in the middle of it.
"""

from __future__ import annotations

import time

from kubernetes import client as k8s

from tests.e2e import cluster
from tests.e2e.faults import endpoints, status

PROBE_TIMEOUT = 3.0


def _series(operator: cluster.OperatorProcess, name: str) -> list[str]:
    return [line for line in operator.metrics().splitlines() if f'name="{name}"' in line and not line.startswith("#")]


def test_deleting_a_resource_mid_pass_removes_every_series_for_good(
    fault_operator: cluster.OperatorProcess, fault_api: k8s.ApiClient, fault_namespace: str
) -> None:
    with endpoints.tarpit() as port:
        cluster.create_deployment(fault_api, fault_namespace, "payscope-api")
        cluster.create_secret(fault_api, fault_namespace, "redis", {"url": f"redis://127.0.0.1:{port}/0"})
        spec = {
            "workloads": {"api": {"name": "payscope-api"}},
            "redis": {"connection": {"secretRef": {"name": "redis", "key": "url"}}},
            "audit": {"interval": "5s", "probeTimeout": f"{PROBE_TIMEOUT:g}s"},
        }
        cluster.create_psd(fault_api, fault_namespace, "doomed", spec)
        status.wait_reflects(fault_api, fault_namespace, "doomed", 1, timeout=30)
        cluster.wait_for(lambda: _series(fault_operator, "doomed"), what="series of the resource", timeout=10)
        kinds = {line.split("{")[0] for line in _series(fault_operator, "doomed")}
        assert {"payscope_condition", "payscope_check_result", "payscope_reconcile_duration_seconds_count"} <= kinds

        cluster.patch_psd(fault_api, fault_namespace, "doomed", {"spec": {"audit": {"interval": "6s"}}})
        time.sleep(1.0)  # the new generation's pass now waits on the silent Redis (3 s)
        cluster.delete_psd(fault_api, fault_namespace, "doomed")
        cluster.wait_for(lambda: not _series(fault_operator, "doomed"), what="every series removed", timeout=10)
        time.sleep(PROBE_TIMEOUT + 2)  # past the moment the cancelled pass would have finished
        assert _series(fault_operator, "doomed") == []
        assert "is gone: its clients, memory and metrics are dropped" in fault_operator.log.read_text()
