"""SQL of the row-level-security provisioner: the catalog query, each DDL statement, name checks.

Why this module exists: it keeps every piece of SQL text of ``postgres`` in one place
where it can be read and unit-tested without a server: the single observe query over
pg_class/pg_policy/pg_index for all declared tables at once (``= ANY`` arrays, so the
number of queries never grows with the number of tables) and the mapping of its rows to
``model``; the statements that create, replace and drop the ``payscope_`` policy and
index; and the deparsed text Postgres gives back for the policy expression, so that a
changed definition is seen as drift. :func:`identifier` and :func:`qualified` are the
only way a name reaches SQL text here and in ``timescale``.

What it must not do: talk to a server, decide what to change, or paste a spec value
into SQL text: names pass through ``sql.Identifier`` (after :func:`identifier`
re-checks them) and values through ``sql.Literal`` or bound parameters.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from psycopg import sql

from payscope_operator import errors
from payscope_operator.api import fields
from payscope_operator.backends import base, ownership
from payscope_operator.backends.postgres import model

POLICY_NAME = f"{base.MANAGED_PREFIX}tenant_isolation"
"""The one policy per table the operator manages (always this name: managed objects carry the payscope_ prefix)."""

MAX_IDENTIFIER_BYTES = 63

TENANT_CASTS: dict[str, str | None] = {
    "text": None,
    "varchar": None,
    "uuid": "uuid",
    "int2": "smallint",
    "int4": "integer",
    "int8": "bigint",
}
"""pg_type.typname of a supported tenant column → the type the session variable is cast to (None: no cast)."""


def identifier(value: str, *, what: str) -> sql.Identifier:
    """``sql.Identifier`` of a name re-checked against the CRD's SQL identifier pattern."""
    if not re.fullmatch(fields.SQL_IDENTIFIER_PATTERN, value):
        raise errors.SpecInvalid(f"{what} {value!r} is not a lower-case SQL identifier")
    return sql.Identifier(value)


def qualified(schema: str, name: str) -> sql.Identifier:
    """``schema.name``, both parts validated and quoted."""
    identifier(schema, what="schema")
    identifier(name, what="name")
    return sql.Identifier(schema, name)


def index_name(table: str, tenant_key: str) -> str:
    """``payscope_<table>_<tenantkey>_idx``; past 63 bytes, truncated with a hash suffix (deterministic)."""
    name = f"{base.MANAGED_PREFIX}{table}_{tenant_key}_idx"
    if len(name.encode()) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.sha256(f"{table}\0{tenant_key}".encode()).hexdigest()[:8]
    suffix = f"_{digest}_idx"
    head = name[: MAX_IDENTIFIER_BYTES - len(suffix)]
    return f"{head}{suffix}"


def policy_expression(column: str, cast: str | None, session_variable: str) -> sql.Composed:
    """``<column> = current_setting('<var>', true)`` cast to the column's type (empty setting → NULL)."""
    setting = sql.SQL("current_setting({}, true)").format(sql.Literal(session_variable))
    if cast is not None:
        setting = sql.SQL("NULLIF({}, '')::{}").format(setting, sql.SQL(_checked_cast(cast)))
    return sql.SQL("{} = {}").format(identifier(column, what="tenant column"), setting)


def _checked_cast(cast: str) -> str:
    if cast not in {value for value in TENANT_CASTS.values() if value}:
        raise ValueError(f"unsupported tenant cast {cast!r}")
    return cast


def deparsed_expression(column: str, typname: str, session_variable: str) -> str:
    """What ``pg_get_expr`` returns for :func:`policy_expression` (Postgres 15 and 17 agree)."""
    setting = f"current_setting('{session_variable}'::text, true)"
    cast = TENANT_CASTS[typname]
    if cast is not None:
        setting = f"(NULLIF({setting}, ''::text))::{cast}"
    left = f"({column})::text" if typname == "varchar" else column
    return f"({left} = {setting})"


def canonical(expression: str | None) -> str | None:
    """An expression without whitespace and parentheses, for comparing deparsed policy text."""
    if expression is None:
        return None
    return re.sub(r"[\s()]", "", expression)


