"""The SQL of the TimescaleDB provisioner: API calls as text, and settings text as read back.

Pure: no server.
"""

from __future__ import annotations

from payscope_operator.backends import postgres, timescale


def test_statements() -> None:
    render = postgres.client.render
    assert render(timescale.sql.create_hypertable("public", "metrics", "created_at", "7d", migrate_data=True)) == (
        'SELECT create_hypertable(\'"public"."metrics"\'::regclass,'
        " by_range('created_at', '7 days'::interval), migrate_data => true)"
    )
    assert render(timescale.sql.create_hypertable("public", "metrics", "created_at", None, migrate_data=False)) == (
        "SELECT create_hypertable('\"public\".\"metrics\"'::regclass, by_range('created_at'), migrate_data => false)"
    )
    assert render(
        timescale.sql.set_compression(
            "public", "metrics", enable=True, segment_by=("bank_id", "order"), order_by=("created_at DESC",)
        )
    ) == (
        'ALTER TABLE "public"."metrics" SET (timescaledb.compress,'
        ' timescaledb.compress_segmentby = \'"bank_id","order"\','
        " timescaledb.compress_orderby = '\"created_at\" DESC')"
    )
    assert render(timescale.sql.add_policy("public", "metrics", "retention", "12h")) == (
        'SELECT "add_retention_policy"(\'"public"."metrics"\'::regclass, "drop_after" => \'12 hours\'::interval)'
    )
    assert render(timescale.sql.remove_policy("public", "metrics", "compression")) == (
        'SELECT "remove_compression_policy"(\'"public"."metrics"\'::regclass, if_exists => true)'
    )


def test_settings_text_is_parsed_and_normalised() -> None:
    assert timescale.sql.parse_columns("bank_id,v") == ("bank_id", "v")
    assert timescale.sql.parse_columns(None) == ()
    assert timescale.sql.normalise_order(("created_at ASC", "v DESC")) == ("created_at", "v DESC")
