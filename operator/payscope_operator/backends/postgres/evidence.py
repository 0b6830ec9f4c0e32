"""Read-only evidence from Postgres for the audit, beyond what the provisioner observes.

The declared tables' existence, row-level-security flags and owner, and the app role,
are the provisioner's observation (``model.Observed``), which the audit shares: this
module reads only what no plan needs, each with a fixed number of statements whatever
the number of tables (arrays with ``= ANY``), so an audit of 50 tables costs what an
audit of one costs: every policy, index, foreign key and column of the declared tables
(one query), the migration versions (one), the audit log's privileges and hash chain
(two), and the cross-tenant isolation probe (one transaction of five statements for
every declared RLS table, at most :data:`MAX_ISOLATION_TABLES`). Nothing here changes
data: the probe runs inside a transaction that is always rolled back, and the audit-log
verifier reads a bounded tail of the chain. Names are passed as
``psycopg.sql.Identifier`` or as parameters, never pasted.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from payscope_operator import errors
from payscope_operator.backends.postgres import model

GENESIS = "0" * 64
CHAIN_TAIL = 10000
"""At most this many newest rows of the audit log are verified per pass."""
MAX_ISOLATION_TABLES = 50
"""At most this many declared RLS tables are probed per pass (all of them, in one statement)."""
PROBE_RESULT = "payscope.isolation_probe"
"""The transaction-local setting the probe's block leaves its findings in."""

Conn = psycopg.AsyncConnection[Any]


@dataclass(frozen=True)
class TableFacts:
    schema: str
    name: str
    exists: bool
    rls_enabled: bool = False
    rls_forced: bool = False
    owner: str = ""
    policies: tuple[tuple[str, str, str], ...] = ()  # (name, USING, WITH CHECK), deparsed
    tenant_indexed: bool = False
    foreign_keys: int = 0
    unique_keys: tuple[tuple[str, ...], ...] = ()  # column sets of valid unique indexes/constraints
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoleFacts:
    name: str
    exists: bool
    superuser: bool = False
    bypass_rls: bool = False


@dataclass(frozen=True)
class Catalog:
    """What the catalogs say about the declared tables and the app role."""

    tables: dict[tuple[str, str], TableFacts]
    role: RoleFacts | None
    queries: int


async def _rows(
    conn: Conn, query: str | sql.SQL | sql.Composed, params: Sequence[Any] | dict[str, Any] = ()
) -> list[tuple[Any, ...]]:
    async with conn.cursor() as cur:
        await cur.execute(query, params)
        return list(await cur.fetchall())


TABLE_FACTS = """
WITH wanted AS (SELECT * FROM unnest(%(schemas)s::text[], %(tables)s::text[]) AS w(nspname, relname))
SELECT w.nspname, w.relname,
    (SELECT coalesce(json_agg(json_build_array(p.polname, coalesce(pg_get_expr(p.polqual, p.polrelid), ''),
                                               coalesce(pg_get_expr(p.polwithcheck, p.polrelid), ''))), '[]')
     FROM pg_policy p WHERE p.polrelid = c.oid) AS policies,
    (SELECT coalesce(json_agg(json_build_array(i.indisunique, i.indisvalid,
            array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord))), '[]')
     FROM pg_index i WHERE i.indrelid = c.oid) AS indexes,
    (SELECT count(*) FROM pg_constraint f WHERE f.contype = 'f' AND f.conrelid = c.oid) AS foreign_keys,
    array(SELECT a.attname::text FROM pg_attribute a
          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS columns
FROM wanted w
JOIN pg_namespace n ON n.nspname = w.nspname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.relname AND c.relkind IN ('r', 'p')
"""
"""What the audit judges of the declared tables that no plan needs: policies, indexes, foreign keys, columns."""


async def read_catalog(
    conn: Conn,
    tables: Sequence[tuple[str, str]],
    observed: model.Observed | None,
    *,
    tenant_key: str | None,
    app_role: str | None,
) -> Catalog:
    """The audit's facts of ``tables``: existence, RLS and owner as ``observed``, the rest in one query.

    ``observed`` is the provisioner's observation of the same tables (None when none is
    declared); the app role is read here only then.
    """
    params = {"schemas": [t[0] for t in tables], "tables": [t[1] for t in tables]}
    extra = {(row[0], row[1]): row[2:] for row in await _rows(conn, TABLE_FACTS, params)} if tables else {}
    queries = 1 if tables else 0
    facts: dict[tuple[str, str], TableFacts] = {}
    for schema, name in tables:
        seen = observed.table(model.TableRef(schema, name)) if observed is not None else None
        if seen is None:
            facts[(schema, name)] = TableFacts(schema, name, exists=False)
            continue
        policies, indexes, foreign_keys, columns = extra.get((schema, name), ([], [], 0, []))
        facts[(schema, name)] = TableFacts(
            schema=schema,
            name=name,
            exists=True,
            rls_enabled=seen.rls_enabled,
            rls_forced=seen.rls_forced,
            owner=seen.owner,
            policies=tuple(sorted((str(n), str(u), str(c)) for n, u, c in policies)),
            tenant_indexed=tenant_key is not None and any(v and cols[:1] == [tenant_key] for _, v, cols in indexes),
            foreign_keys=int(foreign_keys),
            unique_keys=tuple(sorted(tuple(sorted(cols)) for u, v, cols in indexes if u and v)),
            columns=tuple(columns),
        )
    role: RoleFacts | None = None
    if app_role is not None and observed is not None and observed.app_role is not None:
        seen_role = observed.app_role
        role = RoleFacts(app_role, seen_role.exists, seen_role.superuser, seen_role.bypassrls)
    elif app_role is not None:
        got = await _rows(conn, "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", (app_role,))
        queries += 1
        role = RoleFacts(app_role, bool(got), *(bool(v) for v in got[0])) if got else RoleFacts(app_role, False)
    return Catalog(facts, role, queries)


