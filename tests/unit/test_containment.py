"""An unexpected exception in one system's provisioner or evidence source is contained to that system.

The real reconciler runs one pass against the standalone CLI's in-memory cluster,
with two stand-in provisioners (one healthy, one whose ``observe`` raises a
``KeyError``: a bug) and two stand-in evidence sources (one healthy, one raising a
``ValueError``). The pass must complete and write its status: the broken system is
Provisioned Unknown with reason UnexpectedError naming the exception's type, the
broken source's checks are Unknown with reason UnexpectedError, and everything
else is reported as if nothing had happened. No exception text reaches the status.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator, Sequence
from typing import Any

from payscope_operator import telemetry
from payscope_operator.api import status
from payscope_operator.audit import registry
from payscope_operator.backends import base
from payscope_operator.reconcile import provision, reconciler, session
from payscope_operator.standalone import LocalCluster

NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)
Grade, Severity = status.EvidenceGrade, status.Severity


class Stand:
    """A provisioner with one object that is always there; ``broken`` raises a KeyError (a bug) instead."""

    def __init__(self, system: str, *, broken: bool) -> None:
        self.system = system
        self.broken = broken

    async def observe(self) -> str:
        if self.broken:
            raise KeyError("secret-value-must-not-leak")
        return "there"

    def plan(self, observed: str) -> base.Plan:
        return base.Plan(self.system, objects=(base.ObjectState("Thing", "one", status.ProvisionState.READY),))

    async def apply(self, action: base.Action) -> None:
        raise AssertionError("nothing to apply")

    async def teardown(self) -> base.TeardownResult:
        raise AssertionError("no teardown here")


def _factory(system: str, *, broken: bool) -> provision.Factory:
    @contextlib.asynccontextmanager
    async def opened(_: session.PassSession) -> AsyncIterator[Sequence[base.Provisioner[Any]]]:
        yield (Stand(system, broken=broken),)

    return provision.Factory((system,), opened, provisions=lambda _: True)


async def _healthy(_: Any) -> int:
    return 1


async def _buggy(_: Any) -> int:
    raise ValueError("secret-value-must-not-leak")


def _catalog() -> list[registry.Check[Any]]:
    checks = registry.Registry()
    for source in (
        registry.Source("healthy", _healthy, lambda s: True, "absent"),
        registry.Source("buggy", _buggy, lambda s: True, "absent"),
    ):
        for dimension in ("B", "C"):

            @checks.check(
                f"{dimension}.{source.name}.one",
                source=source,
                severity=Severity.HIGH,
                grade=Grade.OBSERVED,
                title="t",
                passes_when="p",
            )
            def one(evidence: int, desired: Any) -> registry.Finding:
                return registry.Finding.passed("fine")

    return list(checks)


def test_an_unexpected_exception_is_contained_to_its_system_and_source() -> None:
    cluster = LocalCluster()
    deps = reconciler.Dependencies(
        cluster=cluster,
        observer=telemetry.Metrics(),
        provisioners=(_factory("postgres", broken=True), _factory("neo4j", broken=False)),
        catalog=_catalog(),
    )
    resource = reconciler.Resource("ns", "psd", "uid-1", 1, None, {}, {}, None)
    result = asyncio.run(reconciler.reconcile(deps, resource, now=NOW))

    assert result.written
    assert result.write_failure is None
    conditions = {c.type: c for c in result.status.conditions}
    provisioned = conditions["Provisioned"]
    assert (provisioned.status.value, provisioned.reason) == ("Unknown", "UnexpectedError")
    assert provisioned.message.startswith("postgres: unexpected KeyError")
    assert result.status.provisioned is not None
    assert [o.name for o in result.status.provisioned.neo4j] == ["one"]  # the other system as ever
    checks = {c.id: c for c in result.status.checks}
    for dimension in ("B", "C"):
        assert (checks[f"{dimension}.buggy.one"].status, checks[f"{dimension}.buggy.one"].reason) == (
            status.CheckStatus.UNKNOWN,
            "UnexpectedError",
        )
        assert "unexpected ValueError" in checks[f"{dimension}.buggy.one"].message
        assert checks[f"{dimension}.healthy.one"].status == status.CheckStatus.PASS
    assert "secret-value-must-not-leak" not in str(cluster.status)
