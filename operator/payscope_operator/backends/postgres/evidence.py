"""Read-only evidence from Postgres for the audit: catalogs, migrations, audit log, isolation.

Every function takes an open connection and a fixed set of names, and sends a
fixed number of queries whatever the number of tables (arrays with ``= ANY``),
so an audit of 50 tables costs what an audit of one costs. Nothing here
changes data: the cross-tenant probe runs inside a transaction that is always
rolled back, and the audit-log verifier reads a bounded tail of the chain.
Names are passed as ``psycopg.sql.Identifier`` or as parameters, never pasted.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from payscope_operator import errors

GENESIS = "0" * 64
CHAIN_TAIL = 10000
"""At most this many newest rows of the audit log are verified per pass."""

Conn = psycopg.AsyncConnection[Any]


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


async def _rows(
    conn: Conn, query: str | sql.SQL | sql.Composed, params: Sequence[Any] | Mapping[str, Any] = ()
) -> list[tuple[Any, ...]]:
    async with conn.cursor() as cur:
        await cur.execute(query, params)
        return list(await cur.fetchall())


TABLES = """
WITH wanted AS (SELECT * FROM unnest(%(schemas)s::text[], %(tables)s::text[]) AS w(nspname, relname))
SELECT w.nspname, w.relname, c.oid, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner),
       CASE WHEN app.oid IS NULL OR c.oid IS NULL THEN false ELSE pg_has_role(app.oid, c.relowner, 'MEMBER') END
FROM wanted w
LEFT JOIN pg_roles app ON app.rolname = %(role)s
LEFT JOIN pg_namespace n ON n.nspname = w.nspname
LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.relname AND c.relkind IN ('r', 'p')
"""
"""The declared tables: existence, RLS flags, owner, and whether the app role is (a member of) the owner."""

POLICIES = """
SELECT p.polrelid, p.polname, p.polcmd::text, p.polpermissive,
       array(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r)::text END FROM unnest(p.polroles) r),
       app.oid IS NULL OR 0 = ANY(p.polroles)
           OR EXISTS (SELECT 1 FROM unnest(p.polroles) r WHERE r <> 0 AND pg_has_role(app.oid, r, 'USAGE')),
       coalesce(pg_get_expr(p.polqual, p.polrelid), ''), coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
FROM pg_policy p LEFT JOIN pg_roles app ON app.rolname = %(role)s
WHERE p.polrelid = ANY(%(oids)s)
"""
"""Every policy of the declared tables: command, permissive or restrictive, roles, whether it reaches the app role
(a policy applies to the roles whose privileges the current role has: USAGE), and its deparsed expressions."""

ROLE = """
SELECT r.rolsuper, r.rolbypassrls,
       array(SELECT ARRAY[m.rolname::text, CASE WHEN m.rolsuper THEN 'superuser' ELSE 'BYPASSRLS' END]
             FROM pg_roles m WHERE m.oid <> r.oid AND (m.rolsuper OR m.rolbypassrls)
               AND pg_has_role(r.oid, m.oid, 'MEMBER') ORDER BY m.rolname)
FROM pg_roles r WHERE r.rolname = %s
"""
"""The app role's own attributes, and the superuser or BYPASSRLS roles it may SET ROLE to (membership)."""


async def read_catalog(
    conn: Conn, tables: Sequence[tuple[str, str]], *, tenant_key: str | None, app_role: str | None
) -> Catalog:
    """Existence, RLS, policies, tenant indexes, foreign keys and unique keys of ``tables``: 5 queries."""
    schemas = [t[0] for t in tables]
    names = [t[1] for t in tables]
    found = await _rows(conn, TABLES, {"schemas": schemas, "tables": names, "role": app_role})
    oids = [row[2] for row in found if row[2] is not None]
    policies = await _rows(conn, POLICIES, {"role": app_role, "oids": oids})
    indexes = await _rows(
        conn,
        """SELECT i.indrelid, i.indisunique, i.indisvalid,
                  array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord)
           FROM pg_index i WHERE i.indrelid = ANY(%s)""",
        (oids,),
    )
    fks = await _rows(
        conn,
        "SELECT conrelid, count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY(%s) GROUP BY 1",
        (oids,),
    )
    columns = await _rows(
        conn,
        "SELECT attrelid, array_agg(attname::text ORDER BY attnum) FROM pg_attribute"
        " WHERE attrelid = ANY(%s) AND attnum > 0 AND NOT attisdropped GROUP BY 1",
        (oids,),
    )
    queries = 5
    role: RoleFacts | None = None
    if app_role is not None:
        got = await _rows(conn, ROLE, (app_role,))
        queries += 1
        role = RoleFacts(app_role, False)
        if got:
            superuser, bypass, memberships = got[0]
            role = RoleFacts(app_role, True, bool(superuser), bool(bypass), tuple(tuple(m) for m in memberships))
    by_oid_policies: dict[int, list[PolicyFacts]] = {}
    for relid, name, command, permissive, roles, applies, using, check in policies:
        by_oid_policies.setdefault(relid, []).append(
            PolicyFacts(name, COMMANDS.get(command, command), permissive, tuple(roles), applies, using, check)
        )
    by_oid_indexes: dict[int, list[tuple[bool, bool, list[str]]]] = {}
    for relid, unique, valid, cols in indexes:
        by_oid_indexes.setdefault(relid, []).append((unique, valid, list(cols)))
    fk_count = {relid: int(count) for relid, count in fks}
    column_names = {relid: tuple(cols) for relid, cols in columns}
    facts: dict[tuple[str, str], TableFacts] = {}
    for schema, name, oid, enabled, forced, owner, is_owner in found:
        if oid is None:
            facts[(schema, name)] = TableFacts(schema, name, exists=False)
            continue
        idx = by_oid_indexes.get(oid, [])
        facts[(schema, name)] = TableFacts(
            schema=schema,
            name=name,
            exists=True,
            rls_enabled=bool(enabled),
            rls_forced=bool(forced),
            owner=owner,
            app_role_is_owner=bool(is_owner),
            policies=tuple(sorted(by_oid_policies.get(oid, []), key=lambda p: p.name)),
            tenant_indexed=tenant_key is not None and any(v and cols[:1] == [tenant_key] for _, v, cols in idx),
            foreign_keys=fk_count.get(oid, 0),
            unique_keys=tuple(sorted(tuple(sorted(cols)) for u, v, cols in idx if u and v)),
            columns=column_names.get(oid, ()),
        )
    return Catalog(facts, role, queries)


