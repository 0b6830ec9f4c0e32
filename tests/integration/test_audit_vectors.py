"""G.isolation.vectors against the Pinecone emulator's data plane (itself held to the official SDK's contract).

Each test creates an index of its own, writes vectors through the data plane as
PayScope would (one namespace per bank, each vector tagged with its bank_id), and
runs the check through a real ``PassSession``. Isolated tenants pass; one vector
of bank-b written into bank-a's namespace fails the check naming it; tenants
without vectors leave the check Unknown, since an empty namespace proves nothing.

What it must not do: leave an index behind, or touch an index it did not create.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from payscope_operator.api import spec, status
from payscope_operator.audit import catalog, runner
from payscope_operator.audit.sources import vectors
from payscope_operator.reconcile import provision, secrets, session, systems
from tests import empty_cluster

pytestmark = pytest.mark.integration

S = status.CheckStatus
DIMENSION = 4


@pytest.fixture
def index(testenv: dict[str, str]) -> Iterator[tuple[str, httpx.Client]]:
    """A fresh ready index and a data-plane client for its host; deleted afterwards."""
    name = f"t-iso-{uuid.uuid4().hex[:12]}"
    headers = {"Api-Key": testenv["PAYSCOPE_PINECONE_API_KEY"], "X-Pinecone-Api-Version": "2025-10"}
    with httpx.Client(base_url=testenv["PAYSCOPE_PINECONE_URL"], headers=headers, timeout=10) as control:
        body = {
            "name": name,
            "dimension": DIMENSION,
            "metric": "cosine",
            "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}},
        }
        control.post("/indexes", json=body).raise_for_status()
        deadline = time.monotonic() + 10
        while not (model := control.get(f"/indexes/{name}").json())["status"]["ready"]:
            assert time.monotonic() < deadline, "the index did not become ready"
            time.sleep(0.1)
        with httpx.Client(base_url=model["host"], headers=headers, timeout=10) as data:
            yield name, data
        control.delete(f"/indexes/{name}")


def _upsert(data: httpx.Client, namespace: str, bank: str, *ids: str) -> None:
    vectors_ = [{"id": i, "values": [1.0, n * 0.1, 0.0, 0.5], "metadata": {"bank_id": bank}} for n, i in enumerate(ids)]
    data.post("/vectors/upsert", json={"namespace": namespace, "vectors": vectors_}).raise_for_status()


async def _audit(testenv: dict[str, str], name: str) -> status.CheckResult:
    desired = spec.PayScopeSpec.model_validate(
        {
            "pinecone": {
                "apiKeySecretRef": {"name": "pinecone", "key": "apiKey"},
                "controllerUrl": testenv["PAYSCOPE_PINECONE_URL"],
                "indexes": [
                    {
                        "name": name,
                        "dimension": DIMENSION,
                        "metric": "cosine",
                        "serverless": {"cloud": "aws", "region": "us-east-1"},
                    }
                ],
            },
            "audit": {"probeTenants": ["bank-a", "bank-b"]},
        }
    )
    values = secrets.Secrets({("pinecone", "apiKey"): SecretStr(testenv["PAYSCOPE_PINECONE_API_KEY"])})
    run = session.PassSession(desired, "ns", "psd", values, (), empty_cluster.EmptyCluster(), session.ClientCache())
    run.observations = provision.ledger(systems.PROVISIONERS, run)  # the indexes, read once as the pass reads them
    try:
        checks = [c for c in catalog.CATALOG if c.source is vectors.ISOLATION]
        report = await runner.run(checks, run, today=datetime.date(2026, 11, 28))
    finally:
        await run.clients.close()
    (result,) = report.results
    return result


async def test_isolated_tenants_pass(testenv: dict[str, str], index: tuple[str, httpx.Client]) -> None:
    name, data = index
    _upsert(data, "bank-a", "bank-a", "a-1", "a-2")
    _upsert(data, "bank-b", "bank-b", "b-1")
    result = await _audit(testenv, name)
    assert result.status == S.PASS, result.message
    assert "2 tenant namespace(s) hold vectors and none matches another tenant's bank_id" in result.message


async def test_another_tenants_vector_in_a_namespace_fails(
    testenv: dict[str, str], index: tuple[str, httpx.Client]
) -> None:
    name, data = index
    _upsert(data, "bank-a", "bank-a", "a-1", "a-2")
    _upsert(data, "bank-b", "bank-b", "b-1")
    _upsert(data, "bank-a", "bank-b", "b-stray")  # bank-b's document written into bank-a's namespace
    result = await _audit(testenv, name)
    assert result.status == S.FAIL, result.message
    assert f"{name}/bank-a holds bank-b's b-stray" in result.message


async def test_empty_namespaces_prove_nothing(testenv: dict[str, str], index: tuple[str, httpx.Client]) -> None:
    name, _ = index
    result = await _audit(testenv, name)
    assert result.status == S.WARN, result.message
    assert "No probe tenant's namespace holds vectors yet" in result.message
