"""Where downloaded and built test-environment artifacts live.

The cache sits outside the clone (``~/.cache/payscope-testenv`` unless
``PAYSCOPE_TESTENV_CACHE`` says otherwise) because CI clones the repository
afresh on the same machine: a cache inside the clone would make every CI run
cold. Every artifact folder is keyed by component and version, and is only
considered present once a ``.complete`` marker has been written, so an
interrupted build is redone instead of half-used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.testenv import errors


def root() -> Path:
    """The cache root, created on first use."""
    configured = os.environ.get("PAYSCOPE_TESTENV_CACHE")
    path = Path(configured) if configured else Path.home() / ".cache" / "payscope-testenv"
    path.mkdir(parents=True, exist_ok=True)
    return path


def artifact_dir(component: str, version: str) -> Path:
    """The folder of one component at one version (not necessarily complete)."""
    return root() / f"{component}-{version}"


def is_complete(folder: Path) -> bool:
    return (folder / ".complete").exists()


def mark_complete(folder: Path) -> None:
    (folder / ".complete").write_text("ok\n")


def reset(folder: Path) -> None:
    """Remove a half-built folder so a build starts clean."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
) -> str:
    """Run a build step; on failure raise with the tail of its output."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        list(argv),
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if log is not None:
        with log.open("a") as handle:
            handle.write(f"$ {' '.join(argv)}\n{proc.stdout}\n")
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-40:])
        raise errors.BuildError(f"{' '.join(argv[:3])} ... failed ({proc.returncode}):\n{tail}")
    return proc.stdout
