"""Table tests of the row-level-security plan: plan_postgres over observed catalogs.

Pure: no server. Each planning case gives a spec, an observed catalog state, and the
actions, object states and blockers the plan must hold.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from payscope_operator import errors
from payscope_operator.api import postgres_spec, spec, status
from payscope_operator.backends import base, ownership, postgres

OWNER = ownership.Owner("1e1e1e1e-0000-4000-8000-000000000123", "payscope", "prod")
READY = status.ProvisionState.READY
MISSING = status.ProvisionState.MISSING
DRIFTED = status.ProvisionState.DRIFTED
FAILED = status.ProvisionState.FAILED
TENANCY = spec.Tenancy()
OURS = ownership.Mark.of(OWNER)
APP = "payscope_app"


def desired(
    *tables: dict[str, Any], app_role: str | None = APP, tenancy: spec.Tenancy | None = TENANCY
) -> postgres.model.Desired:
    section = postgres_spec.Postgres.model_validate(
        {"connection": {"secretRef": {"name": "pg", "key": "dsn"}}, "appRole": app_role, "tables": list(tables)}
    )
    return postgres.model.Desired(section, tenancy, OWNER)


def table(name: str = "tx", *, force: bool = True, index: bool = True, enabled: bool = True) -> dict[str, Any]:
    return {"name": name, "rowLevelSecurity": {"enabled": enabled, "force": force}, "tenantIndex": index}


def good_policy(typname: str = "text", roles: tuple[str, ...] = (APP,)) -> postgres.model.ObservedPolicy:
    expression = postgres.sql.deparsed_expression("bank_id", typname, "app.current_bank_id")
    return postgres.model.ObservedPolicy("*", True, roles, expression, expression, OURS)


GOOD_INDEX = postgres.model.ObservedIndex(
    on_table=True, valid=True, partial=False, method="btree", columns=("bank_id",), mark=OURS
)


def seen(name: str = "tx", **changes: Any) -> postgres.model.ObservedTable:
    """A table provisioned as the default spec wants, with ``changes`` applied."""
    typname = changes.get("tenant_type", "text")
    base_table = postgres.model.ObservedTable(
        ref=postgres.model.TableRef("public", name),
        owner="payscope_owner",
        rls_enabled=True,
        rls_forced=True,
        manageable=True,
        app_role_owns=False,
        tenant_type=typname,
        tenant_present=True,
        hypertable=False,
        columnstore=False,
        policy=good_policy(typname if typname in postgres.sql.TENANT_CASTS else "text"),
        index=GOOD_INDEX,
    )
    return dataclasses.replace(base_table, **changes)


ROLE = postgres.model.ObservedRole(APP, exists=True, superuser=False, bypassrls=False)


def observed(
    *tables: postgres.model.ObservedTable, role: postgres.model.ObservedRole | None = ROLE
) -> postgres.model.Observed:
    return postgres.model.Observed(tables, role)


def summary(plan: base.Plan) -> list[tuple[str, str, str, bool]]:
    return [(action.kind, action.verb.value, action.detail, action.drift) for action in plan.actions]


def states(plan: base.Plan) -> dict[tuple[str, str], tuple[status.ProvisionState, str]]:
    return {(obj.kind, obj.name): (obj.state, obj.reason) for obj in plan.objects}


POLICY_KEY = ("Policy", "public.tx.payscope_tenant_isolation")
RLS_KEY = ("RowLevelSecurity", "public.tx")
INDEX_KEY = ("Index", "public.payscope_tx_bank_id_idx")


def test_from_nothing_creates_policy_before_enabling_then_builds_the_index_concurrently() -> None:
    bare = seen(rls_enabled=False, rls_forced=False, policy=None, index=None)
    plan = postgres.plan.plan_postgres(desired(table()), observed(bare))
    assert [(kind, verb, drift) for kind, verb, _, drift in summary(plan)] == [
        ("Policy", "create", False),
        ("RowLevelSecurity", "update", False),
        ("Index", "create", False),
    ]
    policy, row_security, index = plan.actions
    assert isinstance(policy, postgres.model.PolicyAction)
    assert policy.role == APP
    assert policy.cast is None
    assert isinstance(row_security, postgres.model.RowSecurityAction)
    assert row_security.enable
    assert row_security.force is True
    assert isinstance(index, postgres.model.IndexAction)
    assert index.concurrently
    assert not index.drop_first
    assert states(plan) == {POLICY_KEY: (MISSING, ""), RLS_KEY: (MISSING, ""), INDEX_KEY: (MISSING, "")}


def test_an_unchanged_system_plans_nothing_and_is_converged() -> None:
    plan = postgres.plan.plan_postgres(desired(table()), observed(seen()))
    assert plan.actions == ()
    assert plan.converged


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"rls_forced": False}, [("RowLevelSecurity", "update", "force", True)]),
        ({"rls_enabled": False}, [("RowLevelSecurity", "update", "enable", True)]),
        ({"policy": None}, [("Policy", "create", "TO payscope_app, bank_id = current_setting('app.current_bank_id')",
                             True)]),
        ({"policy": dataclasses.replace(good_policy(), command="r")},
         [("Policy", "replace", "was FOR SELECT, not ALL", True)]),
        ({"policy": dataclasses.replace(good_policy(), roles=("public",))},
         [("Policy", "replace", "was TO public, not payscope_app", True)]),
        ({"policy": dataclasses.replace(good_policy(), using="true")},
         [("Policy", "replace", "USING expression changed", True)]),
        ({"policy": dataclasses.replace(good_policy(), with_check=None)},
         [("Policy", "replace", "WITH CHECK expression changed", True)]),
        ({"policy": dataclasses.replace(good_policy(), permissive=False)},
         [("Policy", "replace", "was RESTRICTIVE", True)]),
        ({"index": dataclasses.replace(GOOD_INDEX, columns=("bank_id", "id"))},
         [("Index", "replace", "was btree (bank_id, id), not btree on this table", True)]),
        ({"index": dataclasses.replace(GOOD_INDEX, valid=False)},
         [("Index", "replace", "invalid index left by an interrupted concurrent build", False)]),
        ({"index": dataclasses.replace(GOOD_INDEX, on_table=False)},
         [("Index", "replace", "was btree (bank_id), not btree on this table", True)]),
        ({"index": None}, [("Index", "create", "btree (bank_id)", False)]),
    ],
)  # fmt: skip
def test_out_of_band_changes_are_planned_back(
    change: dict[str, Any], expected: list[tuple[str, str, str, bool]]
) -> None:
    plan = postgres.plan.plan_postgres(desired(table()), observed(seen(**change)))
    assert summary(plan) == expected
    assert not plan.blockers


def test_force_false_is_kept_as_no_force() -> None:
    plan = postgres.plan.plan_postgres(desired(table(force=False)), observed(seen()))
    assert summary(plan) == [("RowLevelSecurity", "update", "no force", True)]
    action = plan.actions[0]
    assert isinstance(action, postgres.model.RowSecurityAction)
    assert action.force is False
    assert not action.enable


def test_replacing_a_policy_drops_and_recreates_it() -> None:
    plan = postgres.plan.plan_postgres(
        desired(table()), observed(seen(policy=dataclasses.replace(good_policy(), using="x")))
    )
    action = plan.actions[0]
    assert isinstance(action, postgres.model.PolicyAction)
    assert action.replace
    assert action.verb is base.Verb.REPLACE
    assert states(plan)[POLICY_KEY] == (DRIFTED, "")


@pytest.mark.parametrize(
    ("typname", "cast"),
    [("text", None), ("varchar", None), ("uuid", "uuid"), ("int2", "smallint"), ("int4", "integer"),
     ("int8", "bigint")],
)  # fmt: skip
def test_the_policy_casts_the_setting_to_the_tenant_columns_type(typname: str, cast: str | None) -> None:
    fresh = seen(tenant_type=typname, policy=None, rls_enabled=False, rls_forced=False)
    action = postgres.plan.plan_postgres(desired(table(index=False)), observed(fresh)).actions[0]
    assert isinstance(action, postgres.model.PolicyAction)
    assert action.cast == cast
    # ... and the policy Postgres deparses for that type counts as unchanged.
    assert postgres.plan.plan_postgres(desired(table(index=False)), observed(seen(tenant_type=typname))).actions == ()


def test_no_app_role_means_a_policy_to_public() -> None:
    fresh = seen(policy=None)
    action = postgres.plan.plan_postgres(desired(table(), app_role=None), observed(fresh, role=None)).actions[0]
    assert isinstance(action, postgres.model.PolicyAction)
    assert action.role is None
    kept = seen(policy=good_policy(roles=("public",)))
    assert postgres.plan.plan_postgres(desired(table(), app_role=None), observed(kept, role=None)).actions == ()


def test_a_missing_table_fails_with_table_not_found_while_the_others_proceed() -> None:
    plan = postgres.plan.plan_postgres(desired(table("gone"), table()), observed(seen(policy=None)))
    assert [action.target for action in plan.actions] == ["public.tx.payscope_tenant_isolation"]
    gone = {key: value for key, value in states(plan).items() if "gone" in key[1]}
    assert gone == {
        ("RowLevelSecurity", "public.gone"): (FAILED, "TableNotFound"),
        ("Policy", "public.gone.payscope_tenant_isolation"): (FAILED, "TableNotFound"),
        ("Index", "public.payscope_gone_bank_id_idx"): (FAILED, "TableNotFound"),
    }
    assert [(b.reason, b.permanent) for b in plan.blockers] == [("TableNotFound", False)]
    assert "public.gone does not exist" in plan.blockers[0].message


@pytest.mark.parametrize(
    ("change", "reason", "permanent"),
    [
        ({"tenant_present": False, "tenant_type": None}, "TenantColumnNotFound", False),
        ({"tenant_type": "numeric"}, "TenantColumnTypeUnsupported", True),
        ({"tenant_type": None}, "TenantColumnTypeUnsupported", True),
        ({"manageable": False}, "PermissionDenied", True),
        ({"columnstore": True, "hypertable": True}, "RowSecurityConflictsWithCompression", True),
    ],
)
def test_table_level_problems_fail_the_tables_objects_with_a_reason(
    change: dict[str, Any], reason: str, permanent: bool
) -> None:
    plan = postgres.plan.plan_postgres(desired(table(index=False)), observed(seen(**change)))
    assert plan.actions == ()
    assert set(states(plan).values()) == {(FAILED, reason)}
    assert [(b.reason, b.permanent) for b in plan.blockers] == [(reason, permanent)]


def test_a_compressed_hypertable_still_gets_its_tenant_index_without_concurrently() -> None:
    plan = postgres.plan.plan_postgres(desired(table()), observed(seen(columnstore=True, hypertable=True, index=None)))
    assert [action.kind for action in plan.actions] == ["Index"]
    action = plan.actions[0]
    assert isinstance(action, postgres.model.IndexAction)
    assert not action.concurrently


def test_pglite_gets_no_concurrent_index_builds() -> None:
    state = postgres.model.Observed((seen(index=None),), ROLE, concurrent_ddl=False)
    action = postgres.plan.plan_postgres(desired(table()), state).actions[0]
    assert isinstance(action, postgres.model.IndexAction)
    assert not action.concurrently


def test_rls_disabled_in_the_spec_is_not_managed_and_never_disabled() -> None:
    plan = postgres.plan.plan_postgres(desired(table(enabled=False, force=False, index=False)), observed(seen()))
    assert plan.actions == ()
    assert plan.objects == ()


@pytest.mark.parametrize(
    ("role", "owns", "message"),
    [
        (None, False, "does not exist"),
        (postgres.model.ObservedRole(APP, exists=False, superuser=False, bypassrls=False), False, "does not exist"),
        (postgres.model.ObservedRole(APP, exists=True, superuser=True, bypassrls=False), False, "superuser"),
        (postgres.model.ObservedRole(APP, exists=True, superuser=False, bypassrls=True), False, "BYPASSRLS"),
        (ROLE, True, "owns (or inherits the owner of) public.tx"),
    ],
)
def test_an_app_role_rls_would_not_bind_is_unsatisfiable(
    role: postgres.model.ObservedRole | None, owns: bool, message: str
) -> None:
    with pytest.raises(errors.SpecUnsatisfiable) as caught:
        postgres.plan.plan_postgres(desired(table()), observed(seen(app_role_owns=owns), role=role))
    assert caught.value.reason == "AppRoleInvalid"
    assert message in caught.value.message
    assert "payscope_app" in caught.value.message


def test_the_app_role_is_not_checked_when_no_table_declares_rls() -> None:
    plan = postgres.plan.plan_postgres(desired(table(enabled=False, force=False)), observed(seen(), role=None))
    assert plan.actions == ()


# --- Ownership: a COMMENT records the resource on its policy and index --------------------------

OTHER = ownership.Owner("2a2a2a2a-0000-4000-8000-00000000aaaa", "team-b", "payscope")
FOREIGN = status.ProvisionState.FOREIGN


def test_created_policy_and_index_carry_this_resources_comment() -> None:
    plan = postgres.plan.plan_postgres(desired(table()), observed(seen(rls_enabled=False, policy=None, index=None)))
    policy, _, index = plan.actions
    assert isinstance(policy, postgres.model.PolicyAction)
    assert isinstance(index, postgres.model.IndexAction)
    assert policy.comment == index.comment == ownership.comment_of(OWNER)
    assert ownership.parse_comment(policy.comment, legacy=True) == OURS


def test_an_uncommented_policy_and_index_of_an_earlier_version_are_marked_first() -> None:
    legacy = seen(policy=dataclasses.replace(good_policy(), mark=ownership.Mark(legacy=True)),
                  index=dataclasses.replace(GOOD_INDEX, mark=ownership.Mark(legacy=True)))  # fmt: skip
    plan = postgres.plan.plan_postgres(desired(table()), observed(legacy))
    assert [(type(a).__name__, a.kind, getattr(a, "index", None)) for a in plan.actions] == [
        ("MarkAction", "PolicyOwnership", None),
        ("MarkAction", "IndexOwnership", "payscope_tx_bank_id_idx"),
    ]
    assert {state for state, _ in states(plan).values()} == {READY}


@pytest.mark.parametrize("adopt", [False, True])
def test_a_policy_another_resource_owns_is_foreign_with_its_rls_flags(adopt: bool) -> None:
    theirs = ownership.Mark.of(OTHER)
    table_seen = seen(rls_forced=False, policy=dataclasses.replace(good_policy(), mark=theirs))
    plan = postgres.plan.plan_postgres(desired({**table(index=False), "adopt": adopt}), observed(table_seen))
    assert plan.actions == ()  # not even the FORCE this spec asks for
    assert states(plan) == {
        POLICY_KEY: (FOREIGN, "OwnedByAnotherResource"),
        RLS_KEY: (FOREIGN, "OwnedByAnotherResource"),
    }
    (blocker,) = plan.blockers
    assert blocker.reason == "OwnedByAnotherResource"
    assert "team-b/payscope" in blocker.message
    rls = next(o for o in plan.objects if o.kind == "RowLevelSecurity")
    assert "force" in rls.message
    assert not rls.matches


def test_a_policy_someone_else_commented_is_foreign_until_adopted() -> None:
    claimed = ownership.parse_comment("owned by the DBA team", legacy=True)
    table_seen = seen(policy=dataclasses.replace(good_policy(), mark=claimed, roles=("public",)))
    plan = postgres.plan.plan_postgres(desired(table(index=False)), observed(table_seen))
    assert plan.actions == ()
    assert plan.blockers == ()
    assert states(plan)[POLICY_KEY] == (FOREIGN, "")

    adopted = postgres.plan.plan_postgres(desired({**table(index=False), "adopt": True}), observed(table_seen))
    (replace,) = adopted.actions  # re-created TO the app role, with this resource's comment: no separate mark
    assert isinstance(replace, postgres.model.PolicyAction)
    assert (replace.replace, replace.comment) == (True, ownership.comment_of(OWNER))


def test_a_foreign_index_is_left_while_the_policy_is_managed() -> None:
    table_seen = seen(index=dataclasses.replace(GOOD_INDEX, valid=False, mark=ownership.Mark()))
    plan = postgres.plan.plan_postgres(desired(table()), observed(table_seen))
    assert plan.actions == ()  # an invalid index is rebuilt only when it is ours
    assert states(plan)[INDEX_KEY] == (FOREIGN, "")
    assert states(plan)[POLICY_KEY] == (READY, "")
