"""The Pinecone emulator's data plane for dense vectors: upsert and query with metadata filters (API 2025-10).

Why this module exists: the operator checks that a tenant's namespace holds no
vector of another tenant by querying it with a filter on the other tenant's key
(``topK`` 1, expecting no match), and tests need a real data plane to seed
vectors and to see that query answered as Pinecone answers it. Routes live
under an index's host (``/_data/<host_id>/...``), as ``describe_index_stats``
does: ``POST /vectors/upsert`` (``{"vectors": [{"id", "values", "metadata"}],
"namespace"}`` → ``{"upsertedCount"}``) and ``POST /query`` (``{"namespace",
"topK", "vector" | "id", "filter", "includeValues", "includeMetadata"}`` →
``{"matches": [{"id", "score", "values"?, "metadata"?}], "namespace", "usage"}``).
The filter language is Pinecone's: a field's value, or ``$eq``, ``$ne``, ``$in``,
``$nin``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$exists``, combined with
``$and``/``$or``. Vectors are kept in memory only (the state file keeps counts).

What it must not do: implement sparse vectors, fetch, delete or update (no test
needs them), or touch the control plane's state beyond the namespace counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from aiohttp import web

from tests.testenv import pinecone_api, pinecone_models, pinecone_store

Metadata = Mapping[str, object]
MAX_TOP_K = 10_000


@dataclass(frozen=True)
class Vector:
    id: str
    values: tuple[float, ...]
    metadata: Metadata = field(default_factory=dict)


VECTORS = web.AppKey("vectors", dict)
"""host_id -> namespace -> id -> Vector, in the application's state."""


def _store(request: web.Request) -> dict[str, dict[str, Vector]]:
    vectors = cast(dict[str, dict[str, dict[str, Vector]]], request.app[VECTORS])
    return vectors.setdefault(request.match_info["host_id"], {})


def _values(raw: object, dimension: int | None, what: str) -> tuple[float, ...]:
    if not isinstance(raw, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw):
        raise pinecone_models.invalid(f"{what} must be an array of numbers")
    if dimension is not None and len(raw) != dimension:
        raise pinecone_models.invalid(
            f"Vector dimension {len(raw)} does not match the dimension of the index {dimension}"
        )
    if not any(raw):
        raise pinecone_models.invalid("Dense vectors must contain at least one non-zero value")
    return tuple(float(v) for v in raw)


def _compare(op: str, have: object, want: object) -> bool:
    if op == "$eq":
        return have == want
    if op == "$ne":
        return have != want
    if op in ("$in", "$nin"):
        if not isinstance(want, list):
            raise pinecone_models.invalid(f"{op} takes an array")
        return (have in want) == (op == "$in")
    if op == "$exists":
        return (have is not None) == bool(want)
    numeric = {"$gt": float.__gt__, "$gte": float.__ge__, "$lt": float.__lt__, "$lte": float.__le__}
    if op in numeric:
        if not isinstance(have, int | float) or not isinstance(want, int | float):
            return False
        return bool(numeric[op](float(have), float(want)))
    raise pinecone_models.invalid(f"unsupported filter operator {op}")


def matches(metadata: Metadata, condition: object) -> bool:
    """Whether a vector's metadata satisfies a Pinecone metadata filter."""
    if not isinstance(condition, dict):
        raise pinecone_models.invalid("filter must be an object")
    for key, expected in condition.items():
        if key in ("$and", "$or"):
            if not isinstance(expected, list):
                raise pinecone_models.invalid(f"{key} takes an array of filters")
            combine: Callable[[object], bool] = all if key == "$and" else any  # type: ignore[assignment]
            if not combine(matches(metadata, part) for part in expected):
                return False
            continue
        have = metadata.get(key)
        ops = expected if isinstance(expected, dict) else {"$eq": expected}
        if not all(_compare(op, have, want) for op, want in ops.items()):
            return False
    return True


def score(metric: str, a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    if metric == "dotproduct":
        return dot
    if metric == "euclidean":
        return math.dist(a, b)
    return dot / (math.hypot(*a) * math.hypot(*b))


async def upsert(request: web.Request) -> web.Response:
    store = request.app[pinecone_store.STORE]
    record = store.by_host(request.match_info["host_id"])
    body = await pinecone_api.read_body(request)
    namespace = body.get("namespace") or ""
    raw = body.get("vectors")
    if not isinstance(namespace, str) or not isinstance(raw, list) or not raw:
        raise pinecone_models.invalid("vectors must be a non-empty array, namespace a string")
    space = _store(request).setdefault(namespace, {})
    ids: list[str] = []
    for item in raw:
        vector_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(item, dict) or not isinstance(vector_id, str):
            raise pinecone_models.invalid("each vector needs a string id")
        metadata = item.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise pinecone_models.invalid("metadata must be an object")
        space[vector_id] = Vector(vector_id, _values(item.get("values"), record.dimension, "values"), metadata)
        ids.append(vector_id)
    known = record.vector_ids.setdefault(namespace, set())
    fresh = set(ids) - known
    known.update(fresh)
    record.namespaces[namespace] = record.namespaces.get(namespace, 0) + len(fresh)  # as the stats count them
    store.save()
    return pinecone_api.json_response({"upsertedCount": len(raw)})


async def query(request: web.Request) -> web.Response:
    store = request.app[pinecone_store.STORE]
    record = store.by_host(request.match_info["host_id"])
    body = await pinecone_api.read_body(request)
    namespace, top_k = body.get("namespace") or "", body.get("topK")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
        raise pinecone_models.invalid(f"topK must be an integer between 1 and {MAX_TOP_K}")
    space = _store(request).get(str(namespace), {})
    if body.get("id") is not None:
        found = space.get(str(body["id"]))
        probe = found.values if found is not None else None
    else:
        probe = _values(body.get("vector"), record.dimension, "vector")
    flt = body.get("filter")
    ranked = sorted(
        (
            (score(record.metric, probe, v.values), v)
            for v in space.values()
            if probe is not None and (flt is None or matches(v.metadata, flt))
        ),
        key=lambda pair: pair[0],
        reverse=record.metric != "euclidean",
    )
    out = []
    for value, vector in ranked[:top_k]:
        match: dict[str, object] = {"id": vector.id, "score": value}
        if body.get("includeValues"):
            match["values"] = list(vector.values)
        if body.get("includeMetadata"):
            match["metadata"] = dict(vector.metadata)
        out.append(match)
    return pinecone_api.json_response({"matches": out, "namespace": namespace, "usage": {"readUnits": 1}})


def register(app: web.Application) -> None:
    app[VECTORS] = {}
    app.router.add_post("/_data/{host_id}/vectors/upsert", upsert)
    app.router.add_post("/_data/{host_id}/query", query)
