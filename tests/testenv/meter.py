"""Server-side counts of what clients sent to each system of the test environment.

Why it exists: issue 9 asks how many statements and requests one reconcile pass
sends to each external system, and that must be counted where it arrives, not
where the operator thinks it sent it. ``Meter.snapshot()`` reads every server's
own cumulative counters; ``Meter.delta(before)`` reads them again and returns
the difference per system, by detail (a statement, a command, a route), with
the meter's own reads taken out. Tests and benchmarks share it.

What each server exposes, and what is counted:

- ``postgres``: ``pg_stat_statements`` (preloaded by ``postgres.py``), calls of
  the one database in scope, utility statements (BEGIN, SET, SHOW) included.
  A statement that fails is not recorded by pg_stat_statements.
- ``timescale``: PGlite has no pg_stat_statements; ``server.mjs`` counts the
  frontend messages on the wire: simple Query and extended-protocol Execute.
- ``neo4j``: community has no query log, no metrics and no JMX beans of its own;
  the transaction ids of ``SHOW TRANSACTIONS`` are a per-database sequence, so
  their advance counts transactions (``neo4j`` and ``system``; a new Bolt
  connection's login reads ``system``). An auto-commit query is one transaction.
- ``redis``: ``INFO commandstats``, calls per command.
- ``s3``: SeaweedFS's ``SeaweedFS_s3_request_total`` (bucket, method, status).
- ``pinecone``: the emulator's own request counter (``/_emulator/requests``).
- ``payscope_api``: the reference API's ``http_requests_total`` on ``/metrics``.
- ``kubernetes``: the kube-apiserver's audit log, every request of the
  ``payscope-metered`` user (``kube.METERED_USER``), reads included.

What it must not do: change any server's state, or count anything client-side.
Counters are server-wide except Postgres (one database) and Kubernetes (one
user): measure while nothing else uses the environment.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import neo4j
import psycopg
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.testenv import environment as testenv
from tests.testenv import kube, pinecone_emulator

SYSTEMS = ("postgres", "timescale", "neo4j", "redis", "s3", "pinecone", "payscope_api", "kubernetes")
Reading = Counter[str]
"""Cumulative counts of one system by detail; their sum is the system's figure."""
Snapshot = dict[str, Reading]
TIMEOUT = 10.0


class MeterError(RuntimeError):
    """A counter cannot be trusted for this window (evicted statistics, a rotated log)."""


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310 - loopback URLs from env.json
        return str(response.read().decode())


def _samples(text: str, family: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for metric in text_string_to_metric_families(text)
        for sample in metric.samples
        if sample.name == family
    ]


@dataclass
class _Postgres:
    dsn: str
    database: str
    own: Reading = field(default_factory=Counter)

    def read(self) -> Reading:
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            evicted = conn.execute("SELECT dealloc FROM pg_stat_statements_info").fetchone()
            rows = conn.execute(
                "SELECT query, sum(calls)::bigint FROM pg_stat_statements"
                " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = %s) GROUP BY query",
                (self.database,),
            ).fetchall()
        reading: Reading = Counter({str(query): int(calls) for query, calls in rows})
        reading[EVICTED] = int(evicted[0]) if evicted else 0  # checked, then dropped, by Meter.delta
        return reading


EVICTED = "\0pg_stat_statements entries evicted"


@dataclass
class _Timescale:
    url: str
    own: Reading = field(default_factory=Counter)

    def read(self) -> Reading:
        counts = json.loads(_get(f"{self.url}/counts"))
        return Counter({"Query": int(counts["query"]), "Execute": int(counts["execute"])})


@dataclass
class _Neo4j:
    driver: Any
    databases: tuple[str, ...] = ("neo4j", "system")
    own: Reading = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.own = Counter(dict.fromkeys(self.databases, 1))  # each read is one transaction per database

    def read(self) -> Reading:
        reading: Reading = Counter()
        for database in self.databases:
            with self.driver.session(database=database) as session:
                record = session.run(
                    "SHOW TRANSACTIONS YIELD transactionId, database WHERE database = $db RETURN transactionId",
                    db=database,
                ).single(strict=True)
            reading[database] = int(str(record["transactionId"]).rsplit("-", 1)[1])
        return reading


@dataclass
class _Redis:
    client: Any
    own: Reading = field(default_factory=lambda: Counter({"info": 1}))

    def read(self) -> Reading:
        stats: Mapping[str, Mapping[str, Any]] = self.client.info("commandstats")
        return Counter({name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()})


@dataclass
class _S3:
    url: str
    own: Reading = field(default_factory=Counter)

    def read(self) -> Reading:
        reading: Reading = Counter()
        for labels, value in _samples(_get(self.url), "SeaweedFS_s3_request_total"):
            method, bucket, code = labels.get("type", ""), labels.get("bucket", "") or "-", labels.get("code", "")
            reading[f"{method} {bucket} {code}"] += int(value)
        return reading


