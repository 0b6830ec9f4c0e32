"""Run the audit: gather each source once, concurrently, then judge every check in dependency order.

Each source runs under its own timeout and a shared bound on concurrency (above
the number of sources a resource can have, so no source ever waits for a slot
behind a hanging one), so a dead or hanging dependency turns only its own checks
Unknown and never delays the rest beyond its timeout; a source that raises
something unexpected (a bug) turns its checks Unknown with reason
``UnexpectedError`` naming the exception's type. Evaluations are pure and
cannot hang. A check whose prerequisite (``depends_on``) did not pass or warn is
Unknown with reason ``BlockedBy`` naming it, instead of being judged on evidence
that prerequisite already found wanting. Waivers are applied last: a failing
or warning check named by an unexpired waiver (its id, ``<letter>.<area>.*``
or ``<letter>.*``; the most specific applies) is reported as Waived; a
dimension none of whose checks ran is accepted as such by an unexpired
``<letter>.*`` waiver; an expired waiver stops applying and is returned so the
caller can emit a Warning Event.

What it must not do: any I/O of its own (sources do), or judge evidence (checks do).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from payscope_operator import errors, logs
from payscope_operator.api import conditions, fields, spec, status
from payscope_operator.audit import context, registry

logger = logging.getLogger(__name__)

CheckStatus = status.CheckStatus
Reason = status.CheckReason

_ORDER = {
    CheckStatus.FAIL: 0,
    CheckStatus.UNKNOWN: 1,
    CheckStatus.WARN: 2,
    CheckStatus.WAIVED: 3,
    CheckStatus.PASS: 4,
    CheckStatus.NOT_CONFIGURED: 5,
}
_SEVERITY = {status.Severity.CRITICAL: 0, status.Severity.HIGH: 1, status.Severity.MEDIUM: 2, status.Severity.LOW: 3}
SATISFIED = frozenset({CheckStatus.PASS, CheckStatus.WARN})
"""What a prerequisite must be for the checks that depend on it to be judged."""
_FROM_EVALUATION = {
    CheckStatus.UNKNOWN: Reason.INCONCLUSIVE,
    CheckStatus.NOT_CONFIGURED: Reason.NOT_CONFIGURED,
}
CARRIED = frozenset({Reason.EGRESS_DENIED, Reason.CREDENTIALS_REQUIRED, Reason.RESPONSE_TOO_LARGE})
"""Reasons of a source's error that its checks report instead of SourceUnavailable (all Unknown)."""


@dataclass(frozen=True)
class Gathered:
    """A source's evidence, or why it could not be had."""

    evidence: Any = None
    error: str | None = None
    seconds: float = 0.0
    unexpected: bool = False
    """The source raised something unexpected (``errors.unexpected``): its checks are UnexpectedError."""
    reason: status.CheckReason | None = None  # one of CARRIED, when the error says why in those words


@dataclass(frozen=True)
class Remembered:
    """A gathering kept for reuse: when, and for which spec."""

    at: float
    spec_key: str
    gathered: Gathered


Memory = MutableMapping[str, Remembered]
Catalog = Iterable[registry.Check[Any]]
"""What ``run`` audits: ``catalog.CATALOG`` in production, a few checks in tests."""


@dataclass(frozen=True)
class Report:
    """The results of one audit, failing first, and what else the caller must report."""

    results: tuple[status.CheckResult, ...]
    expired_waivers: tuple[spec.Waiver, ...] = ()
    source_seconds: dict[str, float] = field(default_factory=dict)
    waived_dimensions: dict[conditions.Dimension, spec.Waiver] = field(default_factory=dict)
    """Dimensions none of whose checks ran, accepted as such by an unexpired ``D.*`` waiver."""

    def bounded(self) -> tuple[status.CheckResult, ...]:
        """At most ``status.MAX_CHECKS`` results, failing first (what status.checks holds)."""
        return self.results[: status.MAX_CHECKS]


@dataclass(frozen=True)
class Judged:
    """A check's finding and why it is what it is, before waivers."""

    finding: registry.Finding
    reason: status.CheckReason


def _carried(exc: BaseException) -> status.CheckReason | None:
    if isinstance(exc, errors.PayScopeError):
        return next((reason for reason in CARRIED if reason.value == exc.reason), None)
    return None


