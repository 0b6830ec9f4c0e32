"""The cross-tenant isolation probe: as the app role for tenant A, no row of tenant B is visible or writable.

Why this module exists: row-level security is what keeps one bank's rows from another's,
and only acting as PayScope's app role shows it working. The probe is one PL/pgSQL block
over every declared RLS table (at most :data:`MAX_TABLES`), inside a transaction that is
always rolled back; it sends five statements whatever the number of tables. Per table:

1. **Plant** (write probes on): a row for tenant B is inserted, so the read side proves
   something even when B has no data. As the connecting role with the session variable
   set to B; when row-level security refuses it (FORCE, and no policy for that role), as
   the app role for B, as PayScope itself would write it. NOT NULL columns without a
   default get a neutral value of their type (``''``-like, zero, false, now(), the first
   enum label, a random uuid); one that references another table, or of a type the probe
   cannot fill, makes the row unplantable, and the probe says which column.
2. **Read**: as the app role for A, ``EXISTS (... WHERE <tenant key> = B LIMIT 1)``: equality
   on the tenant key, no cast on the column, so the planner either proves it empty at
   once (the policy's equality contradicts it) or reads one index entry. Without a planted
   row, the app role for B first checks that B has a row to hide at all; if not, the table
   proves nothing (``no rows``). Sequential and bitmap scans are off for the probe's
   transaction: where B holds many rows the planner would otherwise prefer, for
   ``LIMIT 1``, a sequential scan that stops at B's first row, which comes after every
   earlier row of the table when B's rows are the newest (``benchmarks/audit_scale.py``
   at scale 0.01: 99,004 rows read of 100,000). Without an index on the tenant key it
   stays a scan.
3. **Write** (write probes on): as the app role for A, the same row for B must be refused.

Side effects of writing, which ``spec.audit.writeProbes: false`` avoids altogether (then
the read side relies on B's own rows): BEFORE INSERT triggers fire (AFTER triggers too,
for the planted row), sequence defaults use a value, and a hypertable may create a chunk,
all rolled back except the sequence values.

What it must not do: commit, read more than one row per statement, paste a name or value
into SQL (``psycopg.sql`` composes them; catalog names come back as ``sql.Identifier``), or
return a row's values (only whether one was seen).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from payscope_operator import errors

MAX_TABLES = 50
"""At most this many declared RLS tables are probed per pass (all of them, in one block)."""
RESULT = "payscope.isolation_probe"
"""The transaction-local setting the probe's block leaves its findings in."""
NOT_WRITTEN = "not probed (spec.audit.writeProbes: false)"

Conn = psycopg.AsyncConnection[Any]


@dataclass(frozen=True)
class IsolationFacts:
    """What the probe found on one table, as the app role for the first tenant."""

    table: str
    visible_foreign_rows: int  # 1 when a row of the other probe tenant is visible (equality, LIMIT 1), else 0
    foreign_write: str  # "refused: ...", "accepted", "inconclusive: <error>" or NOT_WRITTEN
    role: str
    tenants: tuple[str, str] = field(default=("", ""))
    planted: str = ""  # who planted the other tenant's row: "the connecting role", "the app role", or "" (none)
    unproven: str = ""  # why the read side proves nothing on this table (no row of B to hide), else ""


@dataclass(frozen=True)
class Column:
    """A NOT NULL column without a default, besides the tenant key: the planted row must fill it."""

    name: str
    category: str  # pg_type.typcategory
    type: str  # pg_type.typname
    first_label: str | None  # an enum's first label
    references: bool  # part of a foreign key


REQUIRED = sql.SQL("""
SELECT set_config('statement_timeout', %(timeout)s, true),
    coalesce((SELECT json_agg(json_build_array(w.ord, a.attname, t.typcategory, t.typname,
            (SELECT e.enumlabel FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder LIMIT 1),
            EXISTS (SELECT 1 FROM pg_constraint f WHERE f.conrelid = c.oid AND f.contype = 'f'
                    AND a.attnum = ANY (f.conkey))) ORDER BY w.ord, a.attnum)
        FROM unnest(%(schemas)s::text[], %(tables)s::text[]) WITH ORDINALITY AS w(nspname, relname, ord)
        JOIN pg_namespace n ON n.nspname = w.nspname
        JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.relname
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull
            AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '' AND a.attname <> %(key)s
        JOIN pg_type t ON t.oid = a.atttypid), '[]')::text AS required
""")
"""The probe's timeout, and the columns a planted row must fill, per probed table (catalogs only)."""

