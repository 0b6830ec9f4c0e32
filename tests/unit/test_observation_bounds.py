"""Every observation of a store honours the pass's probe timeout, connecting included.

A frozen store accepts connections and answers nothing, so only a bound of the
operator's own ends the wait. The ledger's ``timeout`` is that bound: an
observation (or the opening of its client) that takes longer is recorded as
DependencyTimeout at once, for provisioning and for every audit reader alike, and
the work past the bound is left to end on its own rather than waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from payscope_operator import errors
from payscope_operator.reconcile import observations
from tests.unit import fake_provisioner

BOUND = 0.2


class Stubborn(fake_provisioner.Fake):
    """An observation that, like a Postgres driver asking a frozen server to cancel, ignores cancellation a while."""

    async def observe(self) -> object:  # type: ignore[override]
        self.reads += 1
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.sleep(1.0))  # the cancellation itself takes a second
            raise
        raise AssertionError("unreachable")


async def test_an_observation_past_the_bound_fails_at_once_for_every_reader() -> None:
    fake = Stubborn()
    ledger = observations.Ledger([fake_provisioner.group(fake)], timeout=BOUND)
    started = time.monotonic()
    with pytest.raises(errors.DependencyUnavailable, match=r"did not answer within 0\.2s") as raised:
        await ledger.observe_with(fake)
    assert time.monotonic() - started < BOUND + 0.3  # not the second its cancellation takes
    assert raised.value.reason == "DependencyTimeout"
    with pytest.raises(errors.DependencyUnavailable, match=r"within 0\.2s"):
        await ledger.observe("neo4j")  # the audit: the same error, no second wait
    assert fake.reads == 1


async def test_opening_a_client_past_the_bound_fails_the_systems_it_serves() -> None:
    @contextlib.asynccontextmanager
    async def connecting() -> AsyncIterator[observations.Provisioners]:
        await asyncio.sleep(60)  # a TCP handshake the kernel completed, then nothing
        yield ()

    ledger = observations.Ledger([observations.Group(("postgres", "timescale"), connecting)], timeout=BOUND)
    started = time.monotonic()
    for system in ("postgres", "timescale"):
        with pytest.raises(errors.DependencyUnavailable, match="postgres/timescale did not answer"):
            await ledger.observe(system)
    assert time.monotonic() - started < BOUND + 0.3  # one wait for both systems


async def test_without_a_bound_a_slow_observation_is_waited_for() -> None:
    fake = fake_provisioner.Fake(present={"payscope_a"}, delay=0.3)
    ledger = observations.Ledger([fake_provisioner.group(fake)])
    assert (await ledger.observe_with(fake)).planned().converged
