"""A Pinecone control-plane emulator speaking API version 2025-10, for tests.

Pinecone has no server that can run locally, yet the operator provisions and
audits Pinecone indexes. This module is the stand-in: a real HTTP server
process (aiohttp) that answers the control-plane routes the operator uses with
the validation, status codes and error bodies of the real API, and the one
data-plane call the audit needs (``describe_index_stats``). A contract test
drives it with the official ``pinecone`` SDK so that it cannot drift from what
real clients expect.

Behaviour worth knowing:

- Every API request needs ``Api-Key`` (else 401 UNAUTHENTICATED) and
  ``X-Pinecone-Api-Version: 2025-10`` (any other value, or none, is a 400).
- A new index starts ``Initializing`` (``ready: false``) and becomes ``Ready``
  after ``--ready-after`` seconds; pod scaling passes through ``ScalingUp`` /
  ``ScalingDown`` / ``ScalingUpPodSize`` the same way. Clients must poll.
- An index's ``host`` is ``http://127.0.0.1:PORT/_data/<name>-<id>``. The SDK
  keeps an explicit ``http://`` scheme (it only prepends ``https://`` to a bare
  host) and joins request paths onto a base URL that has a path, so
  ``pc.Index(host=model.host)`` reaches the emulator over plain HTTP. The real
  API returns a bare host name; code that builds URLs itself must keep a scheme
  that is already there.
- Test-only routes under ``/_emulator`` (no API key) inject faults (429 with
  ``Retry-After``, 5xx), set per-namespace vector counts, force an index state,
  and count API requests by method and path, so a test can prove that an
  idempotent reconcile pass sent no POST or PATCH. ``Admin`` wraps them.
- State lives in memory and, with ``--state FILE``, in a JSON file rewritten
  after every change, so a restarted emulator still has its indexes.

Run it as ``python -m tests.testenv.pinecone_emulator --port N --api-key K
[--state FILE] [--ready-after S]``; ``start()`` does that for the test
environment and returns the ``PAYSCOPE_PINECONE_*`` variables.

The emulator is split by concern: ``pinecone_models`` (wire shapes, validation),
``pinecone_store`` (state, faults), ``pinecone_api`` (the API routes) and
``pinecone_app`` (middlewares, test-only routes). This module is the test-environment
component (``obtain``, ``start``), the ``Admin`` client and the entry point; it must
not implement a route.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import math
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import httpx
from aiohttp import web

from tests.testenv import pinecone_app, pinecone_store, process

NAME = "pinecone"
API_KEY_ENV = "PINECONE_EMULATOR_API_KEY"
_REPO_ROOT = Path(__file__).resolve().parents[2]


# ---- client for the test-only routes -------------------------------------------------------


class Admin:
    """Drives the ``/_emulator`` routes from a test."""

    def __init__(self, url: str) -> None:
        self._url = url.rstrip("/")

    def _call(self, method: str, path: str, body: object = None) -> httpx.Response:
        response = httpx.request(method, f"{self._url}/_emulator{path}", json=body, timeout=10)
        response.raise_for_status()
        return response

    def set_namespaces(self, index: str, counts: Mapping[str, int]) -> None:
        self._call("POST", f"/indexes/{index}/namespaces", dict(counts))

    def set_state(self, index: str, state: str) -> None:
        self._call("POST", f"/indexes/{index}/state", {"state": state})

    def rate_limit_next(self, count: int, *, retry_after: float = 1, methods: Sequence[str] = ()) -> None:
        self._call("POST", "/faults", {"rate_limit_next": count, "retry_after": retry_after, "methods": list(methods)})

    def fail_next(self, count: int, *, status: int = 503, methods: Sequence[str] = ()) -> None:
        self._call("POST", "/faults", {"fail_next": count, "status": status, "methods": list(methods)})

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def requests(self) -> dict[str, int]:
        return cast(dict[str, int], self._call("GET", "/requests").json())

    def reset_requests(self) -> None:
        self._call("DELETE", "/requests")

    def reset(self) -> None:
        self._call("POST", "/reset")


# ---- component API (same shape as the other test-environment components) ------------------


def obtain() -> Path:
    """Nothing to download or build: the emulator is this module."""
    return Path(__file__).resolve().parent


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection(process.HOST, port, timeout=1)
    try:
        conn.request("GET", "/_emulator/health")
        return conn.getresponse().status == 200
    finally:
        conn.close()


def start(workdir: Path, *, ready_after: float = 0.5, terminate_after: float = 0.0) -> process.Running:
    """Start the emulator on a free 127.0.0.1 port with a fresh API key."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = process.free_port()
    api_key = f"pcsk_emulator_{secrets.token_hex(16)}"
    log = workdir / "pinecone-emulator.log"
    argv = [
        sys.executable, "-m", "tests.testenv.pinecone_emulator",
        "--port", str(port),
        "--state", str(workdir / "pinecone-emulator-state.json"),
        "--ready-after", str(ready_after),
        "--terminate-after", str(terminate_after),
    ]  # fmt: skip
    # The key goes through the environment, not argv, so `ps` does not show it.
    pid = process.spawn(argv, log=log, env={API_KEY_ENV: api_key}, cwd=_REPO_ROOT)
    process.wait_until(lambda: _healthy(port), what="pinecone emulator", timeout=30, pid=pid, log=log)
    url = f"http://{process.HOST}:{port}"
    return process.Running(
        name=NAME,
        pids=(pid,),
        address=url,
        env={"PAYSCOPE_PINECONE_URL": url, "PAYSCOPE_PINECONE_API_KEY": api_key},
    )


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"not a non-negative number of seconds: {text}")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_ENV), help=f"default: ${API_KEY_ENV}")
    parser.add_argument("--state", type=Path, default=None, help="JSON file that keeps indexes across restarts")
    parser.add_argument("--ready-after", type=_seconds, default=0.5, help="seconds until a change settles")
    parser.add_argument("--terminate-after", type=_seconds, default=0.0, help="seconds a deleted index stays")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error(f"--api-key or ${API_KEY_ENV} is required")
    settings = pinecone_store.Settings(
        api_key=args.api_key,
        port=args.port,
        ready_after=args.ready_after,
        terminate_after=args.terminate_after,
        state_file=args.state,
    )
    with contextlib.suppress(KeyboardInterrupt):
        web.run_app(pinecone_app.build_app(settings), host=process.HOST, port=args.port, access_log=None, print=_log)


def _log(*parts: object) -> None:
    print(*parts, flush=True)


if __name__ == "__main__":
    main()
