"""The pure planner of Postgres row-level security: the tenant policy, RLS flags and tenant index.

Why this module exists: tenants (banks) share PayScope's tables, and only row-level
security keeps one bank's rows from another's. For every declared table the plan makes
sure that RLS is enabled (and FORCEd, or not, as declared), that one policy
``payscope_tenant_isolation`` binds the app role (or PUBLIC) with USING and WITH CHECK
comparing the tenant column to the session variable cast to the column's real type,
and that a ``payscope_`` tenant index exists when asked. It is a pure function of the
spec and of what ``provisioner`` observed, so it is table-tested without a server.

Ownership: the policy and the index carry a ``COMMENT`` naming the resource that created
them (``ownership.comment_of``). One without a comment was created by an earlier operator
version and is migrated (the comment is written); one whose comment names another
resource, or that someone else commented, is Foreign: nothing is planned on it, and when
the policy is foreign the table's RLS flags are left alone too (they belong with it).

What it must not do: talk to Postgres; plan to create, alter or drop tables or columns
(PayScope's migrations own them: a missing table is ``Failed``/TableNotFound, retried
every pass); plan anything on a policy or index whose name lacks the ``payscope_``
prefix, or that its resource does not own; ever plan to disable row-level security.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from payscope_operator import errors
from payscope_operator.api import conditions, postgres_spec, spec, status
from payscope_operator.backends import base, ownership, planning
from payscope_operator.backends.postgres import model, sql

INDEX_STAGE = 1
"""Index builds run after every policy and RLS change (they are the slow part)."""

_COMMANDS = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}
_State = status.ProvisionState


def managed(table: postgres_spec.PostgresTable) -> tuple[bool, bool]:
    """Whether the operator manages the table's row-level security, and its tenant index."""
    rls = table.row_level_security
    return (rls is not None and rls.enabled), table.tenant_index


def check_app_role(desired: model.Desired, observed: model.Observed) -> None:
    """Raise SpecUnsatisfiable(AppRoleInvalid) when RLS would not bind the app role."""
    name = desired.postgres.app_role
    if name is None or not any(managed(table)[0] for table in desired.postgres.tables):
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
        managed_refs = {model.TableRef(t.schema_name, t.name) for t in desired.postgres.tables if any(managed(t))}
        owned = [str(table.ref) for table in observed.tables if table.app_role_owns and table.ref in managed_refs]
        if owned:
            problem = f"owns (or inherits the owner of) {', '.join(owned)}; owners bypass or can disable RLS"
    if problem:
        raise errors.SpecUnsatisfiable(f"postgres.appRole {name} {problem}", reason=conditions.Reason.APP_ROLE_INVALID)


