"""The Pinecone API routes the emulator answers: the control plane and one data-plane call.

Why this module exists: the operator lists, describes, creates, configures (PATCH) and
deletes indexes, and its audit calls ``describe_index_stats`` on an index's host. Each
handler here validates its body as the real API (2025-10) does and changes the shared
``pinecone_store.Store``; ``json_response`` and ``read_body`` are the JSON plumbing the
test-only routes share.

What it must not do: authenticate, check the API version, count requests or inject
faults (``pinecone_app``'s middleware does that before any handler runs), or serve the
test-only ``/_emulator`` routes.
"""

from __future__ import annotations

import json
import secrets
from typing import cast

from aiohttp import web

from tests.testenv import pinecone_models, pinecone_store

# ---- JSON plumbing ---------------------------------------------------------------------------


def json_response(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers={"x-pinecone-request-id": secrets.token_hex(8)})


async def read_body(request: web.Request) -> pinecone_models.JsonObject:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise pinecone_models.invalid(f"Failed to parse the request body as JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise pinecone_models.unprocessable("body", "invalid type, expected an object")
    return cast(pinecone_models.JsonObject, parsed)


# ---- control plane ---------------------------------------------------------------------------


def _serverless_spec(raw: pinecone_models.JsonObject) -> pinecone_models.ServerlessSpecModel:
    where = "spec.serverless"
    cloud = pinecone_models.require_str(raw, "cloud", where)
    region = pinecone_models.require_str(raw, "region", where)
    if region not in pinecone_models.SERVERLESS_REGIONS.get(cloud, frozenset()):
        raise pinecone_models.not_found(f"Resource cloud: {cloud} region: {region} not found")
    if raw.get("source_collection") is not None:
        raise pinecone_models.not_found(f"Resource collection {raw['source_collection']} not found")
    spec: pinecone_models.ServerlessSpecModel = {"cloud": cloud, "region": region}
    spec["read_capacity"] = pinecone_models.parse_read_capacity(raw, where) or {
        "mode": "OnDemand",
        "status": {"state": "Ready"},
    }
    schema = pinecone_models.read_object(raw, "schema", where)
    if schema is not None:
        spec["schema"] = schema
    return spec


def _pod_count(raw: pinecone_models.JsonObject, key: str) -> int:
    value = pinecone_models.read_int(raw, key, "spec.pod")
    if value is None:
        return 1
    if value < 1:
        raise pinecone_models.invalid(f"spec.pod.{key} must be at least 1, got {value}")
    return value


def _pod_type(raw: pinecone_models.JsonObject, where: str) -> str | None:
    pod_type = pinecone_models.read_str(raw, "pod_type", where)
    if pod_type is not None and not pinecone_models.POD_TYPE_RE.fullmatch(pod_type):
        raise pinecone_models.invalid(f"Invalid pod type {pod_type!r}: expected <s1|p1|p2>.<x1|x2|x4|x8>")
    return pod_type


def _pod_spec(raw: pinecone_models.JsonObject) -> pinecone_models.PodSpecModel:
    environment = pinecone_models.require_str(raw, "environment", "spec.pod")
    if environment not in pinecone_models.POD_ENVIRONMENTS:
        raise pinecone_models.not_found(f"Resource environment: {environment} not found")
    if raw.get("source_collection") is not None:
        raise pinecone_models.not_found(f"Resource collection {raw['source_collection']} not found")
    spec: pinecone_models.PodSpecModel = {
        "environment": environment,
        "pod_type": _pod_type(raw, "spec.pod") or "p1.x1",
        "replicas": _pod_count(raw, "replicas"),
        "shards": _pod_count(raw, "shards"),
        "pods": _pod_count(raw, "pods"),
    }
    metadata = pinecone_models.read_object(raw, "metadata_config", "spec.pod")
    if metadata is not None:
        indexed = metadata.get("indexed")
        if indexed is not None and not (isinstance(indexed, list) and all(isinstance(i, str) for i in indexed)):
            raise pinecone_models.unprocessable(
                "spec.pod.metadata_config.indexed", "invalid type, expected a list of strings"
            )
        spec["metadata_config"] = {"indexed": cast(list[str], indexed)} if indexed is not None else {}
    return spec


def _create_spec(body: pinecone_models.JsonObject) -> pinecone_models.IndexSpecModel:
    raw = pinecone_models.require_object(body, "spec")
    kinds = [k for k in ("serverless", "pod", "byoc") if raw.get(k) is not None]
    if not kinds:
        raise pinecone_models.unprocessable("spec", "expected exactly one of `serverless`, `pod`, `byoc`")
    if len(kinds) > 1:
        raise pinecone_models.invalid(
            f"spec must contain exactly one of serverless, pod or byoc, got {', '.join(kinds)}"
        )
    inner = pinecone_models.require_object(raw, kinds[0], "spec")
    if kinds[0] == "serverless":
        return {"serverless": _serverless_spec(inner)}
    if kinds[0] == "pod":
        return {"pod": _pod_spec(inner)}
    environment = pinecone_models.require_str(inner, "environment", "spec.byoc")
    raise pinecone_models.not_found(f"Resource BYOC environment: {environment} not found")


async def list_indexes(request: web.Request) -> web.Response:
    store = request.app[pinecone_store.STORE]
    store.settle()
    body: pinecone_models.IndexList = {"indexes": [r.model(store.base_url) for r in store.indexes.values()]}
    return json_response(body)


async def describe_index(request: web.Request) -> web.Response:
    store = request.app[pinecone_store.STORE]
    return json_response(store.get(request.match_info["name"]).model(store.base_url))


async def create_index(request: web.Request) -> web.Response:
    store = request.app[pinecone_store.STORE]
    body = await read_body(request)
    name = pinecone_models.require_str(body, "name")
    if not pinecone_models.NAME_RE.fullmatch(name):
        raise pinecone_models.invalid(
            "Name must be 1-45 characters long, start and end with an alphanumeric character, "
            "and consist only of lower case alphanumeric characters or '-'"
        )
    vector_type = pinecone_models.read_enum(body, "vector_type", pinecone_models.VECTOR_TYPES) or "dense"
    metric = pinecone_models.read_enum(body, "metric", pinecone_models.METRICS) or (
        "dotproduct" if vector_type == "sparse" else "cosine"
    )
    dimension = pinecone_models.read_int(body, "dimension")
    deletion_protection = (
        pinecone_models.read_enum(body, "deletion_protection", pinecone_models.DELETION_PROTECTION) or "disabled"
    )
    tags = {k: v for k, v in (pinecone_models.read_tags(body) or {}).items() if v}
    if len(tags) > pinecone_models.MAX_TAGS:
        raise pinecone_models.invalid(f"An index can have at most {pinecone_models.MAX_TAGS} tags")
    spec = _create_spec(body)
    if vector_type == "dense":
        if dimension is None:
            raise pinecone_models.invalid("Dimension must be specified for dense vector type")
        if not 1 <= dimension <= 20000:
            raise pinecone_models.invalid(f"Dimension must be between 1 and 20000, got {dimension}")
    else:
        if dimension is not None:
            raise pinecone_models.invalid("Dimension must not be specified for sparse vector type")
        if metric != "dotproduct":
            raise pinecone_models.invalid("Sparse vector type requires metric dotproduct")
        if "pod" in spec:
            raise pinecone_models.invalid("Sparse vector type is only supported for serverless indexes")
    store.settle()
    if name in store.indexes:
        raise pinecone_models.EmulatorError(409, "ALREADY_EXISTS", f"Resource {name} already exists")
    record = pinecone_store.IndexRecord(
        name=name,
        metric=metric,
        vector_type=vector_type,
        dimension=dimension,
        deletion_protection=deletion_protection,
        tags=tags,
        spec=spec,
        host_id=f"{name}-{secrets.token_hex(4)}",
        state="Initializing",
    )
    record.transition("Initializing", "Ready", store.settings.ready_after)
    store.indexes[name] = record
    store.save()
    return json_response(record.model(store.base_url), 201)


def _pod_size(pod_type: str) -> int:
    return int(pod_type.rsplit("x", 1)[1])


def _configure_pod(
    record: pinecone_store.IndexRecord, raw: pinecone_models.JsonObject
) -> tuple[int | None, str | None]:
    pod = record.spec.get("pod")
    if pod is None:
        raise pinecone_models.invalid("spec.pod can only be configured on a pod-based index")
    replicas = pinecone_models.read_int(raw, "replicas", "spec.pod")
    if replicas is not None and replicas < 1:
        raise pinecone_models.invalid(f"spec.pod.replicas must be at least 1, got {replicas}")
    pod_type = _pod_type(raw, "spec.pod")
    if pod_type is not None and pod_type != pod["pod_type"]:
        if pod_type.split(".")[0] != pod["pod_type"].split(".")[0]:
            raise pinecone_models.invalid(f"Cannot change the pod type family from {pod['pod_type']} to {pod_type}")
        if _pod_size(pod_type) < _pod_size(pod["pod_type"]):
            raise pinecone_models.invalid(f"Cannot scale the pod size down from {pod['pod_type']} to {pod_type}")
    return replicas, pod_type


def _configure_embed(record: pinecone_store.IndexRecord, raw: pinecone_models.JsonObject) -> pinecone_models.EmbedModel:
    model = pinecone_models.read_str(raw, "model", "embed")
    current = record.embed
    if current is not None:
        if model is not None and model != current["model"]:
            raise pinecone_models.invalid(
                f"Cannot change the embedding model of index {record.name} from {current['model']}"
            )
        updated: pinecone_models.EmbedModel = {**current}
    else:
        if model is None:
            raise pinecone_models.invalid("embed.model is required to convert an index to integrated inference")
        known = pinecone_models.EMBED_MODELS.get(model)
        if known is None:
            raise pinecone_models.invalid(f"Unknown embedding model {model!r}")
        vector_type, dimensions = known
        if vector_type != record.vector_type or (dimensions and record.dimension not in dimensions):
            raise pinecone_models.invalid(f"Model {model} does not match the index's vector type, dimension or metric")
        updated = {"model": model, "metric": record.metric, "vector_type": record.vector_type}
        if record.dimension is not None:
            updated["dimension"] = record.dimension
    field_map = pinecone_models.read_str_map(raw, "field_map", "embed")
    if field_map is not None:
        updated["field_map"] = field_map
    read_parameters = pinecone_models.read_object(raw, "read_parameters", "embed")
    if read_parameters is not None:
        updated["read_parameters"] = read_parameters
    write_parameters = pinecone_models.read_object(raw, "write_parameters", "embed")
    if write_parameters is not None:
        updated["write_parameters"] = write_parameters
    if "field_map" not in updated:
        raise pinecone_models.invalid("embed.field_map is required")
    return updated


async def configure_index(request: web.Request) -> web.Response:
    store = request.app[pinecone_store.STORE]
    record = store.get(request.match_info["name"])
    body = await read_body(request)
    # Validate the whole request first, then apply it all at once.
    deletion_protection = pinecone_models.read_enum(body, "deletion_protection", pinecone_models.DELETION_PROTECTION)
    tag_patch = pinecone_models.read_tags(body)
    replicas: int | None = None
    pod_type: str | None = None
    read_capacity: pinecone_models.JsonObject | None = None
    spec = pinecone_models.read_object(body, "spec")
    if spec is not None:
        if spec.get("pod") is not None:
            replicas, pod_type = _configure_pod(record, pinecone_models.require_object(spec, "pod", "spec"))
        if spec.get("serverless") is not None:
            if "serverless" not in record.spec:
                raise pinecone_models.invalid("spec.serverless can only be configured on a serverless index")
            read_capacity = pinecone_models.parse_read_capacity(
                pinecone_models.require_object(spec, "serverless", "spec"), "spec.serverless"
            )
        if spec.get("byoc") is not None:
            raise pinecone_models.invalid("spec.byoc can only be configured on a BYOC index")
    embed_raw = pinecone_models.read_object(body, "embed")
    embed = _configure_embed(record, embed_raw) if embed_raw is not None else None
    merged = dict(record.tags)
    for key, value in (tag_patch or {}).items():
        if value:
            merged[key] = value
        else:
            merged.pop(key, None)
    if len(merged) > pinecone_models.MAX_TAGS:
        raise pinecone_models.invalid(f"An index can have at most {pinecone_models.MAX_TAGS} tags")

    if deletion_protection is not None:
        record.deletion_protection = deletion_protection
    record.tags = merged
    if embed is not None:
        record.embed = embed
    if read_capacity is not None and "serverless" in record.spec:
        record.spec["serverless"]["read_capacity"] = read_capacity
    pod = record.spec.get("pod")
    after = store.settings.ready_after
    if pod is not None and pod_type is not None and pod_type != pod["pod_type"]:
        pod["pod_type"] = pod_type
        record.transition("ScalingUpPodSize", "Ready", after)
    if pod is not None and replicas is not None and replicas != pod["replicas"]:
        record.transition("ScalingUp" if replicas > pod["replicas"] else "ScalingDown", "Ready", after)
        pod["replicas"] = replicas
        pod["pods"] = replicas * pod["shards"]
    store.save()
    return json_response(record.model(store.base_url), 202)


async def delete_index(request: web.Request) -> web.Response:
    store = request.app[pinecone_store.STORE]
    record = store.get(request.match_info["name"])
    if record.deletion_protection == "enabled":
        raise pinecone_models.EmulatorError(
            403,
            "FORBIDDEN",
            f"Deletion protection is enabled for index {record.name}: disable it before deleting the index",
        )
    if store.settings.terminate_after > 0:
        if record.state != "Terminating":
            record.transition("Terminating", None, store.settings.terminate_after)
    else:
        del store.indexes[record.name]
    store.save()
    return web.Response(status=202, headers={"x-pinecone-request-id": secrets.token_hex(8)})


# ---- data plane ------------------------------------------------------------------------------


async def describe_index_stats(request: web.Request) -> web.Response:
    store = request.app[pinecone_store.STORE]
    record = store.by_host(request.match_info["host_id"])
    body = await read_body(request)
    if body.get("filter") is not None and "serverless" in record.spec:
        raise pinecone_models.invalid(
            "Serverless indexes do not support describing index stats with metadata filtering"
        )
    return json_response(record.stats())


async def upsert_vectors(request: web.Request) -> web.Response:
    """``POST {host}/vectors/upsert``: ids counted per namespace (values are checked, not kept)."""
    store = request.app[pinecone_store.STORE]
    record = store.by_host(request.match_info["host_id"])
    body = await read_body(request)
    vectors = body.get("vectors")
    namespace = body.get("namespace") or ""
    if not isinstance(vectors, list) or not vectors or not isinstance(namespace, str):
        raise pinecone_models.invalid("vectors must be a non-empty list and namespace a string")
    ids: list[str] = []
    for vector in vectors:
        if not isinstance(vector, dict) or not isinstance(vector.get("id"), str):
            raise pinecone_models.invalid("each vector needs a string id")
        values = vector.get("values")
        if not isinstance(values, list) or len(values) != record.dimension:
            raise pinecone_models.invalid(
                f"Vector dimension {len(values) if isinstance(values, list) else 0} does not match the dimension"
                f" of the index {record.dimension}"
            )
        ids.append(str(vector["id"]))
    known = record.vector_ids.setdefault(namespace, set())
    fresh = set(ids) - known
    known.update(fresh)
    record.namespaces[namespace] = record.namespaces.get(namespace, 0) + len(fresh)
    store.save()
    return json_response({"upsertedCount": len(ids)})
