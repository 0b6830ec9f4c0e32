"""The readiness report: the checklist's shape kept, the tick rule, waivers and grades shown; Markdown and HTML.

The report is pure (status + catalog -> text), so these tests build statuses the
way a pass does (``reconcile.report.build``) and read the rendered text back.
``tests/integration/test_kubectl_plugin.py`` renders it from a live resource and
in headless Chromium.
"""

from __future__ import annotations

import datetime
import html
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from payscope_operator.api import conditions, spec, status
from payscope_operator.audit import catalog, checklist, document, report_html, report_markdown, verdicts
from payscope_operator.reconcile import readiness, report

REPO = Path(__file__).resolve().parents[3]
NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)
CS = status.CheckStatus
BOX = re.compile(r"^- \[( |x)\] (.+?)(?: — (.+))?$")


def _status(overrides: dict[str, CS] | None = None) -> status.PayScopeStatus:
    """Every check of the catalog Pass, but ``overrides``; built as a pass builds it."""
    results = [
        status.CheckResult(
            id=c.id,
            dimension=c.dimension,
            status=(overrides or {}).get(c.id, CS.PASS),
            severity=c.severity,
            reason="Evaluated",
            message=f"finding of {c.id}",
        )
        for c in catalog.CATALOG
    ]
    provisioned = readiness.Provisioning(status.ConditionStatus.TRUE, conditions.Reason.PROVISIONED, "ok")
    draft = report.Draft(readiness.Facts(2, tuple(results), provisioned), checks=tuple(results))
    return report.build(draft, previous=None, now=NOW - datetime.timedelta(hours=3))


def _report(overrides: dict[str, CS] | None = None, waivers: tuple[spec.Waiver, ...] = ()) -> verdicts.Report:
    subject = verdicts.Subject("bank-prod", "payscope", _status(overrides), waivers, generation=2)
    return verdicts.build(subject, now=NOW)


def _boxes(markdown: str) -> list[tuple[bool, str, str | None]]:
    return [(m.group(1) == "x", m.group(2), m.group(3)) for line in markdown.splitlines() if (m := BOX.match(line))]


def _item(rep: verdicts.Report, key: str) -> verdicts.Verdict:
    return next(v for v in rep.verdicts() if v.item.key == key)


def test_the_packaged_checklist_is_the_repository_copy() -> None:
    assert checklist.packaged_text() == (REPO / "docs" / "audit-checklist.md").read_text()


def test_every_checkbox_of_the_checklist_is_in_the_markdown_in_order() -> None:
    rendered = report_markdown.render(_report({"F.metrics.agents": CS.FAIL}))
    expected = document.checklist_items((REPO / "docs" / "audit-checklist.md").read_text())
    boxes = _boxes(rendered)
    assert boxes[0] == (False, "**Status:** NOT READY (ChecksFailing)", None)
    # Re-read the rendered report with the checklist's own parser (ticks, states and the status line undone).
    plain = "\n".join(
        (f"- [ ] {document.STATUS_LINE}" if m.group(2).startswith("**Status:**") else f"- [ ] {m.group(2)}")
        if (m := BOX.match(line))
        else line
        for line in rendered.splitlines()
        if not line.startswith("  ")
    )
    assert document.checklist_items(plain) == expected
    assert rendered.startswith("# PayScope Production Readiness Audit Report\n")
    assert rendered.rstrip().endswith("## Status: NOT READY (ChecksFailing)")


def test_every_section_and_subsection_heading_is_kept_in_order() -> None:
    source = (REPO / "docs" / "audit-checklist.md").read_text()
    rendered = report_markdown.render(_report())
    heads = [line for line in source.splitlines() if re.match(r"^(## [A-G]\)|### )", line)]
    assert [line for line in rendered.splitlines() if line in heads] == heads