class _TablePlan:
    """Actions, object states and blockers of one table, recorded by :func:`plan_postgres`."""

    def __init__(
        self,
        out: planning.PlanBuilder,
        desired: model.Desired,
        table: postgres_spec.PostgresTable,
        seen: model.ObservedTable | None,
        concurrent_ddl: bool,
    ) -> None:
        self.out = out
        self.desired = desired
        self.concurrent_ddl = concurrent_ddl
        self.table = table
        self.seen = seen
        self.ref = model.TableRef(table.schema_name, table.name)
        self.comment = ownership.comment_of(desired.owner)

    def verdict(self, mark: ownership.Mark) -> ownership.Verdict:
        return ownership.judge(self.desired.owner, mark, adopt=self.table.adopt)

    def differences(self, plan: Callable[[], None]) -> list[str]:
        """What ``plan`` would change, recorded aside: for an object this resource may not touch."""
        kept, self.out = self.out, planning.PlanBuilder(model.SYSTEM)
        try:
            plan()
            return [action.detail or f"{action.verb} {action.kind}" for action in self.out.actions]
        finally:
            self.out = kept

    def mark(self, kind: str, name: str, verdict: ownership.Verdict, index: str | None = None) -> None:
        """Record this resource on an existing policy or index before anything else changes it."""
        self.out.act(
            model.MarkAction(
                system=model.SYSTEM,
                verb=base.Verb.UPDATE,
                kind=f"{kind}Ownership",
                target=name,
                detail=f"owner {self.desired.owner.resource}: {verdict.message}",
                table=self.ref,
                index=index,
                comment=self.comment,
            )
        )

    def names(self) -> list[planning.Target]:
        rls, tenant_index = managed(self.table)
        kinds = [("RowLevelSecurity", str(self.ref)), ("Policy", f"{self.ref}.{sql.POLICY_NAME}")] if rls else []
        if tenant_index:
            key = self.desired.tenancy.tenant_key if self.desired.tenancy else "tenant"
            kinds.append(("Index", f"{self.ref.schema}.{sql.index_name(self.ref.name, key)}"))
        return kinds

    def build(self) -> None:
        kinds, fail = self.names(), self.out.fail
        seen, tenancy = self.seen, self.desired.tenancy
        if seen is None:
            message = f"table {self.ref} does not exist (PayScope's migrations create it; the operator never does)"
            fail(kinds, conditions.Reason.TABLE_NOT_FOUND, message, permanent=False)
            return
        if not seen.manageable:
            message = f"the operator's role does not own {self.ref} and cannot alter it (owner: {seen.owner})"
            fail(kinds, conditions.Reason.PERMISSION_DENIED, message, permanent=True)
            return
        if tenancy is None:
            message = "rowLevelSecurity and tenantIndex need spec.tenancy"
            fail(kinds, conditions.Reason.SPEC_INVALID, message, permanent=True)
            return
        if not seen.tenant_present:
            message = f"table {self.ref} has no tenant column {tenancy.tenant_key} (spec.tenancy.tenantKey)"
            fail(kinds, conditions.Reason.TENANT_COLUMN_NOT_FOUND, message, permanent=False)
            return
        if seen.tenant_type not in sql.TENANT_CASTS:
            message = (
                f"tenant column {self.ref}.{tenancy.tenant_key} has type {seen.tenant_type or 'a domain or array'};"
                f" supported: text, varchar, uuid, smallint, integer, bigint"
            )
            fail(kinds, conditions.Reason.TENANT_COLUMN_TYPE_UNSUPPORTED, message, permanent=True)
            return
        rls_kinds = [kind for kind in kinds if kind[0] != "Index"]
        if rls_kinds and seen.columnstore:
            message = (
                f"{self.ref} is a hypertable with TimescaleDB compression on, which refuses row-level security;"
                " decompress and disable compression by hand, or drop compression from the spec"
            )
            fail(rls_kinds, conditions.Reason.ROW_SECURITY_CONFLICTS_WITH_COMPRESSION, message, permanent=True)
        elif rls_kinds:
            self.plan_rls(seen, tenancy, rls_kinds)
        if self.table.tenant_index:
            name = kinds[-1][1]
            verdict = self.verdict(seen.index.mark) if seen.index is not None else None
            if verdict is not None and not verdict.manage:
                self.out.foreign("Index", name, verdict, self.differences(lambda: self.plan_index(seen, tenancy, name)))
                return
            planned = len(self.out.actions)
            self.plan_index(seen, tenancy, name)
            if verdict is not None and verdict.mark and len(self.out.actions) == planned:  # a rebuild comments it
                self.mark("Index", name, verdict, sql.index_name(self.ref.name, tenancy.tenant_key))

    def plan_rls(self, seen: model.ObservedTable, tenancy: spec.Tenancy, kinds: list[planning.Target]) -> None:
        """The policy and the RLS flags: ours (or migrated, or adopted), or both left as found."""
        (_, rls_name), (_, policy_name) = kinds
        verdict = self.verdict(seen.policy.mark) if seen.policy is not None else None
        if verdict is not None and not verdict.manage:
            policy = self.differences(lambda: self.plan_policy(seen, tenancy, policy_name))
            flags = self.differences(lambda: self.plan_row_security(seen, rls_name))
            self.out.foreign("Policy", policy_name, verdict, policy)
            self.out.foreign("RowLevelSecurity", rls_name, dataclasses.replace(verdict, owner=""), flags)
            return
        planned = len(self.out.actions)
        self.plan_policy(seen, tenancy, policy_name)
        if verdict is not None and verdict.mark and len(self.out.actions) == planned:  # a re-creation comments it
            self.mark("Policy", policy_name, verdict)
        self.plan_row_security(seen, rls_name)

    def plan_policy(self, seen: model.ObservedTable, tenancy: spec.Tenancy, name: str) -> None:
        role = self.desired.postgres.app_role
        typname = seen.tenant_type or "text"
        action = model.PolicyAction(
            system=model.SYSTEM,
            verb=base.Verb.CREATE,
            kind="Policy",
            target=name,
            table=self.ref,
            column=tenancy.tenant_key,
            cast=sql.TENANT_CASTS[typname],
            session_variable=tenancy.session_variable,
            role=role,
            replace=False,
            comment=self.comment,
            detail=_policy_summary(role, tenancy, sql.TENANT_CASTS[typname]),
            drift=seen.rls_enabled,  # RLS on but our policy gone: dropped out of band
        )
        if seen.policy is None:
            self.out.act(action)
            self.out.state("Policy", name, _State.MISSING)
            return
        expected = sql.canonical(sql.deparsed_expression(tenancy.tenant_key, typname, tenancy.session_variable))
        differences = _policy_differences(seen.policy, (role or "public",), expected)
        if not differences:
            self.out.state("Policy", name, _State.READY)
            return
        detail = "; ".join(differences)
        self.out.act(dataclasses.replace(action, verb=base.Verb.REPLACE, replace=True, drift=True, detail=detail))
        self.out.state("Policy", name, _State.DRIFTED, detail)

    def plan_row_security(self, seen: model.ObservedTable, name: str) -> None:
        force = self.table.row_level_security.force if self.table.row_level_security else False
        enable = not seen.rls_enabled
        force_change = force if seen.rls_forced != force else None
        if not enable and force_change is None:
            self.out.state("RowLevelSecurity", name, _State.READY)
            return
        steps = (["enable"] if enable else []) + ([] if force_change is None else ["force" if force else "no force"])
        drift = seen.rls_enabled or seen.policy is not None
        self.out.act(
            model.RowSecurityAction(
                system=model.SYSTEM,
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
        self.out.state("RowLevelSecurity", name, _State.DRIFTED if drift else _State.MISSING, ", ".join(steps))

    def plan_index(self, seen: model.ObservedTable, tenancy: spec.Tenancy, name: str) -> None:
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
                self.out.state("Index", name, _State.READY)
                return
        concurrently = self.concurrent_ddl and not seen.hypertable
        if not concurrently:
            detail += "; hypertable or PGlite: built without CONCURRENTLY"
        action = model.IndexAction(
            system=model.SYSTEM,
            verb=base.Verb.CREATE if found is None else base.Verb.REPLACE,
            kind="Index",
            target=name,
            detail=detail,
            drift=drift,
            table=self.ref,
            index=index,
            column=tenancy.tenant_key,
            drop_first=found is not None,
            concurrently=concurrently,
            comment=self.comment,
        )
        self.out.act(action, stage=INDEX_STAGE)
        if found is None:
            self.out.state("Index", name, _State.MISSING)
        else:
            self.out.state("Index", name, _State.DRIFTED, detail)


def _policy_summary(role: str | None, tenancy: spec.Tenancy, cast: str | None) -> str:
    setting = f"current_setting('{tenancy.session_variable}')"
    return f"TO {role or 'PUBLIC'}, {tenancy.tenant_key} = {setting}{'::' + cast if cast else ''}"


def _policy_differences(seen: model.ObservedPolicy, roles: tuple[str, ...], expected: str | None) -> list[str]:
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


def plan_postgres(desired: model.Desired, observed: model.Observed) -> base.Plan:
    """The ordered actions that make the declared tables' row-level security match the spec.

    Pure. Raises SpecUnsatisfiable(AppRoleInvalid) when RLS could not bind the app role.
    Policies and RLS flags come first (each policy before its ENABLE, so no table is
    ever enabled without its policy), index builds last (they are the slow part).
    """
    check_app_role(desired, observed)
    out = planning.PlanBuilder(model.SYSTEM)
    for table in desired.postgres.tables:
        if not any(managed(table)):
            continue
        seen = observed.table(model.TableRef(table.schema_name, table.name))
        _TablePlan(out, desired, table, seen, observed.concurrent_ddl).build()
    return out.build()
