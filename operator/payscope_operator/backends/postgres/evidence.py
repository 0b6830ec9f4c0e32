"""Read-only evidence from Postgres for the audit, beyond what the provisioner observes.

The declared tables' existence, row-level-security flags and owner, and the app role,
are the provisioner's observation (``model.Observed``), which the audit shares: this
module reads only what no plan needs, each with a fixed number of statements whatever
the number of tables (arrays with ``= ANY``), so an audit of 50 tables costs what an
audit of one costs: every policy (command, roles, permissive or restrictive, whether it
reaches the app role), index, foreign key and column of the declared tables, and the app
role's membership in their owners and in superuser or BYPASSRLS roles (one query), the
migration versions (one), the audit log's privileges and hash chain (two). The
cross-tenant isolation probe lives in ``isolation``. Nothing here changes data, and no
statement's work grows with the data: the migration table is read with a LIMIT, and the
audit-log verifier reads the newest :data:`CHAIN_TAIL` rows by the ordering column's
index. Names are passed as ``psycopg.sql.Identifier`` or as parameters, never pasted.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from payscope_operator import errors
from payscope_operator.backends.postgres import model

GENESIS = "0" * 64
CHAIN_TAIL = 999
"""At most this many newest rows of the audit log are verified per pass (one more anchors them): 1,000 rows read."""
MAX_MIGRATIONS = 100
"""At most this many rows of the migration bookkeeping table are read (it usually holds one)."""

Conn = psycopg.AsyncConnection[Any]
T = TypeVar("T")


COMMANDS = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}
"""pg_policy.polcmd, as CREATE POLICY ... FOR writes it."""


@dataclass(frozen=True)
class PolicyFacts:
    """One row-level-security policy as pg_policy holds it (expressions deparsed by pg_get_expr)."""

    name: str
    command: str = "ALL"  # ALL, SELECT, INSERT, UPDATE or DELETE
    permissive: bool = True  # permissive policies are ORed, restrictive ones ANDed with them
    roles: tuple[str, ...] = ("PUBLIC",)
    applies_to_app_role: bool = True  # PUBLIC, or a role the app role has the privileges of (or no app role known)
    using: str = ""
    with_check: str = ""

    def covers(self, command: str) -> bool:
        return self.command in ("ALL", command)

    def check_expression(self) -> str:
        """What new rows must satisfy: WITH CHECK, or USING where a FOR ALL/UPDATE policy has none (Postgres' rule)."""
        return self.with_check or (self.using if self.command in ("ALL", "UPDATE") else "")

    def describe(self) -> str:
        kind = "permissive" if self.permissive else "restrictive"
        return f"{self.name} ({self.command}, {kind}, {', '.join(self.roles)})"


@dataclass(frozen=True)
class TableFacts:
    schema: str
    name: str
    exists: bool
    rls_enabled: bool = False
    rls_forced: bool = False
    owner: str = ""
    app_role_is_owner: bool = False  # the app role is the owner or a member of it (can SET ROLE to it)
    policies: tuple[PolicyFacts, ...] = ()
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
    privileged_memberships: tuple[tuple[str, str], ...] = ()  # (role, "superuser"|"BYPASSRLS") it is a member of


@dataclass(frozen=True)
class Catalog:
    """What the catalogs say about the declared tables and the app role."""

    tables: dict[tuple[str, str], TableFacts]
    role: RoleFacts | None
    queries: int


@dataclass(frozen=True)
class Unreadable:
    """Why one evidence read failed while the server kept answering (a renamed column, a refused privilege)."""

    why: str


async def read_or_note(conn: Conn | None, read: Awaitable[T]) -> T | Unreadable:
    """The result of one evidence read, or why its query failed: the caller judges the rest without it.

    The connection autocommits, so a failed query leaves it usable; a lost connection
    (``conn`` broken or closed) is no failed query and is raised: the store is unreachable.
    """
    try:
        return await read
    except (psycopg.Error, errors.PayScopeError) as exc:
        if conn is not None and (conn.broken or conn.closed):
            raise
        return Unreadable(exc.message if isinstance(exc, errors.PayScopeError) else type(exc).__name__)


async def _rows(
    conn: Conn, query: str | sql.SQL | sql.Composed, params: Sequence[Any] | dict[str, Any] = ()
) -> list[tuple[Any, ...]]:
    async with conn.cursor() as cur:
        await cur.execute(query, params)
        return list(await cur.fetchall())


_MEMBERSHIPS = """(SELECT coalesce(json_agg(json_build_array(m.rolname::text,
            CASE WHEN m.rolsuper THEN 'superuser' ELSE 'BYPASSRLS' END) ORDER BY m.rolname), '[]')
        FROM pg_roles m, app a WHERE m.oid <> a.oid AND (m.rolsuper OR m.rolbypassrls)
          AND pg_has_role(a.oid, m.oid, 'MEMBER'))"""
TABLE_FACTS = f"""
WITH wanted AS (SELECT * FROM unnest(%(schemas)s::text[], %(tables)s::text[]) AS w(nspname, relname)),
     app AS (SELECT oid FROM pg_roles WHERE rolname = %(role)s)
SELECT w.nspname, w.relname,
    (SELECT coalesce(json_agg(json_build_array(p.polname, p.polcmd::text, p.polpermissive,
            array(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r)::text END FROM unnest(p.polroles) r),
            NOT EXISTS (SELECT 1 FROM app) OR 0 = ANY(p.polroles)
                OR EXISTS (SELECT 1 FROM unnest(p.polroles) r, app a WHERE r <> 0 AND pg_has_role(a.oid, r, 'USAGE')),
            coalesce(pg_get_expr(p.polqual, p.polrelid), ''),
            coalesce(pg_get_expr(p.polwithcheck, p.polrelid), ''))), '[]')
     FROM pg_policy p WHERE p.polrelid = c.oid) AS policies,
    (SELECT coalesce(json_agg(json_build_array(i.indisunique, i.indisvalid,
            array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord))), '[]')
     FROM pg_index i WHERE i.indrelid = c.oid) AS indexes,
    (SELECT count(*) FROM pg_constraint f WHERE f.contype = 'f' AND f.conrelid = c.oid) AS foreign_keys,
    array(SELECT a.attname::text FROM pg_attribute a
          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS columns,
    coalesce((SELECT pg_has_role(a.oid, c.relowner, 'MEMBER') FROM app a), false) AS app_role_is_owner,
    {_MEMBERSHIPS} AS memberships
FROM wanted w
JOIN pg_namespace n ON n.nspname = w.nspname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.relname AND c.relkind IN ('r', 'p')
"""
"""What the audit judges of the declared tables that no plan needs: every policy (command, permissive or
restrictive, roles, whether it reaches the app role: a policy applies to the roles whose privileges the current
role has, USAGE), indexes, foreign keys, columns; whether the app role is, or is a member of, the owner (it could
SET ROLE to it); and the superuser or BYPASSRLS roles the app role is a member of (repeated on every row)."""

ROLE = f"""
WITH app AS (SELECT oid FROM pg_roles WHERE rolname = %(role)s)
SELECT r.rolsuper, r.rolbypassrls, {_MEMBERSHIPS} FROM pg_roles r JOIN app ON app.oid = r.oid
"""
"""The app role's attributes and privileged memberships, when no declared table answered them."""


def _policy(row: Sequence[Any]) -> PolicyFacts:
    name, command, permissive, roles, applies, using, check = row
    return PolicyFacts(
        str(name), COMMANDS.get(command, command), bool(permissive), tuple(roles), bool(applies), using, check
    )


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
    declared); the app role is read here only then, or when no declared table exists
    (its memberships come with the tables' row otherwise).
    """
    params = {"schemas": [t[0] for t in tables], "tables": [t[1] for t in tables], "role": app_role}
    extra = {(row[0], row[1]): row[2:] for row in await _rows(conn, TABLE_FACTS, params)} if tables else {}
    queries = 1 if tables else 0
    facts: dict[tuple[str, str], TableFacts] = {}
    memberships: list[Sequence[str]] | None = None
    for schema, name in tables:
        seen = observed.table(model.TableRef(schema, name)) if observed is not None else None
        if seen is None:
            facts[(schema, name)] = TableFacts(schema, name, exists=False)
            continue
        policies, indexes, foreign_keys, columns, is_owner, members = extra.get(
            (schema, name), ([], [], 0, [], False, None)
        )
        memberships = members if members is not None else memberships
        facts[(schema, name)] = TableFacts(
            schema=schema,
            name=name,
            exists=True,
            rls_enabled=seen.rls_enabled,
            rls_forced=seen.rls_forced,
            owner=seen.owner,
            app_role_is_owner=bool(is_owner),
            policies=tuple(sorted((_policy(p) for p in policies), key=lambda p: p.name)),
            tenant_indexed=tenant_key is not None and any(v and cols[:1] == [tenant_key] for _, v, cols in indexes),
            foreign_keys=int(foreign_keys),
            unique_keys=tuple(sorted(tuple(sorted(cols)) for u, v, cols in indexes if u and v)),
            columns=tuple(columns),
        )
    role: RoleFacts | None = None
    if app_role is not None and observed is not None and observed.app_role is not None and memberships is not None:
        seen_role = observed.app_role
        privileged = tuple((str(m), str(w)) for m, w in memberships)
        role = RoleFacts(app_role, seen_role.exists, seen_role.superuser, seen_role.bypassrls, privileged)
    elif app_role is not None:
        got = await _rows(conn, ROLE, {"role": app_role})
        queries += 1
        role = RoleFacts(app_role, False)
        if got:
            superuser, bypass, members = got[0]
            role = RoleFacts(app_role, True, bool(superuser), bool(bypass), tuple((str(m), str(w)) for m, w in members))
    return Catalog(facts, role, queries)


async def read_migration_versions(conn: Conn, schema: str, table: str, column: str) -> tuple[str, ...] | None:
    """The applied migration versions, or None when the bookkeeping table does not exist (one statement)."""
    query = sql.SQL("SELECT {}::text FROM {} ORDER BY 1 LIMIT {}").format(
        sql.Identifier(column), sql.Identifier(schema, table), sql.Literal(MAX_MIGRATIONS)
    )
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
