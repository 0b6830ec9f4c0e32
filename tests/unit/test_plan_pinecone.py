"""Table tests of ``plan.plan_pinecone`` (pure).

Each case declares one index, describes what Pinecone reports (or nothing), and
states the object state, its reason, and the action the plan must hold. No server.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest

from payscope_operator.api import conditions, status, stores_spec
from payscope_operator.backends import base, ownership, pinecone
from tests.unit import observed

OWNER = observed.OWNER
OTHER = ownership.Owner("4d4d4d4d-0000-4000-8000-00000000dddd", "team-b", "psd")
MANAGED = pinecone.model.owner_tags(OWNER)
LEGACY = {base.MANAGED_TAG_KEY: base.MANAGED_TAG_VALUE}
State = status.ProvisionState
Reason = conditions.Reason


def declared(**overrides: object) -> stores_spec.PineconeIndex:
    raw: dict[str, object] = {
        "name": "payscope-rag",
        "dimension": 1536,
        "metric": "cosine",
        "serverless": {"cloud": "aws", "region": "us-east-1"},
        "deletionProtection": True,
        "tags": {"team": "risk"},
    }
    raw.update(overrides)
    return stores_spec.PineconeIndex.model_validate({k: v for k, v in raw.items() if v is not None})


def pod_declared(**pod: object) -> stores_spec.PineconeIndex:
    layout: dict[str, object] = {"environment": "us-east-1-aws", "podType": "p1.x2", "replicas": 2, "shards": 1}
    layout.update(pod)
    return declared(serverless=None, pod=layout)


def existing(**overrides: object) -> pinecone.model.ObservedIndex:
    """What Pinecone reports for an index matching ``declared()``, created by the operator."""
    changed: dict[str, Any] = {
        "tags": {"team": "risk", **MANAGED},
        "host": "payscope-rag-abc123.svc.aped-4627-b74a.pinecone.io",
    }
    return observed.pinecone_index(**{**changed, **overrides})


def pod_existing(**pod: object) -> pinecone.model.ObservedIndex:
    layout = pinecone.model.PodLayout(environment="us-east-1-aws", pod_type="p1.x2", replicas=2, shards=1)
    return existing(cloud=None, region=None, pod=dataclasses.replace(layout, **pod))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Case:
    id: str
    want: stores_spec.PineconeIndex
    have: pinecone.model.ObservedIndex | None
    state: status.ProvisionState
    reason: str = ""
    action: type[base.Action] | None = None
    message_has: tuple[str, ...] = ()  # substrings of the object's message (or of the action's describe())
    patch: dict[str, object] = field(default_factory=dict)  # expected ConfigureIndex fields


CASES = [
    Case("missing-is-created", declared(), None, State.MISSING, action=pinecone.model.CreateIndex,
         message_has=("create PineconeIndex payscope-rag", "serverless aws/us-east-1", "dimension 1536")),
    Case("matching-is-ready", declared(), existing(), State.READY),
    Case("initializing-is-pending", declared(), existing(ready=False, state="Initializing"), State.PENDING,
         message_has=("Initializing",)),
    Case("pod-matching-is-ready", pod_declared(), pod_existing(), State.READY),
    Case("ready-but-scaling-is-pending", pod_declared(), dataclasses.replace(pod_existing(), state="ScalingUp"),
         State.PENDING),
    Case("terminating-waits", declared(), existing(ready=False, state="Terminating"), State.PENDING,
         message_has=("being deleted",)),
    Case("initialization-failed", declared(), existing(ready=False, state="InitializationFailed"), State.FAILED,
         reason=Reason.PROVISIONING_FAILED, message_has=("InitializationFailed",)),
    Case("dimension-immutable", declared(), existing(dimension=768), State.FAILED,
         reason=Reason.INDEX_SPEC_IMMUTABLE, message_has=("dimension is 768, spec says 1536",)),
    Case("metric-immutable", declared(), existing(metric="dotproduct"), State.FAILED,
         reason=Reason.INDEX_SPEC_IMMUTABLE, message_has=("metric is dotproduct, spec says cosine",)),
    Case("region-immutable", declared(), existing(region="eu-west-1"), State.FAILED,
         reason=Reason.INDEX_SPEC_IMMUTABLE, message_has=("region is eu-west-1",)),
    Case("cloud-immutable", declared(), existing(cloud="gcp", region="us-central1"), State.FAILED,
         reason=Reason.INDEX_SPEC_IMMUTABLE, message_has=("cloud is gcp", "region is us-central1")),
    Case("sparse-immutable", declared(), existing(vector_type="sparse"), State.FAILED,
         reason=Reason.INDEX_SPEC_IMMUTABLE, message_has=("vector_type is sparse",)),
    Case("serverless-to-pod-immutable", pod_declared(), existing(), State.FAILED,
         reason=Reason.INDEX_SPEC_IMMUTABLE, message_has=("placement is serverless, spec says pod",)),
    Case("pod-to-serverless-immutable", declared(), pod_existing(), State.FAILED,
         reason=Reason.INDEX_SPEC_IMMUTABLE, message_has=("placement is pod, spec says serverless",)),
    Case("environment-immutable", pod_declared(), pod_existing(environment="us-east1-gcp"), State.FAILED,
         reason=Reason.INDEX_SPEC_IMMUTABLE, message_has=("environment is us-east1-gcp",)),
    Case("shards-immutable", pod_declared(), pod_existing(shards=2), State.FAILED,
         reason=Reason.INDEX_SPEC_IMMUTABLE, message_has=("shards is 2, spec says 1",)),
    Case("pod-shrink-immutable", pod_declared(podType="p1.x1"), pod_existing(), State.FAILED,
         reason=Reason.INDEX_SPEC_IMMUTABLE, message_has=("pod_type is p1.x2, spec says p1.x1",)),
    Case("pod-family-immutable", pod_declared(podType="s1.x4"), pod_existing(), State.FAILED,
         reason=Reason.INDEX_SPEC_IMMUTABLE, message_has=("pod_type",)),
    Case("immutable-wins-over-drift", declared(), existing(dimension=8, tags=dict(MANAGED)), State.FAILED,
         reason=Reason.INDEX_SPEC_IMMUTABLE),
    Case("replicas-drift", pod_declared(), pod_existing(replicas=1), State.DRIFTED,
         action=pinecone.model.ConfigureIndex, message_has=("replicas 1 -> 2",),
         patch={"replicas": 2, "pod_type": None, "tags": ()}),
    Case("pod-grows", pod_declared(podType="p1.x4"), pod_existing(), State.DRIFTED,
         action=pinecone.model.ConfigureIndex, message_has=("pod_type p1.x2 -> p1.x4",),
         patch={"pod_type": "p1.x4", "replicas": None}),
    Case("protection-turned-off-out-of-band", declared(), existing(deletion_protection=False), State.DRIFTED,
         action=pinecone.model.ConfigureIndex, message_has=("deletion protection off -> on",),
         patch={"deletion_protection": True, "tags": ()}),
    Case("protection-follows-spec-off", declared(deletionProtection=False), existing(), State.DRIFTED,
         action=pinecone.model.ConfigureIndex, patch={"deletion_protection": False}),
    Case("declared-tag-edited", declared(), existing(tags={"team": "ops", **MANAGED}), State.DRIFTED,
         action=pinecone.model.ConfigureIndex, message_has=("tags team set as declared",),
         patch={"tags": (("team", "risk"),), "deletion_protection": None}),
    Case("declared-tag-removed", declared(tags={"team": "risk", "env": "prod"}), existing(), State.DRIFTED,
         action=pinecone.model.ConfigureIndex, patch={"tags": (("env", "prod"),)}),
    Case("undeclared-tag-left-alone", declared(), existing(tags={"team": "risk", "cost": "x1", **MANAGED}),
         State.READY),
    Case("tag-removed-from-spec-left-alone", declared(tags={}), existing(), State.READY),
    Case("foreign-is-never-changed", declared(), existing(tags={"team": "risk"}, deletion_protection=False),
         State.FOREIGN, message_has=("not created by this resource", "deletion protection off -> on")),
    Case("foreign-immutable-is-reported-not-failed", declared(), existing(tags={"team": "risk"}, dimension=8),
         State.FOREIGN, message_has=("dimension is 8",)),
    Case("owned-by-another-resource", declared(), existing(tags={"team": "risk", **pinecone.model.owner_tags(OTHER)}),
         State.FOREIGN, reason=Reason.OWNED_BY_ANOTHER_RESOURCE, message_has=("team-b/psd", OTHER.uid)),
    Case("legacy-managed-is-migrated", declared(), existing(tags={"team": "risk", **LEGACY}), State.READY,
         action=pinecone.model.ConfigureIndex, message_has=("owner payscope/prod", "earlier operator version"),
         patch={"tags": tuple(sorted(MANAGED.items())), "deletion_protection": None}),
    Case("adopted", declared(adopt=True), existing(tags={"team": "risk"}), State.READY,
         action=pinecone.model.ConfigureIndex, message_has=("adopted",),
         patch={"tags": tuple(sorted(MANAGED.items()))}),
    Case("owner-tag-key-reserved", declared(tags={pinecone.model.OWNER_UID_TAG: "x"}), None, State.FAILED,
         reason=Reason.SPEC_INVALID, message_has=("reserved",)),
    Case("reserved-tag-key", declared(tags={base.MANAGED_TAG_KEY: "me"}), None, State.FAILED,
         reason=Reason.SPEC_INVALID, message_has=("reserved",)),
    Case("empty-tag-value", declared(tags={"team": ""}), None, State.FAILED, reason=Reason.SPEC_INVALID,
         message_has=("tag team",)),
    Case("tag-value-charset", declared(tags={"team": "risk/ops"}), existing(), State.FAILED,
         reason=Reason.SPEC_INVALID),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_plan_one_index(case: Case) -> None:
    desired = stores_spec.Pinecone.model_validate(
        {"apiKeySecretRef": {"name": "pinecone", "key": "apiKey"}, "indexes": [case.want.model_dump(by_alias=True)]}
    )
    observed = pinecone.model.ObservedVectors({} if case.have is None else {case.have.name: case.have})

    plan = pinecone.plan.plan_pinecone(desired, observed, owner=OWNER)

    assert plan.system == "pinecone"
    (obj,) = plan.objects
    assert (obj.kind, obj.name, obj.state, obj.reason) == ("PineconeIndex", case.want.name, case.state, case.reason)
    if case.state is State.FAILED:
        (blocker,) = plan.blockers
        assert (blocker.reason, blocker.permanent, blocker.message) == (case.reason, True, obj.message)
        assert case.want.name in blocker.message
    elif case.reason == Reason.OWNED_BY_ANOTHER_RESOURCE:
        (blocker,) = plan.blockers
        assert (blocker.reason, blocker.permanent) == (case.reason, True)
        assert OTHER.resource in blocker.message
    else:
        assert plan.blockers == ()
    if case.action is None:
        assert plan.actions == ()
    else:
        (action,) = plan.actions
        assert type(action) is case.action
        assert (action.system, action.target) == ("pinecone", case.want.name)
        assert action.drift is (case.action is pinecone.model.ConfigureIndex and action.kind == "PineconeIndex")
        for name, value in case.patch.items():
            assert getattr(action, name) == value, name
    text = obj.message + " " + " ".join(action.describe() for action in plan.actions)
    for expected in case.message_has:
        assert expected in text
    assert plan.converged is (case.state is State.READY and not plan.actions)
    assert pinecone.plan.plan_pinecone(desired, observed, owner=OWNER) == plan  # pure: same input, same plan


def test_undeclared_indexes_are_ignored_and_order_follows_the_spec() -> None:
    desired = stores_spec.Pinecone.model_validate(
        {
            "apiKeySecretRef": {"name": "pinecone", "key": "apiKey"},
            "indexes": [
                declared(name="b-index").model_dump(by_alias=True),
                declared(name="a-index").model_dump(by_alias=True),
            ],
        }
    )
    observed = pinecone.model.ObservedVectors(
        {
            "a-index": existing(name="a-index", deletion_protection=False),
            "someone-elses": existing(name="someone-elses", dimension=3),
        }
    )
    plan = pinecone.plan.plan_pinecone(desired, observed, owner=OWNER)
    assert [(o.name, o.state) for o in plan.objects] == [("b-index", State.MISSING), ("a-index", State.DRIFTED)]
    assert [(type(a), a.target) for a in plan.actions] == [
        (pinecone.model.CreateIndex, "b-index"),
        (pinecone.model.ConfigureIndex, "a-index"),
    ]
    assert plan.blockers == ()


def test_an_empty_section_plans_nothing() -> None:
    desired = stores_spec.Pinecone.model_validate({"apiKeySecretRef": {"name": "pinecone", "key": "apiKey"}})
    plan = pinecone.plan.plan_pinecone(desired, pinecone.model.ObservedVectors({"x": existing(name="x")}), owner=OWNER)
    assert plan == base.Plan("pinecone")
    assert plan.converged


def test_actions_describe_without_secrets() -> None:
    desired = stores_spec.Pinecone.model_validate(
        {
            "apiKeySecretRef": {"name": "pinecone", "key": "apiKey"},
            "indexes": [pod_declared().model_dump(by_alias=True)],
        }
    )
    (action,) = pinecone.plan.plan_pinecone(desired, pinecone.model.ObservedVectors({}), owner=OWNER).actions
    assert action.describe() == (
        "pinecone: create PineconeIndex payscope-rag (pod us-east-1-aws p1.x2 x1 shards x2 replicas,"
        " dimension 1536, cosine, deletion protection on)"
    )
