"""A hundred S3 buckets on a dead endpoint do not slow down the Kubernetes calls of other resources.

boto3 is synchronous: every S3 call holds a thread until its own timeouts (5 s to
connect, 15 s to read, three attempts). One resource declares 100 buckets on an
endpoint that lists buckets and then never answers about any one of them, so its
passes pin every thread boto3 may use, for minutes. Another resource, in the same operator, must
meanwhile be reconciled as fast as ever: the Kubernetes client runs on threads of
its own, never on the pool boto3 drains.
"""

from __future__ import annotations

import time

from kubernetes import client as k8s

from tests.e2e import cluster
from tests.e2e.faults import endpoints, status

BUCKETS = 100
WITHIN = 5.0


def test_kubernetes_calls_are_not_starved_by_s3_calls_on_a_dead_endpoint(
    fault_operator: cluster.OperatorProcess, fault_api: k8s.ApiClient, fault_namespace: str
) -> None:
    ns = fault_namespace
    cluster.create_deployment(fault_api, ns, "payscope-api")
    cluster.create_deployment(fault_api, ns, "payscope-api-v2")
    quick = {"workloads": {"api": {"name": "payscope-api"}}, "audit": {"interval": "10s", "probeTimeout": "3s"}}
    cluster.create_psd(fault_api, ns, "quick", quick)
    status.wait_reflects(fault_api, ns, "quick", 1, timeout=30)
    with endpoints.half_dead_s3() as endpoint:
        cluster.create_secret(fault_api, ns, "s3", {"accessKeyId": "AKIAFAULTS", "secretAccessKey": "fault-secret"})
        buckets = [{"name": f"payscope-dead-{i:03d}"} for i in range(BUCKETS)]
        dead = {
            "managementPolicy": "ObserveOnly",
            "objectStorage": {"endpoint": endpoint, "region": "us-east-1", "forcePathStyle": True,
                              "credentialsSecretRef": {"name": "s3"}, "buckets": buckets},
            "audit": {"interval": "10s", "probeTimeout": "3s"},
        }  # fmt: skip
        cluster.create_psd(fault_api, ns, "dead", dead)
        time.sleep(3)  # the dead resource's pass has queued its S3 calls by now
        took = []
        for generation, workload in ((2, "payscope-api-v2"), (3, "payscope-api")):
            cluster.patch_psd(fault_api, ns, "quick", {"spec": {"workloads": {"api": {"name": workload}}}})
            clock = status.Clock()
            status.wait_reflects(fault_api, ns, "quick", generation, timeout=60)
            took.append(clock.seconds)
        print(f"changes to the other resource reconciled in {', '.join(f'{s:.2f}s' for s in took)}")
        assert max(took) < WITHIN
        cluster.delete_psd(fault_api, ns, "dead")
