"""Evidence from PayScope's pods: their readiness and restarts, and their own recent log lines.

Why this module exists: whether PayScope waits for its dependencies and retries
its connections shows in its pods (a process that does not retry crashes and
restarts; one that waits is not ready until its dependencies are), and whether it
logs structured lines at a production level shows in the lines themselves. For
every Deployment of ``spec.workloads`` this source reads the Deployment's label
selector, lists the pods it owns (``pods`` list), and reads the most recent lines
of each container of a few of them (``pods/log``, ``kube.pods.MAX_LOG_LINES``).

A log that cannot be read (no ``pods/log`` permission, a pod without a node, a
kubelet that does not answer) spoils only the log checks (:data:`LOGS` turns
Unknown with the reason); the pods' states still stand.

What it must not do: talk to the API server other than through ``Session.cluster``,
keep a log line in evidence or status (lines may carry tenant data; only counts
and positions leave this module's callers), or judge anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from payscope_operator import errors
from payscope_operator.audit import context, registry
from payscope_operator.audit.sources import kubernetes
from payscope_operator.kube import pods, workloads

PODS_PER_DEPLOYMENT = 3
"""Whose logs are read: a sample of each Deployment's pods keeps the audit's cost flat as PayScope scales."""


@dataclass(frozen=True)
class Log:
    """One container's recent lines, or why they could not be read."""

    deployment: str
    pod: str
    container: str
    lines: tuple[str, ...] = ()
    problem: str | None = None


@dataclass(frozen=True)
class Workload:
    """One declared Deployment's pods (None: the Deployment does not exist)."""

    deployment: str
    pods: tuple[pods.PodFacts, ...] | None


@dataclass(frozen=True)
class PodEvidence:
    workloads: Mapping[str, Workload]  # by role
    logs: tuple[Log, ...]
    logs_read: bool = True  # spec.audit.readPodLogs

    def readable(self) -> tuple[Log, ...]:
        return tuple(log for log in self.logs if log.problem is None)


def _selector(facts: workloads.DeploymentFacts) -> str:
    expressions = [pods.Requirement(k, op, values) for k, op, values in facts.selector_expressions]
    return pods.selector_text(dict(facts.selector), expressions)


async def _log(run: context.Session, deployment: str, pod: str, container: str) -> Log:
    try:
        text = await run.cluster.read_pod_log(run.namespace, pod, container)
    except errors.PayScopeError as exc:
        return Log(deployment, pod, container, problem=exc.message)
    if text is None:
        return Log(deployment, pod, container, problem="the pod is gone")
    return Log(deployment, pod, container, tuple(text.splitlines()[-pods.MAX_LOG_LINES :]))


async def _gather(run: context.Session) -> PodEvidence:
    found: dict[str, Workload] = {}
    logs: list[Log] = []
    for role, name in kubernetes.declared(run.spec).items():
        facts = await run.cluster.read_deployment(run.namespace, name)
        if facts is None:
            found[role] = Workload(name, None)
            continue
        listed = await run.cluster.list_pods(run.namespace, _selector(facts))
        found[role] = Workload(name, listed)
        for pod in listed[:PODS_PER_DEPLOYMENT] if run.spec.audit.read_pod_logs else ():
            names = [c.name for c in pod.containers] or [c.name for c in facts.containers]
            logs += [await _log(run, name, pod.name, container) for container in names]
    return PodEvidence(found, tuple(logs), run.spec.audit.read_pod_logs)


PODS = registry.Source[PodEvidence](
    name="kubernetes.pods",
    gather=_gather,
    configured=lambda s: bool(kubernetes.declared(s)),
    absent="spec.workloads names no Deployment: PayScope's pods and logs are not audited.",
)


def _logs(evidence: PodEvidence) -> tuple[Log, ...] | registry.Finding:
    if not evidence.logs_read:
        return registry.Finding.not_configured("spec.audit.readPodLogs is false: the pods' log lines are not read.")
    readable = evidence.readable()
    if readable:
        return readable
    if not evidence.logs:
        return registry.Finding.unknown("No pod of the declared Deployments was found, so no log line was read.")
    first = evidence.logs[0]
    return registry.Finding.unknown(
        f"No pod's log could be read ({len(evidence.logs)} tried; {first.pod}/{first.container}: {first.problem})."
    )


LOGS: registry.Part[tuple[Log, ...]] = PODS.part(_logs)
"""The containers' recent log lines that could be read, or Unknown when none could."""
