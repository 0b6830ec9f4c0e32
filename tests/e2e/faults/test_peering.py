"""Two replicas with kopf peering: the active one is SIGKILLed, the standby takes over.

The active replica has the higher priority; the standby pauses in its favour
(``tests.e2e.faults.peers`` sets them up as the chart renders them). After the
SIGKILL, a spec change made at once must be reconciled by the standby within
30 s, and the API server's audit log must show that the two never wrote the
resource's status in the same period: every write of the first replica comes
before every write of the second.
"""

from __future__ import annotations

from pathlib import Path

from kubernetes import client as k8s

from tests.e2e import cluster
from tests.e2e.faults import peers, status

WITHIN = 30.0


def test_the_standby_takes_over_after_a_sigkill(fault_api: k8s.ApiClient, fault_namespace: str, tmp_path: Path) -> None:
    ns = fault_namespace
    ids = peers.install(fault_api, ns, tmp_path)
    first, second = peers.pair(fault_api, ns, ids, tmp_path)
    try:
        assert "Resuming operations" not in second.log.read_text(), "the standby works while the first lives"
        cluster.create_psd(fault_api, ns, "psd", peers.SPEC)
        status.wait_reflects(fault_api, ns, "psd", 1, timeout=30)
        took = peers.take_over(fault_api, ns, "psd", first)
        print(f"the standby reconciled a change made at the SIGKILL after {took:.1f}s")
        assert took < WITHIN
    finally:
        first.stop()
        second.stop()
    writes = peers.status_writes(ns, "psd")
    by_first = [w.at for w in writes if w.user == ids[0].username]
    by_second = [w.at for w in writes if w.user == ids[1].username]
    assert by_first, "the active replica wrote the first status"
    assert by_second, "the standby wrote after the takeover"
    assert max(by_first) < min(by_second), "the two replicas wrote the status in the same period"
