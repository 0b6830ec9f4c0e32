"""The pure planner of Neo4j: what one database's schema needs, from the spec and what was observed.

Why this module exists: deciding what a database's schema needs is a pure function of
``spec.neo4j`` and of what ``provisioner`` observed (``dbms.components()``,
``SHOW CONSTRAINTS``, ``SHOW INDEXES``, duplicate counts), so it is table-tested without
a server.

Rules it follows:

- A declared object is present when an object of its managed name has its definition,
  or when any object, whatever its name, has it (Neo4j refuses an equivalent schema
  rule twice, so no duplicate is ever made).
- An object under our name with another definition is drift: it is dropped and
  recreated. A declared object that is missing is planned as missing; when the last
  status listed it Ready, ``reconcile.managed`` marks its recreation as drift.
- Exists and NodeKey constraints need Enterprise: on Community they are Failed with
  ``UnsupportedOnEdition`` and a permanent blocker, never skipped in silence.
  Existing duplicates block a uniqueness constraint (``ConstraintViolatedByData``).
- Ownership (``GraphState.mark_of``): an object in place is changed only when its marker
  node names this resource, or when it is a ``payscope_`` object of an earlier operator
  version (migrated: the marker is written) or declared ``adopt: true``. Anything else
  is Foreign: audited, never dropped or replaced; another resource's also blocks
  (``OwnedByAnotherResource``).

What it must not do: talk to Neo4j, build Cypher (``cypher`` renders and quotes every
statement), plan a drop of anything whose name does not start with ``payscope_`` or that
the spec does not declare, or name a data value in a message (it may be personal data).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from payscope_operator.api import conditions, fields, status, stores_spec
from payscope_operator.backends import base, ownership, planning
from payscope_operator.backends.neo4j import model

_Reason = conditions.Reason
_State = status.ProvisionState
_Found = model.ObservedConstraint | model.ObservedIndex
_CONSTRAINT_TYPES: Mapping[str, frozenset[str]] = {
    stores_spec.ConstraintType.UNIQUE: frozenset({"UNIQUENESS", "NODE_PROPERTY_UNIQUENESS"}),
    stores_spec.ConstraintType.EXISTS: frozenset({"NODE_PROPERTY_EXISTENCE"}),
    stores_spec.ConstraintType.NODE_KEY: frozenset({"NODE_KEY"}),
}
_INDEX_TYPES: Mapping[str, frozenset[str]] = {
    stores_spec.IndexType.RANGE: frozenset({"RANGE"}),
    stores_spec.IndexType.TEXT: frozenset({"TEXT"}),
}


def matches(obj: model.SchemaObject, found: _Found) -> bool:
    types = _CONSTRAINT_TYPES if obj.kind is model.Kind.CONSTRAINT else _INDEX_TYPES
    return (
        isinstance(found, model.ObservedConstraint) == (obj.kind is model.Kind.CONSTRAINT)
        and found.type in types[obj.type]
        and found.entity_type == "NODE"
        and found.labels == (obj.label,)
        and found.properties == obj.properties
    )


def find_occupant(name: str, state: model.GraphState) -> _Found | None:
    """The constraint, or free-standing index, holding a name (they share one namespace)."""
    for constraint in state.constraints:
        if constraint.name == name:
            return constraint
    for index in state.indexes:
        if index.name == name and index.owning_constraint is None:
            return index
    return None


def find_present(obj: model.SchemaObject, state: model.GraphState) -> _Found | None:
    """The object in place for a declared one: ours by name first, else any equivalent."""
    candidates = state.constraints if obj.kind is model.Kind.CONSTRAINT else state.indexes
    matching = [found for found in candidates if matches(obj, found)]
    ours = [found for found in matching if found.name == obj.name]
    return next(iter(ours or matching), None)


def _fail(
    out: planning.PlanBuilder, obj: model.SchemaObject, reason: _Reason, message: str, *, permanent: bool = True
) -> None:
    out.fail(
        [(obj.kind, obj.name)],
        reason,
        message,
        permanent=permanent,
        blocker=f"{obj.kind.lower()} {obj.name}: {message}",
    )


def _create(out: planning.PlanBuilder, obj: model.SchemaObject, state: _State, *, drift: bool, why: str = "") -> None:
    detail = f"{obj.describe()}; {why}" if why else obj.describe()
    out.act(model.CreateSchema(model.SYSTEM, base.Verb.CREATE, obj.kind.lower(), obj.name, detail, drift, object=obj))
    out.state(obj.kind, obj.name, state, why)


def _drop(out: planning.PlanBuilder, found: _Found, why: str, *, drift: bool) -> None:
    constraint = isinstance(found, model.ObservedConstraint)
    kind = "constraint" if constraint else "index"
    out.act(model.DropSchema(model.SYSTEM, base.Verb.DROP, kind, found.name, why, drift, constraint=constraint))


def _index_of(found: _Found, state: model.GraphState) -> model.ObservedIndex | None:
    """The index behind an object: itself, or a constraint's own index."""
    index_name = found.owned_index if isinstance(found, model.ObservedConstraint) else found.name
    return next((i for i in state.indexes if i.name == index_name), None) if index_name else None


def _mark(out: planning.PlanBuilder, obj: model.SchemaObject, found: _Found, verdict: ownership.Verdict) -> None:
    out.act(
        model.MarkSchema(
            model.SYSTEM, base.Verb.UPDATE, f"{obj.kind.lower()}Ownership", found.name, verdict.message, False
        )
    )


