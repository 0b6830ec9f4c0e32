"""Invalid PayScopeDeployment specs, each breaking exactly one rule of the API.

``INVALID_SPECS`` lists ``(id, spec, field)``: ``spec`` is the DESIGN.md example with one
field broken, and ``field`` is the path of the field the error must name, written as
the apiserver writes it below ``spec.`` (``postgres.tables[0].name``). The unit tests
assert that pydantic rejects each with an error at that path (see ``loc_to_path``); the
integration tests apply each to the real kube-apiserver and expect a 422 whose message
contains ``spec.<field>``. Cases in ``STRICT_FIELD_VALIDATION_ONLY`` are rejected by the
apiserver only under ``fieldValidation=Strict`` (kubectl's default), because without it
unknown fields are pruned rather than refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tests.cases import valid_specs

_DELETE = object()


def loc_to_path(loc: Sequence[str | int]) -> str:
    """A pydantic error loc as the apiserver writes field paths: ``tables.0.name`` -> ``tables[0].name``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path


def _broken(path: str, value: Any) -> dict[str, Any]:
    """The DESIGN.md example with the value at ``path`` replaced (or deleted with _DELETE)."""
    spec = valid_specs.design_example()
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]
    node: Any = spec
    for part in parts[:-1]:
        node = node[part]
    if value is _DELETE:
        del node[parts[-1]]
    elif isinstance(node, list) and parts[-1] == len(node):
        node.append(value)
    else:
        node[parts[-1]] = value
    return spec


def _case(case_id: str, path: str, value: Any, field: str | None = None) -> tuple[str, dict[str, Any], str]:
    return case_id, _broken(path, value), field or path


_TABLE = "postgres.tables[0]"
_HYPERTABLE = f"{_TABLE}.hypertable"
_INDEX = "pinecone.indexes[0]"
_BUCKET = "objectStorage.buckets[0]"


def _without_tenancy(**table_changes: Any) -> dict[str, Any]:
    spec = _broken("tenancy", _DELETE)
    spec["postgres"]["tables"][0].update(table_changes)
    return spec


