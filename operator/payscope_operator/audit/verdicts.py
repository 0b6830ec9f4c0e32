"""The readiness report's content: each checklist checkbox judged from the live status and the catalog; pure.

Why this module exists: the report an auditor reads must be the one the cluster
enforces. ``build`` joins a resource's ``status.checks`` with the catalog (what
each check probes, its grade, which checkboxes it covers), the checklist
items no probe can observe, and the spec's waivers, into a :class:`Report`
that ``report_markdown`` and ``report_html`` render without deciding anything.

The tick rule (also stated in every report): a checkbox is ticked ``[x]`` only
when every check covering it reported Pass or Warn in the current status
(Warn: passed with a reservation, listed under the item). It stays ``[ ]``
when one of them failed, is Unknown, is missing from the status, or is
NotConfigured (that part of the installation is not declared, so it was not
audited), and when it is waived: a waiver accepts a failure, it does not make
the item true, so a waived item shows as Waived with its reason and expiry.
Items no probe can observe from outside PayScope stay ``[ ]`` with the reason.
The worst covering check decides: Fail, then Unknown, then NotConfigured, then
Waived, then Warn, then Pass.

What it must not do: I/O (callers read the resource and the clock), or change
what a check means (``catalog`` and ``runner`` do).
"""

from __future__ import annotations

import datetime
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from payscope_operator.api import conditions, spec, status
from payscope_operator.audit import catalog, checklist, registry

CS = status.CheckStatus


class ItemState(StrEnum):
    """What the report says of one checkbox."""

    PASSED = "Passed"
    WARNED = "Passed with warnings"
    FAILING = "Failing"
    WAIVED = "Waived"
    UNKNOWN = "Unknown"
    NOT_AUDITED = "Not audited"
    NOT_OBSERVABLE = "Not observable"


TICKED = frozenset({ItemState.PASSED, ItemState.WARNED})
_WORST_FIRST: tuple[tuple[frozenset[CS | None], ItemState], ...] = (
    (frozenset({CS.FAIL}), ItemState.FAILING),
    (frozenset({CS.UNKNOWN, None}), ItemState.UNKNOWN),
    (frozenset({CS.NOT_CONFIGURED}), ItemState.NOT_AUDITED),
    (frozenset({CS.WAIVED}), ItemState.WAIVED),
    (frozenset({CS.WARN}), ItemState.WARNED),
)
TICK_RULE = (
    "A checkbox is ticked [x] only when every check covering it reported Pass or Warn in the live status"
    " (warnings are listed under it). It stays [ ] when a covering check failed, is Unknown, is missing from"
    " the status, or is NotConfigured (that part is not declared in the spec, so it was not audited); a waived"
    " item stays [ ] and shows the waiver's reason and expiry, because a waiver accepts a failure rather than"
    " fixing it. Items no probe can observe from outside PayScope stay [ ] with the reason."
)


@dataclass(frozen=True)
class Subject:
    """What a report is about: one PayScopeDeployment as read from the cluster, or from a file."""

    namespace: str
    name: str
    status: status.PayScopeStatus | None
    waivers: tuple[spec.Waiver, ...] = ()
    generation: int | None = None
    paused: bool = False
    desired: spec.PayScopeSpec | None = None
    """The spec, when it parses: status.checks does not list NotConfigured checks, the spec says which they are."""


@dataclass(frozen=True)
class Evidence:
    """One check behind a checkbox: the catalog's description joined with its live result."""

    check_id: str
    title: str
    passes_when: str
    severity: status.Severity
    grade: status.EvidenceGrade
    status: CS | None  # None: the status holds no result for it
    message: str
    evidence: str | None
    since: datetime.datetime | None
    waivers: tuple[spec.Waiver, ...]


@dataclass(frozen=True)
class Verdict:
    """One checkbox of the checklist, judged."""

    item: checklist.Item
    state: ItemState
    evidence: tuple[Evidence, ...]
    unobservable: tuple[str, ...]  # why no probe can observe it, when that is so
    is_status_line: bool = False  # the checklist's "**Status:** Checking..." line: the overall state

    @property
    def ticked(self) -> bool:
        return self.state in TICKED


@dataclass(frozen=True)
class SubsectionVerdicts:
    title: str
    verdicts: tuple[Verdict, ...]


@dataclass(frozen=True)
class SectionVerdicts:
    letter: str
    title: str
    dimension: conditions.Dimension
    condition: status.Condition | None
    summary: status.DimensionSummary | None
    subsections: tuple[SubsectionVerdicts, ...]


