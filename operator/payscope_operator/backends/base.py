"""The seam every provisioner plugs into: observe, plan (pure), apply, tear down.

A provisioner makes one external system match one section of the spec. It
reads the actual state (``observe``), hands it with the desired section to a
pure planning function that returns an ordered :class:`Plan`, and applies the
plan's actions one by one. It only ever changes, drops or deletes objects its
resource owns: created by it (its uid recorded on the object, ``ownership``),
migrated from an earlier operator version, or adopted (``adopt: true``); any other
object that exists is ``Foreign``, observed and audited only. This module holds
the shared result types and the Protocol; it talks to no server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from payscope_operator import errors
from payscope_operator.api import status

MANAGED_PREFIX = "payscope_"
"""Objects whose name starts with this (or that carry the managed-by tag) are ours."""

MANAGED_TAG_KEY = "managed-by"
MANAGED_TAG_VALUE = "payscope-operator"


class Verb(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DROP = "drop"


@dataclass(frozen=True)
class Action:
    """One change to an external system. Backends subclass it to carry their parameters.

    ``describe()`` is what platform teams read in ``status.plan`` and in Events,
    so it names the object and the change, and never a secret.
    """

    system: str
    verb: Verb
    kind: str
    target: str
    detail: str = ""
    drift: bool = False  # corrects an out-of-band change to an object we manage

    def describe(self) -> str:
        text = f"{self.system}: {self.verb} {self.kind} {self.target}"
        return f"{text} ({self.detail})" if self.detail else text


@dataclass(frozen=True)
class ObjectState:
    """A managed object and its state, as listed in ``status.provisioned.<system>``.

    ``Failed`` objects carry the reason they cannot be provisioned (TableNotFound...).
    ``Foreign`` objects (not this resource's) say in ``matches`` whether they already are
    as declared, which is what the audit judges.
    """

    kind: str
    name: str
    state: status.ProvisionState
    reason: str = ""
    message: str = ""
    matches: bool = False

    @property
    def as_declared(self) -> bool:
        """Present and as the spec declares it, whoever owns it."""
        state = status.ProvisionState
        return self.state is state.READY or (self.state is state.FOREIGN and self.matches)


@dataclass(frozen=True)
class Blocker:
    """Why part of a spec cannot be provisioned.

    ``permanent`` blockers (an immutable field differs, an edition lacks a
    feature) stall the resource; others (a table not created yet by PayScope's
    migrations) leave Provisioned=False and are retried every interval.
    """

    reason: str
    message: str
    permanent: bool


@dataclass(frozen=True)
class Plan:
    """What one system needs: ordered actions, object states, and blockers."""

    system: str
    actions: tuple[Action, ...] = ()
    objects: tuple[ObjectState, ...] = ()
    blockers: tuple[Blocker, ...] = ()

    @property
    def converged(self) -> bool:
        return (
            not self.actions
            and not self.blockers
            and all(obj.state is status.ProvisionState.READY for obj in self.objects)
        )


@dataclass(frozen=True)
class TeardownResult:
    """What deleting the resource did to one system: removed and kept objects."""

    system: str
    removed: tuple[str, ...] = ()
    kept: tuple[str, ...] = field(default_factory=tuple)  # each with the reason it was kept


ObservedT = TypeVar("ObservedT")


@dataclass(frozen=True)
class Observation(Generic[ObservedT]):
    """One system as one pass saw it: what ``observe`` read, and the plan against the spec.

    Provisioning and the audit share it, so a pass reads each system once. After
    applied changes it is the verifying re-observation. ``refusal`` is set when
    planning refused the spec (``plan`` raised, e.g. an app role RLS cannot bind):
    the observed state is still good evidence, the plan is not.
    """

    system: str
    observed: ObservedT
    plan: Plan | None = None
    refusal: errors.PayScopeError | None = None

    def planned(self) -> Plan:
        """The plan, or the error planning raised."""
        if self.plan is None:
            raise self.refusal or errors.PayScopeError(f"{self.system}: no plan was made")
        return self.plan


class Provisioner(Protocol[ObservedT]):
    """One external system, bound to one resource's desired section and credentials."""

    system: str

    async def observe(self) -> ObservedT:
        """Read the actual state. Raises ``errors.TransientError`` when the server is unreachable."""
        ...

    def plan(self, observed: ObservedT) -> Plan:
        """Compare desired with observed; pure (delegates to the module's plan function)."""
        ...

    async def apply(self, action: Action) -> None:
        """Carry out one planned action."""
        ...

    async def teardown(self) -> TeardownResult:
        """Remove the objects this operator created, never data; used by ``deletionPolicy: Delete``."""
        ...
