"""A complete PayScope installation on the test servers, for e2e tests and the demo.

``build`` lays out everything a PayScopeDeployment declares, the way PayScope's
own migrations and deployment would: a Postgres database with tenant tables,
an app role, the migration table and a hash-chained audit log; Neo4j nodes
under labels of the installation's own; a Redis dead-letter queue; the
reference PayScope API as a real process; the three Deployments; and the
Secrets. It returns the spec that declares all of it (every one of the five
provisioned systems included) so the operator has something real to provision
and audit. ``Installation.break_*`` helpers break one thing at a time.
"""

from __future__ import annotations

import os
import secrets
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import neo4j
import psycopg
import yaml
from kubernetes import client as k8s
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.e2e import cluster
from tests.payscope_api import auditlog
from tests.testenv import process

REPO = Path(__file__).resolve().parents[1]
TENANTS = ("bank-a", "bank-b")
FIXTURE_TOKEN = "installation-fixture-token"


@dataclass
class Installation:
    namespace: str
    name: str
    env: dict[str, str]
    suffix: str
    database: str
    app_role: str
    app_password: str
    label: str
    bucket: str
    index: str
    dlq: str
    api_url: str
    api_pid: int
    jwt_secret: str
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def db_dsn(self) -> str:
        return make_conninfo(self.env["PAYSCOPE_PG_DSN"], dbname=self.database)

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        with psycopg.connect(self.db_dsn, autocommit=True) as conn:
            conn.execute(statement.encode(), params)  # test-authored statements only

    def cypher(self, statement: str) -> None:
        auth = (self.env["PAYSCOPE_NEO4J_USER"], self.env["PAYSCOPE_NEO4J_PASSWORD"])
        with neo4j.GraphDatabase.driver(self.env["PAYSCOPE_NEO4J_URI"], auth=auth) as driver:
            driver.execute_query(statement)

    def stop(self) -> None:
        process.stop(self.api_pid)


def _postgres(env: dict[str, str], database: str, app_role: str, app_password: str) -> None:
    with psycopg.connect(env["PAYSCOPE_PG_DSN"], autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(app_role), sql.Literal(app_password))
        )
    with psycopg.connect(make_conninfo(env["PAYSCOPE_PG_DSN"], dbname=database), autocommit=True) as db:
        role = sql.Identifier(app_role)
        db.execute("CREATE TABLE accounts (id bigserial PRIMARY KEY, bank_id text NOT NULL, iban text NOT NULL)")
        db.execute(
            "CREATE TABLE transactions (id bigserial PRIMARY KEY, bank_id text NOT NULL,"
            " account_id bigint NOT NULL REFERENCES accounts(id), amount numeric NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now(), idempotency_key text NOT NULL,"
            " UNIQUE (bank_id, idempotency_key))"
        )
        db.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        db.execute("INSERT INTO alembic_version VALUES ('0042')")
        for bank, n in (("bank-a", 3), ("bank-b", 2)):
            for i in range(n):
                db.execute("INSERT INTO accounts (bank_id, iban) VALUES (%s, %s)", (bank, f"{bank}-{i}"))
                db.execute(
                    "INSERT INTO transactions (bank_id, account_id, amount, idempotency_key)"
                    " VALUES (%s, currval('accounts_id_seq'), 10, %s)",
                    (bank, f"{bank}-{i}"),
                )
        db.execute(sql.SQL("GRANT SELECT, INSERT ON accounts, transactions TO {}").format(role))
        db.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(role))
        for statement, params in auditlog.seed("audit_log", app_role):
            db.execute(statement, params)


def _spec(inst: Installation) -> dict[str, Any]:
    env = inst.env
    return {
        "managementPolicy": "Full",
        "deletionPolicy": "Retain",
        "tenancy": {"tenantKey": "bank_id", "sessionVariable": "app.current_bank_id"},
        "postgres": {
            "connection": {"secretRef": {"name": "pg", "key": "dsn"}},
            "appRole": inst.app_role,
            "migrations": {"table": "alembic_version", "column": "version_num", "expected": "0042"},
            "tables": [
                {"name": "transactions", "rowLevelSecurity": {"enabled": True, "force": True}, "tenantIndex": True,
                 "idempotencyKey": ["bank_id", "idempotency_key"], "expectForeignKeys": True},
                {"name": "accounts", "rowLevelSecurity": {"enabled": True, "force": True}, "tenantIndex": True},
            ],
        },
        "neo4j": {
            "connection": {"uri": env["PAYSCOPE_NEO4J_URI"], "secretRef": {"name": "neo4j"}},
            "constraints": [{"label": f"{inst.label}Transaction", "properties": ["id"], "type": "Unique"}],
            "indexes": [{"label": f"{inst.label}Account", "properties": ["bank_id"]}],
        },
        "pinecone": {
            "apiKeySecretRef": {"name": "pinecone", "key": "apiKey"},
            "controllerUrl": env["PAYSCOPE_PINECONE_URL"],
            "indexes": [{"name": inst.index, "dimension": 8, "metric": "cosine",
                         "serverless": {"cloud": "aws", "region": "us-east-1"}, "deletionProtection": False}],
        },
        "objectStorage": {
            "endpoint": env["PAYSCOPE_S3_ENDPOINT"],
            "region": "us-east-1",
            "forcePathStyle": True,
            "credentialsSecretRef": {"name": "s3"},
            "buckets": [{"name": inst.bucket, "versioning": True, "encryption": "AES256", "blockPublicAccess": True,
                         "lifecycle": {"noncurrentVersionExpirationDays": 30,
                                       "abortIncompleteMultipartUploadDays": 7}}],
        },
        "redis": {"connection": {"secretRef": {"name": "redis", "key": "url"}}, "deadLetterQueue": inst.dlq,
                  "maxDeadLetters": 0},
        "workloads": {"api": {"name": "payscope-api"}, "worker": {"name": "payscope-worker"},
                      "ingestion": {"name": "payscope-ingestion"}},
        "api": {
            "url": inst.api_url,
            "timeouts": {"request": "3s", "query": "8s"},
            "auth": {"jwtSecretRef": {"name": "jwt", "key": "signingKey"}, "algorithm": "HS256",
                     "issuer": "payscope", "audience": "payscope-api"},
        },
        "audit": {"interval": "5s", "probeTimeout": "3s", "agentProbeInterval": "5s", "probeTenants": list(TENANTS)},
    }  # fmt: skip


