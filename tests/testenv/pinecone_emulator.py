"""A Pinecone control-plane emulator speaking API version 2025-10, for tests.

Pinecone has no server that can run locally, yet the operator provisions and
audits Pinecone indexes. This module is the stand-in: a real HTTP server
process (aiohttp) that answers the control-plane routes the operator uses with
the validation, status codes and error bodies of the real API, and the one
data-plane call the audit needs (``describe_index_stats``). A contract test
drives it with the official ``pinecone`` SDK so that it cannot drift from what
real clients expect.

Behaviour worth knowing:

- Every API request needs ``Api-Key`` (else 401 UNAUTHENTICATED) and
  ``X-Pinecone-Api-Version: 2025-10`` (any other value, or none, is a 400).
- A new index starts ``Initializing`` (``ready: false``) and becomes ``Ready``
  after ``--ready-after`` seconds; pod scaling passes through ``ScalingUp`` /
  ``ScalingDown`` / ``ScalingUpPodSize`` the same way. Clients must poll.
- An index's ``host`` is ``http://127.0.0.1:PORT/_data/<name>-<id>``. The SDK
  keeps an explicit ``http://`` scheme (it only prepends ``https://`` to a bare
  host) and joins request paths onto a base URL that has a path, so
  ``pc.Index(host=model.host)`` reaches the emulator over plain HTTP. The real
  API returns a bare host name; code that builds URLs itself must keep a scheme
  that is already there.
- Test-only routes under ``/_emulator`` (no API key) inject faults (429 with
  ``Retry-After``, 5xx), set per-namespace vector counts, force an index state,
  and count API requests by method and path, so a test can prove that an
  idempotent reconcile pass sent no POST or PATCH. ``Admin`` wraps them.
- State lives in memory and, with ``--state FILE``, in a JSON file rewritten
  after every change, so a restarted emulator still has its indexes.

Run it as ``python -m tests.testenv.pinecone_emulator --port N --api-key K
[--state FILE] [--ready-after S]``; ``start()`` does that for the test
environment and returns the ``PAYSCOPE_PINECONE_*`` variables.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import re
import secrets
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NotRequired, TypeAlias, TypedDict, cast

import httpx
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.testenv import process

API_VERSION = "2025-10"
NAME = "pinecone"
API_KEY_ENV = "PINECONE_EMULATOR_API_KEY"
_REPO_ROOT = Path(__file__).resolve().parents[2]

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = "dict[str, JsonValue]"

# What the real API accepts, taken from the SDK's own enums (pinecone.models.enums).
METRICS = ("cosine", "euclidean", "dotproduct")
VECTOR_TYPES = ("dense", "sparse")
DELETION_PROTECTION = ("enabled", "disabled")
SERVERLESS_REGIONS: Mapping[str, frozenset[str]] = {
    "aws": frozenset({"us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1"}),
    "gcp": frozenset({"us-central1", "europe-west4"}),
    "azure": frozenset({"eastus2", "germanywestcentral"}),
}
POD_ENVIRONMENTS = frozenset(
    {
        "us-west1-gcp", "us-central1-gcp", "us-west4-gcp", "us-east4-gcp", "northamerica-northeast1-gcp",
        "asia-northeast1-gcp", "asia-southeast1-gcp", "us-east1-gcp", "eu-west1-gcp", "eu-west4-gcp",
        "us-east-1-aws", "eastus-azure",
    }
)  # fmt: skip
STATES = (
    "Initializing", "InitializationFailed", "ScalingUp", "ScalingDown", "ScalingUpPodSize",
    "ScalingDownPodSize", "Terminating", "Ready", "Disabled",
)  # fmt: skip
_NOT_READY_STATES = frozenset({"Initializing", "InitializationFailed", "Terminating", "Disabled"})
# Integrated-inference models an existing index may be switched to with PATCH {"embed": ...}.
EMBED_MODELS: Mapping[str, tuple[str, frozenset[int]]] = {
    "multilingual-e5-large": ("dense", frozenset({1024})),
    "llama-text-embed-v2": ("dense", frozenset({384, 512, 768, 1024, 2048})),
    "pinecone-sparse-english-v0": ("sparse", frozenset()),
}

_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,43}[a-z0-9])?")
_POD_TYPE_RE = re.compile(r"(s1|p1|p2)\.x(1|2|4|8)")
_TAG_KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,80}")
_TAG_VALUE_RE = re.compile(r"[A-Za-z0-9;@_\-.+ ]{0,120}")
_MAX_TAGS = 20
_DESERIALIZE = "Failed to deserialize the JSON body into the target type"


# ---- wire shapes (API 2025-10) ---------------------------------------------------------------


class ErrorDetail(TypedDict):
    code: str
    message: str


class ErrorBody(TypedDict):
    error: ErrorDetail
    status: int


class ServerlessSpecModel(TypedDict):
    cloud: str
    region: str
    read_capacity: NotRequired[JsonObject]
    schema: NotRequired[JsonObject]


class MetadataConfig(TypedDict, total=False):
    indexed: list[str]


class PodSpecModel(TypedDict):
    environment: str
    pod_type: str
    replicas: int
    shards: int
    pods: int
    metadata_config: NotRequired[MetadataConfig]


class IndexSpecModel(TypedDict, total=False):
    serverless: ServerlessSpecModel
    pod: PodSpecModel


class IndexStatusModel(TypedDict):
    ready: bool
    state: str


class EmbedModel(TypedDict):
    model: str
    metric: NotRequired[str]
    dimension: NotRequired[int]
    vector_type: NotRequired[str]
    field_map: NotRequired[dict[str, str]]
    read_parameters: NotRequired[JsonObject]
    write_parameters: NotRequired[JsonObject]


class IndexModel(TypedDict):
    name: str
    metric: str
    host: str
    spec: IndexSpecModel
    status: IndexStatusModel
    vector_type: str
    deletion_protection: str
    dimension: NotRequired[int]
    tags: NotRequired[dict[str, str]]
    embed: NotRequired[EmbedModel]


class IndexList(TypedDict):
    indexes: list[IndexModel]


class NamespaceSummary(TypedDict):
    vectorCount: int  # the data plane answers in camelCase


class DescribeIndexStatsResponse(TypedDict):
    namespaces: dict[str, NamespaceSummary]
    dimension: NotRequired[int]
    indexFullness: float
    totalVectorCount: int
    metric: str
    vectorType: str


class StoredIndex(TypedDict):
    """One index as persisted in the ``--state`` file (host and status are derived)."""

    name: str
    metric: str
    vector_type: str
    dimension: int | None
    deletion_protection: str
    tags: dict[str, str]
    spec: IndexSpecModel
    embed: EmbedModel | None
    host_id: str
    state: str
    next_state: str | None
    settles_at: float
    namespaces: dict[str, int]


class StoredState(TypedDict):
    indexes: list[StoredIndex]


class FaultView(TypedDict):
    remaining: int
    status: int
    code: str
    retry_after: float | None
    methods: list[str]
    path_prefix: str


# ---- errors and request-body readers -------------------------------------------------------


class EmulatorError(Exception):
    """An API error answered as ``{"error": {"code", "message"}, "status"}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error_body(status: int, code: str, message: str) -> ErrorBody:
    return {"error": {"code": code, "message": message}, "status": status}


