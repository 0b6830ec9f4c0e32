"""How an audit check is declared: evidence sources, the ``@registry.check`` decorator, findings.

A :class:`Source` gathers evidence from one place (the Postgres catalogs, the
PayScope API's ``/metrics``, a Deployment) with its own timeout; every check that
reads the same evidence shares one gathering per pass, so the number of queries
does not grow with the number of checks or tables. A :class:`Part` is the piece of
a source's evidence some checks read (one ``/admin`` document), or the Unknown
finding saying why it cannot be read. A :class:`Check` evaluates its evidence into
a :class:`Finding` without I/O, so each check is table-testable. A checklist
checkbox no probe can observe is a :class:`NotObservable` entry with the reason.

There is one way to declare a check, modelled on kopf's handler registration: a
decorator on its pure evaluate function, carrying everything else about it (id,
severity, evidence grade, what it probes, what Pass means, how to fix a failure, the
checklist items it covers, when it applies, the checks it depends on)::

    CHECKS = registry.Registry()

    @CHECKS.check(
        "G.example.refused",
        source=payscope_api.ACCESS,
        severity=Severity.HIGH,
        grade=Grade.OBSERVED,
        title="What it probes.",
        passes_when="What Pass means.",
        fix="What to change when it fails (``kubectl payscope explain`` shows it).",
        covers=("G/JWT/Expiry checking",),  # checklist items, <letter>/<subsection>/<checkbox>
        depends_on=("E.endpoints.chat_query",),  # judged only once these passed or warned
    )
    def refused(evidence: payscope_api.AccessEvidence, desired: spec.PayScopeSpec) -> Finding: ...

A registry refuses a second check with the same id; :func:`assemble` joins the
registries of every dimension into one catalog and refuses a dependency on an
unknown check or a circle of dependencies.

What it must not do: gather or run anything (``runner`` does), list the catalog
(``catalog`` does), or hold a secret in a finding.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from payscope_operator.api import conditions, fields, spec, status

E = TypeVar("E")
V = TypeVar("V")
Grade = status.EvidenceGrade
CheckReason = status.CheckReason


class RegistrationError(ValueError):
    """A check declared wrongly: an invalid or repeated id, an unknown or circular dependency."""


@dataclass(frozen=True)
class Finding:
    """The outcome of evaluating one check: never carries a secret."""

    status: status.CheckStatus
    message: str
    evidence: str | None = None
    reason: CheckReason | None = None  # overrides the reason the status implies (ResponseTooLarge...)

    @classmethod
    def passed(cls, message: str, evidence: str | None = None) -> Finding:
        return cls(status.CheckStatus.PASS, message, evidence)

    @classmethod
    def failed(cls, message: str, evidence: str | None = None) -> Finding:
        return cls(status.CheckStatus.FAIL, message, evidence)

    @classmethod
    def warned(cls, message: str, evidence: str | None = None) -> Finding:
        return cls(status.CheckStatus.WARN, message, evidence)

    @classmethod
    def unknown(cls, message: str, evidence: str | None = None, *, reason: CheckReason | None = None) -> Finding:
        return cls(status.CheckStatus.UNKNOWN, message, evidence, reason)

    @classmethod
    def not_configured(cls, message: str) -> Finding:
        return cls(status.CheckStatus.NOT_CONFIGURED, message)


@dataclass(frozen=True)
class Source(Generic[E]):
    """Where evidence comes from, gathered at most once per pass.

    ``gather`` receives the pass's ``context.Session``. ``configured`` says whether
    the spec declares what this source reads; when it does not, every check on it
    reports NotConfigured with ``absent``.
    """

    name: str
    gather: Callable[[Any], Awaitable[E]]
    configured: Callable[[spec.PayScopeSpec], bool]
    absent: str
    timeout: Callable[[spec.PayScopeSpec], float] | None = None
    reuse_for: Callable[[spec.PayScopeSpec], float] | None = None
    """Seconds a successful gathering stays valid (for probes too costly to run every interval)."""

    def part(self, select: Callable[[E], V | Finding]) -> Part[V]:
        """The piece of this source's evidence that ``select`` picks, or the finding it returns instead."""
        return Part(self, select)


@dataclass(frozen=True)
class Part(Generic[E]):
    """A piece of a source's evidence some checks read, gathered with the whole source."""

    source: Source[Any]
    select: Callable[[Any], E | Finding]


Evaluate = Callable[[E, spec.PayScopeSpec], Finding]


