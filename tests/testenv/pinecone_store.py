"""State of one Pinecone emulator process: indexes, their transitions, faults, request counts.

Why this module exists: every route shares the same indexes, their timed state changes
(``Initializing`` to ``Ready``, scaling, ``Terminating``), the injected faults and the
request counter; keeping them here leaves the routes request-in, response-out. With
``Settings.state_file`` the indexes are rewritten to a JSON file after every change, so a
restarted emulator still has them.

What it must not do: validate request bodies, build HTTP responses or register routes
(``pinecone_api`` and ``pinecone_app`` do), or talk to the network.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from aiohttp import web

from tests.testenv import pinecone_models, process

# ---- state -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    api_key: str
    port: int
    ready_after: float = 0.5
    terminate_after: float = 0.0
    state_file: Path | None = None


@dataclass
class IndexRecord:
    """One index and its pending state transition (``settles_at`` 0 means none)."""

    name: str
    metric: str
    vector_type: str
    dimension: int | None
    deletion_protection: str
    tags: dict[str, str]
    spec: pinecone_models.IndexSpecModel
    host_id: str
    state: str
    next_state: str | None = None  # reached at settles_at; None then means the index is gone
    settles_at: float = 0.0
    embed: pinecone_models.EmbedModel | None = None
    namespaces: dict[str, int] = field(default_factory=dict)
    vector_ids: dict[str, set[str]] = field(default_factory=dict)  # upserted ids per namespace (not persisted)

    def transition(self, state: str, then: str | None, after: float) -> None:
        self.state = state
        self.next_state = then
        self.settles_at = time.time() + after

    def model(self, base_url: str) -> pinecone_models.IndexModel:
        out: pinecone_models.IndexModel = {
            "name": self.name,
            "metric": self.metric,
            "host": f"{base_url}/_data/{self.host_id}",
            "spec": self.spec,
            "status": {"ready": self.state not in pinecone_models.NOT_READY_STATES, "state": self.state},
            "vector_type": self.vector_type,
            "deletion_protection": self.deletion_protection,
        }
        if self.dimension is not None:
            out["dimension"] = self.dimension
        if self.tags:
            out["tags"] = dict(self.tags)
        if self.embed is not None:
            out["embed"] = self.embed
        return out

    def stats(self) -> pinecone_models.DescribeIndexStatsResponse:
        out: pinecone_models.DescribeIndexStatsResponse = {
            "namespaces": {ns: {"vectorCount": n} for ns, n in self.namespaces.items()},
            "indexFullness": 0.0,
            "totalVectorCount": sum(self.namespaces.values()),
            "metric": self.metric,
            "vectorType": self.vector_type,
        }
        if self.dimension is not None:
            out["dimension"] = self.dimension
        return out

    def stored(self) -> pinecone_models.StoredIndex:
        return {
            "name": self.name,
            "metric": self.metric,
            "vector_type": self.vector_type,
            "dimension": self.dimension,
            "deletion_protection": self.deletion_protection,
            "tags": self.tags,
            "spec": self.spec,
            "embed": self.embed,
            "host_id": self.host_id,
            "state": self.state,
            "next_state": self.next_state,
            "settles_at": self.settles_at,
            "namespaces": self.namespaces,
        }

    @classmethod
    def from_stored(cls, s: pinecone_models.StoredIndex) -> IndexRecord:
        return cls(
            name=s["name"],
            metric=s["metric"],
            vector_type=s["vector_type"],
            dimension=s["dimension"],
            deletion_protection=s["deletion_protection"],
            tags=s["tags"],
            spec=s["spec"],
            embed=s["embed"],
            host_id=s["host_id"],
            state=s["state"],
            next_state=s["next_state"],
            settles_at=s["settles_at"],
            namespaces=s["namespaces"],
        )


@dataclass
class Fault:
    """The next ``remaining`` matching API requests are answered with an error."""

    remaining: int
    status: int
    code: str
    retry_after: float | None = None
    methods: frozenset[str] = frozenset()
    path_prefix: str = ""

    def matches(self, request: web.Request) -> bool:
        return (
            self.remaining > 0
            and (not self.methods or request.method in self.methods)
            and request.path.startswith(self.path_prefix)
        )

    def view(self) -> pinecone_models.FaultView:
        return {
            "remaining": self.remaining,
            "status": self.status,
            "code": self.code,
            "retry_after": self.retry_after,
            "methods": sorted(self.methods),
            "path_prefix": self.path_prefix,
        }


class Store:
    """All indexes, faults and request counts of one emulator process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base_url = f"http://{process.HOST}:{settings.port}"
        self.indexes: dict[str, IndexRecord] = {}
        self.faults: list[Fault] = []
        self.requests: Counter[str] = Counter()
        if settings.state_file is not None and settings.state_file.exists():
            stored = cast(pinecone_models.StoredState, json.loads(settings.state_file.read_text()))
            self.indexes = {s["name"]: IndexRecord.from_stored(s) for s in stored["indexes"]}

    def save(self) -> None:
        path = self.settings.state_file
        if path is None:
            return
        data: pinecone_models.StoredState = {"indexes": [r.stored() for r in self.indexes.values()]}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)

    def settle(self) -> None:
        """Complete every state transition whose time has come."""
        now = time.time()
        changed = False
        for name, record in list(self.indexes.items()):
            if record.settles_at and now >= record.settles_at:
                changed = True
                if record.next_state is None:
                    del self.indexes[name]
                else:
                    record.state, record.next_state, record.settles_at = record.next_state, None, 0.0
        if changed:
            self.save()

    def get(self, name: str) -> IndexRecord:
        self.settle()
        record = self.indexes.get(name)
        if record is None:
            raise pinecone_models.not_found(f"Resource {name} not found")
        return record

    def by_host(self, host_id: str) -> IndexRecord:
        self.settle()
        for record in self.indexes.values():
            if record.host_id == host_id:
                return record
        raise pinecone_models.not_found(f"No index is served at host {host_id}")

    def take_fault(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if fault.matches(request):
                fault.remaining -= 1
                return fault
        return None


STORE = web.AppKey("store", Store)
