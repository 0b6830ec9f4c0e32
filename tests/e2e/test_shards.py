"""Two shards (``--shard 0|1 --total-shards 2``) split the resources: each reconciled by exactly one of them.

Two operator processes run on the test control plane, each as a ServiceAccount of
its own (the chart's RBAC, namespaced mode), so the kube-apiserver's audit log tells
their requests apart. Several PayScopeDeployments are created (more, until each
shard owns at least two: ownership is a hash of the uid the API server assigns).
Every resource must then reach a complete status written by the shard that owns it
(``sha256(uid) mod 2``, as ``reconcile.shards`` computes it), while the other shard
writes nothing at all about it (no status, no patch, no Event) and exports no metric
series of it.

What it must not do: assert a duration, or rely on which uid the API server hands out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from payscope_operator.reconcile import shards
from tests.e2e import cluster
from tests.e2e.faults import status
from tests.e2e.faults.identity import Identity, install_identity

TOTAL = 2
SPEC = {"workloads": {"api": {"name": "payscope-api"}}, "audit": {"interval": "10s", "probeTimeout": "3s"}}
MAX_RESOURCES = 16


@pytest.fixture
def shard_operators(
    kube_api: k8s.ApiClient, namespace: str, tmp_path: Path
) -> Iterator[list[tuple[Identity, cluster.OperatorProcess]]]:
    """Shard 0 and shard 1, each as its own ServiceAccount, watching the test's namespace."""
    running: list[tuple[Identity, cluster.OperatorProcess]] = []
    try:
        for index in range(TOTAL):
            who = install_identity(
                kube_api, tmp_path, f"watchNamespaces={{{namespace}}}", f"fullnameOverride=payscope-shard-{index}"
            )
            args = ("--shard", str(index), "--total-shards", str(TOTAL))
            log = tmp_path / f"shard-{index}.log"
            running.append((who, cluster.start_operator(who.kubeconfig, log, namespaces=(namespace,), extra_args=args)))
        yield running
    finally:
        for _, operator in running:
            operator.stop()


def _touches(who: Identity, namespace: str, name: str) -> list[cluster.AuditEvent]:
    """Writes of ``who`` about PayScopeDeployment ``name``: to it (status included) or Events about it."""
    return [
        e
        for e in cluster.writes(who.username, namespace)
        if (e.resource == "payscopedeployments" and e.name == name)
        or (e.resource == "events" and e.name.startswith(f"{name}."))
    ]


def _series(operator: cluster.OperatorProcess, name: str) -> list[str]:
    return [line for line in operator.metrics().splitlines() if f'name="{name}"' in line and not line.startswith("#")]


def _wait_owner_wrote(namespace: str, name: str, index: int, who: Identity, operator: cluster.OperatorProcess) -> None:
    cluster.wait_for(
        lambda: any(e.subresource == "status" and e.code == 200 for e in _touches(who, namespace, name)),
        what=f"shard {index}'s status write of {name} in the audit log",
        timeout=30,
    )
    cluster.wait_for(lambda: _series(operator, name), what=f"{name}'s series on shard {index}", timeout=10)


def test_every_resource_is_reconciled_by_exactly_one_shard(
    kube_api: k8s.ApiClient, namespace: str, shard_operators: list[tuple[Identity, cluster.OperatorProcess]]
) -> None:
    cluster.create_deployment(kube_api, namespace, "payscope-api")
    owner: dict[str, int] = {}
    while len(owner) < 6 or min(list(owner.values()).count(i) for i in range(TOTAL)) < 2:
        assert len(owner) < MAX_RESOURCES, f"the uids hash unevenly: {owner}"
        name = f"psd-{len(owner)}"
        created = cluster.create_psd(kube_api, namespace, name, SPEC)
        owner[name] = shards.shard_of(created["metadata"]["uid"], TOTAL)

    for name in owner:
        status.wait_reflects(kube_api, namespace, name, 1, timeout=60)
    for name, index in owner.items():
        _wait_owner_wrote(namespace, name, index, *shard_operators[index])

    for name, index in owner.items():
        other, operator = shard_operators[1 - index]
        assert _touches(other, namespace, name) == [], f"shard {1 - index} wrote about {name}, owned by {index}"
        assert _series(operator, name) == [], f"shard {1 - index} exports series of {name}"
    for index, (_, operator) in enumerate(shard_operators):
        assert f'payscope_operator_shard{{shard="{index}",total="{TOTAL}"}} 1.0' in operator.metrics()
