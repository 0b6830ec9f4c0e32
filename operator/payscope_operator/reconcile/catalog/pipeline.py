"""Dimension C, as seen through Redis and PayScope's API: broker, dead letters, worker settings.

Why this module exists: PayScope's ingestion and processing run as Celery tasks
over Redis. A task that fails must be retried with exponential backoff, bounded
in time, acknowledged only once done, and parked in a dead-letter queue when
it gives up, and that queue must not silently fill up. Evidence: one round of
Redis commands (``redis.broker``: PING, INFO, the dead-letter queue's depth)
and the settings PayScope declares in ``GET /admin/pipeline`` (``payscope.admin``).

What it must not do: read or pop queued messages, decide anything about the
Postgres side of ingestion (the idempotency key is a data-layer check), or do
I/O in an evaluate function. The bounds below are the documented policy.
"""

from __future__ import annotations

from typing import Any

from payscope_operator.api import fields, spec, status
from payscope_operator.backends import payscope_api
from payscope_operator.backends.redis import client as redis_client
from payscope_operator.backends.redis import evidence as redis_evidence
from payscope_operator.reconcile import checks, session
from payscope_operator.reconcile.catalog import sources

Severity = status.Severity
Finding = checks.Finding
AdminEvidence = sources.AdminEvidence

MAX_RETRIES = 20
"""More retries than this keeps a poisoned task cycling for hours: a warning."""
MAX_BACKOFF_CAP_S = 3600.0
"""The exponential backoff must be capped, at most at an hour between two attempts."""
MAX_TASK_TIME_LIMIT_S = 3600.0
"""A hard time limit above an hour lets a stuck task hold a worker slot too long: a warning."""

PIPELINE = "GET /admin/pipeline"


async def _gather_broker(run: session.PassSession) -> redis_evidence.BrokerFacts:
    redis = run.spec.redis
    assert redis is not None  # the source is configured only when spec.redis is set
    url = sources.reveal(run, redis.connection.secret_ref, "spec.redis.connection.secretRef")
    timeout = fields.parse_duration(run.spec.audit.probe_timeout).total_seconds()
    client: redis_client.Client = await run.clients.get(
        "redis.broker", hash((url, timeout)), lambda: redis_client.build_client(url, timeout)
    )
    return await redis_evidence.observe(client, redis_client.address_of(url), redis.dead_letter_queue)


REDIS = checks.Source[redis_evidence.BrokerFacts](
    name="redis.broker",
    gather=_gather_broker,
    configured=lambda s: s.redis is not None,
    absent="spec.redis is not set: the broker and its dead-letter queue are not audited.",
)


def _broker_reachable(facts: redis_evidence.BrokerFacts, desired: spec.PayScopeSpec) -> Finding:
    version = facts.version or "of unknown version"
    return Finding.passed(f"Redis {version} at {facts.address} answers PING.", evidence=f"redis {facts.address}: PING")


def _dlq_depth(facts: redis_evidence.BrokerFacts, desired: spec.PayScopeSpec) -> Finding:
    queue, limit = facts.dead_letters, desired.redis.max_dead_letters if desired.redis else 0
    if queue is None:
        return Finding.unknown("No dead-letter queue was read: spec.redis.deadLetterQueue is not set.")
    if queue.depth is None:
        return Finding.failed(
            f"Key {queue.key} holds a Redis {queue.type}, not a queue: point spec.redis.deadLetterQueue at the key "
            "PayScope parks failed tasks in.",
            evidence=f"redis {facts.address}: TYPE {queue.key} = {queue.type}",
        )
    command = redis_evidence.QUEUE_LENGTH_COMMANDS.get(queue.type)
    counted = f"{command} {queue.key} = {queue.depth}" if command else f"TYPE {queue.key} = none (no key: empty)"
    where = f"redis {facts.address}: {counted}"
    if queue.depth > limit:
        return Finding.failed(
            f"The dead-letter queue {queue.key} holds {queue.depth} failed tasks (spec.redis.maxDeadLetters is "
            f"{limit}): find why they failed, fix the cause, then replay or purge them.",
            evidence=where,
        )
    return Finding.passed(f"The dead-letter queue {queue.key} holds {queue.depth} (limit {limit}).", evidence=where)


def _pipeline(evaluate: checks.Evaluate[payscope_api.model.Pipeline]) -> checks.Evaluate[AdminEvidence]:
    """Evaluate the /admin/pipeline document, or say why it could not be read."""

    def on_admin(evidence: AdminEvidence, desired: spec.PayScopeSpec) -> Finding:
        facts = sources.facts_of(evidence.pipeline)
        return facts if isinstance(facts, Finding) else evaluate(facts, desired)

    return on_admin


