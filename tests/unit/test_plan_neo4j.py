"""Table tests of the Neo4j schema plan: managed names, and plan_neo4j over observed states.

Pure: no server. Each planning case gives a spec, an observed schema, and the actions,
object states and blockers the plan must hold.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from payscope_operator.api import status, stores_spec
from payscope_operator.backends import base, neo4j, ownership

COMMUNITY = neo4j.model.ServerInfo("5.26.30", "community")
ENTERPRISE = neo4j.model.ServerInfo("5.26.30", "enterprise")
READY = status.ProvisionState.READY
MISSING = status.ProvisionState.MISSING
DRIFTED = status.ProvisionState.DRIFTED
PENDING = status.ProvisionState.PENDING
FAILED = status.ProvisionState.FAILED
FOREIGN = status.ProvisionState.FOREIGN
OWNER = ownership.Owner("8c8c8c8c-0000-4000-8000-000000000001", "payscope", "prod")
OTHER = ownership.Owner("8c8c8c8c-0000-4000-8000-000000000002", "team-b", "psd")


def neo4j_spec(constraints: list[dict[str, Any]] = [], indexes: list[dict[str, Any]] = []) -> stores_spec.Neo4j:  # noqa: B006
    return stores_spec.Neo4j.model_validate(
        {
            "connection": {"uri": "bolt://neo4j:7687", "secretRef": {"name": "neo4j"}},
            "constraints": constraints,
            "indexes": indexes,
        }
    )


def unique(
    name: str, label: str, *props: str, kind: str = "UNIQUENESS", state: str = "ONLINE"
) -> neo4j.model.GraphState:
    """A constraint with its owned range index, as SHOW CONSTRAINTS / SHOW INDEXES list them."""
    return neo4j.model.GraphState(
        COMMUNITY,
        (neo4j.model.ObservedConstraint(1, name, kind, "NODE", (label,), props, name),),
        (neo4j.model.ObservedIndex(2, name, state, "RANGE", "NODE", (label,), props, name),),
    )


def index(name: str, label: str, *props: str, kind: str = "RANGE", state: str = "ONLINE") -> neo4j.model.ObservedIndex:
    return neo4j.model.ObservedIndex(3, name, state, kind, "NODE", (label,), props)


def merge(
    *states: neo4j.model.GraphState, server: neo4j.model.ServerInfo = COMMUNITY, **extra: Any
) -> neo4j.model.GraphState:
    return neo4j.model.GraphState(
        server,
        tuple(c for s in states for c in s.constraints),
        tuple(i for s in states for i in s.indexes),
        **extra,
    )


TX_ID = {"label": "Transaction", "properties": ["id"]}
TX_NAME = "payscope_transaction_id_unique"
ACC_RANGE = {"label": "Account", "properties": ["bank_id"]}
ACC_NAME = "payscope_account_bank_id_range"


@dataclass
class Case:
    id: str
    spec: stores_spec.Neo4j
    observed: neo4j.model.GraphState
    actions: list[tuple[str, str, bool]] = field(default_factory=list)  # (verb, target, drift)
    objects: list[tuple[str, status.ProvisionState, str]] = field(default_factory=list)  # (name, state, reason)
    blockers: list[tuple[str, bool]] = field(default_factory=list)  # (reason, permanent)
    marks: dict[str, ownership.Mark] | None = None  # None: every payscope_ object in place has OWNER's marker

    def state(self) -> neo4j.model.GraphState:
        if self.marks is not None:
            return dataclasses.replace(self.observed, marks=self.marks)
        names = [c.name for c in self.observed.constraints] + [i.name for i in self.observed.indexes]
        marks = {n: ownership.Mark.of(OWNER) for n in names if n.startswith(base.MANAGED_PREFIX)}
        return dataclasses.replace(self.observed, marks=marks)


CASES = [
    Case(
        "nothing declared, nothing planned",
        neo4j_spec(),
        merge(unique("payscope_other_x_unique", "Other", "x")),
    ),
    Case(
        "create from nothing, constraints before indexes",
        neo4j_spec([TX_ID], [ACC_RANGE, {"label": "Account", "properties": ["name"], "type": "Text"}]),
        merge(),
        [("create", TX_NAME, False), ("create", ACC_NAME, False), ("create", "payscope_account_name_text", False)],
        [(TX_NAME, MISSING, ""), (ACC_NAME, MISSING, ""), ("payscope_account_name_text", MISSING, "")],
    ),
    Case(
        "present under our names: nothing to do",
        neo4j_spec([TX_ID], [ACC_RANGE]),
        merge(
            unique(TX_NAME, "Transaction", "id"),
            neo4j.model.GraphState(COMMUNITY, (), (index(ACC_NAME, "Account", "bank_id"),)),
        ),
        [],
        [(TX_NAME, READY, ""), (ACC_NAME, READY, "")],
    ),
    Case(
        "an equivalent under a name not ours counts as present",
        neo4j_spec([TX_ID], [ACC_RANGE]),
        merge(
            unique("tx_id", "Transaction", "id"),
            neo4j.model.GraphState(COMMUNITY, (), (index("acc", "Account", "bank_id"),)),
        ),
        [],
        [(TX_NAME, FOREIGN, ""), (ACC_NAME, FOREIGN, "")],  # audited as present, never dropped nor marked
    ),
    Case(
        "an adopted equivalent under another name gets this resource's marker",
        neo4j_spec([{**TX_ID, "adopt": True}]),
        unique("tx_id", "Transaction", "id"),
        [("update", "tx_id", False)],
        [(TX_NAME, READY, "")],
    ),
    Case(
        "an earlier operator version's object without a marker is migrated",
        neo4j_spec([TX_ID]),
        unique(TX_NAME, "Transaction", "id"),
        [("update", TX_NAME, False)],
        [(TX_NAME, READY, "")],
        marks={},
    ),
    Case(
        "another resource's object is foreign and blocks",
        neo4j_spec([{**TX_ID, "adopt": True}]),
        unique(TX_NAME, "Transaction", "id"),
        [],
        [(TX_NAME, FOREIGN, "OwnedByAnotherResource")],
        [("OwnedByAnotherResource", True)],
        marks={TX_NAME: ownership.Mark.of(OTHER)},
    ),
    Case(
        "another resource's object under our name is never dropped, even when it drifted",
        neo4j_spec([TX_ID]),
        unique(TX_NAME, "Transaction", "other"),
        [],
        [(TX_NAME, FOREIGN, "OwnedByAnotherResource")],
        [("OwnedByAnotherResource", True)],
        marks={TX_NAME: ownership.Mark.of(OTHER)},
    ),
    Case(
        "a range index is covered by a constraint's own index",
        neo4j_spec([TX_ID], [{"label": "Transaction", "properties": ["id"]}]),
        unique(TX_NAME, "Transaction", "id"),
        [],
        [(TX_NAME, READY, ""), ("payscope_transaction_id_range", READY, "")],
    ),
    Case(
        "a range index that a planned constraint brings is not created twice",
        neo4j_spec([TX_ID], [{"label": "Transaction", "properties": ["id"]}]),
        merge(),
        [("create", TX_NAME, False)],
        [(TX_NAME, MISSING, ""), ("payscope_transaction_id_range", MISSING, "")],
    ),
    Case(
        "our name with another definition is dropped and recreated",
        neo4j_spec([TX_ID]),
        unique(TX_NAME, "Transaction", "other"),
        [("drop", TX_NAME, True), ("create", TX_NAME, True)],
        [(TX_NAME, DRIFTED, "")],
    ),
    Case(
        "our name with another kind of index is dropped and recreated",
        neo4j_spec([], [ACC_RANGE]),
        neo4j.model.GraphState(COMMUNITY, (), (index(ACC_NAME, "Account", "bank_id", kind="TEXT"),)),
        [("drop", ACC_NAME, True), ("create", ACC_NAME, True)],
        [(ACC_NAME, DRIFTED, "")],
    ),
    Case(
        "our name drifted while an equivalent exists elsewhere: drop only",
        neo4j_spec([TX_ID]),
        merge(unique(TX_NAME, "Transaction", "other"), unique("theirs", "Transaction", "id")),
        [("drop", TX_NAME, True)],
        [(TX_NAME, DRIFTED, "")],
    ),
    Case(
        "Exists and NodeKey on Community are Failed, never skipped",
        neo4j_spec(
            [
                {"label": "Account", "properties": ["iban"], "type": "Exists"},
                {"label": "Account", "properties": ["bank_id", "iban"], "type": "NodeKey"},
                TX_ID,
            ]
        ),
        merge(),
        [("create", TX_NAME, False)],
        [
            ("payscope_account_iban_exists", FAILED, "UnsupportedOnEdition"),
            ("payscope_account_bank_id_iban_key", FAILED, "UnsupportedOnEdition"),
            (TX_NAME, MISSING, ""),
        ],
        [("UnsupportedOnEdition", True), ("UnsupportedOnEdition", True)],
    ),
    Case(
        "Exists and NodeKey on Enterprise are created",
        neo4j_spec(
            [
                {"label": "Account", "properties": ["iban"], "type": "Exists"},
                {"label": "Account", "properties": ["bank_id", "iban"], "type": "NodeKey"},
            ]
        ),
        merge(server=ENTERPRISE),
        [("create", "payscope_account_iban_exists", False), ("create", "payscope_account_bank_id_iban_key", False)],
        [("payscope_account_iban_exists", MISSING, ""), ("payscope_account_bank_id_iban_key", MISSING, "")],
    ),
    Case(
        "duplicates block a missing uniqueness constraint",
        neo4j_spec([TX_ID, {"label": "Account", "properties": ["iban"]}]),
        merge(violations=frozenset({TX_NAME})),
        [("create", "payscope_account_iban_unique", False)],
        [(TX_NAME, FAILED, "ConstraintViolatedByData"), ("payscope_account_iban_unique", MISSING, "")],
        [("ConstraintViolatedByData", True)],
    ),
    Case(
        "a populating index is Pending",
        neo4j_spec([], [ACC_RANGE]),
        neo4j.model.GraphState(COMMUNITY, (), (index(ACC_NAME, "Account", "bank_id", state="POPULATING"),)),
        [],
        [(ACC_NAME, PENDING, "")],
    ),
    Case(
        "a failed index is Failed, with a retryable blocker",
        neo4j_spec([], [ACC_RANGE]),
        neo4j.model.GraphState(COMMUNITY, (), (index(ACC_NAME, "Account", "bank_id", state="FAILED"),)),
        [],
        [(ACC_NAME, FAILED, "ProvisioningFailed")],
        [("ProvisioningFailed", False)],
    ),
    Case(
        "a constraint whose own index is populating is Pending",
        neo4j_spec([TX_ID]),
        unique(TX_NAME, "Transaction", "id", state="POPULATING"),
        [],
        [(TX_NAME, PENDING, "")],
    ),
    Case(
        "our range index on the constraint's properties makes way for it",
        neo4j_spec([TX_ID], [{"label": "Transaction", "properties": ["id"]}]),
        neo4j.model.GraphState(COMMUNITY, (), (index("payscope_transaction_id_range", "Transaction", "id"),)),
        [("drop", "payscope_transaction_id_range", False), ("create", TX_NAME, False)],
        [(TX_NAME, MISSING, ""), ("payscope_transaction_id_range", READY, "")],
    ),
    Case(
        "a range index not ours on the constraint's properties blocks it",
        neo4j_spec([TX_ID]),
        neo4j.model.GraphState(COMMUNITY, (), (index("their_index", "Transaction", "id"),)),
        [],
        [(TX_NAME, FAILED, "ProvisioningFailed")],
        [("ProvisioningFailed", True)],
    ),
    Case(
        "a composite constraint is not matched by another property order",
        neo4j_spec([{"label": "Transaction", "properties": ["bank_id", "ref"]}]),
        unique("theirs", "Transaction", "ref", "bank_id"),
        [("create", "payscope_transaction_bank_id_ref_unique", False)],
        [("payscope_transaction_bank_id_ref_unique", MISSING, "")],
    ),
    Case(
        "the Cypher 25 type name of uniqueness is understood",
        neo4j_spec([TX_ID]),
        unique(TX_NAME, "Transaction", "id", kind="NODE_PROPERTY_UNIQUENESS"),
        [],
        [(TX_NAME, READY, "")],
    ),
    Case(
        "an equivalent relationship constraint does not count",
        neo4j_spec([TX_ID]),
        neo4j.model.GraphState(
            COMMUNITY,
            (
                neo4j.model.ObservedConstraint(
                    1, "rel", "RELATIONSHIP_UNIQUENESS", "RELATIONSHIP", ("Transaction",), ("id",)
                ),
            ),
        ),
        [("create", TX_NAME, False)],
        [(TX_NAME, MISSING, "")],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_plan_neo4j(case: Case) -> None:
    plan = neo4j.plan.plan_neo4j(case.spec, case.state(), owner=OWNER)
    assert plan.system == "neo4j"
    assert [(a.verb.value, a.target, a.drift) for a in plan.actions] == case.actions
    assert [(o.name, o.state, o.reason) for o in plan.objects] == case.objects
    assert [(b.reason, b.permanent) for b in plan.blockers] == case.blockers
    assert plan.converged == (not case.actions and not case.blockers and all(s is READY for _, s, _ in case.objects))


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_plan_drops_only_managed_names(case: Case) -> None:
    for action in neo4j.plan.plan_neo4j(case.spec, case.state(), owner=OWNER).actions:
        if action.verb is base.Verb.DROP:
            assert action.target.startswith(base.MANAGED_PREFIX)
            assert re.fullmatch(neo4j.model.MANAGED_NAME_PATTERN, action.target)


def test_messages_name_label_property_and_edition() -> None:
    spec = neo4j_spec([TX_ID, {"label": "Account", "properties": ["iban"], "type": "Exists"}])
    plan = neo4j.plan.plan_neo4j(spec, merge(violations=frozenset({TX_NAME})), owner=OWNER)
    violated, unsupported = plan.objects
    assert "label Transaction" in violated.message
    assert "property id" in violated.message
    assert "Enterprise" in unsupported.message
    assert "community 5.26.30" in unsupported.message
    assert all(b.message.startswith("constraint payscope_") for b in plan.blockers)


def test_actions_describe_the_object() -> None:
    plan = neo4j.plan.plan_neo4j(neo4j_spec([TX_ID]), merge(), owner=OWNER)
    (action,) = plan.actions
    assert action.describe() == (
        "neo4j: create constraint payscope_transaction_id_unique (uniqueness constraint on (:Transaction {id}))"
    )
    assert isinstance(action, neo4j.model.CreateSchema)


def test_an_invalid_label_slipped_past_validation_is_failed() -> None:
    bad = stores_spec.Neo4jConstraint.model_construct(
        label="A`) DETACH DELETE n //", properties=("id",), type=stores_spec.ConstraintType.UNIQUE
    )
    spec = neo4j_spec().model_copy(update={"constraints": (bad,)})
    plan = neo4j.plan.plan_neo4j(spec, merge(), owner=OWNER)
    assert not plan.actions
    assert [(o.state, o.reason) for o in plan.objects] == [(FAILED, "SpecInvalid")]


@pytest.mark.parametrize(
    ("type_", "label", "props", "expected"),
    [
        ("Unique", "Transaction", ["id"], "payscope_transaction_id_unique"),
        ("NodeKey", "Account", ["bank_id", "iban"], "payscope_account_bank_id_iban_key"),
        ("Exists", "Account", ["iban"], "payscope_account_iban_exists"),
        ("Range", "Account", ["bank_id"], "payscope_account_bank_id_range"),
        ("Text", "Account", ["name"], "payscope_account_name_text"),
    ],
)
def test_schema_names_are_readable(type_: str, label: str, props: list[str], expected: str) -> None:
    assert neo4j.model.schema_name(type_, label, props) == expected


def test_long_names_are_truncated_with_a_stable_hash() -> None:
    label, props = "L" * 64, ["p" * 64, "q" * 64]
    name = neo4j.model.schema_name("Unique", label, props)
    assert len(name) <= neo4j.model.MAX_NAME_LENGTH
    assert name.endswith("_unique")
    assert re.fullmatch(neo4j.model.MANAGED_NAME_PATTERN, name)
    assert name == neo4j.model.schema_name("Unique", label, props)
    assert name != neo4j.model.schema_name("Unique", label, ["p" * 64, "r" * 64])


def test_names_that_would_collide_get_a_hash() -> None:
    spec = neo4j_spec([{"label": "Account", "properties": ["id"]}, {"label": "ACCOUNT", "properties": ["id"]}])
    first, second = (obj.name for obj in neo4j.model.desired_objects(spec))
    assert first != second
    assert all(re.fullmatch(r"payscope_account_id_[0-9a-f]{10}_unique", name) for name in (first, second))
