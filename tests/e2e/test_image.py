"""The operator's image, built from the Dockerfile and run under the chart's security context.

The image is built offline with podman (``tests.testenv.image``: a bootstrapped
Debian bookworm python3.11 base, a cached wheelhouse, podman's layer cache), so a
warm run costs seconds. The container runs read-only, as uid 65532, with no
capabilities and no privilege escalation, exactly as the chart's Deployment asks;
it reaches the test control plane over the host's network, as the chart's
ServiceAccount, and must bring a whole installation to a complete status. The
test also reads the container's process from the host (/proc) to see those
restrictions in force, and parses every line of its JSON log. Skipped, with the
reason, only where podman is missing or cannot start any container.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s

import payscope_operator
from tests import installation
from tests.conftest import unique
from tests.e2e import cluster, container
from tests.testenv import image, process

DIMENSIONS = ("Infrastructure", "DataLayer", "Pipeline", "Agents", "APIs", "Observability", "Security")
CONDITIONS = {"Ready", "Reconciling", "Stalled", "Provisioned", *(f"{d}Ready" for d in DIMENSIONS)}


@pytest.fixture(scope="module")
def image_id() -> str:
    problem = container.runtime_problem()
    if problem:
        pytest.skip(problem)
    return image.build()


def test_version_in_the_image_is_the_packages(image_id: str) -> None:
    done = subprocess.run(
        [
            image.podman(),
            "run",
            "--rm",
            *image.podman_args(),
            "--network=none",
            "--entrypoint=payscope-operator",
            image_id,
            "--version",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == f"payscope-operator {payscope_operator.__version__}"
    assert payscope_operator.__version__ == importlib.metadata.version("payscope-operator") == image.version()


@pytest.fixture
def in_container(
    image_id: str,
    operator_identity: tuple[str, Path, str],
    kube_api: k8s.ApiClient,
    testenv: dict[str, str],
    tmp_path: Path,
) -> Iterator[tuple[container.Container, installation.Installation]]:
    _, kubeconfig, operator_ns = operator_identity
    namespace = unique("t-")
    k8s.CoreV1Api(kube_api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
    inst = installation.build(kube_api, namespace, testenv, tmp_path)
    # The servers of the test environment listen on 127.0.0.1, which the operator's egress policy
    # denies unless the allowlist opens it: set through the chart, as a platform team would.
    deployment = container.chart_deployment(
        operator_ns, "operator.logFormat=json", "operator.allowedEgress=127.0.0.1/32"
    )
    running = container.start(
        image_id,
        deployment,
        container.portable_kubeconfig(kubeconfig, tmp_path / "kubeconfig"),
        process.free_port(),
        {"PAYSCOPE_WATCH_NAMESPACES": namespace, "PAYSCOPE_WATCH_CHECK_INTERVAL": "2"},
    )
    try:
        yield running, inst
    finally:
        (tmp_path / "container.log").write_text(running.logs())
        running.stop()
        cluster.delete_psd(kube_api, namespace, inst.name)
        inst.stop()


def _complete(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    generation = obj["metadata"]["generation"]
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    return (
        status.get("observedGeneration") == generation
        and set(conditions) >= CONDITIONS
        and all(c.get("observedGeneration") == generation for c in conditions.values())
        and conditions["Ready"]["status"] == "True"
        and set(status.get("dimensions") or {}) >= set(DIMENSIONS)
        and bool(status.get("checks"))
    )


def test_the_image_runs_the_operator_under_the_charts_security_context(
    in_container: tuple[container.Container, installation.Installation], kube_api: k8s.ApiClient
) -> None:
    running, inst = in_container

    def healthy() -> bool:
        try:
            return httpx.get(f"{running.metrics_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    cluster.wait_for(lambda: running.running() and healthy(), what="the container's /healthz", timeout=60)
    cluster.create_psd(kube_api, inst.namespace, inst.name, inst.spec)
    obj = cluster.wait_for(
        lambda: (o := cluster.psd(kube_api, inst.namespace, inst.name)) and _complete(o) and o,
        what="a complete status written by the container",
        timeout=90,
        interval=0.5,
    )
    for dimension in DIMENSIONS:
        assert cluster.conditions(obj)[f"{dimension}Ready"]["status"] == "True", dimension
    assert {"postgres", "neo4j", "pinecone", "objectStorage"} <= set(obj["status"]["provisioned"])

    # The restrictions, as the kernel applies them to the operator's process.
    status = container.proc_status(running.pid())
    assert status["Uid"].split()[:2] == ["65532", "65532"]
    assert status["Gid"].split()[0] == "65532"
    assert int(status["CapEff"], 16) == 0
    assert int(status["CapBnd"], 16) == 0
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"  # filtered: the runtime's default profile
    assert container.root_is_read_only(running.pid())

    # Its log: one JSON object per line, passes carrying their context, no secret anywhere.
    text = running.logs()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
    passes = [line for line in lines if "pass_id" in line]
    assert passes
    assert all(line["namespace"] == inst.namespace and line["name"] == inst.name for line in passes)
    for values in installation.secret_values(inst).values():
        for key, value in values.items():
            if key != "username":  # a user name is no secret, and "neo4j" is also the system's name
                assert value not in text, key