async def read_migration_versions(conn: Conn, schema: str, table: str, column: str) -> tuple[str, ...] | None:
    """The applied migration versions, or None when the bookkeeping table does not exist (one statement)."""
    query = sql.SQL("SELECT {}::text FROM {} ORDER BY 1").format(sql.Identifier(column), sql.Identifier(schema, table))
    try:
        rows = await _rows(conn, query)
    except psycopg.errors.UndefinedTable:
        return None
    except psycopg.errors.UndefinedColumn:
        raise errors.SpecInvalid(f"migrations table {schema}.{table} has no column {column}") from None
    return tuple(str(r[0]) for r in rows)


@dataclass(frozen=True)
class AuditLogFacts:
    exists: bool
    rows_checked: int = 0
    first_break: str | None = None  # where the chain breaks, if it does
    app_role_writes: tuple[str, ...] = ()  # UPDATE/DELETE/TRUNCATE the app role holds
    app_role_owns: bool = False
    operations: tuple[tuple[str, int], ...] = ()  # operation -> rows, over the verified tail
    traced_queries: int = 0  # chat.query rows whose payload carries trace_id and intent


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def row_hash(prev_hash: str, row_id: int, ts: datetime.datetime, bank: str, actor: str, op: str, payload: Any) -> str:
    """The contract's hash of one audit-log row (docs/payscope-contract.md, section 12.2)."""
    stamp = ts.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    content = _canonical([row_id, stamp, bank, actor, op, payload])
    return hashlib.sha256(f"{prev_hash}|{content}".encode()).hexdigest()


AUDIT_LOG_TABLE = """
SELECT c.oid,
    CASE WHEN %(role)s::text IS NULL THEN ARRAY[]::text[] ELSE
        array(SELECT p FROM unnest(ARRAY['UPDATE', 'DELETE', 'TRUNCATE']) p
              WHERE has_table_privilege(%(role)s::text, c.oid, p)) END AS writes,
    coalesce(pg_has_role(%(role)s::text, c.relowner, 'USAGE'), false) AS owns
FROM pg_class c WHERE c.oid = to_regclass(%(name)s)
"""
"""The audit log table, the writes the app role holds on it (UPDATE, DELETE, TRUNCATE) and whether it owns it."""


async def read_audit_log(
    conn: Conn, schema: str, table: str, order_column: str, app_role: str | None, *, tail: int = CHAIN_TAIL
) -> AuditLogFacts:
    """Verify the newest ``tail`` rows of the hash chain and the app role's write privileges (two statements)."""
    found = await _rows(conn, AUDIT_LOG_TABLE, {"name": f'"{schema}"."{table}"', "role": app_role})
    if not found:
        return AuditLogFacts(exists=False)
    _, writes, owns = found[0]
    order = sql.Identifier(order_column)
    query = sql.SQL(
        "SELECT * FROM (SELECT id, ts, bank_id, actor, operation, payload, prev_hash, hash FROM {} "
        "ORDER BY {} DESC LIMIT %s) t ORDER BY id"
    ).format(sql.Identifier(schema, table), order)
    rows = await _rows(conn, query, (tail + 1,))
    first_break = None
    checked = 0
    previous: str | None = None
    operations: dict[str, int] = {}
    traced = 0
    for index, (row_id, ts, bank, actor, op, payload, prev_hash, digest) in enumerate(rows):
        prev_hash, digest = str(prev_hash).strip(), str(digest).strip()
        if index == 0 and len(rows) > tail:
            previous = digest  # the row before the verified tail only anchors it
            continue
        expected_prev = previous if previous is not None else GENESIS
        if prev_hash != expected_prev:
            first_break = f"row {row_id}: prev_hash does not match the previous row's hash"
            break
        if row_hash(prev_hash, int(row_id), ts, bank, actor, op, payload) != digest:
            first_break = f"row {row_id}: hash does not match its content"
            break
        previous = digest
        checked += 1
        operations[str(op)] = operations.get(str(op), 0) + 1
        if op == "chat.query" and isinstance(payload, dict) and "trace_id" in payload and "intent" in payload:
            traced += 1
    return AuditLogFacts(
        True, checked, first_break, tuple(writes), bool(owns), tuple(sorted(operations.items())), traced
    )


