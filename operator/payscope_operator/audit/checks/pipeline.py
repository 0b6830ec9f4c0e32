"""Dimension C, as seen through Redis and PayScope's API: broker, dead letters, worker settings.

Why this module exists: PayScope's ingestion and processing run as Celery tasks
over Redis. A task that fails must be retried with exponential backoff, bounded
in time, acknowledged only once done, and parked in a dead-letter queue when
it gives up, and that queue must not silently fill up. Evidence: one round of
Redis commands (``redis.broker``: PING, INFO, the dead-letter queue's depth),
the settings PayScope declares in ``GET /admin/pipeline`` (``payscope.admin``,
Reported evidence until the workers themselves are asked), and the ingestion
tables' unique keys in the Postgres catalogs (``postgres.catalog``).

What it must not do: read or pop queued messages, or do I/O in an evaluate
function. The bounds below are the documented policy.
"""

from __future__ import annotations

from payscope_operator.api import postgres_spec, spec, status
from payscope_operator.audit import registry
from payscope_operator.audit.checks import per_object
from payscope_operator.audit.sources import payscope_api, postgres, redis
from payscope_operator.backends.payscope_api import model as api_model
from payscope_operator.backends.postgres import evidence as pg_evidence
from payscope_operator.backends.redis import evidence as redis_evidence

Severity = status.Severity
Grade = registry.Grade
Finding = registry.Finding
CHECKS = registry.Registry()

MAX_RETRIES = 20
"""More retries than this keeps a poisoned task cycling for hours: a warning."""
MAX_BACKOFF_CAP_S = 3600.0
"""The exponential backoff must be capped, at most at an hour between two attempts."""
MAX_TASK_TIME_LIMIT_S = 3600.0
"""A hard time limit above an hour lets a stuck task hold a worker slot too long: a warning."""

PIPELINE = "GET /admin/pipeline"
_ERRORS = "C/Ingestion/Error handling"
_DLQ = "C/Processing/Dead letter queue"


@CHECKS.check(
    "C.broker.reachable",
    fix="Make PayScope's Redis reachable from the operator: check the URL Secret in spec.redis.connection and"
    " the egress policy.",
    source=redis.BROKER,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="PayScope's Redis broker (spec.redis.connection) answers PING within the probe timeout.",
    passes_when="PING succeeds; an unreachable broker is Unknown with the reason.",
)
def broker_reachable(facts: redis_evidence.BrokerFacts, desired: spec.PayScopeSpec) -> Finding:
    version = facts.version or "of unknown version"
    return Finding.passed(f"Redis {version} at {facts.address} answers PING.", evidence=f"redis {facts.address}: PING")


@CHECKS.check(
    "C.dlq.depth",
    fix="Inspect and replay or discard the dead-lettered tasks, fix their cause, or raise"
    " spec.redis.maxDeadLetters on purpose.",
    source=redis.BROKER,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="The depth of the dead-letter queue spec.redis.deadLetterQueue (LLEN, ZCARD, XLEN or SCARD by type).",
    passes_when="The queue holds at most spec.redis.maxDeadLetters entries (an absent key is empty).",
    covers=(_DLQ, _ERRORS),
    applies=lambda s: s.redis is not None and s.redis.dead_letter_queue is not None,
)
def dlq_depth(facts: redis_evidence.BrokerFacts, desired: spec.PayScopeSpec) -> Finding:
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


@CHECKS.check(
    "C.worker.retries",
    fix="Set Celery's max_retries between 1 and 20 on PayScope's tasks.",
    source=payscope_api.PIPELINE,
    severity=Severity.HIGH,
    grade=Grade.REPORTED,
    title="The Celery retry count PayScope declares in GET /admin/pipeline (max_retries).",
    passes_when=f"1 <= max_retries <= {MAX_RETRIES} (above: Warn).",
    covers=("C/Processing/Celery task retries", "C/Processing/Max retries configured"),
)
def retries(p: api_model.Pipeline, desired: spec.PayScopeSpec) -> Finding:
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


@CHECKS.check(
    "C.worker.backoff",
    fix="Set retry_backoff=True and retry_backoff_max (at most 3600 s) on PayScope's tasks.",
    source=payscope_api.PIPELINE,
    severity=Severity.MEDIUM,
    grade=Grade.REPORTED,
    title="Whether retries back off exponentially, with a cap (retry_backoff, retry_backoff_max_s).",
    passes_when=f"retry_backoff is true and 0 < retry_backoff_max_s <= {MAX_BACKOFF_CAP_S:g}.",
    covers=("C/Processing/Exponential backoff",),
)
def backoff(p: api_model.Pipeline, desired: spec.PayScopeSpec) -> Finding:
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


