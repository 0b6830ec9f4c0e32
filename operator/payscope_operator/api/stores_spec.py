"""The non-relational sections of the spec: ``neo4j``, ``pinecone``, ``objectStorage``, ``redis``.

Why this module exists: it is the contract for the graph, vector, object and broker
stores PayScope depends on: which objects the operator provisions (constraints,
indexes, Pinecone indexes, buckets) and what the audit expects of them. Names are
constrained by the ``fields`` patterns so that nothing from a spec can break out of a
Cypher label, an S3 call or a Pinecone URL.

What it must not do: create clients, call any store, or interpret drift; the backends
and the reconcile loop do that.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from payscope_operator.api import fields


class Neo4jCredentialsRef(fields.SpecModel):
    """A Secret holding Neo4j credentials, by default under the keys username and password."""

    name: fields.KubeName = Field(description="Name of the Secret, in the PayScopeDeployment's namespace.")
    username_key: fields.SecretKey = Field("username", description="Key holding the user name.")
    password_key: fields.SecretKey = Field("password", description="Key holding the password.")


class Neo4jConnection(fields.SpecModel):
    """How to reach Neo4j."""

    uri: fields.Neo4jUri = Field(description="bolt:// or neo4j:// URI (optionally +s or +ssc), without user info.")
    secret_ref: Neo4jCredentialsRef = Field(description="Secret with the user name and password.")


class ConstraintType(StrEnum):
    """Kind of a Neo4j node constraint (Exists and NodeKey need Neo4j Enterprise)."""

    UNIQUE = "Unique"
    EXISTS = "Exists"
    NODE_KEY = "NodeKey"


class IndexType(StrEnum):
    """Kind of a Neo4j node index."""

    RANGE = "Range"
    TEXT = "Text"


_Properties = Annotated[tuple[fields.Neo4jName, ...], fields.ListKeys()]


def _unique_entries(what: str) -> fields.Rule:
    return fields.Rule(
        "self.all(x, self.exists_one(y, y == x))",
        f"{what} must be unique",
        lambda items: all(items.count(item) == 1 for item in items),
    )


class Neo4jConstraint(fields.SpecModel):
    """A node constraint on one label."""

    rules = (
        fields.Rule(
            "!has(self.type) || self.type != 'Exists' || size(self.properties) == 1",
            "an Exists constraint takes exactly one property",
            lambda m: m.type != ConstraintType.EXISTS or len(m.properties) == 1,
            field_path=".properties",
        ),
    )

    label: fields.Neo4jName = Field(description="Node label.")
    properties: _Properties = Field(min_length=1, max_length=8, description="Property names, in order.")
    type: ConstraintType = Field(ConstraintType.UNIQUE, description="Unique, Exists or NodeKey.")
    adopt: fields.StrictBool = Field(
        False,
        description="An equivalent constraint that exists but was not created by this resource is taken over"
        " (this resource recorded on it as owner) instead of being left as found (Foreign). Never one that"
        " another live PayScopeDeployment owns.",
    )


class Neo4jIndex(fields.SpecModel):
    """A node index on one label."""

    rules = (
        fields.Rule(
            "!has(self.type) || self.type != 'Text' || size(self.properties) == 1",
            "a Text index takes exactly one property",
            lambda m: m.type != IndexType.TEXT or len(m.properties) == 1,
            field_path=".properties",
        ),
    )

    label: fields.Neo4jName = Field(description="Node label.")
    properties: _Properties = Field(min_length=1, max_length=8, description="Property names, in order.")
    type: IndexType = Field(IndexType.RANGE, description="Range or Text.")
    adopt: fields.StrictBool = Field(
        False,
        description="An equivalent index that exists but was not created by this resource is taken over"
        " (this resource recorded on it as owner) instead of being left as found (Foreign). Never one that"
        " another live PayScopeDeployment owns.",
    )


class Neo4j(fields.SpecModel):
    """PayScope's Neo4j graph."""

    connection: Neo4jConnection = Field(description="URI and credentials.")
    database: fields.Neo4jDatabase = Field("neo4j", description="Database holding PayScope's graph.")
    constraints: Annotated[tuple[Neo4jConstraint, ...], _unique_entries("constraints")] = Field(
        (), max_length=32, description="Constraints to provision and audit."
    )
    indexes: Annotated[tuple[Neo4jIndex, ...], _unique_entries("indexes")] = Field(
        (), max_length=32, description="Indexes to provision and audit."
    )


