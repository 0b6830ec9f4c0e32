"""The check catalog: every audit check, and every checklist item no probe can observe.

The catalog is code; ``docs/checks.md`` is generated from it (``render_markdown``)
and a test fails when they drift, another when a checkbox of the checklist is
neither covered by a check nor explained in ``NOT_OBSERVABLE``.
"""

from __future__ import annotations

from typing import Any

from payscope_operator.audit import registry
from payscope_operator.audit.checks import (
    agents,
    apis,
    data_layer,
    infrastructure,
    observability,
    pipeline,
    security,
    stores,
)

CATALOG: tuple[registry.Check[Any], ...] = (
    *infrastructure.CHECKS,
    *data_layer.CHECKS,
    *data_layer.ISOLATION_CHECKS,
    *stores.CHECKS,
    *pipeline.CHECKS,
    *agents.CHECKS,
    *apis.CHECKS,
    *observability.CHECKS,
    *security.CHECKS,
)
NOT_OBSERVABLE: tuple[registry.NotObservable, ...] = (
    *infrastructure.NOT_OBSERVABLE,
    *data_layer.NOT_OBSERVABLE,
    *pipeline.NOT_OBSERVABLE,
    *agents.NOT_OBSERVABLE,
    *observability.NOT_OBSERVABLE,
)


def ids() -> frozenset[str]:
    return frozenset(c.id for c in CATALOG)