@dataclass
class _Pinecone:
    admin: pinecone_emulator.Admin
    own: Reading = field(default_factory=Counter)

    def read(self) -> Reading:
        return Counter(self.admin.requests())


@dataclass
class _PayScopeApi:
    url: str
    own: Reading = field(default_factory=lambda: Counter({"GET /metrics 200": 1}))

    def read(self) -> Reading:
        reading: Reading = Counter()
        for labels, value in _samples(_get(f"{self.url.rstrip('/')}/metrics"), "http_requests_total"):
            reading[f"{labels['method']} {labels['route']} {labels['status']}"] += int(value)
        return reading


@dataclass
class _Kubernetes:
    """Requests of one user in the audit log, accumulated from where the last read stopped."""

    path: Path
    user: str = kube.METERED_USER
    own: Reading = field(default_factory=Counter)
    _offset: int = 0
    _seen: Reading = field(default_factory=Counter)

    def read(self) -> Reading:
        size = self.path.stat().st_size if self.path.exists() else 0
        if size < self._offset:
            raise MeterError(f"{self.path} was rotated while metering")
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read(size - self._offset)
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            entry = json.loads(line)
            if entry.get("user", {}).get("username") != self.user or entry.get("stage") != "ResponseComplete":
                continue
            ref = entry.get("objectRef") or {}
            resource = ref.get("resource", entry.get("requestURI", ""))
            if ref.get("subresource"):
                resource += f"/{ref['subresource']}"
            self._seen[f"{entry.get('verb', '')} {resource}"] += 1
        return Counter(self._seen)


@dataclass
class Meter:
    """Counters of every system in scope; build one with ``Meter.from_env``."""

    readers: dict[str, Any]
    closers: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        postgres_database: str | None = None,
        api_url: str | None = None,
        systems: tuple[str, ...] = SYSTEMS,
    ) -> Meter:
        """Counters of ``systems`` (Postgres needs a database, the API a URL; otherwise left out)."""
        readers: dict[str, Any] = {}
        closers: list[Callable[[], None]] = []
        if "postgres" in systems and postgres_database is not None:
            readers["postgres"] = _Postgres(env["PAYSCOPE_PG_DSN"], postgres_database)
        if "timescale" in systems:
            readers["timescale"] = _Timescale(env["PAYSCOPE_TIMESCALE_METER_URL"])
        if "neo4j" in systems:
            auth = (env["PAYSCOPE_NEO4J_USER"], env["PAYSCOPE_NEO4J_PASSWORD"])
            driver = neo4j.GraphDatabase.driver(env["PAYSCOPE_NEO4J_URI"], auth=auth, connection_timeout=TIMEOUT)
            readers["neo4j"] = _Neo4j(driver)
            closers.append(driver.close)
        if "redis" in systems:
            client = redis.Redis.from_url(env["PAYSCOPE_REDIS_URL"], socket_timeout=TIMEOUT)
            readers["redis"] = _Redis(client)
            closers.append(client.close)
        if "s3" in systems:
            readers["s3"] = _S3(env["PAYSCOPE_S3_METRICS_URL"])
        if "pinecone" in systems:
            readers["pinecone"] = _Pinecone(pinecone_emulator.Admin(env["PAYSCOPE_PINECONE_URL"]))
        if "payscope_api" in systems and api_url is not None:
            readers["payscope_api"] = _PayScopeApi(api_url)
        if "kubernetes" in systems:
            readers["kubernetes"] = _Kubernetes(Path(env["PAYSCOPE_KUBE_AUDIT_LOG"]))
        meter = cls(readers, closers)
        meter.snapshot()  # opens the meter's own connections now, outside any window it measures
        return meter

    def snapshot(self) -> Snapshot:
        """Every counter in scope, as the servers report it now."""
        return {name: reader.read() for name, reader in self.readers.items()}

    def delta(self, before: Snapshot) -> dict[str, Reading]:
        """What arrived at each system since ``before``, without the meter's own reads (non-zero details only)."""
        after = self.snapshot()
        counts: dict[str, Reading] = {}
        for name, reader in self.readers.items():
            diff: Reading = Counter()
            for key in set(after[name]) | set(before[name]):
                diff[key] = after[name][key] - before[name][key] - reader.own[key]
            if diff.pop(EVICTED, 0):
                raise MeterError("pg_stat_statements evicted entries while metering: raise pg_stat_statements.max")
            counts[name] = Counter({key: value for key, value in diff.items() if value})
        return counts

    def close(self) -> None:
        for close in self.closers:
            close()

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def totals(counts: Mapping[str, Reading]) -> dict[str, int]:
    """One figure per system: the sum of its details."""
    return {name: sum(reading.values()) for name, reading in counts.items()}


def environment() -> dict[str, str]:
    """The variables of the running test environment (``.testenv/env.json``), overridden by os.environ."""
    saved = json.loads(testenv.env_json_path().read_text())
    return {**saved, **{k: v for k, v in os.environ.items() if k.startswith("PAYSCOPE_")}}
