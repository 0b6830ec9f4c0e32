"""Evidence from PayScope's Celery workers themselves, over the broker, and from their dead-letter queue.

Why this module exists: the C checks must judge the settings the running workers
use, not PayScope's account of them in ``/admin/pipeline``. One gathering per
pass asks every worker on the broker (``spec.redis.connection``) through Celery's
remote control (``backends.redis.remote_control``: ``conf``, ``stats``,
``active_queues``, ``registered``) and counts the dead-letter queue
``spec.redis.deadLetterQueue``, so the depth check can tell an empty queue from
one no worker declares. A broker that cannot be reached fails the source; a
remote-control exchange that fails only empties :data:`FLEET` (its checks turn
Unknown, saying why) and leaves the depth standing.

What it must not do: send a command that changes a worker, read or pop a queued
message (only its count), keep the broker URL in evidence, or judge anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from payscope_operator.api import fields, spec
from payscope_operator.audit import context, registry
from payscope_operator.backends.redis import client as redis_client
from payscope_operator.backends.redis import evidence as redis_evidence
from payscope_operator.backends.redis import workers

REPLY_WINDOW_S = 2.0
"""Longest wait for the workers' replies; the exchange ends as soon as every listening worker answered."""


@dataclass(frozen=True)
class CeleryEvidence:
    """The broker's round of commands (with the dead-letter depth), and the workers, or why they are unknown."""

    broker: redis_evidence.BrokerFacts
    fleet: workers.Fleet | None
    problem: str | None = None

    @property
    def declared_queues(self) -> frozenset[str]:
        """Every queue any answering worker declares or consumes."""
        found = self.fleet.workers if self.fleet is not None else ()
        return frozenset(q for w in found for q in (*w.declared_queues, *w.consumed_queues))


def window(desired: spec.PayScopeSpec) -> float:
    """The reply window: within the probe timeout, leaving room for the broker's own round of commands."""
    timeout = fields.parse_duration(desired.audit.probe_timeout).total_seconds()
    return max(0.2, min(REPLY_WINDOW_S, timeout / 2))


async def _gather(run: context.Session) -> CeleryEvidence:
    section = run.spec.redis
    assert section is not None  # the source is configured only when spec.redis is set
    ref = section.connection.secret_ref
    url = context.reveal(run, ref.name, ref.key, "spec.redis.connection.secretRef")
    timeout = fields.parse_duration(run.spec.audit.probe_timeout).total_seconds()
    client: redis_client.Client = await run.stores.redis(timeout)  # checked against the egress policy
    address = redis_client.address_of(url)
    broker = await redis_evidence.observe_depth(client, address, section.dead_letter_queue)  # PING: redis.broker
    fleet, problem = await workers.ask(client, address, window(run.spec))
    return CeleryEvidence(broker, fleet, problem)


WORKERS = registry.Source[CeleryEvidence](
    name="celery.workers",
    gather=_gather,
    configured=lambda s: s.redis is not None,
    absent="spec.redis is not set: PayScope's Celery workers and dead-letter queue are not audited.",
)


def _fleet(evidence: CeleryEvidence) -> workers.Fleet | registry.Finding:
    if evidence.fleet is None:
        return registry.Finding.unknown(f"The workers could not be asked: {evidence.problem}.")
    if not evidence.fleet.workers:
        return registry.Finding.unknown(
            f"No Celery worker answered over the broker at {evidence.broker.address} "
            f"({evidence.fleet.listening} listening): their settings cannot be read."
        )
    return evidence.fleet


FLEET: registry.Part[workers.Fleet] = WORKERS.part(_fleet)
"""The workers that answered the remote control, or Unknown when none did."""
