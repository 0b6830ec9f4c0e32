"""Freeze, thaw, kill and restart the environment's servers, for the fault-injection tests.

A frozen server (SIGSTOP) is the worst kind of dead: its port still accepts
connections (the kernel completes the handshake) and then nothing answers, so
only a client's own timeouts save it. Every server of the environment runs in a
process group of its own (``process.spawn`` starts a session), so freezing the
group also freezes Postgres' backends and any worker a server forked.
``restart_apiserver`` kills kube-apiserver and starts it again on the same
port, etcd and keys, and records the new pid so ``down`` still stops it.

What it must not do: touch a process that is not the environment's own (every
pid comes from ``state.json`` or from the caller), or leave a server frozen:
``frozen`` thaws in every case.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

from tests.testenv import environment, kube, process

APISERVER, ETCD = 0, 1  # positions of the two pids of the "kubernetes" component


def pids(name: str) -> tuple[int, ...]:
    """The process(es) of one component of the running environment."""
    return environment.running(name).pids


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group ``pid`` leads (or to the process alone if it leads none)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        os.kill(pid, sig)


@contextlib.contextmanager
def frozen(*frozen_pids: int) -> Iterator[None]:
    """SIGSTOP the process groups for the duration of the block; SIGCONT them whatever happens."""
    try:
        for pid in frozen_pids:
            signal_group(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in frozen_pids:
            signal_group(pid, signal.SIGCONT)


def apiserver_pid() -> int:
    return pids("kubernetes")[APISERVER]


def kill_apiserver() -> int:
    """SIGKILL kube-apiserver (not etcd); return the pid it had."""
    pid = apiserver_pid()
    signal_group(pid, signal.SIGKILL)
    process.wait_until(lambda: not process.is_alive(pid), what="kube-apiserver gone", timeout=10)
    return pid


def restart_apiserver(old_pid: int) -> int:
    """Start kube-apiserver again as it was (same port and etcd); return its pid once it is ready."""
    new_pid = kube.restart_apiserver(environment.state_dir() / "kubernetes")
    environment.replace_pid("kubernetes", old_pid, new_pid)
    return new_pid
