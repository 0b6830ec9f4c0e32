"""A resource applied before its Secret becomes Current within 3 s of the Secret, whatever its interval.

GitOps tools apply a PayScopeDeployment and its Secrets in one go, in no set
order, and then wait for the resource to be Current (kstatus: Ready True at the
current generation, neither Reconciling nor Stalled). The operator has no watch
on Secrets (and no permission to list them): while Stalled on a missing Secret it
re-reads just that Secret, from 2 s on, doubling up to the interval. The interval
here is an hour, so only those re-reads can bring the resource back in time.
"""

from __future__ import annotations

import statistics
import uuid
from pathlib import Path

from kubernetes import client as k8s

from tests import installation
from tests.e2e import cluster
from tests.e2e.faults import status
from tests.testenv import process

WITHIN = 3.0
ROUNDS = 3
KSTATUS = ("Ready", "Reconciling", "Stalled")


def _stalled_on_secret(obj: dict[str, object]) -> bool:
    stalled = status.conditions(obj).get("Stalled", {})
    return stalled.get("status") == "True" and stalled.get("reason") == "SecretNotFound"


def _kstatus(obj: dict[str, object]) -> dict[str, tuple[object, ...]]:
    """The conditions kstatus reads, and the checks that keep Ready False."""
    found = status.conditions(obj)
    shown = {t: (c.get("status"), c.get("reason"), c.get("message")) for t, c in found.items() if t in KSTATUS}
    failing = {
        i: (c["status"], c["message"]) for i, c in status.checks(obj).items() if c["status"] in ("Fail", "Unknown")
    }
    return {**shown, **failing}


def test_current_within_seconds_of_the_secret_appearing(
    fault_operator: cluster.OperatorProcess,
    fault_api: k8s.ApiClient,
    fault_namespace: str,
    fault_env: dict[str, str],
    tmp_path: Path,
) -> None:
    cluster.create_deployment(fault_api, fault_namespace, "payscope-api")
    dlq = f"dlq-{uuid.uuid4().hex[:8]}"
    worker = installation.start_worker(fault_env["PAYSCOPE_REDIS_URL"], dlq, tmp_path / "worker.log")
    try:
        took = _rounds(fault_api, fault_namespace, fault_env, dlq)
    finally:
        process.stop(worker)
    listed = ", ".join(f"{s:.2f}s" for s in took)
    print(f"Current after the Secret appeared: {listed}; median {statistics.median(took):.2f}s")
    assert max(took) < WITHIN


def _rounds(fault_api: k8s.ApiClient, fault_namespace: str, fault_env: dict[str, str], dlq: str) -> list[float]:
    took: list[float] = []
    for round_ in range(ROUNDS):
        name, secret = f"late-{round_}", f"redis-{round_}"
        spec = {
            "workloads": {"api": {"name": "payscope-api"}},
            "redis": {"connection": {"secretRef": {"name": secret, "key": "url"}}, "deadLetterQueue": dlq},
            "audit": {
                "interval": "1h",
                "probeTimeout": "3s",
                "readPodLogs": False,  # no kubelet serves logs here
                "waivers": cluster.not_audited("B", "D", "E"),  # only workloads and Redis are declared
            },
        }
        cluster.create_psd(fault_api, fault_namespace, name, spec)
        cluster.wait_for(
            lambda: _stalled_on_secret(cluster.psd(fault_api, fault_namespace, name)),  # noqa: B023
            what="Stalled on the missing Secret",
            timeout=30,
            interval=0.05,
        )
        cluster.create_secret(fault_api, fault_namespace, secret, {"url": fault_env["PAYSCOPE_REDIS_URL"]})
        clock = status.Clock()
        cluster.wait_for(
            lambda: status.current(cluster.psd(fault_api, fault_namespace, name)),  # noqa: B023
            what="Current after the Secret appeared",
            timeout=30,
            interval=0.05,
            show=lambda: _kstatus(cluster.psd(fault_api, fault_namespace, name)),  # noqa: B023
        )
        took.append(clock.seconds)
        cluster.delete_psd(fault_api, fault_namespace, name)
    return took
