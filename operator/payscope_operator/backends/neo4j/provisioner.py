"""Neo4j constraints and indexes: observe, apply and tear down over Bolt.

Why this module exists: PayScope's graph relies on uniqueness constraints and on
range and text indexes over node labels. This provisioner makes the schema of one
Neo4j database match ``spec.neo4j``: it detects the server's version and edition
(``dbms.components()``), reads ``SHOW CONSTRAINTS`` and ``SHOW INDEXES``, counts the
duplicates that would block a missing uniqueness constraint, has the pure
:func:`plan.plan_neo4j` plan the difference, and applies it one statement at a time
through ``client``.

Existing duplicates block a uniqueness constraint (``ConstraintViolatedByData``), found
by a read query before any create, and by the server's refusal after.

Ownership: right after a ``CREATE ... IF NOT EXISTS`` that added the object (Neo4j lets
only one of two racing resources add it), a marker node records the resource
(``cypher.WRITE_MARK``); migrating or adopting writes the same marker, and teardown drops
only ``payscope_`` objects whose marker names its resource, deleting the marker too.

What it must not do: create or close the driver (the caller owns it); drop anything
whose name does not start with ``payscope_``, that the spec does not declare, or that its
resource does not own; touch nodes or relationships other than its own marker nodes; put
a server message, a data value or a credential into an exception (server messages quote
the offending values); import reconcile, main, kube or kopf.
"""

from __future__ import annotations

import dataclasses
import re

import neo4j
import neo4j.exceptions

from payscope_operator import errors
from payscope_operator.api import conditions, fields, stores_spec
from payscope_operator.backends import base, ownership
from payscope_operator.backends.neo4j import client, cypher, model, plan

_Reason = conditions.Reason
_EQUIVALENT_CODES = frozenset(
    {"Neo.ClientError.Schema.EquivalentSchemaRuleAlreadyExists", "Neo.ClientError.Schema.ConstraintAlreadyExists"}
)