def _retries(p: payscope_api.model.Pipeline, desired: spec.PayScopeSpec) -> Finding:
    where = f"{PIPELINE} → 200: max_retries={p.max_retries}"
    if p.max_retries is None or p.max_retries < 1:
        return Finding.failed(
            f"PayScope's worker retries no failed task (max_retries={p.max_retries}): set Celery's max_retries "
            "to at least 1 so a transient failure does not lose the task.",
            evidence=where,
        )
    if p.max_retries > MAX_RETRIES:
        return Finding.warned(
            f"max_retries is {p.max_retries:g} (> {MAX_RETRIES}): a poisoned task cycles for hours before it "
            "reaches the dead-letter queue.",
            evidence=where,
        )
    return Finding.passed(f"Failed tasks are retried up to {p.max_retries:g} times.", evidence=where)


def _backoff(p: payscope_api.model.Pipeline, desired: spec.PayScopeSpec) -> Finding:
    where = f"{PIPELINE} → 200: retry_backoff={p.retry_backoff}, retry_backoff_max_s={p.retry_backoff_max_s}"
    if p.retry_backoff is not True:
        return Finding.failed(
            "Retries are not spaced out exponentially (retry_backoff is not true): a failing dependency is hammered "
            "by immediate retries; set Celery's retry_backoff=True.",
            evidence=where,
        )
    cap = p.retry_backoff_max_s
    if cap is None or not 0 < cap <= MAX_BACKOFF_CAP_S:
        return Finding.failed(
            f"The retry backoff has no cap in (0, {MAX_BACKOFF_CAP_S:g}] s (retry_backoff_max_s={cap}): set "
            "retry_backoff_max.",
            evidence=where,
        )
    return Finding.passed(f"Retries back off exponentially, capped at {cap:g}s.", evidence=where)


def _time_limits(p: payscope_api.model.Pipeline, desired: spec.PayScopeSpec) -> Finding:
    soft, hard = p.task_soft_time_limit_s, p.task_time_limit_s
    where = f"{PIPELINE} → 200: task_soft_time_limit_s={soft}, task_time_limit_s={hard}"
    if soft is None or hard is None or not 0 < soft < hard:
        return Finding.failed(
            "Tasks are not bounded in time: set Celery's task_soft_time_limit below task_time_limit (both > 0), so "
            "a stuck task is interrupted, then killed, instead of holding a worker forever.",
            evidence=where,
        )
    if hard > MAX_TASK_TIME_LIMIT_S:
        return Finding.warned(
            f"task_time_limit is {hard:g}s (> {MAX_TASK_TIME_LIMIT_S:g}s): a stuck task holds a worker slot that long.",
            evidence=where,
        )
    return Finding.passed(f"Tasks get a soft limit of {soft:g}s and a hard limit of {hard:g}s.", evidence=where)


def _acks_late(p: payscope_api.model.Pipeline, desired: spec.PayScopeSpec) -> Finding:
    where = f"{PIPELINE} → 200: acks_late={p.acks_late}"
    if p.acks_late is not True:
        return Finding.failed(
            "Tasks are acknowledged before they run (acks_late is not true): a task on a worker that dies is lost; "
            "set task_acks_late=True (with task_reject_on_worker_lost=True).",
            evidence=where,
        )
    return Finding.passed("Tasks are acknowledged only once done.", evidence=where)


def _dead_letter_queue(p: payscope_api.model.Pipeline, desired: spec.PayScopeSpec) -> Finding:
    where = f"{PIPELINE} → 200: dead_letter_queue={p.dead_letter_queue!r}"
    if not p.dead_letter_queue:
        return Finding.failed(
            "PayScope declares no dead-letter queue: tasks that exhaust their retries vanish; route them to a "
            "dead-letter queue and name it in spec.redis.deadLetterQueue.",
            evidence=where,
        )
    watched = desired.redis.dead_letter_queue if desired.redis else None
    if watched is not None and watched != p.dead_letter_queue:
        return Finding.warned(
            f"PayScope parks failed tasks in {p.dead_letter_queue!r} but spec.redis.deadLetterQueue watches "
            f"{watched!r}: C.dlq.depth measures the wrong key.",
            evidence=where,
        )
    return Finding.passed(f"Failed tasks are parked in {p.dead_letter_queue!r}.", evidence=where)