_FIXED: dict[str, str] = {"N": "0", "B": "false", "T": "0", "A": "{}", "I": "192.0.2.1", "S": "p"}
"""An untyped literal each pg_type category accepts (numeric, boolean, timespan, array, network, string)."""
_BY_TYPE: dict[str, sql.Composable] = {
    "uuid": sql.SQL("gen_random_uuid()"),
    "json": sql.Literal("{}"),
    "jsonb": sql.Literal("{}"),
    "bytea": sql.Literal(""),
}


def filler(column: Column) -> sql.Composable | str:
    """The value a planted row gives ``column``, or why none can be given."""
    if column.references:
        return f"column {column.name} is NOT NULL without a default and references another table"
    if column.category == "E" and column.first_label is not None:
        return sql.Literal(column.first_label)
    if column.category == "D":
        return sql.SQL("now()")
    if column.category in _FIXED:
        return sql.Literal(_FIXED[column.category])
    if column.type in _BY_TYPE:
        return _BY_TYPE[column.type]
    return f"column {column.name} is NOT NULL without a default, of a type the probe cannot fill ({column.type})"


def planted_row(
    target: sql.Identifier, tenant_key: str, other: str, required: Sequence[Column]
) -> tuple[sql.Composed, str]:
    """The INSERT of tenant ``other``'s row with every required column filled, and why it cannot be planted ("")."""
    names: list[sql.Composable] = [sql.Identifier(tenant_key)]
    values: list[sql.Composable] = [sql.Literal(other)]  # untyped: Postgres reads it as the column's type
    problems = []
    for column in required:
        value = filler(column)
        if isinstance(value, str):
            problems.append(value)
            continue
        names.append(sql.Identifier(column.name))
        values.append(value)
    insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        target, sql.SQL(", ").join(names), sql.SQL(", ").join(values)
    )
    return insert, "; ".join(problems)


_PLANT = sql.SQL("""
    PERFORM set_config({variable}, {other}, true);
    BEGIN
        {insert};
        planted := 'the connecting role';
    EXCEPTION WHEN insufficient_privilege THEN
        problem := 'row-level security refused it to the connecting role';
    WHEN others THEN
        problem := SQLSTATE || ': ' || left(SQLERRM, 200);
    END;
    IF planted IS NULL AND {as_app} THEN
        BEGIN
            PERFORM set_config('role', {role}, true);
            {insert};
            planted := 'the app role';
            problem := NULL;
            PERFORM set_config('role', 'none', true);
        EXCEPTION WHEN others THEN
            problem := problem || '; as the app role, ' || SQLSTATE || ': ' || left(SQLERRM, 200);
        END;
    END IF;
""")
_READ = sql.SQL("""
    BEGIN
        {become}
        IF planted IS NULL THEN
            PERFORM set_config({variable}, {other}, true);
            own := EXISTS (SELECT 1 FROM {target} WHERE {column} = {other} LIMIT 1);
        END IF;
        PERFORM set_config({variable}, {own_tenant}, true);
        seen := EXISTS (SELECT 1 FROM {target} WHERE {column} = {other} LIMIT 1);
    EXCEPTION WHEN others THEN
        seen := NULL;
        outcome := 'unreadable:' || SQLSTATE;
    END;
""")
_WRITE = sql.SQL("""
    IF seen IS NOT NULL THEN
        BEGIN
            {insert};
            outcome := 'accepted';
        EXCEPTION
            WHEN insufficient_privilege THEN outcome := 'refused: ' || SQLERRM;
            WHEN others THEN outcome := 'inconclusive:' || SQLSTATE;
        END;
    END IF;
""")
_STEP = sql.SQL("""
    planted := NULL; problem := {problem}; own := NULL; seen := NULL; outcome := {outcome};
{plant}{read}{write}    PERFORM set_config('role', 'none', true);
    found := found || jsonb_build_array(jsonb_build_array({name}, seen, outcome, planted, problem, own));
""")
_BLOCK = sql.SQL("""
DECLARE
    found jsonb := '[]';
    planted text;
    problem text;
    own boolean;
    seen boolean;
    outcome text;
BEGIN
    PERFORM set_config('enable_seqscan', 'off', true);
    PERFORM set_config('enable_bitmapscan', 'off', true);
{steps}
    PERFORM set_config({result}, found::text, true);
END
""")


