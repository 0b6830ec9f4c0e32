"""What the TimescaleDB provisioner observes and what it may do: hypertables, compression, policies.

Why this module exists: the planner (``plan``), the provisioner (``provisioner``), the
row mapping (``sql``) and the audit's data-layer checks share these types. ``Observed``
is what two reads of the catalogs say about the extension and the declared tables; the
actions carry exactly the parameters their TimescaleDB API calls need.

What it must not do: hold logic beyond naming a table, read a server, or import
``plan``, ``provisioner`` or a driver itself (import-linter holds it to that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from payscope_operator.api import postgres_spec
from payscope_operator.backends import base, postgres

SYSTEM = "timescaledb"
PolicyKind = Literal["retention", "compression"]


@dataclass(frozen=True)
class ExtensionState:
    available: bool
    installed: str | None  # extversion, None when not installed


@dataclass(frozen=True)
class ObservedJob:
    job_id: int
    seconds: float | None  # the policy's interval; None when it is not an interval


@dataclass(frozen=True)
class ObservedHypertable:
    time_column: str | None
    chunk_seconds: float | None
    compression_enabled: bool
    segment_by: tuple[str, ...]
    order_by: tuple[str, ...]
    retention: ObservedJob | None
    compression: ObservedJob | None


@dataclass(frozen=True)
class ObservedTable:
    ref: postgres.model.TableRef
    manageable: bool
    row_security: bool  # RLS enabled or forced
    time_type: str | None
    time_present: bool
    blocking: tuple[str, ...]  # unique constraints/indexes without the time column
    hypertable: ObservedHypertable | None
    stored_bytes: int = 0  # pg_relation_size of the table itself: 0 means it holds no row
    row_estimate: float = -1.0  # pg_class.reltuples: -1 until VACUUM or ANALYZE counted it


@dataclass(frozen=True)
class Observed:
    extension: ExtensionState = ExtensionState(available=False, installed=None)
    tables: tuple[ObservedTable, ...] = ()

    def table(self, ref: postgres.model.TableRef) -> ObservedTable | None:
        return next((table for table in self.tables if table.ref == ref), None)


@dataclass(frozen=True, kw_only=True)
class ExtensionAction(base.Action):
    """CREATE EXTENSION IF NOT EXISTS timescaledb."""


@dataclass(frozen=True, kw_only=True)
class HypertableAction(base.Action):
    """create_hypertable (``create``) or set_chunk_time_interval."""

    table: postgres.model.TableRef
    time_column: str
    chunk_interval: str | None
    create: bool
    migrate_data: bool = False  # move existing rows into chunks (hypertable.migrateData: true)

    @property
    def scope(self) -> str:
        return table_scope(self.table)


@dataclass(frozen=True, kw_only=True)
class CompressionAction(base.Action):
    """ALTER TABLE ... SET (timescaledb.compress...); ``None`` options are left as they are."""

    table: postgres.model.TableRef
    enable: bool
    segment_by: tuple[str, ...] | None
    order_by: tuple[str, ...] | None

    @property
    def scope(self) -> str:
        return table_scope(self.table)


@dataclass(frozen=True, kw_only=True)
class PolicyAction(base.Action):
    """add_<policy>_policy, after remove_<policy>_policy when ``replace`` (one transaction)."""

    table: postgres.model.TableRef
    policy: PolicyKind
    after: str
    replace: bool

    @property
    def scope(self) -> str:
        return table_scope(self.table)


def table_scope(table: postgres.model.TableRef) -> str:
    """One scope per hypertable (``base.Action.scope``): compression and policies need the hypertable first."""
    return f"hypertable {table}"


def table_ref(table: postgres_spec.PostgresTable) -> postgres.model.TableRef:
    """The reference under which ``Observed.table`` finds a declared table."""
    return postgres.model.TableRef(table.schema_name, table.name)
