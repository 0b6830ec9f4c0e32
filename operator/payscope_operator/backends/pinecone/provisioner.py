"""Pinecone indexes: observe, plan (pure), apply and tear down (control-plane API 2025-10).

Why this module exists: PayScope's RAG agents need Pinecone indexes of a known
dimension, metric and placement. This provisioner creates the declared indexes and
keeps their ``deletion_protection``, declared tags and pod sizing as declared; the
audit reads ``observe`` and :meth:`VectorProvisioner.describe_index_stats`.
``vectors_client`` does the HTTP (timeouts, retries, error mapping, redaction).

Policies:

- Tags: declared tags are enforced (a changed or removed declared tag is drift and is
  set again); tags nobody declared are left alone (other tools, billing for one, tag
  indexes too), and a tag removed from the spec stays on the index. Pinecone's PATCH
  merges tags, so the operator sends only the declared tags that differ and never an
  empty value (which would delete a tag).
- The managed tag ``managed-by: payscope-operator`` is written only when this operator
  creates an index. It is never added to an index found in place (that would claim an
  index the operator did not create) nor restored: removing it by hand disowns the
  index, which teardown then keeps.
- An existing index that differs in dimension, metric, vector type, serverless/pod,
  cloud, region, pod environment, shards or a pod type not reachable by scaling up is
  Failed with ``IndexSpecImmutable`` and a permanent blocker naming the fields. Pod
  replicas and a larger pod type of the same family are patched (drift).
- ``deletion_protection`` follows the spec in both directions while the resource
  lives; teardown never turns it off: a protected index is kept.
- A new index is awaited for at most ``ready_wait`` seconds; one still initialising is
  Pending, and the next pass sees it Ready.

What it must not do: delete an index that lacks the managed tag, has deletion
protection on, or is not declared; delete and recreate an index on its own; put the API
key anywhere (it lives only in the httpx client's headers); import reconcile, main,
kube or kopf.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from payscope_operator import errors
from payscope_operator.api import conditions, fields, status, stores_spec
from payscope_operator.backends import base
from payscope_operator.backends.pinecone import client

SYSTEM = "pinecone"
KIND = "PineconeIndex"
TAG_VALUE_PATTERN = r"^[A-Za-z0-9;@_\-.+ ]{1,120}$"
"""A tag value Pinecone accepts (an empty value would delete the tag, so it is refused too)."""

_log = logging.getLogger(__name__)
_BROKEN = frozenset({"InitializationFailed", "Disabled"})


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


# ---- planning (pure) -----------------------------------------------------------------------


def _on_off(enabled: bool) -> str:
    return "on" if enabled else "off"


def _placement(index: stores_spec.PineconeIndex) -> str:
    if index.serverless is not None:
        return f"serverless {index.serverless.cloud}/{index.serverless.region}"
    assert index.pod is not None
    pod = index.pod
    return f"pod {pod.environment} {pod.pod_type} x{pod.shards} shards x{pod.replicas} replicas"


def _pod_size(pod_type: str) -> tuple[str, int]:
    family, _, size = pod_type.partition(".x")
    return family, int(size) if size.isdigit() else 0


def _immutable_differences(want: stores_spec.PineconeIndex, have: ObservedIndex) -> list[str]:
    """Fields Pinecone cannot change on an existing index, with both values."""
    found: list[str] = []

    def differs(name: str, actual: object, declared: object) -> None:
        if actual != declared:
            found.append(f"{name} is {actual}, spec says {declared}")

    differs("vector_type", have.vector_type, "dense")
    differs("dimension", have.dimension, want.dimension)
    differs("metric", have.metric, want.metric.value)
    if want.serverless is not None:
        if have.pod is not None:
            found.append("placement is pod, spec says serverless")
        else:
            differs("cloud", have.cloud, want.serverless.cloud.value)
            differs("region", have.region, want.serverless.region)
    elif want.pod is not None:
        if have.pod is None:
            found.append("placement is serverless, spec says pod")
        else:
            differs("environment", have.pod.environment, want.pod.environment)
            differs("shards", have.pod.shards, want.pod.shards)
            (have_family, have_size), (want_family, want_size) = (
                _pod_size(have.pod.pod_type),
                _pod_size(want.pod.pod_type),
            )
            if have_family != want_family or want_size < have_size:
                found.append(f"pod_type is {have.pod.pod_type}, spec says {want.pod.pod_type} (pods only scale up)")
    return found


def _spec_problems(want: stores_spec.PineconeIndex) -> list[str]:
    """What makes a declared index unprovisionable before asking Pinecone."""
    problems: list[str] = []
    if not re.fullmatch(fields.PINECONE_INDEX_PATTERN, want.name):
        problems.append("the name is not a valid Pinecone index name")
    if base.MANAGED_TAG_KEY in want.tags:
        problems.append(f"tag {base.MANAGED_TAG_KEY} is reserved for the operator")
    for key, value in want.tags.items():
        if not re.fullmatch(stores_spec.TAG_KEY_PATTERN, key) or not re.fullmatch(TAG_VALUE_PATTERN, value):
            problems.append(f"tag {key}: values are 1-120 letters, digits, ';', '@', '_', '-', '.', '+' or ' '")
    return problems


def _configure_for(want: stores_spec.PineconeIndex, have: ObservedIndex) -> ConfigureIndex | None:
    """The PATCH that makes the mutable fields match, or None when they already do."""
    changes: list[str] = []
    protection: bool | None = None
    if have.deletion_protection != want.deletion_protection:
        protection = want.deletion_protection
        changes.append(f"deletion protection {_on_off(have.deletion_protection)} -> {_on_off(protection)}")
    tags = tuple(sorted((k, v) for k, v in want.tags.items() if have.tags.get(k) != v))
    if tags:
        changes.append("tags " + ", ".join(k for k, _ in tags) + " set as declared")
    replicas: int | None = None
    pod_type: str | None = None
    if want.pod is not None and have.pod is not None:
        if have.pod.replicas != want.pod.replicas:
            replicas = want.pod.replicas
            changes.append(f"replicas {have.pod.replicas} -> {replicas}")
        if have.pod.pod_type != want.pod.pod_type:
            pod_type = want.pod.pod_type
            changes.append(f"pod_type {have.pod.pod_type} -> {pod_type}")
    if not changes:
        return None
    return ConfigureIndex(
        system=SYSTEM,
        verb=base.Verb.UPDATE,
        kind=KIND,
        target=want.name,
        detail="; ".join(changes),
        drift=True,  # the index exists and differs: an out-of-band edit or a spec edit look alike
        deletion_protection=protection,
        tags=tags,
        replicas=replicas,
        pod_type=pod_type,
    )


def _plan_index(
    want: stores_spec.PineconeIndex, have: ObservedIndex | None
) -> tuple[base.ObjectState, base.Action | None, base.Blocker | None]:
    def failed(reason: str, message: str) -> tuple[base.ObjectState, None, base.Blocker]:
        state = base.ObjectState(KIND, want.name, status.ProvisionState.FAILED, reason, message)
        return state, None, base.Blocker(reason, message, permanent=True)

    if problems := _spec_problems(want):
        return failed(conditions.Reason.SPEC_INVALID, f"Pinecone index {want.name}: " + "; ".join(problems))
    if have is None:
        detail = f"{_placement(want)}, dimension {want.dimension}, {want.metric.value}"
        detail += f", deletion protection {_on_off(want.deletion_protection)}"
        create = CreateIndex(
            system=SYSTEM, verb=base.Verb.CREATE, kind=KIND, target=want.name, detail=detail, index=want
        )
        return base.ObjectState(KIND, want.name, status.ProvisionState.MISSING, "", "not found"), create, None
    if immutable := _immutable_differences(want, have):
        message = (
            f"Pinecone index {want.name}: " + "; ".join(immutable) + ". Pinecone cannot change this on an existing"
            " index and the operator never recreates one: delete the index by hand or declare another name"
        )
        return failed(conditions.Reason.INDEX_SPEC_IMMUTABLE, message)
    if have.state in _BROKEN:
        message = f"Pinecone index {want.name} is {have.state}; it needs attention in the Pinecone console"
        return failed(conditions.Reason.PROVISIONING_FAILED, message)
    if have.state == "Terminating":
        message = "being deleted; it will be created again once it is gone"
        return base.ObjectState(KIND, want.name, status.ProvisionState.PENDING, "", message), None, None
    adopted = "" if have.managed else "found in place, not created by the operator: never deleted by it"
    configure = _configure_for(want, have)
    if configure is not None:
        state = base.ObjectState(KIND, want.name, status.ProvisionState.DRIFTED, "", configure.detail)
    elif not have.ready or have.state != "Ready":
        state = base.ObjectState(KIND, want.name, status.ProvisionState.PENDING, "", f"{have.state}, not Ready yet")
    else:
        state = base.ObjectState(KIND, want.name, status.ProvisionState.READY, "", adopted)
    return state, configure, None


def plan_vectors(desired: stores_spec.Pinecone, observed: ObservedVectors) -> base.Plan:
    """Actions that make the declared indexes exist and match; undeclared indexes are ignored."""
    objects: list[base.ObjectState] = []
    actions: list[base.Action] = []
    blockers: list[base.Blocker] = []
    for want in desired.indexes:
        state, action, blocker = _plan_index(want, observed.indexes.get(want.name))
        objects.append(state)
        if action is not None:
            actions.append(action)
        if blocker is not None:
            blockers.append(blocker)
    return base.Plan(SYSTEM, tuple(actions), tuple(objects), tuple(blockers))


# ---- requests and answers --------------------------------------------------------------------


def _protection(enabled: bool) -> str:
    return "enabled" if enabled else "disabled"


def _create_body(index: stores_spec.PineconeIndex) -> client.CreateIndexWire:
    spec: client.SpecWire = {}
    if index.serverless is not None:
        spec["serverless"] = {"cloud": index.serverless.cloud.value, "region": index.serverless.region}
    elif index.pod is not None:
        pod = index.pod
        spec["pod"] = {
            "environment": pod.environment,
            "pod_type": pod.pod_type,
            "pods": pod.replicas * pod.shards,  # what Pinecone requires; spec.pod.pods is not used
            "replicas": pod.replicas,
            "shards": pod.shards,
        }
    return {
        "name": index.name,
        "dimension": index.dimension,
        "metric": index.metric.value,
        "vector_type": "dense",
        "deletion_protection": _protection(index.deletion_protection),
        "tags": {**index.tags, base.MANAGED_TAG_KEY: base.MANAGED_TAG_VALUE},
        "spec": spec,
    }


def _configure_body(action: ConfigureIndex) -> client.ConfigureIndexWire:
    body: client.ConfigureIndexWire = {}
    if action.deletion_protection is not None:
        body["deletion_protection"] = _protection(action.deletion_protection)
    if action.tags:
        body["tags"] = dict(action.tags)
    pod: client.PodConfigureWire = {}
    if action.replicas is not None:
        pod["replicas"] = action.replicas
    if action.pod_type is not None:
        pod["pod_type"] = action.pod_type
    if pod:
        body["spec"] = {"pod": pod}
    return body


def _observed(wire: client.IndexWire) -> ObservedIndex:
    spec = wire["spec"]
    serverless = spec.get("serverless")
    pod = spec.get("pod")
    return ObservedIndex(
        name=wire["name"],
        dimension=wire.get("dimension"),
        metric=wire["metric"],
        vector_type=wire.get("vector_type") or "dense",
        cloud=serverless["cloud"] if serverless else None,
        region=serverless["region"] if serverless else None,
        pod=PodLayout(pod["environment"], pod["pod_type"], pod["replicas"], pod["shards"]) if pod else None,
        deletion_protection=wire.get("deletion_protection") == "enabled",
        tags=dict(wire.get("tags") or {}),
        ready=wire["status"]["ready"],
        state=wire["status"]["state"],
        host=wire["host"],
    )


# ---- the provisioner -----------------------------------------------------------------------


class VectorProvisioner:
    """Provisions ``spec.pinecone.indexes``.

    ``http`` comes from :func:`client.connect` (one per resource, kept and
    closed by the caller); ``retry``, ``timeout`` and ``ready_wait`` bound how long
    one pass may take.
    """

    system = SYSTEM

    def __init__(
        self,
        desired: stores_spec.Pinecone,
        http: httpx.AsyncClient,
        *,
        retry: client.RetryPolicy | None = None,
        timeout: httpx.Timeout = client.DEFAULT_TIMEOUT,
        ready_wait: float = 2.0,
        poll_interval: float = 0.25,
    ) -> None:
        self._desired = desired
        self._client = client.Client(http, retry=retry or client.RetryPolicy(), timeout=timeout)
        self._ready_wait = ready_wait
        self._poll_interval = poll_interval

    @property
    def changes_sent(self) -> int:
        """Change requests (POST, PATCH, DELETE) this provisioner sent, retries included."""
        return self._client.changes_sent

    async def observe(self) -> ObservedVectors:
        """Every index of the project (one ``GET /indexes``)."""
        response = await self._client.send("GET", "/indexes")
        listing = self._client.decode(client.INDEX_LIST, response, "GET /indexes")
        return ObservedVectors({wire["name"]: _observed(wire) for wire in listing["indexes"]})

    def plan(self, observed: ObservedVectors) -> base.Plan:
        return plan_vectors(self._desired, observed)

    async def apply(self, action: base.Action) -> None:
        """Carry out a :class:`CreateIndex` or :class:`ConfigureIndex`."""
        if isinstance(action, CreateIndex):
            await self._create(action.index)
        elif isinstance(action, ConfigureIndex):
            path = client.index_path(action.target)
            response = await self._client.send("PATCH", path, json=_configure_body(action), expect=(404,))
            if response.status_code == 404:
                _log.info("Pinecone index %s disappeared before it could be configured", action.target)
        else:
            raise TypeError(f"not a Pinecone action: {action.describe()}")

    async def teardown(self) -> base.TeardownResult:
        """Delete the declared indexes that carry the managed tag and have no deletion protection.

        ``kept`` lists every other declared index that exists, with the reason, so that
        the caller can emit a Warning Event. Undeclared indexes are not looked at.
        """
        observed = await self.observe()
        removed: list[str] = []
        kept: list[str] = []
        for want in self._desired.indexes:
            have = observed.indexes.get(want.name)
            if have is None:
                continue
            if not have.managed:
                kept.append(f"{want.name}: not created by the operator (no {base.MANAGED_TAG_KEY} tag)")
            elif have.deletion_protection:
                kept.append(f"{want.name}: deletion protection is enabled")
            else:
                path = client.index_path(want.name)
                response = await self._client.send("DELETE", path, expect=(403, 404))
                if response.status_code == 403:
                    kept.append(f"{want.name}: Pinecone refused the deletion ({self._client.error_text(response)})")
                elif response.status_code != 404:
                    removed.append(want.name)
        return base.TeardownResult(SYSTEM, tuple(removed), tuple(kept))

    async def describe_index_stats(self, host: str) -> IndexStats:
        """Vector counts per namespace of the index served at ``host`` (``ObservedIndex.host``); read-only."""
        url = f"{client.index_url(host)}/describe_index_stats"
        response = await self._client.send("POST", url, json={}, change=False)
        stats = self._client.decode(client.STATS, response, "describe_index_stats")
        namespaces = {ns: summary["vectorCount"] for ns, summary in (stats.get("namespaces") or {}).items()}
        total = stats.get("totalVectorCount")
        return IndexStats(namespaces, stats.get("dimension"), sum(namespaces.values()) if total is None else total)

    async def _create(self, index: stores_spec.PineconeIndex) -> None:
        path = client.index_path(index.name)
        response = await self._client.send("POST", "/indexes", json=_create_body(index), expect=(404, 409))
        if response.status_code == 404:  # unknown cloud, region or environment
            raise errors.SpecUnsatisfiable(
                f"Pinecone cannot create index {index.name}: {self._client.error_text(response)}",
                reason=conditions.Reason.SPEC_INVALID,
            )
        if response.status_code == 409:
            _log.info("Pinecone index %s was created concurrently; the next pass observes it", index.name)
            return
        deadline = time.monotonic() + self._ready_wait
        while time.monotonic() < deadline:
            await asyncio.sleep(self._poll_interval)
            described = await self._client.send("GET", path, expect=(404,))
            if described.status_code != 404:
                model = self._client.decode(client.INDEX, described, f"GET {path}")
                if model["status"]["ready"]:
                    return