def _file_validation(p: payscope_api.model.Pipeline, desired: spec.PayScopeSpec) -> Finding:
    where = f"{PIPELINE} → 200: ingestion.validates_files={p.validates_files}"
    if p.validates_files is not True:
        return Finding.failed(
            "The ingestion service does not validate uploaded files (ingestion.validates_files is not true): "
            "malformed files reach the pipeline; enable its format and size validation.",
            evidence=where,
        )
    return Finding.passed("The ingestion service validates uploaded files.", evidence=where)


def _admin_check(
    check_id: str,
    title: str,
    passes_when: str,
    severity: Severity,
    evaluate: checks.Evaluate[payscope_api.model.Pipeline],
    covers: tuple[str, ...],
) -> checks.Check[AdminEvidence]:
    return checks.Check(check_id, title, passes_when, severity, sources.ADMIN, _pipeline(evaluate), covers)


_ERRORS = "C/Ingestion/Error handling"
_DLQ = "C/Processing/Dead letter queue"

CHECKS: tuple[checks.Check[Any], ...] = (
    checks.Check(
        id="C.broker.reachable",
        title="PayScope's Redis broker (spec.redis.connection) answers PING within the probe timeout.",
        passes_when="PING succeeds; an unreachable broker is Unknown with the reason.",
        severity=Severity.CRITICAL,
        source=REDIS,
        evaluate=_broker_reachable,
    ),
    checks.Check(
        id="C.dlq.depth",
        title="The depth of the dead-letter queue spec.redis.deadLetterQueue (LLEN, ZCARD, XLEN or SCARD by type).",
        passes_when="The queue holds at most spec.redis.maxDeadLetters entries (an absent key is empty).",
        severity=Severity.HIGH,
        source=REDIS,
        evaluate=_dlq_depth,
        covers=(_DLQ, _ERRORS),
        applies=lambda s: s.redis is not None and s.redis.dead_letter_queue is not None,
    ),
    _admin_check(
        "C.worker.retries",
        "The Celery retry count PayScope declares in GET /admin/pipeline (max_retries).",
        f"1 <= max_retries <= {MAX_RETRIES} (above: Warn).",
        Severity.HIGH,
        _retries,
        ("C/Processing/Celery task retries", "C/Processing/Max retries configured"),
    ),
    _admin_check(
        "C.worker.backoff",
        "Whether retries back off exponentially, with a cap (retry_backoff, retry_backoff_max_s).",
        f"retry_backoff is true and 0 < retry_backoff_max_s <= {MAX_BACKOFF_CAP_S:g}.",
        Severity.MEDIUM,
        _backoff,
        ("C/Processing/Exponential backoff",),
    ),
    _admin_check(
        "C.worker.time_limits",
        "The Celery soft and hard task time limits (task_soft_time_limit_s, task_time_limit_s).",
        f"0 < soft < hard; hard <= {MAX_TASK_TIME_LIMIT_S:g}s (above: Warn).",
        Severity.HIGH,
        _time_limits,
        ("C/Processing/Task timeouts",),
    ),
    _admin_check(
        "C.worker.acks_late",
        "Whether tasks are acknowledged after they run (acks_late), so a dying worker's task is redelivered.",
        "acks_late is true.",
        Severity.MEDIUM,
        _acks_late,
        (_ERRORS,),
    ),
    _admin_check(
        "C.worker.dead_letter_queue",
        "The dead-letter queue PayScope routes exhausted tasks to (dead_letter_queue).",
        "A queue is named; it is the key spec.redis.deadLetterQueue watches (otherwise Warn).",
        Severity.HIGH,
        _dead_letter_queue,
        (_DLQ, _ERRORS),
    ),
    _admin_check(
        "C.ingestion.file_validation",
        "Whether the ingestion service validates uploaded files (ingestion.validates_files).",
        "ingestion.validates_files is true.",
        Severity.HIGH,
        _file_validation,
        ("C/Ingestion/File validation",),
    ),
)

NOT_OBSERVABLE: tuple[checks.NotObservable, ...] = (
    checks.NotObservable(
        "C/Persistence/Transaction boundaries",
        "Where a task opens and commits its transactions lives in PayScope's code; neither its API nor its "
        "database catalogs show it.",
    ),
    checks.NotObservable(
        "C/Persistence/Rollback on errors",
        "Whether a failing task rolls back its partial writes shows only when a task fails mid-way; the audit "
        "must not make tasks fail in a production installation.",
    ),
    checks.NotObservable(
        "C/Persistence/Batch processing",
        "How tasks batch their writes is an implementation choice with no externally visible contract.",
    ),
    checks.NotObservable(
        "C/Persistence/Order guarantees",
        "Processing order is a property of the task code and queue routing over time; a point-in-time probe "
        "cannot observe it without injecting ordered test data into a production pipeline.",
    ),
)
