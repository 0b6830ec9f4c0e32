"""Data at volume in an installation of ``tests.installation``, for ``benchmarks/audit_scale.py``.

Why it exists: the audit must cost the same on an installation holding millions
of rows as on an empty one, and showing that needs the rows, laid out fast and
the way PayScope's own writers would leave them:

- ``load_postgres``: ``transactions`` rows spread evenly over :data:`BANKS` (the
  two probe tenants among them), each referencing one of ten accounts of its bank,
  generated server-side in chunks, in arrival order with the probe tenant B's rows
  last (a bank onboarded last: the worst case for a scan that stops at its first
  row); ``vacuum`` then leaves the tables as autovacuum would (visibility map,
  planner statistics).
- ``append_audit_log``: rows chained after the newest row of the audit log, each
  hash computed as the operator verifies it (``backends.postgres.evidence.row_hash``)
  and sent by COPY, under the advisory lock PayScope's writers take.
- ``load_neo4j``: nodes of the declared labels with the tenant key, by batched
  ``UNWIND``; then every index populated and resampled, as the server's background
  sampler would leave them. ``drop_neo4j`` removes them in batches.

What it must not do: load anything the installation does not declare, bypass a
constraint the installation's tables hold (only the per-row foreign-key triggers
are skipped, for rows that reference accounts made here), or leave nodes behind
(``drop_neo4j``; the databases go with ``metered_pass.teardown``).
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Sequence

import neo4j
import psycopg

from payscope_operator.backends.neo4j import cypher
from payscope_operator.backends.neo4j import evidence as neo4j_evidence
from payscope_operator.backends.postgres import evidence

BANKS = ("bank-a", "bank-b", *(f"bank-{i:03d}" for i in range(2, 100)))
ACCOUNTS_PER_BANK = 10
FIRST_ACCOUNT = 1000
CHUNK = 1_000_000
NODE_BATCH = 50_000
OPERATIONS = ("chat.query", "admin.read", "ingest.batch")

TRANSACTIONS = f"""
INSERT INTO transactions (bank_id, account_id, amount, created_at, idempotency_key)
SELECT (%(banks)s::text[])[b + 1],
       {FIRST_ACCOUNT} + b * {ACCOUNTS_PER_BANK} + (g / {len(BANKS)}) %% {ACCOUNTS_PER_BANK},
       g %% 1000, now() - (%(rows)s - g) * interval '1 second', 'load-' || g
FROM (SELECT g, CASE WHEN g > %(newest)s THEN 1 WHEN g %% {len(BANKS) - 1} = 0 THEN 0
                     ELSE g %% {len(BANKS) - 1} + 1 END AS b
      FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g) AS s
"""
"""Rows in arrival order: the banks interleaved, except the probe tenant B (``BANKS[1]``), onboarded last: its
share of the rows closes the table, where a sequential scan looking for one of them comes last."""
ACCOUNTS = f"""
INSERT INTO accounts (id, bank_id, iban)
SELECT {FIRST_ACCOUNT} + b * {ACCOUNTS_PER_BANK} + k, (%(banks)s::text[])[b + 1], 'load-' || b || '-' || k
FROM generate_series(0, {len(BANKS) - 1}) AS b, generate_series(0, {ACCOUNTS_PER_BANK - 1}) AS k
"""


def load_postgres(dsn: str, rows: int) -> None:
    """``rows`` transactions over :data:`BANKS` (as a superuser: row-level security does not apply)."""
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("SET session_replication_role = replica")  # no per-row FK trigger: the accounts are made here
        db.execute("DELETE FROM transactions WHERE bank_id = %s", (BANKS[1],))  # B's few seed rows: B comes last
        db.execute(ACCOUNTS, {"banks": list(BANKS)})
        db.execute("SELECT setval('accounts_id_seq', (SELECT max(id) FROM accounts))")
        newest = rows - rows // len(BANKS)
        for first in range(1, rows + 1, CHUNK):
            last = min(first + CHUNK - 1, rows)
            params = {"banks": list(BANKS), "first": first, "last": last, "rows": rows, "newest": newest}
            db.execute(TRANSACTIONS, params)


def vacuum(dsn: str, tables: Sequence[str]) -> None:
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(f"VACUUM (ANALYZE) {', '.join(tables)}")  # test-made table names


def _payload(op: str, i: int) -> dict[str, object]:
    if op == "chat.query":
        return {"trace_id": f"{i:032x}", "intent": "DESCRIBE"}
    if op == "admin.read":
        return {"path": "/admin/agents", "ok": True}
    return {"rows": i % 500}


def append_audit_log(dsn: str, rows: int, table: str = "audit_log") -> None:
    """``rows`` rows chained after the newest one, one millisecond apart, ending now."""
    with psycopg.connect(dsn) as db, db.transaction(), db.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))  # as PayScope's writers serialise appends
        cur.execute(f"SELECT id, hash FROM {table} ORDER BY id DESC LIMIT 1")  # test-made name
        newest = cur.fetchone()
        row_id, prev = (int(newest[0]), str(newest[1]).strip()) if newest else (0, evidence.GENESIS)
        start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(milliseconds=rows)
        columns = "id, ts, bank_id, actor, operation, payload, prev_hash, hash"
        with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for i in range(rows):
                row_id += 1
                ts, bank, op = start + datetime.timedelta(milliseconds=i), BANKS[i % len(BANKS)], OPERATIONS[i % 3]
                payload = _payload(op, row_id)
                digest = evidence.row_hash(prev, row_id, ts, bank, "payscope-api", op, payload)
                copy.write_row((row_id, ts, bank, "payscope-api", op, json.dumps(payload), prev, digest))
                prev = digest
        cur.execute(f"SELECT setval('{table}_id_seq', %s)", (row_id,))


def load_neo4j(driver: neo4j.Driver, database: str, labels: Sequence[str], nodes: int) -> None:
    """Nodes 2..``nodes`` of each label (node 1 is the installation's own), each with an id and a bank."""
    for label in labels:
        text = f"UNWIND range($first, $last) AS i CREATE (:{cypher.quote(label)} {{id: i, bank_id: $banks[i % $n]}})"
        for first in range(2, nodes + 1, NODE_BATCH):
            last = min(first + NODE_BATCH - 1, nodes)
            driver.execute_query(text, first=first, last=last, banks=list(BANKS), n=len(BANKS), database_=database)


def settle_indexes(driver: neo4j.Driver, database: str, labels: Sequence[str], key: str, timeout: float = 300) -> str:
    """Every index online and resampled (no update since its last sample); a note when that took too long."""
    driver.execute_query("CALL db.awaitIndexes($s)", s=int(timeout), database_=database)
    driver.execute_query("CALL db.resampleOutdatedIndexes()", database_=database)
    deadline = time.monotonic() + timeout
    while True:
        records, _, _ = driver.execute_query(
            neo4j_evidence.STATISTICS, labels=sorted(labels), key=key, database_=database
        )
        pending = [i for i in records[0]["indexes"] if int(i.get("updatesSinceEstimation") or 0)]
        if not pending:
            return ""
        if time.monotonic() > deadline:
            return f"indexes still not resampled after {timeout:.0f} s: {pending}"
        time.sleep(1)


def drop_neo4j(driver: neo4j.Driver, database: str, labels: Sequence[str]) -> None:
    for label in labels:
        with driver.session(database=database) as session:
            session.run(
                f"MATCH (n:{cypher.quote(label)}) CALL (n) {{ DETACH DELETE n }} IN TRANSACTIONS OF 50000 ROWS"
            ).consume()
