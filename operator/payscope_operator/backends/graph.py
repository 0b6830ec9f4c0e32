"""Neo4j constraints and indexes: observe, plan (pure), apply and tear down over Bolt.

Why this module exists: PayScope's graph relies on uniqueness constraints and on
range and text indexes over node labels. This provisioner makes the schema of one
Neo4j database match ``spec.neo4j``: it detects the server's version and edition
(``dbms.components()``), reads ``SHOW CONSTRAINTS`` and ``SHOW INDEXES``, plans the
difference with the pure :func:`plan_graph`, and applies it one statement at a time.

Rules it follows:

- Every object gets a deterministic name, ``payscope_<label>_<properties>_<kind>``,
  lower-cased, shortened with a hash when long or when two declared objects would
  share it (:func:`desired_objects`). A declared object is present when an object
  of that name has its definition, or when any object, whatever its name, has it
  (Neo4j refuses an equivalent schema rule twice, so no duplicate is ever made).
- An object under our name with another definition is drift: it is dropped and
  recreated. A declared object that this provisioner saw or created and that has
  gone is drift too (``GraphState.known``); otherwise it is simply missing.
- Exists and NodeKey constraints need Enterprise: on Community they are Failed with
  ``UnsupportedOnEdition`` and a permanent blocker, never skipped in silence.
  Existing duplicates block a uniqueness constraint (``ConstraintViolatedByData``,
  found by a read query before any create, and by the server's refusal after).
- Labels and property names are re-checked against ``fields.NEO4J_NAME_PATTERN``
  and backtick-quoted; managed names against :data:`MANAGED_NAME_PATTERN`. Every
  statement is an auto-commit query with a server-side and a client-side timeout
  and no driver retry (retrying is the reconcile loop's job).

What it must not do: create or close the driver (the caller owns it); drop anything
whose name does not start with ``payscope_`` or that the spec does not declare;
touch nodes or relationships; put a server message, a data value or a credential
into an exception (server messages quote the offending values); import reconcile,
main, kube or kopf.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import neo4j
import neo4j.exceptions

from payscope_operator import errors
from payscope_operator.api import conditions, fields, status, stores
from payscope_operator.backends import base

SYSTEM = "neo4j"
DEFAULT_TIMEOUT = 30.0
"""Seconds a statement may run on the server; the client gives up a little later."""
MAX_NAME_LENGTH = 96
MANAGED_NAME_PATTERN = r"^payscope_[a-z0-9_]{1,96}$"

_CLIENT_GRACE = 5.0
_Reason = conditions.Reason
_State = status.ProvisionState
_CONSTRAINT_TYPES: Mapping[str, frozenset[str]] = {
    stores.ConstraintType.UNIQUE: frozenset({"UNIQUENESS", "NODE_PROPERTY_UNIQUENESS"}),
    stores.ConstraintType.EXISTS: frozenset({"NODE_PROPERTY_EXISTENCE"}),
    stores.ConstraintType.NODE_KEY: frozenset({"NODE_KEY"}),
}
_INDEX_TYPES: Mapping[str, frozenset[str]] = {
    stores.IndexType.RANGE: frozenset({"RANGE"}),
    stores.IndexType.TEXT: frozenset({"TEXT"}),
}
_NAMING: Mapping[str, tuple[str, str]] = {  # type -> (name suffix, words)
    "Unique": ("unique", "uniqueness constraint"),
    "Exists": ("exists", "existence constraint"),
    "NodeKey": ("key", "node key constraint"),
    "Range": ("range", "range index"),
    "Text": ("text", "text index"),
}
_ENTERPRISE_ONLY = frozenset({stores.ConstraintType.EXISTS, stores.ConstraintType.NODE_KEY})
_OWNS_RANGE_INDEX = frozenset({stores.ConstraintType.UNIQUE, stores.ConstraintType.NODE_KEY})
_EQUIVALENT_CODES = frozenset(
    {"Neo.ClientError.Schema.EquivalentSchemaRuleAlreadyExists", "Neo.ClientError.Schema.ConstraintAlreadyExists"}
)
_TRANSPORT_ERRORS = (
    neo4j.exceptions.ServiceUnavailable,
    neo4j.exceptions.SessionExpired,
    neo4j.exceptions.TransientError,
    neo4j.exceptions.ConnectionAcquisitionTimeoutError,
    neo4j.exceptions.IncompleteCommit,
    OSError,
)


class Kind(StrEnum):
    """Kind of a schema object, as listed in ``status.provisioned.neo4j``."""

    CONSTRAINT = "Constraint"
    INDEX = "Index"


# ---- desired objects and their names --------------------------------------------------------


@dataclass(frozen=True)
class SchemaObject:
    """One declared constraint or index, with its managed name."""

    kind: Kind
    type: str  # a stores.ConstraintType or stores.IndexType value
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


def desired_objects(desired: stores.Neo4j) -> tuple[SchemaObject, ...]:
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


def _occupant(name: str, state: GraphState) -> ObservedConstraint | ObservedIndex | None:
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
        if isinstance(action, CreateSchema) and action.object.type in _OWNS_RANGE_INDEX:
            planned = action.object
            if (planned.label, planned.properties) == (obj.label, obj.properties):
                return planned.name
    return None


def _plan_missing(obj: SchemaObject, state: GraphState, out: _Builder) -> None:
    drift = obj.name in state.known
    why = "dropped out of band" if drift else ""
    covering = _covering_create(obj, out) if obj.type == stores.IndexType.RANGE else None
    if covering is not None:
        out.objects.append(base.ObjectState(obj.kind, obj.name, _State.MISSING, message=f"comes with {covering}"))
        return
    if obj.kind is Kind.CONSTRAINT and obj.name in state.violations:
        message = f"{violation_message(obj)}; remove the duplicates and the constraint is created on the next pass"
        out.fail(obj, _Reason.CONSTRAINT_VIOLATED_BY_DATA, message)
        return
    if obj.kind is Kind.CONSTRAINT and obj.type in _OWNS_RANGE_INDEX:
        probe = SchemaObject(Kind.INDEX, stores.IndexType.RANGE, obj.label, obj.properties, obj.name)
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
    if obj.type in _ENTERPRISE_ONLY and not state.server.enterprise:
        server = f"{state.server.edition} {state.server.version}"
        message = f"a {obj.describe()} needs Neo4j Enterprise; the server is Neo4j {server}"
        out.fail(obj, _Reason.UNSUPPORTED_ON_EDITION, message)
        return
    present = find_present(obj, state)
    occupant = _occupant(obj.name, state)
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


def plan_graph(desired: stores.Neo4j, observed: GraphState) -> base.Plan:
    """Compare the declared schema with the observed one: constraints first, drops before creates."""
    out = _Builder()
    for obj in desired_objects(desired):
        _plan_object(obj, observed, out)
    return base.Plan(SYSTEM, tuple(out.actions), tuple(out.objects), tuple(out.blockers))


# ---- Cypher ---------------------------------------------------------------------------------


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
    if not re.fullmatch(MANAGED_NAME_PATTERN, name):
        raise errors.PermanentError(f"{name!r} is not a name this operator manages")
    return f"`{name}`"


def cypher_create(obj: SchemaObject) -> str:
    """The ``CREATE ... IF NOT EXISTS`` statement of a declared object."""
    name, label = quote_managed(obj.name), quote(obj.label)
    props = [f"n.{quote(prop)}" for prop in obj.properties]
    target = props[0] if len(props) == 1 else f"({', '.join(props)})"
    head = f"CREATE CONSTRAINT {name} IF NOT EXISTS FOR (n:{label}) REQUIRE {target}"
    if obj.type == stores.ConstraintType.UNIQUE:
        return f"{head} IS UNIQUE"
    if obj.type == stores.ConstraintType.EXISTS:
        return f"{head} IS NOT NULL"
    if obj.type == stores.ConstraintType.NODE_KEY:
        return f"{head} IS NODE KEY"
    kind = "RANGE" if obj.type == stores.IndexType.RANGE else "TEXT"
    return f"CREATE {kind} INDEX {name} IF NOT EXISTS FOR (n:{label}) ON ({', '.join(props)})"


def cypher_drop(name: str, *, constraint: bool) -> str:
    return f"DROP {'CONSTRAINT' if constraint else 'INDEX'} {quote_managed(name)} IF EXISTS"


def cypher_duplicates(obj: SchemaObject) -> str:
    """Counts groups of nodes sharing the values a uniqueness constraint would cover."""
    props = [f"n.{quote(prop)}" for prop in obj.properties]
    present = " AND ".join(f"{prop} IS NOT NULL" for prop in props)
    keys = ", ".join(f"{prop} AS k{i}" for i, prop in enumerate(props))
    return (
        f"MATCH (n:{quote(obj.label)}) WHERE {present} "
        f"WITH {keys}, count(*) AS copies WHERE copies > 1 RETURN count(*) AS groups"
    )


_SHOW_CONSTRAINTS = "SHOW CONSTRAINTS YIELD id, name, type, entityType, labelsOrTypes, properties, ownedIndex"
_SHOW_INDEXES = "SHOW INDEXES YIELD id, name, state, type, entityType, labelsOrTypes, properties, owningConstraint"
_COMPONENTS = "CALL dbms.components() YIELD name, versions, edition RETURN name, versions, edition"


def _strings(value: Any) -> tuple[str, ...]:
    return () if value is None else tuple(str(item) for item in value)


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)


# ---- the provisioner ------------------------------------------------------------------------


class GraphProvisioner:
    """Neo4j schema of one resource. The driver is the caller's: created once, closed by it.

    ``schema_changes`` counts the schema-changing statements sent (for the idempotency
    proof and the metrics); ``known`` seeds the managed names seen in earlier passes.
    """

    system = SYSTEM

    def __init__(
        self,
        driver: neo4j.AsyncDriver,
        desired: stores.Neo4j,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        known: Iterable[str] = (),
    ) -> None:
        if not re.fullmatch(fields.NEO4J_DATABASE_PATTERN, desired.database):
            raise errors.SpecInvalid(f"neo4j.database {desired.database!r} is not a valid database name")
        self._driver = driver
        self._desired = desired
        self._timeout = timeout
        self._known = set(known)
        self.schema_changes = 0

    async def _run(self, text: str) -> tuple[list[neo4j.Record], neo4j.SummaryCounters]:
        """One auto-commit statement (no driver retry) under both timeouts.

        Transport faults and timeouts become ``errors.DependencyUnavailable``, refused
        credentials ``errors.PermissionDenied``; other server refusals are re-raised
        for the caller to name the object. No server message is ever passed on.
        """
        try:
            async with (
                asyncio.timeout(self._timeout + _CLIENT_GRACE),
                self._driver.session(
                    database=self._desired.database,
                    default_access_mode=neo4j.WRITE_ACCESS,
                    notifications_min_severity=neo4j.NotificationMinimumSeverity.OFF,
                ) as session,
            ):
                result = await session.run(neo4j.Query(text, timeout=self._timeout))
                records = [record async for record in result]
                return records, (await result.consume()).counters
        except TimeoutError:
            raise self._timed_out() from None
        except _TRANSPORT_ERRORS as exc:
            raise errors.DependencyUnavailable(f"Neo4j is unreachable ({type(exc).__name__})") from None
        except (neo4j.exceptions.AuthError, neo4j.exceptions.Forbidden) as exc:
            raise errors.PermissionDenied(f"Neo4j refused the operator's credentials ({exc.code})") from None
        except neo4j.exceptions.ClientError as exc:
            if exc.code == "Neo.ClientError.Database.DatabaseNotFound":
                raise errors.SpecUnsatisfiable(f"Neo4j database {self._desired.database} does not exist") from None
            if (exc.code or "").startswith("Neo.ClientError.Transaction.TransactionTimedOut"):
                raise self._timed_out() from None
            raise

    def _timed_out(self) -> errors.DependencyUnavailable:
        message = f"Neo4j did not answer within {self._timeout:g}s"
        return errors.DependencyUnavailable(message, reason=_Reason.DEPENDENCY_TIMEOUT)

    async def count_untenanted(self, labels: Iterable[str], tenant_key: str) -> dict[str, int]:
        """Nodes of each label lacking ``tenant_key`` (read-only; one statement for all labels)."""
        wanted = sorted(set(labels))
        if not wanted:
            return {}
        parts = [
            f"MATCH (n:{quote(label)}) WHERE n.{quote(tenant_key)} IS NULL"
            f" RETURN {_string_literal(label)} AS label, count(n) AS c"
            for label in wanted
        ]
        records = await self._read(" UNION ALL ".join(parts))
        return {str(r["label"]): int(r["c"]) for r in records}

    async def _read(self, text: str) -> list[neo4j.Record]:
        try:
            records, _ = await self._run(text)
            return records
        except neo4j.exceptions.Neo4jError as exc:
            raise errors.DependencyUnavailable(f"Neo4j failed a schema read ({exc.code})") from None

    async def _change(self, text: str) -> bool:
        """Send one schema-changing statement; True when the server added an object."""
        self.schema_changes += 1
        _, counters = await self._run(text)
        return counters.constraints_added + counters.indexes_added > 0

    async def read_server(self) -> ServerInfo:
        """Version and edition of the kernel; Neo4j 4 and older are refused (other schema syntax)."""
        for record in await self._read(_COMPONENTS):
            if record["name"] == "Neo4j Kernel":
                server = ServerInfo(next(iter(_strings(record["versions"])), "unknown"), str(record["edition"]))
                major = server.version.split(".")[0]
                if not major.isdigit() or int(major) < 5:
                    raise errors.SpecUnsatisfiable(f"Neo4j {server.version} is not supported: 5 or later is required")
                return server
        raise errors.DependencyUnavailable("Neo4j did not report its kernel version")

    async def read_schema(self, server: ServerInfo) -> GraphState:
        constraints = tuple(
            ObservedConstraint(
                int(r["id"]), str(r["name"]), str(r["type"]), str(r["entityType"]),
                _strings(r["labelsOrTypes"]), _strings(r["properties"]), _optional(r["ownedIndex"]),
            )
            for r in await self._read(_SHOW_CONSTRAINTS)
        )  # fmt: skip
        indexes = tuple(
            ObservedIndex(
                int(r["id"]), str(r["name"]), str(r["state"]), str(r["type"]), str(r["entityType"]),
                _strings(r["labelsOrTypes"]), _strings(r["properties"]), _optional(r["owningConstraint"]),
            )
            for r in await self._read(_SHOW_INDEXES)
        )  # fmt: skip
        return GraphState(server, constraints, indexes)

    async def observe(self) -> GraphState:
        """Server, schema, duplicates blocking missing uniqueness constraints, and drift memory."""
        state = await self.read_schema(await self.read_server())
        violations = set()
        for obj in desired_objects(self._desired):
            present = find_present(obj, state)
            if present is not None and present.name == obj.name:
                self._known.add(obj.name)
            checkable = obj.kind is Kind.CONSTRAINT and obj.type in _OWNS_RANGE_INDEX and obj.valid
            if present is None and checkable and (state.server.enterprise or obj.type not in _ENTERPRISE_ONLY):
                try:
                    records = await self._read(cypher_duplicates(obj))
                except errors.DependencyUnavailable as exc:
                    if exc.reason != _Reason.DEPENDENCY_TIMEOUT:
                        raise
                    continue  # a label too large to scan in time: the server's refusal on create tells instead
                if records and int(records[0]["groups"]) > 0:
                    violations.add(obj.name)
        return GraphState(state.server, state.constraints, state.indexes, frozenset(violations), frozenset(self._known))

    def plan(self, observed: GraphState) -> base.Plan:
        return plan_graph(self._desired, observed)

    async def apply(self, action: base.Action) -> None:
        """Carry out one planned action; object-level refusals raise ``errors.SpecUnsatisfiable``."""
        if isinstance(action, DropSchema):
            try:
                await self._change(cypher_drop(action.target, constraint=action.constraint))
            except neo4j.exceptions.Neo4jError as exc:
                message = f"Neo4j refused to drop {action.kind} {action.target} ({exc.code})"
                raise errors.SpecUnsatisfiable(message, reason=_Reason.PROVISIONING_FAILED) from None
            self._known.discard(action.target)
        elif isinstance(action, CreateSchema):
            if await self._create(action.object):
                self._known.add(action.object.name)
        else:
            raise TypeError(f"not a graph action: {action.describe()}")

    async def _create(self, obj: SchemaObject) -> bool:
        try:
            return await self._change(cypher_create(obj))
        except neo4j.exceptions.Neo4jError as exc:
            if exc.code in _EQUIVALENT_CODES:
                return False  # an equivalent rule exists under another name: present, nothing to do
            if exc.code == "Neo.DatabaseError.Schema.ConstraintCreationFailed":
                if "Enterprise" in (exc.message or ""):
                    reason, message = _Reason.UNSUPPORTED_ON_EDITION, f"a {obj.describe()} needs Neo4j Enterprise"
                else:
                    reason, message = _Reason.CONSTRAINT_VIOLATED_BY_DATA, violation_message(obj)
                raise errors.SpecUnsatisfiable(f"{obj.name}: {message}", reason=reason) from None
            raise errors.SpecUnsatisfiable(
                f"{obj.name}: Neo4j refused the {obj.describe()} ({exc.code})", reason=_Reason.PROVISIONING_FAILED
            ) from None

    async def teardown(self) -> base.TeardownResult:
        """Drop the declared objects that carry our name; keep equivalents under other names."""
        state = await self.read_schema(await self.read_server())
        removed: list[str] = []
        kept: list[str] = []
        for obj in desired_objects(self._desired):
            occupant = _occupant(obj.name, state)
            if occupant is not None:
                await self._change(cypher_drop(obj.name, constraint=isinstance(occupant, ObservedConstraint)))
                self._known.discard(obj.name)
                removed.append(obj.name)
            elif (present := find_present(obj, state)) is not None:
                kept.append(f"{present.name}: not created by the operator")
        return base.TeardownResult(SYSTEM, tuple(removed), tuple(kept))
