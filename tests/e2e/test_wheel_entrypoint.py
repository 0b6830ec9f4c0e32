"""The image's contents, without a container engine: the built wheel in a fresh virtual environment.

The Dockerfile builds the wheel and installs it into a clean Python 3.11; its
entrypoint is ``payscope-operator run``. This test does the same steps on the
host, so they are proven even where no container can run (``test_image`` runs the
image itself where podman can): build the wheel, install it alone into a new
virtual environment, and run that environment's ``payscope-operator run`` as the
chart's ServiceAccount against the test control plane.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client as k8s

from tests.e2e import cluster

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    wheels = list(out.glob("payscope_operator-*.whl"))
    assert len(wheels) == 1
    venv = out / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheels[0])],
        check=True,
        capture_output=True,
    )
    return venv


def test_dockerfile_entrypoint_is_the_one_tested() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["payscope-operator", "run"\]$', dockerfile, re.M)


def test_installed_wheel_runs_the_operator(
    wheel_venv: Path,
    operator_identity: tuple[str, Path, str],
    kube_api: k8s.ApiClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    _, kubeconfig, _ = operator_identity
    entrypoint = (str(wheel_venv / "bin" / "payscope-operator"), "run")
    running = cluster.start_operator(kubeconfig, tmp_path / "op.log", namespaces=(namespace,), command=entrypoint)
    try:
        cluster.create_deployment(kube_api, namespace, "payscope-api")
        spec = {"workloads": {"api": {"name": "payscope-api"}}, "audit": {"interval": "5s"}}
        cluster.create_psd(kube_api, namespace, "from-wheel", spec)

        cluster.wait_condition(kube_api, namespace, "from-wheel", "Ready", timeout=20)
        # The pass counts itself after its status write: wait for the sample, not for the status.
        cluster.wait_for(
            lambda: any(
                line.startswith("payscope_reconcile_duration_seconds_count{") and 'name="from-wheel"' in line
                for line in running.metrics().splitlines()
            ),
            what="the pass in the wheel's operator's metrics",
            timeout=10,
        )
    finally:
        running.stop()
    # The wheel's own interpreter ran it, not the development environment.
    assert (wheel_venv / "lib").exists()
