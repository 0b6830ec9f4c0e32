"""The one way every planner collects its result: actions in apply order, object states, blockers.

Why this module exists: each system's pure planner (``backends/<system>/plan.py``)
walks the declared objects and, for each, records an action to take, the object's
state for ``status.provisioned``, or a failure that blocks it. Before this module every
planner kept its own three lists and its own ``fail``/``state`` helpers; now they all
write into a :class:`PlanBuilder` and call :meth:`PlanBuilder.build` once, so a failed
object always comes with its blocker and every plan is assembled the same way.

Ordering: actions are applied in ``stage`` order, and in the order they were planned
within a stage. A planner that needs all fast changes before all slow ones (Postgres
plans policies before index builds) gives the slow ones a later stage.

What it must not do: decide anything about a system (that is the planner's job), talk
to a server, or reorder what a planner recorded other than by ``stage``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from payscope_operator.api import conditions, status
from payscope_operator.backends import base, ownership

Target = tuple[str, str]
"""An object as ``(kind, name)``, as listed in ``status.provisioned.<system>``."""


@dataclass
class PlanBuilder:
    """Collects one system's plan; :meth:`build` returns it as a frozen :class:`base.Plan`."""

    system: str
    objects: list[base.ObjectState] = field(default_factory=list)
    blockers: list[base.Blocker] = field(default_factory=list)
    _staged: list[tuple[int, base.Action]] = field(default_factory=list)

    @property
    def actions(self) -> tuple[base.Action, ...]:
        """The actions recorded so far, in the order they will be applied."""
        return tuple(action for _, action in sorted(self._staged, key=lambda staged: staged[0]))

    def act(self, action: base.Action, *, stage: int = 0) -> None:
        """Plan ``action``; a higher ``stage`` runs after every action of a lower one."""
        self._staged.append((stage, action))

    def state(self, kind: str, name: str, state: status.ProvisionState, message: str = "", *, reason: str = "") -> None:
        """Record an object's state (Ready, Missing, Drifted, Pending; Failed goes through :meth:`fail`)."""
        self.objects.append(base.ObjectState(kind, name, state, reason, message))

    def block(self, reason: str, message: str, *, permanent: bool) -> None:
        """Record a blocker that belongs to no single object (a spec setting the system cannot honour)."""
        self.blockers.append(base.Blocker(reason, message, permanent))

    def fail(
        self,
        targets: Iterable[Target],
        reason: str,
        message: str,
        *,
        permanent: bool,
        blocker: str | None = None,
    ) -> None:
        """Every target Failed with ``reason`` and ``message``, and one blocker saying why.

        ``blocker`` replaces the blocker's message when it should name the object
        (the object states already do).
        """
        for kind, name in targets:
            self.objects.append(base.ObjectState(kind, name, status.ProvisionState.FAILED, reason, message))
        self.block(reason, message if blocker is None else blocker, permanent=permanent)

    def foreign(self, kind: str, name: str, verdict: ownership.Verdict, differences: Iterable[str] = ()) -> None:
        """The object exists and is not this resource's: state Foreign, saying what Full would have changed.

        ``differences`` name what differs from the spec (an action's detail). Nothing is
        planned for the object. When another resource owns it, a permanent blocker
        (``OwnedByAnotherResource``) names that resource (once per verdict naming an ``owner``).
        """
        differences = list(differences)
        message = verdict.message + (f"; differs from the spec: {'; '.join(differences)}" if differences else "")
        reason = verdict.standing.value if verdict.standing is ownership.Standing.OWNED_ELSEWHERE else ""
        self.objects.append(
            base.ObjectState(kind, name, status.ProvisionState.FOREIGN, reason, message, matches=not differences)
        )
        if verdict.standing is ownership.Standing.OWNED_ELSEWHERE and verdict.owner:
            self.block(
                conditions.Reason.OWNED_BY_ANOTHER_RESOURCE,
                f"{kind} {name} is owned by PayScopeDeployment {verdict.owner}",
                permanent=True,
            )

    def build(self) -> base.Plan:
        return base.Plan(self.system, self.actions, tuple(self.objects), tuple(self.blockers))
