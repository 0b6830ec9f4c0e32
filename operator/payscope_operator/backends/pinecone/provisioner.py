"""Pinecone indexes: observe, apply and tear down (control-plane API 2025-10).

Why this module exists: PayScope's RAG agents need Pinecone indexes of a known
dimension, metric and placement. This provisioner lists the project's indexes, has the
pure :func:`plan.plan_pinecone` decide, and creates or patches the declared ones; the
audit reads ``observe`` and :meth:`PineconeProvisioner.describe_index_stats`.
``client`` does the HTTP (timeouts, retries, error mapping, redaction); this module
maps the wire shapes to ``model`` and back.

- The managed tag ``managed-by: payscope-operator`` is written only when this operator
  creates an index. It is never added to an index found in place (that would claim an
  index the operator did not create) nor restored: removing it by hand disowns the
  index, which teardown then keeps.
- Teardown never turns ``deletion_protection`` off: a protected index is kept.
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
import time

import httpx

from payscope_operator import errors
from payscope_operator.api import conditions, stores_spec
from payscope_operator.backends import base
from payscope_operator.backends.pinecone import client, model, plan

_log = logging.getLogger(__name__)


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

    async def observe(self) -> model.ObservedVectors:
        """Every index of the project (one ``GET /indexes``)."""
        response = await self._client.send("GET", "/indexes")
        listing = self._client.decode(client.INDEX_LIST, response, "GET /indexes")
        return model.ObservedVectors({wire["name"]: _observed(wire) for wire in listing["indexes"]})

    def plan(self, observed: model.ObservedVectors) -> base.Plan:
        return plan.plan_pinecone(self._desired, observed)

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
        return base.TeardownResult(model.SYSTEM, tuple(removed), tuple(kept))

    async def describe_index_stats(self, host: str) -> model.IndexStats:
        """Vector counts per namespace of the index served at ``host`` (``model.ObservedIndex.host``); read-only."""
        url = f"{client.index_url(host)}/describe_index_stats"
        response = await self._client.send("POST", url, json={}, change=False)
        stats = self._client.decode(client.STATS, response, "describe_index_stats")
        namespaces = {ns: summary["vectorCount"] for ns, summary in (stats.get("namespaces") or {}).items()}
        total = stats.get("totalVectorCount")
        return model.IndexStats(
            namespaces, stats.get("dimension"), sum(namespaces.values()) if total is None else total
        )

    async def query_ids(
        self, host: str, namespace: str, vector: list[float], *, top_k: int = 1, where: dict[str, object] | None = None
    ) -> tuple[str, ...]:
        """The ids of the ``top_k`` nearest vectors of ``namespace`` matching the metadata filter ``where``; read-only.

        Values and metadata are not asked for: the audit needs to know whether anything matched, not what.
        """
        body: dict[str, object] = {"namespace": namespace, "topK": top_k, "vector": vector}
        body |= {"filter": where} if where is not None else {}
        body |= {"includeValues": False, "includeMetadata": False}
        response = await self._client.send("POST", f"{client.index_url(host)}/query", json=body, change=False)
        return tuple(m["id"] for m in self._client.decode(client.QUERY, response, "query").get("matches") or [])

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
