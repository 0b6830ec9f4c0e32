"""TimescaleDB: observe the extension and the declared tables, apply the planned calls, tear down.

Why this module exists: it carries out what ``plan`` decides, on the same caller-owned
autocommit connection as the ``postgres`` provisioner (the TimescaleDB test server
serves one connection at a time). It reads state with two queries whatever the number
of tables (:data:`sql.OBSERVE_TABLES` from pg_catalog, so it works before the extension
exists, and :data:`sql.OBSERVE_HYPERTABLES` for the declared tables that are
hypertables), and applies each action as one transaction, waiting at most
``lockTimeout`` for its lock (else ``errors.LockTimeout`` naming the blockers).

What it must not do: open its own connections, create or alter tables or columns, turn
a hypertable back into a table, decompress or drop chunks, or remove anything on
teardown (see :meth:`TimescaleProvisioner.teardown`).
"""

from __future__ import annotations

from payscope_operator.api import postgres_spec
from payscope_operator.backends import base, postgres
from payscope_operator.backends.timescale import model, plan, sql


class TimescaleProvisioner(postgres.client.SessionOwner[postgres_spec.Postgres]):
    """Hypertables of ``spec.postgres.tables`` over one caller-owned autocommit connection.

    ``log.change_count`` counts the changes a pass sent (zero for an unchanged system).
    """

    system = model.SYSTEM

    async def observe(self) -> model.Observed:
        tables = plan.declared(self.desired)
        if not tables:
            return model.Observed()
        params = {
            "schemas": [table.schema_name for table in tables],
            "tables": [table.name for table in tables],
            "time_columns": [table.hypertable.time_column if table.hypertable else "" for table in tables],
        }
        rows = await self.session.read(sql.OBSERVE_TABLES, params, sql.TableRow, doing="reading table catalogs")
        extension = model.ExtensionState(available=rows[0].available, installed=rows[0].installed)
        hypertables: dict[tuple[str, str], model.ObservedHypertable] = {}
        candidates = [row for row in rows if row.present and row.hypertable]
        if extension.installed is not None and candidates:
            found = await self.session.read(
                sql.OBSERVE_HYPERTABLES,
                {"schemas": [row.schema_name for row in candidates], "tables": [row.table_name for row in candidates]},
                sql.HypertableRow,
                doing="reading timescaledb_information",
            )
            hypertables = {(row.schema_name, row.table_name): sql.observed_hypertable(row) for row in found}
        tables_seen = tuple(
            sql.observed_table(row, hypertables.get((row.schema_name, row.table_name))) for row in rows if row.present
        )
        return model.Observed(extension, tables_seen)

    def plan(self, observed: model.Observed) -> base.Plan:
        return plan.plan_timescale(self.desired, observed)

    async def apply(self, action: base.Action) -> None:
        """One action; waiting longer than ``lockTimeout`` for its lock raises ``errors.LockTimeout``."""
        doing = action.describe()
        if isinstance(action, model.ExtensionAction):
            await self.session.change([sql.create_extension()], doing=doing, locking=_catalog())
        elif isinstance(action, model.HypertableAction):
            ref, locking = action.table, _exclusive(action.table)
            if action.create:
                statement = sql.create_hypertable(
                    ref.schema, ref.name, action.time_column, action.chunk_interval, migrate_data=action.migrate_data
                )
                await self.session.change([statement], doing=doing, locking=locking, long=action.migrate_data)
            elif action.chunk_interval is not None:
                statement = sql.set_chunk_interval(ref.schema, ref.name, action.chunk_interval)
                await self.session.change([statement], doing=doing, locking=locking)
        elif isinstance(action, model.CompressionAction):
            statement = sql.set_compression(
                action.table.schema,
                action.table.name,
                enable=action.enable,
                segment_by=action.segment_by,
                order_by=action.order_by,
            )
            await self.session.change([statement], doing=doing, locking=_exclusive(action.table))
        elif isinstance(action, model.PolicyAction):
            ref = action.table
            add = sql.add_policy(ref.schema, ref.name, action.policy, action.after)
            remove = [sql.remove_policy(ref.schema, ref.name, action.policy)] if action.replace else []
            await self.session.change([*remove, add], doing=doing, locking=_exclusive(ref))
        else:
            raise TypeError(f"{type(action).__name__} is not a {model.SYSTEM} action")

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
            for table in plan.declared(self.desired)
        )
        return base.TeardownResult(model.SYSTEM, (), kept)


def _exclusive(ref: postgres.model.TableRef) -> postgres.client.Locking:
    """create_hypertable and compression settings wait for ACCESS EXCLUSIVE on the table."""
    return postgres.client.Locking.exclusive(ref.schema, ref.name)


def _catalog() -> postgres.client.Locking:
    """CREATE EXTENSION locks no PayScope table; a timeout there names pg_extension's holders."""
    return postgres.client.Locking.exclusive("pg_catalog", "pg_extension")
