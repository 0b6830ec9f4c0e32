"""Render the catalog as ``docs/checks.md`` and read the checklist it must cover.

``render_markdown`` is the only source of ``docs/checks.md`` (a test fails when
the file drifts). ``checklist_items`` parses the production-readiness checklist
into keys ``<letter>/<subsection>/<checkbox text>``, the same keys checks name
in ``covers``; ``coverage`` says for each key which checks cover it or why no
probe can observe it. Run ``python -m payscope_operator.audit.document``
to regenerate the file.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from payscope_operator.api import conditions
from payscope_operator.audit import registry
from payscope_operator.audit.catalog import CATALOG, NOT_OBSERVABLE

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
    catalog: Sequence[registry.Check[Any]] = CATALOG,
    unobservable: Sequence[registry.NotObservable] = NOT_OBSERVABLE,
) -> dict[str, list[str]]:
    """For each checklist key: the ids of the checks covering it, or ``not observable: <reason>``."""
    found: dict[str, list[str]] = {item: [] for item in items}
    for check in catalog:
        for key in check.covers:
            found.setdefault(key, []).append(check.id)
    for entry in unobservable:
        found.setdefault(entry.covers, []).append(f"not observable: {entry.reason}")
    return found


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(checklist: str | None = None) -> str:
    """The whole of docs/checks.md."""
    lines = [
        "# Audit checks",
        "",
        "Generated from `payscope_operator.audit.catalog` by",
        "`python -m payscope_operator.audit.document`; do not edit by hand.",
        "",
        "Each check reports Pass, Fail, Warn, Unknown (the probe could not run) or",
        "NotConfigured (its spec section is absent); Unknown and NotConfigured never count",
        "as a pass. A failing check covered by an unexpired waiver reports Waived.",
        "",
    ]
    for dimension in conditions.Dimension:
        mine = [c for c in CATALOG if c.dimension == dimension]
        lines += [
            f"## {dimension.letter}: {dimension.value} (`{dimension.condition_type.value}`)",
            "",
            "| id | severity | what it probes | Pass means | source |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| `{c.id}` | {c.severity.value} | {_escape(c.title)} | {_escape(c.passes_when)} | `{c.source.name}` |"
            for c in sorted(mine, key=lambda c: c.id)
        ]
        lines.append("")
    lines += ["## Checklist items no probe can observe", "", "| checklist item | why |", "|---|---|"]
    lines += [f"| {_escape(n.covers)} | {_escape(n.reason)} |" for n in NOT_OBSERVABLE]
    lines.append("")
    if checklist is not None:
        lines += ["## Checklist coverage", "", "| checklist item | covered by |", "|---|---|"]
        for item, by in coverage(checklist_items(checklist)).items():
            shown = ", ".join(f"`{b}`" if not b.startswith("not observable") else "not observable" for b in by)
            lines.append(f"| {_escape(item)} | {shown or '**not covered**'} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    checklist = Path(args[0]).read_text() if args else None
    sys.stdout.write(render_markdown(checklist))
    return 0


if __name__ == "__main__":
    sys.exit(main())