@CHECKS.check(
    "C.worker.time_limits",
    fix="Set task_soft_time_limit below task_time_limit, both above 0 and at most an hour.",
    source=payscope_api.PIPELINE,
    severity=Severity.HIGH,
    grade=Grade.REPORTED,
    title="The Celery soft and hard task time limits (task_soft_time_limit_s, task_time_limit_s).",
    passes_when=f"0 < soft < hard; hard <= {MAX_TASK_TIME_LIMIT_S:g}s (above: Warn).",
    covers=("C/Processing/Task timeouts",),
)
def time_limits(p: api_model.Pipeline, desired: spec.PayScopeSpec) -> Finding:
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


@CHECKS.check(
    "C.worker.acks_late",
    fix="Set task_acks_late=True (with task_reject_on_worker_lost) so a dying worker's task is redelivered.",
    source=payscope_api.PIPELINE,
    severity=Severity.MEDIUM,
    grade=Grade.REPORTED,
    title="Whether tasks are acknowledged after they run (acks_late), so a dying worker's task is redelivered.",
    passes_when="acks_late is true.",
    covers=(_ERRORS,),
)
def acks_late(p: api_model.Pipeline, desired: spec.PayScopeSpec) -> Finding:
    where = f"{PIPELINE} → 200: acks_late={p.acks_late}"
    if p.acks_late is not True:
        return Finding.failed(
            "Tasks are acknowledged before they run (acks_late is not true): a task on a worker that dies is lost; "
            "set task_acks_late=True (with task_reject_on_worker_lost=True).",
            evidence=where,
        )
    return Finding.passed("Tasks are acknowledged only once done.", evidence=where)


@CHECKS.check(
    "C.worker.dead_letter_queue",
    fix="Route exhausted tasks to a dead-letter queue and name the same key in spec.redis.deadLetterQueue.",
    source=payscope_api.PIPELINE,
    severity=Severity.HIGH,
    grade=Grade.REPORTED,
    title="The dead-letter queue PayScope routes exhausted tasks to (dead_letter_queue).",
    passes_when="A queue is named; it is the key spec.redis.deadLetterQueue watches (otherwise Warn).",
    covers=(_DLQ, _ERRORS),
)
def dead_letter_queue(p: api_model.Pipeline, desired: spec.PayScopeSpec) -> Finding:
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


@CHECKS.check(
    "C.ingestion.file_validation",
    fix="Turn on file validation in the ingestion service (checksums, schema and size checks before import).",
    source=payscope_api.PIPELINE,
    severity=Severity.HIGH,
    grade=Grade.REPORTED,
    title="Whether the ingestion service validates uploaded files (ingestion.validates_files).",
    passes_when="ingestion.validates_files is true.",
    covers=("C/Ingestion/File validation",),
)
def file_validation(p: api_model.Pipeline, desired: spec.PayScopeSpec) -> Finding:
    where = f"{PIPELINE} → 200: ingestion.validates_files={p.validates_files}"
    if p.validates_files is not True:
        return Finding.failed(
            "The ingestion service does not validate uploaded files (ingestion.validates_files is not true): "
            "malformed files reach the pipeline; enable its format and size validation.",
            evidence=where,
        )
    return Finding.passed("The ingestion service validates uploaded files.", evidence=where)


@CHECKS.check(
    "C.ingestion.idempotency_key",
    fix="Create a UNIQUE index on exactly the idempotencyKey columns of the ingestion table.",
    source=postgres.CATALOG,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="Ingestion tables carry a unique idempotency key.",
    passes_when="A valid UNIQUE index or constraint covers exactly the idempotencyKey columns.",
    covers=("C/Ingestion/Idempotency guarantees", "C/Ingestion/Checksums or unique keys"),
    applies=lambda s: any(t.idempotency_key for t in postgres.tables(s)),
)
def idempotency_key(evidence: postgres.PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    def test(t: postgres_spec.PostgresTable, f: pg_evidence.TableFacts) -> str | None:
        if tuple(sorted(t.idempotency_key)) in f.unique_keys:
            return None
        return f"no UNIQUE constraint or index on exactly ({', '.join(t.idempotency_key)})"

    return per_object.tables(evidence, desired, lambda t: bool(t.idempotency_key), test, "idempotency keys")


NOT_OBSERVABLE: tuple[registry.NotObservable, ...] = (
    registry.NotObservable(
        "C/Persistence/Transaction boundaries",
        "Where a task opens and commits its transactions lives in PayScope's code; neither its API nor its "
        "database catalogs show it.",
    ),
    registry.NotObservable(
        "C/Persistence/Rollback on errors",
        "Whether a failing task rolls back its partial writes shows only when a task fails mid-way; the audit "
        "must not make tasks fail in a production installation.",
    ),
    registry.NotObservable(
        "C/Persistence/Batch processing",
        "How tasks batch their writes is an implementation choice with no externally visible contract.",
    ),
    registry.NotObservable(
        "C/Persistence/Order guarantees",
        "Processing order is a property of the task code and queue routing over time; a point-in-time probe "
        "cannot observe it without injecting ordered test data into a production pipeline.",
    ),
)