def _unprocessable(where: str, detail: str) -> EmulatorError:
    return EmulatorError(422, "UNPROCESSABLE_ENTITY", f"{_DESERIALIZE}: {where}: {detail}")


def _invalid(message: str) -> EmulatorError:
    return EmulatorError(400, "INVALID_ARGUMENT", message)


def _not_found(message: str) -> EmulatorError:
    return EmulatorError(404, "NOT_FOUND", message)


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _absent(key: str, where: str, required: bool) -> None:
    if required:
        raise _unprocessable(where or "body", f"missing field `{key}`")


def _str(obj: JsonObject, key: str, where: str = "", *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        _absent(key, where, required)
        return None
    if not isinstance(value, str):
        raise _unprocessable(_path(where, key), "invalid type, expected a string")
    return value


def _req_str(obj: JsonObject, key: str, where: str = "") -> str:
    value = _str(obj, key, where, required=True)
    assert value is not None
    return value


def _int(obj: JsonObject, key: str, where: str = "", *, required: bool = False) -> int | None:
    value = obj.get(key)
    if value is None:
        _absent(key, where, required)
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _unprocessable(_path(where, key), "invalid type, expected an integer")
    return value


def _obj(obj: JsonObject, key: str, where: str = "", *, required: bool = False) -> JsonObject | None:
    value = obj.get(key)
    if value is None:
        _absent(key, where, required)
        return None
    if not isinstance(value, dict):
        raise _unprocessable(_path(where, key), "invalid type, expected an object")
    return value


def _req_obj(obj: JsonObject, key: str, where: str = "") -> JsonObject:
    value = _obj(obj, key, where, required=True)
    assert value is not None
    return value


def _enum(obj: JsonObject, key: str, allowed: Sequence[str], where: str = "") -> str | None:
    value = _str(obj, key, where)
    if value is not None and value not in allowed:
        expected = ", ".join(f"`{a}`" for a in allowed)
        raise _unprocessable(_path(where, key), f"unknown variant `{value}`, expected one of {expected}")
    return value


def _str_map(obj: JsonObject, key: str, where: str = "") -> dict[str, str] | None:
    raw = _obj(obj, key, where)
    if raw is None:
        return None
    out: dict[str, str] = {}
    for k, v in raw.items():
        if not isinstance(v, str):
            raise _unprocessable(_path(where, f"{key}.{k}"), "invalid type, expected a string")
        out[k] = v
    return out


def _tags(obj: JsonObject) -> dict[str, str] | None:
    """Tags of a create or configure body; an empty value means "remove this tag"."""
    tags = _str_map(obj, "tags")
    if tags is None:
        return None
    for key, value in tags.items():
        if not _TAG_KEY_RE.fullmatch(key):
            raise _invalid(f"Tag key {key!r} is invalid: keys must be 1-80 characters of letters, digits, '_' or '-'")
        if not _TAG_VALUE_RE.fullmatch(value):
            raise _invalid(
                f"Tag value for {key!r} is invalid: values must be at most 120 characters of letters, "
                "digits, ';', '@', '_', '-', '.', '+' or ' '"
            )
    return tags


def _read_capacity(obj: JsonObject, where: str) -> JsonObject | None:
    raw = _obj(obj, "read_capacity", where)
    if raw is None:
        return None
    _enum(raw, "mode", ("OnDemand", "Dedicated"), _path(where, "read_capacity"))
    if raw.get("mode") is None:
        raise _unprocessable(_path(where, "read_capacity"), "missing field `mode`")
    return {**raw, "status": {"state": "Ready"}}


async def _json_object(request: web.Request) -> JsonObject:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise _invalid(f"Failed to parse the request body as JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise _unprocessable("body", "invalid type, expected an object")
    return cast(JsonObject, parsed)


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
    spec: IndexSpecModel
    host_id: str
    state: str
    next_state: str | None = None  # reached at settles_at; None then means the index is gone
    settles_at: float = 0.0
    embed: EmbedModel | None = None
    namespaces: dict[str, int] = field(default_factory=dict)

    def transition(self, state: str, then: str | None, after: float) -> None:
        self.state = state
        self.next_state = then
        self.settles_at = time.time() + after

    def model(self, base_url: str) -> IndexModel:
        out: IndexModel = {
            "name": self.name,
            "metric": self.metric,
            "host": f"{base_url}/_data/{self.host_id}",
            "spec": self.spec,
            "status": {"ready": self.state not in _NOT_READY_STATES, "state": self.state},
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

    def stats(self) -> DescribeIndexStatsResponse:
        out: DescribeIndexStatsResponse = {
            "namespaces": {ns: {"vectorCount": n} for ns, n in self.namespaces.items()},
            "indexFullness": 0.0,
            "totalVectorCount": sum(self.namespaces.values()),
            "metric": self.metric,
            "vectorType": self.vector_type,
        }
        if self.dimension is not None:
            out["dimension"] = self.dimension
        return out

    def stored(self) -> StoredIndex:
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
    def from_stored(cls, s: StoredIndex) -> IndexRecord:
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

    def view(self) -> FaultView:
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
            stored = cast(StoredState, json.loads(settings.state_file.read_text()))
            self.indexes = {s["name"]: IndexRecord.from_stored(s) for s in stored["indexes"]}

    def save(self) -> None:
        path = self.settings.state_file
        if path is None:
            return
        data: StoredState = {"indexes": [r.stored() for r in self.indexes.values()]}
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
            raise _not_found(f"Resource {name} not found")
        return record

    def by_host(self, host_id: str) -> IndexRecord:
        self.settle()
        for record in self.indexes.values():
            if record.host_id == host_id:
                return record
        raise _not_found(f"No index is served at host {host_id}")

    def take_fault(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if fault.matches(request):
                fault.remaining -= 1
                return fault
        return None


STORE = web.AppKey("store", Store)


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers={"x-pinecone-request-id": secrets.token_hex(8)})


# ---- middlewares -----------------------------------------------------------------------------


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except EmulatorError as exc:
        return _json(_error_body(exc.status, exc.code, exc.message), exc.status)
    except web.HTTPNotFound:
        return _json(_error_body(404, "NOT_FOUND", f"No route for {request.method} {request.path}"), 404)
    except web.HTTPMethodNotAllowed:
        return _json(_error_body(405, "UNIMPLEMENTED", f"{request.method} is not allowed on {request.path}"), 405)


@web.middleware
async def _gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count, authenticate, check the API version and inject faults for every API request."""
    if request.path.startswith("/_emulator/"):
        return await handler(request)
    store = request.app[STORE]
    store.requests[f"{request.method} {request.path}"] += 1
    key = request.headers.get("Api-Key")
    if not key or not secrets.compare_digest(key, store.settings.api_key):
        raise EmulatorError(401, "UNAUTHENTICATED", "Invalid API Key")
    version = request.headers.get("X-Pinecone-Api-Version")
    if version != API_VERSION:
        raise _invalid(f"Unsupported API version {version!r}: this emulator speaks only {API_VERSION}")
    fault = store.take_fault(request)
    if fault is None:
        return await handler(request)
    message = "Too many requests, retry later" if fault.status == 429 else "Injected fault"
    response = _json(_error_body(fault.status, fault.code, message), fault.status)
    if fault.retry_after is not None:
        ra = fault.retry_after
        response.headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
    return response


# ---- control plane ---------------------------------------------------------------------------


def _serverless_spec(raw: JsonObject) -> ServerlessSpecModel:
    where = "spec.serverless"
    cloud = _req_str(raw, "cloud", where)
    region = _req_str(raw, "region", where)
    if region not in SERVERLESS_REGIONS.get(cloud, frozenset()):
        raise _not_found(f"Resource cloud: {cloud} region: {region} not found")
    if raw.get("source_collection") is not None:
        raise _not_found(f"Resource collection {raw['source_collection']} not found")
    spec: ServerlessSpecModel = {"cloud": cloud, "region": region}
    spec["read_capacity"] = _read_capacity(raw, where) or {"mode": "OnDemand", "status": {"state": "Ready"}}
    schema = _obj(raw, "schema", where)
    if schema is not None:
        spec["schema"] = schema
    return spec


def _pod_count(raw: JsonObject, key: str) -> int:
    value = _int(raw, key, "spec.pod")
    if value is None:
        return 1
    if value < 1:
        raise _invalid(f"spec.pod.{key} must be at least 1, got {value}")
    return value


def _pod_type(raw: JsonObject, where: str) -> str | None:
    pod_type = _str(raw, "pod_type", where)
    if pod_type is not None and not _POD_TYPE_RE.fullmatch(pod_type):
        raise _invalid(f"Invalid pod type {pod_type!r}: expected <s1|p1|p2>.<x1|x2|x4|x8>")
    return pod_type


def _pod_spec(raw: JsonObject) -> PodSpecModel:
    environment = _req_str(raw, "environment", "spec.pod")
    if environment not in POD_ENVIRONMENTS:
        raise _not_found(f"Resource environment: {environment} not found")
    if raw.get("source_collection") is not None:
        raise _not_found(f"Resource collection {raw['source_collection']} not found")
    spec: PodSpecModel = {
        "environment": environment,
        "pod_type": _pod_type(raw, "spec.pod") or "p1.x1",
        "replicas": _pod_count(raw, "replicas"),
        "shards": _pod_count(raw, "shards"),
        "pods": _pod_count(raw, "pods"),
    }
    metadata = _obj(raw, "metadata_config", "spec.pod")
    if metadata is not None:
        indexed = metadata.get("indexed")
        if indexed is not None and not (isinstance(indexed, list) and all(isinstance(i, str) for i in indexed)):
            raise _unprocessable("spec.pod.metadata_config.indexed", "invalid type, expected a list of strings")
        spec["metadata_config"] = {"indexed": cast(list[str], indexed)} if indexed is not None else {}
    return spec


def _create_spec(body: JsonObject) -> IndexSpecModel:
    raw = _req_obj(body, "spec")
    kinds = [k for k in ("serverless", "pod", "byoc") if raw.get(k) is not None]
    if not kinds:
        raise _unprocessable("spec", "expected exactly one of `serverless`, `pod`, `byoc`")
    if len(kinds) > 1:
        raise _invalid(f"spec must contain exactly one of serverless, pod or byoc, got {', '.join(kinds)}")
    inner = _req_obj(raw, kinds[0], "spec")
    if kinds[0] == "serverless":
        return {"serverless": _serverless_spec(inner)}
    if kinds[0] == "pod":
        return {"pod": _pod_spec(inner)}
    environment = _req_str(inner, "environment", "spec.byoc")
    raise _not_found(f"Resource BYOC environment: {environment} not found")


async def list_indexes(request: web.Request) -> web.Response:
    store = request.app[STORE]
    store.settle()
    body: IndexList = {"indexes": [r.model(store.base_url) for r in store.indexes.values()]}
    return _json(body)


async def describe_index(request: web.Request) -> web.Response:
    store = request.app[STORE]
    return _json(store.get(request.match_info["name"]).model(store.base_url))


async def create_index(request: web.Request) -> web.Response:
    store = request.app[STORE]
    body = await _json_object(request)
    name = _req_str(body, "name")
    if not _NAME_RE.fullmatch(name):
        raise _invalid(
            "Name must be 1-45 characters long, start and end with an alphanumeric character, "
            "and consist only of lower case alphanumeric characters or '-'"
        )
    vector_type = _enum(body, "vector_type", VECTOR_TYPES) or "dense"
    metric = _enum(body, "metric", METRICS) or ("dotproduct" if vector_type == "sparse" else "cosine")
    dimension = _int(body, "dimension")
    deletion_protection = _enum(body, "deletion_protection", DELETION_PROTECTION) or "disabled"
    tags = {k: v for k, v in (_tags(body) or {}).items() if v}
    if len(tags) > _MAX_TAGS:
        raise _invalid(f"An index can have at most {_MAX_TAGS} tags")
    spec = _create_spec(body)
    if vector_type == "dense":
        if dimension is None:
            raise _invalid("Dimension must be specified for dense vector type")
        if not 1 <= dimension <= 20000:
            raise _invalid(f"Dimension must be between 1 and 20000, got {dimension}")
    else:
        if dimension is not None:
            raise _invalid("Dimension must not be specified for sparse vector type")
        if metric != "dotproduct":
            raise _invalid("Sparse vector type requires metric dotproduct")
        if "pod" in spec:
            raise _invalid("Sparse vector type is only supported for serverless indexes")
    store.settle()
    if name in store.indexes:
        raise EmulatorError(409, "ALREADY_EXISTS", f"Resource {name} already exists")
    record = IndexRecord(
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
    return _json(record.model(store.base_url), 201)


def _pod_size(pod_type: str) -> int:
    return int(pod_type.rsplit("x", 1)[1])


def _configure_pod(record: IndexRecord, raw: JsonObject) -> tuple[int | None, str | None]:
    pod = record.spec.get("pod")
    if pod is None:
        raise _invalid("spec.pod can only be configured on a pod-based index")
    replicas = _int(raw, "replicas", "spec.pod")
    if replicas is not None and replicas < 1:
        raise _invalid(f"spec.pod.replicas must be at least 1, got {replicas}")
    pod_type = _pod_type(raw, "spec.pod")
    if pod_type is not None and pod_type != pod["pod_type"]:
        if pod_type.split(".")[0] != pod["pod_type"].split(".")[0]:
            raise _invalid(f"Cannot change the pod type family from {pod['pod_type']} to {pod_type}")
        if _pod_size(pod_type) < _pod_size(pod["pod_type"]):
            raise _invalid(f"Cannot scale the pod size down from {pod['pod_type']} to {pod_type}")
    return replicas, pod_type


def _configure_embed(record: IndexRecord, raw: JsonObject) -> EmbedModel:
    model = _str(raw, "model", "embed")
    current = record.embed
    if current is not None:
        if model is not None and model != current["model"]:
            raise _invalid(f"Cannot change the embedding model of index {record.name} from {current['model']}")
        updated: EmbedModel = {**current}
    else:
        if model is None:
            raise _invalid("embed.model is required to convert an index to integrated inference")
        known = EMBED_MODELS.get(model)
        if known is None:
            raise _invalid(f"Unknown embedding model {model!r}")
        vector_type, dimensions = known
        if vector_type != record.vector_type or (dimensions and record.dimension not in dimensions):
            raise _invalid(f"Model {model} does not match the index's vector type, dimension or metric")
        updated = {"model": model, "metric": record.metric, "vector_type": record.vector_type}
        if record.dimension is not None:
            updated["dimension"] = record.dimension
    field_map = _str_map(raw, "field_map", "embed")
    if field_map is not None:
        updated["field_map"] = field_map
    read_parameters = _obj(raw, "read_parameters", "embed")
    if read_parameters is not None:
        updated["read_parameters"] = read_parameters
    write_parameters = _obj(raw, "write_parameters", "embed")
    if write_parameters is not None:
        updated["write_parameters"] = write_parameters
    if "field_map" not in updated:
        raise _invalid("embed.field_map is required")
    return updated


async def configure_index(request: web.Request) -> web.Response:
    store = request.app[STORE]
    record = store.get(request.match_info["name"])
    body = await _json_object(request)
    # Validate the whole request first, then apply it all at once.
    deletion_protection = _enum(body, "deletion_protection", DELETION_PROTECTION)
    tag_patch = _tags(body)
    replicas: int | None = None
    pod_type: str | None = None
    read_capacity: JsonObject | None = None
    spec = _obj(body, "spec")
    if spec is not None:
        if spec.get("pod") is not None:
            replicas, pod_type = _configure_pod(record, _req_obj(spec, "pod", "spec"))
        if spec.get("serverless") is not None:
            if "serverless" not in record.spec:
                raise _invalid("spec.serverless can only be configured on a serverless index")
            read_capacity = _read_capacity(_req_obj(spec, "serverless", "spec"), "spec.serverless")
        if spec.get("byoc") is not None:
            raise _invalid("spec.byoc can only be configured on a BYOC index")
    embed_raw = _obj(body, "embed")
    embed = _configure_embed(record, embed_raw) if embed_raw is not None else None
    merged = dict(record.tags)
    for key, value in (tag_patch or {}).items():
        if value:
            merged[key] = value
        else:
            merged.pop(key, None)
    if len(merged) > _MAX_TAGS:
        raise _invalid(f"An index can have at most {_MAX_TAGS} tags")

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
    return _json(record.model(store.base_url), 202)


async def delete_index(request: web.Request) -> web.Response:
    store = request.app[STORE]
    record = store.get(request.match_info["name"])
    if record.deletion_protection == "enabled":
        raise EmulatorError(
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
    store = request.app[STORE]
    record = store.by_host(request.match_info["host_id"])
    body = await _json_object(request)
    if body.get("filter") is not None and "serverless" in record.spec:
        raise _invalid("Serverless indexes do not support describing index stats with metadata filtering")
    return _json(record.stats())


# ---- test-only administration ----------------------------------------------------------------


async def admin_health(request: web.Request) -> web.Response:
    return _json({"ok": True, "api_version": API_VERSION})


async def admin_set_faults(request: web.Request) -> web.Response:
    """``{"rate_limit_next": N, "retry_after": S}`` and/or ``{"fail_next": N, "status": 503}``,
    optionally narrowed with ``"methods": [...]`` and ``"path_prefix": "/indexes"``."""
    store = request.app[STORE]
    body = await _json_object(request)
    methods_raw = body.get("methods") or []
    if not isinstance(methods_raw, list) or not all(isinstance(m, str) for m in methods_raw):
        raise _invalid("methods must be a list of strings")
    methods = frozenset(cast(list[str], methods_raw))
    prefix = _str(body, "path_prefix") or ""
    retry_after_raw = body.get("retry_after", 1)
    if isinstance(retry_after_raw, bool) or not isinstance(retry_after_raw, int | float) or retry_after_raw < 0:
        raise _invalid("retry_after must be a non-negative number")
    if (n := _int(body, "rate_limit_next")) is not None and n > 0:
        store.faults.append(Fault(n, 429, "RESOURCE_EXHAUSTED", float(retry_after_raw), methods, prefix))
    if (n := _int(body, "fail_next")) is not None and n > 0:
        status = _int(body, "status") or 503
        if not 400 <= status <= 599:
            raise _invalid("status must be an HTTP error status")
        code = _str(body, "code") or {500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}.get(
            status, "UNKNOWN"
        )
        store.faults.append(Fault(n, status, code, None, methods, prefix))
    return _json([f.view() for f in store.faults if f.remaining > 0])


async def admin_get_faults(request: web.Request) -> web.Response:
    return _json([f.view() for f in request.app[STORE].faults if f.remaining > 0])


async def admin_clear_faults(request: web.Request) -> web.Response:
    request.app[STORE].faults.clear()
    return web.Response(status=204)


async def admin_get_requests(request: web.Request) -> web.Response:
    return _json(dict(sorted(request.app[STORE].requests.items())))


async def admin_reset_requests(request: web.Request) -> web.Response:
    request.app[STORE].requests.clear()
    return web.Response(status=204)


async def admin_set_namespaces(request: web.Request) -> web.Response:
    """Replace an index's per-namespace vector counts, e.g. ``{"bank-a": 10, "": 3}``."""
    store = request.app[STORE]
    record = store.get(request.match_info["name"])
    body = await _json_object(request)
    counts: dict[str, int] = {}
    for ns, count in body.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise _invalid(f"vector count of namespace {ns!r} must be a non-negative integer")
        counts[ns] = count
    record.namespaces = counts
    store.save()
    return _json(record.stats())


async def admin_set_state(request: web.Request) -> web.Response:
    """Force an index's status, e.g. ``{"state": "InitializationFailed"}``; cancels any transition."""
    store = request.app[STORE]
    record = store.get(request.match_info["name"])
    body = await _json_object(request)
    state = _enum(body, "state", STATES)
    if state is None:
        raise _invalid("state is required")
    record.state, record.next_state, record.settles_at = state, None, 0.0
    store.save()
    return _json(record.model(store.base_url))


async def admin_reset(request: web.Request) -> web.Response:
    """Forget every index, fault and request count (for a shared emulator between tests)."""
    store = request.app[STORE]
    store.indexes.clear()
    store.faults.clear()
    store.requests.clear()
    store.save()
    return web.Response(status=204)


def build_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[_errors, _gate])
    app[STORE] = Store(settings)
    app.router.add_get("/indexes", list_indexes)
    app.router.add_post("/indexes", create_index)
    app.router.add_get("/indexes/{name}", describe_index)
    app.router.add_patch("/indexes/{name}", configure_index)
    app.router.add_delete("/indexes/{name}", delete_index)
    app.router.add_post("/_data/{host_id}/describe_index_stats", describe_index_stats)
    app.router.add_get("/_emulator/health", admin_health)
    app.router.add_get("/_emulator/faults", admin_get_faults)
    app.router.add_post("/_emulator/faults", admin_set_faults)
    app.router.add_delete("/_emulator/faults", admin_clear_faults)
    app.router.add_get("/_emulator/requests", admin_get_requests)
    app.router.add_delete("/_emulator/requests", admin_reset_requests)
    app.router.add_post("/_emulator/indexes/{name}/namespaces", admin_set_namespaces)
    app.router.add_post("/_emulator/indexes/{name}/state", admin_set_state)
    app.router.add_post("/_emulator/reset", admin_reset)
    return app


# ---- client for the test-only routes -------------------------------------------------------


class Admin:
    """Drives the ``/_emulator`` routes from a test."""

    def __init__(self, url: str) -> None:
        self._url = url.rstrip("/")

    def _call(self, method: str, path: str, body: object = None) -> httpx.Response:
        response = httpx.request(method, f"{self._url}/_emulator{path}", json=body, timeout=10)
        response.raise_for_status()
        return response

    def set_namespaces(self, index: str, counts: Mapping[str, int]) -> None:
        self._call("POST", f"/indexes/{index}/namespaces", dict(counts))

    def set_state(self, index: str, state: str) -> None:
        self._call("POST", f"/indexes/{index}/state", {"state": state})

    def rate_limit_next(self, count: int, *, retry_after: float = 1, methods: Sequence[str] = ()) -> None:
        self._call("POST", "/faults", {"rate_limit_next": count, "retry_after": retry_after, "methods": list(methods)})

    def fail_next(self, count: int, *, status: int = 503, methods: Sequence[str] = ()) -> None:
        self._call("POST", "/faults", {"fail_next": count, "status": status, "methods": list(methods)})

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def requests(self) -> dict[str, int]:
        return cast(dict[str, int], self._call("GET", "/requests").json())

    def reset_requests(self) -> None:
        self._call("DELETE", "/requests")

    def reset(self) -> None:
        self._call("POST", "/reset")


# ---- component API (same shape as the other test-environment components) ------------------


def obtain() -> Path:
    """Nothing to download or build: the emulator is this module."""
    return Path(__file__).resolve().parent


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection(process.HOST, port, timeout=1)
    try:
        conn.request("GET", "/_emulator/health")
        return conn.getresponse().status == 200
    finally:
        conn.close()


def start(workdir: Path, *, ready_after: float = 0.5, terminate_after: float = 0.0) -> process.Running:
    """Start the emulator on a free 127.0.0.1 port with a fresh API key."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = process.free_port()
    api_key = f"pcsk_emulator_{secrets.token_hex(16)}"
    log = workdir / "pinecone-emulator.log"
    argv = [
        sys.executable, "-m", "tests.testenv.pinecone_emulator",
        "--port", str(port),
        "--state", str(workdir / "pinecone-emulator-state.json"),
        "--ready-after", str(ready_after),
        "--terminate-after", str(terminate_after),
    ]  # fmt: skip
    # The key goes through the environment, not argv, so `ps` does not show it.
    pid = process.spawn(argv, log=log, env={API_KEY_ENV: api_key}, cwd=_REPO_ROOT)
    process.wait_until(lambda: _healthy(port), what="pinecone emulator", timeout=30, pid=pid, log=log)
    url = f"http://{process.HOST}:{port}"
    return process.Running(
        name=NAME,
        pids=(pid,),
        address=url,
        env={"PAYSCOPE_PINECONE_URL": url, "PAYSCOPE_PINECONE_API_KEY": api_key},
    )


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"not a non-negative number of seconds: {text}")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_ENV), help=f"default: ${API_KEY_ENV}")
    parser.add_argument("--state", type=Path, default=None, help="JSON file that keeps indexes across restarts")
    parser.add_argument("--ready-after", type=_seconds, default=0.5, help="seconds until a change settles")
    parser.add_argument("--terminate-after", type=_seconds, default=0.0, help="seconds a deleted index stays")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error(f"--api-key or ${API_KEY_ENV} is required")
    settings = Settings(
        api_key=args.api_key,
        port=args.port,
        ready_after=args.ready_after,
        terminate_after=args.terminate_after,
        state_file=args.state,
    )
    with contextlib.suppress(KeyboardInterrupt):
        web.run_app(build_app(settings), host=process.HOST, port=args.port, access_log=None, print=_log)


def _log(*parts: object) -> None:
    print(*parts, flush=True)


if __name__ == "__main__":
    main()
