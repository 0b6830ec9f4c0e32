"""What the Postgres provisioner observes and what it may do: the row-level-security model.

Why this module exists: the planner (``plan``), the provisioner (``provisioner``) and the
catalog query's row mapping (``sql``) share these types, and the tests build them by
hand. ``Observed`` is what one read of the catalogs says about the declared tables and
the app role; the actions carry exactly the parameters their DDL needs.

What it must not do: hold logic beyond naming a table, read a server, or import
``plan``, ``provisioner`` or a driver itself (import-linter holds it to that).
"""

from __future__ import annotations

from dataclasses import dataclass

from payscope_operator.api import postgres_spec, spec
from payscope_operator.backends import base, ownership

SYSTEM = "postgres"
UNCOMMENTED = ownership.Mark(legacy=True)
"""A ``payscope_`` policy or index without a comment: an earlier operator version created it."""


@dataclass(frozen=True)
class TableRef:
    """A table by schema and name, both validated SQL identifiers."""

    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Desired:
    """What the spec asks of Postgres row-level security: ``spec.postgres`` and ``spec.tenancy``, for ``owner``."""

    postgres: postgres_spec.Postgres
    tenancy: spec.Tenancy | None
    owner: ownership.Owner
    """The resource recorded (``COMMENT``) on every policy and index it creates."""


@dataclass(frozen=True)
class ObservedPolicy:
    command: str  # pg_policy.polcmd: '*' is ALL
    permissive: bool
    roles: tuple[str, ...]  # sorted role names; 'public' for PUBLIC
    using: str | None  # pg_get_expr text
    with_check: str | None
    mark: ownership.Mark = UNCOMMENTED  # what its COMMENT records


@dataclass(frozen=True)
class ObservedIndex:
    on_table: bool
    valid: bool
    partial: bool
    method: str
    columns: tuple[str, ...]  # key columns; '' for an expression
    mark: ownership.Mark = UNCOMMENTED  # what its COMMENT records


@dataclass(frozen=True)
class ObservedTable:
    ref: TableRef
    owner: str
    rls_enabled: bool
    rls_forced: bool
    manageable: bool  # the operator's role has the owner's privileges
    app_role_owns: bool  # the app role has the owner's privileges (RLS would not bind it)
    tenant_type: str | None  # pg_type.typname of the tenant column (None: missing or not a base type)
    tenant_present: bool
    hypertable: bool
    columnstore: bool  # TimescaleDB compression is on: row security is refused
    policy: ObservedPolicy | None
    index: ObservedIndex | None


@dataclass(frozen=True)
class ObservedRole:
    name: str
    exists: bool
    superuser: bool
    bypassrls: bool


@dataclass(frozen=True)
class Observed:
    """The declared tables that exist, and the app role."""

    tables: tuple[ObservedTable, ...] = ()
    app_role: ObservedRole | None = None
    concurrent_ddl: bool = True  # CREATE/DROP INDEX CONCURRENTLY works (not on PGlite)

    def table(self, ref: TableRef) -> ObservedTable | None:
        return next((table for table in self.tables if table.ref == ref), None)


@dataclass(frozen=True, kw_only=True)
class PolicyAction(base.Action):
    """Create the tenant policy, or drop and re-create it in one transaction (``replace``)."""

    table: TableRef
    column: str
    cast: str | None
    session_variable: str
    role: str | None
    replace: bool
    comment: str  # recorded on the policy in the same transaction (ownership.comment_of)


@dataclass(frozen=True, kw_only=True)
class RowSecurityAction(base.Action):
    """ENABLE row level security and/or set FORCE / NO FORCE, in one transaction."""

    table: TableRef
    enable: bool
    force: bool | None  # None: leave FORCE as it is


@dataclass(frozen=True, kw_only=True)
class IndexAction(base.Action):
    """Build the tenant index; ``drop_first`` replaces an invalid or different ``payscope_`` index."""

    table: TableRef
    index: str
    column: str
    drop_first: bool
    concurrently: bool
    comment: str  # recorded on the index once it is built


@dataclass(frozen=True, kw_only=True)
class MarkAction(base.Action):
    """Record the owning resource on an existing policy or index (``COMMENT ON``): migration or adoption."""

    table: TableRef
    index: str | None  # None: the table's payscope_ policy
    comment: str
