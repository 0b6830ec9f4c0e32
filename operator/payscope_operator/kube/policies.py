"""PodDisruptionBudgets and NetworkPolicies reduced to facts, and the label selectors they share.

Why this module exists: the audit asks whether a PodDisruptionBudget covers the
api's pods and whether a NetworkPolicy selects each Deployment's pods. Both are
answered by matching a label selector against a pod template's labels, which
is Kubernetes' own rule (``matchLabels`` and ``matchExpressions`` ANDed; an
empty selector matches every pod; a null one none). Converting the client's
objects here keeps the checks pure functions of frozen dataclasses.

What it must not do: talk to the API server (``gateway`` does) or judge whether
a budget or a policy is good enough (the audit's checks do).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Requirement:
    """One ``matchExpressions`` entry: ``key`` ``operator`` (In, NotIn, Exists, DoesNotExist) ``values``."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def holds(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            return not present or labels[self.key] not in self.values
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        return False  # an operator this version does not know selects nothing


@dataclass(frozen=True)
class LabelSelector:
    """A ``metav1.LabelSelector``; every label and every requirement must hold."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.holds(labels) for r in self.match_expressions
        )

    def __str__(self) -> str:
        shown = [f"{k}={v}" for k, v in self.match_labels]
        shown += [
            f"{r.key} {r.operator}" + (f" ({','.join(r.values)})" if r.values else "") for r in self.match_expressions
        ]
        return ",".join(shown) or "(every pod)"


def selector_of(raw: Any) -> LabelSelector | None:
    """A client ``V1LabelSelector`` as a :class:`LabelSelector`; None stays None (it selects nothing)."""
    if raw is None:
        return None
    expressions = tuple(Requirement(e.key, e.operator, tuple(e.values or ())) for e in (raw.match_expressions or ()))
    return LabelSelector(tuple(sorted((raw.match_labels or {}).items())), expressions)


@dataclass(frozen=True)
class DisruptionBudgetFacts:
    """A PodDisruptionBudget: which pods it selects and how many of them it lets go at once."""

    name: str
    selector: LabelSelector | None
    min_available: str | None = None  # "1" or "50%", as written
    max_unavailable: str | None = None

    def selects(self, labels: Mapping[str, str]) -> bool:
        return self.selector is not None and self.selector.matches(labels)

    def allowed_disruptions(self, replicas: int) -> int | None:
        """Pods of ``replicas`` that may be evicted at once, as the disruption controller counts (None: no bound)."""
        if self.min_available is not None:
            return replicas - _scaled(self.min_available, replicas)
        if self.max_unavailable is not None:
            return _scaled(self.max_unavailable, replicas)
        return None


def _scaled(value: str, replicas: int) -> int:
    """An int-or-percent of ``replicas``, percentages rounded up as the disruption controller does."""
    if value.endswith("%"):
        return math.ceil(replicas * int(value[:-1]) / 100)
    return int(value)


def budget_facts(budget: Any) -> DisruptionBudgetFacts:
    """Reduce a ``V1PodDisruptionBudget``."""
    spec = budget.spec
    return DisruptionBudgetFacts(
        name=budget.metadata.name,
        selector=selector_of(spec.selector) if spec else None,
        min_available=None if spec is None or spec.min_available is None else str(spec.min_available),
        max_unavailable=None if spec is None or spec.max_unavailable is None else str(spec.max_unavailable),
    )


@dataclass(frozen=True)
class NetworkPolicyFacts:
    """A NetworkPolicy: the pods it selects, whether it restricts their ingress, and whether it admits everyone."""

    name: str
    pod_selector: LabelSelector
    ingress: bool  # "Ingress" is among its policyTypes
    admits_all_ingress: bool = False  # an ingress rule with neither sources nor ports: every peer, every port

    def isolates(self, labels: Mapping[str, str]) -> bool:
        """Selects these pods and restricts who may connect to them."""
        return self.ingress and self.pod_selector.matches(labels)


def network_policy_facts(policy: Any) -> NetworkPolicyFacts:
    """Reduce a ``V1NetworkPolicy``; without policyTypes, Ingress applies (the API's own default)."""
    spec = policy.spec
    types = tuple(spec.policy_types or ("Ingress",))
    rules = spec.ingress or ()
    return NetworkPolicyFacts(
        name=policy.metadata.name,
        pod_selector=selector_of(spec.pod_selector) or LabelSelector(),
        ingress="Ingress" in types,
        admits_all_ingress=any(not (r._from or r.ports) for r in rules),
    )
