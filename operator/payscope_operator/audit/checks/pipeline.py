"""Dimension C, as seen through Redis and the running Celery workers: broker, dead letters, worker settings.

Why this module exists: PayScope's ingestion and processing run as Celery tasks
over Redis. A task that fails must be retried with exponential backoff, bounded
in time, acknowledged only once done, and parked in a dead-letter queue when
it gives up, and that queue must not silently fill up. Evidence: the broker's
PING (``redis.broker``); the workers themselves, asked over the broker with
Celery's remote control, and the dead-letter queue's depth (``celery.workers``,
Observed); the ingestion tables' unique keys in the Postgres catalogs
(``postgres.catalog``); and, for file validation only, PayScope's own account in
``GET /admin/pipeline`` (Reported: the ingestion service exposes nothing better).

What it must not do: read or pop queued messages, or do I/O in an evaluate
function. The bounds below are the documented policy.
"""

from __future__ import annotations

from collections.abc import Callable

from payscope_operator.api import postgres_spec, spec, status
from payscope_operator.audit import registry
from payscope_operator.audit.checks import per_object
from payscope_operator.audit.sources import celery, payscope_api, postgres, redis
from payscope_operator.backends.payscope_api import model as api_model
from payscope_operator.backends.postgres import evidence as pg_evidence
from payscope_operator.backends.redis import evidence as redis_evidence
from payscope_operator.backends.redis import workers

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

MAX_SHOWN = 6
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
    fix="Inspect and replay or discard the dead-lettered tasks and fix their cause; declare the dead-letter"
    " queue in the workers' task_queues so an empty one is known to be in use.",
    source=celery.WORKERS,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="The depth of the dead-letter queue spec.redis.deadLetterQueue (LLEN, ZCARD, XLEN or SCARD by type).",
    passes_when="The queue holds at most spec.redis.maxDeadLetters entries. An absent key is an empty queue only "
    "when a worker declares the queue (no worker declaring it: Unknown; the workers unknown: Warn).",
    covers=(_DLQ, _ERRORS),
    applies=lambda s: s.redis is not None and s.redis.dead_letter_queue is not None,
)
def dlq_depth(evidence: celery.CeleryEvidence, desired: spec.PayScopeSpec) -> Finding:
    facts = evidence.broker
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
    counted = f"{command} {queue.key} = {queue.depth}" if command else f"TYPE {queue.key} = none (no key)"
    where = f"redis {facts.address}: {counted}"
    if queue.depth > limit:
        return Finding.failed(
            f"The dead-letter queue {queue.key} holds {queue.depth} failed tasks (spec.redis.maxDeadLetters is "
            f"{limit}): find why they failed, fix the cause, then replay or purge them.",
            evidence=where,
        )
    if command is None and evidence.fleet is None:
        return Finding.warned(
            f"Key {queue.key} does not exist, which Redis shows for an empty list, but whether any worker routes "
            f"failed tasks there could not be asked ({evidence.problem}).",
            evidence=where,
        )
    if command is None and queue.key not in evidence.declared_queues:
        return Finding.unknown(
            f"Key {queue.key} does not exist and no worker declares a queue by that name: nothing is parked there, "
            "or spec.redis.deadLetterQueue names the wrong key; an absent queue proves nothing.",
            evidence=where,
        )
    return Finding.passed(f"The dead-letter queue {queue.key} holds {queue.depth} (limit {limit}).", evidence=where)


def _per_task(
    fleet: workers.Fleet, problem: Callable[[workers.Worker, workers.Task], str | None], what: str
) -> Finding:
    """Fail naming every PayScope task (on any worker) with a ``problem``; Unknown when no worker registers one."""
    tasks = fleet.tasks
    hosts = ", ".join(w.hostname for w in fleet.workers)
    if not tasks:
        return Finding.unknown(f"The workers ({hosts}) register no PayScope task, so there is no {what} to judge.")
    failing = sorted({f"{t.name}: {p}" for w, t in tasks if (p := problem(w, t)) is not None})
    where = f"celery inspect registered/conf → {len(fleet.workers)} worker(s) ({hosts}), {len(tasks)} task(s)"
    if failing:
        return Finding.failed(f"Fix the {what} of: " + "; ".join(failing[:MAX_SHOWN]), evidence=where)
    names = sorted({t.name for _, t in tasks})
    return Finding.passed(f"The {what} of {', '.join(names)} holds on every worker.", evidence=where)


def _retries(w: workers.Worker, t: workers.Task) -> str | None:
    n = t.max_retries
    if n is None or n < 1:
        return f"max_retries={n}: a transient failure loses the task; retry at least once"
    if n > MAX_RETRIES:
        return f"max_retries={n:g} (> {MAX_RETRIES}): a poisoned task cycles for hours before it is parked"
    return None


