"""Pure half of the Neo4j provisioner: desired objects, their names, observed state, the plan.

Why this module exists: deciding what one database's schema needs is a pure function of
``spec.neo4j`` and of what ``graph`` observed (``dbms.components()``, ``SHOW CONSTRAINTS``,
``SHOW INDEXES``, duplicate counts), so it is table-tested without a server.

Rules it follows:

- Every object gets a deterministic name, ``payscope_<label>_<properties>_<kind>``,
  lower-cased, shortened with a hash when long or when two declared objects would
  share it (:func:`desired_objects`). A declared object is present when an object
  of that name has its definition, or when any object, whatever its name, has it
  (Neo4j refuses an equivalent schema rule twice, so no duplicate is ever made).
- An object under our name with another definition is drift: it is dropped and
  recreated. A declared object that the provisioner saw or created and that has
  gone is drift too (``GraphState.known``); otherwise it is simply missing.
- Exists and NodeKey constraints need Enterprise: on Community they are Failed with
  ``UnsupportedOnEdition`` and a permanent blocker, never skipped in silence.
  Existing duplicates block a uniqueness constraint (``ConstraintViolatedByData``).

What it must not do: talk to Neo4j, build Cypher (``graph`` renders and quotes every
statement), plan a drop of anything whose name does not start with ``payscope_`` or that
the spec does not declare, or name a data value in a message (it may be personal data).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from payscope_operator.api import conditions, fields, status, stores_spec
from payscope_operator.backends import base

SYSTEM = "neo4j"
MAX_NAME_LENGTH = 96
MANAGED_NAME_PATTERN = r"^payscope_[a-z0-9_]{1,96}$"

_Reason = conditions.Reason
_State = status.ProvisionState
_CONSTRAINT_TYPES: Mapping[str, frozenset[str]] = {
    stores_spec.ConstraintType.UNIQUE: frozenset({"UNIQUENESS", "NODE_PROPERTY_UNIQUENESS"}),
    stores_spec.ConstraintType.EXISTS: frozenset({"NODE_PROPERTY_EXISTENCE"}),
    stores_spec.ConstraintType.NODE_KEY: frozenset({"NODE_KEY"}),
}
_INDEX_TYPES: Mapping[str, frozenset[str]] = {
    stores_spec.IndexType.RANGE: frozenset({"RANGE"}),
    stores_spec.IndexType.TEXT: frozenset({"TEXT"}),
}
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
    entries = [(Kind.CONSTRAINT, c.type.value, c.label, tuple(c.properties)) for c in desired.constraints]
    entries += [(Kind.INDEX, i.type.value, i.label, tuple(i.properties)) for i in desired.indexes]
    plain = Counter(schema_name(type_, label, props) for _, type_, label, props in entries)
    return tuple(
        SchemaObject(kind, type_, label, props, schema_name(type_, label, props, hashed=plain[n] > 1))
        for kind, type_, label, props in entries
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
    label already has nodes sharing the property values; ``known`` the managed names
    this provisioner has seen in place or created (one now missing was dropped).
    """

    server: ServerInfo
    constraints: tuple[ObservedConstraint, ...] = ()
    indexes: tuple[ObservedIndex, ...] = ()
    violations: frozenset[str] = frozenset()
    known: frozenset[str] = frozenset()


def _matches(obj: SchemaObject, found: ObservedConstraint | ObservedIndex) -> bool:
    types = _CONSTRAINT_TYPES if obj.kind is Kind.CONSTRAINT else _INDEX_TYPES
    return (
        isinstance(found, ObservedConstraint) == (obj.kind is Kind.CONSTRAINT)
        and found.type in types[obj.type]
        and found.entity_type == "NODE"
        and found.labels == (obj.label,)
        and found.properties == obj.properties
    )


def find_occupant(name: str, state: GraphState) -> ObservedConstraint | ObservedIndex | None:
    """The constraint, or free-standing index, holding a name (they share one namespace)."""
    for constraint in state.constraints:
        if constraint.name == name:
            return constraint
    for index in state.indexes:
        if index.name == name and index.owning_constraint is None:
            return index
    return None


def find_present(obj: SchemaObject, state: GraphState) -> ObservedConstraint | ObservedIndex | None:
    """The object in place for a declared one: ours by name first, else any equivalent."""
    candidates = state.constraints if obj.kind is Kind.CONSTRAINT else state.indexes
    matching = [found for found in candidates if _matches(obj, found)]
    ours = [found for found in matching if found.name == obj.name]
    return next(iter(ours or matching), None)


# ---- the plan (pure) ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CreateSchema(base.Action):
    """Create one declared constraint or index (``IF NOT EXISTS``)."""

    object: SchemaObject


@dataclass(frozen=True, kw_only=True)
class DropSchema(base.Action):
    """Drop one managed constraint or index (``IF EXISTS``); never one without our prefix."""

    constraint: bool


