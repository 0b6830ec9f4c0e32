"""Assemble the whole ``status`` of a pass, and decide whether it needs writing.

``build`` combines the conditions (from the pure ``conditions`` function), the
per-dimension summaries, the bounded check list, the provisioned objects and
the ObserveOnly plan. ``needs_write`` compares with what the API server holds,
normalised through the same model, so an audit cycle over an unchanged
installation writes nothing: ``lastAuditTime`` therefore only moves when
something else in the status changed (the audit's heartbeat is the metric
``payscope_audit_last_run_timestamp_seconds``). No I/O here.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from payscope_operator.api import conditions as api_conditions
from payscope_operator.api import status
from payscope_operator.backends import base
from payscope_operator.reconcile import readiness

logger = logging.getLogger(__name__)

_SYSTEM_FIELD = {
    "postgres": "postgres",
    "timescaledb": "postgres",
    "neo4j": "neo4j",
    "pinecone": "pinecone",
    "objectStorage": "object_storage",
}
MAX_PLAN = 200


def parse(raw: Mapping[str, Any] | None) -> status.PayScopeStatus | None:
    """The status as stored, or None when absent or unreadable (then it is rewritten)."""
    if not raw:
        return None
    try:
        return status.PayScopeStatus.model_validate(dict(raw))
    except ValidationError:
        logger.info("stored status does not parse; it will be rewritten")
        return None


def _provisioned(plans: Sequence[base.Plan]) -> status.Provisioned | None:
    if not plans:
        return None
    grouped: dict[str, list[status.ProvisionedObject]] = {}
    for plan in plans:
        target = grouped.setdefault(_SYSTEM_FIELD.get(plan.system, plan.system), [])
        for obj in plan.objects:
            message = obj.message or obj.reason or None
            target.append(
                status.ProvisionedObject(
                    kind=obj.kind,
                    name=obj.name,
                    state=obj.state,
                    message=message[: status.MAX_MESSAGE_LENGTH] if message else None,
                )
            )
    deduped = {field: tuple({(o.kind, o.name): o for o in objs}.values()) for field, objs in grouped.items()}
    return status.Provisioned(**deduped)


def build(
    facts: readiness.Facts,
    *,
    previous: status.PayScopeStatus | None,
    checks: Sequence[status.CheckResult],
    plans: Sequence[base.Plan],
    preview: Sequence[str],
    now: datetime.datetime,
) -> status.PayScopeStatus:
    """The full status for this pass (``previous`` keeps lastTransitionTime and lastAuditTime)."""
    now = now.replace(microsecond=0)
    conds = readiness.build_conditions(facts, previous.conditions if previous else (), now)
    summaries = {
        dimension.value: readiness.summarise(facts.checks, dimension) for dimension in api_conditions.Dimension
    }
    candidate = status.PayScopeStatus(
        observed_generation=facts.generation,
        conditions=conds,
        dimensions=status.Dimensions.model_validate(summaries),
        checks=tuple(checks[: status.MAX_CHECKS]),
        provisioned=_provisioned(plans),
        plan=tuple(p[: status.MAX_MESSAGE_LENGTH] for p in preview[:MAX_PLAN]),
        last_audit_time=previous.last_audit_time if previous else None,
    )
    if previous is None or _comparable(candidate) != _comparable(previous):
        candidate = candidate.model_copy(update={"last_audit_time": now})
    return candidate


def _comparable(value: status.PayScopeStatus) -> dict[str, Any]:
    dumped = value.model_dump(mode="json", by_alias=True, exclude_none=True)
    dumped.pop("lastAuditTime", None)
    return dumped


def to_wire(value: status.PayScopeStatus) -> dict[str, Any]:
    """The JSON body written to the status subresource."""
    return value.model_dump(mode="json", by_alias=True, exclude_none=True)


def needs_write(stored: Mapping[str, Any] | None, candidate: status.PayScopeStatus) -> bool:
    """True unless the API server already holds exactly this status."""
    current = parse(stored)
    return current is None or to_wire(current) != to_wire(candidate)
