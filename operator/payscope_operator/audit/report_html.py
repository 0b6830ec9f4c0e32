"""The readiness report as one self-contained HTML page: the Markdown report's content, for a browser.

Why this module exists: an auditor or a change board often wants a page to open
or print rather than Markdown. It renders the same :class:`verdicts.Report` as
``report_markdown`` (same sections, checkboxes, checks, findings, waivers and
reasons, in the same order), with its styles inline and no script, so the file
can be mailed or attached as it is.

What it must not do: judge anything (``verdicts`` does), load anything from the
network (no external stylesheet, font or script), or read a cluster or a clock.
"""

from __future__ import annotations

from html import escape

from payscope_operator import __version__
from payscope_operator.audit import report_markdown, verdicts

_STYLE = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 70rem;
       color: #1f2328; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.9rem; border-bottom: 3px solid #0b5394; padding-bottom: .3rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .8rem 0; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left; }
td.n { text-align: right; }
ul.items { list-style: none; padding-left: .2rem; }
ul.items > li { margin: .35rem 0; }
ul.checks { margin: .2rem 0 .2rem 1.6rem; padding-left: .8rem; font-size: .92rem; }
.box { font-size: 1.15rem; margin-right: .35rem; }
.state { font-size: .8rem; border-radius: .6rem; padding: .05rem .5rem; margin-left: .4rem; color: #fff; }
.s-Passed, .s-Pass, .s-True { background: #1a7f37; }
.s-Passed-with-warnings, .s-Warn { background: #9a6700; }
.s-Failing, .s-Fail, .s-False { background: #cf222e; }
.s-Waived { background: #8250df; }
.s-Unknown, .s-NoResult { background: #6e7781; }
.s-Not-audited, .s-NotConfigured, .s-Not-observable { background: #afb8c1; color: #1f2328; }
.overall { font-size: 1.2rem; font-weight: bold; }
code { background: #f6f8fa; padding: 0 .25rem; border-radius: .2rem; }
.muted { color: #57606a; }
"""


def _state(label: str) -> str:
    return f'<span class="state s-{escape(label.replace(" ", "-"))}">{escape(label)}</span>'


def _summary(report: verdicts.Report) -> str:
    s = report.summary
    rows = []
    for section in report.sections:
        d = section.summary
        cond = section.condition
        cells = (
            "".join(
                f'<td class="n">{v}</td>'
                for v in (d.score, d.passed, d.failed, d.warned, d.unknown, d.not_configured, d.waived)
            )
            if d
            else '<td colspan="7" class="muted">not reported</td>'
        )
        shown = _state(cond.status.value) + f" {escape(cond.reason)}" if cond else "not reported"
        rows.append(f"<tr><td>{section.letter}) {escape(section.title)}</td><td>{shown}</td>{cells}</tr>")
    ready = (
        f"<blockquote>Ready is {escape(s.ready.status.value)} ({escape(s.ready.reason)}): "
        f"{escape(s.ready.message)}</blockquote>"
        if s.ready
        else ""
    )
    ticked = sum(1 for v in report.verdicts() if v.ticked)
    generation = f"generation {s.generation}, " if s.generation is not None else ""
    observed = f"observed generation {s.observed_generation}" if s.observed_generation is not None else "no status"
    return f"""<h2>Executive Summary</h2>
<p><b>Audit Date:</b> {escape(report_markdown.when(s.generated))}<br>
<b>Auditor:</b> payscope-operator {escape(__version__)} (automated: the live status of the PayScopeDeployment
joined with the operator's check catalog)<br>
<b>System:</b> PayScope - installation <code>{escape(s.namespace)}/{escape(s.name)}</code>
({escape(generation + observed)})<br>
<b>Status:</b> <span class="overall">{escape(s.overall)}</span></p>
{ready}
<p><b>Checklist:</b> {ticked} of {len(report.verdicts())} checkboxes ticked.
<b>Status as of:</b> {escape(report_markdown.when(s.status_time))}.</p>
<table><tr><th>Dimension</th><th>Condition</th><th>Score</th><th>Pass</th><th>Fail</th><th>Warn</th>
<th>Unknown</th><th>Not configured</th><th>Waived</th></tr>
{"".join(rows)}</table>"""


def _evidence(e: verdicts.Evidence) -> str:
    label = e.status.value if e.status is not None else "NoResult"
    since = f' <span class="muted">since {escape(report_markdown.when(e.since))}</span>' if e.since else ""
    extra = f' <span class="muted">(evidence: {escape(e.evidence)})</span>' if e.evidence else ""
    waived = "".join(
        f"<br>waived by <code>{escape(w.check)}</code> until {w.expires}: {escape(w.reason)}" for w in e.waivers
    )
    return (
        f"<li><code>{escape(e.check_id)}</code>{_state(label)} {escape(e.severity.value)} · "
        f"{escape(e.grade.value)}{since}: {escape(e.message)}{extra}{waived}</li>"
    )


def _verdict(v: verdicts.Verdict) -> str:
    box = '<span class="box">&#9745;</span>' if v.ticked else '<span class="box">&#9744;</span>'
    if v.is_status_line:
        return f"<li>{box}<b>Status:</b> {escape(v.item.text.removeprefix('**Status:** '))}</li>"
    details = [_evidence(e) for e in v.evidence]
    details += [f"<li>Not observable from outside PayScope: {escape(r)}</li>" for r in v.unobservable]
    nested = f'<ul class="checks">{"".join(details)}</ul>' if details else ""
    return f"<li>{box}{escape(v.item.text)}{_state(v.state.value)}{nested}</li>"


def _sections(report: verdicts.Report) -> str:
    parts = []
    for section in report.sections:
        cond = section.condition
        head = (
            f"<p><b>{escape(section.dimension.condition_type.value)}:</b> "
            + (
                f"{_state(cond.status.value)} {escape(cond.reason)} — {escape(cond.message)}"
                if cond
                else "not reported"
            )
            + "</p>"
        )
        subs = "".join(
            f'<h3>{escape(sub.title)}</h3><ul class="items">{"".join(_verdict(v) for v in sub.verdicts)}</ul>'
            for sub in section.subsections
        )
        parts.append(f"<h2>{section.letter}) {escape(section.title)}</h2>{head}{subs}")
    return "".join(parts)


def _appendix(report: verdicts.Report) -> str:
    if report.waivers:
        rows = "".join(
            f"<tr><td><code>{escape(w.check)}</code></td><td>{escape(w.reason)}</td><td>{w.expires}"
            f"{' (expired)' if w.expired else ''}</td><td>{escape(', '.join(w.covers) or 'no check')}</td></tr>"
            for w in report.waivers
        )
        waivers = f"<table><tr><th>Waiver</th><th>Reason</th><th>Expires</th><th>Covers</th></tr>{rows}</table>"
    else:
        waivers = "<p>None: every check counts.</p>"
    others = "".join(_evidence(e) for e in report.other_checks)
    return f"<h2>Waivers</h2>{waivers}<h2>Checks outside the checklist</h2><ul>{others}</ul>"


def render(report: verdicts.Report) -> str:
    """The whole report as an HTML document."""
    s = report.summary
    intro = "".join(f"<p>{escape(line)}</p>" for line in report.scope if not line.startswith("- "))
    listed = "".join(f"<li>{escape(line[2:])}</li>" for line in report.scope if line.startswith("- "))
    scope = f"{intro}<ul>{listed}</ul>"
    grades = "".join(
        f"<li><b>{g.value}</b>: {escape(m.replace('`', ''))}</li>" for g, m in report_markdown.GRADE_MEANINGS.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{escape(report.title)}: {escape(s.namespace)}/{escape(s.name)}</title>
<style>{_STYLE}</style></head>
<body>
<h1 id="title">{escape(report.title)}</h1>
{_summary(report)}
<h2>Audit Scope</h2>{scope}
<h2>How to read this report</h2><p><b>Tick rule.</b> {escape(verdicts.TICK_RULE)}</p>
<p>Evidence grades:</p><ul>{grades}</ul>
{_sections(report)}
{_appendix(report)}
<h2>Status: {escape(s.overall)}</h2>
</body></html>
"""
