"""Conditions from check results: one pure function, table-tested.

``build_conditions`` turns what a pass learned (check results, provisioning
outcome, a stall, whether work is still in progress, the pause annotation) and
the previous conditions into the full condition list. It keeps each
condition's ``lastTransitionTime`` unless its status flips, so an unchanged
installation yields an identical list and the status writer has nothing to
write. Rules, in the order ``Ready`` applies them (worst wins):

1. Paused → Ready False (Paused). 2. Stalled → Ready False with the stall's
reason; Reconciling is then False: never both True. 3. Reconciling → Ready
False (Reconciling). 4. Provisioned False → Ready False with its reason.
5. A dimension False → Ready False (ChecksFailing). 6. A dimension none of
whose checks ran, and not waived → Ready False (DimensionsNotConfigured,
naming them). 7. A dimension Unknown (other than NotConfigured) → Ready
Unknown (ChecksUnknown). 8. Nothing audited at all → Ready Unknown
(NotConfigured). 9. Otherwise True.

A dimension is False when a non-waived check failed, Unknown when a probe
could not run, True when every configured check passed or warned, and Unknown
with reason NotConfigured when none of its checks is configured: an absent
section never yields a false pass. A whole-dimension waiver (``D.*``, unexpired:
the runner decides) accepts that a dimension is not audited; its condition
stays Unknown (NotConfigured) and says so, and Ready no longer waits for it.
This module does no I/O.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from payscope_operator.api import conditions as api_conditions
from payscope_operator.api import spec, status

Reason = api_conditions.Reason
ConditionType = api_conditions.ConditionType
Dimension = api_conditions.Dimension
CheckStatus = status.CheckStatus
CS = status.ConditionStatus
Grade = status.EvidenceGrade

_SCORE_WEIGHT = {CheckStatus.PASS: 1.0, CheckStatus.WARN: 0.5, CheckStatus.FAIL: 0.0, CheckStatus.UNKNOWN: 0.0}


@dataclass(frozen=True)
class Stall:
    """Why retrying cannot help (missing Secret, permission denied, invalid spec)."""

    reason: str
    message: str


@dataclass(frozen=True)
class Provisioning:
    """The provisioning outcome of a pass, summarised for the Provisioned condition."""

    status: status.ConditionStatus
    reason: str
    message: str


@dataclass(frozen=True)
class Facts:
    """Everything the conditions depend on, besides the previous status and the clock."""

    generation: int
    checks: Sequence[status.CheckResult] = ()
    provisioning: Provisioning | None = None
    stall: Stall | None = None
    reconciling: str | None = None  # a message while work is in progress
    paused: bool = False
    waived_dimensions: Mapping[Dimension, spec.Waiver] = field(default_factory=dict)
    """Unexpired whole-dimension waivers of dimensions none of whose checks ran (``runner.Report``)."""


def summarise(results: Iterable[status.CheckResult], dimension: Dimension) -> status.DimensionSummary:
    """Counts and the 0-100 score of one dimension (NotConfigured and Waived do not count)."""
    mine = [r for r in results if r.dimension == dimension]
    counts = {s: sum(1 for r in mine if r.status == s) for s in CheckStatus}
    scored = [r for r in mine if r.status in _SCORE_WEIGHT]
    score = round(100 * sum(_SCORE_WEIGHT[r.status] for r in scored) / len(scored)) if scored else 0
    passed = [r.grade for r in mine if r.status == CheckStatus.PASS]
    return status.DimensionSummary(
        passed=counts[CheckStatus.PASS],
        failed=counts[CheckStatus.FAIL],
        warned=counts[CheckStatus.WARN],
        unknown=counts[CheckStatus.UNKNOWN],
        not_configured=counts[CheckStatus.NOT_CONFIGURED],
        waived=counts[CheckStatus.WAIVED],
        score=score,
        passed_by_grade=status.GradeCounts(
            observed=passed.count(Grade.OBSERVED),
            inferred=passed.count(Grade.INFERRED),
            reported=passed.count(Grade.REPORTED),
        ),
    )


def _ids(results: Iterable[status.CheckResult], wanted: CheckStatus, limit: int = 5) -> str:
    ids = [r.id for r in results if r.status == wanted]
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _dimension(
    results: Sequence[status.CheckResult], dimension: Dimension, waiver: spec.Waiver | None = None
) -> tuple[CS, str, str]:
    mine = [r for r in results if r.dimension == dimension]
    failed = [r for r in mine if r.status == CheckStatus.FAIL]
    if failed:
        first = failed[0]
        return (
            CS.FALSE,
            Reason.CHECKS_FAILING,
            f"{len(failed)} failing: {_ids(mine, CheckStatus.FAIL)}; {first.id}: {first.message}",
        )
    unknown = [r for r in mine if r.status == CheckStatus.UNKNOWN]
    if unknown:
        first = unknown[0]
        return (
            CS.UNKNOWN,
            Reason.CHECKS_UNKNOWN,
            f"{len(unknown)} could not run: {_ids(mine, CheckStatus.UNKNOWN)}; {first.id}: {first.message}",
        )
    audited = [r for r in mine if r.status in (CheckStatus.PASS, CheckStatus.WARN, CheckStatus.WAIVED)]
    if not audited:
        message = "No check of this dimension is configured in the spec."
        if waiver is not None:
            message += f" Not audited by waiver {waiver.check} until {waiver.expires}: {waiver.reason}"
        return CS.UNKNOWN, Reason.NOT_CONFIGURED, message
    warned = [r for r in mine if r.status == CheckStatus.WARN]
    if warned:
        return CS.TRUE, Reason.CHECKS_WARNING, f"{len(audited)} checks pass; warnings: {_ids(mine, CheckStatus.WARN)}"
    waived = [r for r in mine if r.status == CheckStatus.WAIVED]
    if waived:
        return CS.TRUE, Reason.WAIVED, f"{len(audited)} checks pass, waived: {_ids(mine, CheckStatus.WAIVED)}"
    return CS.TRUE, Reason.ALL_CHECKS_PASSED, f"All {len(audited)} configured checks pass."


def _ready(facts: Facts, dims: dict[Dimension, tuple[CS, str, str]]) -> tuple[CS, str, str]:
    if facts.paused:
        return CS.FALSE, Reason.PAUSED, "Paused by the payscope.io/paused annotation; external systems are untouched."
    if facts.stall is not None:
        return CS.FALSE, facts.stall.reason, facts.stall.message
    if facts.reconciling is not None:
        return CS.FALSE, Reason.RECONCILING, facts.reconciling
    if facts.provisioning is not None and facts.provisioning.status != CS.TRUE:
        return CS.FALSE, facts.provisioning.reason, facts.provisioning.message
    failing = [d for d, (s, _, _) in dims.items() if s == CS.FALSE]
    if failing:
        return CS.FALSE, Reason.CHECKS_FAILING, "Failing dimensions: " + ", ".join(d.value for d in failing)
    audited = {d: v for d, v in dims.items() if v[1] != Reason.NOT_CONFIGURED}
    skipped = [d for d in dims if d not in audited and d not in facts.waived_dimensions]
    if skipped:
        return (
            CS.FALSE,
            Reason.DIMENSIONS_NOT_CONFIGURED,
            "Not audited, no check configured: " + ", ".join(d.value for d in skipped) + ". Declare the spec"
            " sections they audit, or accept it with a waiver such as"
            f' {{check: "{skipped[0].letter}.*", reason: ..., expires: ...}}.',
        )
    if not audited:
        return CS.UNKNOWN, Reason.NOT_CONFIGURED, "The spec configures nothing to audit."
    unknown = [d for d, (s, _, _) in audited.items() if s == CS.UNKNOWN]
    if unknown:
        return (
            CS.UNKNOWN,
            Reason.CHECKS_UNKNOWN,
            "Dimensions not fully observed: " + ", ".join(d.value for d in unknown),
        )
    waived = [f"{d.value} (until {w.expires})" for d, w in facts.waived_dimensions.items() if d not in audited]
    note = f" Not audited, waived: {', '.join(waived)}." if waived else ""
    return CS.TRUE, Reason.ALL_CHECKS_PASSED, f"All audited dimensions are ready.{note}"


def _provisioned(facts: Facts) -> tuple[CS, str, str]:
    if facts.provisioning is None:
        return CS.UNKNOWN, Reason.AUDIT_PENDING, "Provisioning has not run for this generation."
    return facts.provisioning.status, facts.provisioning.reason, facts.provisioning.message


def build_conditions(
    facts: Facts,
    previous: Sequence[status.Condition],
    now: datetime.datetime,
) -> tuple[status.Condition, ...]:
    """All conditions for ``facts``, keeping lastTransitionTime where status did not flip."""
    dims = {d: _dimension(facts.checks, d, facts.waived_dimensions.get(d)) for d in Dimension}
    stalled = facts.stall is not None
    reconciling = facts.reconciling is not None and not stalled
    computed: list[tuple[ConditionType, tuple[CS, str, str]]] = [
        (ConditionType.READY, _ready(facts, dims)),
        (
            ConditionType.RECONCILING,
            (CS.TRUE, Reason.RECONCILING, facts.reconciling or "")
            if reconciling
            else (CS.FALSE, Reason.RECONCILE_SUCCEEDED, "Nothing in progress."),
        ),
        (
            ConditionType.STALLED,
            (CS.TRUE, facts.stall.reason, facts.stall.message)
            if facts.stall is not None
            else (CS.FALSE, Reason.RECONCILE_SUCCEEDED, "Nothing blocks reconciliation."),
        ),
        (ConditionType.PROVISIONED, _provisioned(facts)),
    ]
    computed.extend((d.condition_type, dims[d]) for d in Dimension)
    before = {c.type: c for c in previous}
    out = []
    for ctype, (cstatus, reason, message) in computed:
        old = before.get(ctype)
        moment = old.last_transition_time if old is not None and old.status == cstatus else now
        out.append(
            status.Condition(
                type=ctype,
                status=cstatus,
                reason=str(reason),
                message=message[: status.MAX_CONDITION_MESSAGE_LENGTH],
                last_transition_time=moment,
                observed_generation=facts.generation,
            )
        )
    return tuple(out)


def transitions(
    previous: Sequence[status.Condition], current: Sequence[status.Condition]
) -> list[tuple[status.Condition | None, status.Condition]]:
    """Conditions whose status or reason changed: each one gets a Kubernetes Event."""
    before = {c.type: c for c in previous}
    changed = []
    for cond in current:
        old = before.get(cond.type)
        if old is None or old.status != cond.status or old.reason != cond.reason:
            changed.append((old, cond))
    return changed
