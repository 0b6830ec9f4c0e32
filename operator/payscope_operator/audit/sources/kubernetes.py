"""Evidence from the Kubernetes API: PayScope's Deployments, what guards them, and the Secrets the spec references.

Why this module exists: dimensions A, F and G judge the Deployments named in
``spec.workloads``, read once per pass through the cluster gateway, together
with the namespace's PodDisruptionBudgets and NetworkPolicies (one list each,
matched to the pods by label selector in the checks), and whether every
referenced Secret key exists, which the pass already learnt while resolving
Secrets (``Session.missing``): no second read.

A list the operator may not read (403) or that fails turns only the checks
that need it Unknown (:data:`BUDGETS`, :data:`NETWORK`): the Deployments'
own checks are still judged.

What it must not do: talk to the API server other than through ``Session.cluster``,
carry a Secret value, or judge the evidence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from payscope_operator import errors
from payscope_operator.api import secret_references, spec
from payscope_operator.audit import context, registry
from payscope_operator.kube import policies, workloads

ROLES = ("api", "worker", "ingestion")
T = TypeVar("T")


@dataclass(frozen=True)
class WorkloadEvidence:
    """Each declared role's Deployment (None when it does not exist), and the namespace's guards."""

    deployments: dict[str, workloads.DeploymentFacts | None]
    budgets: tuple[policies.DisruptionBudgetFacts, ...] | str = ()  # a str: why they could not be listed
    network_policies: tuple[policies.NetworkPolicyFacts, ...] | str = ()


@dataclass(frozen=True)
class BudgetEvidence:
    """The declared Deployments and every PodDisruptionBudget of the namespace."""

    deployments: dict[str, workloads.DeploymentFacts | None]
    budgets: tuple[policies.DisruptionBudgetFacts, ...]


@dataclass(frozen=True)
class NetworkEvidence:
    """The declared Deployments and every NetworkPolicy of the namespace."""

    deployments: dict[str, workloads.DeploymentFacts | None]
    policies: tuple[policies.NetworkPolicyFacts, ...]


def declared(desired: spec.PayScopeSpec) -> dict[str, str]:
    """Role -> Deployment name, for the roles ``spec.workloads`` names."""
    if desired.workloads is None:
        return {}
    found = {role: getattr(desired.workloads, role) for role in ROLES}
    return {role: w.name for role, w in found.items() if w is not None}


async def _listed(read: Callable[[], Awaitable[tuple[T, ...]]]) -> tuple[T, ...] | str:
    try:
        return await read()
    except errors.PayScopeError as exc:
        return exc.message


async def _gather_workloads(run: context.Session) -> WorkloadEvidence:
    names = declared(run.spec)
    found = {role: await run.cluster.read_deployment(run.namespace, name) for role, name in names.items()}
    budgets: tuple[policies.DisruptionBudgetFacts, ...] | str = ()
    if "api" in names:  # only the api is expected to have a budget
        budgets = await _listed(lambda: run.cluster.list_disruption_budgets(run.namespace))
    network = await _listed(lambda: run.cluster.list_network_policies(run.namespace))
    return WorkloadEvidence(found, budgets, network)


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


def _budgets(evidence: WorkloadEvidence) -> BudgetEvidence | registry.Finding:
    if isinstance(evidence.budgets, str):
        return registry.Finding.unknown(f"PodDisruptionBudgets could not be listed: {evidence.budgets}")
    return BudgetEvidence(evidence.deployments, evidence.budgets)


def _network(evidence: WorkloadEvidence) -> NetworkEvidence | registry.Finding:
    if isinstance(evidence.network_policies, str):
        return registry.Finding.unknown(f"NetworkPolicies could not be listed: {evidence.network_policies}")
    return NetworkEvidence(evidence.deployments, evidence.network_policies)


BUDGETS = WORKLOADS.part(_budgets)
"""The Deployments with the namespace's PodDisruptionBudgets; Unknown when they could not be listed."""
NETWORK = WORKLOADS.part(_network)
"""The Deployments with the namespace's NetworkPolicies; Unknown when they could not be listed."""
