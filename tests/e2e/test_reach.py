"""The operator process under its egress policy: a PayScopeDeployment pointing elsewhere is never served.

The operator runs as the chart's ServiceAccount with the test environment's policy
(``PAYSCOPE_ALLOWED_EGRESS=127.0.0.1/32``, inherited from env.json). A resource whose
every endpoint (API URL, Pinecone controller, S3 endpoint, Neo4j URI, and the Postgres and
Redis hosts inside its Secrets) points at 127.0.0.2, a loopback address the allowlist
does not open, is reconciled a few times while a listener there counts connections: none
arrives, and the resource is Stalled with EgressDenied naming a field.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from tests.e2e import cluster

DENIED = "127.0.0.2"


class Listener:
    """A TCP listener in a thread that counts every connection it accepts."""

    def __init__(self) -> None:
        self._socket = socket.create_server((DENIED, 0))
        self._socket.settimeout(0.2)
        self.port = int(self._socket.getsockname()[1])
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    running = Listener()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def own_operator(
    operator_identity: tuple[str, Path, str], namespace: str, tmp_path: Path
) -> Iterator[cluster.OperatorProcess]:
    _, kubeconfig, _ = operator_identity
    running = cluster.start_operator(kubeconfig, tmp_path / "op.log", namespaces=(namespace,))
    try:
        yield running
    finally:
        running.stop()


def _passes(running: cluster.OperatorProcess, namespace: str, name: str) -> int:
    pattern = (
        rf'payscope_reconcile_duration_seconds_count\{{[^}}]*name="{name}"[^}}]*namespace="{namespace}"[^}}]*\}} (\S+)'
    )
    found = re.search(pattern, running.metrics())
    return int(float(found.group(1))) if found else 0


def test_a_denied_endpoint_gets_no_connection_from_the_operator(
    own_operator: cluster.OperatorProcess, kube_api: k8s.ApiClient, namespace: str, listener: Listener
) -> None:
    where = f"{DENIED}:{listener.port}"
    secrets = {
        "pg": {"dsn": f"postgresql://payscope:pw-0123@{where}/payscope"},
        "redis": {"url": f"redis://:pw-0123@{where}/0"},
        "neo4j": {"username": "neo4j", "password": "pw-0123"},
        "pinecone": {"apiKey": "pcsk_denied_0123"},
        "s3": {"accessKeyId": "denied-key", "secretAccessKey": "denied-secret-0123"},
    }
    for name, data in secrets.items():
        cluster.create_secret(kube_api, namespace, name, data)
    spec = {
        "postgres": {"connection": {"secretRef": {"name": "pg", "key": "dsn"}}},
        "redis": {"connection": {"secretRef": {"name": "redis", "key": "url"}}},
        "neo4j": {"connection": {"uri": f"bolt://{where}", "secretRef": {"name": "neo4j"}}},
        "pinecone": {
            "apiKeySecretRef": {"name": "pinecone", "key": "apiKey"},
            "controllerUrl": f"http://{where}",
            "indexes": [{"name": "rag", "dimension": 8, "serverless": {"cloud": "aws", "region": "us-east-1"}}],
        },
        "objectStorage": {
            "endpoint": f"http://{where}",
            "forcePathStyle": True,
            "credentialsSecretRef": {"name": "s3"},
            "buckets": [{"name": "payscope-denied"}],
        },
        "api": {"url": f"http://{where}"},
        "audit": {"interval": "2s", "probeTimeout": "1s"},
    }
    cluster.create_psd(kube_api, namespace, "elsewhere", spec)
    try:
        stalled = cluster.wait_for(
            lambda: (
                (c := cluster.conditions(cluster.psd(kube_api, namespace, "elsewhere")).get("Stalled"))
                and c["reason"] == "EgressDenied"
                and c
            ),
            what="Stalled EgressDenied",
            timeout=60,
        )
        cluster.wait_for(lambda: _passes(own_operator, namespace, "elsewhere") >= 3, what="three passes", timeout=60)
        assert listener.accepted == 0
        assert stalled["status"] == "True"
        assert "no connection was made" in stalled["message"]
        assert re.search(r"spec\.[a-zA-Z.]+", stalled["message"])
        checks = cluster.psd(kube_api, namespace, "elsewhere")["status"]["checks"]
        denied = {c["id"] for c in checks if c.get("reason") == "EgressDenied"}
        assert {"A.dependencies.postgres", "A.dependencies.neo4j", "A.dependencies.s3", "C.broker.reachable"} <= denied
    finally:
        cluster.delete_psd(kube_api, namespace, "elsewhere")
