"""Valid PayScopeDeployment specs: the DESIGN.md example and variations the models must accept.

Shared by the unit tests (pydantic) and the integration tests (the real kube-apiserver),
and the base that ``invalid_specs`` breaks one field at a time.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

# The example of DESIGN.md ("The resource"), verbatim.
DESIGN_EXAMPLE_YAML = """
managementPolicy: Full
deletionPolicy: Retain
tenancy: {tenantKey: bank_id, sessionVariable: app.current_bank_id}
postgres:
  connection: {secretRef: {name: pg, key: dsn}}
  appRole: payscope_app
  migrations: {table: alembic_version, column: version_num, expected: "0042"}
  tables:
    - name: transactions
      rowLevelSecurity: {enabled: true, force: true}
      tenantIndex: true
      hypertable: {timeColumn: created_at, chunkInterval: 7d, retention: 400d,
                   compression: {after: 30d, segmentBy: [bank_id]}}
neo4j:
  connection: {uri: "bolt://neo4j:7687", secretRef: {name: neo4j}}
  database: neo4j
  constraints: [{label: Transaction, properties: [id], type: Unique}]
  indexes: [{label: Account, properties: [bank_id]}]
pinecone:
  apiKeySecretRef: {name: pinecone, key: apiKey}
  controllerUrl: https://api.pinecone.io
  indexes: [{name: payscope-rag, dimension: 1536, metric: cosine,
             serverless: {cloud: aws, region: us-east-1}, deletionProtection: true}]
objectStorage:
  endpoint: http://minio:9000
  region: us-east-1
  credentialsSecretRef: {name: s3}
  buckets: [{name: payscope-ingest, versioning: true, encryption: AES256,
             blockPublicAccess: true, lifecycle: {noncurrentVersionExpirationDays: 30}}]
redis: {connection: {secretRef: {name: redis, key: url}}, deadLetterQueue: dlq, maxDeadLetters: 0}
workloads: {api: {name: payscope-api}, worker: {name: payscope-worker}, ingestion: {name: payscope-ingestion}}
api:
  url: http://payscope-api:8000
  auth: {jwtSecretRef: {name: jwt, key: signingKey}, algorithm: HS256, issuer: payscope, audience: payscope-api}
audit:
  interval: 60s
  waivers: [{check: F.metrics.agents, reason: "...", expires: "2027-01-31"}]
"""


def design_example() -> dict[str, Any]:
    """A fresh copy of the DESIGN.md example spec."""
    loaded: dict[str, Any] = yaml.safe_load(DESIGN_EXAMPLE_YAML)
    return loaded


def _variant(**changes: Any) -> dict[str, Any]:
    spec = design_example()
    spec.update(copy.deepcopy(changes))
    return spec


VALID_SPECS: list[tuple[str, dict[str, Any]]] = [
    ("design-example", design_example()),
    ("empty", {}),
    ("observe-only-audit-only", {"managementPolicy": "ObserveOnly", "audit": {"interval": "5m"}}),
    ("delete-policy", {"deletionPolicy": "Delete"}),
    (
        "postgres-schema-and-hours",
        {
            "tenancy": {},
            "postgres": {
                "connection": {"secretRef": {"name": "pg.payscope", "key": "DATABASE_URL"}},
                "appConnection": {"secretRef": {"name": "pg-app", "key": "dsn"}},
                "auditLog": {"table": "hash_log", "schema": "audit"},
                "tables": [
                    {"name": "transactions", "schema": "ledger", "rowLevelSecurity": {}, "tenantIndex": True},
                    {"name": "transactions", "schema": "public", "idempotencyKey": ["bank_id", "file_sha256"]},
                    {
                        "name": "events",
                        "expectForeignKeys": True,
                        "hypertable": {
                            "timeColumn": "ts",
                            "retention": "1d",
                            "compression": {"after": "12h", "orderBy": ["ts DESC", "id"]},
                        },
                    },
                ],
            },
        },
    ),
    (
        "pinecone-pod-and-tags",
        _variant(
            pinecone={
                "apiKeySecretRef": {"name": "pinecone", "key": "apiKey"},
                "indexes": [
                    {"name": "a", "dimension": 1, "pod": {"environment": "us-east1-gcp", "podType": "s1.x2"}},
                    {
                        "name": "b-2",
                        "dimension": 20000,
                        "metric": "dotproduct",
                        "serverless": {"cloud": "gcp", "region": "europe-west4"},
                        "tags": {"team": "payscope", "cost_center": "42"},
                    },
                ],
            }
        ),
    ),
    (
        "neo4j-enterprise-kinds",
        _variant(
            neo4j={
                "connection": {
                    "uri": "neo4j+s://graph.example.com",
                    "secretRef": {"name": "neo4j", "passwordKey": "pw"},
                },
                "constraints": [
                    {"label": "Account", "properties": ["bank_id", "number"], "type": "NodeKey"},
                    {"label": "Account", "properties": ["bank_id"], "type": "Exists"},
                ],
                "indexes": [{"label": "Merchant", "properties": ["name"], "type": "Text"}],
            }
        ),
    ),
    (
        "s3-kms-lifecycle",
        _variant(
            objectStorage={
                "forcePathStyle": True,
                "buckets": [
                    {
                        "name": "payscope.archive-01",
                        "encryption": "aws:kms",
                        "kmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/abc-123",
                        "lifecycle": {"expirationDays": 3650, "abortIncompleteMultipartUploadDays": 7},
                    }
                ],
            }
        ),
    ),
    (
        "api-rs256-and-audit",
        _variant(
            api={
                "url": "https://payscope.example.com/base",
                "auth": {
                    "jwtSecretRef": {"name": "jwt", "key": "private.pem"},
                    "algorithm": "RS256",
                    "issuer": "https://issuer.example.com/",
                    "audience": "payscope-api",
                },
                "timeouts": {"request": "2s", "query": "2m"},
            },
            audit={
                "interval": "10m",
                "probeTimeout": "10m",
                "probeTenants": ["bank-a", "bank-b"],
                "waivers": [
                    {"check": "F.metrics.agents", "reason": "agents ship in Q3", "expires": "2027-01-31"},
                    {"check": "G.audit_log.hash_chain", "reason": "Fabric enabled", "expires": "2026-12-31"},
                    {"check": "D.*", "reason": "no agents in this cell", "expires": "2027-03-31"},
                    {"check": "B.neo4j.*", "reason": "graph migrates in Q2", "expires": "2027-06-30"},
                ],
            },
        ),
    ),
]
"""(id, spec) pairs every layer must accept."""
