"""A Deployment reduced to the facts the audit judges: replicas, probes and their commands, resources, pod security.

Converting the client's objects here keeps the audit's checks pure functions of
plain frozen dataclasses, table-testable without a cluster. Security settings
are resolved as the kubelet resolves them: a container's own securityContext
wins, and the pod's (runAsNonRoot, runAsUser, seccompProfile) applies where the
container says nothing. Init containers are kept apart from the app containers
(they have no probes or preStop hooks) but are judged by the security checks too.

What it must not do: carry an environment variable's value. A literal value is
reduced here to its shape (text, number, path, a URL with credentials, ...), so
the audit can tell a password written into the manifest from a port number
without the password ever leaving this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from payscope_operator.kube import policies

ValueShape = Literal["text", "number", "boolean", "path", "reference", "credential-url"]
_CREDENTIAL_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:[^/@\s]+@")
_REFERENCE = re.compile(r"^\$\([A-Za-z_][A-Za-z0-9_.-]*\)$")


@dataclass(frozen=True)
class SecurityFacts:
    """A container's effective security settings: its own securityContext over the pod's."""

    run_as_non_root: bool | None = None
    run_as_user: int | None = None
    privileged: bool = False
    allow_privilege_escalation: bool | None = None  # None: not set, which Kubernetes treats as true
    read_only_root_filesystem: bool = False
    capabilities_add: tuple[str, ...] = ()
    capabilities_drop: tuple[str, ...] = ()
    seccomp: str | None = None  # RuntimeDefault, Localhost, Unconfined; None: not set


@dataclass(frozen=True)
class ContainerFacts:
    name: str
    liveness_probe: bool
    readiness_probe: bool
    startup_probe: bool
    requests: tuple[str, ...]  # resource names with a request, e.g. ("cpu", "memory")
    limits: tuple[str, ...]
    pre_stop: bool
    init: bool = False
    image: str = ""
    security: SecurityFacts = field(default_factory=SecurityFacts)
    host_ports: tuple[int, ...] = ()
    env_literals: tuple[tuple[str, ValueShape], ...] = ()  # (name, shape of its literal value), never the value
    liveness_handler: str | None = None  # "httpGet /healthz :8000", "exec celery inspect ping", ...
    readiness_handler: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} (init)" if self.init else self.name

    @property
    def liveness_path(self) -> str | None:
        return _path(self.liveness_handler)

    @property
    def readiness_path(self) -> str | None:
        return _path(self.readiness_handler)


@dataclass(frozen=True)
class SpreadTerm:
    """A rule that keeps replicas apart: pod anti-affinity (required or preferred) or a topology spread."""

    kind: str
    topology_key: str
    selector: policies.LabelSelector | None


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
    termination_grace_period_seconds: int | None
    containers: tuple[ContainerFacts, ...]
    available_condition: bool
    init_containers: tuple[ContainerFacts, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()  # the pod template's labels
    host_network: bool = False
    host_pid: bool = False
    host_ipc: bool = False
    host_path_volumes: tuple[str, ...] = ()  # "volume-name: /host/path"
    automount_service_account_token: bool | None = None
    spread: tuple[SpreadTerm, ...] = ()
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

    @property
    def pod_labels(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def every_container(self) -> tuple[ContainerFacts, ...]:
        """Init containers, then app containers: what the security checks judge."""
        return self.init_containers + self.containers


def shape_of(value: str) -> ValueShape:
    """What kind of literal an environment value is, without keeping it."""
    text = value.strip()
    if _CREDENTIAL_URL.match(text):
        return "credential-url"
    if _REFERENCE.match(text):
        return "reference"
    if re.fullmatch(r"[-+]?[0-9]+(\.[0-9]+)?[a-zA-Z]{0,2}", text):
        return "number"  # 8000, 0.5, 30s, 512Mi
    if text.lower() in ("true", "false", "yes", "no", "on", "off"):
        return "boolean"
    if text.startswith("/"):
        return "path"
    return "text"


def _security(container: Any, pod: Any) -> SecurityFacts:
    own, shared = container.security_context, pod.security_context

    def pick(name: str) -> Any:
        mine = getattr(own, name, None) if own is not None else None
        return mine if mine is not None else (getattr(shared, name, None) if shared is not None else None)

    caps = own.capabilities if own is not None else None
    seccomp = pick("seccomp_profile")
    return SecurityFacts(
        run_as_non_root=pick("run_as_non_root"),
        run_as_user=pick("run_as_user"),
        privileged=bool(own is not None and own.privileged),
        allow_privilege_escalation=own.allow_privilege_escalation if own is not None else None,
        read_only_root_filesystem=bool(own is not None and own.read_only_root_filesystem),
        capabilities_add=tuple(caps.add or ()) if caps is not None else (),
        capabilities_drop=tuple(caps.drop or ()) if caps is not None else (),
        seccomp=seccomp.type if seccomp is not None else None,
    )


def _container(container: Any, pod: Any, *, init: bool = False) -> ContainerFacts:
    resources = container.resources
    lifecycle = container.lifecycle
    literals = tuple((e.name, shape_of(e.value)) for e in (container.env or ()) if e.value_from is None and e.value)
    return ContainerFacts(
        name=container.name,
        liveness_probe=container.liveness_probe is not None,
        readiness_probe=container.readiness_probe is not None,
        startup_probe=container.startup_probe is not None,
        requests=tuple(sorted((resources.requests or {}).keys())) if resources else (),
        limits=tuple(sorted((resources.limits or {}).keys())) if resources else (),
        pre_stop=bool(lifecycle is not None and lifecycle.pre_stop is not None),
        init=init,
        image=container.image or "",
        security=_security(container, pod),
        host_ports=tuple(p.host_port for p in (container.ports or ()) if p.host_port),
        env_literals=literals,
        liveness_handler=handler_of(container.liveness_probe),
        readiness_handler=handler_of(container.readiness_probe),
    )


def _spread(pod: Any) -> tuple[SpreadTerm, ...]:
    terms: list[SpreadTerm] = []
    anti = pod.affinity.pod_anti_affinity if pod.affinity is not None else None
    if anti is not None:
        for term in anti.required_during_scheduling_ignored_during_execution or ():
            terms.append(
                SpreadTerm("required podAntiAffinity", term.topology_key, policies.selector_of(term.label_selector))
            )
        for weighted in anti.preferred_during_scheduling_ignored_during_execution or ():
            term = weighted.pod_affinity_term
            terms.append(
                SpreadTerm("preferred podAntiAffinity", term.topology_key, policies.selector_of(term.label_selector))
            )
    for constraint in pod.topology_spread_constraints or ():
        selector = policies.selector_of(constraint.label_selector)
        terms.append(SpreadTerm("topologySpreadConstraint", constraint.topology_key, selector))
    return tuple(terms)


def facts_of(deployment: Any) -> DeploymentFacts:
    """Reduce a ``V1Deployment`` to :class:`DeploymentFacts`."""
    spec = deployment.spec
    template = spec.template
    pod = template.spec
    state = deployment.status
    conditions = (state.conditions if state else None) or []
    available = any(c.type == "Available" and c.status == "True" for c in conditions)
    labels = (template.metadata.labels if template.metadata is not None else None) or {}
    return DeploymentFacts(
        name=deployment.metadata.name,
        replicas=spec.replicas if spec.replicas is not None else 1,
        available_replicas=(state.available_replicas or 0) if state else 0,
        ready_replicas=(state.ready_replicas or 0) if state else 0,
        updated_replicas=(state.updated_replicas or 0) if state else 0,
        generation=deployment.metadata.generation or 0,
        observed_generation=(state.observed_generation or 0) if state else 0,
        termination_grace_period_seconds=pod.termination_grace_period_seconds,
        containers=tuple(_container(c, pod) for c in pod.containers),
        available_condition=available,
        init_containers=tuple(_container(c, pod, init=True) for c in (pod.init_containers or ())),
        labels=tuple(sorted(labels.items())),
        host_network=bool(pod.host_network),
        host_pid=bool(pod.host_pid),
        host_ipc=bool(pod.host_ipc),
        host_path_volumes=tuple(f"{v.name}: {v.host_path.path}" for v in (pod.volumes or ()) if v.host_path),
        automount_service_account_token=pod.automount_service_account_token,
        spread=_spread(pod),
        selector=tuple(sorted((spec.selector.match_labels or {}).items())) if spec.selector else (),
        selector_expressions=tuple(
            (e.key, e.operator, tuple(e.values or ()))
            for e in ((spec.selector.match_expressions or []) if spec.selector else [])
        ),
    )
