"""Managed objects known from the last status: a declared object now missing that was Ready is drift.

Why this module exists: a planner sees only the present. An object the operator
provisioned and someone dropped out of band looks, to the planner, exactly like one
never created: both are missing and get a create action. What tells them apart is
memory, and the operator keeps its memory where users see it: ``status.provisioned``
lists every object the last pass found Ready. :class:`Known` reads that list once per
pass (before the pass's first write replaces it), and :meth:`Known.mark` turns every
plan's create of an object the last status listed as Ready into a drift correction
(``Action.drift``: the DriftCorrected Event and the drift counter follow), and its
state's message into "dropped out of band". It works the same for every system
through the one shape all planners return (``base.Plan``), so no backend carries
memory of its own, and a restarted operator knows what a running one knew.

Why the status and not markers on the objects: not every object can carry one (a
Postgres policy or index, a TimescaleDB job, a Neo4j constraint have no tags or
comments the operator may rely on), while the status is written for every object
of every system already. Ownership markers say whose an object is (what teardown and
adoption need); this says whether it existed before, which is a different question.

What it must not do: decide whether an object is missing (planners do), read a
server, or mark anything but the creation of an object the last status listed Ready.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from payscope_operator.api import status
from payscope_operator.backends import base

DROPPED = "dropped out of band"
"""What a drift-marked create and its object's state say."""

STATUS_FIELD: Mapping[str, str] = {
    "postgres": "postgres",
    "timescaledb": "postgres",
    "neo4j": "neo4j",
    "pinecone": "pinecone",
    "objectStorage": "object_storage",
}
"""The ``status.provisioned`` field that lists each system's objects (TimescaleDB shares Postgres's)."""


Key = tuple[str, str]
"""An object as ``(kind, name)``, the kind lower-cased (actions say ``constraint``, states ``Constraint``)."""


@dataclasses.dataclass(frozen=True)
class Known:
    """The objects the last status listed as Ready, per ``status.provisioned`` field."""

    ready: Mapping[str, frozenset[Key]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_status(cls, previous: status.PayScopeStatus | None) -> Known:
        """What ``previous`` (the stored status, parsed once) lists as Ready; nothing when absent."""
        if previous is None or previous.provisioned is None:
            return cls()
        listed = previous.provisioned
        return cls(
            {
                field: frozenset(
                    (o.kind.lower(), o.name) for o in getattr(listed, field) if o.state == status.ProvisionState.READY
                )
                for field in set(STATUS_FIELD.values())
            }
        )

    def of(self, system: str) -> frozenset[Key]:
        return self.ready.get(STATUS_FIELD.get(system, system), frozenset())

    def mark(self, plan: base.Plan) -> base.Plan:
        """``plan`` with every create of an object the last status listed Ready marked as drift."""
        known = self.of(plan.system)
        recreated = {
            (a.kind.lower(), a.target)
            for a in plan.actions
            if a.verb is base.Verb.CREATE and (a.kind.lower(), a.target) in known
        }
        if not recreated:
            return plan
        actions = tuple(
            dataclasses.replace(a, drift=True, detail=_dropped(a.detail))
            if (a.kind.lower(), a.target) in recreated
            else a
            for a in plan.actions
        )
        objects = tuple(
            dataclasses.replace(o, message=_dropped(o.message))
            if (o.kind.lower(), o.name) in recreated and o.state is status.ProvisionState.MISSING
            else o
            for o in plan.objects
        )
        return dataclasses.replace(plan, actions=actions, objects=objects)


def _dropped(text: str) -> str:
    if DROPPED in text:
        return text
    return f"{text}; {DROPPED}" if text else DROPPED