def create_policy(
    schema: str, table: str, column: str, cast: str | None, session_variable: str, role: str | None
) -> sql.Composed:
    expression = policy_expression(column, cast, session_variable)
    grantee = sql.SQL("PUBLIC") if role is None else identifier(role, what="postgres.appRole")
    return sql.SQL("CREATE POLICY {} ON {} AS PERMISSIVE FOR ALL TO {} USING ({}) WITH CHECK ({})").format(
        sql.Identifier(POLICY_NAME), qualified(schema, table), grantee, expression, expression
    )


def comment_on_policy(schema: str, table: str, text: str) -> sql.Composed:
    """Record the owning resource on the table's ``payscope_`` policy."""
    return sql.SQL("COMMENT ON POLICY {} ON {} IS {}").format(
        sql.Identifier(POLICY_NAME), qualified(schema, table), sql.Literal(text)
    )


def comment_on_index(schema: str, name: str, text: str) -> sql.Composed:
    """Record the owning resource on a ``payscope_`` index."""
    _checked_index_name(name)
    return sql.SQL("COMMENT ON INDEX {} IS {}").format(qualified(schema, name), sql.Literal(text))


def drop_policy(schema: str, table: str) -> sql.Composed:
    return sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(POLICY_NAME), qualified(schema, table))


