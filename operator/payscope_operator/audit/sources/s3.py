"""Evidence from object storage: each declared bucket's settings, and an anonymous listing of it.

Why this module exists: the B checks judge buckets (existence, versioning,
encryption, public access, lifecycle), and A the endpoint's reachability. Each
bucket's facts are reduced (``backends.s3.evidence``) from what the pass's
provisioning observed (``context.Observations``: one read per pass, shared); when the
spec names an endpoint, the source adds an anonymous listing of each existing bucket:
a public bucket shows in fact, not only in policy.

What it must not do: change a bucket, read an object, or judge the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from payscope_operator.api import fields
from payscope_operator.audit import context, registry
from payscope_operator.backends.s3 import client as s3_client
from payscope_operator.backends.s3 import evidence as s3_evidence
from payscope_operator.backends.s3 import model as s3_model


@dataclass(frozen=True)
class BucketEvidence:
    endpoint: str
    facts: dict[str, s3_evidence.BucketFacts]
    anonymous_status: dict[str, int]  # HTTP status of an unauthenticated listing, per bucket


async def _gather(run: context.Session) -> BucketEvidence:
    section = run.spec.object_storage
    assert section is not None  # the source is configured only when spec.objectStorage is set
    observed = await context.observed(run, s3_model.SYSTEM, s3_model.ObservedStorage)
    facts = {bucket.name: s3_evidence.facts_of(bucket) for bucket in observed.buckets}
    anonymous: dict[str, int] = {}
    if section.endpoint is not None:
        timeout = fields.parse_duration(run.spec.audit.probe_timeout).total_seconds()
        existing = [name for name, found in facts.items() if found.exists]
        async with run.stores.anonymous_http("spec.objectStorage.endpoint", timeout) as http:
            anonymous = await s3_client.anonymous_status(http, section.endpoint, existing)
    return BucketEvidence(section.endpoint or "AWS S3", facts, anonymous)


BUCKETS = registry.Source[BucketEvidence](
    name="s3.buckets",
    gather=_gather,
    configured=lambda s: s.object_storage is not None,
    absent="spec.objectStorage is absent.",
)
