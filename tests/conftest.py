"""Shared fixtures: the real-server environment, per-test isolation, and markers by directory.

The session fixture ``testenv`` reuses a running environment (``.testenv/env.json``)
or starts one, and stops it at the end only if it started it (unless
``PAYSCOPE_TESTENV_KEEP=1``). Each test gets its own namespace, database,
bucket name and graph label prefix, so tests never see each other's objects.
Unit tests request none of these and need no server.

Markers come from where a test lives, never from the test: everything under
``tests/e2e`` is ``e2e``, everything under ``tests/integration`` is ``integration``,
and so is any other test that asks for the environment (``testenv``, directly or
through a fixture), so ``pytest -m "not integration and not e2e"`` runs exactly the
tests that need no server.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from psycopg import sql

from tests.e2e import cluster
from tests.testenv import environment

TESTS = Path(__file__).resolve().parent
MARKED_DIRECTORIES = {"integration": pytest.mark.integration, "e2e": pytest.mark.e2e}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its directory (``integration``, ``e2e``), or as integration when it needs the servers."""
    for item in items:
        path = item.path.resolve()
        top = path.relative_to(TESTS).parts[0] if path.is_relative_to(TESTS) else ""
        marker = MARKED_DIRECTORIES.get(top)
        if marker is None and "testenv" in getattr(item, "fixturenames", ()):
            marker = pytest.mark.integration
        if marker is not None:
            item.add_marker(marker)


@pytest.fixture(scope="session")
def testenv() -> Iterator[dict[str, str]]:
    started_here = environment.ensure_up()
    env: dict[str, str] = json.loads(environment.env_json_path().read_text())
    saved = dict(os.environ)
    os.environ.update(env)  # so kubectl/helm subprocesses find the cluster and binaries
    try:
        yield env
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if started_here and os.environ.get("PAYSCOPE_TESTENV_KEEP") != "1":
            environment.down()


def unique(prefix: str) -> str:
    """A short unique lowercase name, valid as namespace, database, bucket and label suffix."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def kube_api(testenv: dict[str, str]) -> Iterator[k8s.ApiClient]:
    api = k8s_config.new_client_from_config(config_file=testenv["KUBECONFIG"])
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def namespace(kube_api: k8s.ApiClient) -> Iterator[str]:
    """A fresh namespace; its PayScopeDeployments are deleted at teardown (the namespace stays Terminating:
    no controller-manager), so no later test's cluster-wide operator reconciles them."""
    name = unique("t-")
    core = k8s.CoreV1Api(kube_api)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels={"payscope.io/test": "true"})))
    yield name
    cluster.remove_resources(kube_api, name)
    core.delete_namespace(name)


@pytest.fixture
def pg_dsn(testenv: dict[str, str]) -> Iterator[str]:
    """Superuser DSN of a fresh database of the test's own."""
    admin_dsn = testenv["PAYSCOPE_PG_DSN"]
    name = unique("t_")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield admin_dsn.replace("/postgres?", f"/{name}?")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def timescale_schema(testenv: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(DSN, schema): TimescaleDB serves one database, so each test gets a schema."""
    dsn = testenv["PAYSCOPE_TIMESCALE_DSN"]
    schema = unique("t_")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield dsn, schema
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def graph_prefix() -> str:
    """Neo4j community has one database: tests keep to labels with their own prefix."""
    return "T" + uuid.uuid4().hex[:8]


@pytest.fixture
def bucket_name() -> str:
    return unique("payscope-t-")


@pytest.fixture
def redis_prefix() -> str:
    return unique("t:")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
