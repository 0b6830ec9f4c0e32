"""Start, watch and stop the test environment's server processes.

Every server is a detached process (its own session, so it outlives the
``up`` command) whose pid is recorded in ``.testenv/state.json``; ``down``
stops exactly those pids. Ports are picked free on 127.0.0.1 and every server
is told to bind there alone.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.testenv import errors

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Running:
    """One started server: what ``status`` prints and what ``env`` exports."""

    name: str
    pids: tuple[int, ...]
    address: str
    env: Mapping[str, str] = field(default_factory=dict)
    path: tuple[str, ...] = ()  # folders to prepend to PATH


_HANDED_OUT: set[int] = set()
"""Ports this process has handed out: never twice, since one may be free only because its server is starting."""


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, outside the kernel's ephemeral range.

    A port the kernel handed out for ``bind(0)`` comes from the range it also gives every
    outgoing connection: between this call and the server's own bind, any client on the
    machine (a test, the operator, another server) may take it, and the server then fails
    with "address already in use". Below that range only servers bind, so a random free
    port there stays free until the server that is started on it takes it.
    """
    low, high = _ephemeral_range()
    ranges = [r for r in ((10000, low - 1), (high + 1, 65535)) if r[1] - r[0] > 1000]
    for _ in range(200):
        port = random.randint(*random.choice(ranges)) if ranges else 0  # 0: the kernel's choice, as before
        if port in _HANDED_OUT:
            continue  # free now, but promised to a server that has not bound it yet
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            found = int(sock.getsockname()[1])
        _HANDED_OUT.add(found)
        return found
    raise OSError("no free TCP port outside the ephemeral range on " + HOST)


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    owner: tuple[int, int] | None = None,
) -> int:
    """Start a detached process writing to ``log``; return its pid.

    ``owner`` (uid, gid) runs it as another user, for servers that refuse root.
    """
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
            user=owner[0] if owner else None,
            group=owner[1] if owner else None,
            extra_groups=[] if owner else None,
        )
    if owner:
        os.chown(log, *owner)
    return proc.pid


def run_as(
    argv: Sequence[str],
    *,
    log: Path,
    owner: tuple[int, int] | None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run a set-up command to completion (optionally as another user)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with log.open("ab") as out:
        proc = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            user=owner[0] if owner else None,
            group=owner[1] if owner else None,
            extra_groups=[] if owner else None,
            check=False,
        )
    if proc.returncode != 0:
        raise errors.StartError(f"{argv[0]} failed ({proc.returncode}){_tail(log)}")


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this very process counts as dead.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


def stop(pid: int, *, timeout: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not is_alive(pid):
                return
            time.sleep(0.1)


def tcp_open(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    pid: int | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``ready`` until it holds; fail fast if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001, S110 - a probe may fail while the server starts
            pass
        if pid is not None and not is_alive(pid):
            raise errors.StartError(f"{what} exited during start-up{_tail(log)}")
        time.sleep(0.2)
    raise errors.StartError(f"{what} not ready after {timeout:.0f}s{_tail(log)}")


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    lines = log.read_text(errors="replace").splitlines()[-30:]
    return "; last log lines:\n" + "\n".join(lines)
