"""``kubectl payscope explain CHECK_ID``: what a check probes, what Pass means, its grade, and how to fix it; pure.

Everything comes from the check's declaration in the catalog (``@CHECKS.check``:
title, passes_when, grade, covers, depends_on, fix), so the explanation cannot
drift from what the operator runs. Checklist items no probe can observe are
explained too, by their text.

What it must not do: read the cluster (a check's meaning does not depend on an
installation), or invent a hint the catalog does not hold.
"""

from __future__ import annotations

import difflib
from typing import Any

from payscope_operator.audit import catalog, registry


class UnknownCheck(LookupError):
    """No check has this id; ``suggestions`` are the closest ids."""

    def __init__(self, check_id: str, suggestions: list[str]) -> None:
        super().__init__(check_id)
        self.check_id = check_id
        self.suggestions = suggestions


def find(check_id: str) -> registry.Check[Any]:
    """The check with this id; raises :class:`UnknownCheck` with the closest ids otherwise."""
    for check in catalog.CATALOG:
        if check.id == check_id:
            return check
    raise UnknownCheck(check_id, difflib.get_close_matches(check_id, sorted(catalog.ids()), n=3, cutoff=0.5))


def _timeout(check: registry.Check[Any]) -> str:
    return "its own" if check.source.timeout is not None else "spec.audit.probeTimeout"


def lines(check_id: str) -> list[str]:
    """The explanation of one check, as lines of text."""
    check = find(check_id)
    dependents = [c.id for c in catalog.CATALOG if check.id in c.depends_on]
    unobservable = [n for n in catalog.NOT_OBSERVABLE if n.covers in check.covers]
    out = [
        f"{check.id}: {check.dimension.value} ({check.dimension.letter}), severity {check.severity.value},"
        f" evidence {check.grade.value}",
        "",
        f"Probes:      {check.title}",
        f"Pass means:  {check.passes_when}",
        f"Evidence:    {check.grade.value}: {_GRADE[check.grade.value]}",
        f"Source:      {check.source.name} (timeout: {_timeout(check)}); NotConfigured when: {check.source.absent}",
        "Checklist:   " + ("; ".join(check.covers) if check.covers else "(no checklist item: an extra check)"),
    ]
    if check.depends_on:
        out.append(f"Depends on:  {', '.join(check.depends_on)} (judged only once they pass or warn)")
    if dependents:
        out.append(f"Needed by:   {', '.join(dependents)}")
    out += [
        f"How to fix:  {check.fix or '(no hint recorded)'}",
        f"Waive:       kubectl payscope waive NAME {check.id} --reason '...' --until YYYY-MM-DD",
    ]
    out += [f"Note:        {n.covers} is also not observable from outside: {n.reason}" for n in unobservable]
    return out


_GRADE = {
    "Observed": "the operator saw the property itself.",
    "Inferred": "a proxy that correlates with the property.",
    "Reported": "PayScope's own statement about itself; nothing better can be reached from outside.",
}