@dataclass(frozen=True)
class Check(Generic[E]):
    """One audit check with a stable id ``<letter>.<area>.<check>``; its letter gives its dimension."""

    id: str
    title: str  # what it probes
    passes_when: str  # what Pass means
    severity: status.Severity
    grade: status.EvidenceGrade
    source: Source[Any]
    evaluate: Evaluate[E]
    covers: tuple[str, ...] = ()  # checklist items, "A/Docker Compose/Health checks configured"
    fix: str = ""  # how to make it pass, one or two sentences (kubectl payscope explain)
    applies: Callable[[spec.PayScopeSpec], bool] | None = None  # finer than the source's section
    depends_on: tuple[str, ...] = ()  # checks that must pass (or warn) before this one can be judged
    fails_when_unreachable: bool = False  # reachability checks: a source error is a Fail, not Unknown
    select: Callable[[Any], E | Finding] | None = None  # the Part of the source's evidence it reads

    @property
    def dimension(self) -> conditions.Dimension:
        return conditions.Dimension.of_check(self.id)

    def judge(self, evidence: Any, desired: spec.PayScopeSpec) -> Finding:
        """Pick this check's part of its source's evidence and evaluate it; pure."""
        if self.select is not None:
            picked = self.select(evidence)
            if isinstance(picked, Finding):
                return picked
            evidence = picked
        return self.evaluate(evidence, desired)


@dataclass(frozen=True)
class NotObservable:
    """A checklist item no probe can observe from outside PayScope, and why."""

    covers: str
    reason: str


class Registry:
    """The checks of one module, in declaration order, as ``@registry.check`` registered them."""

    def __init__(self) -> None:
        self._checks: dict[str, Check[Any]] = {}

    def check(
        self,
        check_id: str,
        *,
        source: Source[E] | Part[E],
        severity: status.Severity,
        grade: status.EvidenceGrade,
        title: str,
        passes_when: str,
        fix: str = "",
        covers: Sequence[str] = (),
        applies: Callable[[spec.PayScopeSpec], bool] | None = None,
        depends_on: Sequence[str] = (),
        fails_when_unreachable: bool = False,
    ) -> Callable[[Evaluate[E]], Evaluate[E]]:
        """Register the decorated evaluate function as check ``check_id``; the function is returned as is."""

        def register(evaluate: Evaluate[E]) -> Evaluate[E]:
            root, select = (source.source, source.select) if isinstance(source, Part) else (source, None)
            self.add(
                Check(
                    id=check_id,
                    title=title,
                    passes_when=passes_when,
                    severity=severity,
                    grade=grade,
                    source=root,
                    evaluate=evaluate,
                    covers=tuple(covers),
                    fix=fix,
                    applies=applies,
                    depends_on=tuple(depends_on),
                    fails_when_unreachable=fails_when_unreachable,
                    select=select,
                )
            )
            return evaluate

        return register

    def add(self, check: Check[Any]) -> None:
        if not re.fullmatch(fields.CHECK_ID_PATTERN, check.id):
            raise RegistrationError(f"{check.id!r} is not a check id <letter A-G>.<area>.<check>")
        if check.id in self._checks:
            raise RegistrationError(f"check {check.id} is declared twice")
        if check.id in check.depends_on:
            raise RegistrationError(f"check {check.id} depends on itself")
        self._checks[check.id] = check

    def __iter__(self) -> Iterator[Check[Any]]:
        return iter(self._checks.values())

    def __len__(self) -> int:
        return len(self._checks)


def assemble(*parts: Iterable[Check[Any]]) -> tuple[Check[Any], ...]:
    """One catalog from the registries of every dimension, in declaration order, validated.

    Raises :class:`RegistrationError` for an id declared twice, a dependency on a
    check not in the catalog, or a circle of dependencies.
    """
    joined = Registry()
    for part in parts:
        for check in part:
            joined.add(check)
    catalog = tuple(joined)
    ordered(catalog)
    return catalog


def ordered(catalog: Iterable[Check[Any]]) -> tuple[Check[Any], ...]:
    """The checks so that each comes after every check it depends on (declaration order otherwise)."""
    checks = tuple(catalog)
    by_id = {c.id: c for c in checks}
    for check in checks:
        unknown = [d for d in check.depends_on if d not in by_id]
        if unknown:
            raise RegistrationError(f"check {check.id} depends on unknown check(s) {', '.join(unknown)}")
    done: dict[str, Check[Any]] = {}
    visiting: list[str] = []

    def visit(check: Check[Any]) -> None:
        if check.id in done:
            return
        if check.id in visiting:
            circle = " -> ".join([*visiting[visiting.index(check.id) :], check.id])
            raise RegistrationError(f"checks depend on each other in a circle: {circle}")
        visiting.append(check.id)
        for dependency in check.depends_on:
            visit(by_id[dependency])
        visiting.pop()
        done[check.id] = check

    for check in checks:
        visit(check)
    return tuple(done.values())
