"""The Pinecone emulator honours API 2025-10 as the official SDK understands it.

The operator's Pinecone tests run against ``tests/testenv/pinecone_emulator``
because Pinecone has no local server. That is only sound while the emulator
answers like the real control plane, so this contract test drives it with the
official ``pinecone`` SDK (its models decode every response strictly, and it
maps status codes to its own exception classes) and checks the raw wire shape
of errors and faults with plain httpx.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pinecone import (
    ApiError,
    ConflictError,
    ForbiddenException,
    IndexModel,
    NotFoundException,
    Pinecone,
    PodSpec,
    RetryConfig,
    ServerlessSpec,
    ServiceException,
    UnauthorizedException,
)

from tests.testenv import pinecone_emulator, process

READY_AFTER = 0.3


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[process.Running]:
    running = pinecone_emulator.start(tmp_path_factory.mktemp("pinecone"), ready_after=READY_AFTER)
    try:
        yield running
    finally:
        for pid in running.pids:
            process.stop(pid)


@pytest.fixture(scope="module")
def pc(emulator: process.Running) -> Iterator[Pinecone]:
    with Pinecone(api_key=emulator.env["PAYSCOPE_PINECONE_API_KEY"], host=emulator.address) as client:
        yield client


@pytest.fixture
def admin(emulator: process.Running) -> Iterator[pinecone_emulator.Admin]:
    control = pinecone_emulator.Admin(emulator.address)
    yield control
    control.clear_faults()


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _headers(emulator: process.Running) -> dict[str, str]:
    return {"Api-Key": emulator.env["PAYSCOPE_PINECONE_API_KEY"], "X-Pinecone-Api-Version": "2025-10"}


def _wait_settled(pc: Pinecone, name: str, timeout: float = 10.0) -> IndexModel:
    """Poll like a client must: until the index is Ready (not merely ready)."""
    deadline = time.monotonic() + timeout
    while True:
        model = pc.indexes.describe(name)
        if model.status.state == "Ready":
            return model
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} still {model.status.state} after {timeout}s")
        time.sleep(0.05)


def test_serverless_index_lifecycle(pc: Pinecone, emulator: process.Running) -> None:
    name = _name("rag")
    created = pc.indexes.create(
        name=name,
        dimension=1536,
        metric="cosine",
        spec=ServerlessSpec(cloud="aws", region="us-east-1"),
        tags={"team": "risk"},
        timeout=-1,
    )
    assert (created.status.ready, created.status.state) == (False, "Initializing")
    assert created.host is not None
    assert created.host.startswith(f"{emulator.address}/_data/{name}-")

    ready = _wait_settled(pc, name)
    assert ready.status.ready
    assert (ready.name, ready.dimension, ready.metric, ready.vector_type) == (name, 1536, "cosine", "dense")
    assert ready.spec.serverless is not None
    assert (ready.spec.serverless.cloud, ready.spec.serverless.region) == ("aws", "us-east-1")
    assert ready.deletion_protection == "disabled"
    assert ready.tags == {"team": "risk"}
    assert name in pc.indexes.list().names()

    pc.indexes.configure(name, deletion_protection="enabled", tags={"env": "test"})
    configured = pc.indexes.describe(name)
    assert configured.deletion_protection == "enabled"
    assert configured.tags == {"team": "risk", "env": "test"}

    pc.indexes.configure(name, tags={"team": ""})  # an empty value removes the tag
    assert pc.indexes.describe(name).tags == {"env": "test"}

    with pytest.raises(ForbiddenException) as forbidden:
        pc.indexes.delete(name, timeout=-1)
    assert (forbidden.value.status_code, forbidden.value.error_code) == (403, "FORBIDDEN")

    pc.indexes.configure(name, deletion_protection="disabled")
    pc.indexes.delete(name, timeout=10)
    assert not pc.indexes.exists(name)
    with pytest.raises(NotFoundException):
        pc.indexes.describe(name)


def test_pod_index_scales_through_transitional_states(pc: Pinecone) -> None:
    name = _name("pods")
    spec = PodSpec(environment="us-east-1-aws", pod_type="p1.x1", replicas=1, shards=1, pods=1)
    pc.indexes.create(name=name, dimension=8, metric="dotproduct", spec=spec, timeout=-1)
    ready = _wait_settled(pc, name)
    assert ready.spec.pod is not None
    assert (ready.spec.pod.environment, ready.spec.pod.pod_type, ready.spec.pod.replicas) == (
        "us-east-1-aws",
        "p1.x1",
        1,
    )

    pc.indexes.configure(name, replicas=2)
    scaling = pc.indexes.describe(name)
    assert (scaling.status.ready, scaling.status.state) == (True, "ScalingUp")
    scaled = _wait_settled(pc, name)
    assert scaled.spec.pod is not None
    assert (scaled.spec.pod.replicas, scaled.spec.pod.pods) == (2, 2)

    pc.indexes.configure(name, pod_type="p1.x2")
    assert pc.indexes.describe(name).status.state == "ScalingUpPodSize"
    resized = _wait_settled(pc, name)
    assert resized.spec.pod is not None
    assert resized.spec.pod.pod_type == "p1.x2"
    pc.indexes.delete(name, timeout=-1)


def test_duplicate_create_is_a_conflict(pc: Pinecone) -> None:
    name = _name("dup")
    spec = ServerlessSpec(cloud="gcp", region="us-central1")
    pc.indexes.create(name=name, dimension=4, spec=spec, timeout=-1)
    with pytest.raises(ConflictError) as conflict:
        pc.indexes.create(name=name, dimension=4, spec=spec, timeout=-1)
    assert (conflict.value.status_code, conflict.value.error_code) == (409, "ALREADY_EXISTS")
    pc.indexes.delete(name, timeout=-1)


def test_missing_index_is_not_found(pc: Pinecone) -> None:
    missing = _name("missing")
    with pytest.raises(NotFoundException) as describe:
        pc.indexes.describe(missing)
    assert (describe.value.status_code, describe.value.error_code) == (404, "NOT_FOUND")
    with pytest.raises(NotFoundException):
        pc.indexes.configure(missing, deletion_protection="enabled")
    with pytest.raises(NotFoundException):
        pc.indexes.delete(missing, timeout=-1)


def test_unknown_region_is_not_found(pc: Pinecone) -> None:
    with pytest.raises(NotFoundException) as unknown:
        pc.indexes.create(name=_name("far"), dimension=4, spec=ServerlessSpec(cloud="aws", region="mars-1"), timeout=-1)
    assert "mars-1" in unknown.value.message


def test_wrong_api_key_is_unauthorized(emulator: process.Running) -> None:
    with (
        Pinecone(api_key="not-the-key", host=emulator.address) as stranger,
        pytest.raises(UnauthorizedException) as denied,
    ):
        stranger.indexes.list()
    assert (denied.value.status_code, denied.value.error_code) == (401, "UNAUTHENTICATED")


def test_sparse_index_has_no_dimension(pc: Pinecone) -> None:
    name = _name("sparse")
    spec = ServerlessSpec(cloud="aws", region="us-east-1")
    created = pc.indexes.create(name=name, metric="dotproduct", vector_type="sparse", spec=spec, timeout=-1)
    assert (created.vector_type, created.dimension) == ("sparse", None)
    pc.indexes.delete(name, timeout=-1)


def test_configure_embed_makes_an_index_integrated(pc: Pinecone) -> None:
    name = _name("embed")
    pc.indexes.create(name=name, dimension=1024, spec=ServerlessSpec(cloud="aws", region="us-east-1"), timeout=-1)
    pc.indexes.configure(name, embed={"model": "multilingual-e5-large", "field_map": {"text": "chunk"}})
    embed = pc.indexes.describe(name).embed
    assert embed is not None
    assert (embed.model, embed.field_map, embed.dimension) == ("multilingual-e5-large", {"text": "chunk"}, 1024)
    pc.indexes.delete(name, timeout=-1)


def test_describe_index_stats_shows_namespace_counts(pc: Pinecone, admin: pinecone_emulator.Admin) -> None:
    name = _name("stats")
    pc.indexes.create(
        name=name, dimension=16, metric="euclidean", spec=ServerlessSpec(cloud="aws", region="us-east-1"), timeout=-1
    )
    model = _wait_settled(pc, name)
    assert model.host is not None
    admin.set_namespaces(name, {"bank-a": 10, "": 3})

    stats = pc.Index(host=model.host).describe_index_stats()
    assert {ns: s.vector_count for ns, s in stats.namespaces.items()} == {"bank-a": 10, "": 3}
    assert (stats.total_vector_count, stats.dimension, stats.metric, stats.vector_type) == (
        13,
        16,
        "euclidean",
        "dense",
    )
    pc.indexes.delete(name, timeout=-1)


def test_upserted_vectors_count_in_the_stats(pc: Pinecone) -> None:
    name = _name("upsert")
    pc.indexes.create(name=name, dimension=3, spec=ServerlessSpec(cloud="aws", region="us-east-1"), timeout=-1)
    model = _wait_settled(pc, name)
    assert model.host is not None
    index = pc.Index(host=model.host)

    upserted = index.upsert(vectors=[("a", [0.1, 0.2, 0.3]), ("b", [0.3, 0.2, 0.1])], namespace="bank-a")
    assert upserted.upserted_count == 2
    index.upsert(vectors=[("a", [0.0, 0.0, 1.0])], namespace="bank-a")  # the same id again: replaced, not added
    index.upsert(vectors=[{"id": "c", "values": [1.0, 0.0, 0.0], "metadata": {"bank_id": "b"}}])

    stats = index.describe_index_stats()
    assert {ns: s.vector_count for ns, s in stats.namespaces.items()} == {"bank-a": 2, "": 1}
    assert stats.total_vector_count == 3
    with pytest.raises(ApiError, match="dimension"):
        index.upsert(vectors=[("d", [1.0, 2.0])])
    pc.indexes.delete(name, timeout=-1)


def test_request_counter_proves_a_read_only_pass(pc: Pinecone, admin: pinecone_emulator.Admin) -> None:
    name = _name("count")
    pc.indexes.create(name=name, dimension=4, spec=ServerlessSpec(cloud="aws", region="us-east-1"), timeout=-1)
    admin.reset_requests()
    pc.indexes.list()
    pc.indexes.describe(name)
    assert admin.requests() == {"GET /indexes": 1, f"GET /indexes/{name}": 1}
    pc.indexes.configure(name, tags={"a": "b"})
    assert admin.requests()[f"PATCH /indexes/{name}"] == 1
    pc.indexes.delete(name, timeout=-1)


def test_sdk_retries_through_rate_limiting(pc: Pinecone, admin: pinecone_emulator.Admin) -> None:
    admin.reset_requests()
    admin.rate_limit_next(2, retry_after=0)
    pc.indexes.list()
    assert admin.requests() == {"GET /indexes": 3}


def test_service_error_surfaces_without_retries(emulator: process.Running, admin: pinecone_emulator.Admin) -> None:
    admin.fail_next(1, status=503)
    with Pinecone(
        api_key=emulator.env["PAYSCOPE_PINECONE_API_KEY"],
        host=emulator.address,
        retry_config=RetryConfig(max_retries=0),
    ) as once:
        with pytest.raises(ServiceException) as unavailable:
            once.indexes.list()
        assert (unavailable.value.status_code, unavailable.value.error_code) == (503, "UNAVAILABLE")
        once.indexes.list()  # the fault was used up


# ---- the raw wire, without the SDK -------------------------------------------------------------


def test_error_body_has_the_api_shape(emulator: process.Running) -> None:
    response = httpx.get(f"{emulator.address}/indexes/nope-{uuid.uuid4().hex[:6]}", headers=_headers(emulator))
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "status"}
    assert body["status"] == 404
    assert body["error"]["code"] == "NOT_FOUND"
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"X-Pinecone-Api-Version": "2025-10"}, 401, "UNAUTHENTICATED"),
        ({"Api-Key": "wrong", "X-Pinecone-Api-Version": "2025-10"}, 401, "UNAUTHENTICATED"),
        ({"Api-Key": "<key>", "X-Pinecone-Api-Version": "2026-07"}, 400, "INVALID_ARGUMENT"),
        ({"Api-Key": "<key>"}, 400, "INVALID_ARGUMENT"),
    ],
)
def test_headers_are_enforced(emulator: process.Running, headers: dict[str, str], status: int, code: str) -> None:
    key = emulator.env["PAYSCOPE_PINECONE_API_KEY"]
    sent = {k: key if v == "<key>" else v for k, v in headers.items()}
    response = httpx.get(f"{emulator.address}/indexes", headers=sent)
    assert response.json() == {
        "error": {"code": code, "message": response.json()["error"]["message"]},
        "status": status,
    }


_SERVERLESS = {"serverless": {"cloud": "aws", "region": "us-east-1"}}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "Bad_Name", "dimension": 4, "spec": _SERVERLESS}, 400, "INVALID_ARGUMENT"),
        ({"name": "x" * 46, "dimension": 4, "spec": _SERVERLESS}, 400, "INVALID_ARGUMENT"),
        ({"name": "-dash", "dimension": 4, "spec": _SERVERLESS}, 400, "INVALID_ARGUMENT"),
        ({"name": "ok", "dimension": 0, "spec": _SERVERLESS}, 400, "INVALID_ARGUMENT"),
        ({"name": "ok", "dimension": 20001, "spec": _SERVERLESS}, 400, "INVALID_ARGUMENT"),
        ({"name": "ok", "spec": _SERVERLESS}, 400, "INVALID_ARGUMENT"),
        ({"name": "ok", "dimension": "4", "spec": _SERVERLESS}, 422, "UNPROCESSABLE_ENTITY"),
        ({"name": "ok", "dimension": 4, "metric": "manhattan", "spec": _SERVERLESS}, 422, "UNPROCESSABLE_ENTITY"),
        ({"name": "ok", "dimension": 4}, 422, "UNPROCESSABLE_ENTITY"),
        ({"dimension": 4, "spec": _SERVERLESS}, 422, "UNPROCESSABLE_ENTITY"),
        ({"name": "ok", "dimension": 4, "spec": {}}, 422, "UNPROCESSABLE_ENTITY"),
        (
            {"name": "ok", "dimension": 4, "spec": {**_SERVERLESS, "pod": {"environment": "us-east-1-aws"}}},
            400,
            "INVALID_ARGUMENT",
        ),
        (
            {"name": "ok", "dimension": 4, "spec": {"pod": {"environment": "us-east-1-aws", "pod_type": "q9.x3"}}},
            400,
            "INVALID_ARGUMENT",
        ),
        ({"name": "ok", "dimension": 4, "spec": {"pod": {"environment": "moon-base"}}}, 404, "NOT_FOUND"),
        ({"name": "ok", "dimension": 4, "spec": {"serverless": {"cloud": "oracle", "region": "x"}}}, 404, "NOT_FOUND"),
        ({"name": "ok", "dimension": 4, "vector_type": "sparse", "spec": _SERVERLESS}, 400, "INVALID_ARGUMENT"),
    ],
)
def test_invalid_create_bodies_are_rejected(emulator: process.Running, body: object, status: int, code: str) -> None:
    response = httpx.post(f"{emulator.address}/indexes", headers=_headers(emulator), json=body)
    assert (response.status_code, response.json()["error"]["code"], response.json()["status"]) == (status, code, status)


def test_malformed_json_is_a_bad_request(emulator: process.Running) -> None:
    response = httpx.post(f"{emulator.address}/indexes", headers=_headers(emulator), content=b"{not json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "INVALID_ARGUMENT")


def test_rate_limit_fault_answers_429_with_retry_after(
    emulator: process.Running, admin: pinecone_emulator.Admin
) -> None:
    admin.rate_limit_next(1, retry_after=2)
    limited = httpx.get(f"{emulator.address}/indexes", headers=_headers(emulator))
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert limited.json() == {
        "error": {"code": "RESOURCE_EXHAUSTED", "message": limited.json()["error"]["message"]},
        "status": 429,
    }
    assert httpx.get(f"{emulator.address}/indexes", headers=_headers(emulator)).status_code == 200


def test_state_file_keeps_indexes_across_a_restart(tmp_path: Path) -> None:
    first = pinecone_emulator.start(tmp_path, ready_after=0)
    try:
        with Pinecone(api_key=first.env["PAYSCOPE_PINECONE_API_KEY"], host=first.address) as client:
            client.indexes.create(
                name="kept", dimension=3, spec=ServerlessSpec(cloud="aws", region="us-east-1"), timeout=-1
            )
    finally:
        process.stop(first.pids[0])
    second = pinecone_emulator.start(tmp_path, ready_after=0)
    try:
        with Pinecone(api_key=second.env["PAYSCOPE_PINECONE_API_KEY"], host=second.address) as client:
            kept = client.indexes.describe("kept")
            assert (kept.dimension, kept.status.state) == (3, "Ready")
            assert kept.host is not None
            assert kept.host.startswith(second.address)  # the host follows the new port
    finally:
        process.stop(second.pids[0])
