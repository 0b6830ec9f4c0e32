"""The shared plan builder: apply order by stage, failed objects with their blocker, the built plan.

Pure: no server. Every system's planner writes into a ``PlanBuilder``; these cases pin
what it does with what they record.
"""

from __future__ import annotations

from payscope_operator.api import status
from payscope_operator.backends import base, planning

READY = status.ProvisionState.READY
FAILED = status.ProvisionState.FAILED


def action(target: str) -> base.Action:
    return base.Action("test", base.Verb.CREATE, "Thing", target)


def test_an_empty_builder_builds_a_converged_plan() -> None:
    plan = planning.PlanBuilder("test").build()
    assert plan == base.Plan("test")
    assert plan.converged


def test_actions_run_by_stage_then_in_the_order_planned() -> None:
    out = planning.PlanBuilder("test")
    out.act(action("a"))
    out.act(action("slow-1"), stage=1)
    out.act(action("b"))
    out.act(action("slow-2"), stage=1)
    out.act(action("c"))
    assert [a.target for a in out.build().actions] == ["a", "b", "c", "slow-1", "slow-2"]


def test_a_failure_marks_every_target_and_adds_one_blocker() -> None:
    out = planning.PlanBuilder("test")
    out.fail([("Policy", "t.p"), ("Index", "t.i")], "TableNotFound", "table t does not exist", permanent=False)
    plan = out.build()
    assert plan.objects == (
        base.ObjectState("Policy", "t.p", FAILED, "TableNotFound", "table t does not exist"),
        base.ObjectState("Index", "t.i", FAILED, "TableNotFound", "table t does not exist"),
    )
    assert plan.blockers == (base.Blocker("TableNotFound", "table t does not exist", permanent=False),)
    assert not plan.converged


def test_a_blocker_message_may_name_the_object() -> None:
    out = planning.PlanBuilder("test")
    out.fail([("Constraint", "c")], "SpecInvalid", "bad label", permanent=True, blocker="constraint c: bad label")
    plan = out.build()
    assert plan.objects[0].message == "bad label"
    assert plan.blockers == (base.Blocker("SpecInvalid", "constraint c: bad label", permanent=True),)


def test_states_keep_their_order_reason_and_message() -> None:
    out = planning.PlanBuilder("test")
    out.state("Bucket", "b", READY)
    out.state("BucketPolicy", "b", READY, "not implemented", reason="NotImplementedByEndpoint")
    out.block("SpecInvalid", "no such thing", permanent=True)
    plan = out.build()
    assert plan.objects == (
        base.ObjectState("Bucket", "b", READY),
        base.ObjectState("BucketPolicy", "b", READY, "NotImplementedByEndpoint", "not implemented"),
    )
    assert plan.blockers == (base.Blocker("SpecInvalid", "no such thing", permanent=True),)
