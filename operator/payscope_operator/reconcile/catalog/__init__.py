"""The check catalog: every audit check, and every checklist item no probe can observe.

The catalog is code; ``docs/checks.md`` is generated from it (``render_markdown``)
and a test fails when they drift, another when a checkbox of the checklist is
neither covered by a check nor explained in ``NOT_OBSERVABLE``.
"""

from __future__ import annotations

from typing import Any

from payscope_operator.reconcile import checks
from payscope_operator.reconcile.catalog import (
    agents,
    apis,
    infrastructure,
    observability,
    pipeline,
    relational,
    security,
    stores,
)

CATALOG: tuple[checks.Check[Any], ...] = (
    *infrastructure.CHECKS,
    *relational.CHECKS,
    *relational.ISOLATION_CHECKS,
    *stores.CHECKS,
    *pipeline.CHECKS,
    *agents.CHECKS,
    *apis.CHECKS,
    *observability.CHECKS,
    *security.CHECKS,
)
NOT_OBSERVABLE: tuple[checks.NotObservable, ...] = (
    *infrastructure.NOT_OBSERVABLE,
    *relational.NOT_OBSERVABLE,
    *pipeline.NOT_OBSERVABLE,
    *agents.NOT_OBSERVABLE,
    *observability.NOT_OBSERVABLE,
)


def ids() -> frozenset[str]:
    return frozenset(c.id for c in CATALOG)