@pytest.mark.parametrize(
    ("statuses", "state"),
    [
        ((CS.PASS, CS.PASS), verdicts.ItemState.PASSED),
        ((CS.PASS, CS.WARN), verdicts.ItemState.WARNED),
        ((CS.PASS, CS.FAIL), verdicts.ItemState.FAILING),
        ((CS.WAIVED, CS.PASS), verdicts.ItemState.WAIVED),
        ((CS.WAIVED, CS.FAIL), verdicts.ItemState.FAILING),
        ((CS.PASS, CS.UNKNOWN), verdicts.ItemState.UNKNOWN),
        ((CS.PASS, None), verdicts.ItemState.UNKNOWN),
        ((CS.PASS, CS.NOT_CONFIGURED), verdicts.ItemState.NOT_AUDITED),
        ((CS.UNKNOWN, CS.FAIL), verdicts.ItemState.FAILING),
        ((), verdicts.ItemState.NOT_AUDITED),
    ],
)
def test_the_tick_rule_the_worst_covering_check_decides(
    statuses: tuple[CS | None, ...], state: verdicts.ItemState
) -> None:
    evidence = [
        verdicts.Evidence(
            f"A.x.c{i}", "t", "p", status.Severity.LOW, status.EvidenceGrade.OBSERVED, s, "m", None, None, ()
        )
        for i, s in enumerate(statuses)
    ]
    assert verdicts.judge(evidence) == state
    assert (state in verdicts.TICKED) == (state in (verdicts.ItemState.PASSED, verdicts.ItemState.WARNED))


def test_not_observable_items_are_unticked_with_their_reason() -> None:
    rep = _report()
    verdict = _item(rep, "A/Docker Compose/docker-compose.yml file exists")
    assert verdict.state == verdicts.ItemState.NOT_OBSERVABLE
    assert not verdict.ticked
    rendered = report_markdown.render(rep)
    assert (
        "- [ ] docker-compose.yml file exists — Not observable\n  - Not observable from outside PayScope: A file"
        in (rendered)
    )


def test_a_healthy_installation_ticks_every_observable_item_and_shows_its_evidence() -> None:
    rep = _report()
    states = {v.state for v in rep.verdicts()}
    assert states == {verdicts.ItemState.PASSED, verdicts.ItemState.NOT_OBSERVABLE}
    rendered = report_markdown.render(rep)
    assert (
        "- [x] RLS policies active — Passed\n  - `B.postgres.rls_enabled` Pass · Critical · Observed · since"
        " 2026-11-30 09:00 UTC: finding of B.postgres.rls_enabled" in rendered
    )
    assert "**Status:** READY (AllChecksPassed)" in rendered


def test_a_failing_check_unticks_each_item_it_covers_with_its_finding() -> None:
    rep = _report({"G.jwt.expired": CS.FAIL})
    keys = next(c for c in catalog.CATALOG if c.id == "G.jwt.expired").covers
    for key in keys:
        assert _item(rep, key).state == verdicts.ItemState.FAILING
    rendered = report_markdown.render(rep)
    assert "- [ ] Expiry checking — Failing\n  - `G.jwt.expired` **Fail** · Critical · Observed" in rendered
    assert "finding of G.jwt.expired" in rendered
    assert rep.summary.overall == "NOT READY (ChecksFailing)"


def test_a_waived_item_stays_unticked_and_shows_the_waiver() -> None:
    waiver = spec.Waiver(
        check="F.metrics.agents", reason="agent metrics ship in 2.4", expires=datetime.date(2027, 1, 31)
    )
    rep = _report({"F.metrics.agents": CS.WAIVED}, (waiver,))
    verdict = _item(rep, "F/Metrics/Agent metrics")
    assert verdict.state == verdicts.ItemState.WAIVED
    assert not verdict.ticked
    rendered = report_markdown.render(rep)
    assert "    - waived by `F.metrics.agents` until 2027-01-31: agent metrics ship in 2.4" in rendered
    assert "| `F.metrics.agents` | agent metrics ship in 2.4 | 2027-01-31 | `F.metrics.agents` |" in rendered


def test_a_pattern_waiver_covers_every_check_it_matches() -> None:
    assert verdicts.waiver_covers("D.*", "D.agents.coverage")
    assert not verdicts.waiver_covers("D.*", "E.intents.describe")
    assert verdicts.waiver_covers("D.agents.coverage", "D.agents.coverage")
    assert not verdicts.waiver_covers("D.agents.coverage", "D.agents.coverage_x")


