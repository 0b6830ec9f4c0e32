"""Evidence from Neo4j: the declared schema as the provisioner's plan sees it, and untenanted nodes.

Why this module exists: the B checks judge Neo4j constraints, indexes and tenant
properties, and A its reachability. The schema (``dbms.components()``, ``SHOW
CONSTRAINTS``, ``SHOW INDEXES``) and the plan against it are what the pass's
provisioning observed (``context.Observations``: one read per pass, shared), so the
audit and the provisioner can never disagree about what "as declared" means.

With ``spec.tenancy`` the source adds, per declared label (at most
:data:`MAX_TENANT_LABELS`), the nodes lacking the tenant key, at a cost that does not
grow with the graph: every pass one statement of server statistics
(``backends.neo4j.evidence.read_statistics``: the count store, and the statistics of a
range index on the tenant key) settles the labels it can; the others need a full scan
of the label, which runs at most every ``spec.audit.deepScanInterval`` per label. The
last scan of each label is kept between passes beside the resource's Neo4j driver (its
client cache: forgotten with the driver, or when the labels or the key change) and its
time is shown in the finding.

What it must not do: change the schema or the data, or judge the evidence (``checks`` do).
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field

from payscope_operator.api import fields, stores_spec
from payscope_operator.audit import context, registry
from payscope_operator.backends import base
from payscope_operator.backends.neo4j import evidence as neo4j_evidence
from payscope_operator.backends.neo4j import model as neo4j_model

MAX_TENANT_LABELS = 20


@dataclass(frozen=True)
class Untenanted:
    """Nodes of one label lacking the tenant key: how many (exactly, or at least), and how that is known."""

    count: int
    exact: bool
    how: str


@dataclass(frozen=True)
class GraphEvidence:
    uri: str
    plan: base.Plan
    version: str
    edition: str
    untenanted: dict[str, Untenanted]  # label -> nodes without the tenant key


@dataclass
class Scans:
    """The last full scan of each label: untenanted nodes, when (wall clock), when (monotonic)."""

    last: dict[str, tuple[int, datetime.datetime, float]] = field(default_factory=dict)


def declared_labels(section: stores_spec.Neo4j) -> list[str]:
    return sorted({c.label for c in section.constraints} | {i.label for i in section.indexes})[:MAX_TENANT_LABELS]


async def _scans(run: context.Session, section: stores_spec.Neo4j, key: str) -> Scans:
    """This resource's scan memory, kept in its client cache (a new one when what it counted changes)."""

    async def close() -> None:
        return None

    fingerprint = hash(("neo4j.scans", section.connection.uri, section.database, key, *declared_labels(section)))
    found: Scans = await run.clients.get("neo4j.scans", fingerprint, lambda: (Scans(), close))
    return found


async def count_untenanted(run: context.Session, section: stores_spec.Neo4j, key: str) -> dict[str, Untenanted]:
    """Each declared label's untenanted nodes: from statistics every pass, by a scan at most every deepScanInterval."""
    driver, labels = await run.stores.neo4j(), declared_labels(section)
    indexed = {index.label for index in section.indexes if tuple(index.properties) == (key,)}
    stats = None
    if indexed & set(labels):  # index statistics can settle a label only where an index on the key is declared
        stats = await neo4j_evidence.read_statistics(driver, section.database, labels, key)
    if stats is None:  # none declared, or the procedure is refused: the count store still settles empty labels
        stats = await neo4j_evidence.count_nodes(driver, section.database, labels)
    found: dict[str, Untenanted] = {}
    unsettled = []
    for label in labels:
        known = neo4j_evidence.judge(stats.get(label, neo4j_evidence.LabelStatistics(label, 0)))
        if known is None:
            unsettled.append(label)
        else:
            found[label] = Untenanted(known.untenanted, known.exact, known.how)
    if not unsettled:
        return found
    every = run.spec.audit.deep_scan_interval
    scans, now = await _scans(run, section, key), time.monotonic()
    due = [label for label in unsettled if label not in scans.last or now - scans.last[label][2] >= _seconds(every)]
    if due:
        counted = await neo4j_evidence.count_untenanted(driver, section.database, due, key)
        at = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        for label in due:
            scans.last[label] = (counted.get(label, 0), at, now)
    for label in unsettled:
        count, at, _ = scans.last[label]
        found[label] = Untenanted(count, True, f"a full scan at {at:%Y-%m-%dT%H:%M:%SZ} (at most every {every})")
    return found


def _seconds(duration: str) -> float:
    return fields.parse_duration(duration).total_seconds()


async def _gather(run: context.Session) -> GraphEvidence:
    section = run.spec.neo4j
    assert section is not None  # the source is configured only when spec.neo4j is set
    state = await context.observed(run, neo4j_model.SYSTEM, neo4j_model.GraphState)
    plan = await context.planned(run, neo4j_model.SYSTEM)
    untenanted: dict[str, Untenanted] = {}
    if run.spec.tenancy is not None:
        untenanted = await count_untenanted(run, section, run.spec.tenancy.tenant_key)
    return GraphEvidence(section.connection.uri, plan, state.server.version, state.server.edition, untenanted)


SCHEMA = registry.Source[GraphEvidence](
    name="neo4j.schema",
    gather=_gather,
    configured=lambda s: s.neo4j is not None,
    absent="spec.neo4j is absent.",
)
