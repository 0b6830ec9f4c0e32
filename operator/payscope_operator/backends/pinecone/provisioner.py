"""Pinecone indexes: observe, apply and tear down (control-plane API 2025-10).

Why this module exists: PayScope's RAG agents need Pinecone indexes of a known
dimension, metric and placement. This provisioner lists the project's indexes, has the
pure :func:`plan.plan_pinecone` decide, and creates or patches the declared ones; the
audit shares the observation (and reads index statistics through ``evidence``).
``client`` does the HTTP (timeouts, retries, error mapping, redaction); this module
maps the wire shapes to ``model`` and back.

- Ownership tags (``managed-by: payscope-operator``, ``payscope-owner-uid``,
  ``payscope-owner``) are written when this resource creates an index, migrates one an
  earlier operator version created, or adopts one (``adopt: true``). They are never
  added to an index found in place otherwise (that would claim an index the resource did
  not create) nor restored: removing them by hand disowns the index, which is then
  Foreign and teardown keeps it.
- Teardown never turns ``deletion_protection`` off (a protected index is kept), and never
  deletes an index holding vectors (``evidence.describe_index_stats`` total above 0) or one
  whose count cannot be read: ``deletionPolicy: Delete`` removes empty indexes, never data.
- A new index is awaited for at most ``ready_wait`` seconds; one still initialising is
  Pending, and the next pass sees it Ready.

What it must not do: change an index its resource does not own; delete an index that
another resource or nobody owns, has deletion protection on, holds vectors, or is not
declared; delete and recreate an index on its own; put the API
key anywhere (it lives only in the httpx client's headers); import reconcile, main,
kube or kopf.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from payscope_operator import errors
from payscope_operator.api import conditions, stores_spec
from payscope_operator.backends import base, ownership
from payscope_operator.backends.pinecone import client, evidence, model, plan

_log = logging.getLogger(__name__)


def _protection(enabled: bool) -> str:
    return "enabled" if enabled else "disabled"


def _create_body(index: stores_spec.PineconeIndex, owner: ownership.Owner) -> client.CreateIndexWire:
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
        "tags": {**index.tags, **model.owner_tags(owner)},
        "spec": spec,
    }


def _configure_body(action: model.ConfigureIndex) -> client.ConfigureIndexWire:
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


def _observed(wire: client.IndexWire) -> model.ObservedIndex:
    spec = wire["spec"]
    serverless = spec.get("serverless")
    pod = spec.get("pod")
    return model.ObservedIndex(
        name=wire["name"],
        dimension=wire.get("dimension"),
        metric=wire["metric"],
        vector_type=wire.get("vector_type") or "dense",
        cloud=serverless["cloud"] if serverless else None,
        region=serverless["region"] if serverless else None,
        pod=model.PodLayout(pod["environment"], pod["pod_type"], pod["replicas"], pod["shards"]) if pod else None,
        deletion_protection=wire.get("deletion_protection") == "enabled",
        tags=dict(wire.get("tags") or {}),
        ready=wire["status"]["ready"],
        state=wire["status"]["state"],
        host=wire["host"],
    )


class PineconeProvisioner:
    """Provisions ``spec.pinecone.indexes``.

    ``http`` comes from :func:`client.connect` (one per resource, kept and
    closed by the caller); ``retry``, ``timeout`` and ``ready_wait`` bound how long
    one pass may take.
    """

    system = model.SYSTEM

    def __init__(
        self,
        desired: stores_spec.Pinecone,
        http: httpx.AsyncClient,
        *,
        owner: ownership.Owner,
        retry: client.RetryPolicy | None = None,
        timeout: httpx.Timeout = client.DEFAULT_TIMEOUT,
        ready_wait: float = 2.0,
        poll_interval: float = 0.25,
    ) -> None:
        self._desired = desired
        self._owner = owner
        self._http, self._retry, self._timeout = http, retry or client.RetryPolicy(), timeout
        self._client = client.Client(http, retry=self._retry, timeout=timeout)
        self._ready_wait = ready_wait
        self._poll_interval = poll_interval

    @property
    def changes_sent(self) -> int:
        """Change requests (POST, PATCH, DELETE) this provisioner sent, retries included."""
        return self._client.changes_sent

    async def observe(self) -> model.ObservedVectors:
        """Every index of the project (one ``GET /indexes``)."""
        response = await self._client.send("GET", "/indexes")
        listing = self._client.decode(client.INDEX_LIST, response, "GET /indexes")
        return model.ObservedVectors({wire["name"]: _observed(wire) for wire in listing["indexes"]})

    def plan(self, observed: model.ObservedVectors) -> base.Plan:
        return plan.plan_pinecone(self._desired, observed, owner=self._owner)

    async def apply(self, action: base.Action) -> None:
        """Carry out a :class:`model.CreateIndex` or :class:`model.ConfigureIndex`."""
        if isinstance(action, model.CreateIndex):
            await self._create(action.index)
        elif isinstance(action, model.ConfigureIndex):
            path = client.index_path(action.target)
            response = await self._client.send("PATCH", path, json=_configure_body(action), expect=(404,))
            if response.status_code == 404:
                _log.info("Pinecone index %s disappeared before it could be configured", action.target)
        else:
            raise TypeError(f"not a Pinecone action: {action.describe()}")

    async def teardown(self) -> base.TeardownResult:
        """Delete the declared indexes this resource owns that hold no vector and have no deletion protection.

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
            if have.mark.uid != self._owner.uid:
                kept.append(f"{want.name}: {ownership.why_kept(ownership.judge(self._owner, have.mark, adopt=False))}")
            elif have.deletion_protection:
                kept.append(f"{want.name}: deletion protection is enabled")
            elif (vectors := await self._vector_count(have)) != 0:
                what = "its vector count could not be read" if vectors is None else f"it holds {vectors} vector(s)"
                kept.append(f"{want.name}: {what}; deletionPolicy Delete never deletes data")
            else:
                path = client.index_path(want.name)
                response = await self._client.send("DELETE", path, expect=(403, 404))
                if response.status_code == 403:
                    kept.append(f"{want.name}: Pinecone refused the deletion ({self._client.error_text(response)})")
                elif response.status_code != 404:
                    removed.append(want.name)
        return base.TeardownResult(model.SYSTEM, tuple(removed), tuple(kept))

    async def _vector_count(self, index: model.ObservedIndex) -> int | None:
        """The index's total vector count, or None when it cannot be read (then the index is kept)."""
        if not index.host:
            return None
        try:
            stats = await evidence.describe_index_stats(
                self._http, index.host, retry=self._retry, timeout=self._timeout
            )
        except errors.PayScopeError as exc:
            _log.warning("Pinecone index %s: cannot count its vectors, keeping it: %s", index.name, exc.message)
            return None
        return stats.total_vector_count

    async def _create(self, index: stores_spec.PineconeIndex) -> None:
        path = client.index_path(index.name)
        response = await self._client.send("POST", "/indexes", json=_create_body(index, self._owner), expect=(404, 409))
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
