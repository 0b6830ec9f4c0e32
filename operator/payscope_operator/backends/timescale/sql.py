"""SQL of the TimescaleDB provisioner: two catalog queries, their rows, and each TimescaleDB API call.

Why this module exists: it keeps every piece of SQL text of ``timescale`` readable
and unit-testable without a server. :data:`OBSERVE_TABLES` reads, from pg_catalog only
(so it works before the extension exists), whether TimescaleDB is available and
installed and, for all declared tables at once, their time column, row security and
the unique indexes that would stop ``create_hypertable``. :data:`OBSERVE_HYPERTABLES`
reads the ``timescaledb_information`` views (hypertables, dimensions,
hypertable_compression_settings, jobs) for the declared tables that are hypertables.
Neither grows with the number of tables. Their rows become ``model`` types here.

What it must not do: talk to a server, decide what to change, or paste spec values
into SQL: names go through ``postgres.sql.identifier``/:func:`regclass`, durations
through :func:`interval`, everything else through ``sql.Literal`` or bound parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from psycopg import sql

from payscope_operator.api import fields
from payscope_operator.backends import postgres
from payscope_operator.backends.timescale import model

EXTENSION = "timescaledb"
TIME_TYPES = frozenset({"timestamptz", "timestamp", "date"})
"""pg_type.typname of time columns a duration chunk interval applies to."""


@dataclass(frozen=True)
class TableRow:
    """One row of :data:`OBSERVE_TABLES` (``present`` False when the table does not exist)."""

    schema_name: str
    table_name: str
    present: bool
    manageable: bool | None
    row_security: bool
    time_type: str | None
    time_present: bool
    hypertable: bool
    blocking: list[str]
    available: bool
    installed: str | None
    stored_bytes: int | None
    row_estimate: float | None


@dataclass(frozen=True)
class HypertableRow:
    """One row of :data:`OBSERVE_HYPERTABLES`."""

    schema_name: str
    table_name: str
    compression_enabled: bool
    time_column: str | None
    chunk_seconds: float | None
    segmentby: str | None
    orderby: str | None
    retention_job: int | None
    retention_seconds: float | None
    compression_job: int | None
    compression_seconds: float | None


OBSERVE_TABLES = sql.SQL("""
WITH wanted AS (
    SELECT * FROM unnest(%(schemas)s::text[], %(tables)s::text[], %(time_columns)s::text[])
        AS w(schema_name, table_name, time_column)
)
SELECT
    w.schema_name, w.table_name, c.oid IS NOT NULL AS present,
    pg_has_role(c.relowner, 'USAGE') AS manageable,
    coalesce(c.relrowsecurity OR c.relforcerowsecurity, false) AS row_security,
    CASE WHEN t.typtype = 'b' THEN t.typname::text END AS time_type, a.attnum IS NOT NULL AS time_present,
    EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.tgrelid = c.oid AND tg.tgname = 'ts_insert_blocker')
        AS hypertable,
    ARRAY(
        SELECT coalesce(con.conname, ic.relname)::text
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype IN ('p', 'u')
        WHERE i.indrelid = c.oid AND i.indisunique AND NOT (a.attnum = ANY (i.indkey::int2[]))
        ORDER BY 1
    ) AS blocking,
    EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS available,
    (SELECT extversion::text FROM pg_extension WHERE extname = 'timescaledb') AS installed,
    pg_relation_size(c.oid) AS stored_bytes, c.reltuples::float8 AS row_estimate
FROM wanted w
LEFT JOIN pg_namespace n ON n.nspname = w.schema_name
LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.table_name AND c.relkind IN ('r', 'p')
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = w.time_column AND a.attnum > 0
    AND NOT a.attisdropped
