"""Postgres row-level security: the ``payscope_`` tenant policy, RLS flags and tenant index per table.

Why this module exists: tenants (banks) share PayScope's tables, and only row-level
security keeps one bank's rows from another's. For every declared table this
provisioner makes sure that RLS is enabled (and FORCEd, or not, as declared), that one
policy ``payscope_tenant_isolation`` binds the app role (or PUBLIC) with USING and
WITH CHECK comparing the tenant column to the session variable cast to the column's
real type, and that a ``payscope_`` tenant index exists when asked. It works on a
caller-owned autocommit connection and reads the catalogs with one query for all
tables (two when TimescaleDB is installed), whatever their number.

What it must not do: create, alter or drop tables or columns (PayScope's migrations
own them: a missing table is ``Failed``/TableNotFound, retried every pass); touch any
policy or index whose name lacks the ``payscope_`` prefix; disable row-level security,
ever (teardown drops the policy and leaves RLS on, so the table fails closed); open
its own connections; paste spec values into SQL. Managed objects carry the
``payscope_`` prefix, so the policy is always ``payscope_tenant_isolation``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import psycopg
from psycopg.rows import TupleRow

from payscope_operator import errors
from payscope_operator.api import conditions, postgres_spec, spec, status
from payscope_operator.backends import base
from payscope_operator.backends.postgres import client, sql

SYSTEM = "postgres"
POLICY_NAME = sql.POLICY_NAME
_COMMANDS = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}


TableRef = client.TableRef


@dataclass(frozen=True)
class Desired:
    """What the spec asks of Postgres row-level security: ``spec.postgres`` and ``spec.tenancy``."""

    postgres: postgres_spec.Postgres
    tenancy: spec.Tenancy | None


@dataclass(frozen=True)
class ObservedPolicy:
    command: str  # pg_policy.polcmd: '*' is ALL
    permissive: bool
    roles: tuple[str, ...]  # sorted role names; 'public' for PUBLIC
    using: str | None  # pg_get_expr text
    with_check: str | None


@dataclass(frozen=True)
class ObservedIndex:
    on_table: bool
    valid: bool
    partial: bool
    method: str
    columns: tuple[str, ...]  # key columns; '' for an expression


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


def _managed(table: postgres_spec.PostgresTable) -> tuple[bool, bool]:
    rls = table.row_level_security
    return (rls is not None and rls.enabled), table.tenant_index


def check_app_role(desired: Desired, observed: Observed) -> None:
    """Raise SpecUnsatisfiable(AppRoleInvalid) when RLS would not bind the app role."""
    name = desired.postgres.app_role
    if name is None or not any(_managed(table)[0] for table in desired.postgres.tables):
        return
    role = observed.app_role
    problem = ""
    if role is None or not role.exists:
        problem = "does not exist"
    elif role.superuser:
        problem = "is a superuser, and row-level security never applies to superusers"
    elif role.bypassrls:
        problem = "has BYPASSRLS, so row-level security never applies to it"
    else:
        owned = [str(table.ref) for table in observed.tables if table.app_role_owns]
        if owned:
            problem = f"owns (or inherits the owner of) {', '.join(owned)}; owners bypass or can disable RLS"
    if problem:
        raise errors.SpecUnsatisfiable(f"postgres.appRole {name} {problem}", reason=conditions.Reason.APP_ROLE_INVALID)


class _TablePlan:
    """Actions, object states and blockers of one table, collected by :func:`plan_relational`."""

    def __init__(
        self, desired: Desired, table: postgres_spec.PostgresTable, seen: ObservedTable | None, concurrent_ddl: bool
    ) -> None:
        self.desired = desired
        self.concurrent_ddl = concurrent_ddl
        self.table = table
        self.seen = seen
        self.ref = TableRef(table.schema_name, table.name)
        self.security: list[base.Action] = []
        self.indexes: list[base.Action] = []
        self.objects: list[base.ObjectState] = []
        self.blockers: list[base.Blocker] = []

    def names(self) -> list[tuple[str, str]]:
        rls, tenant_index = _managed(self.table)
        kinds = [("RowLevelSecurity", str(self.ref)), ("Policy", f"{self.ref}.{POLICY_NAME}")] if rls else []
        if tenant_index:
            key = self.desired.tenancy.tenant_key if self.desired.tenancy else "tenant"
            kinds.append(("Index", f"{self.ref.schema}.{sql.index_name(self.ref.name, key)}"))
        return kinds

    def fail(self, kinds: list[tuple[str, str]], reason: str, message: str, *, permanent: bool) -> None:
        for kind, name in kinds:
            self.objects.append(base.ObjectState(kind, name, status.ProvisionState.FAILED, reason, message))
        if kinds:
            self.blockers.append(base.Blocker(reason, message, permanent))

    def state(self, kind: str, name: str, state: status.ProvisionState, message: str = "") -> None:
        self.objects.append(base.ObjectState(kind, name, state, message=message))

    def build(self) -> None:
        kinds = self.names()
        seen, tenancy = self.seen, self.desired.tenancy
        if seen is None:
            message = f"table {self.ref} does not exist (PayScope's migrations create it; the operator never does)"
            self.fail(kinds, conditions.Reason.TABLE_NOT_FOUND, message, permanent=False)
            return
        if not seen.manageable:
            message = f"the operator's role does not own {self.ref} and cannot alter it (owner: {seen.owner})"
            self.fail(kinds, conditions.Reason.PERMISSION_DENIED, message, permanent=True)
            return
        if tenancy is None:
            self.fail(
                kinds,
                conditions.Reason.SPEC_INVALID,
                "rowLevelSecurity and tenantIndex need spec.tenancy",
                permanent=True,
            )
            return
        if not seen.tenant_present:
            message = f"table {self.ref} has no tenant column {tenancy.tenant_key} (spec.tenancy.tenantKey)"
            self.fail(kinds, client.SqlReason.TENANT_COLUMN_NOT_FOUND, message, permanent=False)
            return
        if seen.tenant_type not in sql.TENANT_CASTS:
            message = (
                f"tenant column {self.ref}.{tenancy.tenant_key} has type {seen.tenant_type or 'a domain or array'};"
                f" supported: text, varchar, uuid, smallint, integer, bigint"
            )
            self.fail(kinds, client.SqlReason.TENANT_COLUMN_TYPE_UNSUPPORTED, message, permanent=True)
            return
        rls_kinds = [kind for kind in kinds if kind[0] != "Index"]
        if rls_kinds and seen.columnstore:
            message = (
                f"{self.ref} is a hypertable with TimescaleDB compression on, which refuses row-level security;"
                " decompress and disable compression by hand, or drop compression from the spec"
            )
            self.fail(rls_kinds, client.SqlReason.ROW_SECURITY_CONFLICTS_WITH_COMPRESSION, message, permanent=True)
        elif rls_kinds:
            self.plan_policy(seen, tenancy, rls_kinds[1][1])
            self.plan_row_security(seen, rls_kinds[0][1])
        if self.table.tenant_index:
            self.plan_index(seen, tenancy, kinds[-1][1])

    def plan_policy(self, seen: ObservedTable, tenancy: spec.Tenancy, name: str) -> None:
        role = self.desired.postgres.app_role
        typname = seen.tenant_type or "text"
        action = PolicyAction(
            system=SYSTEM,
            verb=base.Verb.CREATE,
            kind="Policy",
            target=name,
            table=self.ref,
            column=tenancy.tenant_key,
            cast=sql.TENANT_CASTS[typname],
            session_variable=tenancy.session_variable,
            role=role,
            replace=False,
            detail=_policy_summary(role, tenancy, sql.TENANT_CASTS[typname]),
            drift=seen.rls_enabled,  # RLS on but our policy gone: dropped out of band
        )
        if seen.policy is None:
            self.security.append(action)
            self.state("Policy", name, status.ProvisionState.MISSING)
            return
        expected = sql.canonical(sql.deparsed_expression(tenancy.tenant_key, typname, tenancy.session_variable))
        differences = _policy_differences(seen.policy, (role or "public",), expected)
        if not differences:
            self.state("Policy", name, status.ProvisionState.READY)
            return
        detail = "; ".join(differences)
        self.security.append(
            dataclasses.replace(action, verb=base.Verb.REPLACE, replace=True, drift=True, detail=detail)
        )
        self.state("Policy", name, status.ProvisionState.DRIFTED, detail)

    def plan_row_security(self, seen: ObservedTable, name: str) -> None:
        force = self.table.row_level_security.force if self.table.row_level_security else False
        enable = not seen.rls_enabled
        force_change = force if seen.rls_forced != force else None
        if not enable and force_change is None:
            self.state("RowLevelSecurity", name, status.ProvisionState.READY)
            return
        steps = (["enable"] if enable else []) + ([] if force_change is None else ["force" if force else "no force"])
        drift = seen.rls_enabled or seen.policy is not None
        self.security.append(
            RowSecurityAction(
                system=SYSTEM,
                verb=base.Verb.UPDATE,
                kind="RowLevelSecurity",
                target=name,
                detail=", ".join(steps),
                drift=drift,
                table=self.ref,
                enable=enable,
                force=force_change,
            )
        )
        state = status.ProvisionState.DRIFTED if drift else status.ProvisionState.MISSING
        self.state("RowLevelSecurity", name, state, ", ".join(steps))

    def plan_index(self, seen: ObservedTable, tenancy: spec.Tenancy, name: str) -> None:
        index = sql.index_name(self.ref.name, tenancy.tenant_key)
        found, detail, drift = seen.index, f"btree ({tenancy.tenant_key})", False
        if found is not None:
            if not found.valid:
                detail = "invalid index left by an interrupted concurrent build"
            elif (
                not found.on_table or found.columns != (tenancy.tenant_key,) or found.partial or found.method != "btree"
            ):
                detail, drift = f"was {found.method} ({', '.join(found.columns)}), not btree on this table", True
            else:
                self.state("Index", name, status.ProvisionState.READY)
                return
        verb = base.Verb.CREATE if found is None else base.Verb.REPLACE
        concurrently = self.concurrent_ddl and not seen.hypertable
        if not concurrently:
            detail += "; hypertable or PGlite: built without CONCURRENTLY"
        self.indexes.append(
            IndexAction(
                system=SYSTEM,
                verb=verb,
                kind="Index",
                target=name,
                detail=detail,
                drift=drift,
                table=self.ref,
                index=index,
                column=tenancy.tenant_key,
                drop_first=found is not None,
                concurrently=concurrently,
            )
        )
        self.state(
            "Index",
            name,
            status.ProvisionState.MISSING if found is None else status.ProvisionState.DRIFTED,
            "" if found is None else detail,
        )


def _policy_summary(role: str | None, tenancy: spec.Tenancy, cast: str | None) -> str:
    setting = f"current_setting('{tenancy.session_variable}')"
    return f"TO {role or 'PUBLIC'}, {tenancy.tenant_key} = {setting}{'::' + cast if cast else ''}"


def _policy_differences(seen: ObservedPolicy, roles: tuple[str, ...], expected: str | None) -> list[str]:
    differences = []
    if seen.command != "*":
        differences.append(f"was FOR {_COMMANDS.get(seen.command, seen.command)}, not ALL")
    if not seen.permissive:
        differences.append("was RESTRICTIVE")
    if seen.roles != roles:
        differences.append(f"was TO {', '.join(seen.roles) or 'nobody'}, not {', '.join(roles)}")
    if sql.canonical(seen.using) != expected:
        differences.append("USING expression changed")
    if sql.canonical(seen.with_check) != expected:
        differences.append("WITH CHECK expression changed")
    return differences


def plan_relational(desired: Desired, observed: Observed) -> base.Plan:
    """The ordered actions that make the declared tables' row-level security match the spec.

    Pure. Raises SpecUnsatisfiable(AppRoleInvalid) when RLS could not bind the app role.
    Policies and RLS flags come first (each policy before its ENABLE, so no table is
    ever enabled without its policy), index builds last (they are the slow part).
    """
    check_app_role(desired, observed)
    security: list[base.Action] = []
    indexes: list[base.Action] = []
    objects: list[base.ObjectState] = []
    blockers: list[base.Blocker] = []
    for table in desired.postgres.tables:
        if not any(_managed(table)):
            continue
        ref = TableRef(table.schema_name, table.name)
        planned = _TablePlan(desired, table, observed.table(ref), observed.concurrent_ddl)
        planned.build()
        security += planned.security
        indexes += planned.indexes
        objects += planned.objects
        blockers += planned.blockers
    return base.Plan(SYSTEM, tuple(security + indexes), tuple(objects), tuple(blockers))


class RelationalProvisioner:
    """Row-level security of ``spec.postgres.tables`` over one caller-owned autocommit connection.

    ``log`` (a ``client.StatementLog``) records every statement sent; ``log.change_count``
    counts the changes (DDL) of a pass, which is zero for an unchanged system.
    """

    system = SYSTEM

    def __init__(
        self,
        conn: psycopg.AsyncConnection[TupleRow],
        desired: Desired,
        *,
        timeouts: client.Timeouts | None = None,
        log: client.StatementLog | None = None,
    ) -> None:
        self.desired = desired
        self.session = client.Session(conn, timeouts or client.Timeouts(), log)
        self.log = self.session.log

    def _tables(self) -> list[postgres_spec.PostgresTable]:
        return [table for table in self.desired.postgres.tables if any(_managed(table))]

    async def observe(self) -> Observed:
        tables = self._tables()
        role = self.desired.postgres.app_role
        if not tables:
            return Observed()
        key = self.desired.tenancy.tenant_key if self.desired.tenancy else None
        params = {
            "schemas": [table.schema_name for table in tables],
            "tables": [table.name for table in tables],
            "indexes": [sql.index_name(table.name, key or "") for table in tables],
            "app_role": role,
            "tenant_key": key,
            "policy": POLICY_NAME,
        }
        rows = await self.session.read(sql.OBSERVE, params, sql.TableRow, doing="reading RLS catalogs")
        hypertables = [row for row in rows if row.present and row.hypertable and row.timescaledb]
        columnstore: set[tuple[str, str]] = set()
        if hypertables:
            found = await self.session.read(
                sql.OBSERVE_COLUMNSTORE,
                {
                    "schemas": [row.schema_name for row in hypertables],
                    "tables": [row.table_name for row in hypertables],
                },
                sql.ColumnstoreRow,
                doing="reading TimescaleDB compression state",
            )
            columnstore = {(row.schema_name, row.table_name) for row in found}
        app_role = None
        if role is not None and rows:
            first = rows[0]
            app_role = ObservedRole(role, first.app_exists, first.app_super, first.app_bypassrls)
        return Observed(
            tables=tuple(_observed_table(row, columnstore) for row in rows if row.present),
            app_role=app_role,
            concurrent_ddl=all(row.concurrent_ddl for row in rows),
        )

    def plan(self, observed: Observed) -> base.Plan:
        return plan_relational(self.desired, observed)

    async def apply(self, action: base.Action) -> None:
        doing = action.describe()
        if isinstance(action, PolicyAction):
            ref = action.table
            create = sql.create_policy(
                ref.schema, ref.name, action.column, action.cast, action.session_variable, action.role
            )
            drop = [sql.drop_policy(ref.schema, ref.name)] if action.replace else []
            await self.session.change([*drop, create], doing=doing)
        elif isinstance(action, RowSecurityAction):
            ref = action.table
            statements = [sql.enable_row_security(ref.schema, ref.name)] if action.enable else []
            if action.force is not None:
                statements.append(sql.force_row_security(ref.schema, ref.name, action.force))
            await self.session.change(statements, doing=doing)
        elif isinstance(action, IndexAction):
            await self._build_index(action, doing)
        else:
            raise TypeError(f"{type(action).__name__} is not a {SYSTEM} row-level security action")

    async def _build_index(self, action: IndexAction, doing: str) -> None:
        ref = action.table
        drop = sql.drop_index(ref.schema, action.index, concurrently=action.concurrently)
        create = sql.create_index(ref.schema, ref.name, action.index, action.column, concurrently=action.concurrently)
        if not action.concurrently:
            await self.session.change([drop, create] if action.drop_first else [create], doing=doing, long=True)
            return
        if action.drop_first:
            await self.session.change_outside_transaction(drop, doing=doing)
        await self.session.change_outside_transaction(create, doing=doing)

    async def teardown(self) -> base.TeardownResult:
        """Drop the ``payscope_`` policies and indexes of the declared tables; leave RLS enabled.

        Row-level security stays enabled (and FORCEd): without the policy, every role
        RLS binds sees no rows at all. That breaks the application until someone
        writes a policy, but it never shows one bank another bank's rows, which
        disabling RLS would. Data, tables and foreign policies are never touched.
        """
        observed = await self.observe()
        removed: list[str] = []
        kept: list[str] = []
        for table in self._tables():
            seen = observed.table(TableRef(table.schema_name, table.name))
            if seen is None:
                continue
            rls, tenant_index = _managed(table)
            if rls and seen.policy is not None:
                await self.session.change(
                    [sql.drop_policy(seen.ref.schema, seen.ref.name)],
                    doing=f"dropping policy {POLICY_NAME} on {seen.ref}",
                )
                removed.append(f"policy {seen.ref}.{POLICY_NAME}")
            if rls and seen.rls_enabled:
                kept.append(
                    f"row level security on {seen.ref}: left enabled so the table fails closed"
                    " (no policy: no rows for the roles it binds)"
                )
            if tenant_index and seen.index is not None and self.desired.tenancy is not None:
                name = sql.index_name(table.name, self.desired.tenancy.tenant_key)
                concurrently = observed.concurrent_ddl and not seen.hypertable
                drop = sql.drop_index(seen.ref.schema, name, concurrently=concurrently)
                if not concurrently:
                    await self.session.change([drop], doing=f"dropping index {name}", long=True)
                else:
                    await self.session.change_outside_transaction(drop, doing=f"dropping index {name}")
                removed.append(f"index {seen.ref.schema}.{name}")
        return base.TeardownResult(SYSTEM, tuple(removed), tuple(kept))


def _observed_table(row: sql.TableRow, columnstore: set[tuple[str, str]]) -> ObservedTable:
    policy = None
    if row.polcmd is not None:
        policy = ObservedPolicy(
            row.polcmd, bool(row.polpermissive), tuple(row.roles or ()), row.using_expr, row.check_expr
        )
    index = None
    if row.on_table is not None:
        index = ObservedIndex(
            row.on_table, bool(row.indisvalid), bool(row.partial), row.amname or "", tuple(row.columns or ())
        )
    return ObservedTable(
        ref=TableRef(row.schema_name, row.table_name),
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
