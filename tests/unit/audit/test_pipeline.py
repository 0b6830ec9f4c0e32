"""Dimension C's evaluations, table-tested: broker facts and /admin/pipeline documents in, findings out."""

from __future__ import annotations

from typing import Any

import pytest

from payscope_operator.api import spec, status
from payscope_operator.audit import registry
from payscope_operator.audit.checks import pipeline
from payscope_operator.audit.sources import payscope_api
from payscope_operator.backends.payscope_api import client as api_client
from payscope_operator.backends.payscope_api import model as api_model
from payscope_operator.backends.redis import client as redis_client
from payscope_operator.backends.redis import evidence as redis_evidence

S = status.CheckStatus
CHECKS = {c.id: c for c in pipeline.CHECKS}
SPEC = spec.PayScopeSpec.model_validate(
    {
        "api": {
            "url": "http://payscope-api:8000",
            "auth": {"jwtSecretRef": {"name": "jwt", "key": "k"}, "issuer": "payscope", "audience": "payscope-api"},
        },
        "redis": {"connection": {"secretRef": {"name": "redis", "key": "url"}}, "deadLetterQueue": "dlq"},
    }
)
HEALTHY: dict[str, Any] = {
    "max_retries": 5,
    "retry_backoff": True,
    "retry_backoff_max_s": 600.0,
    "task_time_limit_s": 300.0,
    "task_soft_time_limit_s": 270.0,
    "acks_late": True,
    "dead_letter_queue": "dlq",
    "ingestion": {"validates_files": True, "max_file_bytes": 1024},
    "health": {"worker": {"status": "ok", "online": 2}, "ingestion": {"status": "ok"}},
}


def _admin(pipeline_reply: api_client.Reply) -> payscope_api.AdminEvidence:
    empty = api_client.Reply("GET /admin/agents", 200, body={})
    return payscope_api.AdminEvidence(
        agents=api_model.read_document(empty, api_model.parse_agents),
        pipeline=api_model.read_document(pipeline_reply, api_model.parse_pipeline),
        runtime=api_model.read_document(empty, api_model.parse_runtime),
    )


def _pipeline(**changes: Any) -> payscope_api.AdminEvidence:
    return _admin(api_client.Reply("GET /admin/pipeline", 200, body={**HEALTHY, **changes}))


def _facts(depth: redis_evidence.QueueDepth | None) -> redis_evidence.BrokerFacts:
    return redis_evidence.BrokerFacts("127.0.0.1:6379/0", "7.2.4", depth)


def _run(check_id: str, evidence: object, desired: spec.PayScopeSpec = SPEC) -> registry.Finding:
    return CHECKS[check_id].judge(evidence, desired)


