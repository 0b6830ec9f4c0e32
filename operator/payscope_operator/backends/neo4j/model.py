"""What the Neo4j provisioner wants and sees: declared schema objects, observed schema, actions.

Why this module exists: the planner (``plan``), the provisioner (``provisioner``), the
record mapping (``cypher``) and the audit share these types. Every declared object gets
a deterministic name, ``payscope_<label>_<properties>_<kind>``, lower-cased, shortened
with a hash when long or when two declared objects would share it
(:func:`desired_objects`); ``GraphState`` is what ``dbms.components()``,
``SHOW CONSTRAINTS``, ``SHOW INDEXES``, the duplicate counts and the ownership marker
nodes said.

Ownership: Neo4j 5 Community keeps no metadata on a schema object (no comments; OPTIONS
accepts only ``indexProvider`` and ``indexConfig``, whose keys are validated) and cannot
rename one, so the owner of each managed object is recorded beside it, in the same
database, as one node ``(:PayScopeOwnership {object, uid, resource})`` per object
(:data:`OWNERSHIP_LABEL`). A ``payscope_`` object without a marker was created by an
earlier operator version; any other object without one is foreign.

What it must not do: talk to Neo4j, build Cypher, or decide what to change.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from payscope_operator.api import fields, stores_spec
from payscope_operator.backends import base, ownership

SYSTEM = "neo4j"
OWNERSHIP_LABEL = "PayScopeOwnership"
"""Label of the marker nodes recording which resource owns each managed schema object."""
MAX_NAME_LENGTH = 96
MANAGED_NAME_PATTERN = r"^payscope_[a-z0-9_]{1,96}$"

_NAMING: Mapping[str, tuple[str, str]] = {  # type -> (name suffix, words)
    "Unique": ("unique", "uniqueness constraint"),
    "Exists": ("exists", "existence constraint"),
    "NodeKey": ("key", "node key constraint"),
    "Range": ("range", "range index"),
    "Text": ("text", "text index"),
}
ENTERPRISE_ONLY = frozenset({stores_spec.ConstraintType.EXISTS, stores_spec.ConstraintType.NODE_KEY})
"""Constraint types Neo4j Community refuses."""
OWNS_RANGE_INDEX = frozenset({stores_spec.ConstraintType.UNIQUE, stores_spec.ConstraintType.NODE_KEY})
"""Constraint types that bring their own range index (and can be blocked by duplicate data)."""


class Kind(StrEnum):
    """Kind of a schema object, as listed in ``status.provisioned.neo4j``."""

    CONSTRAINT = "Constraint"
    INDEX = "Index"


# ---- desired objects and their names --------------------------------------------------------


@dataclass(frozen=True)
class SchemaObject:
    """One declared constraint or index, with its managed name."""

    kind: Kind
    type: str  # a stores_spec.ConstraintType or stores_spec.IndexType value
    label: str
    properties: tuple[str, ...]
    name: str
    adopt: bool = False  # the spec entry takes over an equivalent object found in place

    def describe(self) -> str:
        return f"{_NAMING[self.type][1]} on (:{self.label} {{{', '.join(self.properties)}}})"

    @property
    def valid(self) -> bool:
        return all(re.fullmatch(fields.NEO4J_NAME_PATTERN, name) for name in (self.label, *self.properties))


def schema_name(type_: str, label: str, properties: Iterable[str], *, hashed: bool = False) -> str:
    """The deterministic managed name of a schema object: ``payscope_<label>_<props>_<kind>``."""
    props = tuple(properties)
    suffix = _NAMING[type_][0]
    stem = re.sub(r"[^a-z0-9_]", "_", "_".join((label, *props)).lower())
    room = MAX_NAME_LENGTH - len(base.MANAGED_PREFIX) - len(suffix) - 1
    if not hashed and len(stem) <= room:
        return f"{base.MANAGED_PREFIX}{stem}_{suffix}"
    digest = hashlib.sha256("\x1f".join((type_, label, *props)).encode()).hexdigest()[:10]
    stem = stem[: room - len(digest) - 1].rstrip("_")
    return f"{base.MANAGED_PREFIX}{stem}_{digest}_{suffix}"


def desired_objects(desired: stores_spec.Neo4j) -> tuple[SchemaObject, ...]:
    """Declared constraints, then indexes, named; names that would collide get a hash."""
    entries = [(Kind.CONSTRAINT, c.type.value, c.label, tuple(c.properties), c.adopt) for c in desired.constraints]
    entries += [(Kind.INDEX, i.type.value, i.label, tuple(i.properties), i.adopt) for i in desired.indexes]
    plain = Counter(schema_name(type_, label, props) for _, type_, label, props, _ in entries)
    return tuple(
        SchemaObject(kind, type_, label, props, schema_name(type_, label, props, hashed=plain[n] > 1), adopt)
        for kind, type_, label, props, adopt in entries
        for n in (schema_name(type_, label, props),)
    )


# ---- observed state -------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerInfo:
    """What ``dbms.components()`` reports."""

    version: str
    edition: str

    @property
    def enterprise(self) -> bool:
        return self.edition.lower() != "community"


@dataclass(frozen=True)
class ObservedConstraint:
    """A row of ``SHOW CONSTRAINTS``."""

    id: int
    name: str
    type: str
    entity_type: str
    labels: tuple[str, ...]
    properties: tuple[str, ...]
    owned_index: str | None = None


@dataclass(frozen=True)
class ObservedIndex:
    """A row of ``SHOW INDEXES``."""

    id: int
    name: str
    state: str
    type: str
    entity_type: str
    labels: tuple[str, ...]
    properties: tuple[str, ...]
    owning_constraint: str | None = None


@dataclass(frozen=True)
class GraphState:
    """The schema of one database, plus what the plan needs to know about its data.

    ``violations`` holds the names of declared, missing uniqueness constraints whose
    label already has nodes sharing the property values; ``marks`` what the marker
    nodes record, by object name.
    """

    server: ServerInfo
    constraints: tuple[ObservedConstraint, ...] = ()
    indexes: tuple[ObservedIndex, ...] = ()
    violations: frozenset[str] = frozenset()
    marks: Mapping[str, ownership.Mark] = field(default_factory=dict)

    def mark_of(self, name: str) -> ownership.Mark:
        """Who owns the object ``name``: its marker node, else an earlier operator's (``payscope_``) or nobody."""
        return self.marks.get(name) or ownership.Mark(legacy=name.startswith(base.MANAGED_PREFIX))


@dataclass(frozen=True, kw_only=True)
class CreateSchema(base.Action):
    """Create one declared constraint or index (``IF NOT EXISTS``)."""

    object: SchemaObject


@dataclass(frozen=True, kw_only=True)
class MarkSchema(base.Action):
    """Record the owning resource of an existing object (its marker node): migration or adoption."""


@dataclass(frozen=True, kw_only=True)
class DropSchema(base.Action):
    """Drop one managed constraint or index (``IF EXISTS``); never one without our prefix."""

    constraint: bool
