"""Neo4j constraints and indexes: observe, apply and tear down over Bolt.

Why this module exists: PayScope's graph relies on uniqueness constraints and on
range and text indexes over node labels. This provisioner makes the schema of one
Neo4j database match ``spec.neo4j``: it detects the server's version and edition
(``dbms.components()``), reads ``SHOW CONSTRAINTS`` and ``SHOW INDEXES``, counts the
duplicates that would block a missing uniqueness constraint, has the pure
:func:`plan.plan_graph` plan the difference, and applies it one statement at a time.

Rules it follows:

- Naming, presence, drift and the edition rules are ``graph_plan``'s. Existing
  duplicates block a uniqueness constraint (``ConstraintViolatedByData``), found by a
  read query before any create, and by the server's refusal after.
- Labels and property names are re-checked against ``fields.NEO4J_NAME_PATTERN``
  and backtick-quoted; managed names against ``plan.MANAGED_NAME_PATTERN``.
  Every statement is an auto-commit query with a server-side and a client-side
  timeout and no driver retry (retrying is the reconcile loop's job).

What it must not do: create or close the driver (the caller owns it); drop anything
whose name does not start with ``payscope_`` or that the spec does not declare;
touch nodes or relationships; put a server message, a data value or a credential
into an exception (server messages quote the offending values); import reconcile,
main, kube or kopf.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Any

import neo4j
import neo4j.exceptions

from payscope_operator import errors
from payscope_operator.api import conditions, fields, stores_spec
from payscope_operator.backends import base
from payscope_operator.backends.neo4j import plan

DEFAULT_TIMEOUT = 30.0
"""Seconds a statement may run on the server; the client gives up a little later."""

_CLIENT_GRACE = 5.0
_SchemaObject = plan.SchemaObject  # the class's own plan() hides the module in signatures
_Reason = conditions.Reason
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
    if not re.fullmatch(plan.MANAGED_NAME_PATTERN, name):
        raise errors.PermanentError(f"{name!r} is not a name this operator manages")
    return f"`{name}`"


def cypher_create(obj: plan.SchemaObject) -> str:
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


def cypher_duplicates(obj: plan.SchemaObject) -> str:
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

    system = plan.SYSTEM

    def __init__(
        self,
        driver: neo4j.AsyncDriver,
        desired: stores_spec.Neo4j,
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

    async def read_server(self) -> plan.ServerInfo:
        """Version and edition of the kernel; Neo4j 4 and older are refused (other schema syntax)."""
        for record in await self._read(_COMPONENTS):
            if record["name"] == "Neo4j Kernel":
                server = plan.ServerInfo(next(iter(_strings(record["versions"])), "unknown"), str(record["edition"]))
                major = server.version.split(".")[0]
                if not major.isdigit() or int(major) < 5:
                    raise errors.SpecUnsatisfiable(f"Neo4j {server.version} is not supported: 5 or later is required")
                return server
        raise errors.DependencyUnavailable("Neo4j did not report its kernel version")

    async def read_schema(self, server: plan.ServerInfo) -> plan.GraphState:
        constraints = tuple(
            plan.ObservedConstraint(
                int(r["id"]), str(r["name"]), str(r["type"]), str(r["entityType"]),
                _strings(r["labelsOrTypes"]), _strings(r["properties"]), _optional(r["ownedIndex"]),
            )
            for r in await self._read(_SHOW_CONSTRAINTS)
        )  # fmt: skip
        indexes = tuple(
            plan.ObservedIndex(
                int(r["id"]), str(r["name"]), str(r["state"]), str(r["type"]), str(r["entityType"]),
                _strings(r["labelsOrTypes"]), _strings(r["properties"]), _optional(r["owningConstraint"]),
            )
            for r in await self._read(_SHOW_INDEXES)
        )  # fmt: skip
        return plan.GraphState(server, constraints, indexes)

    async def observe(self) -> plan.GraphState:
        """Server, schema, duplicates blocking missing uniqueness constraints, and drift memory."""
        state = await self.read_schema(await self.read_server())
        violations = set()
        for obj in plan.desired_objects(self._desired):
            present = plan.find_present(obj, state)
            if present is not None and present.name == obj.name:
                self._known.add(obj.name)
            checkable = obj.kind is plan.Kind.CONSTRAINT and obj.type in plan.OWNS_RANGE_INDEX and obj.valid
            if present is None and checkable and (state.server.enterprise or obj.type not in plan.ENTERPRISE_ONLY):
                try:
                    records = await self._read(cypher_duplicates(obj))
                except errors.DependencyUnavailable as exc:
                    if exc.reason != _Reason.DEPENDENCY_TIMEOUT:
                        raise
                    continue  # a label too large to scan in time: the server's refusal on create tells instead
                if records and int(records[0]["groups"]) > 0:
                    violations.add(obj.name)
        return plan.GraphState(
            state.server, state.constraints, state.indexes, frozenset(violations), frozenset(self._known)
        )

    def plan(self, observed: plan.GraphState) -> base.Plan:
        return plan.plan_graph(self._desired, observed)

    async def apply(self, action: base.Action) -> None:
        """Carry out one planned action; object-level refusals raise ``errors.SpecUnsatisfiable``."""
        if isinstance(action, plan.DropSchema):
            try:
                await self._change(cypher_drop(action.target, constraint=action.constraint))
            except neo4j.exceptions.Neo4jError as exc:
                message = f"Neo4j refused to drop {action.kind} {action.target} ({exc.code})"
                raise errors.SpecUnsatisfiable(message, reason=_Reason.PROVISIONING_FAILED) from None
            self._known.discard(action.target)
        elif isinstance(action, plan.CreateSchema):
            if await self._create(action.object):
                self._known.add(action.object.name)
        else:
            raise TypeError(f"not a graph action: {action.describe()}")

    async def _create(self, obj: _SchemaObject) -> bool:
        try:
            return await self._change(cypher_create(obj))
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
        """Drop the declared objects that carry our name; keep equivalents under other names."""
        state = await self.read_schema(await self.read_server())
        removed: list[str] = []
        kept: list[str] = []
        for obj in plan.desired_objects(self._desired):
            occupant = plan.find_occupant(obj.name, state)
            if occupant is not None:
                await self._change(cypher_drop(obj.name, constraint=isinstance(occupant, plan.ObservedConstraint)))
                self._known.discard(obj.name)
                removed.append(obj.name)
            elif (present := plan.find_present(obj, state)) is not None:
                kept.append(f"{present.name}: not created by the operator")
        return base.TeardownResult(plan.SYSTEM, tuple(removed), tuple(kept))
