"""Start the reference PayScope API for a test, in-process or as a process, and switch its faults.

Why it exists: the fixture's own tests and the operator's audit tests both need
"a PayScope API on a real port, with this key, these faults": this module is
that one recipe, so every test starts the fixture the same way and talks to
``/_faults`` the same way.

What it must not do: decide what a test asserts, or keep anything running
beyond the ``async with`` block that started it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from aiohttp.test_utils import TestServer

from tests.payscope_api import contract, tokens
from tests.payscope_api.app import create_app
from tests.payscope_api.config import FixtureConfig
from tests.payscope_api.probing import Target
from tests.testenv import process

FIXTURE_TOKEN = "fixture-token-for-tests"
FIXTURE_HEADERS: Mapping[str, str] = {contract.FIXTURE_TOKEN_HEADER: FIXTURE_TOKEN}
REPO = Path(__file__).resolve().parents[2]


def fixture_config(key: tokens.SigningKey, **overrides: object) -> FixtureConfig:
    """A fixture trusting ``key``, with the fault switch on, short hangs and captured logs."""
    base = FixtureConfig(
        algorithm=key.algorithm,
        keys=tokens.verification_keys([key]),
        fixture_token=FIXTURE_TOKEN,
        hang_seconds=1.5,
        log_stream=io.StringIO(),
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


@asynccontextmanager
async def serve(config: FixtureConfig, key: tokens.SigningKey, timeout: float = 5.0) -> AsyncIterator[Target]:
    """The fixture in-process on a real 127.0.0.1 port, and a Target that probes it over httpx."""
    server = TestServer(create_app(config), host="127.0.0.1")
    await server.start_server()
    stream = config.log_stream
    logs = stream.getvalue if isinstance(stream, io.StringIO) else None
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url("")), timeout=timeout) as client:
            yield Target(
                client=client,
                key=key,
                logs=logs,
                confidence_threshold=config.confidence_threshold,
                dependencies=config.dependencies,
            )
    finally:
        await server.close()


free_port = process.free_port  # outside the ephemeral range (see there)


@asynccontextmanager
async def run_process(
    args: Sequence[str], *, secret: str | None, log: Path, port: int | None = None
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``python -m tests.payscope_api --port P *args`` until it answers /healthz; kill it on exit if still alive.

    The HS256 secret travels in the environment, not on the command line.
    """
    port = port or free_port()
    env = {**os.environ, **({"PAYSCOPE_JWT_SECRET": secret} if secret else {})}
    with log.open("wb") as sink:  # a file, not a pipe: nobody would read a pipe while the test runs
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.payscope_api", "--port", str(port), *args,
            cwd=REPO, env=env, stdout=sink, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=1) as client:
            for _ in range(200):
                if proc.returncode is not None:
                    raise ChildProcessError(f"the fixture exited with {proc.returncode}; see {log}")
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        yield proc, base_url
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def switch_faults(target: Target, *, enable: Sequence[str] = (), disable: Sequence[str] = ()) -> list[str]:
    """Change the active faults through ``POST /_faults``; return the active set."""
    response = await target.client.post(
        "/_faults", json={"enable": list(enable), "disable": list(disable)}, headers=dict(FIXTURE_HEADERS)
    )
    response.raise_for_status()
    active: list[str] = response.json()["active"]
    return active