@dataclass
class _Builder:
    actions: list[base.Action] = field(default_factory=list)
    objects: list[base.ObjectState] = field(default_factory=list)
    blockers: list[base.Blocker] = field(default_factory=list)

    def fail(self, obj: SchemaObject, reason: _Reason, message: str, *, permanent: bool = True) -> None:
        self.objects.append(base.ObjectState(obj.kind, obj.name, _State.FAILED, reason, message))
        self.blockers.append(base.Blocker(reason, f"{obj.kind.lower()} {obj.name}: {message}", permanent))

    def create(self, obj: SchemaObject, state: _State, *, drift: bool, why: str = "") -> None:
        detail = f"{obj.describe()}; {why}" if why else obj.describe()
        self.actions.append(
            CreateSchema(SYSTEM, base.Verb.CREATE, obj.kind.lower(), obj.name, detail, drift, object=obj)
        )
        self.objects.append(base.ObjectState(obj.kind, obj.name, state, message=why))

    def drop(self, found: ObservedConstraint | ObservedIndex, why: str, *, drift: bool) -> None:
        constraint = isinstance(found, ObservedConstraint)
        kind = "constraint" if constraint else "index"
        self.actions.append(DropSchema(SYSTEM, base.Verb.DROP, kind, found.name, why, drift, constraint=constraint))


def _plan_present(
    obj: SchemaObject, found: ObservedConstraint | ObservedIndex, state: GraphState, out: _Builder
) -> None:
    """Ready, or Pending/Failed by the state of the (owned) index."""
    index_name = found.owned_index if isinstance(found, ObservedConstraint) else found.name
    index = next((i for i in state.indexes if i.name == index_name), None) if index_name else None
    where = "" if found.name == obj.name else f"present as {found.name} (not created by the operator)"
    if index is None or index.state == "ONLINE":
        out.objects.append(base.ObjectState(obj.kind, obj.name, _State.READY, message=where))
    elif index.state == "FAILED":
        message = f"index {index.name} failed to populate; drop it to have it recreated"
        out.fail(obj, _Reason.PROVISIONING_FAILED, message, permanent=False)
    else:
        message = f"index {index.name} is {index.state}"
        out.objects.append(base.ObjectState(obj.kind, obj.name, _State.PENDING, message=message))


def _covering_create(obj: SchemaObject, out: _Builder) -> str | None:
    """The constraint planned in this pass whose own index will be this range index."""
    for action in out.actions:
        if isinstance(action, CreateSchema) and action.object.type in OWNS_RANGE_INDEX:
            planned = action.object
            if (planned.label, planned.properties) == (obj.label, obj.properties):
                return planned.name
    return None


def _plan_missing(obj: SchemaObject, state: GraphState, out: _Builder) -> None:
    drift = obj.name in state.known
    why = "dropped out of band" if drift else ""
    covering = _covering_create(obj, out) if obj.type == stores_spec.IndexType.RANGE else None
    if covering is not None:
        out.objects.append(base.ObjectState(obj.kind, obj.name, _State.MISSING, message=f"comes with {covering}"))
        return
    if obj.kind is Kind.CONSTRAINT and obj.name in state.violations:
        message = f"{violation_message(obj)}; remove the duplicates and the constraint is created on the next pass"
        out.fail(obj, _Reason.CONSTRAINT_VIOLATED_BY_DATA, message)
        return
    if obj.kind is Kind.CONSTRAINT and obj.type in OWNS_RANGE_INDEX:
        probe = SchemaObject(Kind.INDEX, stores_spec.IndexType.RANGE, obj.label, obj.properties, obj.name)
        blocking = [i for i in state.indexes if i.owning_constraint is None and _matches(probe, i)]
        for index in blocking:
            if not index.name.startswith(base.MANAGED_PREFIX):
                message = f"range index {index.name}, not created by the operator, covers {obj.describe()}; "
                out.fail(obj, _Reason.PROVISIONING_FAILED, message + "Neo4j adds the constraint once it is dropped")
                return
        for index in blocking:
            out.drop(index, f"its constraint {obj.name} brings its own index", drift=False)
    out.create(obj, _State.MISSING, drift=drift, why=why)


def violation_message(obj: SchemaObject) -> str:
    """Names label and properties, never the offending values (they may be personal data)."""
    noun = "property" if len(obj.properties) == 1 else "properties"
    return f"existing nodes with label {obj.label} share values of {noun} {', '.join(obj.properties)}"


def _plan_object(obj: SchemaObject, state: GraphState, out: _Builder) -> None:
    if not obj.valid:
        out.fail(obj, _Reason.SPEC_INVALID, f"label or property name does not match {fields.NEO4J_NAME_PATTERN}")
        return
    if obj.type in ENTERPRISE_ONLY and not state.server.enterprise:
        server = f"{state.server.edition} {state.server.version}"
        message = f"a {obj.describe()} needs Neo4j Enterprise; the server is Neo4j {server}"
        out.fail(obj, _Reason.UNSUPPORTED_ON_EDITION, message)
        return
    present = find_present(obj, state)
    occupant = find_occupant(obj.name, state)
    if occupant is not None and (present is None or present.name != obj.name):
        # Our name holds another definition: drop it; recreate unless an equivalent exists elsewhere.
        out.drop(occupant, f"holds another definition than {obj.describe()}", drift=True)
        if present is None:
            out.create(obj, _State.DRIFTED, drift=True, why="recreated after an out-of-band change")
            return
        out.objects.append(base.ObjectState(obj.kind, obj.name, _State.DRIFTED, message=f"present as {present.name}"))
        return
    if present is not None:
        _plan_present(obj, present, state, out)
        return
    _plan_missing(obj, state, out)


def plan_graph(desired: stores_spec.Neo4j, observed: GraphState) -> base.Plan:
    """Compare the declared schema with the observed one: constraints first, drops before creates."""
    out = _Builder()
    for obj in desired_objects(desired):
        _plan_object(obj, observed, out)
    return base.Plan(SYSTEM, tuple(out.actions), tuple(out.objects), tuple(out.blockers))