def _plan_present(obj: model.SchemaObject, found: _Found, state: model.GraphState, out: planning.PlanBuilder) -> None:
    """Ready, or Pending/Failed by the state of the (owned) index."""
    index = _index_of(found, state)
    where = "" if found.name == obj.name else f"present as {found.name}"
    if index is None or index.state == "ONLINE":
        out.state(obj.kind, obj.name, _State.READY, where)
    elif index.state == "FAILED":
        message = f"index {index.name} failed to populate; drop it to have it recreated"
        _fail(out, obj, _Reason.PROVISIONING_FAILED, message, permanent=False)
    else:
        message = f"index {index.name} is {index.state}"
        out.state(obj.kind, obj.name, _State.PENDING, message)


def _covering_create(obj: model.SchemaObject, out: planning.PlanBuilder) -> str | None:
    """The constraint planned in this pass whose own index will be this range index."""
    for action in out.actions:
        if isinstance(action, model.CreateSchema) and action.object.type in model.OWNS_RANGE_INDEX:
            planned = action.object
            if (planned.label, planned.properties) == (obj.label, obj.properties):
                return planned.name
    return None


def _plan_missing(
    obj: model.SchemaObject, state: model.GraphState, out: planning.PlanBuilder, owner: ownership.Owner
) -> None:
    covering = _covering_create(obj, out) if obj.type == stores_spec.IndexType.RANGE else None
    if covering is not None:
        out.state(obj.kind, obj.name, _State.MISSING, f"comes with {covering}")
        return
    if obj.kind is model.Kind.CONSTRAINT and obj.name in state.violations:
        message = f"{violation_message(obj)}; remove the duplicates and the constraint is created on the next pass"
        _fail(out, obj, _Reason.CONSTRAINT_VIOLATED_BY_DATA, message)
        return
    if obj.kind is model.Kind.CONSTRAINT and obj.type in model.OWNS_RANGE_INDEX:
        probe = model.SchemaObject(model.Kind.INDEX, stores_spec.IndexType.RANGE, obj.label, obj.properties, obj.name)
        blocking = [i for i in state.indexes if i.owning_constraint is None and matches(probe, i)]
        for index in blocking:
            if not ownership.judge(owner, state.mark_of(index.name), adopt=False).manage:
                message = f"range index {index.name}, not created by the operator, covers {obj.describe()}; "
                _fail(out, obj, _Reason.PROVISIONING_FAILED, message + "Neo4j adds the constraint once it is dropped")
                return
        for index in blocking:
            _drop(out, index, f"its constraint {obj.name} brings its own index", drift=False)
    _create(out, obj, _State.MISSING, drift=False)


def violation_message(obj: model.SchemaObject) -> str:
    """Names label and properties, never the offending values (they may be personal data)."""
    noun = "property" if len(obj.properties) == 1 else "properties"
    return f"existing nodes with label {obj.label} share values of {noun} {', '.join(obj.properties)}"


def _plan_object(
    obj: model.SchemaObject, state: model.GraphState, out: planning.PlanBuilder, owner: ownership.Owner
) -> None:
    if not obj.valid:
        _fail(out, obj, _Reason.SPEC_INVALID, f"label or property name does not match {fields.NEO4J_NAME_PATTERN}")
        return
    if obj.type in model.ENTERPRISE_ONLY and not state.server.enterprise:
        server = f"{state.server.edition} {state.server.version}"
        message = f"a {obj.describe()} needs Neo4j Enterprise; the server is Neo4j {server}"
        _fail(out, obj, _Reason.UNSUPPORTED_ON_EDITION, message)
        return
    present = find_present(obj, state)
    occupant = find_occupant(obj.name, state)
    if occupant is not None and (present is None or present.name != obj.name):
        # Our name holds another definition: drop it; recreate unless an equivalent exists elsewhere.
        verdict = ownership.judge(owner, state.mark_of(occupant.name), adopt=obj.adopt)
        if not verdict.manage:
            out.foreign(obj.kind, obj.name, verdict, [f"{occupant.name} holds another definition than declared"])
            return
        _drop(out, occupant, f"holds another definition than {obj.describe()}", drift=True)
        if present is None:
            _create(out, obj, _State.DRIFTED, drift=True, why="recreated after an out-of-band change")
            return
        out.state(obj.kind, obj.name, _State.DRIFTED, f"present as {present.name}")
        return
    if present is not None:
        verdict = ownership.judge(owner, state.mark_of(present.name), adopt=obj.adopt)
        if not verdict.manage:
            index = _index_of(present, state)
            unready = [f"index {index.name} is {index.state}"] if index and index.state != "ONLINE" else []
            where = [] if present.name == obj.name else [f"present as {present.name}"]
            out.foreign(obj.kind, obj.name, dataclasses.replace(verdict, message=", ".join([*where, verdict.message])),
                        unready)  # fmt: skip
            return
        if verdict.mark:
            _mark(out, obj, present, verdict)
        _plan_present(obj, present, state, out)
        return
    _plan_missing(obj, state, out, owner)


def plan_neo4j(desired: stores_spec.Neo4j, observed: model.GraphState, *, owner: ownership.Owner) -> base.Plan:
    """Compare the declared schema with the observed one for ``owner``: constraints first, drops before creates."""
    out = planning.PlanBuilder(model.SYSTEM)
    for obj in model.desired_objects(desired):
        _plan_object(obj, observed, out, owner)
    return out.build()
