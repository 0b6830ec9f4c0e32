"""What is read from Pinecone beyond what the provisioner observes: each index's statistics.

Why this module exists: the indexes themselves (``GET /indexes``) are the provisioner's
observation, which the audit shares (``reconcile.observations``); how vectors spread over
tenant namespaces is a fact of the data no plan needs, so the audit reads it here, one
``describe_index_stats`` per existing declared index, on the index's own host. Teardown
reads the same statistics to keep an index that holds vectors.

What it must not do: create, configure or query vectors, list the indexes again, or
carry the API key anywhere but the caller's httpx client.
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
