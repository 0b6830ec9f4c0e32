"""What the Pinecone provisioner observes and may do: indexes, their layout and stats, actions.

Why this module exists: the planner (``plan``), the provisioner (``provisioner``) and the
audit's vector checks share these types. ``ObservedVectors`` is one ``GET /indexes``;
``IndexStats`` is one index's ``describe_index_stats``.

What it must not do: hold logic beyond reading and writing tags, talk to Pinecone, or import
``plan``, ``provisioner`` or httpx.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from payscope_operator.api import stores_spec
from payscope_operator.backends import base, ownership

SYSTEM = "pinecone"
KIND = "PineconeIndex"
OWNER_UID_TAG = "payscope-owner-uid"
OWNER_TAG = "payscope-owner"
"""Index tags holding the owning resource's uid and ``namespace;name`` (Pinecone tag values allow no '/')."""
RESERVED_TAGS = frozenset({base.MANAGED_TAG_KEY, OWNER_UID_TAG, OWNER_TAG})


def owner_tags(owner: ownership.Owner) -> dict[str, str]:
    """The tags recording ``owner`` on an index."""
    return {
        base.MANAGED_TAG_KEY: base.MANAGED_TAG_VALUE,
        OWNER_UID_TAG: owner.uid,
        OWNER_TAG: f"{owner.namespace};{owner.name}",
    }


# ---- what observe returns and what the audit reads ------------------------------------------


@dataclass(frozen=True)
class PodLayout:
    """Sizing of a pod-based index (``pods`` is derived by Pinecone: replicas x shards)."""

    environment: str
    pod_type: str
    replicas: int
    shards: int


@dataclass(frozen=True)
class ObservedIndex:
    """One index as the control plane describes it."""

    name: str
    dimension: int | None
    metric: str
    vector_type: str
    cloud: str | None  # serverless placement; None for pod-based indexes
    region: str | None
    pod: PodLayout | None
    deletion_protection: bool
    tags: Mapping[str, str]
    ready: bool
    state: str
    host: str

    @property
    def managed(self) -> bool:
        """Created by this operator (carries ``managed-by: payscope-operator``)."""
        return self.tags.get(base.MANAGED_TAG_KEY) == base.MANAGED_TAG_VALUE

    @property
    def mark(self) -> ownership.Mark:
        """The owning resource its tags record; managed-by alone is an earlier operator's mark."""
        recorded = self.tags.get(OWNER_TAG, "")
        return ownership.Mark(
            self.tags.get(OWNER_UID_TAG) or None, recorded.replace(";", "/", 1) or None, legacy=self.managed
        )


@dataclass(frozen=True)
class ObservedVectors:
    """Every index of the project, by name (one ``GET /indexes``)."""

    indexes: Mapping[str, ObservedIndex]


@dataclass(frozen=True)
class IndexStats:
    """``describe_index_stats`` of one index: vector counts per namespace ("" is the default)."""

    namespaces: Mapping[str, int]
    dimension: int | None
    total_vector_count: int


# ---- actions -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CreateIndex(base.Action):
    """``POST /indexes`` for a declared index that does not exist."""

    index: stores_spec.PineconeIndex


@dataclass(frozen=True, kw_only=True)
class ConfigureIndex(base.Action):
    """``PATCH /indexes/{name}``: only the fields that differ are set."""

    deletion_protection: bool | None = None
    tags: tuple[tuple[str, str], ...] = ()  # declared tags to set (Pinecone merges them)
    replicas: int | None = None
    pod_type: str | None = None