LEFT JOIN pg_type t ON t.oid = a.atttypid
ORDER BY w.schema_name, w.table_name
""")
"""Extension state and the pg_catalog facts of every declared table, in one query."""

_JOB = """
LEFT JOIN LATERAL (
    SELECT j.job_id, CASE WHEN jsonb_typeof(j.config -> '{key}') = 'string'
        THEN extract(epoch FROM (j.config ->> '{key}')::interval)::float8 END AS seconds
    FROM timescaledb_information.jobs j
    WHERE j.hypertable_schema = w.schema_name AND j.hypertable_name = w.table_name AND j.proc_name = '{proc}'
    ORDER BY j.job_id LIMIT 1
) {alias} ON true"""

OBSERVE_HYPERTABLES = sql.SQL(
    """
WITH wanted AS (
    SELECT * FROM unnest(%(schemas)s::text[], %(tables)s::text[]) AS w(schema_name, table_name)
)
SELECT
    w.schema_name, w.table_name, h.compression_enabled,
    d.column_name::text AS time_column, extract(epoch FROM d.time_interval)::float8 AS chunk_seconds,
    cs.segmentby::text, cs.orderby::text,
    rj.job_id AS retention_job, rj.seconds AS retention_seconds,
    cj.job_id AS compression_job, cj.seconds AS compression_seconds
FROM wanted w
JOIN timescaledb_information.hypertables h
    ON h.hypertable_schema = w.schema_name AND h.hypertable_name = w.table_name
LEFT JOIN timescaledb_information.dimensions d
    ON d.hypertable_schema = w.schema_name AND d.hypertable_name = w.table_name AND d.dimension_number = 1
LEFT JOIN timescaledb_information.hypertable_compression_settings cs
    ON cs.hypertable = to_regclass(quote_ident(w.schema_name) || '.' || quote_ident(w.table_name))"""
    + _JOB.format(key="drop_after", proc="policy_retention", alias="rj")
    + _JOB.format(key="compress_after", proc="policy_compression", alias="cj")
    + "\nORDER BY w.schema_name, w.table_name\n"
)
"""Dimension, compression settings and policy jobs of the declared hypertables, in one query."""


def regclass(schema: str, name: str) -> sql.Composed:
    """A ``'"schema"."name"'::regclass`` literal for TimescaleDB's API functions."""
    return sql.SQL("{}::regclass").format(sql.Literal(postgres.sql.qualified(schema, name).as_string()))


_UNIT_WORDS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def interval(duration: str) -> sql.Composed:
    """An ``interval`` literal of a spec duration (``7d`` → ``'7 days'::interval``)."""
    fields.parse_duration(duration)  # validates the pattern
    return sql.SQL("{}::interval").format(sql.Literal(f"{int(duration[:-1])} {_UNIT_WORDS[duration[-1]]}"))


def create_extension() -> sql.Composed:
    return sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(EXTENSION))


def create_hypertable(
    schema: str, table: str, time_column: str, chunk_interval: str | None, *, migrate_data: bool
) -> sql.Composed:
    """``migrate_data => true`` moves existing rows into chunks under an exclusive lock (``hypertable.migrateData``);
    false refuses a table with rows, which the plan never asks for."""
    postgres.sql.identifier(time_column, what="time column")
    column = sql.Literal(time_column)  # by_range() takes the bare column name
    dimension = (
        sql.SQL("by_range({})").format(column)
        if chunk_interval is None
        else sql.SQL("by_range({}, {})").format(column, interval(chunk_interval))
    )
    return sql.SQL("SELECT create_hypertable({}, {}, migrate_data => {})").format(
        regclass(schema, table), dimension, sql.SQL("true" if migrate_data else "false")
    )


def set_chunk_interval(schema: str, table: str, chunk_interval: str) -> sql.Composed:
    return sql.SQL("SELECT set_chunk_time_interval({}, {})").format(regclass(schema, table), interval(chunk_interval))


def column_list(columns: tuple[str, ...]) -> str:
    """``"a","b"`` for compress_segmentby; each name validated and quoted."""
    return ",".join(postgres.sql.identifier(column, what="compression column").as_string() for column in columns)


