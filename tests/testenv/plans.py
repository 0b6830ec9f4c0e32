"""Server-side plans of what a client sent: Postgres' auto_explain per statement, Neo4j's PROFILE.

Why it exists: ``benchmarks/audit_scale.py`` must show that no statement of an
operator pass reads more rows as the data grows, and that is measured where the
rows are read, not inferred from the SQL. ``meter.py`` counts statements; this
module says what each one did:

- ``explained(admin_dsn, database, user)``: for the connections ``user`` opens to
  ``database`` while the context is open (new connections only: session settings
  apply at login), ``auto_explain`` logs every statement's executed plan with
  ANALYZE and BUFFERS, nested statements included (the PL/pgSQL of a ``DO`` block,
  which EXPLAIN itself cannot reach). ``Explained.statements()`` then reads those
  plans back from the server's log: per statement text, the calls, the rows each
  scan read per relation (rows returned plus rows a filter removed, times loops)
  and the shared buffers hit and read.
- ``profile(driver, database, text, params)``: Neo4j's db hits and rows of one
  statement under ``PROFILE`` (community has no query log to read them from).

What it must not do: leave auto_explain on after the context (settings are reset
even on error), change data, or be used while another client of ``user`` works
in ``database`` (its statements would be explained too).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import neo4j
import psycopg
from psycopg import sql

SETTINGS = {
    "session_preload_libraries": "auto_explain",
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_analyze": "on",
    "auto_explain.log_buffers": "on",
    "auto_explain.log_timing": "off",
    "auto_explain.log_nested_statements": "on",
    "auto_explain.log_format": "json",
}
MARKER = "plan:\n"
READ = ("Actual Rows", "Rows Removed by Filter", "Rows Removed by Index Recheck")
"""What a scan node read per loop: the rows it returned and those its filter or recheck removed."""


@dataclass
class Statement:
    """One statement text as the server executed it, over every call in the window."""

    text: str
    calls: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # relation -> most rows one call read from it
    buffers: int = 0  # most shared buffers (hit + read) one call touched

    def rows_of(self, relations: frozenset[str]) -> int:
        """The most rows one call read from ``relations``, summed over them."""
        return sum(n for relation, n in self.rows.items() if relation in relations)


def _scanned(node: Mapping[str, Any], into: dict[str, int]) -> None:
    if "Relation Name" in node:
        per_loop = sum(int(node.get(k, 0)) for k in READ)
        relation = str(node["Relation Name"])
        into[relation] = into.get(relation, 0) + per_loop * int(node.get("Actual Loops", 1))
    for child in node.get("Plans", []):
        _scanned(child, into)


def parse(log: str) -> dict[str, Statement]:
    """Every auto_explain plan in ``log`` (a slice of the server's stderr log), by statement text."""
    found: dict[str, Statement] = {}
    decoder = json.JSONDecoder()
    at = log.find(MARKER)
    while at >= 0:
        start = at + len(MARKER)
        plan, end = decoder.raw_decode(log, start + (len(log[start:]) - len(log[start:].lstrip())))
        text = " ".join(str(plan["Query Text"]).split())
        entry = found.setdefault(text, Statement(text))
        rows: dict[str, int] = {}
        _scanned(plan["Plan"], rows)
        entry.calls += 1
        for relation, n in rows.items():
            entry.rows[relation] = max(entry.rows.get(relation, 0), n)
        top = plan["Plan"]
        entry.buffers = max(entry.buffers, int(top.get("Shared Hit Blocks", 0)) + int(top.get("Shared Read Blocks", 0)))
        at = log.find(MARKER, end)
    return found


@dataclass
class Explained:
    """The server log from where the window opened; read it with ``statements()`` once the work is done."""

    path: Path
    offset: int

    def statements(self) -> dict[str, Statement]:
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            return parse(handle.read().decode(errors="replace"))


@contextmanager
def explained(admin_dsn: str, database: str, user: str) -> Iterator[Explained]:
    """auto_explain for the sessions ``user`` opens in ``database`` within the block (the server's log is read)."""
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as admin:
        found = admin.execute("SHOW data_directory").fetchone()
        assert found is not None
        log = Path(str(found[0])).parent / "postgres.log"  # where tests/testenv/postgres.py sends stderr
        target = sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(user), sql.Identifier(database))
        try:
            for name, value in SETTINGS.items():
                admin.execute(sql.SQL("{} SET {} = {}").format(target, sql.Identifier(*name.split(".")), value))
            yield Explained(log, log.stat().st_size)
        finally:
            admin.execute(sql.SQL("{} RESET ALL").format(target))


def _hits(plan: Mapping[str, Any]) -> int:
    return int(plan.get("dbHits", 0)) + sum(_hits(child) for child in plan.get("children", []))


def profile(driver: neo4j.Driver, database: str, text: str, params: Mapping[str, Any] | None = None) -> tuple[int, int]:
    """(db hits, rows) of ``text`` under PROFILE, as the server reports them (read-only statements only)."""
    with driver.session(database=database) as session:
        summary = session.run(f"PROFILE {text}", dict(params or {})).consume()
    plan = summary.profile or {}
    return _hits(plan), int(plan.get("rows", 0))
