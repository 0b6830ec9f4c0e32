"""Locks on the real Postgres 15: the operator never stalls PayScope's readers for longer than lockTimeout.

Whole passes (``local_pass.Runner``: provisioning and audit, the status as the API server
would hold it) over a database of the test's own, while other sessions of the test hold
locks the operator's DDL needs. Each test waits for what it asserts: the next try of a
waiting object is due at the time the operator's backoff memory says, and the test runs
the pass then, as the scheduler would.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from payscope_operator.api import status
from payscope_operator.reconcile import object_backoff
from tests.integration import local_pass

LOCK_TIMEOUT_SECONDS = 1.0
BLOCKER = "payscope-test-blocker"
READY = status.ProvisionState.READY
LOCKED = status.ProvisionState.LOCK_TIMEOUT


@pytest.fixture
def app_role(pg_dsn: str) -> Iterator[str]:
    """``transactions`` with rows of three banks, and a NOLOGIN app role that may read and write it."""
    name = "app_" + pg_dsn.split("/")[-1].split("?")[0].removeprefix("t_")
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(
            "CREATE TABLE transactions (id bigserial PRIMARY KEY, bank_id text NOT NULL, amount int NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now())"
        )
        admin.execute(
            "INSERT INTO transactions (bank_id, amount) SELECT 'bank-' || (g % 3), g FROM generate_series(1, 3000) g"
        )
        admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("GRANT SELECT, INSERT ON transactions TO {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def spec_of(app_role: str, *, rls: bool = True) -> dict[str, Any]:
    table: dict[str, Any] = {"name": "transactions", "tenantIndex": True}
    if rls:
        table["rowLevelSecurity"] = {"enabled": True, "force": True}
    return {
        "tenancy": {"tenantKey": "bank_id", "sessionVariable": "app.current_bank_id"},
        "postgres": {
            "connection": {"secretRef": {"name": "pg", "key": "dsn"}},
            "appRole": app_role,
            "lockTimeout": "1s",
            "tables": [table],
        },
        "audit": {"interval": "1s", "probeTimeout": "1s"},
    }


class Reader(threading.Thread):
    """PayScope's side: a simple query on ``transactions`` every 50 ms, each one's wait recorded."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.waits: list[float] = []
        self.stop = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True, application_name="payscope-test-reader") as conn:
            while not self.stop.is_set():
                started = time.monotonic()
                conn.execute("SELECT amount FROM transactions WHERE id = 1").fetchall()
                self.waits.append(time.monotonic() - started)
                self.ready.set()
                self.stop.wait(0.05)


def provisioned(outcome: local_pass.Outcome, kind: str, name: str) -> status.ProvisionedObject:
    assert outcome.status.provisioned is not None
    return next(o for o in outcome.status.provisioned.postgres if (o.kind, o.name) == (kind, name))


def waiting(runner: local_pass.Runner) -> object_backoff.Memory:
    return runner.deps.lock_backoff[runner.uid]


async def when_due(runner: local_pass.Runner) -> float:
    """Sleep until the first waiting object's next try is due (as the scheduler's next pass would); the wait."""
    due = min(w.due for w in waiting(runner).waiting.values())
    wait = max(0.0, due - time.monotonic())
    await asyncio.sleep(wait)
    return wait


