"""A test environment of the fault tests' own: they freeze, kill and restart its servers.

The fault tests must never touch the session's shared environment (other tests
rely on it being healthy), so the package starts a private one: every server of
``tests.testenv``, in a folder of its own (``PAYSCOPE_TESTENV_DIR``), once for the
whole package, stopped at its end. While the package runs, ``os.environ`` carries
that environment's variables (kubectl, helm and the operator processes read them),
and the shared one's are restored afterwards. ``PAYSCOPE_FAULTS_TESTENV_DIR``
names a folder to reuse and keep instead (for working on these tests).

Each test gets its own namespace and installs what it needs; a test that freezes
or kills a server thaws or restarts it and waits until it answers again before it
ends, so the next test finds every server healthy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.conftest import unique
from tests.e2e import cluster
from tests.e2e.faults.identity import Identity, install_identity
from tests.testenv import environment


@pytest.fixture(scope="package")
def fault_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    kept = os.environ.get("PAYSCOPE_FAULTS_TESTENV_DIR")
    folder = Path(kept) if kept else tmp_path_factory.mktemp("faults") / "testenv"
    saved = dict(os.environ)
    os.environ["PAYSCOPE_TESTENV_DIR"] = str(folder)
    try:
        environment.ensure_up()
        env: dict[str, str] = json.loads(environment.env_json_path().read_text())
        os.environ.update(env)
        yield env
    finally:
        if not kept:
            environment.down()
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="package")
def fault_api(fault_env: dict[str, str]) -> Iterator[k8s.ApiClient]:
    api = k8s_config.new_client_from_config(config_file=fault_env["KUBECONFIG"])
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="package")
def fault_identity(fault_api: k8s.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> Identity:
    return install_identity(fault_api, tmp_path_factory.mktemp("identity"))


@pytest.fixture
def fault_namespace(fault_api: k8s.ApiClient) -> Iterator[str]:
    name = unique("f-")
    core = k8s.CoreV1Api(fault_api)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels={"payscope.io/test": "true"})))
    yield name
    core.delete_namespace(name)


@pytest.fixture
def fault_operator(fault_identity: Identity, fault_namespace: str, tmp_path: Path) -> Iterator[cluster.OperatorProcess]:
    """The operator as a process, as the chart's ServiceAccount, watching the test's namespace."""
    log = tmp_path / "operator.log"
    running = cluster.start_operator(fault_identity.kubeconfig, log, namespaces=(fault_namespace,))
    try:
        yield running
    finally:
        running.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failure, attach the tail of every operator log the test wrote (its tmp_path is gone by CI's end)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    folder = getattr(item, "funcargs", {}).get("tmp_path")
    if report.failed and call.when == "call" and isinstance(folder, Path):
        for log in sorted(folder.rglob("*.log")):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-80:])
            report.sections.append((f"{log.name} (last 80 lines)", tail))