@pytest.mark.parametrize(
    ("check_id", "evidence", "expected", "fragment"),
    [
        ("C.broker.reachable", _facts(None), S.PASS, "Redis 7.2.4"),
        ("C.dlq.depth", _facts(redis_evidence.QueueDepth("dlq", "list", 0)), S.PASS, "holds 0"),
        ("C.dlq.depth", _facts(redis_evidence.QueueDepth("dlq", "none", 0)), S.PASS, "holds 0"),
        ("C.dlq.depth", _facts(redis_evidence.QueueDepth("dlq", "list", 3)), S.FAIL, "holds 3 failed tasks"),
        ("C.dlq.depth", _facts(redis_evidence.QueueDepth("dlq", "stream", 1)), S.FAIL, "maxDeadLetters is 0"),
        (
            "C.dlq.depth",
            _facts(redis_evidence.QueueDepth("dlq", "hash", None)),
            S.FAIL,
            "holds a Redis hash, not a queue",
        ),
        ("C.dlq.depth", _facts(None), S.UNKNOWN, "deadLetterQueue is not set"),
        ("C.worker.retries", _pipeline(), S.PASS, "up to 5 times"),
        ("C.worker.retries", _pipeline(max_retries=0), S.FAIL, "retries no failed task"),
        ("C.worker.retries", _pipeline(max_retries=None), S.FAIL, "max_retries=None"),
        ("C.worker.retries", _pipeline(max_retries=True), S.FAIL, "max_retries=None"),
        ("C.worker.retries", _pipeline(max_retries=50), S.WARN, "poisoned task"),
        ("C.worker.backoff", _pipeline(), S.PASS, "capped at 600s"),
        ("C.worker.backoff", _pipeline(retry_backoff=False), S.FAIL, "retry_backoff=True"),
        ("C.worker.backoff", _pipeline(retry_backoff_max_s=None), S.FAIL, "no cap"),
        ("C.worker.backoff", _pipeline(retry_backoff_max_s=86400), S.FAIL, "no cap"),
        ("C.worker.time_limits", _pipeline(), S.PASS, "soft limit of 270s"),
        ("C.worker.time_limits", _pipeline(task_time_limit_s=None, task_soft_time_limit_s=None), S.FAIL, "bounded"),
        ("C.worker.time_limits", _pipeline(task_soft_time_limit_s=300.0), S.FAIL, "below task_time_limit"),
        ("C.worker.time_limits", _pipeline(task_time_limit_s=7200, task_soft_time_limit_s=7000), S.WARN, "7200s"),
        ("C.worker.acks_late", _pipeline(), S.PASS, "only once done"),
        ("C.worker.acks_late", _pipeline(acks_late=False), S.FAIL, "task_acks_late=True"),
        ("C.worker.dead_letter_queue", _pipeline(), S.PASS, "'dlq'"),
        ("C.worker.dead_letter_queue", _pipeline(dead_letter_queue=None), S.FAIL, "no dead-letter queue"),
        ("C.worker.dead_letter_queue", _pipeline(dead_letter_queue=""), S.FAIL, "no dead-letter queue"),
        ("C.worker.dead_letter_queue", _pipeline(dead_letter_queue="celery.dlq"), S.WARN, "wrong key"),
        ("C.ingestion.file_validation", _pipeline(), S.PASS, "validates"),
        ("C.ingestion.file_validation", _pipeline(ingestion={"validates_files": False}), S.FAIL, "does not validate"),
        ("C.ingestion.file_validation", _pipeline(ingestion=None), S.FAIL, "does not validate"),
    ],
)
def test_evaluate(check_id: str, evidence: object, expected: status.CheckStatus, fragment: str) -> None:
    finding = _run(check_id, evidence)
    assert finding.status == expected, finding.message
    assert fragment in finding.message


def test_depth_limit_comes_from_the_spec() -> None:
    lenient = SPEC.model_copy(update={"redis": SPEC.redis.model_copy(update={"max_dead_letters": 5})})  # type: ignore[union-attr]
    assert _run("C.dlq.depth", _facts(redis_evidence.QueueDepth("dlq", "zset", 5)), lenient).status == S.PASS
    assert _run("C.dlq.depth", _facts(redis_evidence.QueueDepth("dlq", "zset", 6)), lenient).status == S.FAIL


def test_evidence_names_the_command_and_the_endpoint() -> None:
    assert (
        _run("C.dlq.depth", _facts(redis_evidence.QueueDepth("dlq", "list", 2))).evidence
        == "redis 127.0.0.1:6379/0: LLEN dlq = 2"
    )
    assert (
        _run("C.worker.acks_late", _pipeline(acks_late=False)).evidence == "GET /admin/pipeline → 200: acks_late=False"
    )


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        (api_client.Reply("GET /admin/pipeline", None, failure="no answer within 5s"), "no answer within 5s"),
        (api_client.Reply("GET /admin/pipeline", 401), "spec.api.auth"),
        (api_client.Reply("GET /admin/pipeline", 404), "does not serve it"),
        (api_client.Reply("GET /admin/pipeline", 200, content_type="text/html"), "without a JSON object"),
        (api_client.Reply("GET /admin/pipeline", 503), "answered 503"),
    ],
)
def test_unreadable_document_is_unknown_for_every_pipeline_check(reply: api_client.Reply, fragment: str) -> None:
    for check in pipeline.CHECKS:
        if check.source is payscope_api.ADMIN:
            finding = check.judge(_admin(reply), SPEC)
            assert finding.status == S.UNKNOWN
            assert fragment in finding.message


def test_address_never_shows_the_password() -> None:
    assert redis_client.address_of("redis://:hunter2@redis.payscope:6380/3") == "redis.payscope:6380/3"
    assert redis_client.address_of("rediss://user:hunter2@redis") == "redis:6379/0"


def test_every_check_covers_section_c_or_explains_why_not() -> None:
    covered = {item for check in pipeline.CHECKS for item in check.covers}
    explained = {item.covers for item in pipeline.NOT_OBSERVABLE}
    assert not covered & explained
    assert all(item.startswith("C/") for item in covered | explained)
    assert all(item.reason for item in pipeline.NOT_OBSERVABLE)