def secret_values(inst: Installation) -> dict[str, dict[str, str]]:
    """The Secrets the spec references, by name and key."""
    env = inst.env
    return {
        "pg": {"dsn": inst.db_dsn},
        "neo4j": {"username": env["PAYSCOPE_NEO4J_USER"], "password": env["PAYSCOPE_NEO4J_PASSWORD"]},
        "pinecone": {"apiKey": env["PAYSCOPE_PINECONE_API_KEY"]},
        "s3": {"accessKeyId": env["PAYSCOPE_S3_ACCESS_KEY"], "secretAccessKey": env["PAYSCOPE_S3_SECRET_KEY"]},
        "redis": {"url": env["PAYSCOPE_REDIS_URL"]},
        "jwt": {"signingKey": inst.jwt_secret},
    }


def _secrets(api: k8s.ApiClient, inst: Installation) -> None:
    for name, data in secret_values(inst).items():
        cluster.create_secret(api, inst.namespace, name, data)


def manifests(inst: Installation) -> tuple[str, str]:
    """(the PayScopeDeployment, its Secrets) as YAML files a platform team would keep."""
    resource = {
        "apiVersion": "payscope.io/v1alpha1",
        "kind": "PayScopeDeployment",
        "metadata": {"name": inst.name, "namespace": inst.namespace},
        "spec": inst.spec,
    }
    secrets_yaml = [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}
        for name, data in secret_values(inst).items()
    ]
    return yaml.safe_dump(resource), yaml.safe_dump_all(secrets_yaml)


def start_api(jwt_secret: str, log: Path, *faults: str, dead_letter_queue: str = "dlq") -> tuple[int, str]:
    """The reference PayScope API as a real process; returns (pid, url)."""
    port = process.free_port()
    argv = [sys.executable, "-m", "tests.payscope_api", "--port", str(port), "--fixture-token", FIXTURE_TOKEN,
            "--issuer", "payscope", "--audience", "payscope-api", "--hang-seconds", "60",
            "--dead-letter-queue", dead_letter_queue]  # fmt: skip
    for fault in faults:
        argv += ["--fault", fault]
    pid = process.spawn(argv, log=log, env={"PAYSCOPE_JWT_SECRET": jwt_secret, "PYTHONPATH": str(REPO)}, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    process.wait_until(lambda: process.tcp_open(port), what="reference PayScope API", timeout=20, pid=pid, log=log)
    return pid, url


def build(api: k8s.ApiClient, namespace: str, env: dict[str, str], workdir: Path, *faults: str) -> Installation:
    """Everything a full PayScopeDeployment declares, on the test servers; returns its description."""
    suffix = uuid.uuid4().hex[:8]
    jwt_secret = secrets.token_urlsafe(32)
    dlq = f"payscope:{suffix}:dlq"
    pid, url = start_api(jwt_secret, workdir / f"payscope-api-{suffix}.log", *faults, dead_letter_queue=dlq)
    inst = Installation(
        namespace=namespace,
        name="payscope",
        env=env,
        suffix=suffix,
        database=f"payscope_{suffix}",
        app_role=f"payscope_app_{suffix}",
        app_password=secrets.token_hex(12),
        label=f"T{suffix}",
        bucket=f"payscope-ingest-{suffix}",
        index=f"payscope-rag-{suffix}",
        dlq=dlq,
        api_url=url,
        api_pid=pid,
        jwt_secret=jwt_secret,
    )
    _postgres(env, inst.database, inst.app_role, inst.app_password)
    inst.cypher(
        f"CREATE (:{inst.label}Account {{id: 1, bank_id: 'bank-a'}}),"
        f" (:{inst.label}Transaction {{id: 1, bank_id: 'bank-a'}})"
    )
    for role in ("api", "worker", "ingestion"):
        cluster.create_deployment(api, namespace, f"payscope-{role}")
    _secrets(api, inst)
    inst.spec = _spec(inst)
    return inst


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(("PAYSCOPE_", "KUBECONFIG"))}
