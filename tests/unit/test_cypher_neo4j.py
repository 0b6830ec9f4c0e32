"""The Cypher of the Neo4j provisioner: statements as text, quoting, and what may be dropped.

Pure: no server. Labels and properties reach Cypher only re-checked and backtick-quoted;
only ``payscope_`` names can ever be dropped.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from payscope_operator import errors
from payscope_operator.api import fields, stores_spec
from payscope_operator.backends import neo4j


def neo4j_spec(constraints: list[dict[str, Any]] = [], indexes: list[dict[str, Any]] = []) -> stores_spec.Neo4j:  # noqa: B006
    return stores_spec.Neo4j.model_validate(
        {
            "connection": {"uri": "bolt://neo4j:7687", "secretRef": {"name": "neo4j"}},
            "constraints": constraints,
            "indexes": indexes,
        }
    )


@pytest.mark.parametrize(
    ("entry", "kind", "cypher"),
    [
        (
            {"label": "Transaction", "properties": ["id"]},
            "constraint",
            "CREATE CONSTRAINT `payscope_transaction_id_unique` IF NOT EXISTS "
            "FOR (n:`Transaction`) REQUIRE n.`id` IS UNIQUE",
        ),
        (
            {"label": "Tx", "properties": ["bank_id", "ref"]},
            "constraint",
            "CREATE CONSTRAINT `payscope_tx_bank_id_ref_unique` IF NOT EXISTS "
            "FOR (n:`Tx`) REQUIRE (n.`bank_id`, n.`ref`) IS UNIQUE",
        ),
        (
            {"label": "Tx", "properties": ["id"], "type": "Exists"},
            "constraint",
            "CREATE CONSTRAINT `payscope_tx_id_exists` IF NOT EXISTS FOR (n:`Tx`) REQUIRE n.`id` IS NOT NULL",
        ),
        (
            {"label": "Tx", "properties": ["a", "b"], "type": "NodeKey"},
            "constraint",
            "CREATE CONSTRAINT `payscope_tx_a_b_key` IF NOT EXISTS FOR (n:`Tx`) REQUIRE (n.`a`, n.`b`) IS NODE KEY",
        ),
        (
            {"label": "Tx", "properties": ["a", "b"]},
            "index",
            "CREATE RANGE INDEX `payscope_tx_a_b_range` IF NOT EXISTS FOR (n:`Tx`) ON (n.`a`, n.`b`)",
        ),
        (
            {"label": "Tx", "properties": ["memo"], "type": "Text"},
            "index",
            "CREATE TEXT INDEX `payscope_tx_memo_text` IF NOT EXISTS FOR (n:`Tx`) ON (n.`memo`)",
        ),
    ],
)
def test_cypher_create(entry: dict[str, Any], kind: str, cypher: str) -> None:
    spec = neo4j_spec([entry]) if kind == "constraint" else neo4j_spec([], [entry])
    (obj,) = neo4j.model.desired_objects(spec)
    assert neo4j.cypher.cypher_create(obj) == cypher


def test_cypher_drop_and_duplicates() -> None:
    assert neo4j.cypher.cypher_drop("payscope_tx_id_unique", constraint=True) == (
        "DROP CONSTRAINT `payscope_tx_id_unique` IF EXISTS"
    )
    assert (
        neo4j.cypher.cypher_drop("payscope_tx_id_range", constraint=False)
        == "DROP INDEX `payscope_tx_id_range` IF EXISTS"
    )
    (obj,) = neo4j.model.desired_objects(neo4j_spec([{"label": "Tx", "properties": ["bank_id", "ref"]}]))
    assert neo4j.cypher.cypher_duplicates(obj) == (
        "MATCH (n:`Tx`) WHERE n.`bank_id` IS NOT NULL AND n.`ref` IS NOT NULL "
        "WITH n.`bank_id` AS k0, n.`ref` AS k1, count(*) AS copies WHERE copies > 1 RETURN count(*) AS groups"
    )


@pytest.mark.parametrize("name", ["", "1abc", "a b", "a`b", "x) DETACH DELETE n //", "a" * 65])
def test_quote_refuses_names_outside_the_pattern(name: str) -> None:
    assert not re.fullmatch(fields.NEO4J_NAME_PATTERN, name)
    with pytest.raises(errors.SpecInvalid):
        neo4j.cypher.quote(name)


def test_quote_backticks_valid_names() -> None:
    assert neo4j.cypher.quote("bank_id") == "`bank_id`"


@pytest.mark.parametrize("name", ["tx_id_unique", "payscope_Tx", "payscope_a`b", "payscope_"])
def test_only_managed_names_are_ever_dropped(name: str) -> None:
    with pytest.raises(errors.PermanentError):
        neo4j.cypher.cypher_drop(name, constraint=True)


def test_untenanted_nodes_are_counted_per_label_in_one_statement() -> None:
    assert neo4j.cypher.cypher_untenanted(["Account", "Tx"], "bank_id") == (
        "MATCH (n:`Account`) WHERE n.`bank_id` IS NULL RETURN 'Account' AS label, count(n) AS c"
        " UNION ALL MATCH (n:`Tx`) WHERE n.`bank_id` IS NULL RETURN 'Tx' AS label, count(n) AS c"
    )
    with pytest.raises(errors.SpecInvalid):
        neo4j.cypher.cypher_untenanted(["Tx'"], "bank_id")
