"""A Kubernetes cluster with nothing in it, for audits run against the real stores without an API server.

The store-side integration tests judge one source; the kubernetes-sourced checks
then see no Deployment, pod, budget or policy. One class, so a new gateway read
the audit's ``context.Cluster`` protocol gains is added here once.
"""

from __future__ import annotations


class EmptyCluster:
    async def read_deployment(self, namespace: str, name: str) -> None:
        return None

    async def list_disruption_budgets(self, namespace: str) -> tuple[()]:
        return ()

    async def list_network_policies(self, namespace: str) -> tuple[()]:
        return ()

    async def list_pods(self, namespace: str, selector: str) -> tuple[()]:
        return ()

    async def read_pod_log(self, namespace: str, pod: str, container: str) -> None:
        return None
