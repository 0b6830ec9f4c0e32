"""The pure planner of TimescaleDB: the extension, hypertables, compression and policies.

Why this module exists: PayScope's time-series tables (transactions, events) must be
hypertables with the declared chunk interval, compression settings and policies, and
retention policy. The plan creates the extension when it is available but not
installed (an action, so ObserveOnly only lists it), turns declared tables into
hypertables, and keeps intervals, compression settings and
policies as declared: a changed interval is drift, replaced by
``remove_*_policy(if_exists => true)`` then ``add_*_policy`` in one transaction. It is a
pure function of the spec and of what ``provisioner`` observed.

A table that already holds rows (``pg_relation_size`` above zero: no row is counted) is
converted only when its entry says ``hypertable.migrateData: true``, since
``create_hypertable`` then moves every row under an exclusive lock; otherwise its
objects are Failed/HypertableNeedsDataMigration with the ``pg_class.reltuples`` estimate.

Where TimescaleDB is not available every hypertable object is Failed with
TimescaleUnavailable; the row-level-security provisioner (``postgres``) proceeds.
TimescaleDB 2.23 refuses compression on a table with row-level security (and RLS on
a compressed table): such a table gets Failed/RowSecurityConflictsWithCompression
for its compression objects, and its RLS stays.

What it must not do: talk to a server; plan to create or alter tables or columns, add
or drop constraints, turn a hypertable back into a table, decompress or drop chunks,
or remove a policy whose table left the spec.
"""

from __future__ import annotations

import dataclasses

from payscope_operator.api import conditions, fields, postgres_spec, status
from payscope_operator.backends import base, planning
from payscope_operator.backends.timescale import model, sql


def declared(section: postgres_spec.Postgres) -> list[postgres_spec.PostgresTable]:
    """The declared tables that are to be hypertables."""
    return [table for table in section.tables if table.hypertable is not None]


def _rls_declared(table: postgres_spec.PostgresTable) -> bool:
    return table.row_level_security is not None and table.row_level_security.enabled


