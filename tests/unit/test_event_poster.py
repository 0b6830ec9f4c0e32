"""The background Event poster: order per resource, a bound over all, nothing for a resource that is gone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from payscope_operator import errors
from payscope_operator.kube import gateway
from payscope_operator.reconcile import events, report


class Target:
    """Records what it was sent; ``hold``: every Event but the first of each resource waits for ``release``."""

    def __init__(self, delay: float = 0.01, failing: str | None = None, hold: bool = False) -> None:
        self.delay, self.failing = delay, failing
        self.posted: list[tuple[str, str]] = []
        self.in_flight = self.most = 0
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    async def post_event(
        self, ref: gateway.ObjectRef, *, kind: Any, reason: str, message: str, action: str = ""
    ) -> None:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if reason != "r0":
                await self.release.wait()
            if reason == self.failing:
                raise errors.DependencyUnavailable("the API server said no")
            self.posted.append((ref.uid, reason))
        finally:
            self.in_flight -= 1


def _ref(uid: str) -> gateway.ObjectRef:
    return gateway.ObjectRef("ns", f"psd-{uid}", uid, "1")


def _notice(reason: str) -> report.Notice:
    return report.Notice("Normal", reason, "m")


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")


async def _settled(poster: events.Poster) -> None:
    for _ in range(500):
        if not poster.pending and poster.idle:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the poster never settled")


def test_each_resources_events_keep_their_order_and_at_most_concurrency_go_at_once() -> None:
    async def scenario() -> None:
        target = Target()
        poster = events.Poster(target, concurrency=3)
        for n in range(5):
            for uid in "abcdefgh":
                poster.post(_ref(uid), _notice(f"r{n}"))
        assert poster.pending == 40
        await _settled(poster)
        for uid in "abcdefgh":
            assert [r for u, r in target.posted if u == uid] == [f"r{n}" for n in range(5)]
        assert target.most == 3

    asyncio.run(scenario())


def test_a_forgotten_resource_loses_what_still_waits() -> None:
    async def scenario() -> None:
        target = Target(hold=True)
        poster = events.Poster(target)
        for n in range(5):
            poster.post(_ref("gone"), _notice(f"r{n}"))
            poster.post(_ref("kept"), _notice(f"r{n}"))
        await _until(lambda: ("gone", "r0") in target.posted)  # the second is in flight, held
        poster.forget("gone")
        target.release.set()
        await _settled(poster)
        assert [r for u, r in target.posted if u == "gone"] == ["r0"]
        assert [r for u, r in target.posted if u == "kept"] == [f"r{n}" for n in range(5)]
        assert poster.pending == 0

    asyncio.run(scenario())


def test_an_event_that_cannot_be_posted_is_dropped_and_the_next_goes_out() -> None:
    async def scenario() -> None:
        target = Target(failing="r1")
        poster = events.Poster(target)
        for n in range(3):
            poster.post(_ref("a"), _notice(f"r{n}"))
        await _settled(poster)
        assert target.posted == [("a", "r0"), ("a", "r2")]

    asyncio.run(scenario())


def test_beyond_max_pending_new_events_are_dropped_and_counted() -> None:
    async def scenario() -> None:
        target = Target()
        poster = events.Poster(target, max_pending=4)
        for n in range(10):
            poster.post(_ref(str(n)), _notice("r"))
        assert poster.pending == 4
        assert poster.dropped == 6
        await _settled(poster)
        assert len(target.posted) == 4
        poster.post(_ref("later"), _notice("r"))  # room again once they went out
        await _settled(poster)
        assert ("later", "r") in target.posted

    asyncio.run(scenario())


def test_close_sends_what_waits_within_its_time_then_drops_the_rest() -> None:
    async def scenario() -> None:
        target = Target(hold=True)
        poster = events.Poster(target, concurrency=1)
        for n in range(5):
            poster.post(_ref("a"), _notice(f"r{n}"))
        await poster.close(timeout=0.5)
        assert target.posted == [("a", "r0")]  # the others were held past the close
        assert poster.pending == 0
        assert poster.idle

    asyncio.run(scenario())
