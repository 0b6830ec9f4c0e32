"""The SQL of the row-level-security provisioner: names, deparsed expressions, statement text.

Pure: no server. Every name reaches SQL quoted and re-checked, every value as a literal.
"""

from __future__ import annotations

import pytest

from payscope_operator import errors
from payscope_operator.backends import postgres

APP = "payscope_app"


def test_index_names_are_deterministic_and_fit_63_bytes() -> None:
    assert postgres.sql.index_name("transactions", "bank_id") == "payscope_transactions_bank_id_idx"
    long_table, long_key = "t" * 63, "k" * 63
    name = postgres.sql.index_name(long_table, long_key)
    assert len(name.encode()) == 63
    assert name.startswith("payscope_")
    assert name.endswith("_idx")
    assert name == postgres.sql.index_name(long_table, long_key)
    assert name != postgres.sql.index_name(long_table, "j" * 63)


def test_canonical_ignores_only_whitespace_and_parentheses() -> None:
    deparsed = "((bank_id)::text = current_setting('app.current_bank_id'::text, true))"
    assert postgres.sql.canonical(deparsed) == postgres.sql.canonical(
        postgres.sql.deparsed_expression("bank_id", "varchar", "app.current_bank_id")
    )
    assert postgres.sql.canonical(deparsed) != postgres.sql.canonical(
        deparsed.replace("app.current_bank_id", "app.other")
    )


def test_statements_quote_every_name_and_pass_values_as_literals() -> None:
    policy = postgres.client.render(
        postgres.sql.create_policy("public", "tx", "bank_id", "uuid", "app.current_bank_id", APP)
    )
    assert policy == (
        'CREATE POLICY "payscope_tenant_isolation" ON "public"."tx" AS PERMISSIVE FOR ALL TO "payscope_app"'
        " USING (\"bank_id\" = NULLIF(current_setting('app.current_bank_id', true), '')::uuid)"
        " WITH CHECK (\"bank_id\" = NULLIF(current_setting('app.current_bank_id', true), '')::uuid)"
    )
    build = postgres.model.IndexBuild
    assert postgres.client.render(
        postgres.sql.create_index("public", "tx", "payscope_tx_bank_id_idx", "bank_id", build=build.CONCURRENTLY)
    ) == ('CREATE INDEX CONCURRENTLY IF NOT EXISTS "payscope_tx_bank_id_idx" ON "public"."tx" ("bank_id")')
    assert postgres.client.render(
        postgres.sql.create_index("public", "tx", "payscope_tx_bank_id_idx", "bank_id", build=build.PER_CHUNK)
    ) == (
        'CREATE INDEX IF NOT EXISTS "payscope_tx_bank_id_idx" ON "public"."tx" ("bank_id")'
        " WITH (timescaledb.transaction_per_chunk)"
    )
    assert postgres.client.render(
        postgres.sql.create_index("public", "tx", "payscope_tx_bank_id_idx", "bank_id", build=build.IN_TRANSACTION)
    ) == ('CREATE INDEX IF NOT EXISTS "payscope_tx_bank_id_idx" ON "public"."tx" ("bank_id")')
    assert postgres.client.render(postgres.sql.force_row_security("public", "tx", False)) == (
        'ALTER TABLE "public"."tx" NO FORCE ROW LEVEL SECURITY'
    )


def test_only_payscope_indexes_can_be_dropped_and_names_are_rechecked() -> None:
    with pytest.raises(ValueError, match="not a payscope_ object"):
        postgres.sql.drop_index("public", "tx_pkey", concurrently=True)
    with pytest.raises(errors.SpecInvalid):
        postgres.sql.enable_row_security("public", 'tx"; DROP TABLE tx; --')
