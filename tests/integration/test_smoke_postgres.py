"""The test Postgres is real: forced RLS binds a non-owner role to its bank's rows."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import make_conninfo


def test_forced_rls_shows_a_role_only_its_bank(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("CREATE TABLE tx (id serial PRIMARY KEY, bank_id text NOT NULL, amount int)")
        admin.execute("INSERT INTO tx (bank_id, amount) VALUES ('bank-a', 1), ('bank-a', 2), ('bank-b', 3)")
        admin.execute("ALTER TABLE tx ENABLE ROW LEVEL SECURITY")
        admin.execute("ALTER TABLE tx FORCE ROW LEVEL SECURITY")
        admin.execute(
            "CREATE POLICY iso ON tx USING (bank_id = current_setting('app.current_bank_id', true))"
            " WITH CHECK (bank_id = current_setting('app.current_bank_id', true))"
        )
        role = "smoke_app_" + pg_dsn.rsplit("/", 1)[1].split("?")[0]
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'smoke-pass-1'")
        admin.execute(f"GRANT SELECT, INSERT ON tx TO {role}")
        admin.execute(f"GRANT USAGE ON SEQUENCE tx_id_seq TO {role}")
    dsn = make_conninfo(pg_dsn, user=role, password="smoke-pass-1")
    try:
        with psycopg.connect(dsn) as app:
            app.execute("SELECT set_config('app.current_bank_id', 'bank-a', false)")
            rows = app.execute("SELECT bank_id, amount FROM tx ORDER BY amount").fetchall()
            assert rows == [("bank-a", 1), ("bank-a", 2)]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("INSERT INTO tx (bank_id, amount) VALUES ('bank-b', 9)")
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("DROP TABLE tx")
            admin.execute(f"DROP ROLE {role}")
