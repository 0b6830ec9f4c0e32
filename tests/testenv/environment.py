"""The environment as a whole: which components, their state file, up and down.

State lives in ``.testenv/`` at the repository root (or ``PAYSCOPE_TESTENV_DIR``):
``state.json`` records every started pid, ``env.json`` and ``env.sh`` carry the
variables tests and people use, ``PAYSCOPE_ALLOWED_EGRESS=127.0.0.1/32`` among them (the
operator's egress allowlist: every server listens on 127.0.0.1). Components build one at a time (each build
wants both cores) and start concurrently (start-up is mostly waiting).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from tests.testenv import errors, graph, kube, pinecone_emulator, postgres, process, redis, s3, timescale


class Component(Protocol):
    def obtain(self) -> object: ...

    def start(self, workdir: Path) -> process.Running: ...


ALLOWED_EGRESS = "127.0.0.1/32"
"""The operator's egress allowlist in tests (``PAYSCOPE_ALLOWED_EGRESS`` in env.sh and env.json)."""


def _components() -> dict[str, Any]:
    return {
        "kubernetes": kube,
        "postgres": postgres,
        "timescale": timescale,
        "redis": redis,
        "neo4j": graph,
        "s3": s3,
        "pinecone": pinecone_emulator,
    }


def state_dir() -> Path:
    configured = os.environ.get("PAYSCOPE_TESTENV_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / ".testenv"


def env_sh_path() -> Path:
    return state_dir() / "env.sh"


def env_json_path() -> Path:
    return state_dir() / "env.json"


def load() -> list[process.Running] | None:
    path = state_dir() / "state.json"
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    return [
        process.Running(
            name=r["name"], pids=tuple(r["pids"]), address=r["address"], env=r["env"], path=tuple(r["path"])
        )
        for r in raw
    ]


def running(name: str) -> process.Running:
    """One component of the running environment."""
    for entry in load() or []:
        if entry.name == name:
            return entry
    raise errors.TestEnvError(f"{name} is not running; start the environment with `python -m tests.testenv up`")


def replace_pid(name: str, old: int, new: int) -> None:
    """Record that a component's process ``old`` was replaced by ``new`` (a fault test restarted it)."""
    with _locked():
        state = load() or []
        updated = [
            process.Running(r.name, tuple(new if p == old and r.name == name else p for p in r.pids), r.address,
                            r.env, r.path)
            for r in state
        ]  # fmt: skip
        (state_dir() / "state.json").write_text(json.dumps([asdict(r) for r in updated], indent=2))


def healthy(state: list[process.Running]) -> bool:
    return all(process.is_alive(pid) for running in state for pid in running.pids)


def describe(state: list[process.Running]) -> str:
    lines = []
    for running in state:
        alive = all(process.is_alive(pid) for pid in running.pids)
        pids = ",".join(str(pid) for pid in running.pids)
        lines.append(f"{running.name:<11} {'up' if alive else 'DOWN':<5} {running.address:<40} pids {pids}")
    return "\n".join(lines)


def obtain_all() -> None:
    for component in _components().values():
        component.obtain()


def _merged_env(state: list[process.Running]) -> dict[str, str]:
    env: dict[str, str] = {}
    path_parts: list[str] = [str(Path(sys.executable).parent)]  # kubectl, weed from the venv
    for running in state:
        env.update(running.env)
        path_parts.extend(running.path)
    # Every server listens on 127.0.0.1: the operator's egress policy denies loopback unless it is
    # listed, and tests show that nothing else (127.0.0.2, 169.254.169.254) is ever contacted.
    env["PAYSCOPE_ALLOWED_EGRESS"] = ALLOWED_EGRESS
    env["PAYSCOPE_TESTENV_PATH"] = os.pathsep.join(dict.fromkeys(path_parts))
    env["PATH"] = env["PAYSCOPE_TESTENV_PATH"] + os.pathsep + os.environ.get("PATH", "")
    return env


def _write(state: list[process.Running]) -> None:
    folder = state_dir()
    (folder / "state.json").write_text(json.dumps([asdict(r) for r in state], indent=2))
    env = _merged_env(state)
    env_json_path().write_text(json.dumps(env, indent=2, sort_keys=True))
    lines = [f"export {key}={shlex.quote(value)}" for key, value in sorted(env.items()) if key != "PATH"]
    lines.append(f'export PATH={shlex.quote(env["PAYSCOPE_TESTENV_PATH"])}:"$PATH"')
    env_sh_path().write_text("\n".join(lines) + "\n")
    for path in (env_json_path(), env_sh_path(), folder / "state.json"):
        path.chmod(0o600)


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One ``up`` or ``down`` at a time, across processes (parallel pytest sessions)."""
    folder = state_dir()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / ".testenv.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def up() -> list[process.Running]:
    """Start everything, or return the running environment unchanged."""
    with _locked():
        return _up()


def ensure_up() -> bool:
    """Start the environment unless it runs; True when this call started it."""
    with _locked():
        current = load()
        if current is not None and healthy(current):
            return False
        _up()
        return True


def _up() -> list[process.Running]:
    current = load()
    if current is not None and healthy(current):
        return current
    if current is not None:
        _down()
    obtain_all()
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    started: list[process.Running] = []
    failures: list[str] = []
    starters: dict[str, Callable[[Path], process.Running]] = {
        name: module.start for name, module in _components().items()
    }
    with ThreadPoolExecutor(max_workers=len(starters)) as pool:
        futures = {name: pool.submit(start, folder / name) for name, start in starters.items()}
        for name, future in futures.items():
            try:
                started.append(future.result())
            except errors.TestEnvError as exc:
                failures.append(f"{name}: {exc}")
    if failures:
        for running in started:
            for pid in running.pids:
                process.stop(pid)
        raise errors.StartError("components failed to start:\n" + "\n".join(failures))
    _write(started)
    return started


def down() -> None:
    with _locked():
        _down()


def _down() -> None:
    current = load()
    if current is not None:
        for running in reversed(current):
            for pid in running.pids:
                process.stop(pid)
    postgres.cleanup(state_dir() / "postgres")
    folder = state_dir()
    if folder.exists():
        shutil.rmtree(folder)
