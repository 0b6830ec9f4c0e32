"""The check catalog: every audit check, and every checklist item no probe can observe.

The catalog is code: each dimension's module under ``checks`` registers its
checks with ``@registry.check``, and :data:`CATALOG` joins them, refusing a
repeated id or a dependency on an unknown check. ``docs/checks.md`` is generated
from it (``document``) and a test fails when they drift, another when a checkbox
of the checklist is neither covered by a check nor explained in
:data:`NOT_OBSERVABLE`.

What it must not do: declare checks itself, or change an id (dashboards, waivers
and alerts use them). A check that has to go is retired (:data:`RETIRED`), its id
never reused.
"""

from __future__ import annotations

from typing import Any

from payscope_operator.audit import registry
from payscope_operator.audit.checks import (
    agents,
    apis,
    audit_log,
    data_layer,
    data_layer_stores,
    infrastructure,
    metrics,
    observability,
    pipeline,
    pods,
    responses,
    security,
    vectors,
    workload_security,
)

CATALOG: tuple[registry.Check[Any], ...] = registry.assemble(
    infrastructure.CHECKS,
    data_layer.CHECKS,
    data_layer_stores.CHECKS,
    pipeline.CHECKS,
    agents.CHECKS,
    apis.CHECKS,
    responses.CHECKS,
    metrics.CHECKS,
    observability.CHECKS,
    pods.CHECKS,
    security.CHECKS,
    workload_security.CHECKS,
    audit_log.CHECKS,
    vectors.CHECKS,
)
NOT_OBSERVABLE: tuple[registry.NotObservable, ...] = (
    *infrastructure.NOT_OBSERVABLE,
    *pipeline.NOT_OBSERVABLE,
    *agents.NOT_OBSERVABLE,
    *observability.NOT_OBSERVABLE,
    *audit_log.NOT_OBSERVABLE,
)

RETIRED: dict[str, str] = {**infrastructure.RETIRED}
"""Ids of checks removed from the catalog, and why; never reused, and a waiver naming one is accepted and inert."""


def ids() -> frozenset[str]:
    return frozenset(c.id for c in CATALOG)
