"""The Pinecone provisioner against the control-plane emulator of the test environment.

Every test uses index names of its own (the emulator is shared) and deletes them at
the end. Changes are counted server-side with the emulator's request counters
(before/after deltas, never a reset: other tests may share the emulator), and
faults are injected through ``/_emulator/faults``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
import traceback
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from payscope_operator import errors
from payscope_operator.api import conditions, status, stores_spec
from payscope_operator.backends import base, ownership, pinecone
from tests.testenv import pinecone_emulator, process

State = status.ProvisionState
FAST = pinecone.client.RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, budget=5.0)
CHANGE_METHODS = ("POST", "PATCH", "DELETE")
OWNER = ownership.Owner("9e8d7c6b-0000-4000-8000-00000000bbbb", "payscope", "prod")
Provisioner = functools.partial(pinecone.provisioner.PineconeProvisioner, owner=OWNER)
"""The provisioner of one resource (OWNER): what it creates records OWNER."""


# ---- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def pinecone_url(testenv: dict[str, str]) -> str:
    return testenv["PAYSCOPE_PINECONE_URL"]


@pytest.fixture
def api_key(testenv: dict[str, str]) -> str:
    return testenv["PAYSCOPE_PINECONE_API_KEY"]


@pytest.fixture
def admin(pinecone_url: str) -> Iterator[pinecone_emulator.Admin]:
    control = pinecone_emulator.Admin(pinecone_url)
    control.clear_faults()
    yield control
    control.clear_faults()


def _raw(url: str, key: str) -> httpx.Client:
    """A plain client for out-of-band edits, as a person with the console would make."""
    return httpx.Client(base_url=url, headers={"Api-Key": key, "X-Pinecone-Api-Version": "2025-10"}, timeout=10)


@pytest.fixture
def names(pinecone_url: str, api_key: str) -> Iterator[Callable[[str], str]]:
    """Unique index names (at most 45 characters); every one is deleted at the end."""
    made: list[str] = []

    def make(prefix: str) -> str:
        name = f"t-{prefix}-{uuid.uuid4().hex[:12]}"
        assert len(name) <= 45
        made.append(name)
        return name

    yield make
    with _raw(pinecone_url, api_key) as raw:
        for name in made:
            raw.patch(f"/indexes/{name}", json={"deletion_protection": "disabled"})
            raw.delete(f"/indexes/{name}")


@pytest.fixture
async def http(pinecone_url: str, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    client = pinecone.client.connect(pinecone_url, api_key)
    yield client
    await client.aclose()


def section(*indexes: dict[str, object]) -> stores_spec.Pinecone:
    return stores_spec.Pinecone.model_validate(
        {"apiKeySecretRef": {"name": "pinecone", "key": "apiKey"}, "indexes": list(indexes)}
    )


def serverless(name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "dimension": 16, "serverless": {"cloud": "aws", "region": "us-east-1"}, **extra}


def pod(name: str, *, replicas: int = 1, **extra: object) -> dict[str, object]:
    layout = {"environment": "us-east-1-aws", "podType": "p1.x1", "replicas": replicas, "shards": 1}
    return {"name": name, "dimension": 8, "metric": "dotproduct", "pod": layout, **extra}


async def run_pass(provisioner: pinecone.provisioner.PineconeProvisioner) -> base.Plan:
    """One reconcile pass under managementPolicy Full: observe, plan, apply every action."""
    plan = provisioner.plan(await provisioner.observe())
    for action in plan.actions:
        await provisioner.apply(action)
    return plan


async def settle(provisioner: pinecone.provisioner.PineconeProvisioner) -> base.Plan:
    """Observe until nothing is Pending (indexes initialise or scale for a moment), at most 10 s."""
    deadline = time.monotonic() + 10.0
    while True:
        plan = provisioner.plan(await provisioner.observe())
        if all(obj.state is not State.PENDING for obj in plan.objects) or time.monotonic() > deadline:
            return plan
        await asyncio.sleep(0.1)


def changes(before: dict[str, int], after: dict[str, int]) -> Counter[str]:
    """Change requests (POST, PATCH, DELETE) the emulator received between two snapshots."""
    delta = Counter(after)
    delta.subtract(before)
    return Counter({k: n for k, n in delta.items() if n and k.startswith(CHANGE_METHODS)})


def describe(url: str, key: str, name: str) -> dict[str, object]:
    with _raw(url, key) as raw:
        response = raw.get(f"/indexes/{name}")
    response.raise_for_status()
    body: dict[str, object] = response.json()
    return body


# ---- create, idempotence, drift ------------------------------------------------------------


async def test_creates_from_nothing_and_an_unchanged_pass_sends_no_change(
    http: httpx.AsyncClient, admin: pinecone_emulator.Admin, names: Callable[[str], str], pinecone_url: str,
    api_key: str,
) -> None:  # fmt: skip
    rag, pods = names("rag"), names("pods")
    desired = section(
        serverless(rag, metric="euclidean", deletionProtection=True, tags={"team": "risk"}),
        pod(pods, tags={"env": "test"}),
    )
    first = Provisioner(desired, http, ready_wait=5.0)

    plan = await run_pass(first)

    assert [(type(a), a.target) for a in plan.actions] == [
        (pinecone.model.CreateIndex, rag),
        (pinecone.model.CreateIndex, pods),
    ]
    assert [obj.state for obj in plan.objects] == [State.MISSING, State.MISSING]
    assert first.changes_sent == 2
    created = describe(pinecone_url, api_key, rag)
    assert created["tags"] == {"team": "risk", **pinecone.model.owner_tags(OWNER)}
    assert (created["dimension"], created["metric"], created["deletion_protection"]) == (16, "euclidean", "enabled")
    created_spec = created["spec"]
    assert isinstance(created_spec, dict)
    assert (created_spec["serverless"]["cloud"], created_spec["serverless"]["region"]) == ("aws", "us-east-1")
    pod_spec = describe(pinecone_url, api_key, pods)["spec"]
    assert isinstance(pod_spec, dict)
    assert pod_spec["pod"] == {
        "environment": "us-east-1-aws",
        "pod_type": "p1.x1",
        "replicas": 1,
        "shards": 1,
        "pods": 1,
    }

    # The second pass, by a fresh provisioner as after an operator restart.
    again = Provisioner(desired, http)
    settled = await settle(again)
    assert settled.converged, settled
    before = admin.requests()
    second = await run_pass(again)
    after = admin.requests()

    assert second.actions == ()
    assert [obj.state for obj in second.objects] == [State.READY, State.READY]
    assert changes(before, after) == Counter()
    assert after["GET /indexes"] - before.get("GET /indexes", 0) == 1  # the whole pass is one list call
    assert again.changes_sent == 0


async def test_a_new_index_is_pending_until_ready(http: httpx.AsyncClient, names: Callable[[str], str]) -> None:
    name = names("slow")
    provisioner = Provisioner(section(serverless(name)), http, ready_wait=0)
    await run_pass(provisioner)

    (obj,) = provisioner.plan(await provisioner.observe()).objects
    assert (obj.state, obj.message) == (State.PENDING, "Initializing, not Ready yet")

    (obj,) = (await settle(provisioner)).objects
    assert obj.state is State.READY


async def test_out_of_band_edits_are_drift_and_restored(
    http: httpx.AsyncClient, admin: pinecone_emulator.Admin, names: Callable[[str], str], pinecone_url: str,
    api_key: str,
) -> None:  # fmt: skip
    rag, pods = names("drift"), names("driftpod")
    desired = section(
        serverless(rag, deletionProtection=True, tags={"team": "risk", "tier": "gold"}),
        pod(pods, replicas=2),
    )
    provisioner = Provisioner(desired, http, ready_wait=5.0)
    await run_pass(provisioner)
    assert (await settle(provisioner)).converged

    with _raw(pinecone_url, api_key) as raw:  # someone edits both indexes in the console
        raw.patch(
            f"/indexes/{rag}",
            json={"deletion_protection": "disabled", "tags": {"team": "ops", "tier": "", "cost": "c-17"}},
        ).raise_for_status()
        raw.patch(f"/indexes/{pods}", json={"spec": {"pod": {"replicas": 1}}}).raise_for_status()
    await settle(provisioner)  # let the pod scaling finish

    before = admin.requests()
    plan = await run_pass(provisioner)
    after = admin.requests()

    assert [(obj.name, obj.state) for obj in plan.objects] == [(rag, State.DRIFTED), (pods, State.DRIFTED)]
    assert all(action.drift and isinstance(action, pinecone.model.ConfigureIndex) for action in plan.actions)
    assert [action.describe() for action in plan.actions] == [
        f"pinecone: update PineconeIndex {rag} (deletion protection off -> on; tags team, tier set as declared)",
        f"pinecone: update PineconeIndex {pods} (replicas 1 -> 2)",
    ]
    assert changes(before, after) == Counter({f"PATCH /indexes/{rag}": 1, f"PATCH /indexes/{pods}": 1})
    restored = describe(pinecone_url, api_key, rag)
    assert restored["deletion_protection"] == "enabled"
    # Declared tags restored, the undeclared tag left alone, the managed tag kept.
    assert restored["tags"] == {"team": "risk", "tier": "gold", "cost": "c-17", **pinecone.model.owner_tags(OWNER)}
    assert (await settle(provisioner)).converged


async def test_an_index_found_in_place_is_foreign_and_never_changed_until_adopted(
    http: httpx.AsyncClient, admin: pinecone_emulator.Admin, names: Callable[[str], str], pinecone_url: str,
    api_key: str,
) -> None:  # fmt: skip
    name = names("adopt")
    with _raw(pinecone_url, api_key) as raw:
        body = {"name": name, "dimension": 16, "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}}}
        raw.post("/indexes", json=body).raise_for_status()
    declared = serverless(name, tags={"team": "risk"}, deletionProtection=True)
    provisioner = Provisioner(section(declared), http)
    await settle(provisioner)

    before = admin.requests()
    plan = await run_pass(provisioner)
    assert changes(before, admin.requests()) == Counter()  # nothing sent to an index this resource did not create
    assert plan.actions == ()
    found = describe(pinecone_url, api_key, name)
    assert (found.get("tags") or {}, found["deletion_protection"]) == ({}, "disabled")
    (obj,) = plan.objects
    assert (obj.state, obj.matches) == (State.FOREIGN, False)
    assert "not created by this resource" in obj.message
    assert "deletion protection off -> on" in obj.message  # what Full management would have changed

    adopting = Provisioner(section({**declared, "adopt": True}), http)
    await run_pass(adopting)
    tags = describe(pinecone_url, api_key, name)["tags"]
    assert tags == {"team": "risk", **pinecone.model.owner_tags(OWNER)}
    assert describe(pinecone_url, api_key, name)["deletion_protection"] == "enabled"
    (obj,) = (await settle(adopting)).objects
    assert obj.state is State.READY


async def test_a_second_resource_declaring_the_same_index_is_refused(
    http: httpx.AsyncClient, admin: pinecone_emulator.Admin, names: Callable[[str], str], pinecone_url: str,
    api_key: str,
) -> None:  # fmt: skip
    name = names("twice")
    await settle_created(Provisioner(section(serverless(name)), http, ready_wait=5.0))
    other = ownership.Owner("0f0f0f0f-0000-4000-8000-00000000ffff", "team-b", "payscope")
    second = pinecone.provisioner.PineconeProvisioner(
        section(serverless(name, adopt=True, deletionProtection=True)), http, owner=other
    )

    before = admin.requests()
    plan = await run_pass(second)
    result = await second.teardown()

    assert changes(before, admin.requests()) == Counter()
    (obj,) = plan.objects
    assert (obj.state, obj.reason) == (State.FOREIGN, conditions.Reason.OWNED_BY_ANOTHER_RESOURCE)
    (blocker,) = plan.blockers
    assert (blocker.reason, blocker.permanent) == (conditions.Reason.OWNED_BY_ANOTHER_RESOURCE, True)
    assert f"{OWNER.resource} (uid {OWNER.uid})" in blocker.message
    assert result.kept == (f"{name}: owned by PayScopeDeployment {OWNER.resource} (uid {OWNER.uid})",)
    assert describe(pinecone_url, api_key, name)["deletion_protection"] == "disabled"


async def settle_created(provisioner: pinecone.provisioner.PineconeProvisioner) -> None:
    await run_pass(provisioner)
    assert all(o.state is State.READY for o in (await settle(provisioner)).objects)


# ---- what cannot be provisioned ----------------------------------------------------------------


async def test_a_different_dimension_is_index_spec_immutable_and_nothing_is_sent(
    http: httpx.AsyncClient, admin: pinecone_emulator.Admin, names: Callable[[str], str], pinecone_url: str,
    api_key: str,
) -> None:  # fmt: skip
    name = names("dim")
    await run_pass(Provisioner(section(serverless(name)), http, ready_wait=0))
    changed = Provisioner(section(serverless(name, dimension=32, tags={"team": "risk"})), http)

    before = admin.requests()
    plan = await run_pass(changed)
    after = admin.requests()

    (obj,) = plan.objects
    assert (obj.state, obj.reason) == (State.FAILED, conditions.Reason.INDEX_SPEC_IMMUTABLE)
    assert "dimension is 16, spec says 32" in obj.message
    (blocker,) = plan.blockers
    assert (blocker.reason, blocker.permanent) == ("IndexSpecImmutable", True)
    assert plan.actions == ()
    assert changes(before, after) == Counter()
    assert describe(pinecone_url, api_key, name)["dimension"] == 16  # never deleted and recreated


async def test_an_unknown_region_is_spec_unsatisfiable(http: httpx.AsyncClient, names: Callable[[str], str]) -> None:
    name = names("far")
    provisioner = Provisioner(section(serverless(name, serverless={"cloud": "aws", "region": "mars-1"})), http)
    (action,) = provisioner.plan(await provisioner.observe()).actions
    with pytest.raises(errors.SpecUnsatisfiable) as refused:
        await provisioner.apply(action)
    assert refused.value.reason == "SpecInvalid"
    assert f"Pinecone cannot create index {name}: HTTP 404 NOT_FOUND" in refused.value.message
    assert "mars-1" in refused.value.message


# ---- teardown --------------------------------------------------------------------------------


async def test_teardown_deletes_only_owned_unprotected_empty_declared_indexes(
    http: httpx.AsyncClient, admin: pinecone_emulator.Admin, names: Callable[[str], str], pinecone_url: str,
    api_key: str,
) -> None:  # fmt: skip
    ours, protected, theirs, undeclared, full = (names(n) for n in ("ours", "prot", "theirs", "undecl", "full"))
    await settle_created(
        Provisioner(
            section(
                serverless(ours),
                serverless(protected, deletionProtection=True),
                serverless(undeclared),
                serverless(full),
            ),
            http,
            ready_wait=5.0,
        )
    )
    with _raw(pinecone_url, api_key) as raw:
        body = {"name": theirs, "dimension": 16, "spec": {"serverless": {"cloud": "aws", "region": "us-east-1"}}}
        raw.post("/indexes", json=body).raise_for_status()
        host = str(raw.get(f"/indexes/{full}").json()["host"])
        vectors = [{"id": f"v{i}", "values": [0.5] * 16} for i in range(3)]
        raw.post(f"{host}/vectors/upsert", json={"vectors": vectors, "namespace": "bank-a"}).raise_for_status()
    declared = section(
        serverless(ours), serverless(protected, deletionProtection=True), serverless(theirs), serverless(full)
    )

    result = await Provisioner(declared, http).teardown()

    assert result.removed == (ours,)
    assert result.kept == (
        f"{protected}: deletion protection is enabled",
        f"{theirs}: not created by this resource",
        f"{full}: it holds 3 vector(s); deletionPolicy Delete never deletes data",
    )
    with _raw(pinecone_url, api_key) as raw:
        present = {index["name"] for index in raw.get("/indexes").json()["indexes"]}
    assert ours not in present
    assert {protected, theirs, undeclared, full} <= present
    assert describe(pinecone_url, api_key, protected)["deletion_protection"] == "enabled"  # never turned off
    assert await Provisioner(section(serverless(ours)), http).teardown() == base.TeardownResult(
        "pinecone"
    )  # a second teardown finds nothing to do


# ---- audit evidence ----------------------------------------------------------------------------


async def test_describe_index_stats_reads_namespace_counts(
    http: httpx.AsyncClient, admin: pinecone_emulator.Admin, names: Callable[[str], str]
) -> None:
    name = names("stats")
    provisioner = Provisioner(section(serverless(name)), http, ready_wait=5.0)
    await run_pass(provisioner)
    admin.set_namespaces(name, {"bank-a": 10, "bank-b": 4, "": 0})
    host = (await provisioner.observe()).indexes[name].host

    admin.reset_requests()
    stats = await pinecone.evidence.describe_index_stats(http, host)

    assert stats == pinecone.model.IndexStats({"bank-a": 10, "bank-b": 4, "": 0}, 16, 14)
    (sent,) = admin.requests()  # one request, nothing else
    assert sent.endswith("/describe_index_stats")


# ---- faults ----------------------------------------------------------------------------------


async def test_rate_limiting_is_retried_after_retry_after(
    http: httpx.AsyncClient, admin: pinecone_emulator.Admin
) -> None:
    provisioner = Provisioner(section(), http, retry=pinecone.client.RetryPolicy(base_delay=0.01))
    admin.rate_limit_next(2, retry_after=0.4, methods=["GET"])
    before = admin.requests()
    started = time.monotonic()

    await provisioner.observe()

    assert time.monotonic() - started >= 0.8  # two waits of Retry-After, not the 10 ms backoff
    assert admin.requests()["GET /indexes"] - before.get("GET /indexes", 0) == 3


async def test_persistent_faults_give_dependency_unavailable_then_recover(
    http: httpx.AsyncClient, admin: pinecone_emulator.Admin
) -> None:
    provisioner = Provisioner(section(), http, retry=FAST)
    admin.fail_next(50, status=503, methods=["GET"])
    before = admin.requests()

    with pytest.raises(errors.DependencyUnavailable) as unavailable:
        await provisioner.observe()

    assert unavailable.value.reason == "DependencyUnavailable"
    assert "GET /indexes failed after 3 attempt(s)" in unavailable.value.message
    assert "HTTP 503" in unavailable.value.message
    assert admin.requests()["GET /indexes"] - before.get("GET /indexes", 0) == 3
    admin.clear_faults()
    await provisioner.observe()


async def test_a_retry_after_beyond_the_budget_gives_up_at_once(
    http: httpx.AsyncClient, admin: pinecone_emulator.Admin
) -> None:
    provisioner = Provisioner(section(), http, retry=FAST)
    admin.rate_limit_next(1, retry_after=60, methods=["GET"])
    started = time.monotonic()
    with pytest.raises(errors.DependencyUnavailable) as unavailable:
        await provisioner.observe()
    assert time.monotonic() - started < 2
    assert unavailable.value.delay == 60  # the caller retries when Pinecone asked


async def test_a_wrong_api_key_is_permission_denied(pinecone_url: str) -> None:
    async with pinecone.client.connect(pinecone_url, "pcsk_wrong_key_0123456789") as wrong:
        with pytest.raises(errors.PermissionDenied) as denied:
            await Provisioner(section(), wrong).observe()
    assert denied.value.reason == "PermissionDenied"
    assert denied.value.message == "Pinecone GET /indexes: HTTP 401 UNAUTHENTICATED: Invalid API Key"


def _closed_port() -> int:
    return process.free_port()  # bound and released: nothing listens there


async def test_an_unreachable_server_is_dependency_unavailable(names: Callable[[str], str]) -> None:
    async with pinecone.client.connect(f"http://127.0.0.1:{_closed_port()}", "pcsk_any") as nowhere:
        provisioner = Provisioner(section(serverless(names("gone"))), nowhere, retry=FAST)
        with pytest.raises(errors.DependencyUnavailable) as unavailable:
            await provisioner.observe()
    assert unavailable.value.reason == "DependencyUnavailable"
    assert "ConnectError" in unavailable.value.message
    assert unavailable.value.__cause__ is None


def _spawn_emulator(port: int, key: str, state: Path) -> int:
    """An emulator of this test's own on a fixed port, so that it can be stopped and started again."""
    argv = [
        sys.executable, "-m", "tests.testenv.pinecone_emulator",
        "--port", str(port), "--state", str(state), "--ready-after", "0.2",
    ]  # fmt: skip
    repo = Path(__file__).resolve().parents[2]
    pid = process.spawn(argv, log=state.with_suffix(".log"), env={pinecone_emulator.API_KEY_ENV: key}, cwd=repo)
    process.wait_until(lambda: process.tcp_open(port), what="pinecone emulator", timeout=30, pid=pid)
    return pid


