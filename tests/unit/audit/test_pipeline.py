"""Dimension C's evaluations, table-tested: broker facts, the workers' remote-control replies and /admin/pipeline in."""

from __future__ import annotations

from typing import Any

import pytest

from payscope_operator.api import spec, status
from payscope_operator.audit import registry
from payscope_operator.audit.checks import pipeline
from payscope_operator.audit.sources import celery, payscope_api
from payscope_operator.backends.payscope_api import client as api_client
from payscope_operator.backends.payscope_api import model as api_model
from payscope_operator.backends.redis import client as redis_client
from payscope_operator.backends.redis import evidence as redis_evidence
from payscope_operator.backends.redis import remote_control, workers

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


def _facts(depth: redis_evidence.QueueDepth | None) -> redis_evidence.BrokerFacts:
    return redis_evidence.BrokerFacts("127.0.0.1:6379/0", "7.2.4", depth)


def _admin(pipeline_reply: api_client.Reply) -> payscope_api.AdminEvidence:
    empty = api_client.Reply("GET /admin/agents", 200, body={})
    return payscope_api.AdminEvidence(
        agents=api_model.read_document(empty, api_model.parse_agents),
        pipeline=api_model.read_document(pipeline_reply, api_model.parse_pipeline),
        runtime=api_model.read_document(empty, api_model.parse_runtime),
    )


def _pipeline(**changes: Any) -> payscope_api.AdminEvidence:
    return _admin(api_client.Reply("GET /admin/pipeline", 200, body={**HEALTHY, **changes}))


TASK = "payscope.ingest_file [max_retries=5 retry_backoff=True retry_backoff_max=600 acks_late=True]"
QUEUES = [{"name": "celery", "exchange": {"name": "celery"}}, {"name": "dlq", "exchange": {"name": "celery"}}]


def _replies(
    *,
    task: str = TASK,
    conf: dict[str, Any] | None = None,
    consumed: list[dict[str, Any]] | None = None,
    hosts: tuple[str, ...] = ("worker-1@payscope",),
    listening: int | None = None,
) -> remote_control.Replies:
    """What the workers answer over the broker, as remote_control collects it (healthy by default)."""
    config = {"task_queues": QUEUES, "task_acks_late": True, "task_time_limit": 300, "task_soft_time_limit": 270}
    config.update(conf or {})
    one = {
        "conf": config,
        "stats": {"pool": {"timeouts": [270, 300]}},
        "active_queues": consumed if consumed is not None else QUEUES[:1],
        "registered": ["celery.chord_unlock [max_retries=None]", task] if task else [],
    }
    answers = {command: {host: reply for host in hosts} for command, reply in one.items()}
    return remote_control.Replies(len(hosts) if listening is None else listening, answers)


def _workers(
    depth: redis_evidence.QueueDepth | None = None, replies: remote_control.Replies | None = None, **changes: Any
) -> celery.CeleryEvidence:
    fleet = workers.fleet_of(replies or _replies(**changes))
    return celery.CeleryEvidence(_facts(depth or redis_evidence.QueueDepth("dlq", "list", 0)), fleet)


def _task(**attributes: object) -> remote_control.Replies:
    base = {"max_retries": 5, "retry_backoff": True, "retry_backoff_max": 600, "acks_late": True}
    info = " ".join(f"{k}={v}" for k, v in {**base, **attributes}.items() if v is not DROP)
    return _replies(task=f"payscope.ingest_file [{info}]")


DROP = object()
UNASKED = celery.CeleryEvidence(_facts(redis_evidence.QueueDepth("dlq", "none", 0)), None, "the broker dropped it")


def _run(check_id: str, evidence: object, desired: spec.PayScopeSpec = SPEC) -> registry.Finding:
    return CHECKS[check_id].judge(evidence, desired)