def _describe(exc: BaseException) -> str:
    """A message safe for status: our errors carry vetted text; others only their type."""
    if isinstance(exc, errors.PayScopeError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"probe failed: {type(exc).__name__}"


async def _gather(
    source: registry.Source[Any], session: context.Specified, timeout: float, limit: asyncio.Semaphore
) -> Gathered:
    started = time.monotonic()
    async with limit:
        logs.bind_task(system=source.name)  # each source is gathered in a task of its own
        try:
            evidence = await asyncio.wait_for(source.gather(session), timeout)
        except TimeoutError:
            return Gathered(error=f"{source.name}: no answer within {timeout:g}s", seconds=time.monotonic() - started)
        except Exception as exc:
            seconds = time.monotonic() - started
            if errors.unexpected(exc):
                logger.warning("source %s failed unexpectedly", source.name, exc_info=True)
                return Gathered(
                    error=f"{source.name}: {errors.describe_unexpected(exc)}", seconds=seconds, unexpected=True
                )
            logger.info("source %s could not be gathered: %s", source.name, _describe(exc))
            return Gathered(error=f"{source.name}: {_describe(exc)}", seconds=seconds, reason=_carried(exc))
    return Gathered(evidence=evidence, seconds=time.monotonic() - started)


def _blocked(check: registry.Check[Any], judged: dict[str, Judged]) -> Judged | None:
    """Unknown with BlockedBy when a prerequisite did not pass or warn; None when all did."""
    blocking = [d for d in check.depends_on if judged[d].finding.status not in SATISFIED]
    if not blocking:
        return None
    first = judged[blocking[0]].finding
    also = f" (and {', '.join(blocking[1:])})" if blocking[1:] else ""
    message = f"Blocked by {blocking[0]}{also}, which is {first.status.value}: {first.message}"
    return Judged(registry.Finding.unknown(message), Reason.BLOCKED_BY)


def _judge(
    check: registry.Check[Any], gathered: Gathered | None, desired: spec.PayScopeSpec, judged: dict[str, Judged]
) -> Judged:
    if gathered is None or not check.source.configured(desired):
        return Judged(registry.Finding.not_configured(check.source.absent), Reason.NOT_CONFIGURED)
    if check.applies is not None and not check.applies(desired):
        message = f"Not declared in the spec, so not audited: {check.title}"
        return Judged(registry.Finding.not_configured(message), Reason.NOT_CONFIGURED)
    if gathered.error is not None and gathered.unexpected:
        return Judged(registry.Finding.unknown(gathered.error), Reason.UNEXPECTED_ERROR)  # not proof it is down
    if gathered.error is not None:
        if gathered.reason is not None:  # never contacted, or its answer was refused: Unknown, saying why
            return Judged(registry.Finding.unknown(gathered.error), gathered.reason)
        failed = registry.Finding.failed if check.fails_when_unreachable else registry.Finding.unknown
        return Judged(failed(gathered.error), Reason.SOURCE_UNAVAILABLE)
    blocked = _blocked(check, judged)
    if blocked is not None:
        return blocked
    try:
        with logs.bind(check=check.id):
            finding = check.judge(gathered.evidence, desired)
    except Exception as exc:  # noqa: BLE001 - a malformed answer is Unknown, not a crash
        message = f"could not evaluate the evidence: {_describe(exc)}"
        return Judged(registry.Finding.unknown(message), Reason.UNEXPECTED_ERROR)
    return Judged(finding, finding.reason or _FROM_EVALUATION.get(finding.status, Reason.EVALUATED))


def _waivers_of(desired: spec.PayScopeSpec, check_id: str) -> list[spec.Waiver]:
    """The waivers naming ``check_id``, the most specific first (the id, then its area, then its dimension)."""
    found = [w for w in desired.audit.waivers if w.covers(check_id)]
    return sorted(found, key=lambda w: -len(w.check))


def _waive(
    result: status.CheckResult, desired: spec.PayScopeSpec, today: datetime.date
) -> tuple[status.CheckResult, spec.Waiver | None]:
    """Apply the most specific live waiver to a failing or warning result; else name an expired one that matched."""
    if result.status not in (CheckStatus.FAIL, CheckStatus.WARN):
        return result, None
    matching = _waivers_of(desired, result.id)
    live = [w for w in matching if w.expires >= today]
    if not live:
        return result, (matching[0] if matching else None)
    waiver = live[0]
    waived = result.model_copy(
        update={
            "status": CheckStatus.WAIVED,
            "reason": Reason.WAIVED.value,
            "message": f"Waived by {waiver.check} until {waiver.expires}: {waiver.reason} (finding: {result.message})"[
                : status.MAX_MESSAGE_LENGTH
            ],
        }
    )
    return waived, None


def _dimension_waivers(
    results: Sequence[status.CheckResult], desired: spec.PayScopeSpec, today: datetime.date
) -> tuple[dict[conditions.Dimension, spec.Waiver], list[spec.Waiver]]:
    """Whole-dimension waivers (``D.*``) of dimensions none of whose checks ran: live ones, and expired ones."""
    live: dict[conditions.Dimension, spec.Waiver] = {}
    expired: list[spec.Waiver] = []
    for dimension in conditions.Dimension:
        if any(r.dimension == dimension and r.status != CheckStatus.NOT_CONFIGURED for r in results):
            continue
        for waiver in desired.audit.waivers:
            if waiver.dimension_letter == dimension.letter:
                if waiver.expires >= today:
                    live[dimension] = waiver
                else:
                    expired.append(waiver)
    return live, expired


def order(results: Sequence[status.CheckResult]) -> tuple[status.CheckResult, ...]:
    """Failing first, then by severity, then by id: a stable order for status.checks."""
    return tuple(sorted(results, key=lambda r: (_ORDER[r.status], _SEVERITY[r.severity], r.id)))


def _spec_key(desired: spec.PayScopeSpec) -> str:
    return desired.model_dump_json(by_alias=True)


async def _gather_or_reuse(
    source: registry.Source[Any],
    session: context.Specified,
    limit: asyncio.Semaphore,
    memory: Memory | None,
) -> Gathered:
    """Gather, unless a successful gathering for the same spec is still within ``reuse_for``."""
    desired = session.spec
    reuse = source.reuse_for(desired) if source.reuse_for is not None and memory is not None else 0.0
    if reuse and memory is not None:
        kept = memory.get(source.name)
        if kept is not None and kept.spec_key == _spec_key(desired) and time.monotonic() - kept.at < reuse:
            return kept.gathered
    gathered = await _gather(source, session, source_timeout(source, desired), limit)
    if reuse and memory is not None and gathered.error is None:
        memory[source.name] = Remembered(time.monotonic(), _spec_key(desired), gathered)
    return gathered


def source_timeout(source: registry.Source[Any], desired: spec.PayScopeSpec) -> float:
    if source.timeout is not None:
        return source.timeout(desired)
    return fields.parse_duration(desired.audit.probe_timeout).total_seconds()


def _result(check: registry.Check[Any], judged: Judged) -> status.CheckResult:
    finding = judged.finding
    return status.CheckResult(
        id=check.id,
        dimension=check.dimension,
        status=finding.status,
        severity=check.severity,
        grade=check.grade,
        reason=judged.reason.value,
        message=finding.message[: status.MAX_MESSAGE_LENGTH],
        evidence=finding.evidence[: status.MAX_MESSAGE_LENGTH] if finding.evidence else None,
    )


def judge(
    catalog: Catalog, gathered: Mapping[str, Gathered], desired: spec.PayScopeSpec, *, today: datetime.date
) -> Report:
    """Judge every check after its prerequisites on what its source gathered (absent: NotConfigured); waive."""
    judged: dict[str, Judged] = {}
    results: list[status.CheckResult] = []
    expired: dict[str, spec.Waiver] = {}
    for check in registry.ordered(catalog):
        judged[check.id] = _judge(check, gathered.get(check.source.name), desired, judged)
        result, stale = _waive(_result(check, judged[check.id]), desired, today)
        if stale is not None:
            expired[stale.check] = stale
        results.append(result)
    waived_dimensions, stale_dimensions = _dimension_waivers(results, desired, today)
    expired.update((w.check, w) for w in stale_dimensions)
    return Report(
        results=order(results),
        expired_waivers=tuple(expired.values()),
        source_seconds={n: g.seconds for n, g in gathered.items()},
        waived_dimensions=waived_dimensions,
    )


async def run(
    catalog: Catalog,
    session: context.Specified,
    *,
    today: datetime.date,
    concurrency: int = 16,
    memory: Memory | None = None,
) -> Report:
    """Gather every configured source once, concurrently, then :func:`judge` every check."""
    desired = session.spec
    checks = registry.ordered(catalog)
    sources = {c.source.name: c.source for c in checks if c.source.configured(desired)}
    limit = asyncio.Semaphore(concurrency)
    names = list(sources)
    gathered = await asyncio.gather(*(_gather_or_reuse(sources[n], session, limit, memory) for n in names))
    return judge(checks, dict(zip(names, gathered, strict=True)), desired, today=today)