class Metric(StrEnum):
    """Similarity metric of a Pinecone index."""

    COSINE = "cosine"
    EUCLIDEAN = "euclidean"
    DOTPRODUCT = "dotproduct"


class Cloud(StrEnum):
    """Cloud of a Pinecone serverless index."""

    AWS = "aws"
    GCP = "gcp"
    AZURE = "azure"


class ServerlessSpec(fields.SpecModel):
    """Placement of a serverless Pinecone index."""

    cloud: Cloud = Field(description="aws, gcp or azure.")
    region: fields.Region = Field(description="Cloud region, e.g. us-east-1.")


class PodSpec(fields.SpecModel):
    """Sizing of a pod-based Pinecone index."""

    environment: fields.Region = Field(description="Pinecone environment, e.g. us-east1-gcp.")
    pod_type: str = Field(
        "p1.x1", pattern=r"^(s1|p1|p2)\.(x1|x2|x4|x8)$", max_length=5, description="Pod type, e.g. p1.x1."
    )
    pods: fields.StrictInt = Field(1, ge=1, le=100, description="Number of pods.")
    replicas: fields.StrictInt = Field(1, ge=1, le=20, description="Replicas per shard.")
    shards: fields.StrictInt = Field(1, ge=1, le=20, description="Number of shards.")


TAG_KEY_PATTERN = r"^[A-Za-z0-9_-]{1,80}$"
_Tags = Annotated[
    dict[str, Annotated[str, Field(max_length=120)]],
    fields.Rule(
        f"self.all(k, k.matches('{TAG_KEY_PATTERN}'))",
        "tag keys are 1-80 letters, digits, '_' or '-'",
        lambda tags: all(re.fullmatch(TAG_KEY_PATTERN, key) for key in tags),
    ),
]


class PineconeIndex(fields.SpecModel):
    """A Pinecone index: exactly one of serverless or pod."""

    rules = (
        fields.Rule(
            "has(self.serverless) != has(self.pod)",
            "exactly one of serverless or pod must be set",
            lambda m: (m.serverless is None) != (m.pod is None),
            field_path=".serverless",
        ),
    )

    name: fields.PineconeIndexName = Field(description="Index name: 1-45 lower-case letters, digits or '-'.")
    dimension: fields.StrictInt = Field(ge=1, le=20000, description="Vector dimension (1-20000).")
    metric: Metric = Field(Metric.COSINE, description="cosine, euclidean or dotproduct.")
    serverless: ServerlessSpec | None = Field(None, description="Serverless placement; exclusive with pod.")
    pod: PodSpec | None = Field(None, description="Pod-based sizing; exclusive with serverless.")
    deletion_protection: fields.StrictBool = Field(False, description="Pinecone deletion protection is enabled.")
    tags: _Tags = Field(default_factory=dict, max_length=20, description="Index tags (values up to 120 characters).")
    adopt: fields.StrictBool = Field(
        False,
        description="An index of this name that exists but was not created by this resource is taken over"
        " (this resource recorded on it as owner) instead of being left as found (Foreign). Never one that"
        " another live PayScopeDeployment owns.",
    )


class Pinecone(fields.SpecModel):
    """PayScope's Pinecone project."""

    api_key_secret_ref: fields.SecretKeyRef = Field(description="Secret key holding the Pinecone API key.")
    controller_url: fields.HttpUrl = Field(
        "https://api.pinecone.io", description="Control-plane URL of the Pinecone API."
    )
    indexes: Annotated[tuple[PineconeIndex, ...], fields.ListKeys(("name",))] = Field(
        (), max_length=20, description="Indexes to provision and audit, unique by name."
    )


class Encryption(StrEnum):
    """Default server-side encryption of a bucket."""

    AES256 = "AES256"
    KMS = "aws:kms"


