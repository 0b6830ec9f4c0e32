"""Start a real Celery worker (``app``) on the test Redis for one test or module, and stop it again.

Why it exists: the checks that ask workers over the broker are tested against a
running worker whose settings the test chooses. Each worker gets a Redis
database of its own (Celery's remote control is scoped to one database), so a
healthy worker and a faulty one never answer each other's audits. The worker is
ready once it answers the operator's own remote-control client.

What it must not do: leave a worker running past its ``with`` block, or use a
database another running worker uses.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import redis.asyncio as aioredis

from payscope_operator.backends.redis import remote_control

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0


def on_database(url: str, db: int) -> str:
    """The Redis URL ``url`` with its database replaced by ``db``."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{db}"))


async def _answers(url: str) -> int:
    client = aioredis.Redis.from_url(url, socket_timeout=5)
    try:
        return len((await remote_control.inspect(client, {"ping": {}}, 1.0)).workers)
    finally:
        await client.aclose()


def answering(url: str) -> int:
    """How many workers answer on ``url``; in a thread of its own, so callers may run an event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _answers(url)).result()


@contextlib.contextmanager
def running(
    url: str, *, faults: Sequence[str] = (), dead_letter_queue: str = "dlq", log: Path | None = None
) -> Iterator[str]:
    """A worker consuming ``celery`` on ``url`` (a broker URL with its own database) until the block ends."""
    env = {
        **os.environ,
        "PAYSCOPE_WORKER_BROKER": url,
        "PAYSCOPE_WORKER_FAULTS": json.dumps(list(faults)),
        "PAYSCOPE_WORKER_DLQ": dead_letter_queue,
    }
    name = f"payscope-worker-{uuid.uuid4().hex[:8]}@test"
    command = [sys.executable, "-m", "celery", "-A", "tests.payscope_worker.app", "worker", "--pool", "solo"]
    command += ["-Q", "celery", "-n", name, "--without-mingle", "--without-gossip", "-l", "WARNING"]
    sink = log.open("wb") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while answering(url) < 1:
            if process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited with {process.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Celery worker did not answer within {START_TIMEOUT_S:g}s")
            time.sleep(0.2)
        yield name
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log is not None and not isinstance(sink, int):
            sink.close()
