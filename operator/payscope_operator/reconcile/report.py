"""The status document of a pass, and what must be sent to make the API server hold it: pure.

``build`` combines the conditions (``readiness``), the per-dimension summaries,
the bounded check list (each result stamped with ``since``, the time it
entered its current status), the provisioned objects and the ObserveOnly plan
into one ``PayScopeStatus``. ``changes`` decides whether the API server must be
written at all and, when it must, returns the JSON merge patch (RFC 7386) that
turns the stored status into the new one: only the fields that differ, with
``null`` for the ones to remove. ``notices`` turns condition transitions into
the Events to post. ``lastAuditTime`` moves only when something else in the
status changed, so an audit cycle over an unchanged installation writes
nothing (the audit's heartbeat is the metric
``payscope_audit_last_run_timestamp_seconds``).

What it must not do: I/O of any kind, or decide condition values (``readiness``
does). ``status_writer`` owns the writing.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from payscope_operator.api import conditions, status
from payscope_operator.backends import base
from payscope_operator.reconcile import managed, readiness

logger = logging.getLogger(__name__)

MAX_PLAN = 200
Json = dict[str, Any]


@dataclass(frozen=True)
class Draft:
    """What one pass learned: everything the status is built from besides the stored status and the clock."""

    facts: readiness.Facts
    checks: Sequence[status.CheckResult] = ()
    plans: Sequence[base.Plan] = ()
    preview: Sequence[str] = ()


@dataclass(frozen=True)
class Notice:
    """One Kubernetes Event to post about the resource."""

    kind: Literal["Normal", "Warning"]
    reason: str
    message: str
    action: str = "Reconcile"


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
        target = grouped.setdefault(managed.STATUS_FIELD.get(plan.system, plan.system), [])
        for obj in plan.objects:
            message = obj.message or obj.reason or None
            target.append(
                status.ProvisionedObject(
                    kind=obj.kind,
                    name=obj.name,
                    state=obj.state,
                    reason=obj.reason or None,
                    message=message[: status.MAX_MESSAGE_LENGTH] if message else None,
                )
            )
    deduped = {field: tuple({(o.kind, o.name): o for o in objs}.values()) for field, objs in grouped.items()}
    return status.Provisioned(**deduped)


def build(draft: Draft, *, previous: status.PayScopeStatus | None, now: datetime.datetime) -> status.PayScopeStatus:
    """The full status for this pass (``previous`` keeps lastTransitionTime and lastAuditTime)."""
    now = now.replace(microsecond=0)
    facts = draft.facts
    conds = readiness.build_conditions(facts, previous.conditions if previous else (), now)
    summaries = {dimension.value: readiness.summarise(facts.checks, dimension) for dimension in conditions.Dimension}
    candidate = status.PayScopeStatus(
        observed_generation=facts.generation,
        conditions=conds,
        dimensions=status.Dimensions.model_validate(summaries),
        checks=since(listed(draft.checks), previous.checks if previous else (), now),
        provisioned=_provisioned(draft.plans),
        plan=tuple(p[: status.MAX_MESSAGE_LENGTH] for p in draft.preview[:MAX_PLAN]),
        last_audit_time=previous.last_audit_time if previous else None,
    )
    if previous is None or _comparable(candidate) != _comparable(previous):
        candidate = candidate.model_copy(update={"last_audit_time": now})
    return candidate


def listed(checks: Sequence[status.CheckResult]) -> tuple[status.CheckResult, ...]:
    """What status.checks holds: the checks that ran, at most ``MAX_CHECKS``.

    A check whose part of the installation the spec does not declare (NotConfigured) is counted in
    ``dimensions.<D>.notConfigured`` and not listed: in a partial installation those are most of the
    catalog, and listing them made every status write several times larger for the API server to
    validate, store and send to every watcher, while saying nothing a reader can act on. Reports
    derive them from the spec again (``audit.verdicts``).
    """
    return tuple(c for c in checks if c.status != status.CheckStatus.NOT_CONFIGURED)[: status.MAX_CHECKS]


def since(
    checks: Sequence[status.CheckResult], before: Sequence[status.CheckResult], now: datetime.datetime
) -> tuple[status.CheckResult, ...]:
    """Each result with ``since``: kept from ``before`` while the check's status holds, else ``now``.

    As a condition's lastTransitionTime, it moves only when the status flips, so an
    unchanged pass computes the same checks and writes nothing.
    """
    held = {c.id: c for c in before}
    stamped = []
    for check in checks:
        prior = held.get(check.id)
        kept = prior.since if prior is not None and prior.status == check.status else None
        stamped.append(check.model_copy(update={"since": kept or now}))
    return tuple(stamped)


def _comparable(value: status.PayScopeStatus) -> Json:
    dumped = to_wire(value)
    dumped.pop("lastAuditTime", None)
    return dumped


def to_wire(value: status.PayScopeStatus) -> Json:
    """The JSON form of a status, as the status subresource stores it."""
    return value.model_dump(mode="json", by_alias=True, exclude_none=True)


def merge_patch(before: Mapping[str, Any], after: Mapping[str, Any]) -> Json:
    """The RFC 7386 merge patch that turns ``before`` into ``after`` (lists are replaced whole)."""
    patch: Json = {key: None for key in before if key not in after}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            nested = merge_patch(old, value)
            if nested:
                patch[key] = nested
        elif key not in before or old != value:
            patch[key] = value
    return patch


def apply_merge_patch(target: Mapping[str, Any] | None, patch: Mapping[str, Any]) -> Json:
    """``target`` with an RFC 7386 merge patch applied, as the API server applies it."""
    merged: Json = dict(target or {})
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping):
            old = merged.get(key)
            merged[key] = apply_merge_patch(old if isinstance(old, Mapping) else None, value)
        else:
            merged[key] = value
    return merged


def changes(
    stored: Mapping[str, Any] | None, parsed: status.PayScopeStatus | None, candidate: status.PayScopeStatus
) -> Json | None:
    """What to send so the server holds ``candidate``; None when it already does.

    ``stored`` is the status exactly as the server holds it (the base of the
    patch), ``parsed`` the same status as a model: two stored statuses that
    parse to the same model are the same status, so a difference of spelling
    alone (a timestamp's format, a field from another version) never costs a write.
    """
    wanted = to_wire(candidate)
    if parsed is not None and to_wire(parsed) == wanted:
        return None
    patch = merge_patch(stored or {}, wanted)
    return patch or None


def superseded(parsed: status.PayScopeStatus | None, draft: Draft) -> bool:
    """The server already holds the status of a newer generation than the one this draft reconciled."""
    return parsed is not None and parsed.observed_generation > draft.facts.generation


def is_warning(condition: status.Condition) -> bool:
    """Stalled=True, or a condition False, except Reconciling's False (good news) and work in progress."""
    ctype, cstatus = condition.type, condition.status
    if ctype == conditions.ConditionType.STALLED:
        return cstatus == status.ConditionStatus.TRUE
    if condition.reason in (conditions.Reason.RECONCILING, conditions.Reason.PROVISIONING_PENDING):
        return False
    return cstatus == status.ConditionStatus.FALSE and ctype != conditions.ConditionType.RECONCILING


def notices(
    changed: Sequence[tuple[status.Condition | None, status.Condition]], *, first: bool = False
) -> list[Notice]:
    """An Event per condition transition; a resource's first status posts only what needs attention.

    ``first``: the status replaces none, or only the placeholder announcing the resource's first pass
    (its Unknown dimensions and Reconciling are no news to undo: only warnings are posted).
    """
    found = []
    for old, new in changed:
        warning = is_warning(new)
        if (old is None or first) and not warning:
            continue
        was = f"{old.status}/{old.reason}" if old else "unset"
        found.append(
            Notice(
                kind="Warning" if warning else "Normal",
                reason=new.reason,
                message=f"{new.type} is {new.status} (was {was}): {new.message}",
            )
        )
    return found
