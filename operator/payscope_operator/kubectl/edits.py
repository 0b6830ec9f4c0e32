"""The changes the plugin makes to a PayScopeDeployment: pause, resume, waive; pure (a resource in, a patch out).

``pause``/``resume`` set or remove the ``payscope.io/paused`` annotation (a merge
patch of metadata): while it is ``"true"`` the operator audits but changes no
external system. ``waive`` adds or replaces one entry of ``spec.audit.waivers``
as a JSON patch (RFC 6902) that first tests the list is still what was read, so
two people waiving at once cannot lose each other's waiver. A waiver is
refused before anything is sent when its check id is unknown (a pattern such
as ``D.*`` must match at least one check, and the spec's schema must accept
it), its date is in the past, or its reason is empty.

What it must not do: send anything (``command`` does), or touch the status.
"""

from __future__ import annotations

import datetime
import fnmatch
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from payscope_operator.api import spec
from payscope_operator.audit import catalog
from payscope_operator.reconcile import reconciler

PAUSED = reconciler.PAUSED_ANNOTATION


class Refused(ValueError):
    """A change the plugin will not send, and why."""


def pause() -> dict[str, Any]:
    return {"metadata": {"annotations": {PAUSED: "true"}}}


def resume() -> dict[str, Any]:
    return {"metadata": {"annotations": {PAUSED: None}}}


def is_paused(obj: Mapping[str, Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(PAUSED, "")).lower() == "true"


def waiver(check: str, reason: str, until: str, *, today: datetime.date) -> spec.Waiver:
    """A valid waiver, or :class:`Refused` saying what is wrong with it."""
    try:
        expires = datetime.date.fromisoformat(until)
    except ValueError:
        raise Refused(f"--until must be a date YYYY-MM-DD, not {until!r}") from None
    if expires < today:
        raise Refused(f"--until {expires} is in the past (today is {today}): a waiver must end today or later")
    if not reason.strip():
        raise Refused("--reason must say why the failure is accepted (it is shown in the status and the report)")
    known = catalog.ids()
    if any(ch in check for ch in "*?"):
        if not any(fnmatch.fnmatchcase(i, check) for i in known):
            raise Refused(f"the pattern {check!r} matches no check")
    elif check not in known:
        raise Refused(f"unknown check id {check!r} (kubectl payscope explain lists what a check is)")
    try:
        return spec.Waiver.model_validate({"check": check, "reason": reason.strip(), "expires": expires.isoformat()})
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        raise Refused(f"the spec does not accept this waiver: {first['msg']}") from None


def waive(obj: Mapping[str, Any], new: spec.Waiver) -> list[dict[str, Any]]:
    """The JSON patch adding ``new`` to the resource's waivers, or replacing the waiver of the same check."""
    entry = new.model_dump(mode="json", by_alias=True)
    desired = obj.get("spec")
    if not isinstance(desired, Mapping):
        return [{"op": "add", "path": "/spec", "value": {"audit": {"waivers": [entry]}}}]
    audit = desired.get("audit")
    if not isinstance(audit, Mapping):
        return [{"op": "add", "path": "/spec/audit", "value": {"waivers": [entry]}}]
    current = audit.get("waivers")
    if not isinstance(current, list):
        return [{"op": "add", "path": "/spec/audit/waivers", "value": [entry]}]
    guard = {"op": "test", "path": "/spec/audit/waivers", "value": current}
    for index, existing in enumerate(current):
        if isinstance(existing, Mapping) and existing.get("check") == new.check:
            return [guard, {"op": "replace", "path": f"/spec/audit/waivers/{index}", "value": entry}]
    return [guard, {"op": "add", "path": "/spec/audit/waivers/-", "value": entry}]
