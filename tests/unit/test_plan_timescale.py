"""Table tests of the TimescaleDB plan: plan_timescale over observed catalogs.

Pure: no server. Each planning case gives a spec, an observed extension and catalog
state, and the actions, object states and blockers the plan must hold.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from payscope_operator.api import postgres_spec, status
from payscope_operator.backends import base, postgres, timescale

READY = status.ProvisionState.READY
MISSING = status.ProvisionState.MISSING
DRIFTED = status.ProvisionState.DRIFTED
FAILED = status.ProvisionState.FAILED
INSTALLED = timescale.model.ExtensionState(available=True, installed="2.23.0")
DAY = 86400.0


def section(*tables: dict[str, Any]) -> postgres_spec.Postgres:
    return postgres_spec.Postgres.model_validate(
        {"connection": {"secretRef": {"name": "pg", "key": "dsn"}}, "tables": list(tables)}
    )


def table(name: str = "metrics", *, rls: bool = False, **hypertable: Any) -> dict[str, Any]:
    settings = {
        "timeColumn": "created_at",
        "chunkInterval": "7d",
        "retention": "400d",
        "compression": {"after": "30d", "segmentBy": ["bank_id"], "orderBy": ["created_at DESC"]},
    }
    settings.update(hypertable)
    declared: dict[str, Any] = {"name": name, "hypertable": {k: v for k, v in settings.items() if v is not None}}
    if rls:
        declared["rowLevelSecurity"] = {"enabled": True, "force": True}
    return declared


GOOD = timescale.model.ObservedHypertable(
    time_column="created_at",
    chunk_seconds=7 * DAY,
    compression_enabled=True,
    segment_by=("bank_id",),
    order_by=("created_at DESC",),
    retention=timescale.model.ObservedJob(1000, 400 * DAY),
    compression=timescale.model.ObservedJob(1001, 30 * DAY),
)


def seen(name: str = "metrics", hypertable: timescale.model.ObservedHypertable | None = GOOD, **changes: Any) -> Any:
    plain = timescale.model.ObservedTable(
        ref=postgres.model.TableRef("public", name),
        manageable=True,
        row_security=False,
        time_type="timestamptz",
        time_present=True,
        blocking=(),
        hypertable=hypertable,
    )
    return dataclasses.replace(plain, **changes)


def observed(*tables: timescale.model.ObservedTable, extension: timescale.model.ExtensionState = INSTALLED) -> Any:
    return timescale.model.Observed(extension, tables)


def summary(plan: base.Plan) -> list[tuple[str, str, str, bool]]:
    return [(action.kind, action.verb.value, action.detail, action.drift) for action in plan.actions]


def states(plan: base.Plan) -> dict[tuple[str, str], tuple[status.ProvisionState, str]]:
    return {(obj.kind, obj.name): (obj.state, obj.reason) for obj in plan.objects}


def test_a_populated_table_is_not_converted_without_migrate_data() -> None:
    populated = seen(hypertable=None, stored_bytes=8192 * 40, row_estimate=12345.0)
    plan = timescale.plan.plan_timescale(section(table()), observed(populated))
    assert not plan.actions
    reason = "HypertableNeedsDataMigration"
    assert {key: state for key, (state, why) in states(plan).items() if why == reason} == {
        ("Hypertable", "public.metrics"): FAILED,
        ("Compression", "public.metrics"): FAILED,
        ("CompressionPolicy", "public.metrics"): FAILED,
        ("RetentionPolicy", "public.metrics"): FAILED,
    }
    assert [(b.reason, b.permanent) for b in plan.blockers] == [(reason, True)]
    assert "about 12345 rows (pg_class.reltuples)" in plan.blockers[0].message
    never_analyzed = seen(hypertable=None, stored_bytes=8192, row_estimate=-1.0)
    message = timescale.plan.plan_timescale(section(table()), observed(never_analyzed)).blockers[0].message
    assert "8 KiB of rows not yet counted by ANALYZE" in message


def test_migrate_data_converts_a_populated_table_and_an_empty_one_needs_no_migration() -> None:
    populated = seen(hypertable=None, stored_bytes=8192, row_estimate=100.0)
    plan = timescale.plan.plan_timescale(section(table(migrateData=True)), observed(populated))
    create = plan.actions[0]
    assert isinstance(create, timescale.model.HypertableAction)
    assert create.migrate_data
    assert create.detail == "by_range(created_at, 7d), moving its rows into chunks (migrateData)"
    assert not plan.blockers
    empty = timescale.plan.plan_timescale(section(table(migrateData=True)), observed(seen(hypertable=None)))
    create = empty.actions[0]
    assert isinstance(create, timescale.model.HypertableAction)
    assert not create.migrate_data  # nothing to move: no exclusive lock held for a move


def test_actions_of_one_table_share_a_scope_and_tables_do_not() -> None:
    plan = timescale.plan.plan_timescale(
        section(table(), table("events")), observed(seen(hypertable=None), seen("events", hypertable=None))
    )
    scopes = [action.scope for action in plan.actions]
    assert scopes == ["hypertable public.metrics"] * 4 + ["hypertable public.events"] * 4


def test_from_nothing_plans_hypertable_compression_then_policies() -> None:
    plan = timescale.plan.plan_timescale(section(table()), observed(seen(hypertable=None)))
    assert summary(plan) == [
        ("Hypertable", "create", "by_range(created_at, 7d)", False),
        ("Compression", "create", "enable", False),
        ("CompressionPolicy", "create", "after 30d", False),
        ("RetentionPolicy", "create", "after 400d", False),
    ]
    compression = plan.actions[1]
    assert isinstance(compression, timescale.model.CompressionAction)
    assert compression.segment_by == ("bank_id",)
    assert compression.order_by == ("created_at DESC",)
    assert states(plan)[("Extension", "timescaledb")] == (READY, "")


def test_an_available_extension_is_created_first_and_only_as_an_action() -> None:
    available = timescale.model.ExtensionState(available=True, installed=None)
    plan = timescale.plan.plan_timescale(section(table()), observed(seen(hypertable=None), extension=available))
    assert [(a.kind, a.verb.value) for a in plan.actions][:2] == [("Extension", "create"), ("Hypertable", "create")]
    assert isinstance(plan.actions[0], timescale.model.ExtensionAction)


def test_an_unavailable_extension_fails_every_hypertable_object_and_plans_nothing() -> None:
    absent = timescale.model.ExtensionState(available=False, installed=None)
    plan = timescale.plan.plan_timescale(section(table(), table("events")), observed(extension=absent))
    assert plan.actions == ()
    assert {value for value in states(plan).values()} == {(FAILED, "TimescaleUnavailable")}
    assert len(plan.objects) == 1 + 4 + 4
    assert [(b.reason, b.permanent) for b in plan.blockers] == [("TimescaleUnavailable", False)]


def test_an_unchanged_system_plans_nothing() -> None:
    plan = timescale.plan.plan_timescale(section(table()), observed(seen()))
    assert plan.actions == ()
    assert plan.converged


@pytest.mark.parametrize(
    ("hypertable", "expected"),
    [
        ({"chunk_seconds": DAY}, [("Hypertable", "update", "chunk interval was 1d, not 7d", True)]),
        ({"retention": timescale.model.ObservedJob(1000, 30 * DAY)},
         [("RetentionPolicy", "replace", "was 30d, not 400d", True)]),
        ({"retention": timescale.model.ObservedJob(1000, None)},
         [("RetentionPolicy", "replace", "was not an interval, not 400d", True)]),
        ({"retention": None}, [("RetentionPolicy", "create", "after 400d", False)]),
        ({"compression": timescale.model.ObservedJob(1001, 7 * DAY)},
         [("CompressionPolicy", "replace", "was 7d, not 30d", True)]),
        ({"segment_by": ("bank_id", "v")}, [("Compression", "update", "segmentby was bank_id,v", True)]),
        ({"order_by": ("created_at",)}, [("Compression", "update", "orderby was created_at", True)]),
        ({"compression_enabled": False, "segment_by": (), "order_by": ()},
         [("Compression", "create", "enable", False)]),
    ],
)  # fmt: skip
def test_out_of_band_changes_are_planned_back(hypertable: dict[str, Any], expected: list[Any]) -> None:
    plan = timescale.plan.plan_timescale(
        section(table()), observed(seen(hypertable=dataclasses.replace(GOOD, **hypertable)))
    )
    assert summary(plan) == expected


def test_a_replaced_policy_is_removed_then_added() -> None:
    drifted = dataclasses.replace(GOOD, retention=timescale.model.ObservedJob(1000, DAY))
    action = timescale.plan.plan_timescale(section(table()), observed(seen(hypertable=drifted))).actions[0]
    assert isinstance(action, timescale.model.PolicyAction)
    assert action.replace
    assert action.policy == "retention"


def test_only_changed_compression_options_are_sent() -> None:
    drifted = dataclasses.replace(GOOD, segment_by=("v",))
    action = timescale.plan.plan_timescale(section(table()), observed(seen(hypertable=drifted))).actions[0]
    assert isinstance(action, timescale.model.CompressionAction)
    assert (action.enable, action.segment_by, action.order_by) == (False, ("bank_id",), None)


def test_order_by_asc_is_the_default_and_not_drift() -> None:
    declared = table(compression={"after": "30d", "orderBy": ["created_at ASC"]})
    plain = dataclasses.replace(GOOD, order_by=("created_at",), segment_by=("something_timescale_chose",))
    assert timescale.plan.plan_timescale(section(declared), observed(seen(hypertable=plain))).actions == ()


def test_undeclared_settings_are_left_alone() -> None:
    declared = table(chunkInterval=None, retention=None, compression=None)
    plan = timescale.plan.plan_timescale(section(declared), observed(seen()))
    assert plan.actions == ()
    assert list(states(plan)) == [("Extension", "timescaledb"), ("Hypertable", "public.metrics")]


@pytest.mark.parametrize(
    ("change", "reason", "permanent", "message"),
    [
        ({"time_present": False, "time_type": None}, "TimeColumnNotFound", False, "no time column created_at"),
        ({"time_type": "int8"}, "TimeColumnTypeUnsupported", True, "is int8"),
        ({"blocking": ("metrics_pkey",)}, "HypertableConstraintIncompatible", True,
         "unique constraint or index metrics_pkey does not include the time column created_at"),
        ({"manageable": False}, "PermissionDenied", True, "cannot change"),
    ],
)  # fmt: skip
def test_table_problems_fail_all_its_objects_with_a_reason(
    change: dict[str, Any], reason: str, permanent: bool, message: str
) -> None:
    plan = timescale.plan.plan_timescale(section(table()), observed(seen(hypertable=None, **change)))
    assert plan.actions == ()
    table_states = {key: value for key, value in states(plan).items() if key[0] != "Extension"}
    assert set(table_states.values()) == {(FAILED, reason)}
    assert len(table_states) == 4
    assert [(b.reason, b.permanent) for b in plan.blockers] == [(reason, permanent)]
    assert message in plan.blockers[0].message
    assert "public.metrics" in plan.blockers[0].message


def test_a_missing_table_fails_while_the_others_proceed() -> None:
    plan = timescale.plan.plan_timescale(section(table("gone"), table()), observed(seen(hypertable=None)))
    assert {a.target for a in plan.actions} == {"public.metrics"}
    assert states(plan)[("Hypertable", "public.gone")] == (FAILED, "TableNotFound")
    assert [(b.reason, b.permanent) for b in plan.blockers] == [("TableNotFound", False)]


def test_a_hypertable_on_another_column_cannot_change() -> None:
    other = dataclasses.replace(GOOD, time_column="ts")
    plan = timescale.plan.plan_timescale(section(table()), observed(seen(hypertable=other)))
    assert plan.actions == ()
    assert plan.blockers[0].reason == "TimeColumnImmutable"


@pytest.mark.parametrize(("declared_rls", "observed_rls"), [(True, False), (False, True)])
def test_compression_conflicts_with_row_level_security(declared_rls: bool, observed_rls: bool) -> None:
    plan = timescale.plan.plan_timescale(
        section(table(rls=declared_rls)), observed(seen(hypertable=None, row_security=observed_rls))
    )
    assert [a.kind for a in plan.actions] == ["Hypertable", "RetentionPolicy"]
    assert states(plan)[("Compression", "public.metrics")] == (FAILED, "RowSecurityConflictsWithCompression")
    assert states(plan)[("CompressionPolicy", "public.metrics")] == (FAILED, "RowSecurityConflictsWithCompression")
    assert [(b.reason, b.permanent) for b in plan.blockers] == [("RowSecurityConflictsWithCompression", True)]


def test_a_column_both_segmenting_and_ordering_is_a_spec_conflict() -> None:
    declared = table(compression={"after": "30d", "segmentBy": ["bank_id"], "orderBy": ["bank_id DESC"]})
    plan = timescale.plan.plan_timescale(section(declared), observed(seen()))
    assert plan.blockers[0].reason == "CompressionSpecConflict"
