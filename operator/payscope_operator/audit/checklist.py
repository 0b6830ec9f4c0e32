"""The production-readiness checklist as a document: its sections, subsections and checkboxes, in order.

Why this module exists: the readiness report an auditor reads has the checklist's
own shape (``verdicts`` judges each checkbox, ``report_markdown`` and
``report_html`` render it), so the report needs the checklist's structure, not
only the item keys ``document.checklist_items`` gives. A copy of
``docs/audit-checklist.md`` ships inside the package (``audit-checklist.md``
beside this module; a test keeps the two identical), so the kubectl plugin and
the standalone CLI can render the report without the repository.

What it must not do: judge an item (``verdicts`` does) or render anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from payscope_operator.audit import document

TITLE = "PayScope Production Readiness Audit Report"


@dataclass(frozen=True)
class Item:
    """One checkbox: its text and the key checks name in ``covers`` (``<letter>/<subsection>/<text>``)."""

    text: str
    key: str

    @property
    def is_status_line(self) -> bool:
        """The first checkbox under A is the report's own status line, not a readiness item."""
        return self.text == document.STATUS_LINE


@dataclass(frozen=True)
class Subsection:
    title: str
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Section:
    """A lettered section (``A) Infrastructure & Runtime``): one audit dimension."""

    letter: str
    title: str
    subsections: tuple[Subsection, ...]


@dataclass(frozen=True)
class Checklist:
    title: str
    scope: tuple[str, ...]  # the lines of "Audit Scope", as written
    sections: tuple[Section, ...]

    def items(self) -> tuple[Item, ...]:
        """Every checkbox in document order, the status line included."""
        return tuple(i for s in self.sections for sub in s.subsections for i in sub.items)


def packaged_text() -> str:
    """The checklist shipped with the package (identical to docs/audit-checklist.md)."""
    return resources.files("payscope_operator.audit").joinpath("audit-checklist.md").read_text(encoding="utf-8")


def parse(text: str) -> Checklist:
    """The structure of a checklist written as docs/audit-checklist.md is."""
    title = TITLE
    scope: list[str] = []
    sections: list[tuple[str, str, list[tuple[str, list[Item]]]]] = []
    in_scope = False
    for line in text.splitlines():
        if match := re.match(r"^# (.+?)\s*$", line):
            title = match.group(1)
        elif match := re.match(r"^## ([A-G])\) (.+?)\s*$", line):
            in_scope = False
            sections.append((match.group(1), match.group(2), []))
        elif line.startswith("## "):
            in_scope = line.strip() == "## Audit Scope"
        elif (match := re.match(r"^### (.+?)\s*$", line)) and sections:
            sections[-1][2].append((match.group(1), []))
        elif (match := re.match(r"^- \[[ xX]\] (.+?)\s*$", line)) and sections and sections[-1][2]:
            letter, subsection = sections[-1][0], sections[-1][2][-1][0]
            text = match.group(1)
            sections[-1][2][-1][1].append(Item(text, f"{letter}/{subsection}/{text}"))
        elif in_scope and line.strip():
            scope.append(line.rstrip())
    return Checklist(
        title=title,
        scope=tuple(scope),
        sections=tuple(
            Section(letter, name, tuple(Subsection(sub, tuple(items)) for sub, items in subs))
            for letter, name, subs in sections
        ),
    )


def load() -> Checklist:
    """The packaged checklist, parsed."""
    return parse(packaged_text())
