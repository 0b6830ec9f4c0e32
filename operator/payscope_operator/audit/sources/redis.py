"""Evidence from PayScope's Redis broker: does it answer PING, and which version it runs.

Why this module exists: C.broker.reachable judges whether the Celery broker
answers, on a source of its own so that nothing else can hold it up. One round
of read-only commands per pass, over a client kept per resource and rebuilt
only when the URL or the timeout changes (the dead-letter queue's depth is read
with the workers' own account of their queues, ``sources.celery``).

What it must not do: read, pop or write a queued message, or judge the evidence.
"""

from __future__ import annotations

from payscope_operator.api import fields
from payscope_operator.audit import context, registry
from payscope_operator.backends.redis import client as redis_client
from payscope_operator.backends.redis import evidence as redis_evidence


async def _gather(run: context.Session) -> redis_evidence.BrokerFacts:
    redis = run.spec.redis
    assert redis is not None  # the source is configured only when spec.redis is set
    ref = redis.connection.secret_ref
    url = context.reveal(run, ref.name, ref.key, "spec.redis.connection.secretRef")
    timeout = fields.parse_duration(run.spec.audit.probe_timeout).total_seconds()
    client: redis_client.Client = await run.stores.redis(timeout)  # checked against the egress policy
    return await redis_evidence.observe(client, redis_client.address_of(url), None)


BROKER = registry.Source[redis_evidence.BrokerFacts](
    name="redis.broker",
    gather=_gather,
    configured=lambda s: s.redis is not None,
    absent="spec.redis is not set: PayScope's broker is not audited.",
)