INVALID_SPECS: list[tuple[str, dict[str, Any], str]] = [
    # Identifiers that would end up in SQL, Cypher, S3 or Pinecone calls.
    _case("sql-table-injection", f"{_TABLE}.name", "transactions; drop table x"),
    _case("sql-table-quoted", f"{_TABLE}.name", 'transactions"--'),
    _case("sql-schema-injection", f"{_TABLE}.schema", "public; drop schema public cascade"),
    _case("sql-table-uppercase", f"{_TABLE}.name", "Transactions"),
    _case("sql-column-too-long", f"{_HYPERTABLE}.timeColumn", "c" * 64),
    _case("sql-app-role-injection", "postgres.appRole", "payscope_app'; alter role x superuser; --"),
    _case("sql-segment-by-expression", f"{_HYPERTABLE}.compression.segmentBy[0]", "bank_id)"),
    _case(
        "sql-order-by-injection",
        f"{_HYPERTABLE}.compression.orderBy",
        ["created_at desc; drop table x"],
        f"{_HYPERTABLE}.compression.orderBy[0]",
    ),
    _case("session-variable-injection", "tenancy.sessionVariable", "app.current_bank_id; reset all"),
    _case("session-variable-no-prefix", "tenancy.sessionVariable", "current_bank_id"),
    _case("neo4j-label-quote", "neo4j.constraints[0].label", 'Foo"Bar'),
    _case("neo4j-property-backtick", "neo4j.indexes[0].properties[0]", "bank`id"),
    _case("neo4j-uri-http", "neo4j.connection.uri", "http://neo4j:7474"),
    _case("bucket-too-short", f"{_BUCKET}.name", "a"),
    _case("bucket-uppercase", f"{_BUCKET}.name", "PayScope_Ingest"),
    _case("bucket-adjacent-dots", f"{_BUCKET}.name", "payscope..ingest"),
    _case("bucket-ip-address", f"{_BUCKET}.name", "192.168.1.10"),
    _case("pinecone-name-uppercase", f"{_INDEX}.name", "PayScope_RAG"),
    _case("workload-name-spaces", "workloads.api.name", "Payscope API"),
    _case("api-url-javascript", "api.url", "javascript:alert(1)"),
    _case("api-url-userinfo", "api.url", "http://admin:secret@payscope-api:8000"),
    # Durations, dates, check ids.
    _case("duration-words", f"{_HYPERTABLE}.retention", "30 days"),
    _case("duration-weeks", f"{_HYPERTABLE}.chunkInterval", "7w"),
    _case("duration-zero", "audit.interval", "0s"),
    _case("duration-no-unit", "audit.interval", "60"),
    _case("waiver-bad-check-id", "audit.waivers[0].check", "F.metrics"),
    _case("waiver-bare-star", "audit.waivers[0].check", "*"),
    _case("waiver-star-inside", "audit.waivers[0].check", "F.*.agents"),
    _case("waiver-star-after-check", "audit.waivers[0].check", "F.metrics.agents.*"),
    _case("waiver-bad-date", "audit.waivers[0].expires", "31/01/2027"),
    # Numbers and types.
    _case("pinecone-dimension-zero", f"{_INDEX}.dimension", 0),
    _case("pinecone-dimension-too-big", f"{_INDEX}.dimension", 20001),
    _case("pinecone-dimension-string", f"{_INDEX}.dimension", "1536"),
    _case("redis-negative-dead-letters", "redis.maxDeadLetters", -1),
    _case("bool-as-string", f"{_INDEX}.deletionProtection", "true"),
    # Secret references.
    _case("secret-ref-without-key", "postgres.connection.secretRef.key", _DELETE),
    _case("secret-ref-bad-name", "pinecone.apiKeySecretRef.name", "PG_Secret"),
    _case("secret-ref-bad-key", "redis.connection.secretRef.key", "url/../../etc"),
    # Enums.
    _case("enum-management-policy", "managementPolicy", "Sometimes"),
    _case("enum-metric", f"{_INDEX}.metric", "manhattan"),
    _case("enum-constraint-type", "neo4j.constraints[0].type", "Primary"),
    _case("enum-jwt-alg-none", "api.auth.algorithm", "none"),
    _case("enum-encryption", f"{_BUCKET}.encryption", "DES"),
    # Unknown fields.
    _case("unknown-field-top", "postgress", {"connection": {}}),
    _case("unknown-field-nested", f"{_TABLE}.rowLevelSecurity.forced", True),
    # Rules across fields (CEL in the CRD, rules in the models).
    _case("pinecone-serverless-and-pod", f"{_INDEX}.pod", {"environment": "us-east1-gcp"}, f"{_INDEX}.serverless"),
    _case("pinecone-neither-serverless-nor-pod", f"{_INDEX}.serverless", _DELETE, f"{_INDEX}.serverless"),
    _case("pinecone-tag-key", f"{_INDEX}.tags", {"bad key!": "x"}),
    _case("compression-after-retention", f"{_HYPERTABLE}.compression.after", "400d"),
    _case(
        "rls-force-without-enabled",
        f"{_TABLE}.rowLevelSecurity",
        {"enabled": False, "force": True},
        f"{_TABLE}.rowLevelSecurity.force",
    ),
    ("tenant-index-without-tenancy", _without_tenancy(rowLevelSecurity={"enabled": False, "force": False}), "tenancy"),
    ("rls-without-tenancy", _without_tenancy(tenantIndex=False), "tenancy"),
    ("observe-only-with-delete", {"managementPolicy": "ObserveOnly", "deletionPolicy": "Delete"}, "deletionPolicy"),
    _case(
        "exists-constraint-two-properties",
        "neo4j.constraints[0]",
        {"label": "A", "properties": ["a", "b"], "type": "Exists"},
        "neo4j.constraints[0].properties",
    ),
    _case("kms-key-without-kms", f"{_BUCKET}.kmsKeyId", "alias/payscope"),
    _case("probe-timeout-over-interval", "audit.probeTimeout", "2m"),
    _case("probe-tenants-single", "audit.probeTenants", ["bank-a"]),
    # Lists used as maps or sets.
    _case("duplicate-table", "postgres.tables[1]", {"name": "transactions"}),
    _case("duplicate-bucket", "objectStorage.buckets[1]", {"name": "payscope-ingest"}),
    _case(
        "duplicate-segment-by",
        f"{_HYPERTABLE}.compression.segmentBy",
        ["bank_id", "bank_id"],
        f"{_HYPERTABLE}.compression.segmentBy[1]",
    ),
    _case(
        "duplicate-constraint",
        "neo4j.constraints[1]",
        {"label": "Transaction", "properties": ["id"], "type": "Unique"},
        "neo4j.constraints",
    ),
]
"""(id, spec, field): each spec is rejected with an error naming ``spec.<field>``."""

STRICT_FIELD_VALIDATION_ONLY = frozenset({"unknown-field-top", "unknown-field-nested"})
"""Ids the apiserver rejects only with fieldValidation=Strict (it prunes unknown fields otherwise)."""
