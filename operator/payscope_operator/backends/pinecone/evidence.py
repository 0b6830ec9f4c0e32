"""What is read from Pinecone beyond what the provisioner observes: index statistics, isolation queries.

Why this module exists: the indexes themselves (``GET /indexes``) are the provisioner's
observation, which the audit shares (``reconcile.observations``); how vectors spread over
tenant namespaces is a fact of the data no plan needs, so the audit reads it here, one
``describe_index_stats`` per existing declared index, on the index's own host. Teardown
reads the same statistics to keep an index that holds vectors. The isolation probe asks
a namespace for the ids of its nearest vectors under a metadata filter (``query_ids``).

What it must not do: create, configure or change vectors, ask for their values or
metadata, list the indexes again, or carry the API key anywhere but the caller's httpx
client.
"""

from __future__ import annotations

import httpx

from payscope_operator.backends.pinecone import client, model


async def describe_index_stats(
    http: httpx.AsyncClient,
    host: str,
    *,
    retry: client.RetryPolicy | None = None,
    timeout: httpx.Timeout = client.DEFAULT_TIMEOUT,
) -> model.IndexStats:
    """Vector counts per namespace of the index served at ``host`` (``model.ObservedIndex.host``); read-only."""
    pinecone = client.Client(http, retry=retry or client.RetryPolicy(), timeout=timeout)
    url = f"{client.index_url(host)}/describe_index_stats"
    response = await pinecone.send("POST", url, json={}, change=False)
    stats = pinecone.decode(client.STATS, response, "describe_index_stats")
    namespaces = {ns: summary["vectorCount"] for ns, summary in (stats.get("namespaces") or {}).items()}
    total = stats.get("totalVectorCount")
    return model.IndexStats(namespaces, stats.get("dimension"), sum(namespaces.values()) if total is None else total)


async def query_ids(
    http: httpx.AsyncClient,
    host: str,
    namespace: str,
    vector: list[float],
    *,
    top_k: int = 1,
    where: dict[str, object] | None = None,
    retry: client.RetryPolicy | None = None,
    timeout: httpx.Timeout = client.DEFAULT_TIMEOUT,
) -> tuple[str, ...]:
    """The ids of the ``top_k`` nearest vectors of ``namespace`` matching the metadata filter ``where``; read-only.

    Values and metadata are not asked for: the audit needs to know whether anything matched, not what.
    """
    pinecone = client.Client(http, retry=retry or client.RetryPolicy(), timeout=timeout)
    body: dict[str, object] = {"namespace": namespace, "topK": top_k, "vector": vector}
    body |= {"filter": where} if where is not None else {}
    body |= {"includeValues": False, "includeMetadata": False}
    response = await pinecone.send("POST", f"{client.index_url(host)}/query", json=body, change=False)
    return tuple(m["id"] for m in pinecone.decode(client.QUERY, response, "query").get("matches") or [])