class _TablePlan:
    """Actions, object states and blockers of one declared hypertable."""

    def __init__(
        self, out: planning.PlanBuilder, table: postgres_spec.PostgresTable, seen: model.ObservedTable | None
    ) -> None:
        assert table.hypertable is not None
        self.out = out
        self.table = table
        self.spec = table.hypertable
        self.seen = seen
        self.ref = model.table_ref(table)

    def kinds(self) -> list[str]:
        kinds = ["Hypertable"]
        if self.spec.compression is not None:
            kinds += ["Compression", "CompressionPolicy"]
        if self.spec.retention is not None:
            kinds.append("RetentionPolicy")
        return kinds

    def targets(self, kinds: list[str]) -> list[planning.Target]:
        return [(kind, str(self.ref)) for kind in kinds]

    def fail(self, kinds: list[str], reason: str, message: str, *, permanent: bool) -> None:
        self.out.fail(self.targets(kinds), reason, message, permanent=permanent)

    def state(self, kind: str, state: status.ProvisionState, message: str = "") -> None:
        self.out.state(kind, str(self.ref), state, message)

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
            self.fail(kinds, conditions.Reason.TIME_COLUMN_NOT_FOUND, message, permanent=False)
        elif seen.time_type not in sql.TIME_TYPES:
            message = f"time column {self.ref}.{column} is {seen.time_type}; a duration interval needs a time or date"
            self.fail(kinds, conditions.Reason.TIME_COLUMN_TYPE_UNSUPPORTED, message, permanent=True)
        elif seen.hypertable is None and seen.blocking:
            message = (
                f"table {self.ref} cannot become a hypertable: unique constraint or index"
                f" {', '.join(seen.blocking)} does not include the time column {column}"
            )
            self.fail(kinds, conditions.Reason.HYPERTABLE_CONSTRAINT_INCOMPATIBLE, message, permanent=True)
        elif seen.hypertable is not None and seen.hypertable.time_column != column:
            message = (
                f"{self.ref} is a hypertable partitioned by {seen.hypertable.time_column}, not {column};"
                " the partitioning column cannot change"
            )
            self.fail(kinds, conditions.Reason.TIME_COLUMN_IMMUTABLE, message, permanent=True)
        elif seen.hypertable is None and seen.stored_bytes > 0 and not self.spec.migrate_data:
            self.fail(kinds, conditions.Reason.HYPERTABLE_NEEDS_DATA_MIGRATION, _needs_migration(seen), permanent=True)
        else:
            self.plan_hypertable(seen, seen.hypertable)
            self.plan_compression(seen, seen.hypertable)
            if self.spec.retention is not None:
                self.plan_policy("retention", "RetentionPolicy", self.spec.retention, seen.hypertable)

    def plan_hypertable(self, seen: model.ObservedTable, found: model.ObservedHypertable | None) -> None:
        interval = self.spec.chunk_interval
        migrate = self.spec.migrate_data and seen.stored_bytes > 0
        action = model.HypertableAction(
            system=model.SYSTEM,
            verb=base.Verb.CREATE,
            kind="Hypertable",
            target=str(self.ref),
            table=self.ref,
            time_column=self.spec.time_column,
            chunk_interval=interval,
            create=True,
            migrate_data=migrate,
            detail=f"by_range({self.spec.time_column}, {interval or 'default interval'})"
            + (", moving its rows into chunks (migrateData)" if migrate else ""),
        )
        if found is None:
            self.out.act(action)
            self.state("Hypertable", status.ProvisionState.MISSING)
        elif interval is not None and not _same_seconds(found.chunk_seconds, interval):
            detail = f"chunk interval was {_seconds_text(found.chunk_seconds)}, not {interval}"
            self.out.act(dataclasses.replace(action, verb=base.Verb.UPDATE, create=False, drift=True, detail=detail))
            self.state("Hypertable", status.ProvisionState.DRIFTED, detail)
        else:
            self.state("Hypertable", status.ProvisionState.READY)

    def plan_compression(self, seen: model.ObservedTable, found: model.ObservedHypertable | None) -> None:
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
                conditions.Reason.COMPRESSION_SPEC_CONFLICT,
                f"{message} segmentBy and orderBy",
                permanent=True,
            )
            return
        if not enabled and (seen.row_security or _rls_declared(self.table)):
            message = (
                f"{self.ref} has (or declares) row-level security, and TimescaleDB refuses compression on such"
                " tables; RLS is kept, compression is not provisioned"
            )
            self.fail(kinds, conditions.Reason.ROW_SECURITY_CONFLICTS_WITH_COMPRESSION, message, permanent=True)
            return
        segment_by, order_by = tuple(wanted.segment_by), sql.normalise_order(tuple(wanted.order_by))
        if found is None or not found.compression_enabled:
            self.out.act(self._compression(True, segment_by or None, order_by or None, "enable", drift=False))
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
                self.out.act(self._compression(False, segment_change, order_change, detail, drift=True))
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
    ) -> model.CompressionAction:
        verb = base.Verb.CREATE if enable else base.Verb.UPDATE
        return model.CompressionAction(
            system=model.SYSTEM,
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

    def plan_policy(
        self, policy: model.PolicyKind, kind: str, after: str, found: model.ObservedHypertable | None
    ) -> None:
        job = None if found is None else (found.retention if policy == "retention" else found.compression)
        action = model.PolicyAction(
            system=model.SYSTEM,
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
            self.out.act(action)
            self.state(kind, status.ProvisionState.MISSING)
        elif not _same_seconds(job.seconds, after):
            detail = f"was {_seconds_text(job.seconds)}, not {after}"
            self.out.act(dataclasses.replace(action, verb=base.Verb.REPLACE, replace=True, drift=True, detail=detail))
            self.state(kind, status.ProvisionState.DRIFTED, detail)
        else:
            self.state(kind, status.ProvisionState.READY)


def _rows(seen: model.ObservedTable) -> str:
    """The row estimate of a table, never counted: pg_class.reltuples (or its size, before ANALYZE)."""
    if seen.row_estimate >= 0:
        return f"about {seen.row_estimate:.0f} rows (pg_class.reltuples)"
    return f"{seen.stored_bytes // 1024} KiB of rows not yet counted by ANALYZE (pg_class.reltuples = -1)"


def _needs_migration(seen: model.ObservedTable) -> str:
    return (
        f"{seen.ref} holds {_rows(seen)} and is not a hypertable: converting it moves every row into chunks"
        " under an exclusive lock for the whole move, so it is done only with hypertable.migrateData: true"
        " (in a maintenance window); its compression and policies wait for the hypertable"
    )


def _same_seconds(seconds: float | None, duration: str) -> bool:
    return seconds is not None and abs(seconds - fields.parse_duration(duration).total_seconds()) < 0.5


def _seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "not an interval"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def plan_timescale(desired: postgres_spec.Postgres, observed: model.Observed) -> base.Plan:
    """The ordered actions that make the declared hypertables match the spec. Pure.

    Order: the extension, then per table its hypertable, compression settings,
    compression policy and retention policy (each needs the one before).
    """
    out = planning.PlanBuilder(model.SYSTEM)
    tables = declared(desired)
    if not tables:
        return out.build()
    extension = observed.extension
    if extension.installed is None and not extension.available:
        message = "the timescaledb extension is not available on this Postgres server; hypertables are not provisioned"
        targets = [("Extension", sql.EXTENSION)]
        for table in tables:
            planned = _TablePlan(out, table, None)
            targets += planned.targets(planned.kinds())
        out.fail(targets, conditions.Reason.TIMESCALE_UNAVAILABLE, message, permanent=False)
        return out.build()
    if extension.installed is None:
        out.act(
            model.ExtensionAction(system=model.SYSTEM, verb=base.Verb.CREATE, kind="Extension", target=sql.EXTENSION)
        )
        out.state("Extension", sql.EXTENSION, status.ProvisionState.MISSING)
    else:
        out.state("Extension", sql.EXTENSION, status.ProvisionState.READY, f"version {extension.installed}")
    for table in tables:
        _TablePlan(out, table, observed.table(model.table_ref(table))).build()
    return out.build()