def order_list(columns: tuple[str, ...]) -> str:
    """``"time" DESC,"b"`` for compress_orderby; each entry validated."""
    parts = []
    for entry in columns:
        if not re.fullmatch(fields.SQL_ORDER_BY_PATTERN, entry):
            raise ValueError(f"not a compress_orderby entry: {entry!r}")
        name, _, direction = entry.partition(" ")
        parts.append(
            postgres.sql.identifier(name, what="orderBy column").as_string() + (f" {direction}" if direction else "")
        )
    return ",".join(parts)


def set_compression(
    schema: str, table: str, *, enable: bool, segment_by: tuple[str, ...] | None, order_by: tuple[str, ...] | None
) -> sql.Composed:
    """``ALTER TABLE ... SET (timescaledb.compress, ...)``; ``None`` leaves an option as it is."""
    options: list[sql.Composable] = [sql.SQL("timescaledb.compress")] if enable else []
    if segment_by is not None:
        options.append(sql.SQL("timescaledb.compress_segmentby = {}").format(sql.Literal(column_list(segment_by))))
    if order_by is not None:
        options.append(sql.SQL("timescaledb.compress_orderby = {}").format(sql.Literal(order_list(order_by))))
    return sql.SQL("ALTER TABLE {} SET ({})").format(postgres.sql.qualified(schema, table), sql.SQL(", ").join(options))


_POLICY_FUNCTIONS = {
    "retention": ("add_retention_policy", "remove_retention_policy", "drop_after"),
    "compression": ("add_compression_policy", "remove_compression_policy", "compress_after"),
}


def add_policy(schema: str, table: str, policy: str, after: str) -> sql.Composed:
    add, _, argument = _POLICY_FUNCTIONS[policy]
    return sql.SQL("SELECT {}({}, {} => {})").format(
        sql.Identifier(add),
        regclass(schema, table),
        sql.Identifier(argument),
        interval(after),
    )


def remove_policy(schema: str, table: str, policy: str) -> sql.Composed:
    _, remove, _ = _POLICY_FUNCTIONS[policy]
    return sql.SQL("SELECT {}({}, if_exists => true)").format(sql.Identifier(remove), regclass(schema, table))


def parse_columns(text: str | None) -> tuple[str, ...]:
    """``bank_id,v`` (as hypertable_compression_settings prints it) → ``("bank_id", "v")``."""
    if not text:
        return ()
    return tuple(part.strip().strip('"') for part in text.split(","))


def normalise_order(entries: tuple[str, ...]) -> tuple[str, ...]:
    """Drop the default `` ASC`` so ``time ASC`` and ``time`` compare equal."""
    return tuple(re.sub(r"\s+ASC$", "", " ".join(entry.replace('"', "").split())) for entry in entries)


def observed_hypertable(row: HypertableRow) -> model.ObservedHypertable:
    """What one row of :data:`OBSERVE_HYPERTABLES` says about a hypertable."""

    def job(job_id: int | None, seconds: float | None) -> model.ObservedJob | None:
        return None if job_id is None else model.ObservedJob(job_id, seconds)

    return model.ObservedHypertable(
        time_column=row.time_column,
        chunk_seconds=row.chunk_seconds,
        compression_enabled=row.compression_enabled,
        segment_by=parse_columns(row.segmentby),
        order_by=parse_columns(row.orderby),
        retention=job(row.retention_job, row.retention_seconds),
        compression=job(row.compression_job, row.compression_seconds),
    )


def observed_table(row: TableRow, hypertable: model.ObservedHypertable | None) -> model.ObservedTable:
    """What one row of :data:`OBSERVE_TABLES` says about a declared table that exists."""
    return model.ObservedTable(
        ref=postgres.model.TableRef(row.schema_name, row.table_name),
        manageable=bool(row.manageable),
        row_security=row.row_security,
        time_type=row.time_type,
        time_present=row.time_present,
        blocking=tuple(row.blocking),
        hypertable=hypertable,
        stored_bytes=row.stored_bytes or 0,
        row_estimate=-1.0 if row.row_estimate is None else row.row_estimate,
    )