async def test_a_reader_never_waits_longer_than_lock_timeout_and_the_table_converges_after_the_blocker(
    pg_dsn: str, app_role: str
) -> None:
    runner = local_pass.Runner(spec_of(app_role), {"pg": {"dsn": pg_dsn}})
    reader = Reader(pg_dsn)
    blocker = psycopg.connect(pg_dsn, application_name=BLOCKER)
    try:
        blocker.execute("SELECT amount FROM transactions WHERE id = 2").fetchall()  # holds ACCESS SHARE until commit
        reader.start()
        assert reader.ready.wait(10)
        for attempt in range(1, 4):
            if attempt > 1:
                await when_due(runner)
            outcome = await runner.once()
            for kind, name in [("Policy", "public.transactions.payscope_tenant_isolation"),
                               ("RowLevelSecurity", "public.transactions")]:  # fmt: skip
                found = provisioned(outcome, kind, name)
                assert (found.state, found.reason) == (LOCKED, "LockTimeout"), found
                assert found.message is not None
                assert re.search(rf'application_name "{BLOCKER}", idle in transaction for \d+s', found.message)
                assert f"try {attempt + 1} after" in found.message
            index = provisioned(outcome, "Index", "public.payscope_transactions_bank_id_idx")
            assert index.state is READY  # another object of the same table proceeds
            condition = outcome.condition("Provisioned")
            assert (condition.status.value, condition.reason) == ("False", "LockTimeout")
            assert outcome.condition("Stalled").status.value == "False"
        reader.stop.set()
        reader.join(10)
        assert max(reader.waits) <= LOCK_TIMEOUT_SECONDS + 0.5, sorted(reader.waits)[-5:]
        assert max(reader.waits) >= LOCK_TIMEOUT_SECONDS / 2  # it did queue behind the operator's DDL, that long
        assert len(waiting(runner).waiting) == 1

        blocker.commit()
        committed = time.monotonic()
        step = await when_due(runner)
        outcome = await runner.once()
        assert time.monotonic() - committed <= step + outcome.seconds[-1] + 0.5  # within one backoff step
        assert {o.state for o in outcome.status.provisioned.postgres} == {READY}  # type: ignore[union-attr]
        condition = outcome.condition("Provisioned")
        assert (condition.status.value, condition.reason) == ("True", "Provisioned")
        assert not waiting(runner).waiting
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            flags = admin.execute(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'transactions'::regclass"
            )
            assert flags.fetchone() == (True, True)
    finally:
        reader.stop.set()
        blocker.close()
        await runner.close()


async def test_an_index_build_left_invalid_by_a_lock_timeout_is_dropped_and_rebuilt(
    pg_dsn: str, app_role: str, testenv: dict[str, str]
) -> None:
    runner = local_pass.Runner(spec_of(app_role, rls=False), {"pg": {"dsn": pg_dsn}})
    writer = psycopg.connect(pg_dsn, application_name="payscope-test-writer")
    name = "public.payscope_transactions_bank_id_idx"
    valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('public.payscope_transactions_bank_id_idx')"
    try:
        writer.execute("INSERT INTO transactions (bank_id, amount) VALUES ('bank-1', 1)")  # an open write
        outcome = await runner.once()
        index = provisioned(outcome, "Index", name)
        assert (index.state, index.reason) == (LOCKED, "LockTimeout")
        assert index.message is not None
        assert 'application_name "payscope-test-writer"' in index.message
        assert "RowExclusiveLock" in index.message
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            assert admin.execute(valid).fetchone() == (False,)  # what a failed CONCURRENTLY build leaves

        writer.commit()
        await when_due(runner)
        outcome = await runner.once()
        index = provisioned(outcome, "Index", name)
        assert index.state is READY, index
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            assert admin.execute(valid).fetchone() == (True,)
        with psycopg.connect(testenv["PAYSCOPE_PG_DSN"], autocommit=True) as server:  # the extension lives there
            sent = server.execute(
                "SELECT query FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = %s)"
                " AND query ILIKE '%%INDEX CONCURRENTLY%%' ORDER BY query",
                (pg_dsn.split("/")[-1].split("?")[0],),
            ).fetchall()
        assert [q for (q,) in sent] == [
            'CREATE INDEX CONCURRENTLY IF NOT EXISTS "payscope_transactions_bank_id_idx"'
            ' ON "public"."transactions" ("bank_id")',
            'DROP INDEX CONCURRENTLY IF EXISTS "public"."payscope_transactions_bank_id_idx"',
        ]
    finally:
        writer.close()
        await runner.close()
