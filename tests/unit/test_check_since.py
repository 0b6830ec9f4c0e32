"""``status.checks[].since``: when a check entered its current status, kept across passes like lastTransitionTime.

``kubectl payscope status`` shows how long a check has been failing from it, so it
must move only when the check's status flips, and an audit over an unchanged
installation must still write nothing.
"""

from __future__ import annotations

import datetime

from payscope_operator.api import conditions, status
from payscope_operator.reconcile import readiness, report

T0 = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)
T2 = T1 + datetime.timedelta(minutes=5)
CS = status.CheckStatus


def _check(check_id: str, state: CS) -> status.CheckResult:
    return status.CheckResult(
        id=check_id, dimension=conditions.Dimension.of_check(check_id), status=state, severity=status.Severity.HIGH
    )


def _draft(*checks: status.CheckResult) -> report.Draft:
    return report.Draft(readiness.Facts(1, checks), checks=checks)


def _since(result: status.PayScopeStatus) -> dict[str, datetime.datetime | None]:
    return {c.id: c.since for c in result.checks}


def test_a_first_pass_stamps_every_check_with_its_time() -> None:
    first = report.build(_draft(_check("A.x.one", CS.PASS), _check("B.x.two", CS.FAIL)), previous=None, now=T0)
    assert _since(first) == {"B.x.two": T0, "A.x.one": T0}


def test_since_holds_while_the_status_holds_and_moves_when_it_flips() -> None:
    first = report.build(_draft(_check("A.x.one", CS.PASS), _check("B.x.two", CS.FAIL)), previous=None, now=T0)
    second = report.build(_draft(_check("A.x.one", CS.FAIL), _check("B.x.two", CS.FAIL)), previous=first, now=T1)
    assert _since(second) == {"A.x.one": T1, "B.x.two": T0}
    third = report.build(_draft(_check("A.x.one", CS.FAIL), _check("B.x.two", CS.PASS)), previous=second, now=T2)
    assert _since(third) == {"A.x.one": T1, "B.x.two": T2}


def test_a_new_check_gets_the_pass_time_and_a_waiver_is_a_new_status() -> None:
    first = report.build(_draft(_check("B.x.two", CS.FAIL)), previous=None, now=T0)
    second = report.build(_draft(_check("B.x.two", CS.WAIVED), _check("C.x.new", CS.PASS)), previous=first, now=T1)
    assert _since(second) == {"B.x.two": T1, "C.x.new": T1}


def test_an_unchanged_pass_writes_nothing() -> None:
    checks = (_check("A.x.one", CS.PASS), _check("B.x.two", CS.FAIL))
    first = report.build(_draft(*checks), previous=None, now=T0)
    stored = report.to_wire(first)
    again = report.build(_draft(*checks), previous=report.parse(stored), now=T2)
    assert report.changes(stored, report.parse(stored), again) is None


def test_a_status_written_before_since_existed_is_stamped_once() -> None:
    checks = (_check("A.x.one", CS.PASS),)
    old = report.to_wire(report.build(_draft(*checks), previous=None, now=T0))
    for check in old["checks"]:
        del check["since"]
    upgraded = report.build(_draft(*checks), previous=report.parse(old), now=T1)
    assert _since(upgraded) == {"A.x.one": T1}
    patch = report.changes(old, report.parse(old), upgraded)
    assert patch is not None
    assert set(patch) == {"checks", "lastAuditTime"}
