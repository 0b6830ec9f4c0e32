"""Wire shapes and request validation of the Pinecone emulator (control-plane API 2025-10).

Why this module exists: the emulator must accept and refuse what the real API does, with
the same status codes and error bodies. This module holds what the API accepts (metrics,
regions, pod environments, index states, embedding models, name and tag rules), the JSON
shapes it answers with and persists (``TypedDict``), the ``EmulatorError`` every refusal
is raised as, and the field readers that turn a malformed body into the API's 422 or 400.

What it must not do: import aiohttp, hold state, or know about routes, the store or the
test-only ``/_emulator`` routes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NotRequired, TypeAlias, TypedDict

API_VERSION = "2025-10"

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
NOT_READY_STATES = frozenset({"Initializing", "InitializationFailed", "Terminating", "Disabled"})
# Integrated-inference models an existing index may be switched to with PATCH {"embed": ...}.
EMBED_MODELS: Mapping[str, tuple[str, frozenset[int]]] = {
    "multilingual-e5-large": ("dense", frozenset({1024})),
    "llama-text-embed-v2": ("dense", frozenset({384, 512, 768, 1024, 2048})),
    "pinecone-sparse-english-v0": ("sparse", frozenset()),
}

NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,43}[a-z0-9])?")
POD_TYPE_RE = re.compile(r"(s1|p1|p2)\.x(1|2|4|8)")
_TAG_KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,80}")
_TAG_VALUE_RE = re.compile(r"[A-Za-z0-9;@_\-.+ ]{0,120}")
MAX_TAGS = 20
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


def error_body(status: int, code: str, message: str) -> ErrorBody:
    return {"error": {"code": code, "message": message}, "status": status}


def unprocessable(where: str, detail: str) -> EmulatorError:
    return EmulatorError(422, "UNPROCESSABLE_ENTITY", f"{_DESERIALIZE}: {where}: {detail}")


def invalid(message: str) -> EmulatorError:
    return EmulatorError(400, "INVALID_ARGUMENT", message)


def not_found(message: str) -> EmulatorError:
    return EmulatorError(404, "NOT_FOUND", message)


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _absent(key: str, where: str, required: bool) -> None:
    if required:
        raise unprocessable(where or "body", f"missing field `{key}`")


def read_str(obj: JsonObject, key: str, where: str = "", *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        _absent(key, where, required)
        return None
    if not isinstance(value, str):
        raise unprocessable(_path(where, key), "invalid type, expected a string")
    return value


def require_str(obj: JsonObject, key: str, where: str = "") -> str:
    value = read_str(obj, key, where, required=True)
    assert value is not None
    return value


def read_int(obj: JsonObject, key: str, where: str = "", *, required: bool = False) -> int | None:
    value = obj.get(key)
    if value is None:
        _absent(key, where, required)
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise unprocessable(_path(where, key), "invalid type, expected an integer")
    return value


def read_object(obj: JsonObject, key: str, where: str = "", *, required: bool = False) -> JsonObject | None:
    value = obj.get(key)
    if value is None:
        _absent(key, where, required)
        return None
    if not isinstance(value, dict):
        raise unprocessable(_path(where, key), "invalid type, expected an object")
    return value


def require_object(obj: JsonObject, key: str, where: str = "") -> JsonObject:
    value = read_object(obj, key, where, required=True)
    assert value is not None
    return value


def read_enum(obj: JsonObject, key: str, allowed: Sequence[str], where: str = "") -> str | None:
    value = read_str(obj, key, where)
    if value is not None and value not in allowed:
        expected = ", ".join(f"`{a}`" for a in allowed)
        raise unprocessable(_path(where, key), f"unknown variant `{value}`, expected one of {expected}")
    return value


def read_str_map(obj: JsonObject, key: str, where: str = "") -> dict[str, str] | None:
    raw = read_object(obj, key, where)
    if raw is None:
        return None
    out: dict[str, str] = {}
    for k, v in raw.items():
        if not isinstance(v, str):
            raise unprocessable(_path(where, f"{key}.{k}"), "invalid type, expected a string")
        out[k] = v
    return out


def read_tags(obj: JsonObject) -> dict[str, str] | None:
    """Tags of a create or configure body; an empty value means "remove this tag"."""
    tags = read_str_map(obj, "tags")
    if tags is None:
        return None
    for key, value in tags.items():
        if not _TAG_KEY_RE.fullmatch(key):
            raise invalid(f"Tag key {key!r} is invalid: keys must be 1-80 characters of letters, digits, '_' or '-'")
        if not _TAG_VALUE_RE.fullmatch(value):
            raise invalid(
                f"Tag value for {key!r} is invalid: values must be at most 120 characters of letters, "
                "digits, ';', '@', '_', '-', '.', '+' or ' '"
            )
    return tags


def parse_read_capacity(obj: JsonObject, where: str) -> JsonObject | None:
    raw = read_object(obj, "read_capacity", where)
    if raw is None:
        return None
    read_enum(raw, "mode", ("OnDemand", "Dedicated"), _path(where, "read_capacity"))
    if raw.get("mode") is None:
        raise unprocessable(_path(where, "read_capacity"), "missing field `mode`")
    return {**raw, "status": {"state": "Ready"}}
