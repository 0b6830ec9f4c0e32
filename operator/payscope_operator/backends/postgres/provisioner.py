"""Postgres row-level security: observe the catalogs, apply the planned DDL, tear down.

Why this module exists: it carries out what ``plan`` decides, on a caller-owned
autocommit connection: :meth:`PostgresProvisioner.observe` reads the catalogs with one
query for all declared tables (two when a declared table is a TimescaleDB hypertable),
whatever their number, and the audit judges the same observation;
:meth:`~PostgresProvisioner.apply` runs each action's statements (policy and RLS changes
in one transaction, index builds CONCURRENTLY where the server allows);
:meth:`~PostgresProvisioner.teardown` drops what the operator created.

Ownership: every policy and index it creates gets a ``COMMENT`` naming its resource, in
the same transaction where the server allows (``CONCURRENTLY`` builds are commented right
after); teardown drops only what that comment says is its resource's.

What it must not do: open its own connections; touch any policy or index whose name
lacks the ``payscope_`` prefix, or that its resource does not own; disable row-level security, ever (teardown drops the
policy and leaves RLS on, so the table fails closed); paste spec values into SQL.
"""

from __future__ import annotations

from payscope_operator.api import postgres_spec
from payscope_operator.backends import base, ownership
from payscope_operator.backends.postgres import client, model, plan, sql


class PostgresProvisioner(client.SessionOwner[model.Desired]):
    """Row-level security of ``spec.postgres.tables`` over one caller-owned autocommit connection.

    ``log`` (a ``client.StatementLog``) records every statement sent; ``log.change_count``
    counts the changes (DDL) of a pass, which is zero for an unchanged system.
    """

    system = model.SYSTEM

    def _tables(self) -> list[postgres_spec.PostgresTable]:
        return [table for table in self.desired.postgres.tables if any(plan.managed(table))]

    async def observe(self) -> model.Observed:
        """Every declared table (those it does not manage too: the audit judges them from this) and the app role."""
        tables = self.desired.postgres.tables
        role = self.desired.postgres.app_role
        if not tables:
            return model.Observed()
        key = self.desired.tenancy.tenant_key if self.desired.tenancy else None
        params = {
            "schemas": [table.schema_name for table in tables],
            "tables": [table.name for table in tables],
            "indexes": [sql.index_name(table.name, key or "") for table in tables],
            "app_role": role,
            "tenant_key": key,
            "policy": sql.POLICY_NAME,
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
            app_role = model.ObservedRole(role, first.app_exists, first.app_super, first.app_bypassrls)
        return model.Observed(
            tables=tuple(sql.observed_table(row, columnstore) for row in rows if row.present),
            app_role=app_role,
            concurrent_ddl=all(row.concurrent_ddl for row in rows),
        )

    def plan(self, observed: model.Observed) -> base.Plan:
        return plan.plan_postgres(self.desired, observed)

    async def apply(self, action: base.Action) -> None:
        doing = action.describe()
        if isinstance(action, model.PolicyAction):
            ref = action.table
            create = sql.create_policy(
                ref.schema, ref.name, action.column, action.cast, action.session_variable, action.role
            )
            drop = [sql.drop_policy(ref.schema, ref.name)] if action.replace else []
            comment = sql.comment_on_policy(ref.schema, ref.name, action.comment)
            await self.session.change([*drop, create, comment], doing=doing)
        elif isinstance(action, model.RowSecurityAction):
            ref = action.table
            statements = [sql.enable_row_security(ref.schema, ref.name)] if action.enable else []
            if action.force is not None:
                statements.append(sql.force_row_security(ref.schema, ref.name, action.force))
            await self.session.change(statements, doing=doing)
        elif isinstance(action, model.IndexAction):
            await self._build_index(action, doing)
        elif isinstance(action, model.MarkAction):
            ref = action.table
            if action.index is None:
                statement = sql.comment_on_policy(ref.schema, ref.name, action.comment)
            else:
                statement = sql.comment_on_index(ref.schema, action.index, action.comment)
            await self.session.change([statement], doing=doing)
        else:
            raise TypeError(f"{type(action).__name__} is not a {model.SYSTEM} row-level security action")

    async def _build_index(self, action: model.IndexAction, doing: str) -> None:
        ref = action.table
        drop = sql.drop_index(ref.schema, action.index, concurrently=action.concurrently)
        create = sql.create_index(ref.schema, ref.name, action.index, action.column, concurrently=action.concurrently)
        comment = sql.comment_on_index(ref.schema, action.index, action.comment)
        if not action.concurrently:
            statements = [drop, create, comment] if action.drop_first else [create, comment]
            await self.session.change(statements, doing=doing, long=True)
            return
        if action.drop_first:
            await self.session.change_outside_transaction(drop, doing=doing)
        await self.session.change_outside_transaction(create, doing=doing)
        await self.session.change([comment], doing=doing)

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
        owner = self.desired.owner
        for table in self._tables():
            seen = observed.table(model.TableRef(table.schema_name, table.name))
            if seen is None:
                continue
            rls, tenant_index = plan.managed(table)
            if rls and seen.policy is not None and seen.policy.mark.uid != owner.uid:
                why = ownership.why_kept(ownership.judge(owner, seen.policy.mark, adopt=False))
                kept.append(f"policy {seen.ref}.{sql.POLICY_NAME}: {why}")
            elif rls and seen.policy is not None:
                await self.session.change(
                    [sql.drop_policy(seen.ref.schema, seen.ref.name)],
                    doing=f"dropping policy {sql.POLICY_NAME} on {seen.ref}",
                )
                removed.append(f"policy {seen.ref}.{sql.POLICY_NAME}")
            if rls and seen.rls_enabled:
                kept.append(
                    f"row level security on {seen.ref}: left enabled so the table fails closed"
                    " (no policy: no rows for the roles it binds)"
                )
            if tenant_index and seen.index is not None and seen.index.mark.uid != owner.uid:
                why = ownership.why_kept(ownership.judge(owner, seen.index.mark, adopt=False))
                kept.append(f"index of {seen.ref} on the tenant key: {why}")
            elif tenant_index and seen.index is not None and self.desired.tenancy is not None:
                name = sql.index_name(table.name, self.desired.tenancy.tenant_key)
                concurrently = observed.concurrent_ddl and not seen.hypertable
                drop = sql.drop_index(seen.ref.schema, name, concurrently=concurrently)
                if not concurrently:
                    await self.session.change([drop], doing=f"dropping index {name}", long=True)
                else:
                    await self.session.change_outside_transaction(drop, doing=f"dropping index {name}")
                removed.append(f"index {seen.ref.schema}.{name}")
        return base.TeardownResult(model.SYSTEM, tuple(removed), tuple(kept))
