"""Dimension F's health, readiness and shutdown evaluations, table-tested (the metrics: test_metrics)."""

from __future__ import annotations

from typing import Any

import pytest

from payscope_operator.api import spec, status
from payscope_operator.audit import registry
from payscope_operator.audit.checks import observability
from payscope_operator.audit.sources import celery, payscope_api
from payscope_operator.backends.payscope_api import client as api_client
from payscope_operator.backends.payscope_api import model as api_model
from payscope_operator.backends.redis import evidence as redis_evidence
from payscope_operator.backends.redis import remote_control, workers
from tests.unit.audit import evidence as ev

S = status.CheckStatus
CHECKS = {c.id: c for c in observability.CHECKS}


def _status(
    *,
    healthz: tuple[int | None, dict[str, Any] | None] = (200, {"status": "ok"}),
    readyz: tuple[int | None, dict[str, Any] | None] = (200, {"status": "ok", "checks": {"postgres": "ok"}}),
) -> payscope_api.StatusEvidence:
    failure = "no answer within 5s"
    return payscope_api.StatusEvidence(
        healthz=api_model.parse_health(
            ev.reply("GET /healthz", healthz[0], healthz[1], failure=failure if healthz[0] is None else None)
        ),
        readyz=api_model.parse_health(ev.reply("GET /readyz", readyz[0], readyz[1])),
        metrics=api_model.parse_metrics(api_client.Reply("GET /metrics", 200, content_type="text/plain")),
    )


def _pipeline(worker: dict[str, Any], ingestion: dict[str, Any]) -> payscope_api.AdminEvidence:
    return ev.admin(pipeline={"health": {"worker": worker, "ingestion": ingestion}})


OK = {"status": "ok"}
FAIL = {"status": "fail"}


@pytest.mark.parametrize(
    ("check_id", "evidence", "expected", "fragment"),
    [
        ("F.health.api", _status(), S.PASS, "liveness ok"),
        ("F.health.api", _status(healthz=(500, FAIL)), S.FAIL, "answered 500"),
        ("F.health.api", _status(healthz=(200, FAIL)), S.FAIL, "status 'fail'"),
        ("F.health.api", _status(healthz=(None, None)), S.UNKNOWN, "no answer within 5s"),
        ("F.health.dependencies", _status(), S.PASS, "1 dependencies ok"),
        (
            "F.health.dependencies",
            _status(readyz=(503, {"status": "degraded", "checks": {"postgres": "fail", "redis": "ok"}})),
            S.FAIL,
            "postgres=fail",
        ),
        (
            "F.health.dependencies",
            _status(readyz=(200, {"status": "ok", "checks": {"neo4j": "disabled"}})),
            S.PASS,
            "ok",
        ),
        (
            "F.health.dependencies",
            _status(readyz=(200, {"status": "ok", "checks": {"neo4j": "fail"}})),
            S.FAIL,
            "neo4j",
        ),
        ("F.health.dependencies", _status(readyz=(200, {"status": "ok", "checks": {}})), S.UNKNOWN, "names no"),
        ("F.health.dependencies", _status(readyz=(200, {"status": "ok"})), S.UNKNOWN, "checks nothing"),
        ("F.health.ingestion", _pipeline({"status": "ok", "online": 1}, OK), S.PASS, "healthy"),
        ("F.health.ingestion", _pipeline({"status": "ok", "online": 1}, FAIL), S.FAIL, "unhealthy"),
    ],
)
def test_evaluate(check_id: str, evidence: object, expected: status.CheckStatus, fragment: str) -> None:
    finding: registry.Finding = CHECKS[check_id].judge(evidence, ev.SPEC)
    assert finding.status == expected, finding.message
    assert fragment in finding.message


