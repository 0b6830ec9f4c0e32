"""A provisioner without a server, counting its reads and applies, for the pass and ledger tests.

Why it exists: provisioning, the observations ledger and the audit meet in one pass;
tests of how they share one observation need a system whose reads can be counted and
whose answers (present objects, a failure, a delay) a test sets. Its observation is a
real Neo4j ``GraphState``, so the audit's Neo4j source can judge it.

What it must not do: talk to a server, or decide anything a real planner decides beyond
"a declared object that is not present gets a create".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from payscope_operator import errors
from payscope_operator.api import spec, status
from payscope_operator.backends import base, neo4j
from payscope_operator.reconcile import observations, provision, secrets, session
from payscope_operator.standalone import LocalCluster

READY = status.ProvisionState.READY
MISSING = status.ProvisionState.MISSING
SERVER = neo4j.model.ServerInfo("5.26.0", "community")


@dataclass
class Fake:
    """Declares ``objects``; ``present`` are there; ``failure`` is what observing raises."""

    system: str = "neo4j"
    objects: tuple[str, ...] = ("payscope_a",)
    present: set[str] = field(default_factory=set)
    failure: errors.PayScopeError | None = None
    delay: float = 0.0
    reads: int = 0
    applied: list[str] = field(default_factory=list)

    async def observe(self) -> neo4j.model.GraphState:
        self.reads += 1
        await asyncio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure
        constraints = tuple(
            neo4j.model.ObservedConstraint(i, name, "UNIQUENESS", "NODE", ("T",), ("id",))
            for i, name in enumerate(sorted(self.present))
        )
        return neo4j.model.GraphState(SERVER, constraints)

    def plan(self, observed: neo4j.model.GraphState) -> base.Plan:
        there = {c.name for c in observed.constraints}
        missing = [name for name in self.objects if name not in there]
        return base.Plan(
            self.system,
            tuple(base.Action(self.system, base.Verb.CREATE, "Constraint", name, "a constraint") for name in missing),
            tuple(base.ObjectState("Constraint", n, MISSING if n in missing else READY) for n in self.objects),
        )

    async def apply(self, action: base.Action) -> None:
        self.applied.append(action.target)
        self.present.add(action.target)

    async def teardown(self) -> base.TeardownResult:
        return base.TeardownResult(self.system)


def group(*fakes: Fake, opened: list[int] | None = None) -> observations.Group:
    """The fakes as one group of the ledger; each opening appends to ``opened``."""

    @contextlib.asynccontextmanager
    async def open_() -> AsyncIterator[observations.Provisioners]:
        if opened is not None:
            opened.append(1)
        yield fakes

    return observations.Group(tuple(f.system for f in fakes), open_)


def factory(fake: Fake) -> provision.Factory:
    """``fake`` as a factory of ``systems.PROVISIONERS``'s kind, provisioning whenever its section is set."""

    @contextlib.asynccontextmanager
    async def open_(run: session.PassSession) -> AsyncIterator[observations.Provisioners]:
        yield (fake,)

    return provision.Factory((fake.system,), open_, lambda desired: True)


def pass_session(fake: Fake, desired: spec.PayScopeSpec | None = None) -> session.PassSession:
    """A pass over ``desired`` whose ledger knows ``fake``'s factory."""
    run = session.PassSession(
        desired or spec.PayScopeSpec(), "ns", "psd", secrets.Secrets({}), (), LocalCluster(), session.ClientCache()
    )
    run.observations = provision.ledger([factory(fake)], run)
    return run