def enable_row_security(schema: str, table: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(qualified(schema, table))


def force_row_security(schema: str, table: str, force: bool) -> sql.Composed:
    verb = sql.SQL("FORCE" if force else "NO FORCE")
    return sql.SQL("ALTER TABLE {} {} ROW LEVEL SECURITY").format(qualified(schema, table), verb)


def create_index(schema: str, table: str, name: str, column: str, *, concurrently: bool) -> sql.Composed:
    """CONCURRENTLY for plain tables; hypertables refuse it and get a plain (locking) build."""
    return sql.SQL("CREATE INDEX {}IF NOT EXISTS {} ON {} ({})").format(
        sql.SQL("CONCURRENTLY " if concurrently else ""),
        _checked_index_name(name),
        qualified(schema, table),
        identifier(column, what="tenant column"),
    )


def drop_index(schema: str, name: str, *, concurrently: bool) -> sql.Composed:
    _checked_index_name(name)
    return sql.SQL("DROP INDEX {}IF EXISTS {}").format(
        sql.SQL("CONCURRENTLY " if concurrently else ""), qualified(schema, name)
    )


def _checked_index_name(name: str) -> sql.Identifier:
    if not name.startswith(base.MANAGED_PREFIX):
        raise ValueError(f"refusing to touch index {name!r}: not a {base.MANAGED_PREFIX} object")
    return identifier(name, what="index")


@dataclass(frozen=True)
class TableRow:
    """One row of :data:`OBSERVE`: a declared table (``present`` False when it does not exist)."""

    schema_name: str
    table_name: str
    present: bool
    owner: str | None
    relrowsecurity: bool | None
    relforcerowsecurity: bool | None
    manageable: bool | None
    app_role_owns: bool
    tenant_type: str | None
    tenant_present: bool
    hypertable: bool
    polcmd: str | None
    polpermissive: bool | None
    roles: list[str] | None
    using_expr: str | None
    check_expr: str | None
    policy_comment: str | None
    on_table: bool | None
    indisvalid: bool | None
    partial: bool | None
    amname: str | None
    columns: list[str] | None
    index_comment: str | None
    app_exists: bool
    app_super: bool
    app_bypassrls: bool
    timescaledb: bool
    concurrent_ddl: bool  # False on PGlite (WASM, one backend), which breaks on multi-transaction DDL


@dataclass(frozen=True)
class ColumnstoreRow:
    """One row of :data:`OBSERVE_COLUMNSTORE`."""

    schema_name: str
    table_name: str


OBSERVE = sql.SQL("""
WITH wanted AS (
    SELECT * FROM unnest(%(schemas)s::text[], %(tables)s::text[], %(indexes)s::text[])
        AS w(schema_name, table_name, index_name)
), app AS (
    SELECT r.oid, r.rolsuper, r.rolbypassrls FROM pg_roles r WHERE r.rolname = %(app_role)s
)
SELECT
    w.schema_name, w.table_name, c.oid IS NOT NULL AS present,
    pg_get_userbyid(c.relowner) AS owner, c.relrowsecurity, c.relforcerowsecurity,
    pg_has_role(c.relowner, 'USAGE') AS manageable,
    coalesce(pg_has_role((SELECT oid FROM app), c.relowner, 'USAGE'), false) AS app_role_owns,
    CASE WHEN t.typtype = 'b' THEN t.typname END AS tenant_type, a.attnum IS NOT NULL AS tenant_present,
    EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.tgrelid = c.oid AND tg.tgname = 'ts_insert_blocker')
        AS hypertable,
    pol.polcmd, pol.polpermissive, pol.roles, pol.using_expr, pol.check_expr, pol.policy_comment,
    idx.on_table, idx.indisvalid, idx.partial, idx.amname, idx.columns, idx.index_comment,
    (SELECT oid FROM app) IS NOT NULL AS app_exists,
    coalesce((SELECT rolsuper FROM app), false) AS app_super,
    coalesce((SELECT rolbypassrls FROM app), false) AS app_bypassrls,
    EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') AS timescaledb,
    version() NOT ILIKE '%%emscripten%%' AS concurrent_ddl
FROM wanted w
LEFT JOIN pg_namespace n ON n.nspname = w.schema_name
LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.table_name AND c.relkind IN ('r', 'p')
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = %(tenant_key)s AND a.attnum > 0
    AND NOT a.attisdropped
LEFT JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN LATERAL (
    SELECT p.polcmd::text AS polcmd, p.polpermissive,
        ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END
              FROM unnest(p.polroles) r ORDER BY 1) AS roles,
        pg_get_expr(p.polqual, p.polrelid) AS using_expr, pg_get_expr(p.polwithcheck, p.polrelid) AS check_expr,
        obj_description(p.oid, 'pg_policy') AS policy_comment
    FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = %(policy)s
) pol ON true
LEFT JOIN LATERAL (
    SELECT i.indrelid = c.oid AS on_table, i.indisvalid, i.indpred IS NOT NULL AS partial, am.amname::text,
        ARRAY(SELECT coalesce(att.attname::text, '')
              FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
              LEFT JOIN pg_attribute att ON att.attrelid = i.indrelid AND att.attnum = k.attnum
              WHERE k.ord <= i.indnkeyatts ORDER BY k.ord) AS columns,
        obj_description(ic.oid, 'pg_class') AS index_comment
    FROM pg_class ic JOIN pg_index i ON i.indexrelid = ic.oid JOIN pg_am am ON am.oid = ic.relam
    WHERE ic.relnamespace = n.oid AND ic.relname = w.index_name
) idx ON true
ORDER BY w.schema_name, w.table_name
""")
"""Everything the RLS plan needs, for all declared tables, in one query."""

OBSERVE_COLUMNSTORE = sql.SQL("""
SELECT h.hypertable_schema::text AS schema_name, h.hypertable_name::text AS table_name
FROM timescaledb_information.hypertables h
WHERE h.compression_enabled
  AND (h.hypertable_schema::text, h.hypertable_name::text) IN (
      SELECT * FROM unnest(%(schemas)s::text[], %(tables)s::text[]))
""")
"""Hypertables with compression (columnstore) on, which refuse row-level security; asked only when
the extension is installed and a declared table is a hypertable."""


def observed_table(row: TableRow, columnstore: set[tuple[str, str]]) -> model.ObservedTable:
    """What one row of :data:`OBSERVE` says about a declared table that exists."""
    policy = None
    if row.polcmd is not None:
        policy = model.ObservedPolicy(
            row.polcmd,
            bool(row.polpermissive),
            tuple(row.roles or ()),
            row.using_expr,
            row.check_expr,
            ownership.parse_comment(row.policy_comment, legacy=True),
        )
    index = None
    if row.on_table is not None:
        index = model.ObservedIndex(
            row.on_table,
            bool(row.indisvalid),
            bool(row.partial),
            row.amname or "",
            tuple(row.columns or ()),
            ownership.parse_comment(row.index_comment, legacy=True),
        )
    return model.ObservedTable(
        ref=model.TableRef(row.schema_name, row.table_name),
        owner=row.owner or "",
        rls_enabled=bool(row.relrowsecurity),
        rls_forced=bool(row.relforcerowsecurity),
        manageable=bool(row.manageable),
        app_role_owns=row.app_role_owns,
        tenant_type=row.tenant_type,
        tenant_present=row.tenant_present,
        hypertable=row.hypertable,
        columnstore=(row.schema_name, row.table_name) in columnstore,
        policy=policy,
        index=index,
    )