async def read_migration_versions(conn: Conn, schema: str, table: str, column: str) -> tuple[str, ...] | None:
    """The applied migration versions, or None when the bookkeeping table does not exist."""
    exists = await _rows(conn, "SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}"."{table}"',))
    if not exists or not exists[0][0]:
        return None
    query = sql.SQL("SELECT {}::text FROM {} ORDER BY 1").format(sql.Identifier(column), sql.Identifier(schema, table))
    try:
        rows = await _rows(conn, query)
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


async def read_audit_log(
    conn: Conn, schema: str, table: str, order_column: str, app_role: str | None, *, tail: int = CHAIN_TAIL
) -> AuditLogFacts:
    """Verify the newest ``tail`` rows of the hash chain and the app role's write privileges."""
    exists = await _rows(conn, "SELECT to_regclass(%s)::oid", (f'"{schema}"."{table}"',))
    if not exists or exists[0][0] is None:
        return AuditLogFacts(exists=False)
    oid = exists[0][0]
    writes: tuple[str, ...] = ()
    owns = False
    if app_role is not None:
        got = await _rows(
            conn,
            "SELECT p, has_table_privilege(%s, %s::oid, p) FROM unnest(ARRAY['UPDATE','DELETE','TRUNCATE']) p",
            (app_role, oid),
        )
        writes = tuple(p for p, held in got if held)
        owner = await _rows(
            conn, "SELECT pg_has_role(%s, relowner, 'USAGE') FROM pg_class WHERE oid = %s", (app_role, oid)
        )
        owns = bool(owner and owner[0][0])
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
    return AuditLogFacts(True, checked, first_break, writes, owns, tuple(sorted(operations.items())), traced)


@dataclass(frozen=True)
class IsolationFacts:
    table: str
    visible_foreign_rows: int
    foreign_write: str  # "refused: ...", or "accepted"
    role: str
    tenants: tuple[str, str] = field(default=("", ""))


async def probe_isolation(
    conn: Conn,
    *,
    schema: str,
    table: str,
    tenant_key: str,
    session_variable: str,
    app_role: str | None,
    tenants: tuple[str, str],
    probe_timeout_ms: int = 5000,
) -> IsolationFacts:
    """As the app role, tenant A: count tenant B's visible rows and try to write one. Always rolled back."""
    own, other = tenants
    target = sql.Identifier(schema, table)
    column = sql.Identifier(tenant_key)
    visible = 0
    write = "accepted"
    tx = conn.transaction(force_rollback=True)
    async with tx, conn.cursor() as cur:
        await cur.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(probe_timeout_ms)))
        if app_role is not None:
            await cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(app_role)))
        await cur.execute("SELECT set_config(%s, %s, true)", (session_variable, own))
        await cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}::text <> %s").format(target, column), (own,))
        got = await cur.fetchone()
        visible = int(got[0]) if got else 0
        try:
            async with conn.transaction():  # a savepoint: the refusal must not abort the probe
                # The parameter is untyped: Postgres casts it to the column's type.
                await cur.execute(sql.SQL("INSERT INTO {} ({}) VALUES (%s)").format(target, column), (other,))
        except psycopg.errors.InsufficientPrivilege as exc:
            write = "refused: " + (exc.diag.message_primary or "insufficient privilege")
        except psycopg.Error as exc:
            write = f"inconclusive: {type(exc).__name__}"
    return IsolationFacts(f"{schema}.{table}", visible, write, app_role or "(connecting role)", tenants)
