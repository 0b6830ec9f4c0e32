"""The test Neo4j is real: a uniqueness constraint is listed and refuses a duplicate node."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import neo4j
import pytest
from neo4j import GraphDatabase
from neo4j.exceptions import AuthError, ConstraintError

from tests.integration import sockets
from tests.testenv import environment, process


@pytest.fixture(scope="module")
def neo4j_server(testenv: dict[str, str]) -> process.Running:
    """The environment's neo4j server (started once per session by the ``testenv`` fixture)."""
    return environment.running("neo4j")


@pytest.fixture
def driver(neo4j_server: process.Running) -> Iterator[neo4j.Driver]:
    env = neo4j_server.env
    auth = (env["PAYSCOPE_NEO4J_USER"], env["PAYSCOPE_NEO4J_PASSWORD"])
    with GraphDatabase.driver(env["PAYSCOPE_NEO4J_URI"], auth=auth, connection_timeout=5) as drv:
        yield drv


def test_uniqueness_constraint_is_listed_and_refuses_a_duplicate(driver: neo4j.Driver) -> None:
    label = "T" + uuid.uuid4().hex[:8] + "Account"
    name = f"{label.lower()}_iban_unique"
    driver.execute_query(f"CREATE CONSTRAINT {name} IF NOT EXISTS FOR (n:{label}) REQUIRE n.iban IS UNIQUE")
    try:
        records, _, _ = driver.execute_query(
            "SHOW CONSTRAINTS YIELD name, type, entityType, labelsOrTypes, properties WHERE name = $name",
            name=name,
        )
        assert [record.data() for record in records] == [
            {
                "name": name,
                "type": "UNIQUENESS",
                "entityType": "NODE",
                "labelsOrTypes": [label],
                "properties": ["iban"],
            }
        ]
        driver.execute_query(f"CREATE (:{label} {{iban: 'DE001'}})")
        with pytest.raises(ConstraintError):
            driver.execute_query(f"CREATE (:{label} {{iban: 'DE001'}})")
        records, _, _ = driver.execute_query(f"MATCH (n:{label}) RETURN count(n) AS nodes")
        assert records[0]["nodes"] == 1
    finally:
        driver.execute_query(f"MATCH (n:{label}) DETACH DELETE n")
        driver.execute_query(f"DROP CONSTRAINT {name} IF EXISTS")


def test_unknown_credentials_are_refused(neo4j_server: process.Running) -> None:
    uri = neo4j_server.env["PAYSCOPE_NEO4J_URI"]
    with (
        GraphDatabase.driver(uri, auth=("nobody", "not-the-password"), connection_timeout=5) as drv,
        pytest.raises(AuthError),
    ):
        drv.verify_connectivity()


def test_the_server_listens_on_loopback_bolt_only(neo4j_server: process.Running) -> None:
    bolt = neo4j_server.env["PAYSCOPE_NEO4J_URI"].removeprefix("bolt://")
    assert sockets.listening(neo4j_server.pids[0]) == [bolt]
