"""Judging one property object by object (table, Deployment, container) into one finding.

Why this module exists: checks of two dimensions judge the same objects the same
way, A and F the containers and Deployments of ``spec.workloads``, B and C the
declared Postgres tables: each object passes a test or names its problem, and
the check fails with the first few problems or passes counting the objects. One
helper per kind of object keeps those findings worded alike.

What it must not do: decide which objects a check selects or what it tests (the
check passes both in), or do I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from payscope_operator.api import postgres_spec, spec
from payscope_operator.audit import registry
from payscope_operator.audit.sources import kubernetes, postgres
from payscope_operator.backends.postgres import evidence as pg_evidence
from payscope_operator.kube import workloads

Finding = registry.Finding
MAX_SHOWN = 6
TableTest = Callable[[postgres_spec.PostgresTable, pg_evidence.TableFacts], str | None]


def table_name(table: postgres_spec.PostgresTable) -> str:
    return f"{table.schema_name}.{table.name}"


def tables(
    evidence: postgres.PostgresEvidence,
    desired: spec.PayScopeSpec,
    wanted: Callable[[postgres_spec.PostgresTable], bool],
    test: TableTest,
    what: str,
) -> Finding:
    """Pass when ``test(table, facts)`` finds no problem (None) on every table ``wanted`` selects."""
    selected = [t for t in postgres.tables(desired) if wanted(t)]
    problems: list[str] = []
    for table in selected:
        facts = evidence.catalog.tables.get(postgres.key(table))
        if facts is None or not facts.exists:
            problems.append(f"{table_name(table)}: table not found")
            continue
        problem = test(table, facts)
        if problem:
            problems.append(f"{table_name(table)}: {problem}")
    where = f"postgres {evidence.host}: " + ", ".join(table_name(t) for t in selected)
    if problems:
        return Finding.failed(f"Fix {what}: " + "; ".join(problems[:MAX_SHOWN]), evidence=where)
    return Finding.passed(f"{what} holds on {len(selected)} table(s).", evidence=where)


def _existing(evidence: kubernetes.WorkloadEvidence) -> list[workloads.DeploymentFacts] | Finding:
    existing = [f for f in evidence.deployments.values() if f is not None]
    if not existing:
        return Finding.unknown("None of the declared Deployments exists, so there is no pod template to judge.")
    return existing


def containers(
    evidence: kubernetes.WorkloadEvidence, test: Callable[[workloads.ContainerFacts], str | None], what: str
) -> Finding:
    """Pass when every container of every existing declared Deployment passes ``test`` (None = fine)."""
    existing = _existing(evidence)
    if isinstance(existing, Finding):
        return existing
    problems = [f"{d.name}/{c.name}: {p}" for d in existing for c in d.containers if (p := test(c)) is not None]
    checked = ", ".join(d.name for d in existing)
    if problems:
        return Finding.failed(f"Add {what}: " + "; ".join(problems[:MAX_SHOWN]), evidence=checked)
    return Finding.passed(f"Every container has {what}.", evidence=checked)


def deployments(
    evidence: kubernetes.WorkloadEvidence, test: Callable[[workloads.DeploymentFacts], str | None], what: str
) -> Finding:
    """Pass when every existing declared Deployment passes ``test`` (None = fine)."""
    existing = _existing(evidence)
    if isinstance(existing, Finding):
        return existing
    problems = [f"{d.name}: {p}" for d in existing if (p := test(d)) is not None]
    checked = ", ".join(d.name for d in existing)
    if problems:
        return Finding.failed(f"Fix {what}: " + "; ".join(problems), evidence=checked)
    return Finding.passed(f"Every Deployment has {what}.", evidence=checked)