@pytest.mark.parametrize(
    ("check_id", "evidence", "expected", "fragment"),
    [
        ("C.broker.reachable", _facts(None), S.PASS, "Redis 7.2.4"),
        ("C.dlq.depth", _workers(redis_evidence.QueueDepth("dlq", "list", 0)), S.PASS, "holds 0"),
        ("C.dlq.depth", _workers(redis_evidence.QueueDepth("dlq", "none", 0)), S.PASS, "holds 0"),
        ("C.dlq.depth", _workers(redis_evidence.QueueDepth("dlq", "list", 3)), S.FAIL, "holds 3 failed tasks"),
        ("C.dlq.depth", _workers(redis_evidence.QueueDepth("dlq", "stream", 1)), S.FAIL, "maxDeadLetters is 0"),
        ("C.dlq.depth", _workers(redis_evidence.QueueDepth("dlq", "hash", None)), S.FAIL, "not a queue"),
        (
            "C.dlq.depth",
            _workers(redis_evidence.QueueDepth("dlq", "none", 0), conf={"task_queues": QUEUES[:1]}),
            S.UNKNOWN,
            "no worker declares a queue by that name",
        ),
        ("C.dlq.depth", UNASKED, S.WARN, "could not be asked (the broker dropped it)"),
        ("C.worker.retries", _workers(), S.PASS, "payscope.ingest_file holds on every worker"),
        ("C.worker.retries", _workers(replies=_task(max_retries=0)), S.FAIL, "max_retries=0.0"),
        ("C.worker.retries", _workers(replies=_task(max_retries=None)), S.FAIL, "max_retries=None"),
        ("C.worker.retries", _workers(replies=_task(max_retries=50)), S.FAIL, "poisoned task"),
        ("C.worker.retries", _workers(task=""), S.UNKNOWN, "register no PayScope task"),
        ("C.worker.backoff", _workers(), S.PASS, "holds on every worker"),
        ("C.worker.backoff", _workers(replies=_task(retry_backoff=False)), S.FAIL, "retry_backoff=False"),
        ("C.worker.backoff", _workers(replies=_task(retry_backoff_max=DROP)), S.FAIL, "retry_backoff_max=None"),
        ("C.worker.backoff", _workers(replies=_task(retry_backoff_max=86400)), S.FAIL, "is not in (0, 3600]"),
        ("C.worker.time_limits", _workers(), S.PASS, "holds on every worker"),
        (
            "C.worker.time_limits",
            _workers(conf={"task_time_limit": None, "task_soft_time_limit": None}),
            S.FAIL,
            "soft None and hard None",
        ),
        ("C.worker.time_limits", _workers(conf={"task_soft_time_limit": 300}), S.FAIL, "set 0 < soft < hard"),
        ("C.worker.time_limits", _workers(replies=_task(time_limit=60, soft_time_limit=30)), S.PASS, "holds"),
        ("C.worker.time_limits", _workers(replies=_task(time_limit=7200, soft_time_limit=7000)), S.FAIL, "7200s"),
        ("C.worker.acks_late", _workers(), S.PASS, "holds on every worker"),
        ("C.worker.acks_late", _workers(replies=_task(acks_late=False)), S.FAIL, "acks_late=False"),
        (
            "C.worker.acks_late",
            _workers(task="payscope.ingest_file [max_retries=5]", conf={"task_acks_late": None}),
            S.FAIL,
            "acks_late=None",
        ),
        ("C.worker.acks_late", _workers(task="payscope.ingest_file [max_retries=5]"), S.PASS, "holds"),
        ("C.worker.dead_letter_queue", _workers(), S.PASS, "declares the dead-letter queue 'dlq'"),
        ("C.worker.dead_letter_queue", _workers(conf={"task_queues": QUEUES[:1]}), S.FAIL, "declare no queue 'dlq'"),
        ("C.worker.dead_letter_queue", _workers(conf={"task_queues": None}, consumed=QUEUES), S.PASS, "'dlq'"),
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
    assert _run("C.dlq.depth", _workers(redis_evidence.QueueDepth("dlq", "zset", 5)), lenient).status == S.PASS
    assert _run("C.dlq.depth", _workers(redis_evidence.QueueDepth("dlq", "zset", 6)), lenient).status == S.FAIL


def test_evidence_names_the_command_and_the_workers() -> None:
    assert (
        _run("C.dlq.depth", _workers(redis_evidence.QueueDepth("dlq", "list", 2))).evidence
        == "redis 127.0.0.1:6379/0: LLEN dlq = 2"
    )
    assert "1 worker(s) (worker-1@payscope), 1 task(s)" in (_run("C.worker.acks_late", _workers()).evidence or "")


@pytest.mark.parametrize(
    ("evidence", "fragment"),
    [
        (UNASKED, "could not be asked: the broker dropped it"),
        (_workers(replies=remote_control.Replies(0)), "No Celery worker answered"),
        (_workers(replies=remote_control.Replies(2)), "(2 listening)"),
    ],
)
def test_worker_checks_are_unknown_when_no_worker_answered(evidence: celery.CeleryEvidence, fragment: str) -> None:
    for check in pipeline.CHECKS:
        if check.source is celery.WORKERS and check.select is not None:
            finding = check.judge(evidence, SPEC)
            assert finding.status == S.UNKNOWN, check.id
            assert fragment in finding.message


def test_each_worker_is_judged() -> None:
    """A second worker that registers the task badly fails the check even though the first is fine."""
    good, bad = _replies(), _task(max_retries=0)
    answers = {c: {**good.of(c), "worker-2@payscope": next(iter(bad.of(c).values()))} for c in workers.COMMANDS}
    finding = _run("C.worker.retries", _workers(replies=remote_control.Replies(2, answers)))
    assert finding.status == S.FAIL
    assert "2 worker(s)" in (finding.evidence or "")


def test_registered_lines_are_read_into_tasks() -> None:
    task = workers.task_of("payscope.x [max_retries=3 retry_backoff=False time_limit=None soft_time_limit=1.5]")
    assert task == workers.Task("payscope.x", 3.0, False, None, None, 1.5, None)
    assert workers.task_of("payscope.plain") == workers.Task("payscope.plain", None, None, None, None, None, None)


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
