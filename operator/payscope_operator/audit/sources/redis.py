"""Evidence from PayScope's Redis broker: PING, INFO and the dead-letter queue's depth.

Why this module exists: the C checks judge whether the Celery broker answers and
whether failed tasks pile up in the dead-letter queue. One round of read-only
commands per pass, over a client kept per resource and rebuilt only when the URL
or the timeout changes.

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
    return await redis_evidence.observe(client, redis_client.address_of(url), redis.dead_letter_queue)


BROKER = registry.Source[redis_evidence.BrokerFacts](
    name="redis.broker",
    gather=_gather,
    configured=lambda s: s.redis is not None,
    absent="spec.redis is not set: the broker and its dead-letter queue are not audited.",
)
