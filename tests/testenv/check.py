"""``python -m tests.testenv check``: each server of the test environment is real, proven by a few checks.

Why it exists: the operator's tests trust that the servers behave as the real
products do (forced RLS binds a role, a uniqueness constraint refuses a duplicate,
a TimescaleDB policy is a job, the API server enforces RBAC) and listen on 127.0.0.1
only. Those are facts about the environment, not about the operator, so they are
checked here, against the running environment, and not by the operator's test
suite: ``make test`` runs them before pytest, and anyone can after ``up``.

Each check is a function of a :class:`Context` that raises ``AssertionError`` (or
any error) when the server does not behave; the checks live in ``smoke_stores``
(Postgres, Redis, S3, Neo4j, every server on loopback), ``smoke_timescale`` and
``smoke_kube``, each listing its own in ``CHECKS``. A check cleans up what it creates
through :meth:`Context.later`.

What it must not do: import operator code, or leave objects behind on the servers.
"""

from __future__ import annotations

import json
import os
import re
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.testenv import environment

E = TypeVar("E", bound=BaseException)


@dataclass
class Context:
    """What a check reads (``env``, as ``.testenv/env.json`` holds it) and how it cleans up."""

    env: dict[str, str]
    _cleanups: list[Callable[[], object]] = field(default_factory=list)

    def later(self, cleanup: Callable[[], object]) -> None:
        """Run ``cleanup`` once the check is over, pass or fail (last registered, first run)."""
        self._cleanups.append(cleanup)

    def close(self) -> None:
        while self._cleanups:
            self._cleanups.pop()()

    def unique(self, prefix: str) -> str:
        """A short unique lowercase name, valid as namespace, database, role, bucket and label suffix."""
        return f"{prefix}{uuid.uuid4().hex[:10]}"

    def kube(self) -> k8s.ApiClient:
        api = k8s_config.new_client_from_config(config_file=self.env["KUBECONFIG"])
        self.later(api.close)
        return api

    def namespace(self, api: k8s.ApiClient) -> str:
        """A fresh namespace, deleted after the check (it stays Terminating: no controller-manager)."""
        name = self.unique("smoke-")
        core = k8s.CoreV1Api(api)
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
        self.later(lambda: core.delete_namespace(name))
        return name


Check = Callable[[Context], None]


def raises(kind: type[E], call: Callable[[], object], match: str | None = None) -> E:
    """The ``kind`` error ``call`` raised (its text matching ``match``); AssertionError when it raised none."""
    try:
        call()
    except kind as exc:
        if match is not None and not re.search(match, str(exc)):
            raise AssertionError(f"{kind.__name__} raised, but {str(exc)!r} does not match {match!r}") from exc
        return exc
    raise AssertionError(f"expected {kind.__name__}, nothing was raised")


def run(selected: Sequence[Check], env: dict[str, str]) -> int:
    """Run ``selected`` against ``env``, print one line per check, and return how many failed."""
    failed = 0
    for check in selected:
        context = Context(env)
        started = time.monotonic()
        try:
            check(context)
            outcome = "ok  "
        except Exception:  # noqa: BLE001 - every failure is reported, then the next check runs
            failed += 1
            outcome = "FAIL"
            traceback.print_exc()
        finally:
            context.close()
        print(f"{outcome} {check.__module__.rsplit('.', 1)[-1]}.{check.__name__} ({time.monotonic() - started:.1f}s)")
    return failed


def main(every: Sequence[Check], pattern: str | None = None) -> int:
    """Check the running environment (started here, and stopped again, when it is down); 1 when a check fails."""
    started_here = environment.ensure_up()
    env: dict[str, str] = json.loads(environment.env_json_path().read_text())
    saved = dict(os.environ)
    os.environ.update(env)  # kubectl and helm find the cluster and their binaries
    selected = [c for c in every if pattern is None or re.search(pattern, f"{c.__module__}.{c.__name__}")]
    try:
        failed = run(selected, env)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if started_here and os.environ.get("PAYSCOPE_TESTENV_KEEP") != "1":
            environment.down()
    print(f"{len(selected) - failed} of {len(selected)} checks passed")
    return 1 if failed else 0
