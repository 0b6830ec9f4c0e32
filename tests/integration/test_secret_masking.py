"""No resolved secret value in logs, status or Events, even when every driver fails on it.

The test gives one PayScopeDeployment Secrets that make each system fail in the way
most likely to quote a credential: a Postgres DSN with its real password but a database
that does not exist (psycopg's error text), an app-role DSN in keyword form with a wrong
password, a Pinecone key the emulator answers 401 to, an S3 secret key S3 answers
SignatureDoesNotMatch to, a Redis URL with a wrong password, a wrong Neo4j password. It
runs two passes in this process through the operator's own Kubernetes gateway (the
Secrets are read from the real API server), with the operator's JSON log handler at
DEBUG, so every driver and client library logs all it wants. Then neither a secret
value, nor its base64 form (how the Kubernetes API carries it), nor the password inside
a connection string appears in the log, the stored status or any Event.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import logging
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from payscope_operator import logs, telemetry
from payscope_operator.kube import gateway
from payscope_operator.reconcile import reconciler, systems
from tests.e2e import cluster


@pytest.fixture(scope="module")
def crd(kube_api: k8s.ApiClient) -> None:
    cluster.install_crd(kube_api)


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """The operator's own JSON handler at DEBUG on the root logger, for the length of the test."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in logs.QUIET_LOGGERS})
    stream = io.StringIO()
    logs.configure("debug", "json", stream)
    try:
        yield stream
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)


def _forms(value: str) -> list[str]:
    """A secret as a log line could carry it: whole, base64-encoded, and the password inside a URL."""
    forms = [value, base64.b64encode(value.encode()).decode()]
    password = urllib.parse.urlsplit(value).password if "://" in value else None
    return forms + ([password] if password else [])


def _snapshot(obj: dict[str, Any]) -> reconciler.Resource:
    meta = obj["metadata"]
    return reconciler.Resource(
        meta["namespace"], meta["name"], meta["uid"], meta["generation"], meta["resourceVersion"],
        meta.get("annotations") or {}, obj["spec"], obj.get("status"),
    )  # fmt: skip


async def test_driver_errors_leave_no_secret_in_logs_status_or_events(
    testenv: dict[str, str],
    kube_api: k8s.ApiClient,
    crd: None,
    namespace: str,
    pg_dsn: str,
    bucket_name: str,
    debug_log: io.StringIO,
) -> None:
    parts = urllib.parse.urlsplit(pg_dsn)
    redis = urllib.parse.urlsplit(testenv["PAYSCOPE_REDIS_URL"])
    wrong_redis = urllib.parse.urlunsplit(redis._replace(netloc=f":not-the-redis-pw-42@{redis.hostname}:{redis.port}"))
    values = {
        "pg": {
            "dsn": urllib.parse.urlunsplit(parts._replace(path="/no_such_database")),
            "app": f"host={parts.hostname} port={parts.port} dbname=postgres user=payscope_app"
            " password=app-kw-Pa55word sslmode=disable",
        },
        "pinecone": {"apiKey": "pcsk_not_the_key_7f3a9c1e5b"},
        "s3": {"accessKeyId": testenv["PAYSCOPE_S3_ACCESS_KEY"], "secretAccessKey": "wrong-secret-5b1e9c3a7f2d"},
        "redis": {"url": wrong_redis},
        # A user of its own: wrong passwords for the shared user would rate-limit every other test's logins.
        "neo4j": {"username": "payscope_leak_check", "password": "wrong-neo4j-pw-9d8c7b"},
        "jwt": {"signingKey": "jwt-signing-key-0c1d2e3f4a5b6c7d"},
    }
    core = k8s.CoreV1Api(kube_api)
    for name, data in values.items():
        core.create_namespaced_secret(namespace, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=name), string_data=data))
    spec = {
        "tenancy": {"tenantKey": "bank_id"},
        "postgres": {
            "connection": {"secretRef": {"name": "pg", "key": "dsn"}},
            "appConnection": {"secretRef": {"name": "pg", "key": "app"}},
            "tables": [{"name": "tx", "rowLevelSecurity": {"enabled": True}}],
        },
        "pinecone": {
            "apiKeySecretRef": {"name": "pinecone", "key": "apiKey"},
            "controllerUrl": testenv["PAYSCOPE_PINECONE_URL"],
            "indexes": [{"name": "leak-check", "dimension": 8, "serverless": {"cloud": "aws", "region": "us-east-1"}}],
        },
        "objectStorage": {
            "endpoint": testenv["PAYSCOPE_S3_ENDPOINT"],
            "forcePathStyle": True,
            "credentialsSecretRef": {"name": "s3"},
            "buckets": [{"name": bucket_name}],
        },
        "redis": {"connection": {"secretRef": {"name": "redis", "key": "url"}}},
        "neo4j": {
            "connection": {"uri": testenv["PAYSCOPE_NEO4J_URI"], "secretRef": {"name": "neo4j"}},
            "constraints": [{"label": "LeakCheck", "properties": ["id"]}],
        },
        "api": {
            "url": testenv["PAYSCOPE_PINECONE_URL"],
            "auth": {"jwtSecretRef": {"name": "jwt", "key": "signingKey"}, "issuer": "payscope", "audience": "api"},
        },
        "audit": {"probeTenants": ["bank-a", "bank-b"]},
    }
    cluster.create_psd(kube_api, namespace, "leaky", spec)
    deps = reconciler.Dependencies(
        cluster=gateway.Gateway(kube_api), observer=telemetry.Metrics(), provisioners=systems.PROVISIONERS
    )
    try:
        for _ in range(2):
            now = datetime.datetime.now(datetime.UTC)
            await reconciler.reconcile(deps, _snapshot(cluster.psd(kube_api, namespace, "leaky")), now=now)
    finally:
        for cache in deps.clients.values():
            await cache.close()

    stored = cluster.psd(kube_api, namespace, "leaky")["status"]
    events = [f"{e.reason} {e.message}" for e in core.list_namespaced_event(namespace).items]
    checks = {c["id"]: c for c in stored["checks"]}
    # Each driver really failed on its credential (else the test would prove nothing).
    assert "no_such_database" in checks["A.dependencies.postgres"]["message"]
    assert "401" in checks["A.dependencies.pinecone"]["message"]
    assert "SignatureDoesNotMatch" in checks["A.dependencies.s3"]["message"]
    assert checks["C.broker.reachable"]["status"] != "Pass"
    assert "Neo.ClientError.Security" in checks["A.dependencies.neo4j"]["message"]
    written = {"log": debug_log.getvalue(), "status": json.dumps(stored), "events": "\n".join(events)}
    assert written["log"].count("\n") > 100  # every library logged at DEBUG
    user_names = {values["neo4j"]["username"]}  # a user name is not a secret (and not masked: it would garble lines)
    for secret in (value for data in values.values() for value in data.values() if value not in user_names):
        for form in _forms(secret):
            for where, text in written.items():
                assert form not in text, f"a secret ({form[:4]}...) is in the {where}"
    for password in ("app-kw-Pa55word", "not-the-redis-pw-42", parts.password):
        assert password is not None
        for where, text in written.items():
            assert password not in text, f"a password ({password[:4]}...) is in the {where}"
