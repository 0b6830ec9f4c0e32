"""A pod reduced to the facts the audit judges: readiness, restarts, why a container waits.

Converting the client's ``V1Pod`` here keeps the audit's checks pure functions of
plain frozen dataclasses, table-testable without a cluster. The label selector of
a Deployment is turned into the API's ``labelSelector`` string here too, so the
audit lists exactly the pods the Deployment owns.

What it must not do: talk to the API (``gateway`` does), or keep anything of a
pod beyond these facts (env, args and annotations may carry secrets).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_LOG_LINES = 200
"""How many of each container's most recent log lines the audit reads."""
MAX_LOG_BYTES = 256 * 1024
"""A cap on one container's log read, whatever the lines' length."""


@dataclass(frozen=True)
class ContainerStatus:
    name: str
    ready: bool
    restart_count: int
    waiting_reason: str | None  # CrashLoopBackOff, ImagePullBackOff, ...
    last_exit_code: int | None  # of the previous run, when it restarted


@dataclass(frozen=True)
class PodFacts:
    name: str
    phase: str
    ready: bool
    node: str | None
    containers: tuple[ContainerStatus, ...]


@dataclass(frozen=True)
class Requirement:
    """One ``matchExpressions`` entry of a label selector."""

    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()


def selector_text(labels: Mapping[str, str], expressions: Sequence[Requirement] = ()) -> str:
    """The ``labelSelector`` query of a Deployment's ``spec.selector``."""
    parts = [f"{k}={v}" for k, v in sorted(labels.items())]
    for r in expressions:
        if r.operator == "In":
            parts.append(f"{r.key} in ({','.join(r.values)})")
        elif r.operator == "NotIn":
            parts.append(f"{r.key} notin ({','.join(r.values)})")
        elif r.operator == "Exists":
            parts.append(r.key)
        elif r.operator == "DoesNotExist":
            parts.append(f"!{r.key}")
    return ",".join(parts)


def _container(state: Any) -> ContainerStatus:
    waiting = state.state.waiting if state.state is not None else None
    terminated = state.last_state.terminated if state.last_state is not None else None
    return ContainerStatus(
        name=state.name,
        ready=bool(state.ready),
        restart_count=int(state.restart_count or 0),
        waiting_reason=waiting.reason if waiting is not None else None,
        last_exit_code=terminated.exit_code if terminated is not None else None,
    )


def facts_of(pod: Any) -> PodFacts:
    """Reduce a ``V1Pod`` to :class:`PodFacts`."""
    status = pod.status
    conditions = (status.conditions if status else None) or []
    return PodFacts(
        name=pod.metadata.name,
        phase=(status.phase if status else None) or "Unknown",
        ready=any(c.type == "Ready" and c.status == "True" for c in conditions),
        node=pod.spec.node_name if pod.spec else None,
        containers=tuple(_container(c) for c in ((status.container_statuses if status else None) or [])),
    )
