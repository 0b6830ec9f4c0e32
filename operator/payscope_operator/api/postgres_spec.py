"""The ``spec.postgres`` section: Postgres tables, row-level security, TimescaleDB, audit log.

Why this module exists: it is the contract for everything the operator provisions and
audits in PayScope's relational store. Every identifier is a plain lower-case SQL
identifier (``fields.SQL_IDENTIFIER_PATTERN``); a table is addressed by ``schema`` (default
``public``) plus ``name``, never by a dotted string, so that backends can pass each part
to ``psycopg.sql.Identifier`` separately.

What it must not do: open connections, build SQL, or decide what a missing table means;
it only describes what the platform team declared.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from payscope_operator.api import fields


class PostgresConnection(fields.SpecModel):
    """Where to connect: a Secret key holding a libpq connection string or postgresql:// URI."""

    secret_ref: fields.SecretKeyRef = Field(
        description="Secret key whose value is a libpq connection string or postgresql:// URI."
    )


class Migrations(fields.SpecModel):
    """The schema-migration bookkeeping table the audit reads the applied version from."""

    table: fields.SqlIdentifier = Field("alembic_version", description="Table recording the applied migration.")
    schema_name: fields.SqlIdentifier = Field("public", alias="schema", description="Schema of the table.")
    column: fields.SqlIdentifier = Field("version_num", description="Column holding the applied version.")
    expected: fields.Token | None = Field(
        None, description="Version the database must be at; absent: any single applied version passes."
    )


class RowLevelSecurity(fields.SpecModel):
    """Row-level security on a table, isolating tenants by ``spec.tenancy``.

    The operator manages one policy per table, always named ``payscope_tenant_isolation``.
    """

    rules = (
        fields.Rule(
            "!has(self.force) || !self.force || !has(self.enabled) || self.enabled",
            "force requires enabled",
            lambda m: m.enabled or not m.force,
            field_path=".force",
        ),
    )

    enabled: fields.StrictBool = Field(True, description="ROW LEVEL SECURITY is enabled on the table.")
    force: fields.StrictBool = Field(
        True, description="ROW LEVEL SECURITY is FORCEd, so the table owner is subject to it too."
    )


class Compression(fields.SpecModel):
    """TimescaleDB native compression of a hypertable."""

    after: fields.Duration = Field(description="Compress chunks older than this, e.g. 30d.")
    segment_by: Annotated[tuple[fields.SqlIdentifier, ...], fields.ListKeys()] = Field(
        (), max_length=16, description="Columns to segment by (timescaledb.compress_segmentby)."
    )
    order_by: Annotated[tuple[fields.SqlOrderBy, ...], fields.ListKeys()] = Field(
        (), max_length=16, description="Columns to order by, each optionally ' ASC' or ' DESC' (compress_orderby)."
    )


_AFTER = fields.cel_duration_seconds("self.compression.after")
_RETENTION = fields.cel_duration_seconds("self.retention")


class Hypertable(fields.SpecModel):
    """The table is a TimescaleDB hypertable, with optional retention and compression policies."""

    rules = (
        fields.Rule(
            f"!has(self.retention) || !has(self.compression) || {_AFTER} < {_RETENTION}",
            "compression.after must be shorter than retention",
            lambda m: (
                m.retention is None
                or m.compression is None
                or fields.parse_duration(m.compression.after) < fields.parse_duration(m.retention)
            ),
            field_path=".compression.after",
        ),
    )

    time_column: fields.SqlIdentifier = Field(description="The time column partitioning the hypertable.")
    chunk_interval: fields.Duration | None = Field(
        None, description="chunk_time_interval, e.g. 7d; absent: not provisioned nor audited."
    )
    retention: fields.Duration | None = Field(
        None, description="Drop chunks older than this (retention policy), e.g. 400d; absent: no policy expected."
    )
    compression: Compression | None = Field(None, description="Compression settings and policy; absent: none expected.")


class PostgresTable(fields.SpecModel):
    """A table PayScope owns; the operator provisions and audits what is declared on it."""

    name: fields.SqlIdentifier = Field(description="Table name (lower-case SQL identifier, unquoted).")
    schema_name: fields.SqlIdentifier = Field("public", alias="schema", description="Schema of the table.")
    row_level_security: RowLevelSecurity | None = Field(
        None, description="Row-level security for tenant isolation; requires spec.tenancy. Absent: not managed."
    )
    tenant_index: fields.StrictBool = Field(
        False, description="An index leading with tenancy.tenantKey exists; requires spec.tenancy."
    )
    hypertable: Hypertable | None = Field(None, description="TimescaleDB hypertable settings; absent: a plain table.")
    idempotency_key: Annotated[tuple[fields.SqlIdentifier, ...], fields.ListKeys()] = Field(
        (),
        max_length=8,
        description="Columns of the ingestion idempotency key: a UNIQUE constraint or index over exactly them"
        " must exist (audited, never provisioned). Empty: not audited.",
    )
    expect_foreign_keys: fields.StrictBool = Field(
        False, description="The audit fails when the table has no FOREIGN KEY constraint."
    )
    adopt: fields.StrictBool = Field(
        False,
        description="The table's payscope_ policy and tenant index, when they exist but were not created by this"
        " resource, are taken over (this resource recorded on them as owner) instead of being left as found"
        " (Foreign). Never ones another live PayScopeDeployment owns.",
    )


class AuditLog(fields.SpecModel):
    """PayScope's hash-chained audit log table (rows carry prev_hash and hash)."""

    table: fields.SqlIdentifier = Field("audit_log", description="Name of the audit log table.")
    schema_name: fields.SqlIdentifier = Field("public", alias="schema", description="Schema of the table.")
    order_column: fields.SqlIdentifier = Field(
        "id", description="Column ordering the chain: each row's prev_hash is the previous row's hash."
    )


class Postgres(fields.SpecModel):
    """PayScope's Postgres (optionally TimescaleDB) database."""

    connection: PostgresConnection = Field(
        description="Connection of a role owning the declared tables; used to provision and audit."
    )
    app_connection: PostgresConnection | None = Field(
        None,
        description="Connection as the application role for the cross-tenant probe; absent: the probe uses"
        " SET ROLE appRole inside a transaction it rolls back.",
    )
    app_role: fields.SqlIdentifier | None = Field(
        None, description="Role PayScope connects as; must be neither superuser nor BYPASSRLS."
    )
    migrations: Migrations | None = Field(None, description="Migration bookkeeping; absent: not audited.")
    audit_log: AuditLog = Field(AuditLog(), description="The hash-chained audit log table.")
    tables: Annotated[tuple[PostgresTable, ...], fields.ListKeys(("schema", "name"))] = Field(
        (), max_length=200, description="Tables to provision and audit, unique by schema and name."
    )
