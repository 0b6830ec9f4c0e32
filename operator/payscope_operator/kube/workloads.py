"""A Deployment reduced to the facts the audit judges: replicas, probes, resources, shutdown.

Converting the client's objects here keeps the audit's checks pure functions of
plain frozen dataclasses, table-testable without a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ContainerFacts:
    name: str
    liveness_probe: bool
    readiness_probe: bool
    startup_probe: bool
    requests: tuple[str, ...]  # resource names with a request, e.g. ("cpu", "memory")
    limits: tuple[str, ...]
    pre_stop: bool


@dataclass(frozen=True)
class DeploymentFacts:
    name: str
    replicas: int
    available_replicas: int
    ready_replicas: int
    updated_replicas: int
    generation: int
    observed_generation: int
    restart_policy: str
    termination_grace_period_seconds: int | None
    containers: tuple[ContainerFacts, ...]
    available_condition: bool

    @property
    def rolled_out(self) -> bool:
        """The Deployment controller has seen the current spec and every replica runs its template."""
        return self.observed_generation >= self.generation and self.updated_replicas >= self.replicas

    @property
    def available(self) -> bool:
        """Available only once the rollout of the current spec has caught up (kubectl rollout status)."""
        return self.replicas > 0 and self.available_replicas >= self.replicas and self.rolled_out


def _container(container: Any) -> ContainerFacts:
    resources = container.resources
    lifecycle = container.lifecycle
    return ContainerFacts(
        name=container.name,
        liveness_probe=container.liveness_probe is not None,
        readiness_probe=container.readiness_probe is not None,
        startup_probe=container.startup_probe is not None,
        requests=tuple(sorted((resources.requests or {}).keys())) if resources else (),
        limits=tuple(sorted((resources.limits or {}).keys())) if resources else (),
        pre_stop=bool(lifecycle is not None and lifecycle.pre_stop is not None),
    )


def facts_of(deployment: Any) -> DeploymentFacts:
    """Reduce a ``V1Deployment`` to :class:`DeploymentFacts`."""
    spec = deployment.spec
    pod = spec.template.spec
    state = deployment.status
    conditions = (state.conditions if state else None) or []
    available = any(c.type == "Available" and c.status == "True" for c in conditions)
    return DeploymentFacts(
        name=deployment.metadata.name,
        replicas=spec.replicas if spec.replicas is not None else 1,
        available_replicas=(state.available_replicas or 0) if state else 0,
        ready_replicas=(state.ready_replicas or 0) if state else 0,
        updated_replicas=(state.updated_replicas or 0) if state else 0,
        generation=deployment.metadata.generation or 0,
        observed_generation=(state.observed_generation or 0) if state else 0,
        restart_policy=pod.restart_policy or "Always",
        termination_grace_period_seconds=pod.termination_grace_period_seconds,
        containers=tuple(_container(c) for c in pod.containers),
        available_condition=available,
    )