@dataclass(frozen=True)
class Probe:
    """Who the probe acts as and for whom: tenants (A, B), the session variable, the app role (None: connected
    as it), and whether it may insert (``spec.audit.writeProbes``)."""

    tenant_key: str
    session_variable: str
    app_role: str | None
    tenants: tuple[str, str]
    write: bool = True


def block(probe: Probe, tables: Sequence[tuple[str, str]], required: dict[int, list[Column]]) -> sql.Composed:
    """The PL/pgSQL body probing every table in turn (see the module's docstring for the steps)."""
    own_tenant, other = probe.tenants
    role = sql.Literal(probe.app_role) if probe.app_role is not None else sql.NULL
    steps = []
    for index, (schema, table) in enumerate(tables, start=1):
        target = sql.Identifier(schema, table)
        insert, problem = planted_row(target, probe.tenant_key, other, required.get(index, []))
        names = {
            "variable": sql.Literal(probe.session_variable),
            "other": sql.Literal(other),
            "own_tenant": sql.Literal(own_tenant),
            "target": target,
            "column": sql.Identifier(probe.tenant_key),
            "role": role,
            "insert": insert,
        }
        plant = _PLANT.format(**names, as_app=sql.SQL("true" if probe.app_role else "false"))
        become = sql.SQL("PERFORM set_config('role', {}, true);").format(role) if probe.app_role else sql.SQL("")
        steps.append(
            _STEP.format(
                problem=sql.Literal(problem or None),
                outcome=sql.Literal(None if probe.write else NOT_WRITTEN),
                plant=plant if probe.write and not problem else sql.SQL(""),
                read=_READ.format(**names, become=become),
                write=_WRITE.format(insert=insert) if probe.write else sql.SQL(""),
                name=sql.Literal(f"{schema}.{table}"),
            )
        )
    return _BLOCK.format(steps=sql.SQL("").join(steps), result=sql.Literal(RESULT))


def _outcome(outcome: str) -> str:
    """``inconclusive:<SQLSTATE>`` named as psycopg names the error (``inconclusive: NotNullViolation``)."""
    kind, _, code = outcome.partition(":")
    if kind != "inconclusive":
        return outcome
    try:
        return f"inconclusive: {psycopg.errors.lookup(code).__name__}"
    except KeyError:
        return f"inconclusive: SQLSTATE {code}"


def _unproven(other: str, planted: str | None, problem: str | None, own: bool | None, seen: bool) -> str:
    if planted or seen or own:
        return ""
    why = f"no row of {other} could be planted ({problem})" if problem else "writeProbes is false"
    return f"{other} has no row here to hide, and {why}"


async def probe_isolation(
    conn: Conn, probe: Probe, tables: Sequence[tuple[str, str]], *, probe_timeout_ms: int = 5000
) -> tuple[IsolationFacts, ...]:
    """The probe over ``tables`` (at most :data:`MAX_TABLES`), always rolled back; five statements whatever the tables.

    A table the app role cannot read makes the probe fail (``errors.DependencyUnavailable``), as
    no finding could be drawn from it.
    """
    probed = list(tables)[:MAX_TABLES]
    if not probed:
        return ()
    role = probe.app_role or "(connecting role)"
    other = probe.tenants[1]
    params = {
        "timeout": str(probe_timeout_ms),
        "schemas": [schema for schema, _ in probed],
        "tables": [table for _, table in probed],
        "key": probe.tenant_key,
    }
    async with conn.transaction(force_rollback=True), conn.cursor() as cur:
        await cur.execute(REQUIRED, params)
        got = await cur.fetchone()
        required: dict[int, list[Column]] = {}
        for index, *column in json.loads(got[1] if got else "[]"):
            required.setdefault(int(index), []).append(Column(*column))
        text = block(probe, probed, required).as_string(conn)
        await cur.execute(sql.SQL("DO {}").format(sql.Literal(text)))
        await cur.execute("SELECT current_setting(%s)", (RESULT,))
        result = await cur.fetchone()
    facts = []
    for name, seen, outcome, planted, problem, own in json.loads(result[0]) if result else []:
        if seen is None:
            code = str(outcome).partition(":")[2]
            raise errors.DependencyUnavailable(f"the isolation probe could not read {name} as {role} (SQLSTATE {code})")
        facts.append(
            IsolationFacts(
                table=name,
                visible_foreign_rows=int(seen),
                foreign_write=_outcome(outcome),
                role=role,
                tenants=probe.tenants,
                planted=planted or "",
                unproven=_unproven(other, planted, problem, own, seen),
            )
        )
    return tuple(facts)
