"""Render the catalog as ``docs/checks.md`` and read the checklist it must cover.

``render_markdown`` is the only source of ``docs/checks.md`` (a test fails when
the file drifts). ``checklist_items`` parses the production-readiness checklist
into keys ``<letter>/<subsection>/<checkbox text>``, the same keys checks name
in ``covers``; ``coverage`` says for each key which checks cover it or why no
probe can observe it. Run ``python -m payscope_operator.audit.document
docs/audit-checklist.md > docs/checks.md`` to regenerate the file.

What it must not do: decide anything about a check (the catalog does), or write
the file itself (the caller redirects its output).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from payscope_operator.api import conditions, status
from payscope_operator.audit import catalog, registry

STATUS_LINE = "**Status:** Checking..."
"""The first checkbox under A is the report's own status line, not a readiness item."""


def checklist_items(text: str) -> list[str]:
    """Checkbox keys ``<letter>/<subsection>/<text>`` in document order."""
    items: list[str] = []
    letter = subsection = ""
    for line in text.splitlines():
        if match := re.match(r"^## ([A-G])\) ", line):
            letter, subsection = match.group(1), ""
        elif match := re.match(r"^### (.+?)\s*$", line):
            subsection = match.group(1)
        elif (match := re.match(r"^- \[ \] (.+?)\s*$", line)) and letter and match.group(1) != STATUS_LINE:
            items.append(f"{letter}/{subsection}/{match.group(1)}")
    return items


def coverage(
    items: Iterable[str],
    checks: Sequence[registry.Check[Any]] = catalog.CATALOG,
    unobservable: Sequence[registry.NotObservable] = catalog.NOT_OBSERVABLE,
) -> dict[str, list[str]]:
    """For each checklist key: the ids of the checks covering it, or ``not observable: <reason>``."""
    found: dict[str, list[str]] = {item: [] for item in items}
    for check in checks:
        for key in check.covers:
            found.setdefault(key, []).append(check.id)
    for entry in unobservable:
        found.setdefault(entry.covers, []).append(f"not observable: {entry.reason}")
    return found


def strongest_evidence(
    items: Iterable[str], checks: Sequence[registry.Check[Any]] = catalog.CATALOG
) -> dict[str, status.EvidenceGrade | None]:
    """For each checklist key: the strongest grade of evidence any check brings to it (None: no check)."""
    by_id = {c.id: c for c in checks}
    found = coverage(items, checks, ())
    return {item: registry.strongest(by_id[i].grade_for(item) for i in ids) for item, ids in found.items()}


def grade_counts(checklist: str) -> dict[str, int]:
    """How many checkboxes rest at best on each grade, are not observable, or are not covered."""
    strongest = strongest_evidence(checklist_items(checklist))
    unobservable = {n.covers for n in catalog.NOT_OBSERVABLE}
    counts = {g.value: 0 for g in status.EvidenceGrade} | {"not observable": 0, "not covered": 0}
    for item, grade in strongest.items():
        key = grade.value if grade else "not observable" if item in unobservable else "not covered"
        counts[key] += 1
    return counts


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_GRADE_MEANINGS = {
    status.EvidenceGrade.OBSERVED: "the operator saw the property itself (a catalog row, a refused forged token,"
    " a pod spec field, a worker's own configuration over the broker, a counter moving under its own requests).",
    status.EvidenceGrade.INFERRED: "a proxy that correlates with the property (a metric family exists, the"
    " answers cite only the caller's sources).",
    status.EvidenceGrade.REPORTED: "PayScope's own statement about itself (the `/admin` documents), kept only"
    " where nothing better can be reached.",
}


def _grade_meaning(grade: status.EvidenceGrade) -> str:
    return _GRADE_MEANINGS[grade]


def _row(c: registry.Check[Any]) -> str:
    needs = ", ".join(f"`{d}`" for d in c.depends_on) or "-"
    return (
        f"| `{c.id}` | {c.severity.value} | {c.grade.value} | {_escape(c.title)} | {_escape(c.passes_when)}"
        f" | `{c.source.name}` | {needs} |"
    )