@dataclass(frozen=True)
class WaiverView:
    """A waiver of the spec: what it names, why, until when, and which checks it covers."""

    check: str
    reason: str
    expires: datetime.date
    expired: bool
    covers: tuple[str, ...]


@dataclass(frozen=True)
class Summary:
    namespace: str
    name: str
    generated: datetime.datetime
    status_time: datetime.datetime | None  # when the status last changed (lastAuditTime)
    ready: status.Condition | None
    generation: int | None
    observed_generation: int | None
    paused: bool

    @property
    def overall(self) -> str:
        """READY, NOT READY, READINESS UNKNOWN or NOT YET AUDITED, with the Ready condition's reason."""
        if self.ready is None:
            return "NOT YET AUDITED"
        word = {status.ConditionStatus.TRUE: "READY", status.ConditionStatus.FALSE: "NOT READY"}.get(
            self.ready.status, "READINESS UNKNOWN"
        )
        return f"{word} ({self.ready.reason})"


@dataclass(frozen=True)
class Report:
    title: str
    summary: Summary
    scope: tuple[str, ...]
    sections: tuple[SectionVerdicts, ...]
    other_checks: tuple[Evidence, ...]  # checks that cover no checkbox
    waivers: tuple[WaiverView, ...]

    def verdicts(self) -> tuple[Verdict, ...]:
        """Every readiness checkbox in document order (the status line excluded)."""
        return tuple(v for s in self.sections for sub in s.subsections for v in sub.verdicts if not v.is_status_line)

    def count(self, state: ItemState) -> int:
        return sum(1 for v in self.verdicts() if v.state == state)


def waivers_of(desired: Mapping[str, Any]) -> tuple[spec.Waiver, ...]:
    """The waivers of a raw spec that parse (a report shows them even when the rest of the spec is invalid)."""
    audit = desired.get("audit")
    raw = audit.get("waivers") if isinstance(audit, Mapping) else None
    found = []
    for item in raw if isinstance(raw, list) else []:
        try:
            found.append(spec.Waiver.model_validate(item))
        except ValidationError:
            continue
    return tuple(found)


def spec_of(desired: Mapping[str, Any]) -> spec.PayScopeSpec | None:
    """The spec as a model, or None when it does not parse (the resource is then Stalled: nothing was audited)."""
    try:
        return spec.PayScopeSpec.model_validate(dict(desired))
    except ValidationError:
        return None


def not_configured(check: registry.Check[Any], desired: spec.PayScopeSpec) -> str | None:
    """Why ``check`` is NotConfigured under ``desired`` (what the audit would say), or None when it runs."""
    if not check.source.configured(desired):
        return check.source.absent
    if check.applies is not None and not check.applies(desired):
        return f"Not declared in the spec, so not audited: {check.title}"
    return None


def _unlisted(
    check: registry.Check[Any], held: status.PayScopeStatus | None, desired: spec.PayScopeSpec | None
) -> status.CheckResult | None:
    """The result of a check status.checks does not list: NotConfigured when the spec says so, else none."""
    if held is None or held.dimensions is None or desired is None:
        return None  # not audited yet, or the spec does not parse: no result
    why = not_configured(check, desired)
    if why is None:
        return None
    return status.CheckResult(
        id=check.id,
        dimension=conditions.Dimension.of_check(check.id),
        status=CS.NOT_CONFIGURED,
        severity=check.severity,
        message=why,
    )


def with_unlisted(held: status.PayScopeStatus, desired: spec.PayScopeSpec | None) -> status.PayScopeStatus:
    """``held`` with a NotConfigured result for each check status.checks leaves out (for tables and JUnit)."""
    listed = {c.id for c in held.checks}
    found = [r for c in catalog.CATALOG if c.id not in listed and (r := _unlisted(c, held, desired)) is not None]
    return held.model_copy(update={"checks": (*held.checks, *found)}) if found else held


def waiver_covers(waiver_check: str, check_id: str) -> bool:
    """A waiver names one check id, or a pattern such as ``D.*`` covering a dimension or prefix."""
    if "*" in waiver_check or "?" in waiver_check:
        return fnmatch.fnmatchcase(check_id, waiver_check)
    return waiver_check == check_id


def judge(evidence: Sequence[Evidence], unobservable: Sequence[str] = ()) -> ItemState:
    """The tick rule for one checkbox (see the module docstring): the worst covering check decides."""
    if not evidence:
        return ItemState.NOT_OBSERVABLE if unobservable else ItemState.NOT_AUDITED
    found = {e.status for e in evidence}
    for statuses, state in _WORST_FIRST:
        if found & statuses:
            return state
    return ItemState.PASSED


