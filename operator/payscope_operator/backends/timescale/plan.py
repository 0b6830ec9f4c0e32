"""TimescaleDB: the extension, hypertables, chunk intervals, compression, retention and compression policies.

Why this module exists: PayScope's time-series tables (transactions, events) must be
hypertables with the declared chunk interval, compression settings and policies, and
retention policy. This provisioner detects the extension (and creates it when it is
available but not installed: that is an action, so ObserveOnly only lists it), turns
declared tables into hypertables (migrating existing rows), and keeps intervals,
compression settings and policies as declared: a changed interval is drift, replaced
by ``remove_*_policy(if_exists => true)`` then ``add_*_policy`` in one transaction.
It reads state with two queries whatever the number of tables, on a caller-owned
autocommit connection (the TimescaleDB test server serves one connection at a time).

What it must not do: create or alter tables or columns, add or drop constraints, turn
a hypertable back into a table, decompress chunks, drop chunks by hand, or remove a
policy whose table left the spec. Teardown removes nothing (see :meth:`teardown`).
Where TimescaleDB is not available every hypertable object is Failed with
TimescaleUnavailable; the row-level-security provisioner (``relational``) proceeds.
TimescaleDB 2.23 refuses compression on a table with row-level security (and RLS on
a compressed table): such a table gets Failed/RowSecurityConflictsWithCompression
for its compression objects, and its RLS stays.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import psycopg
from psycopg.rows import TupleRow

from payscope_operator.api import conditions, fields, postgres_spec, status
from payscope_operator.backends import base, postgres
from payscope_operator.backends.timescale import sql

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
    ref: postgres.client.TableRef
    manageable: bool
    row_security: bool  # RLS enabled or forced
    time_type: str | None
    time_present: bool
    blocking: tuple[str, ...]  # unique constraints/indexes without the time column
    hypertable: ObservedHypertable | None


@dataclass(frozen=True)
class Observed:
    extension: ExtensionState = ExtensionState(available=False, installed=None)
    tables: tuple[ObservedTable, ...] = ()

    def table(self, ref: postgres.client.TableRef) -> ObservedTable | None:
        return next((table for table in self.tables if table.ref == ref), None)


@dataclass(frozen=True, kw_only=True)
class ExtensionAction(base.Action):
    """CREATE EXTENSION IF NOT EXISTS timescaledb."""


@dataclass(frozen=True, kw_only=True)
class HypertableAction(base.Action):
    """create_hypertable (``create``) or set_chunk_time_interval."""

    table: postgres.client.TableRef
    time_column: str
    chunk_interval: str | None
    create: bool


@dataclass(frozen=True, kw_only=True)
class CompressionAction(base.Action):
    """ALTER TABLE ... SET (timescaledb.compress...); ``None`` options are left as they are."""

    table: postgres.client.TableRef
    enable: bool
    segment_by: tuple[str, ...] | None
    order_by: tuple[str, ...] | None


@dataclass(frozen=True, kw_only=True)
class PolicyAction(base.Action):
    """add_<policy>_policy, after remove_<policy>_policy when ``replace`` (one transaction)."""

    table: postgres.client.TableRef
    policy: PolicyKind
    after: str
    replace: bool


def table_ref(table: postgres_spec.PostgresTable) -> postgres.client.TableRef:
    """The reference under which ``Observed.table`` finds a declared table."""
    return postgres.client.TableRef(table.schema_name, table.name)


def _declared(postgres: postgres_spec.Postgres) -> list[postgres_spec.PostgresTable]:
    return [table for table in postgres.tables if table.hypertable is not None]


def _rls_declared(table: postgres_spec.PostgresTable) -> bool:
    return table.row_level_security is not None and table.row_level_security.enabled


class _TablePlan:
    """Actions, object states and blockers of one declared hypertable."""

    def __init__(self, table: postgres_spec.PostgresTable, seen: ObservedTable | None) -> None:
        assert table.hypertable is not None
        self.table = table
        self.spec = table.hypertable
        self.seen = seen
        self.ref = postgres.client.TableRef(table.schema_name, table.name)
        self.actions: list[base.Action] = []
        self.objects: list[base.ObjectState] = []
        self.blockers: list[base.Blocker] = []

    def kinds(self) -> list[str]:
        kinds = ["Hypertable"]
        if self.spec.compression is not None:
            kinds += ["Compression", "CompressionPolicy"]
        if self.spec.retention is not None:
            kinds.append("RetentionPolicy")
        return kinds

    def fail(self, kinds: list[str], reason: str, message: str, *, permanent: bool) -> None:
        for kind in kinds:
            self.objects.append(base.ObjectState(kind, str(self.ref), status.ProvisionState.FAILED, reason, message))
        self.blockers.append(base.Blocker(reason, message, permanent))

    def state(self, kind: str, state: status.ProvisionState, message: str = "") -> None:
        self.objects.append(base.ObjectState(kind, str(self.ref), state, message=message))

    def build(self) -> None:
        seen, kinds, column = self.seen, self.kinds(), self.spec.time_column
        if seen is None:
            message = f"table {self.ref} does not exist (PayScope's migrations create it; the operator never does)"
            self.fail(kinds, conditions.Reason.TABLE_NOT_FOUND, message, permanent=False)
        elif not seen.manageable:
            message = f"the operator's role does not own {self.ref} and cannot change it"
            self.fail(kinds, conditions.Reason.PERMISSION_DENIED, message, permanent=True)
        elif not seen.time_present:
            message = f"table {self.ref} has no time column {column}"
            self.fail(kinds, postgres.client.SqlReason.TIME_COLUMN_NOT_FOUND, message, permanent=False)
        elif seen.time_type not in sql.TIME_TYPES:
            message = f"time column {self.ref}.{column} is {seen.time_type}; a duration interval needs a time or date"
            self.fail(kinds, postgres.client.SqlReason.TIME_COLUMN_TYPE_UNSUPPORTED, message, permanent=True)
        elif seen.hypertable is None and seen.blocking:
            message = (
                f"table {self.ref} cannot become a hypertable: unique constraint or index"
                f" {', '.join(seen.blocking)} does not include the time column {column}"
            )
            self.fail(kinds, postgres.client.SqlReason.HYPERTABLE_CONSTRAINT_INCOMPATIBLE, message, permanent=True)
        elif seen.hypertable is not None and seen.hypertable.time_column != column:
            message = (
                f"{self.ref} is a hypertable partitioned by {seen.hypertable.time_column}, not {column};"
                " the partitioning column cannot change"
            )
            self.fail(kinds, postgres.client.SqlReason.TIME_COLUMN_IMMUTABLE, message, permanent=True)
        else:
            self.plan_hypertable(seen, seen.hypertable)
            self.plan_compression(seen, seen.hypertable)
            if self.spec.retention is not None:
                self.plan_policy("retention", "RetentionPolicy", self.spec.retention, seen.hypertable)

    def plan_hypertable(self, seen: ObservedTable, found: ObservedHypertable | None) -> None:
        interval = self.spec.chunk_interval
        action = HypertableAction(
            system=SYSTEM,
            verb=base.Verb.CREATE,
            kind="Hypertable",
            target=str(self.ref),
            table=self.ref,
            time_column=self.spec.time_column,
            chunk_interval=interval,
            create=True,
            detail=f"by_range({self.spec.time_column}, {interval or 'default interval'}), migrating existing rows",
        )
        if found is None:
            self.actions.append(action)
            self.state("Hypertable", status.ProvisionState.MISSING)
        elif interval is not None and not _same_seconds(found.chunk_seconds, interval):
            detail = f"chunk interval was {_seconds_text(found.chunk_seconds)}, not {interval}"
            self.actions.append(
                dataclasses.replace(action, verb=base.Verb.UPDATE, create=False, drift=True, detail=detail)
            )
            self.state("Hypertable", status.ProvisionState.DRIFTED, detail)
        else:
            self.state("Hypertable", status.ProvisionState.READY)

    def plan_compression(self, seen: ObservedTable, found: ObservedHypertable | None) -> None:
        wanted = self.spec.compression
        if wanted is None:
            return
        kinds = ["Compression", "CompressionPolicy"]
        ordered = {entry.partition(" ")[0] for entry in wanted.order_by}
        enabled = found is not None and found.compression_enabled
        if ordered & set(wanted.segment_by):
            message = f"{self.ref}: columns {', '.join(sorted(ordered & set(wanted.segment_by)))} are in both"
            self.fail(
                kinds,
                postgres.client.SqlReason.COMPRESSION_SPEC_CONFLICT,
                f"{message} segmentBy and orderBy",
                permanent=True,
            )
            return
        if not enabled and (seen.row_security or _rls_declared(self.table)):
            message = (
                f"{self.ref} has (or declares) row-level security, and TimescaleDB refuses compression on such"
                " tables; RLS is kept, compression is not provisioned"
            )
            self.fail(kinds, postgres.client.SqlReason.ROW_SECURITY_CONFLICTS_WITH_COMPRESSION, message, permanent=True)
            return
        segment_by, order_by = tuple(wanted.segment_by), sql.normalise_order(tuple(wanted.order_by))
        if found is None or not found.compression_enabled:
            self.actions.append(self._compression(True, segment_by or None, order_by or None, "enable", drift=False))
            self.state("Compression", status.ProvisionState.MISSING)
        else:
            segment_change = segment_by if segment_by and segment_by != found.segment_by else None
            order_change = order_by if order_by and order_by != sql.normalise_order(found.order_by) else None
            if segment_change is None and order_change is None:
                self.state("Compression", status.ProvisionState.READY)
            else:
                detail = "; ".join(
                    [f"segmentby was {','.join(found.segment_by) or 'none'}"] * (segment_change is not None)
                    + [f"orderby was {','.join(found.order_by) or 'none'}"] * (order_change is not None)
                )
                self.actions.append(self._compression(False, segment_change, order_change, detail, drift=True))
                self.state("Compression", status.ProvisionState.DRIFTED, detail)
        self.plan_policy("compression", "CompressionPolicy", wanted.after, found)

    def _compression(
        self,
        enable: bool,
        segment_by: tuple[str, ...] | None,
        order_by: tuple[str, ...] | None,
        detail: str,
        *,
        drift: bool,
    ) -> CompressionAction:
        verb = base.Verb.CREATE if enable else base.Verb.UPDATE
        return CompressionAction(
            system=SYSTEM,
            verb=verb,
            kind="Compression",
            target=str(self.ref),
            detail=detail,
            drift=drift,
            table=self.ref,
            enable=enable,
            segment_by=segment_by,
            order_by=order_by,
        )

    def plan_policy(self, policy: PolicyKind, kind: str, after: str, found: ObservedHypertable | None) -> None:
        job = None if found is None else (found.retention if policy == "retention" else found.compression)
        action = PolicyAction(
            system=SYSTEM,
            verb=base.Verb.CREATE,
            kind=kind,
            target=str(self.ref),
            detail=f"after {after}",
            table=self.ref,
            policy=policy,
            after=after,
            replace=False,
        )
        if job is None:
            self.actions.append(action)
            self.state(kind, status.ProvisionState.MISSING)
        elif not _same_seconds(job.seconds, after):
            detail = f"was {_seconds_text(job.seconds)}, not {after}"
            self.actions.append(
                dataclasses.replace(action, verb=base.Verb.REPLACE, replace=True, drift=True, detail=detail)
            )
            self.state(kind, status.ProvisionState.DRIFTED, detail)
        else:
            self.state(kind, status.ProvisionState.READY)


def _same_seconds(seconds: float | None, duration: str) -> bool:
    return seconds is not None and abs(seconds - fields.parse_duration(duration).total_seconds()) < 0.5


def _seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "not an interval"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def plan_timeseries(desired: postgres_spec.Postgres, observed: Observed) -> base.Plan:
    """The ordered actions that make the declared hypertables match the spec. Pure.

    Order: the extension, then per table its hypertable, compression settings,
    compression policy and retention policy (each needs the one before).
    """
    tables = _declared(desired)
    if not tables:
        return base.Plan(SYSTEM)
    extension = observed.extension
    if extension.installed is None and not extension.available:
        message = "the timescaledb extension is not available on this Postgres server; hypertables are not provisioned"
        objects = [
            base.ObjectState(
                "Extension",
                sql.EXTENSION,
                status.ProvisionState.FAILED,
                conditions.Reason.TIMESCALE_UNAVAILABLE,
                message,
            )
        ]
        for table in tables:
            planned = _TablePlan(table, None)
            objects += [
                base.ObjectState(
                    kind,
                    str(planned.ref),
                    status.ProvisionState.FAILED,
                    conditions.Reason.TIMESCALE_UNAVAILABLE,
                    message,
                )
                for kind in planned.kinds()
            ]
        blocker = base.Blocker(conditions.Reason.TIMESCALE_UNAVAILABLE, message, permanent=False)
        return base.Plan(SYSTEM, (), tuple(objects), (blocker,))
    actions: list[base.Action] = []
    objects = []
    blockers: list[base.Blocker] = []
    if extension.installed is None:
        actions.append(ExtensionAction(system=SYSTEM, verb=base.Verb.CREATE, kind="Extension", target=sql.EXTENSION))
        objects.append(base.ObjectState("Extension", sql.EXTENSION, status.ProvisionState.MISSING))
    else:
        objects.append(
            base.ObjectState(
                "Extension",
                sql.EXTENSION,
                status.ProvisionState.READY,
                message=f"version {extension.installed}",
            )
        )
    for table in tables:
        planned = _TablePlan(table, observed.table(postgres.client.TableRef(table.schema_name, table.name)))
        planned.build()
        actions += planned.actions
        objects += planned.objects
        blockers += planned.blockers
    return base.Plan(SYSTEM, tuple(actions), tuple(objects), tuple(blockers))


class TimeseriesProvisioner:
    """Hypertables of ``spec.postgres.tables`` over one caller-owned autocommit connection.

    ``log.change_count`` counts the changes a pass sent (zero for an unchanged system).
    """

    system = SYSTEM

    def __init__(
        self,
        conn: psycopg.AsyncConnection[TupleRow],
        desired: postgres_spec.Postgres,
        *,
        timeouts: postgres.client.Timeouts | None = None,
        log: postgres.client.StatementLog | None = None,
    ) -> None:
        self.desired = desired
        self.session = postgres.client.Session(conn, timeouts or postgres.client.Timeouts(), log)
        self.log = self.session.log

    async def observe(self) -> Observed:
        tables = _declared(self.desired)
        if not tables:
            return Observed()
        params = {
            "schemas": [table.schema_name for table in tables],
            "tables": [table.name for table in tables],
            "time_columns": [table.hypertable.time_column if table.hypertable else "" for table in tables],
        }
        rows = await self.session.read(sql.OBSERVE_TABLES, params, sql.TableRow, doing="reading table catalogs")
        extension = ExtensionState(available=rows[0].available, installed=rows[0].installed)
        hypertables: dict[tuple[str, str], ObservedHypertable] = {}
        candidates = [row for row in rows if row.present and row.hypertable]
        if extension.installed is not None and candidates:
            found = await self.session.read(
                sql.OBSERVE_HYPERTABLES,
                {"schemas": [row.schema_name for row in candidates], "tables": [row.table_name for row in candidates]},
                sql.HypertableRow,
                doing="reading timescaledb_information",
            )
            hypertables = {(row.schema_name, row.table_name): _observed_hypertable(row) for row in found}
        tables_seen = tuple(
            ObservedTable(
                ref=postgres.client.TableRef(row.schema_name, row.table_name),
                manageable=bool(row.manageable),
                row_security=row.row_security,
                time_type=row.time_type,
                time_present=row.time_present,
                blocking=tuple(row.blocking),
                hypertable=hypertables.get((row.schema_name, row.table_name)),
            )
            for row in rows
            if row.present
        )
        return Observed(extension, tables_seen)

    def plan(self, observed: Observed) -> base.Plan:
        return plan_timeseries(self.desired, observed)

    async def apply(self, action: base.Action) -> None:
        doing = action.describe()
        if isinstance(action, ExtensionAction):
            await self.session.change([sql.create_extension()], doing=doing)
        elif isinstance(action, HypertableAction):
            ref = action.table
            if action.create:
                statement = sql.create_hypertable(ref.schema, ref.name, action.time_column, action.chunk_interval)
                await self.session.change([statement], doing=doing, long=True)
            elif action.chunk_interval is not None:
                statement = sql.set_chunk_interval(ref.schema, ref.name, action.chunk_interval)
                await self.session.change([statement], doing=doing)
        elif isinstance(action, CompressionAction):
            statement = sql.set_compression(
                action.table.schema,
                action.table.name,
                enable=action.enable,
                segment_by=action.segment_by,
                order_by=action.order_by,
            )
            await self.session.change([statement], doing=doing)
        elif isinstance(action, PolicyAction):
            ref = action.table
            add = sql.add_policy(ref.schema, ref.name, action.policy, action.after)
            remove = [sql.remove_policy(ref.schema, ref.name, action.policy)] if action.replace else []
            await self.session.change([*remove, add], doing=doing)
        else:
            raise TypeError(f"{type(action).__name__} is not a {SYSTEM} action")

    async def teardown(self) -> base.TeardownResult:
        """Remove nothing; report every declared hypertable as kept, with why.

        Turning a hypertable back into a plain table rewrites its data; retention and
        compression policies are data-lifecycle obligations (removing retention keeps
        data past its declared life), and TimescaleDB jobs carry no name or tag by
        which the operator could prove they are its own. No server call is made.
        """
        kept = tuple(
            f"hypertable {table.schema_name}.{table.name} with its compression and policies: left in place"
            " (removing them would rewrite or keep data; jobs carry no payscope_ mark)"
            for table in _declared(self.desired)
        )
        return base.TeardownResult(SYSTEM, (), kept)


def _observed_hypertable(row: sql.HypertableRow) -> ObservedHypertable:
    def job(job_id: int | None, seconds: float | None) -> ObservedJob | None:
        return None if job_id is None else ObservedJob(job_id, seconds)

    return ObservedHypertable(
        time_column=row.time_column,
        chunk_seconds=row.chunk_seconds,
        compression_enabled=row.compression_enabled,
        segment_by=sql.parse_columns(row.segmentby),
        order_by=sql.parse_columns(row.orderby),
        retention=job(row.retention_job, row.retention_seconds),
        compression=job(row.compression_job, row.compression_seconds),
    )
