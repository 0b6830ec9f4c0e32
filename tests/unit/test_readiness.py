"""The pure conditions function, table by table: every rule of the status contract."""

from __future__ import annotations

import datetime
from dataclasses import replace

import pytest

from payscope_operator.api import conditions as api_conditions
from payscope_operator.api import spec, status
from payscope_operator.reconcile import readiness

T0 = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)
CS = status.ConditionStatus
R = api_conditions.Reason
D = api_conditions.Dimension


def result(check_id: str, state: status.CheckStatus, message: str = "m") -> status.CheckResult:
    return status.CheckResult(
        id=check_id,
        dimension=D.of_check(check_id),
        status=state,
        severity=status.Severity.HIGH,
        message=message,
    )


PASS, FAIL, WARN, UNKNOWN, NC, WAIVED = (
    status.CheckStatus.PASS,
    status.CheckStatus.FAIL,
    status.CheckStatus.WARN,
    status.CheckStatus.UNKNOWN,
    status.CheckStatus.NOT_CONFIGURED,
    status.CheckStatus.WAIVED,
)
OK_PROVISIONING = readiness.Provisioning(CS.TRUE, R.PROVISIONED, "ok")
ALL_PASS = tuple(result(f"{d.letter}.x.ok", PASS) for d in D)
WAIVER_B = spec.Waiver(check="B.*", reason="no data layer in this cell", expires=datetime.date(2027, 1, 31))


def by_type(conds: tuple[status.Condition, ...]) -> dict[str, status.Condition]:
    return {c.type: c for c in conds}