def reported_grade(result: status.CheckResult | None, check: registry.Check[Any]) -> status.EvidenceGrade:
    """The grade the status reports for a result, where it carries one, else the catalog's."""
    value = getattr(result, "grade", None)  # status.checks[].grade, once the status carries it
    try:
        return status.EvidenceGrade(value) if value else check.grade
    except ValueError:
        return check.grade


def _evidence(
    check: registry.Check[Any], result: status.CheckResult | None, waivers: Sequence[spec.Waiver]
) -> Evidence:
    return Evidence(
        check_id=check.id,
        title=check.title,
        passes_when=check.passes_when,
        severity=result.severity if result is not None else check.severity,
        grade=reported_grade(result, check),
        status=result.status if result is not None else None,
        message=result.message if result is not None else "No result in status.checks (not audited yet).",
        evidence=result.evidence if result is not None else None,
        since=result.since if result is not None else None,
        waivers=tuple(w for w in waivers if waiver_covers(w.check, check.id)),
    )


def _status_line(item: checklist.Item, summary: Summary) -> Verdict:
    found = summary.ready.status if summary.ready is not None else status.ConditionStatus.UNKNOWN
    state = {status.ConditionStatus.TRUE: ItemState.PASSED, status.ConditionStatus.FALSE: ItemState.FAILING}.get(
        found, ItemState.UNKNOWN
    )
    line = checklist.Item(f"**Status:** {summary.overall}", item.key)
    return Verdict(line, state, (), (), is_status_line=True)


def build(
    subject: Subject,
    *,
    now: datetime.datetime,
    checks: Iterable[registry.Check[Any]] = catalog.CATALOG,
    unobservable: Iterable[registry.NotObservable] = catalog.NOT_OBSERVABLE,
    document: checklist.Checklist | None = None,
) -> Report:
    """The whole report for ``subject`` as of ``now``."""
    shape = document or checklist.load()
    checks = tuple(checks)
    held = subject.status
    results = {r.id: r for r in (held.checks if held else ())}
    evidence = [_evidence(c, results.get(c.id) or _unlisted(c, held, subject.desired), subject.waivers) for c in checks]
    by_check = {e.check_id: e for e in evidence}
    covering: dict[str, list[Evidence]] = {}
    for check in checks:
        for key in check.covers:
            covering.setdefault(key, []).append(by_check[check.id])
    reasons: dict[str, list[str]] = {}
    for entry in unobservable:
        reasons.setdefault(entry.covers, []).append(entry.reason)
    conds = {c.type: c for c in (held.conditions if held else ())}
    summary = Summary(
        namespace=subject.namespace,
        name=subject.name,
        generated=now,
        status_time=held.last_audit_time if held else None,
        ready=conds.get(conditions.ConditionType.READY),
        generation=subject.generation,
        observed_generation=held.observed_generation if held else None,
        paused=subject.paused,
    )
    sections = []
    for section in shape.sections:
        dimension = conditions.Dimension.from_letter(section.letter)
        subsections = []
        for sub in section.subsections:
            verdicts = []
            for item in sub.items:
                if item.is_status_line:
                    verdicts.append(_status_line(item, summary))
                    continue
                behind = tuple(covering.get(item.key, ()))
                why = tuple(reasons.get(item.key, ()))
                verdicts.append(Verdict(item, judge(behind, why), behind, why))
            subsections.append(SubsectionVerdicts(sub.title, tuple(verdicts)))
        sections.append(
            SectionVerdicts(
                letter=section.letter,
                title=section.title,
                dimension=dimension,
                condition=conds.get(dimension.condition_type),
                summary=held.dimensions.get(dimension) if held and held.dimensions else None,
                subsections=tuple(subsections),
            )
        )
    known_keys = {i.key for i in shape.items()}
    other = tuple(by_check[c.id] for c in checks if not set(c.covers) & known_keys)
    today = now.date()
    waivers = tuple(
        WaiverView(
            check=w.check,
            reason=w.reason,
            expires=w.expires,
            expired=w.expires < today,
            covers=tuple(e.check_id for e in evidence if waiver_covers(w.check, e.check_id)),
        )
        for w in subject.waivers
    )
    return Report(
        title=shape.title,
        summary=summary,
        scope=shape.scope,
        sections=tuple(sections),
        other_checks=other,
        waivers=waivers,
    )
