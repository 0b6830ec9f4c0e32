"""Condition types, dimensions, reasons and the status models."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from payscope_operator.api import conditions, status

Dimension = conditions.Dimension
ConditionType = conditions.ConditionType


def test_dimensions_have_letters_and_conditions_in_checklist_order() -> None:
    assert [d.letter for d in Dimension] == list("ABCDEFG")
    assert Dimension.DATA_LAYER.condition_type is ConditionType.DATA_LAYER_READY
    assert Dimension.APIS.condition_type is ConditionType.APIS_READY
    assert Dimension.from_letter("G") is Dimension.SECURITY
    assert Dimension.of_check("B.postgres.rls_forced") is Dimension.DATA_LAYER
    with pytest.raises(ValueError, match="letter"):
        Dimension.from_letter("H")


def test_condition_types_are_the_status_contract() -> None:
    dimension_types = {d.condition_type for d in Dimension}
    assert set(ConditionType) - dimension_types == {"Ready", "Reconciling", "Stalled", "Provisioned"}
    assert {"Reconciling", "Stalled"} == conditions.ABNORMAL_TRUE


def test_every_reason_is_documented_camel_case_and_unique() -> None:
    assert set(conditions.REASON_DESCRIPTIONS) == set(conditions.Reason)
    for reason, meaning in conditions.reason_table():
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", reason), reason
        assert re.fullmatch(status.REASON_PATTERN, reason)
        assert meaning.endswith("."), reason
        assert "\n" not in meaning, reason
    assert len({reason for reason, _ in conditions.reason_table()}) == len(conditions.Reason)


def _condition(**changes: Any) -> dict[str, Any]:
    body = {
        "type": "Ready",
        "status": "True",
        "reason": "AllChecksPassed",
        "lastTransitionTime": "2026-01-02T03:04:05Z",
    }
    return {**body, **changes}


def test_status_defaults_and_wire_form() -> None:
    empty = status.PayScopeStatus()
    assert empty.observed_generation == -1
    assert empty.model_dump(mode="json", by_alias=True, exclude_none=True) == {
        "observedGeneration": -1,
        "conditions": [],
        "checks": [],
        "plan": [],
    }


def test_condition_times_are_aware_and_whole_seconds() -> None:
    parsed = status.Condition.model_validate(_condition(lastTransitionTime="2026-01-02T03:04:05.678+00:00"))
    assert parsed.last_transition_time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parsed.model_dump(mode="json", by_alias=True)["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    with pytest.raises(ValidationError):
        status.Condition.model_validate(_condition(lastTransitionTime="2026-01-02T03:04:05"))


@pytest.mark.parametrize(
    "changes",
    [{"status": "Maybe"}, {"reason": "not camel case"}, {"reason": ""}, {"observedGeneration": -1}, {"extra": 1}],
)
def test_invalid_conditions_are_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        status.Condition.model_validate(_condition(**changes))


def test_conditions_are_a_map_by_type_and_checks_are_bounded() -> None:
    with pytest.raises(ValidationError):
        status.PayScopeStatus.model_validate({"conditions": [_condition(), _condition(status="False")]})
    check = {"dimension": "DataLayer", "status": "Fail", "severity": "High"}
    many = [{**check, "id": f"B.postgres.c{i}"} for i in range(status.MAX_CHECKS + 1)]
    status.PayScopeStatus.model_validate({"checks": many[:-1]})
    with pytest.raises(ValidationError):
        status.PayScopeStatus.model_validate({"checks": many})


def test_dimensions_are_keyed_by_dimension_name() -> None:
    parsed = status.Dimensions.model_validate({"DataLayer": {"passed": 3, "failed": 1, "score": 75}})
    summary = parsed.get(Dimension.DATA_LAYER)
    assert summary is not None
    assert (summary.passed, summary.failed, summary.score) == (3, 1, 75)
    assert parsed.get(Dimension.SECURITY) is None
    with pytest.raises(ValidationError):
        status.DimensionSummary.model_validate({"score": 101})
