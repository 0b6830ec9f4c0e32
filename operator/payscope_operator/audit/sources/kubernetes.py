"""Evidence from the Kubernetes API: PayScope's Deployments and the Secrets the spec references.

Why this module exists: dimension A (and F's shutdown settings) judge the
Deployments named in ``spec.workloads``, read once per pass through the cluster
gateway, and whether every referenced Secret key exists, which the pass already
learnt while resolving Secrets (``Session.missing``): no second read.

What it must not do: talk to the API server other than through ``Session.cluster``,
carry a Secret value, or judge the evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from payscope_operator.api import secret_references, spec
from payscope_operator.audit import context, registry
from payscope_operator.kube import workloads

ROLES = ("api", "worker", "ingestion")


@dataclass(frozen=True)
class WorkloadEvidence:
    """Each declared role's Deployment (None when it does not exist)."""

    deployments: dict[str, workloads.DeploymentFacts | None]


def declared(desired: spec.PayScopeSpec) -> dict[str, str]:
    """Role -> Deployment name, for the roles ``spec.workloads`` names."""
    if desired.workloads is None:
        return {}
    found = {role: getattr(desired.workloads, role) for role in ROLES}
    return {role: w.name for role, w in found.items() if w is not None}


async def _gather_workloads(run: context.Session) -> WorkloadEvidence:
    names = declared(run.spec)
    found = {role: await run.cluster.read_deployment(run.namespace, name) for role, name in names.items()}
    return WorkloadEvidence(found)


async def _gather_secrets(run: context.Session) -> Sequence[context.MissingSecret]:
    return run.missing


WORKLOADS = registry.Source[WorkloadEvidence](
    name="kubernetes.workloads",
    gather=_gather_workloads,
    configured=lambda s: bool(declared(s)),
    absent="spec.workloads names no Deployment.",
)
SECRETS = registry.Source[Sequence[context.MissingSecret]](
    name="kubernetes.secrets",
    gather=_gather_secrets,
    configured=lambda s: bool(secret_references.references(s)),
    absent="The spec references no Secret.",
)
