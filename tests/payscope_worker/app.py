"""PayScope's Celery worker in miniature: one ingestion task, the settings the audit judges, switchable faults.

Why it exists: the C checks ask running workers for their settings over the
broker (Celery's remote control); their tests need a real Celery worker on the
test Redis whose settings a test chooses, healthy by default and broken one
fault at a time. The broker URL and the faults come from the environment
(``PAYSCOPE_WORKER_BROKER``, ``PAYSCOPE_WORKER_FAULTS``: a JSON array of names),
read when ``celery -A tests.payscope_worker.app worker`` imports this module.

The faults (each breaks one setting):
  no_retries       the task's max_retries is 0
  no_backoff       the task's retry_backoff is false
  no_time_limit    no soft and no hard time limit, neither the task's nor the worker's
  no_acks_late     tasks are acknowledged before they run (task_acks_late false)
  no_dlq           the dead-letter queue is not declared among the worker's queues

What it must not do: run anything but the worker (no task is ever sent to it by
the tests), or read settings from anywhere but the environment.
"""

from __future__ import annotations

import json
import os

from celery import Celery
from kombu import Queue  # type: ignore[attr-defined]

FAULTS = frozenset({"no_retries", "no_backoff", "no_time_limit", "no_acks_late", "no_dlq"})
DEAD_LETTER_QUEUE = os.environ.get("PAYSCOPE_WORKER_DLQ", "dlq")
TASK_QUEUE = "celery"


def _faults() -> frozenset[str]:
    active = frozenset(json.loads(os.environ.get("PAYSCOPE_WORKER_FAULTS", "[]")))
    unknown = active - FAULTS
    if unknown:
        raise ValueError(f"unknown worker faults: {sorted(unknown)}")
    return active


faults = _faults()
app = Celery("payscope", broker=os.environ.get("PAYSCOPE_WORKER_BROKER", "redis://127.0.0.1:6379/0"))
queues = [Queue(TASK_QUEUE)] + ([] if "no_dlq" in faults else [Queue(DEAD_LETTER_QUEUE)])  # type: ignore[no-untyped-call]
app.conf.update(
    task_queues=queues,
    task_default_queue=TASK_QUEUE,
    task_acks_late="no_acks_late" not in faults,
    task_reject_on_worker_lost=True,
    task_time_limit=None if "no_time_limit" in faults else 300,
    task_soft_time_limit=None if "no_time_limit" in faults else 270,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
)


@app.task(  # type: ignore[untyped-decorator]
    name="payscope.ingest_file",
    bind=True,
    max_retries=0 if "no_retries" in faults else 5,
    retry_backoff="no_backoff" not in faults,
    retry_backoff_max=600,
)
def ingest_file(self: object, key: str) -> str:
    """Stands for PayScope's ingestion task; the tests never send it."""
    return key