class S3CredentialsRef(fields.SpecModel):
    """A Secret holding S3 credentials, by default under the keys accessKeyId and secretAccessKey."""

    name: fields.KubeName = Field(description="Name of the Secret, in the PayScopeDeployment's namespace.")
    access_key_id_key: fields.SecretKey = Field("accessKeyId", description="Key holding the access key id.")
    secret_access_key_key: fields.SecretKey = Field("secretAccessKey", description="Key holding the secret access key.")


_Days = Annotated[fields.StrictInt, Field(ge=1, le=36500)]


class Lifecycle(fields.SpecModel):
    """Lifecycle expiration rules of a bucket; each absent field is neither provisioned nor audited."""

    noncurrent_version_expiration_days: _Days | None = Field(
        None, description="Delete noncurrent object versions after this many days."
    )
    expiration_days: _Days | None = Field(None, description="Expire current objects after this many days.")
    abort_incomplete_multipart_upload_days: _Days | None = Field(
        None, description="Abort incomplete multipart uploads after this many days."
    )


class Bucket(fields.SpecModel):
    """An S3 bucket; each absent setting is left as it is and not audited."""

    rules = (
        fields.Rule(
            "!has(self.kmsKeyId) || (has(self.encryption) && self.encryption == 'aws:kms')",
            "kmsKeyId requires encryption aws:kms",
            lambda m: m.kms_key_id is None or m.encryption == Encryption.KMS,
            field_path=".kmsKeyId",
        ),
    )

    name: fields.BucketName = Field(description="Bucket name (S3 naming rules).")
    versioning: fields.StrictBool | None = Field(None, description="Versioning is enabled (true) or suspended.")
    encryption: Encryption | None = Field(None, description="Default encryption: AES256 or aws:kms.")
    kms_key_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9:/_.-]+$", max_length=2048, description="KMS key id or ARN for aws:kms."
    )
    block_public_access: fields.StrictBool | None = Field(
        None, description="All four public access blocks are on (true)."
    )
    lifecycle: Lifecycle | None = Field(None, description="Lifecycle rules.")
    adopt: fields.StrictBool = Field(
        False,
        description="A bucket of this name that exists but was not created by this resource is taken over"
        " (this resource recorded on it as owner) instead of being left as found (Foreign). Never one that"
        " another live PayScopeDeployment owns.",
    )


class ObjectStorage(fields.SpecModel):
    """PayScope's S3-compatible object storage (AWS S3, MinIO, SeaweedFS)."""

    endpoint: fields.HttpUrl | None = Field(None, description="S3 endpoint URL; absent: AWS S3.")
    region: fields.Region = Field("us-east-1", description="Region for request signing and bucket creation.")
    force_path_style: fields.StrictBool = Field(
        False, description="Use path-style addressing (most S3-compatible servers need it)."
    )
    credentials_secret_ref: S3CredentialsRef | None = Field(
        None,
        description="Secret with the S3 credentials. Absent: the resource is Stalled (CredentialsRequired) unless"
        " the operator runs with --allow-ambient-credentials, when it acts with the operator's own cloud identity.",
    )
    buckets: Annotated[tuple[Bucket, ...], fields.ListKeys(("name",))] = Field(
        (), max_length=100, description="Buckets to provision and audit, unique by name."
    )


class RedisConnection(fields.SpecModel):
    """Where to connect: a Secret key holding a redis:// or rediss:// URL."""

    secret_ref: fields.SecretKeyRef = Field(description="Secret key whose value is a redis:// or rediss:// URL.")


class Redis(fields.SpecModel):
    """PayScope's Redis (Celery broker)."""

    connection: RedisConnection = Field(description="Connection to the broker.")
    dead_letter_queue: fields.RedisKey | None = Field(
        None, description="Name of the dead-letter queue (a Redis list); absent: a DLQ is not audited."
    )
    max_dead_letters: fields.StrictInt = Field(
        0, ge=0, le=1_000_000_000, description="Dead-letter queue depth above which the pipeline check fails."
    )
