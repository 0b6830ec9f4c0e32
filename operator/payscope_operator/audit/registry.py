"""What an audit check is: a source of evidence, and a pure evaluation of it.

A :class:`Source` gathers evidence from one place (the Postgres catalogs, the
PayScope API's ``/metrics``, a Deployment) with its own timeout; every check
that reads the same evidence shares one gathering per pass, so the number of
queries does not grow with the number of checks or tables. A :class:`Check`
evaluates that evidence into a :class:`Finding`, without I/O, so each check is
table-testable. A checkbox of the checklist that cannot be observed from
outside PayScope is a :class:`NotObservable` entry with the reason.

This module defines the shapes only; ``audit`` runs them, ``catalog`` lists them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from payscope_operator.api import conditions, spec, status

E = TypeVar("E")


@dataclass(frozen=True)
class Finding:
    """The outcome of evaluating one check: never carries a secret."""

    status: status.CheckStatus
    message: str
    evidence: str | None = None

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
    def unknown(cls, message: str, evidence: str | None = None) -> Finding:
        return cls(status.CheckStatus.UNKNOWN, message, evidence)

    @classmethod
    def not_configured(cls, message: str) -> Finding:
        return cls(status.CheckStatus.NOT_CONFIGURED, message)


class Session(Protocol):
    """What sources read from: the validated spec and the pass's clients (see ``pipeline``)."""

    @property
    def spec(self) -> spec.PayScopeSpec: ...


SessionT = TypeVar("SessionT", bound=Session, contravariant=True)


@dataclass(frozen=True)
class Source(Generic[E]):
    """Where evidence comes from, gathered at most once per pass.

    ``configured`` says whether the spec declares what this source reads; when
    it does not, every check on it reports NotConfigured with ``absent``.
    """

    name: str
    gather: Callable[[Any], Awaitable[E]]
    configured: Callable[[spec.PayScopeSpec], bool]
    absent: str
    timeout: Callable[[spec.PayScopeSpec], float] | None = None
    reuse_for: Callable[[spec.PayScopeSpec], float] | None = None
    """Seconds a successful gathering stays valid (for probes too costly to run every interval)."""


Evaluate = Callable[[E, spec.PayScopeSpec], Finding]


@dataclass(frozen=True)
class Check(Generic[E]):
    """One audit check with a stable id ``<letter>.<area>.<check>``."""

    id: str
    title: str  # what it probes
    passes_when: str  # what Pass means
    severity: status.Severity
    source: Source[E]
    evaluate: Evaluate[E]
    covers: tuple[str, ...] = field(default=())  # checklist items, "A/Docker Compose/Health checks configured"
    applies: Callable[[spec.PayScopeSpec], bool] | None = None  # finer than the source's section
    fails_when_unreachable: bool = False  # reachability checks: a source error is a Fail, not Unknown

    @property
    def dimension(self) -> conditions.Dimension:
        return conditions.Dimension.of_check(self.id)


@dataclass(frozen=True)
class NotObservable:
    """A checklist item no probe can observe from outside PayScope, and why."""

    covers: str
    reason: str
