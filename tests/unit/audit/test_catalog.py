"""The catalog: every checklist checkbox is covered or explained, ids are stable, docs are generated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from payscope_operator.api import conditions, fields
from payscope_operator.audit import document
from payscope_operator.audit.catalog import CATALOG, NOT_OBSERVABLE

REPO = Path(__file__).resolve().parents[3]
CHECKLIST = REPO / "docs" / "audit-checklist.md"
SHARED = REPO.parent / "shared" / "audit-checklist.md"


def test_vendored_checklist_matches_the_shared_one() -> None:
    if not SHARED.exists():
        pytest.skip("no ../shared beside this clone")
    assert CHECKLIST.read_text() == SHARED.read_text()


def test_the_checklist_has_114_readiness_checkboxes() -> None:
    items = document.checklist_items(CHECKLIST.read_text())
    assert len(items) == 114
    assert len(set(items)) == 114


def test_every_checkbox_is_covered_by_a_check_or_explained() -> None:
    found = document.coverage(document.checklist_items(CHECKLIST.read_text()))
    uncovered = [item for item, by in found.items() if not by]
    assert uncovered == []


def test_checks_cover_only_real_checkboxes() -> None:
    items = set(document.checklist_items(CHECKLIST.read_text()))
    unknown = sorted({key for c in CATALOG for key in c.covers if key not in items})
    unknown += sorted(n.covers for n in NOT_OBSERVABLE if n.covers not in items)
    assert unknown == []


def test_not_observable_items_each_give_a_reason() -> None:
    assert all(len(n.reason) > 20 for n in NOT_OBSERVABLE)


def test_ids_are_unique_valid_and_lettered_by_dimension() -> None:
    ids = [c.id for c in CATALOG]
    assert len(ids) == len(set(ids))
    for check in CATALOG:
        assert re.fullmatch(fields.CHECK_ID_PATTERN, check.id), check.id
        assert check.dimension == conditions.Dimension.from_letter(check.id[0])
        assert check.title
        assert check.passes_when


def test_every_dimension_has_checks() -> None:
    assert {c.dimension for c in CATALOG} == set(conditions.Dimension)


def test_docs_checks_md_is_generated_from_the_catalog() -> None:
    rendered = document.render_markdown(CHECKLIST.read_text())
    assert (REPO / "docs" / "checks.md").read_text() == rendered, (
        "docs/checks.md drifted: python -m payscope_operator.audit.document docs/audit-checklist.md > docs/checks.md"
    )


def test_every_check_says_how_to_fix_it() -> None:
    """``kubectl payscope explain`` shows the hint declared beside the check: one or two short sentences."""
    missing = [c.id for c in CATALOG if not c.fix.strip()]
    assert not missing, f"checks without a fix hint (add fix= to their @CHECKS.check): {missing}"
    long = [c.id for c in CATALOG if len(c.fix) > 300]
    assert not long, f"fix hints longer than 300 characters: {long}"