CASES = [
    # (id, facts, expected {type: (status, reason)})
    (
        "all pass",
        readiness.Facts(3, ALL_PASS, OK_PROVISIONING),
        {
            "Ready": (CS.TRUE, R.ALL_CHECKS_PASSED),
            "Reconciling": (CS.FALSE, R.RECONCILE_SUCCEEDED),
            "Stalled": (CS.FALSE, R.RECONCILE_SUCCEEDED),
            "Provisioned": (CS.TRUE, R.PROVISIONED),
            "DataLayerReady": (CS.TRUE, R.ALL_CHECKS_PASSED),
        },
    ),
    (
        "one failing check fails its dimension and Ready",
        readiness.Facts(3, (*ALL_PASS, result("B.postgres.rls", FAIL)), OK_PROVISIONING),
        {
            "Ready": (CS.FALSE, R.CHECKS_FAILING),
            "DataLayerReady": (CS.FALSE, R.CHECKS_FAILING),
            "SecurityReady": (CS.TRUE, R.ALL_CHECKS_PASSED),
        },
    ),
    (
        "unknown makes the dimension and Ready Unknown",
        readiness.Facts(3, (*ALL_PASS, result("C.broker.reachable", UNKNOWN)), OK_PROVISIONING),
        {"Ready": (CS.UNKNOWN, R.CHECKS_UNKNOWN), "PipelineReady": (CS.UNKNOWN, R.CHECKS_UNKNOWN)},
    ),
    (
        "fail beats unknown",
        readiness.Facts(3, (*ALL_PASS, result("C.a.b", UNKNOWN), result("G.a.b", FAIL)), OK_PROVISIONING),
        {"Ready": (CS.FALSE, R.CHECKS_FAILING), "PipelineReady": (CS.UNKNOWN, R.CHECKS_UNKNOWN)},
    ),
    (
        "warn keeps True with its own reason",
        readiness.Facts(3, (*ALL_PASS, result("F.metrics.x", WARN)), OK_PROVISIONING),
        {"Ready": (CS.TRUE, R.ALL_CHECKS_PASSED), "ObservabilityReady": (CS.TRUE, R.CHECKS_WARNING)},
    ),
    (
        "waived failure does not fail the dimension",
        readiness.Facts(3, (*ALL_PASS, result("F.metrics.agents", WAIVED)), OK_PROVISIONING),
        {"Ready": (CS.TRUE, R.ALL_CHECKS_PASSED), "ObservabilityReady": (CS.TRUE, R.WAIVED)},
    ),
    (
        "a dimension none of whose checks ran keeps Ready False, naming it",
        readiness.Facts(3, (*ALL_PASS[:1], *ALL_PASS[2:], result("B.x.nc", NC)), OK_PROVISIONING),
        {
            "Ready": (CS.FALSE, R.DIMENSIONS_NOT_CONFIGURED),
            "DataLayerReady": (CS.UNKNOWN, R.NOT_CONFIGURED),
            "InfrastructureReady": (CS.TRUE, R.ALL_CHECKS_PASSED),
        },
    ),
    (
        "a dimension absent from the results altogether is not configured either",
        readiness.Facts(3, ALL_PASS[1:], OK_PROVISIONING),
        {"Ready": (CS.FALSE, R.DIMENSIONS_NOT_CONFIGURED), "InfrastructureReady": (CS.UNKNOWN, R.NOT_CONFIGURED)},
    ),
    (
        "a waived dimension that did not run no longer holds Ready back",
        readiness.Facts(
            3,
            (*ALL_PASS[:1], *ALL_PASS[2:], result("B.x.nc", NC)),
            OK_PROVISIONING,
            waived_dimensions={D.DATA_LAYER: WAIVER_B},
        ),
        {
            "Ready": (CS.TRUE, R.ALL_CHECKS_PASSED),
            "DataLayerReady": (CS.UNKNOWN, R.NOT_CONFIGURED),
        },
    ),
    (
        "a waiver of another dimension does not accept this one",
        readiness.Facts(
            3,
            (*ALL_PASS[:1], *ALL_PASS[2:], result("B.x.nc", NC)),
            OK_PROVISIONING,
            waived_dimensions={D.AGENTS: WAIVER_B},
        ),
        {"Ready": (CS.FALSE, R.DIMENSIONS_NOT_CONFIGURED)},
    ),
    (
        "failing checks come before dimensions not configured",
        readiness.Facts(3, (result("A.x.ok", FAIL),), OK_PROVISIONING),
        {"Ready": (CS.FALSE, R.CHECKS_FAILING), "DataLayerReady": (CS.UNKNOWN, R.NOT_CONFIGURED)},
    ),
    (
        "dimensions not configured come before unknown ones",
        readiness.Facts(3, (result("A.x.ok", UNKNOWN),), OK_PROVISIONING),
        {"Ready": (CS.FALSE, R.DIMENSIONS_NOT_CONFIGURED), "InfrastructureReady": (CS.UNKNOWN, R.CHECKS_UNKNOWN)},
    ),
    (
        "nothing configured is never a pass",
        readiness.Facts(3, (result("A.x.nc", NC),), OK_PROVISIONING),
        {"Ready": (CS.FALSE, R.DIMENSIONS_NOT_CONFIGURED), "InfrastructureReady": (CS.UNKNOWN, R.NOT_CONFIGURED)},
    ),
    (
        "nothing audited and everything waived is still not a pass",
        readiness.Facts(3, (), OK_PROVISIONING, waived_dimensions=dict.fromkeys(D, WAIVER_B)),
        {"Ready": (CS.UNKNOWN, R.NOT_CONFIGURED)},
    ),
    (
        "stalled: Ready False with the stall's reason, Reconciling False",
        readiness.Facts(
            3,
            ALL_PASS,
            None,
            stall=readiness.Stall(R.SECRET_NOT_FOUND, "Secret 'pg' not found"),
            reconciling="working",
        ),
        {
            "Ready": (CS.FALSE, R.SECRET_NOT_FOUND),
            "Stalled": (CS.TRUE, R.SECRET_NOT_FOUND),
            "Reconciling": (CS.FALSE, R.RECONCILE_SUCCEEDED),
            "Provisioned": (CS.UNKNOWN, R.AUDIT_PENDING),
        },
    ),
    (
        "reconciling: Ready False (Reconciling)",
        readiness.Facts(3, ALL_PASS, OK_PROVISIONING, reconciling="Waiting for index"),
        {
            "Ready": (CS.FALSE, R.RECONCILING),
            "Reconciling": (CS.TRUE, R.RECONCILING),
            "Stalled": (CS.FALSE, R.RECONCILE_SUCCEEDED),
        },
    ),
    (
        "paused wins over everything",
        readiness.Facts(3, ALL_PASS, OK_PROVISIONING, stall=readiness.Stall(R.PERMISSION_DENIED, "x"), paused=True),
        {"Ready": (CS.FALSE, R.PAUSED), "Stalled": (CS.TRUE, R.PERMISSION_DENIED)},
    ),
    (
        "provisioning not done fails Ready with its reason",
        readiness.Facts(3, ALL_PASS, readiness.Provisioning(CS.FALSE, R.TABLE_NOT_FOUND, "public.tx missing")),
        {"Ready": (CS.FALSE, R.TABLE_NOT_FOUND), "Provisioned": (CS.FALSE, R.TABLE_NOT_FOUND)},
    ),
]