def test_not_configured_checks_leave_their_items_not_audited() -> None:
    """status.checks does not list them; the spec, which declares no Pinecone, says they are NotConfigured."""
    pinecone = {c.id: CS.NOT_CONFIGURED for c in catalog.CATALOG if c.id.startswith("B.pinecone.")}
    held = _status(pinecone)
    assert not [c for c in held.checks if c.id.startswith("B.pinecone.")]
    assert held.dimensions is not None
    data_layer = held.dimensions.get(conditions.Dimension.DATA_LAYER)
    assert data_layer is not None
    assert data_layer.not_configured == len(pinecone)
    desired = verdicts.spec_of({"managementPolicy": "ObserveOnly", "tenancy": {}})
    rep = verdicts.build(verdicts.Subject("ns", "n", held, desired=desired), now=NOW)
    verdict = _item(rep, "B/Pinecone/Namespace configuration")
    assert verdict.state == verdicts.ItemState.NOT_AUDITED
    assert {e.status for e in verdict.evidence} == {CS.NOT_CONFIGURED}
    assert "No result in status.checks" not in report_markdown.render(rep)


def test_a_status_without_a_result_for_a_check_is_unknown_not_ticked() -> None:
    held = _status()
    trimmed = held.model_copy(update={"checks": tuple(c for c in held.checks if c.id != "B.postgres.rls_enabled")})
    rep = verdicts.build(verdicts.Subject("ns", "n", trimmed), now=NOW)
    verdict = _item(rep, "B/Postgres/RLS policies active")
    assert verdict.state == verdicts.ItemState.UNKNOWN
    assert "No result in status.checks" in report_markdown.render(rep)


def test_the_grade_is_the_status_grade_when_it_carries_one_else_the_catalogs() -> None:
    check = next(c for c in catalog.CATALOG if c.grade == status.EvidenceGrade.OBSERVED)
    assert verdicts.reported_grade(None, check) == status.EvidenceGrade.OBSERVED
    graded = cast(Any, SimpleNamespace(grade="Reported"))
    assert verdicts.reported_grade(graded, check) == status.EvidenceGrade.REPORTED


def test_the_executive_summary_gives_installation_date_state_and_scores() -> None:
    rendered = report_markdown.render(_report({"F.metrics.agents": CS.FAIL}))
    summary = rendered.split("## Audit Scope")[0]
    assert "**Audit Date:** 2026-11-30 12:00 UTC" in summary
    assert "installation `bank-prod/payscope` (generation 2, observed generation 2)" in summary
    assert "**Status:** NOT READY (ChecksFailing)" in summary
    assert re.search(r"\| F\) Observability & Ops \| `ObservabilityReady` False \(ChecksFailing\) \| \d+ \|", summary)
    assert "| A) Infrastructure & Runtime | `InfrastructureReady` True (AllChecksPassed) | 100 |" in summary


def test_free_text_cannot_inject_markup() -> None:
    assert report_markdown.text("a\n*b* <script>`x`") == "a \\*b\\* \\<script\\>\\`x\\`"
    held = _status({"G.jwt.expired": CS.FAIL})
    hostile = tuple(
        c.model_copy(update={"message": "<script>alert(1)</script> *bold*"}) if c.id == "G.jwt.expired" else c
        for c in held.checks
    )
    rep = verdicts.build(verdicts.Subject("ns", "n", held.model_copy(update={"checks": hostile})), now=NOW)
    page = report_html.render(rep)
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "\\<script\\>alert(1)\\</script\\> \\*bold\\*" in report_markdown.render(rep)


def test_the_html_page_has_the_title_and_every_checkbox_in_order() -> None:
    rep = _report({"F.metrics.agents": CS.FAIL})
    page = report_html.render(rep)
    assert "<title>PayScope Production Readiness Audit Report: bank-prod/payscope</title>" in page
    assert '<h1 id="title">PayScope Production Readiness Audit Report</h1>' in page
    position = 0
    for verdict in rep.verdicts():
        found = page.find(html.escape(verdict.item.text), position)
        assert found > position, verdict.item.key
        position = found
    assert page.count("&#9745;") == sum(1 for v in rep.verdicts() if v.ticked)
    assert "http://" not in page
    assert "https://" not in page
