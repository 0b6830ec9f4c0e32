"""Every server of the test environment listens on 127.0.0.1 and nowhere else."""

from __future__ import annotations

from tests.integration import sockets
from tests.testenv import environment


def test_every_server_listens_on_loopback_only(testenv: dict[str, str]) -> None:
    state = environment.load()
    assert state is not None
    listening: dict[str, list[str]] = {}
    for running in state:
        for pid in running.pids:
            listening.setdefault(running.name, []).extend(sockets.listening(pid))
    assert all(listening.values()), listening  # each component listens somewhere
    outside = {
        name: [a for a in addresses if not a.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:"))]
        for name, addresses in listening.items()
    }
    assert {name: a for name, a in outside.items() if a} == {}
