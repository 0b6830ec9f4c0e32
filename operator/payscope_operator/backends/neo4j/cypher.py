"""The Cypher of the Neo4j provisioner: every statement it sends, and the records they return.

Why this module exists: it keeps every piece of Cypher text of ``neo4j`` in one place
where it can be read and unit-tested without a server, and turns the records of
``dbms.components()``, ``SHOW CONSTRAINTS`` and ``SHOW INDEXES`` into ``model`` types.
Labels and property names are re-checked against ``fields.NEO4J_NAME_PATTERN`` and
backtick-quoted (:func:`quote`); managed names against ``model.MANAGED_NAME_PATTERN``
(:func:`quote_managed`), so a statement can only ever drop a ``payscope_`` object.

What it must not do: talk to Neo4j, decide what to change, or put anything from a spec
into a statement except through :func:`quote`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import neo4j

from payscope_operator import errors
from payscope_operator.api import fields, stores_spec
from payscope_operator.backends import ownership
from payscope_operator.backends.neo4j import model

SHOW_CONSTRAINTS = "SHOW CONSTRAINTS YIELD id, name, type, entityType, labelsOrTypes, properties, ownedIndex"
SHOW_INDEXES = "SHOW INDEXES YIELD id, name, state, type, entityType, labelsOrTypes, properties, owningConstraint"
COMPONENTS = "CALL dbms.components() YIELD name, versions, edition RETURN name, versions, edition"
_MARKER = f"(m:`{model.OWNERSHIP_LABEL}`"
READ_MARKS = (
    f"MATCH {_MARKER}) WHERE m.object IN $names RETURN m.object AS object, m.uid AS uid, m.resource AS resource"
)
"""The ownership marker nodes of the named objects ($names)."""
WRITE_MARK = (
    f"MERGE {_MARKER} {{object: $name}}) WITH m WHERE m.uid IS NULL OR m.uid = $uid OR m.resource = $resource"
    " SET m.uid = $uid, m.resource = $resource"
)
"""Record $uid and $resource as the owner of $name, unless another resource already is (no-op then)."""
DELETE_MARK = f"MATCH {_MARKER} {{object: $name}}) WHERE m.uid = $uid DELETE m"
"""Forget the marker of an object this resource dropped."""


def marks_of(records: Iterable[neo4j.Record]) -> dict[str, ownership.Mark]:
    """The owner each object's marker records. Two markers that disagree (two resources raced to
    claim it) make it nobody's: foreign to both, so neither changes it."""
    found: dict[str, ownership.Mark] = {}
    disputed: set[str] = set()
    for record in records:
        name, mark = str(record["object"]), ownership.Mark(_optional(record["uid"]), _optional(record["resource"]))
        if found.setdefault(name, mark) != mark:
            disputed.add(name)
    return {name: ownership.Mark() if name in disputed else mark for name, mark in found.items()}


def quote(name: str) -> str:
    """A label or property name, re-checked and backtick-quoted."""
    if not re.fullmatch(fields.NEO4J_NAME_PATTERN, name):
        raise errors.SpecInvalid(f"{name!r} is not a valid Neo4j label or property name")
    return "`" + name.replace("`", "``") + "`"


def _string_literal(name: str) -> str:
    """A validated name as a Cypher string literal (names cannot hold quotes: re-checked)."""
    return "'" + quote(name)[1:-1] + "'"


def quote_managed(name: str) -> str:
    """A managed schema name, re-checked and backtick-quoted."""
    if not re.fullmatch(model.MANAGED_NAME_PATTERN, name):
        raise errors.PermanentError(f"{name!r} is not a name this operator manages")
    return f"`{name}`"


def cypher_create(obj: model.SchemaObject) -> str:
    """The ``CREATE ... IF NOT EXISTS`` statement of a declared object."""
    name, label = quote_managed(obj.name), quote(obj.label)
    props = [f"n.{quote(prop)}" for prop in obj.properties]
    target = props[0] if len(props) == 1 else f"({', '.join(props)})"
    head = f"CREATE CONSTRAINT {name} IF NOT EXISTS FOR (n:{label}) REQUIRE {target}"
    if obj.type == stores_spec.ConstraintType.UNIQUE:
        return f"{head} IS UNIQUE"
    if obj.type == stores_spec.ConstraintType.EXISTS:
        return f"{head} IS NOT NULL"
    if obj.type == stores_spec.ConstraintType.NODE_KEY:
        return f"{head} IS NODE KEY"
    kind = "RANGE" if obj.type == stores_spec.IndexType.RANGE else "TEXT"
    return f"CREATE {kind} INDEX {name} IF NOT EXISTS FOR (n:{label}) ON ({', '.join(props)})"


def cypher_drop(name: str, *, constraint: bool) -> str:
    return f"DROP {'CONSTRAINT' if constraint else 'INDEX'} {quote_managed(name)} IF EXISTS"


def cypher_duplicates(obj: model.SchemaObject) -> str:
    """Counts groups of nodes sharing the values a uniqueness constraint would cover."""
    props = [f"n.{quote(prop)}" for prop in obj.properties]
    present = " AND ".join(f"{prop} IS NOT NULL" for prop in props)
    keys = ", ".join(f"{prop} AS k{i}" for i, prop in enumerate(props))
    return (
        f"MATCH (n:{quote(obj.label)}) WHERE {present} "
        f"WITH {keys}, count(*) AS copies WHERE copies > 1 RETURN count(*) AS groups"
    )


def cypher_untenanted(labels: Iterable[str], tenant_key: str) -> str:
    """Counts, per label, the nodes lacking ``tenant_key``: one statement for all labels (read-only)."""
    parts = [
        f"MATCH (n:{quote(label)}) WHERE n.{quote(tenant_key)} IS NULL"
        f" RETURN {_string_literal(label)} AS label, count(n) AS c"
        for label in labels
    ]
    return " UNION ALL ".join(parts)


def _strings(value: Any) -> tuple[str, ...]:
    return () if value is None else tuple(str(item) for item in value)


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)


def server_of(records: Iterable[neo4j.Record]) -> model.ServerInfo | None:
    """Version and edition of the kernel, from :data:`COMPONENTS`; None when it is not listed."""
    for record in records:
        if record["name"] == "Neo4j Kernel":
            return model.ServerInfo(next(iter(_strings(record["versions"])), "unknown"), str(record["edition"]))
    return None


def constraint_of(r: neo4j.Record) -> model.ObservedConstraint:
    """One record of :data:`SHOW_CONSTRAINTS`."""
    return model.ObservedConstraint(
        int(r["id"]), str(r["name"]), str(r["type"]), str(r["entityType"]),
        _strings(r["labelsOrTypes"]), _strings(r["properties"]), _optional(r["ownedIndex"]),
    )  # fmt: skip


def index_of(r: neo4j.Record) -> model.ObservedIndex:
    """One record of :data:`SHOW_INDEXES`."""
    return model.ObservedIndex(
        int(r["id"]), str(r["name"]), str(r["state"]), str(r["type"]), str(r["entityType"]),
        _strings(r["labelsOrTypes"]), _strings(r["properties"]), _optional(r["owningConstraint"]),
    )  # fmt: skip
