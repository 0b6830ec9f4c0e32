"""``--log-format json`` on a real operator process: every line of its log is one JSON object.

The operator runs as the chart's ServiceAccount with ``PAYSCOPE_LOG_FORMAT=json`` (the
chart's ``operator.logFormat``) over a whole installation, so kopf, the drivers and
our own modules all write to the log. Each line must parse, carry time, level,
logger and message; the lines of a pass carry the resource and a pass id, the
lines a backend writes while provisioning its system say which system; no Secret
value appears anywhere. (The image test reads the container's log the same way.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from tests import installation
from tests.conftest import unique
from tests.e2e import cluster


def _ready(api: k8s.ApiClient, inst: installation.Installation) -> Any:
    obj = cluster.psd(api, inst.namespace, inst.name)
    ready = cluster.conditions(obj).get("Ready", {})
    return ready.get("status") == "True" and ready.get("observedGeneration") == obj["metadata"]["generation"]


def test_every_line_is_json_with_the_pass_context_and_no_secret(
    operator_identity: tuple[str, Path, str],
    kube_api: k8s.ApiClient,
    testenv: dict[str, str],
    tmp_path: Path,
) -> None:
    _, kubeconfig, _ = operator_identity
    namespace = unique("t-")
    k8s.CoreV1Api(kube_api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
    inst = installation.build(kube_api, namespace, testenv, tmp_path)
    log = tmp_path / "operator.log"
    running = cluster.start_operator(
        kubeconfig, log, namespaces=(namespace,), extra_env={"PAYSCOPE_LOG_FORMAT": "json"}
    )
    try:
        cluster.create_psd(kube_api, namespace, inst.name, inst.spec)
        cluster.wait_for(lambda: _ready(kube_api, inst), what="Ready True", timeout=60, interval=0.5)
    finally:
        running.stop()
        cluster.delete_psd(kube_api, namespace, inst.name)
        inst.stop()

    text = log.read_text()
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            raise AssertionError(f"line {number} of the operator's log is not JSON: {raw!r}") from None
    assert len(lines) > 5
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
        assert line["level"] in ("debug", "info", "warning", "error", "critical"), line
    passes = [line for line in lines if "pass_id" in line]
    assert {(line["namespace"], line["name"]) for line in passes} == {(namespace, inst.name)}
    transitions = [line for line in passes if line["logger"].endswith(".status_writer") and "Ready=" in line["message"]]
    assert transitions, "condition transitions are logged within a pass"
    systems = {line["system"] for line in lines if "system" in line}
    assert "pinecone" in systems, systems  # the Pinecone client's HTTP lines, written while provisioning it
    for values in installation.secret_values(inst).values():
        for key, value in values.items():
            if key != "username":  # a user name is not masked (see reconcile.secrets)
                assert value not in text, key