class Neo4jProvisioner:
    """Neo4j schema of one resource. The driver is the caller's: created once, closed by it.

    ``schema_changes`` counts the schema-changing statements sent (for the idempotency
    proof and the metrics). Whether a missing object existed before is not its concern:
    ``reconcile.managed`` marks the recreation of an object the last status listed Ready.
    """

    system = model.SYSTEM

    def __init__(
        self,
        driver: neo4j.AsyncDriver,
        desired: stores_spec.Neo4j,
        *,
        owner: ownership.Owner,
        timeout: float = client.DEFAULT_TIMEOUT,
    ) -> None:
        if not re.fullmatch(fields.NEO4J_DATABASE_PATTERN, desired.database):
            raise errors.SpecInvalid(f"neo4j.database {desired.database!r} is not a valid database name")
        self._client = client.Client(driver, desired.database, timeout=timeout)
        self._desired = desired
        self._owner = owner
        self.schema_changes = 0

    async def _change(self, text: str) -> bool:
        """Send one schema-changing statement; True when the server added an object."""
        self.schema_changes += 1
        _, counters = await self._client.run(text)
        return counters.constraints_added + counters.indexes_added > 0

    async def read_state(self) -> model.GraphState:
        """Server, schema, and the ownership markers of every object that matters to the declared ones.

        One read transaction: ``dbms.components()``, ``SHOW CONSTRAINTS``, ``SHOW INDEXES`` and
        the marker nodes. Neo4j 4 and older are refused (other schema syntax).
        """

        async def read(run: client.Reader) -> model.GraphState:
            server = cypher.server_of(await run(cypher.COMPONENTS, None))
            if server is None:
                raise errors.DependencyUnavailable("Neo4j did not report its kernel version")
            major = server.version.split(".")[0]
            if not major.isdigit() or int(major) < 5:
                raise errors.SpecUnsatisfiable(f"Neo4j {server.version} is not supported: 5 or later is required")
            constraints = tuple(cypher.constraint_of(r) for r in await run(cypher.SHOW_CONSTRAINTS, None))
            indexes = tuple(cypher.index_of(r) for r in await run(cypher.SHOW_INDEXES, None))
            state = model.GraphState(server, constraints, indexes)
            names = sorted(self._relevant(state))
            marks = cypher.marks_of(await run(cypher.READ_MARKS, {"names": names})) if names else {}
            return dataclasses.replace(state, marks=marks)

        return await self._client.read_together(read)

    def _relevant(self, state: model.GraphState) -> set[str]:
        """Names whose owner the plan may ask about: declared names, and what stands in for them."""
        names: set[str] = set()
        for obj in model.desired_objects(self._desired):
            names.add(obj.name)
            if (present := plan.find_present(obj, state)) is not None:
                names.add(present.name)
            probe = model.SchemaObject(model.Kind.INDEX, "Range", obj.label, obj.properties, obj.name)
            names.update(i.name for i in state.indexes if i.owning_constraint is None and plan.matches(probe, i))
        return names

    async def _write_mark(self, name: str) -> None:
        owner = self._owner
        await self._client.run(cypher.WRITE_MARK, {"name": name, "uid": owner.uid, "resource": owner.resource})

    async def observe(self) -> model.GraphState:
        """Server, schema, ownership markers, and the duplicates blocking missing uniqueness constraints."""
        state = await self.read_state()
        violations = set()
        for obj in model.desired_objects(self._desired):
            present = plan.find_present(obj, state)
            checkable = obj.kind is model.Kind.CONSTRAINT and obj.type in model.OWNS_RANGE_INDEX and obj.valid
            if present is None and checkable and (state.server.enterprise or obj.type not in model.ENTERPRISE_ONLY):
                try:
                    records = await self._client.read(cypher.cypher_duplicates(obj))
                except errors.DependencyUnavailable as exc:
                    if exc.reason != _Reason.DEPENDENCY_TIMEOUT:
                        raise
                    continue  # a label too large to scan in time: the server's refusal on create tells instead
                if records and int(records[0]["groups"]) > 0:
                    violations.add(obj.name)
        return dataclasses.replace(state, violations=frozenset(violations))

    def plan(self, observed: model.GraphState) -> base.Plan:
        return plan.plan_neo4j(self._desired, observed, owner=self._owner)

    async def apply(self, action: base.Action) -> None:
        """Carry out one planned action; object-level refusals raise ``errors.SpecUnsatisfiable``."""
        if isinstance(action, model.DropSchema):
            try:
                await self._change(cypher.cypher_drop(action.target, constraint=action.constraint))
            except neo4j.exceptions.Neo4jError as exc:
                message = f"Neo4j refused to drop {action.kind} {action.target} ({exc.code})"
                raise errors.SpecUnsatisfiable(message, reason=_Reason.PROVISIONING_FAILED) from None
        elif isinstance(action, model.CreateSchema):
            if await self._create(action.object):  # added by this statement: ours, so say so beside it
                await self._write_mark(action.object.name)
        elif isinstance(action, model.MarkSchema):
            await self._write_mark(action.target)
        else:
            raise TypeError(f"not a graph action: {action.describe()}")

    async def _create(self, obj: model.SchemaObject) -> bool:
        try:
            return await self._change(cypher.cypher_create(obj))
        except neo4j.exceptions.Neo4jError as exc:
            if exc.code in _EQUIVALENT_CODES:
                return False  # an equivalent rule exists under another name: present, nothing to do
            if exc.code == "Neo.DatabaseError.Schema.ConstraintCreationFailed":
                if "Enterprise" in (exc.message or ""):
                    reason, message = _Reason.UNSUPPORTED_ON_EDITION, f"a {obj.describe()} needs Neo4j Enterprise"
                else:
                    reason, message = _Reason.CONSTRAINT_VIOLATED_BY_DATA, plan.violation_message(obj)
                raise errors.SpecUnsatisfiable(f"{obj.name}: {message}", reason=reason) from None
            raise errors.SpecUnsatisfiable(
                f"{obj.name}: Neo4j refused the {obj.describe()} ({exc.code})", reason=_Reason.PROVISIONING_FAILED
            ) from None

    async def teardown(self) -> base.TeardownResult:
        """Drop the declared objects under our name that this resource owns; keep every other one."""
        state = await self.read_state()
        removed: list[str] = []
        kept: list[str] = []
        owner = self._owner
        for obj in model.desired_objects(self._desired):
            occupant = plan.find_occupant(obj.name, state)
            if occupant is not None and state.mark_of(obj.name).uid == owner.uid:
                await self._change(
                    cypher.cypher_drop(obj.name, constraint=isinstance(occupant, model.ObservedConstraint))
                )
                await self._client.run(cypher.DELETE_MARK, {"name": obj.name, "uid": owner.uid})
                removed.append(obj.name)
            elif occupant is not None:
                kept.append(
                    f"{obj.name}: {ownership.why_kept(ownership.judge(owner, state.mark_of(obj.name), adopt=False))}"
                )
            elif (present := plan.find_present(obj, state)) is not None:
                kept.append(f"{present.name}: not created by the operator")
        return base.TeardownResult(model.SYSTEM, tuple(removed), tuple(kept))
