"""Healthy observations of the stores, as their backends report them, shared by the pure table tests.

Why it exists: the plan tests, the evidence tests and the audit's table tests all start
from an index or a bucket that is as declared and change one thing; writing that
healthy default once keeps them describing the same object.

What it must not do: talk to a server, or hold anything but the healthy default.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from payscope_operator.backends import ownership, pinecone, s3

BUCKET = "payscope-ingest"
INDEX = "payscope-rag"
OWNER = ownership.Owner("6f6f6f6f-0000-4000-8000-00000000eeee", "payscope", "prod")
"""The resource the healthy objects belong to (their tags record it)."""
MANAGED = pinecone.model.owner_tags(OWNER)
OUR_RULES = (
    "payscope-noncurrent-version-expiration",
    "payscope-expiration",
    "payscope-abort-incomplete-multipart-upload",
)


def pinecone_index(**changes: Any) -> pinecone.model.ObservedIndex:
    """A ready serverless index :data:`OWNER` created (1536, cosine, deletion protection on)."""
    index = pinecone.model.ObservedIndex(
        name=INDEX,
        dimension=1536,
        metric="cosine",
        vector_type="dense",
        cloud="aws",
        region="us-east-1",
        pod=None,
        deletion_protection=True,
        tags=MANAGED,
        ready=True,
        state="Ready",
        host="payscope-rag-abc123.svc.pinecone.io",
    )
    return dataclasses.replace(index, **changes)


def bucket_facts(**changes: Any) -> s3.evidence.BucketFacts:
    """The audit's facts of a bucket provisioned as declared: versioned, encrypted, private, with our rules."""
    facts = s3.evidence.BucketFacts(
        name=BUCKET,
        exists=True,
        owned_by_another_account=False,
        managed=True,
        versioning="Enabled",
        encryption="AES256",
        denies_anonymous=True,
        allows_anonymous=False,
        denies_insecure_transport=False,
        public_access_block=s3.evidence.BlockState.ON,
        lifecycle_rule_ids=OUR_RULES,
        noncurrent_version_expiration=True,
        abort_incomplete_multipart_upload=True,
        not_implemented=(),
    )
    return dataclasses.replace(facts, **changes)
