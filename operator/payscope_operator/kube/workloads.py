"""A Deployment reduced to the facts the audit judges: replicas, probes and what they run, resources, shutdown.

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
    liveness_handler: str | None = None  # "httpGet /healthz :8000", "exec celery inspect ping", ...
    readiness_handler: str | None = None

    @property
    def liveness_path(self) -> str | None:
        return _path(self.liveness_handler)

    @property
    def readiness_path(self) -> str | None:
        return _path(self.readiness_handler)


def _path(handler: str | None) -> str | None:
    """The path of an ``httpGet`` handler description."""
    if handler is None or not handler.startswith("httpGet "):
        return None
    return handler.split(" ")[1]


def handler_of(probe: Any) -> str | None:
    """What a probe runs: ``httpGet <path> :<port>``, ``tcpSocket :<port>``, ``grpc :<port>``, ``exec <cmd>``."""
    if probe is None:
        return None
    if probe.http_get is not None:
        return f"httpGet {probe.http_get.path or '/'} :{probe.http_get.port}"
    if probe.tcp_socket is not None:
        return f"tcpSocket :{probe.tcp_socket.port}"
    if getattr(probe, "grpc", None) is not None:
        return f"grpc :{probe.grpc.port}"
    if probe._exec is not None:
        return "exec " + " ".join(probe._exec.command or [])
    return "unknown"


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
    selector: tuple[tuple[str, str], ...] = ()  # spec.selector.matchLabels
    selector_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # matchExpressions: key, op, values

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
        liveness_handler=handler_of(container.liveness_probe),
        readiness_handler=handler_of(container.readiness_probe),
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
        selector=tuple(sorted((spec.selector.match_labels or {}).items())) if spec.selector else (),
        selector_expressions=tuple(
            (e.key, e.operator, tuple(e.values or ()))
            for e in ((spec.selector.match_expressions or []) if spec.selector else [])
        ),
    )