@CHECKS.check(
    "C.worker.retries",
    fix="Set max_retries between 1 and 20 on every PayScope task the workers register.",
    source=celery.FLEET,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="max_retries of every PayScope task each running worker registered (celery inspect registered).",
    passes_when=f"1 <= max_retries <= {MAX_RETRIES} for every task on every worker that answered.",
    covers=("C/Processing/Celery task retries", "C/Processing/Max retries configured"),
)
def retries(fleet: workers.Fleet, desired: spec.PayScopeSpec) -> Finding:
    return _per_task(fleet, _retries, "retries")


def _backoff(w: workers.Worker, t: workers.Task) -> str | None:
    if t.retry_backoff is not True:
        return f"retry_backoff={t.retry_backoff}: retries hammer a failing dependency at once"
    cap = t.retry_backoff_max
    if cap is None or not 0 < cap <= MAX_BACKOFF_CAP_S:
        return f"retry_backoff_max={cap} is not in (0, {MAX_BACKOFF_CAP_S:g}] s"
    return None


@CHECKS.check(
    "C.worker.backoff",
    fix="Set retry_backoff=True and retry_backoff_max (at most 3600 s) on every PayScope task.",
    source=celery.FLEET,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="retry_backoff and retry_backoff_max of every PayScope task each running worker registered.",
    passes_when=f"retry_backoff is true and 0 < retry_backoff_max <= {MAX_BACKOFF_CAP_S:g} for every task.",
    covers=("C/Processing/Exponential backoff",),
)
def backoff(fleet: workers.Fleet, desired: spec.PayScopeSpec) -> Finding:
    return _per_task(fleet, _backoff, "retry backoff")


def _time_limits(w: workers.Worker, t: workers.Task) -> str | None:
    soft = t.soft_time_limit if t.soft_time_limit is not None else w.soft_time_limit
    hard = t.time_limit if t.time_limit is not None else w.time_limit
    if soft is None or hard is None or not 0 < soft < hard:
        return f"soft {soft} and hard {hard} time limits on {w.hostname}: set 0 < soft < hard"
    if hard > MAX_TASK_TIME_LIMIT_S:
        return f"hard time limit {hard:g}s (> {MAX_TASK_TIME_LIMIT_S:g}s) holds a worker slot too long"
    return None


@CHECKS.check(
    "C.worker.time_limits",
    fix="Set task_soft_time_limit below task_time_limit (both above 0, at most an hour) on the workers or on"
    " each task.",
    source=celery.FLEET,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="The soft and hard time limit of every PayScope task: its own, else its worker's task_soft_time_limit "
    "and task_time_limit (celery inspect registered, conf).",
    passes_when=f"0 < soft < hard <= {MAX_TASK_TIME_LIMIT_S:g}s for every task on every worker.",
    covers=("C/Processing/Task timeouts",),
)
def time_limits(fleet: workers.Fleet, desired: spec.PayScopeSpec) -> Finding:
    return _per_task(fleet, _time_limits, "time limits")


def _acks_late(w: workers.Worker, t: workers.Task) -> str | None:
    acks = t.acks_late if t.acks_late is not None else w.acks_late
    return None if acks is True else f"acks_late={acks} on {w.hostname}: a task on a dying worker is lost"


@CHECKS.check(
    "C.worker.acks_late",
    fix="Set task_acks_late=True (with task_reject_on_worker_lost) so a dying worker's task is redelivered.",
    source=celery.FLEET,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="Whether every PayScope task is acknowledged only once it ran (acks_late), on every running worker.",
    passes_when="acks_late is true for every task (the task's own, else the worker's task_acks_late).",
    covers=(_ERRORS,),
)
def acks_late(fleet: workers.Fleet, desired: spec.PayScopeSpec) -> Finding:
    return _per_task(fleet, _acks_late, "acknowledgement")


@CHECKS.check(
    "C.worker.dead_letter_queue",
    fix="Declare the dead-letter queue (the key spec.redis.deadLetterQueue names) in every worker's"
    " task_queues and route exhausted tasks to it.",
    source=celery.FLEET,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="Whether the running workers declare the dead-letter queue spec.redis.deadLetterQueue among their "
    "queues (celery inspect conf task_queues, active_queues).",
    passes_when="Every worker that answered declares (or consumes) a queue of that name.",
    covers=(_DLQ, _ERRORS),
    applies=lambda s: s.redis is not None and s.redis.dead_letter_queue is not None,
)
def dead_letter_queue(fleet: workers.Fleet, desired: spec.PayScopeSpec) -> Finding:
    name = desired.redis.dead_letter_queue if desired.redis else None
    where = "; ".join(f"{w.hostname}: {', '.join(w.declared_queues) or 'no task_queues'}" for w in fleet.workers)
    lacking = [w.hostname for w in fleet.workers if name not in (*w.declared_queues, *w.consumed_queues)]
    if lacking:
        return Finding.failed(
            f"{', '.join(lacking)} declare no queue {name!r}: tasks that exhaust their retries have nowhere to go; "
            "declare the dead-letter queue in task_queues and route exhausted tasks to it.",
            evidence=where,
        )
    return Finding.passed(f"Every worker declares the dead-letter queue {name!r}.", evidence=where)


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
    source=postgres.TABLES,
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