def render_markdown(checklist: str | None = None) -> str:
    """The whole of docs/checks.md."""
    lines = [
        "# Audit checks",
        "",
        "Generated from `payscope_operator.audit.catalog` by",
        "`python -m payscope_operator.audit.document docs/audit-checklist.md`; do not edit by hand.",
        "",
        "Each check reports Pass, Fail, Warn, Unknown (its evidence could not be had or does not",
        "decide it) or NotConfigured (what it reads is not declared in the spec); Unknown and",
        "NotConfigured never count as a pass. A check that depends on others is judged only when",
        "they passed or warned; otherwise it is Unknown with reason `BlockedBy`, naming the one that",
        "did not. A failing or warning check covered by an unexpired waiver reports Waived; a waiver names",
        "one check, an area (`B.neo4j.*`) or a whole dimension (`D.*`), which also accepts that the",
        "dimension is not audited at all (otherwise `Ready` is False, reason `DimensionsNotConfigured`).",
        "",
        "The grade says how strong a check's evidence is:",
        "",
        *(f"- **{grade.value}**: {_grade_meaning(grade)}" for grade in status.EvidenceGrade),
        "",
        "Every result in `status.checks` carries a `reason`:",
        "",
        "| reason | meaning |",
        "|---|---|",
        *(f"| `{reason.value}` | {_escape(reason.description)} |" for reason in status.CheckReason),
        "",
    ]
    for dimension in conditions.Dimension:
        mine = [c for c in catalog.CATALOG if c.dimension == dimension]
        grades = ", ".join(f"{sum(c.grade == g for c in mine)} {g.value}" for g in status.EvidenceGrade)
        lines += [
            f"## {dimension.letter}: {dimension.value} (`{dimension.condition_type.value}`)",
            "",
            f"{len(mine)} checks: {grades}.",
            "",
            "| id | severity | grade | what it probes | Pass means | source | depends on |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [_row(c) for c in sorted(mine, key=lambda c: c.id)]
        lines.append("")
    lines += ["## Checklist items no probe can observe", "", "| checklist item | why |", "|---|---|"]
    lines += [f"| {_escape(n.covers)} | {_escape(n.reason)} |" for n in catalog.NOT_OBSERVABLE]
    lines += [
        "",
        "## Retired check ids",
        "",
        "Removed from the catalog and never reused; a waiver naming one is accepted and has no effect.",
        "",
        "| id | why |",
        "|---|---|",
    ]
    lines += [f"| `{i}` | {_escape(why)} |" for i, why in sorted(catalog.RETIRED.items())]
    lines.append("")
    if checklist is not None:
        lines += _coverage_table(checklist)
    return "\n".join(lines)


def _coverage_table(checklist: str) -> list[str]:
    by_id = {c.id: c for c in catalog.CATALOG}
    items = checklist_items(checklist)
    strongest = strongest_evidence(items)
    counts = ", ".join(f"{n} {what}" for what, n in grade_counts(checklist).items())
    lines = [
        "## Checklist coverage",
        "",
        f"{len(items)} checkboxes by the strongest evidence behind them: {counts}. A check covers some items only",
        "by proxy (a probe being set says little about graceful startup): there its grade for that item is the",
        "weaker one, shown after its id.",
        "",
        "| checklist item | strongest evidence | covered by |",
        "|---|---|---|",
    ]
    for item, by in coverage(items).items():
        shown = ", ".join(f"`{b}` ({by_id[b].grade_for(item).value})" if b in by_id else "not observable" for b in by)
        grade = strongest[item]
        lines.append(f"| {_escape(item)} | {grade.value if grade else '-'} | {shown or '**not covered**'} |")
    lines.append("")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    checklist = Path(args[0]).read_text() if args else None
    sys.stdout.write(render_markdown(checklist))
    return 0


if __name__ == "__main__":
    sys.exit(main())
