"""The readiness report as Markdown, in the checklist's own shape: what a change board or a CI job attaches.

Why this module exists: ``kubectl payscope report`` and ``payscope-operator audit
--output markdown`` print the same document. It follows docs/audit-checklist.md
line for line (title, executive summary, scope, sections A to G with their
subsections and every checkbox in order, the closing status) and adds, under each
checkbox, the checks behind it with their live result, severity, evidence grade
and finding, the waivers that apply, or why no probe can observe it.

What it must not do: judge anything (``verdicts`` does) or read a cluster or a clock.
"""

from __future__ import annotations

import datetime
import re

from payscope_operator import __version__
from payscope_operator.api import status
from payscope_operator.audit import verdicts

GRADE_MEANINGS = {
    status.EvidenceGrade.OBSERVED: "the operator saw the property itself (a catalog row, a refused forged token,"
    " a pod spec field).",
    status.EvidenceGrade.INFERRED: "a proxy that correlates with the property (a metric family exists).",
    status.EvidenceGrade.REPORTED: "PayScope's own statement about itself (`/admin` documents, `/readyz`).",
}


def text(value: str) -> str:
    """One line of Markdown from free text: no line breaks, no markup or HTML of its own."""
    flat = re.sub(r"\s+", " ", value).strip()
    return re.sub(r"([\\`*<>])", r"\\\1", flat)


def when(moment: datetime.datetime | None) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "unknown"


def _condition(cond: status.Condition | None) -> str:
    return f"{cond.status.value} ({cond.reason})" if cond else "not reported"


def _summary_table(report: verdicts.Report) -> list[str]:
    rows = [
        "| Dimension | Condition | Score | Pass | Fail | Warn | Unknown | Not configured | Waived |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for section in report.sections:
        s = section.summary
        counts = (
            f"{s.score} | {s.passed} | {s.failed} | {s.warned} | {s.unknown} | {s.not_configured} | {s.waived}"
            if s
            else "- | - | - | - | - | - | -"
        )
        rows.append(
            f"| {section.letter}) {section.title} | `{section.dimension.condition_type.value}` "
            f"{_condition(section.condition)} | {counts} |"
        )
    return rows


def _executive_summary(report: verdicts.Report) -> list[str]:
    s = report.summary
    generation = f"generation {s.generation}, " if s.generation is not None else ""
    observed = f"observed generation {s.observed_generation}" if s.observed_generation is not None else "no status"
    ticked = sum(1 for v in report.verdicts() if v.ticked)
    tally = ", ".join(
        f"{report.count(state)} {state.value.lower()}" for state in verdicts.ItemState if report.count(state)
    )
    lines = [
        "## Executive Summary",
        "",
        f"**Audit Date:** {when(s.generated)}  ",
        f"**Auditor:** payscope-operator {__version__} (automated: the live status of the PayScopeDeployment"
        " joined with the operator's check catalog)  ",
        f"**System:** PayScope - installation `{s.namespace}/{s.name}` ({generation}{observed})  ",
        f"**Status:** {s.overall}",
        "",
    ]
    if s.ready is not None:
        lines += [f"> Ready is {s.ready.status.value} ({s.ready.reason}): {text(s.ready.message)}", ""]
    if s.paused:
        lines += ["> The resource is paused (annotation `payscope.io/paused`): external systems are untouched.", ""]
    lines += [
        f"**Checklist:** {ticked} of {len(report.verdicts())} checkboxes ticked ({tally}).  ",
        f"**Status as of:** {when(s.status_time)} (when the audited status last changed).",
        "",
        *_summary_table(report),
        "",
    ]
    return lines


def _how_to_read() -> list[str]:
    return [
        "## How to read this report",
        "",
        f"**Tick rule.** {verdicts.TICK_RULE}",
        "",
        "Under each checkbox: the checks behind it, each as `id` status · severity · evidence grade · since when"
        " it has had that status, then its finding. Evidence grades:",
        "",
        *(f"- **{grade.value}**: {meaning}" for grade, meaning in GRADE_MEANINGS.items()),
        "",
    ]


def evidence_line(e: verdicts.Evidence) -> str:
    """One check behind a checkbox, as a nested bullet."""
    shown = e.status.value if e.status is not None else "NoResult"
    if e.status not in (status.CheckStatus.PASS, status.CheckStatus.NOT_CONFIGURED):
        shown = f"**{shown}**"
    since = f" · since {when(e.since)}" if e.since else ""
    found = f": {text(e.message)}" if e.message else ""
    extra = f" (evidence: {text(e.evidence)})" if e.evidence else ""
    return f"  - `{e.check_id}` {shown} · {e.severity.value} · {e.grade.value}{since}{found}{extra}"


def _verdict(v: verdicts.Verdict) -> list[str]:
    box = "[x]" if v.ticked else "[ ]"
    if v.is_status_line:
        return [f"- {box} {v.item.text}"]
    lines = [f"- {box} {v.item.text} — {v.state.value}"]
    for e in v.evidence:
        lines.append(evidence_line(e))
        lines += [f"    - waived by `{w.check}` until {w.expires}: {text(w.reason)}" for w in e.waivers]
    lines += [f"  - Not observable from outside PayScope: {text(reason)}" for reason in v.unobservable]
    return lines


def _sections(report: verdicts.Report) -> list[str]:
    lines: list[str] = []
    for section in report.sections:
        lines += [f"## {section.letter}) {section.title}", ""]
        score = f" · score {section.summary.score}" if section.summary else ""
        cond = section.condition
        lines += [
            f"**{section.dimension.condition_type.value}:** {_condition(cond)}{score}"
            + (f" — {text(cond.message)}" if cond and cond.message else ""),
            "",
        ]
        for sub in section.subsections:
            lines += [f"### {sub.title}"]
            for v in sub.verdicts:
                lines += _verdict(v)
            lines.append("")
    return lines


def _appendix(report: verdicts.Report) -> list[str]:
    lines = ["## Waivers", ""]
    if report.waivers:
        lines += ["| Waiver | Reason | Expires | Covers |", "|---|---|---|---|"]
        for w in report.waivers:
            expired = " (expired: the check counts again)" if w.expired else ""
            covers = ", ".join(f"`{c}`" for c in w.covers) or "no check"
            lines.append(f"| `{w.check}` | {text(w.reason).replace('|', '/')} | {w.expires}{expired} | {covers} |")
    else:
        lines.append("None: every check counts.")
    lines += ["", "## Checks outside the checklist", ""]
    lines += [evidence_line(e)[2:] for e in report.other_checks] or ["None."]
    lines.append("")
    return lines


def render(report: verdicts.Report) -> str:
    """The whole report as Markdown."""
    lines = [f"# {report.title}", "", *_executive_summary(report), "## Audit Scope", "", *report.scope, ""]
    lines += _how_to_read()
    lines += _sections(report)
    lines += _appendix(report)
    lines += [f"## Status: {report.summary.overall}", ""]
    return "\n".join(lines)