@dataclass(frozen=True)
class IsolationFacts:
    table: str
    visible_foreign_rows: int  # 1 when a row of the other probe tenant is visible (equality, LIMIT 1), else 0
    foreign_write: str  # "refused: ...", "accepted" or "inconclusive: <error>"
    role: str
    tenants: tuple[str, str] = field(default=("", ""))


_PROBE_STEP = sql.SQL("""
    BEGIN
        seen := EXISTS (SELECT 1 FROM {target} WHERE {column} = {other} LIMIT 1);
    EXCEPTION WHEN others THEN
        seen := NULL;
        outcome := 'unreadable:' || SQLSTATE;
    END;
    IF seen IS NOT NULL THEN
        BEGIN
            INSERT INTO {target} ({column}) VALUES ({other});
            outcome := 'accepted';
        EXCEPTION
            WHEN insufficient_privilege THEN outcome := 'refused: ' || SQLERRM;
            WHEN others THEN outcome := 'inconclusive:' || SQLSTATE;
        END;
    END IF;
    found := found || jsonb_build_array(jsonb_build_array({name}, seen, outcome));
""")
_PROBE_BLOCK = sql.SQL("""
DECLARE
    found jsonb := '[]';
    seen boolean;
    outcome text;
BEGIN
{steps}
    PERFORM set_config({result}, found::text, true);
END
""")


def isolation_block(tables: Sequence[tuple[str, str]], tenant_key: str, other: str) -> sql.Composed:
    """The PL/pgSQL body probing every table: is a row of ``other`` visible (equality on the tenant key,
    LIMIT 1), and is an insert for ``other`` refused (each in its own subtransaction)."""
    steps = [
        _PROBE_STEP.format(
            target=sql.Identifier(schema, table),
            column=sql.Identifier(tenant_key),
            other=sql.Literal(other),  # an untyped literal: Postgres reads it as the column's type
            name=sql.Literal(f"{schema}.{table}"),
        )
        for schema, table in tables
    ]
    return _PROBE_BLOCK.format(steps=sql.SQL("").join(steps), result=sql.Literal(PROBE_RESULT))


def _outcome(outcome: str) -> str:
    """``inconclusive:<SQLSTATE>`` named as psycopg names the error (``inconclusive: NotNullViolation``)."""
    kind, _, code = outcome.partition(":")
    if kind != "inconclusive":
        return outcome
    try:
        return f"inconclusive: {psycopg.errors.lookup(code).__name__}"
    except KeyError:
        return f"inconclusive: SQLSTATE {code}"


async def probe_isolation(
    conn: Conn,
    *,
    tables: Sequence[tuple[str, str]],
    tenant_key: str,
    session_variable: str,
    app_role: str | None,
    tenants: tuple[str, str],
    probe_timeout_ms: int = 5000,
) -> tuple[IsolationFacts, ...]:
    """As the app role for tenant A, on every table (at most :data:`MAX_ISOLATION_TABLES`): is a row of
    tenant B visible, and is a row for B refused. Always rolled back; five statements whatever the tables.

    A table the app role cannot read makes the probe fail (``errors.DependencyUnavailable``), as
    no finding could be drawn from it.
    """
    own, other = tenants
    probed = list(tables)[:MAX_ISOLATION_TABLES]
    if not probed:
        return ()
    block = isolation_block(probed, tenant_key, other).as_string(conn)
    role = app_role or "(connecting role)"
    tx = conn.transaction(force_rollback=True)
    async with tx, conn.cursor() as cur:
        settings = sql.SQL("SELECT set_config('statement_timeout', {}, true), set_config({}, {}, true){}").format(
            sql.Literal(str(probe_timeout_ms)),
            sql.Literal(session_variable),
            sql.Literal(own),
            sql.SQL("")
            if app_role is None
            else sql.SQL(", set_config('role', {}, true)").format(sql.Literal(app_role)),
        )
        await cur.execute(settings)
        await cur.execute(sql.SQL("DO {}").format(sql.Literal(block)))
        await cur.execute("SELECT current_setting(%s)", (PROBE_RESULT,))
        got = await cur.fetchone()
    found: list[tuple[str, bool | None, str]] = json.loads(got[0]) if got else []
    facts = []
    for name, seen, outcome in found:
        if seen is None:
            code = outcome.partition(":")[2]
            raise errors.DependencyUnavailable(f"the isolation probe could not read {name} as {role} (SQLSTATE {code})")
        facts.append(IsolationFacts(name, int(seen), _outcome(outcome), role, tenants))
    return tuple(facts)