async def test_a_server_stopped_between_passes_fails_transiently_and_recovers(tmp_path: Path) -> None:
    port, key = process.free_port(), f"pcsk_{uuid.uuid4().hex}"
    state = tmp_path / "pinecone.json"
    desired = section(serverless("payscope-rag", tags={"team": "risk"}))
    pid = _spawn_emulator(port, key, state)
    try:
        async with pinecone.client.connect(f"http://127.0.0.1:{port}", key) as client:
            provisioner = Provisioner(desired, client, retry=FAST, ready_wait=5.0)
            await run_pass(provisioner)
            process.stop(pid)

            with pytest.raises(errors.DependencyUnavailable):
                await run_pass(provisioner)

            pid = _spawn_emulator(port, key, state)  # back, with its indexes
            plan = await run_pass(provisioner)
            assert plan.actions == ()
            assert plan.converged
            assert provisioner.changes_sent == 1  # the first create, nothing since
    finally:
        process.stop(pid)


async def test_the_api_key_appears_in_no_exception_or_log_record(
    http: httpx.AsyncClient, admin: pinecone_emulator.Admin, names: Callable[[str], str], api_key: str,
    pinecone_url: str, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    failures: list[BaseException] = []
    provisioner = Provisioner(section(serverless(names("leak"))), http, retry=FAST)

    admin.fail_next(50, status=503)
    with pytest.raises(errors.DependencyUnavailable) as unavailable:
        await run_pass(provisioner)
    failures.append(unavailable.value)
    admin.clear_faults()
    admin.rate_limit_next(50, retry_after=0)
    with pytest.raises(errors.DependencyUnavailable) as limited:
        await run_pass(provisioner)
    failures.append(limited.value)
    admin.clear_faults()
    async with pinecone.client.connect(f"http://127.0.0.1:{_closed_port()}", api_key) as nowhere:
        with pytest.raises(errors.DependencyUnavailable) as unreachable:
            await run_pass(Provisioner(section(), nowhere, retry=FAST))
    failures.append(unreachable.value)
    hasty = Provisioner(section(), http, retry=FAST, timeout=httpx.Timeout(0.000001))
    with pytest.raises(errors.DependencyUnavailable) as timed_out:
        await run_pass(hasty)
    assert timed_out.value.reason == "DependencyTimeout"
    failures.append(timed_out.value)
    bad = section(serverless(names("bad"), serverless={"cloud": "aws", "region": "mars-1"}))
    with pytest.raises(errors.SpecUnsatisfiable) as refused:
        await run_pass(Provisioner(bad, http, retry=FAST))
    failures.append(refused.value)

    assert caplog.records, "the failing passes logged their retries"
    for failure in failures:
        text = "".join(traceback.format_exception(failure)) + repr(failure)
        assert api_key not in text
        assert failure.__cause__ is None
    for record in caplog.records:
        assert api_key not in record.getMessage()
        assert api_key not in (record.exc_text or "")
        assert api_key not in repr(record.args)
