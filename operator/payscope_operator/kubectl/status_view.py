"""``kubectl payscope status``: one line per resource, then what is failing in one of them; pure.

Why this module exists: ``status.checks`` holds about a hundred entries; a person on
call wants the seven dimensions of every installation on one line each, and for one
installation only the checks that fail or could not run, grouped by dimension,
with severity, evidence grade, finding and how long each has been so (from
``status.checks[].since``). ``-o json`` gives the same facts to scripts.

What it must not do: read the cluster or the clock (``command`` passes the
objects and ``now``), or judge a check (the status says what the operator found).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from payscope_operator.api import conditions, status
from payscope_operator.audit import catalog, verdicts
from payscope_operator.kubectl import terminal

CS = status.CheckStatus
SHOWN = (CS.FAIL, CS.UNKNOWN)
"""The checks the detail lists; the others are counted in its last line."""
HEADERS = {
    conditions.Dimension.INFRASTRUCTURE: "INFRA",
    conditions.Dimension.DATA_LAYER: "DATA",
    conditions.Dimension.PIPELINE: "PIPELINE",
    conditions.Dimension.AGENTS: "AGENTS",
    conditions.Dimension.APIS: "APIS",
    conditions.Dimension.OBSERVABILITY: "OBSERV",
    conditions.Dimension.SECURITY: "SECURITY",
}
_WORDS = {status.ConditionStatus.TRUE: "ok", status.ConditionStatus.FALSE: "fail"}
_COLOURS = {"ok": "green", "fail": "red", "unknown": "yellow", "n/c": "grey", "True": "green", "False": "red"}
_STATUS_COLOURS = {CS.FAIL: "red", CS.UNKNOWN: "yellow"}
MAX_FINDING = 200


@dataclass(frozen=True)
class Overview:
    """One PayScopeDeployment as the views need it."""

    namespace: str
    name: str
    created: datetime.datetime | None
    held: status.PayScopeStatus | None  # the stored status
    problem: str | None = None  # why the stored status could not be read

    def condition(self, ctype: str) -> status.Condition | None:
        return next((c for c in (self.held.conditions if self.held else ()) if c.type == ctype), None)


def overview(obj: Mapping[str, Any]) -> Overview:
    """The view of a resource as the API server returned it."""
    meta = obj.get("metadata") or {}
    created = meta.get("creationTimestamp")
    when = datetime.datetime.fromisoformat(created.replace("Z", "+00:00")) if isinstance(created, str) else None
    raw = obj.get("status")
    try:
        held = status.PayScopeStatus.model_validate(raw) if raw else None
    except ValidationError as exc:
        return Overview(meta.get("namespace", ""), meta.get("name", ""), when, None, f"unreadable status: {exc}")
    return Overview(meta.get("namespace", ""), meta.get("name", ""), when, held)


def dimension_cell(view: Overview, dimension: conditions.Dimension) -> str:
    """``ok 100``, ``fail 83``, ``unknown 50``, ``n/c`` (not configured) or ``-`` (no status yet)."""
    cond = view.condition(dimension.condition_type)
    if cond is None:
        return "-"
    if cond.status == status.ConditionStatus.UNKNOWN and cond.reason == conditions.Reason.NOT_CONFIGURED:
        return "n/c"
    summary = view.held.dimensions.get(dimension) if view.held and view.held.dimensions else None
    word = _WORDS.get(cond.status, "unknown")
    return f"{word} {summary.score}" if summary is not None else word


def summary_lines(
    views: Sequence[Overview], now: datetime.datetime, palette: terminal.Palette, *, namespaces: bool
) -> list[str]:
    """The table: one line per resource, a column per dimension (state and score)."""
    head = [*(["NAMESPACE"] if namespaces else []), "NAME", "READY", "REASON", *HEADERS.values(), "AGE"]
    plain: list[list[str]] = [head]
    shown: list[list[str]] = [[palette.paint(h, "bold") for h in head]]
    for view in views:
        ready = view.condition(conditions.ConditionType.READY)
        cells = [
            *([view.namespace] if namespaces else []),
            view.name,
            ready.status.value if ready else "-",
            ready.reason if ready else (view.problem and "StatusUnreadable") or "-",
            *(dimension_cell(view, d) for d in HEADERS),
            terminal.age(view.created, now),
        ]
        plain.append(cells)
        shown.append([palette.paint(c, _COLOURS.get(c.split(" ")[0], "")) for c in cells])
    return terminal.table(shown, plain)


def _grade(result: status.CheckResult) -> str:
    check = next((c for c in catalog.CATALOG if c.id == result.id), None)
    return verdicts.reported_grade(result, check).value if check is not None else "-"


def _finding(result: status.CheckResult) -> str:
    text = " ".join(result.message.split())
    return text if len(text) <= MAX_FINDING else text[: MAX_FINDING - 1] + "…"


def detail_lines(view: Overview, now: datetime.datetime, palette: terminal.Palette) -> list[str]:
    """For one resource: its failing and unknown checks by dimension, then what else there is."""
    if view.problem:
        return [f"{view.namespace}/{view.name}: {view.problem}"]
    if view.held is None or not view.held.checks:
        return [f"{view.namespace}/{view.name}: not audited yet (no status.checks)."]
    lines: list[str] = []
    for dimension in conditions.Dimension:
        mine = [c for c in view.held.checks if c.dimension == dimension and c.status in SHOWN]
        if not mine:
            continue
        cond = view.condition(dimension.condition_type)
        state = f"{cond.type} {cond.status.value} ({cond.reason})" if cond else dimension.condition_type.value
        summary = view.held.dimensions.get(dimension) if view.held.dimensions else None
        score = f", score {summary.score}" if summary else ""
        lines += ["", palette.paint(f"{dimension.value}: {state}{score}", "bold")]
        plain = [["ID", "STATUS", "SEVERITY", "GRADE", "FOR", "FINDING"]]
        for c in mine:
            plain.append([c.id, c.status.value, c.severity.value, _grade(c), terminal.age(c.since, now), _finding(c)])
        shown = [plain[0]] + [
            [row[0], palette.paint(row[1], _STATUS_COLOURS.get(CS(row[1]), "")), *row[2:]] for row in plain[1:]
        ]
        lines += ["  " + line for line in terminal.table(shown, plain)]
    counts = {s: sum(1 for c in view.held.checks if c.status == s) for s in CS}
    summaries = view.held.dimensions
    counts[CS.NOT_CONFIGURED] = sum(  # not listed in status.checks: counted per dimension
        s.not_configured for d in conditions.Dimension if summaries and (s := summaries.get(d)) is not None
    )
    if not any(counts[s] for s in SHOWN):
        lines += ["", f"No failing or unknown check: {counts[CS.PASS]} pass."]
    rest = ", ".join(
        f"{counts[s]} {label}"
        for s, label in ((CS.PASS, "pass"), (CS.WARN, "warn"), (CS.WAIVED, "waived"), (CS.NOT_CONFIGURED, "n/c"))
        if counts[s]
    )
    lines += [
        "",
        f"Also {rest}. `kubectl payscope report {view.name} -n {view.namespace}` shows every check;"
        " `kubectl payscope explain CHECK_ID` says how to fix one.",
    ]
    return lines


def _check_json(c: status.CheckResult, now: datetime.datetime) -> dict[str, Any]:
    shown: dict[str, Any] = c.model_dump(mode="json", by_alias=True, exclude_none=True)
    shown["grade"] = _grade(c)
    shown["forSeconds"] = int((now - c.since).total_seconds()) if c.since else None
    return shown


def as_json(views: Sequence[Overview], now: datetime.datetime) -> dict[str, Any]:
    """The same facts for scripts: per resource, Ready, every dimension, and the failing and unknown checks."""
    items = []
    for view in views:
        ready = view.condition(conditions.ConditionType.READY)
        dims: dict[str, Any] = {}
        for dimension in conditions.Dimension:
            cond = view.condition(dimension.condition_type)
            summary = view.held.dimensions.get(dimension) if view.held and view.held.dimensions else None
            dims[dimension.value] = {
                "status": cond.status.value if cond else None,
                "reason": cond.reason if cond else None,
                "score": summary.score if summary else None,
            }
        failing = [c for c in (view.held.checks if view.held else ()) if c.status in SHOWN]
        items.append(
            {
                "namespace": view.namespace,
                "name": view.name,
                "ready": {"status": ready.status.value, "reason": ready.reason, "message": ready.message}
                if ready
                else None,
                "dimensions": dims,
                "checks": [_check_json(c, now) for c in failing],
                **({"problem": view.problem} if view.problem else {}),
            }
        )
    return {"items": items}