@pytest.mark.parametrize(("case_id", "facts", "expected"), CASES, ids=[c[0] for c in CASES])
def test_conditions_table(case_id: str, facts: readiness.Facts, expected: dict[str, tuple[CS, str]]) -> None:
    conds = by_type(readiness.build_conditions(facts, (), T0))
    assert set(conds) == {t.value for t in api_conditions.ConditionType}
    for ctype, (want_status, want_reason) in expected.items():
        assert (conds[ctype].status, conds[ctype].reason) == (want_status, want_reason), ctype
    assert not (conds["Reconciling"].status == CS.TRUE and conds["Stalled"].status == CS.TRUE)
    assert all(c.observed_generation == facts.generation for c in conds.values())
    assert all(c.reason for c in conds.values())


def test_transition_time_kept_unless_status_flips() -> None:
    facts = readiness.Facts(1, ALL_PASS, OK_PROVISIONING)
    first = readiness.build_conditions(facts, (), T0)
    same = readiness.build_conditions(replace(facts, generation=2), first, T1)
    assert all(c.last_transition_time == T0 for c in same)
    failing = readiness.build_conditions(replace(facts, checks=(*ALL_PASS, result("B.a.b", FAIL))), first, T1)
    moved = {c.type for c in failing if c.last_transition_time == T1}
    assert moved == {"Ready", "DataLayerReady"}


def test_reason_change_without_flip_keeps_time_but_is_a_transition() -> None:
    warn = readiness.Facts(1, (*ALL_PASS, result("F.a.b", WARN)), OK_PROVISIONING)
    before = readiness.build_conditions(warn, (), T0)
    after = readiness.build_conditions(readiness.Facts(1, ALL_PASS, OK_PROVISIONING), before, T1)
    obs = by_type(after)["ObservabilityReady"]
    assert obs.last_transition_time == T0
    assert obs.reason == R.ALL_CHECKS_PASSED
    changed = [new.type for _, new in readiness.transitions(before, after)]
    assert changed == ["ObservabilityReady"]


def test_identical_facts_produce_identical_conditions() -> None:
    facts = readiness.Facts(4, (*ALL_PASS, result("C.a.b", FAIL, "depth 3 > 0")), OK_PROVISIONING)
    first = readiness.build_conditions(facts, (), T0)
    assert readiness.build_conditions(facts, first, T1) == first
    assert readiness.transitions(first, first) == []


@pytest.mark.parametrize(
    ("states", "score"),
    [
        ((PASS, PASS), 100),
        ((PASS, FAIL), 50),
        ((PASS, WARN), 75),
        ((UNKNOWN,), 0),
        ((NC, WAIVED), 0),
        ((PASS, NC), 100),
    ],
)
def test_dimension_score(states: tuple[status.CheckStatus, ...], score: int) -> None:
    results = [result(f"B.x.c{i}", s) for i, s in enumerate(states)]
    summary = readiness.summarise(results, D.DATA_LAYER)
    assert summary.score == score
    assert (
        summary.passed + summary.failed + summary.warned + summary.unknown + summary.not_configured + summary.waived
        == len(states)
    )


def test_dimensions_not_configured_are_named_with_the_waiver_to_write() -> None:
    facts = readiness.Facts(3, (result("A.x.ok", PASS), result("G.x.ok", PASS)), OK_PROVISIONING)
    ready = by_type(readiness.build_conditions(facts, (), T0))["Ready"]
    assert ready.message.startswith(
        "Not audited, no check configured: DataLayer, Pipeline, Agents, APIs, Observability."
    )
    assert '{check: "B.*"' in ready.message


def test_a_waived_dimension_is_shown_in_its_condition_and_in_ready() -> None:
    checks = (*ALL_PASS[:1], *ALL_PASS[2:])
    conds = by_type(
        readiness.build_conditions(
            readiness.Facts(3, checks, OK_PROVISIONING, waived_dimensions={D.DATA_LAYER: WAIVER_B}), (), T0
        )
    )
    assert "Not audited by waiver B.* until 2027-01-31: no data layer in this cell" in conds["DataLayerReady"].message
    assert conds["Ready"].message.endswith("Not audited, waived: DataLayer (until 2027-01-31).")


def test_summary_counts_the_passing_checks_by_grade() -> None:
    graded = [
        result("B.x.a", PASS).model_copy(update={"grade": status.EvidenceGrade.OBSERVED}),
        result("B.x.b", PASS).model_copy(update={"grade": status.EvidenceGrade.OBSERVED}),
        result("B.x.c", PASS).model_copy(update={"grade": status.EvidenceGrade.REPORTED}),
        result("B.x.d", FAIL).model_copy(update={"grade": status.EvidenceGrade.INFERRED}),
    ]
    summary = readiness.summarise(graded, D.DATA_LAYER)
    assert summary.passed_by_grade == status.GradeCounts(observed=2, inferred=0, reported=1)
