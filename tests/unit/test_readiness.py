"""The pure conditions function, table by table: every rule of the status contract."""

from __future__ import annotations

import datetime
from dataclasses import replace

import pytest

from payscope_operator.api import conditions as api_conditions
from payscope_operator.api import status
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
        "not configured dimension is Unknown/NotConfigured and Ready ignores it",
        readiness.Facts(3, (result("A.x.ok", PASS), result("B.x.nc", NC)), OK_PROVISIONING),
        {
            "Ready": (CS.TRUE, R.ALL_CHECKS_PASSED),
            "DataLayerReady": (CS.UNKNOWN, R.NOT_CONFIGURED),
            "InfrastructureReady": (CS.TRUE, R.ALL_CHECKS_PASSED),
        },
    ),
    (
        "nothing configured is never a pass",
        readiness.Facts(3, (result("A.x.nc", NC),), OK_PROVISIONING),
        {"Ready": (CS.UNKNOWN, R.NOT_CONFIGURED), "InfrastructureReady": (CS.UNKNOWN, R.NOT_CONFIGURED)},
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