STORES = spec.PayScopeSpec.model_validate(
    {
        **ev.SPEC.model_dump(by_alias=True, exclude_none=True),
        "postgres": {"connection": {"secretRef": {"name": "pg", "key": "dsn"}}, "migrations": {"expected": "0042"}},
        "redis": {"connection": {"secretRef": {"name": "redis", "key": "url"}}},
        "neo4j": {"connection": {"uri": "bolt://neo4j:7687", "secretRef": {"name": "neo4j"}}},
        "pinecone": {"apiKeySecretRef": {"name": "pinecone", "key": "apiKey"}},
        "objectStorage": {"endpoint": "http://minio:9000", "credentialsSecretRef": {"name": "s3"}},
    }
)
ALL_ENTRIES = dict.fromkeys(
    ("postgres", "migrations", "redis", "neo4j", "neo4j_schema", "pinecone", "pinecone_index", "object_storage"), "ok"
)


def _ready(code: int = 200, **changes: str | None) -> payscope_api.StatusEvidence:
    checks = {k: v for k, v in {**ALL_ENTRIES, **changes}.items() if v is not None}
    state = "ok" if all(v in ("ok", "disabled") for v in checks.values()) else "degraded"
    return _status(readyz=(code, {"status": state, "checks": checks}))


@pytest.mark.parametrize(
    ("evidence", "expected", "fragment"),
    [
        (_ready(), S.PASS, "all 8 entries"),
        (_ready(neo4j_schema=None), S.FAIL, "does not gate on neo4j_schema (spec.neo4j (schema validated"),
        (_ready(pinecone_index=None, migrations=None), S.FAIL, "migrations (spec.postgres.migrations), pinecone_index"),
        (_ready(503, pinecone_index="fail"), S.FAIL, "pinecone_index=fail"),
        (_ready(object_storage="disabled"), S.WARN, "object_storage as disabled"),
        (_ready(extra_check="ok"), S.PASS, "all 8 entries"),
        (_status(readyz=(404, None)), S.UNKNOWN, "no readiness document"),
    ],
)
def test_readiness_entries(evidence: payscope_api.StatusEvidence, expected: status.CheckStatus, fragment: str) -> None:
    finding = CHECKS["F.health.readiness_entries"].judge(evidence, STORES)
    assert finding.status == expected, finding.message
    assert fragment in finding.message


def test_readiness_entries_ask_only_for_the_stores_the_spec_declares() -> None:
    assert observability.expected_entries(ev.SPEC) == {}
    redis_only = spec.PayScopeSpec.model_validate(
        {"redis": {"connection": {"secretRef": {"name": "redis", "key": "url"}}}}
    )
    assert set(observability.expected_entries(redis_only)) == {"redis"}
    result = ev.audit({payscope_api.STATUS: _ready()})["F.health.readiness_entries"]
    assert result.status == S.NOT_CONFIGURED


def test_health_endpoints_cover_both_e_and_f() -> None:
    assert "E/Endpoints/Health endpoints" in CHECKS["F.health.api"].covers
    assert "B/Neo4j/Schema validation on startup" in CHECKS["F.health.readiness_entries"].covers
    assert all(item.covers.startswith("F/") for item in observability.NOT_OBSERVABLE)


def _fleet(listening: int, hosts: tuple[str, ...]) -> celery.CeleryEvidence:
    answers: dict[str, dict[str, object]] = {"stats": {host: {} for host in hosts}}
    broker = redis_evidence.BrokerFacts("redis:6379/0", "7.2", None)
    return celery.CeleryEvidence(broker, workers.fleet_of(remote_control.Replies(listening, answers)))


@pytest.mark.parametrize(
    ("evidence", "expected", "fragment"),
    [
        (_fleet(2, ("w1@a", "w2@b")), S.PASS, "2 Celery worker(s) answer over the broker: w1@a, w2@b"),
        (_fleet(0, ()), S.FAIL, "No Celery worker listens on the broker at redis:6379/0"),
        (_fleet(2, ("w1@a",)), S.WARN, "2 workers listen but only 1 answered"),
        (
            celery.CeleryEvidence(redis_evidence.BrokerFacts("redis:6379/0", "7.2", None), None, "refused"),
            S.UNKNOWN,
            "could not be asked: refused",
        ),
    ],
)
def test_worker_health_is_the_workers_answering(
    evidence: celery.CeleryEvidence, expected: status.CheckStatus, fragment: str
) -> None:
    finding = CHECKS["F.health.worker"].judge(evidence, ev.SPEC)
    assert finding.status == expected, finding.message
    assert fragment in finding.message
