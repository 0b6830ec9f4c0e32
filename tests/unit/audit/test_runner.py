"""The audit runner: timeouts per source, concurrency, NotConfigured, BlockedBy, reasons, waivers, ordering."""

from __future__ import annotations

import asyncio
import datetime
import time
from dataclasses import dataclass
from typing import Any

import pytest

from payscope_operator import errors
from payscope_operator.api import spec, status
from payscope_operator.audit import registry, runner

TODAY = datetime.date(2026, 11, 28)
S = status.CheckStatus
Reason = status.CheckReason


@dataclass
class FakeSession:
    spec: spec.PayScopeSpec


async def _fast(_: Any) -> int:
    return 3


async def _hang(_: Any) -> int:
    await asyncio.sleep(3600)
    return 0


async def _refused(_: Any) -> int:
    raise errors.DependencyUnavailable("redis at 127.0.0.1:1 refused the connection")


async def _crash(_: Any) -> int:
    raise KeyError("secret-value-must-not-leak")


def _source(name: str, gather: Any, *, configured: bool = True, timeout: float = 0.3) -> registry.Source[int]:
    return registry.Source(name, gather, lambda s: configured, f"{name} not configured", timeout=lambda s: timeout)


def _declared(
    check_id: str, source: registry.Source[int], evaluate: registry.Evaluate[int], depends_on: tuple[str, ...] = ()
) -> registry.Check[int]:
    """One check, declared the one way there is: the registry's decorator on its evaluate function."""
    checks = registry.Registry()
    checks.check(
        check_id,
        source=source,
        severity=status.Severity.HIGH,
        grade=registry.Grade.OBSERVED,
        title="t",
        passes_when="p",
        depends_on=depends_on,
    )(evaluate)
    return next(iter(checks))


def _check(
    check_id: str, source: registry.Source[int], limit: int = 5, depends_on: tuple[str, ...] = ()
) -> registry.Check[int]:
    def evaluate(value: int, _: spec.PayScopeSpec) -> registry.Finding:
        if value < 0:
            return registry.Finding.unknown("negative: cannot tell")
        return registry.Finding.passed("ok") if value <= limit else registry.Finding.failed(f"{value} > {limit}")

    return _declared(check_id, source, evaluate, depends_on)


def _run(catalog: list[registry.Check[Any]], desired: spec.PayScopeSpec | None = None) -> runner.Report:
    session = FakeSession(desired or spec.PayScopeSpec())
    return asyncio.run(runner.run(catalog, session, today=TODAY))


def test_hanging_source_is_unknown_within_its_timeout_and_others_still_pass() -> None:
    fast, hang = _source("fast", _fast), _source("hang", _hang, timeout=0.5)
    started = time.monotonic()
    report = _run([_check("C.a.fast", fast), _check("C.a.hang", hang), _check("E.a.fast2", fast)])
    elapsed = time.monotonic() - started
    by_id = {r.id: r for r in report.results}
    assert by_id["C.a.fast"].status == status.CheckStatus.PASS
    assert by_id["E.a.fast2"].status == status.CheckStatus.PASS
    assert by_id["C.a.hang"].status == status.CheckStatus.UNKNOWN
    assert "no answer within 0.5s" in by_id["C.a.hang"].message
    assert elapsed < 1.5


def test_many_hanging_sources_run_concurrently() -> None:
    catalog = [_check(f"C.h.c{i}", _source(f"hang{i}", _hang, timeout=0.5)) for i in range(6)]
    started = time.monotonic()
    report = _run(catalog)
    assert time.monotonic() - started < 1.5  # not 6 x 0.5s
    assert all(r.status == status.CheckStatus.UNKNOWN for r in report.results)


def test_source_shared_by_checks_is_gathered_once() -> None:
    calls = 0

    async def counted(_: Any) -> int:
        nonlocal calls
        calls += 1
        return 1

    source = _source("counted", counted)
    _run([_check("B.a.one", source), _check("B.a.two", source), _check("G.a.three", source)])
    assert calls == 1


def test_errors_become_unknown_with_safe_messages() -> None:
    report = _run([_check("C.a.refused", _source("r", _refused)), _check("C.a.crash", _source("c", _crash))])
    by_id = {r.id: r for r in report.results}
    assert by_id["C.a.refused"].status == status.CheckStatus.UNKNOWN
    assert "refused the connection" in by_id["C.a.refused"].message
    assert by_id["C.a.crash"].message == "c: unexpected KeyError (the operator's log has the traceback)"
    assert by_id["C.a.refused"].reason == Reason.SOURCE_UNAVAILABLE
    assert by_id["C.a.crash"].reason == Reason.UNEXPECTED_ERROR  # a bug is not proof that the system is down
    assert "secret-value" not in str(report.results)


def test_unconfigured_source_is_not_configured_never_pass() -> None:
    report = _run([_check("D.a.absent", _source("absent", _fast, configured=False))])
    assert report.results[0].status == status.CheckStatus.NOT_CONFIGURED
    assert report.results[0].message == "absent not configured"


def test_waiver_applies_until_expiry_and_expired_is_reported() -> None:
    source = _source("s", _fast)
    catalog: list[registry.Check[Any]] = [
        _check("F.metrics.agents", source, limit=1),
        _check("F.metrics.errors", source, limit=1),
    ]
    desired = spec.PayScopeSpec.model_validate(
        {
            "audit": {
                "waivers": [
                    {"check": "F.metrics.agents", "reason": "agents ship in 2.0", "expires": "2026-12-31"},
                    {"check": "F.metrics.errors", "reason": "old", "expires": "2026-11-01"},
                ]
            }
        }
    )
    report = _run(catalog, desired)
    by_id = {r.id: r for r in report.results}
    assert by_id["F.metrics.agents"].status == status.CheckStatus.WAIVED
    assert "agents ship in 2.0" in by_id["F.metrics.agents"].message
    assert by_id["F.metrics.errors"].status == status.CheckStatus.FAIL
    assert [w.check for w in report.expired_waivers] == ["F.metrics.errors"]


def test_results_are_failing_first() -> None:
    ok, bad = _source("ok", _fast), _source("bad", _refused)
    report = _run([_check("A.a.pass", ok), _check("B.a.fail", ok, limit=1), _check("C.a.unknown", bad)])
    assert [r.status for r in report.results] == [
        status.CheckStatus.FAIL,
        status.CheckStatus.UNKNOWN,
        status.CheckStatus.PASS,
    ]


def test_a_costly_source_is_reused_until_its_interval_passes_or_the_spec_changes() -> None:
    calls = 0

    async def costly(_: Any) -> int:
        nonlocal calls
        calls += 1
        return 1

    source = registry.Source("agents", costly, lambda s: True, "absent", reuse_for=lambda s: 60.0)
    catalog: list[registry.Check[Any]] = [_check("E.a.costly", source)]
    memory: runner.Memory = {}
    first, second = spec.PayScopeSpec(), spec.PayScopeSpec.model_validate({"audit": {"interval": "90s"}})

    async def run(desired: spec.PayScopeSpec) -> runner.Report:
        return await runner.run(catalog, FakeSession(desired), today=TODAY, memory=memory)

    asyncio.run(run(first))
    asyncio.run(run(first))
    assert calls == 1
    asyncio.run(run(second))
    assert calls == 2


def test_a_failed_gathering_is_not_reused() -> None:
    calls = 0

    async def flaky(_: Any) -> int:
        nonlocal calls
        calls += 1
        raise errors.DependencyUnavailable("down")

    source = registry.Source("agents", flaky, lambda s: True, "absent", reuse_for=lambda s: 60.0)
    memory: runner.Memory = {}
    for _ in range(2):
        report = asyncio.run(
            runner.run([_check("E.a.flaky", source)], FakeSession(spec.PayScopeSpec()), today=TODAY, memory=memory)
        )
        assert report.results[0].status == status.CheckStatus.UNKNOWN
    assert calls == 2


async def _value(value: int) -> int:
    return value


def _constant(name: str, value: int) -> registry.Source[int]:
    return _source(name, lambda _: _value(value))


def _by_id(report: runner.Report) -> dict[str, status.CheckResult]:
    return {r.id: r for r in report.results}


@pytest.mark.parametrize(
    ("prerequisite", "expected", "reason", "fragment"),
    [
        (_constant("p", 1), S.PASS, Reason.EVALUATED, "ok"),
        (_constant("p", 9), S.UNKNOWN, Reason.BLOCKED_BY, "Blocked by A.p.first, which is Fail: 9 > 5"),
        (_constant("p", -1), S.UNKNOWN, Reason.BLOCKED_BY, "Blocked by A.p.first, which is Unknown: negative"),
        (_source("p", _refused), S.UNKNOWN, Reason.BLOCKED_BY, "which is Unknown: p: redis at 127.0.0.1:1 refused"),
        (_source("p", _fast, configured=False), S.UNKNOWN, Reason.BLOCKED_BY, "which is NotConfigured"),
    ],
    ids=["passed", "failed", "inconclusive", "unreachable", "not-configured"],
)
def test_a_check_is_blocked_by_a_prerequisite_that_did_not_pass(
    prerequisite: registry.Source[int], expected: status.CheckStatus, reason: status.CheckReason, fragment: str
) -> None:
    dependent = _check("E.p.second", _constant("d", 1), depends_on=("A.p.first",))
    report = _run([dependent, _check("A.p.first", prerequisite)])  # declared before its prerequisite on purpose
    result = _by_id(report)["E.p.second"]
    assert (result.status, result.reason) == (expected, reason)
    assert fragment in result.message


def test_a_warning_prerequisite_does_not_block() -> None:
    source = _source("w", _fast)
    warn = _declared("A.w.warns", source, lambda value, desired: registry.Finding.warned("watch out"))
    report = _run([warn, _check("A.w.after", source, depends_on=("A.w.warns",))])
    assert _by_id(report)["A.w.after"].status == S.PASS


def test_blocking_names_every_prerequisite_that_did_not_pass_and_propagates() -> None:
    bad, good = _constant("bad", 9), _constant("good", 1)
    report = _run(
        [
            _check("A.c.bad", bad),
            _check("A.c.bad2", bad),
            _check("A.c.good", good),
            _check("A.c.both", good, depends_on=("A.c.good", "A.c.bad", "A.c.bad2")),
            _check("A.c.next", good, depends_on=("A.c.both",)),
        ]
    )
    both, after = _by_id(report)["A.c.both"], _by_id(report)["A.c.next"]
    assert both.message.startswith("Blocked by A.c.bad (and A.c.bad2), which is Fail: 9 > 5")
    assert (after.status, after.reason) == (S.UNKNOWN, Reason.BLOCKED_BY)
    assert after.message.startswith("Blocked by A.c.both, which is Unknown: Blocked by A.c.bad")


def test_an_unreachable_source_reports_its_own_error_before_blocking() -> None:
    down = _source("down", _refused)
    report = _run([_check("C.d.first", down), _check("C.d.second", down, depends_on=("C.d.first",))])
    second = _by_id(report)["C.d.second"]
    assert (second.status, second.reason) == (S.UNKNOWN, Reason.SOURCE_UNAVAILABLE)
    assert "refused the connection" in second.message


def test_a_waived_prerequisite_still_blocks_its_dependents() -> None:
    source = _constant("v", 9)
    desired = spec.PayScopeSpec.model_validate(
        {"audit": {"waivers": [{"check": "F.v.first", "reason": "known", "expires": "2027-01-31"}]}}
    )
    report = _run([_check("F.v.first", source), _check("F.v.second", source, depends_on=("F.v.first",))], desired)
    by_id = _by_id(report)
    assert (by_id["F.v.first"].status, by_id["F.v.first"].reason) == (S.WAIVED, Reason.WAIVED)
    assert by_id["F.v.second"].reason == Reason.BLOCKED_BY


def test_a_dependency_outside_the_catalog_is_refused() -> None:
    with pytest.raises(registry.RegistrationError, match="unknown check"):
        _run([_check("A.x.alone", _constant("x", 1), depends_on=("A.x.missing",))])


@pytest.mark.parametrize(
    ("source", "expected", "reason"),
    [
        (_constant("r", 1), S.PASS, Reason.EVALUATED),
        (_constant("r", 9), S.FAIL, Reason.EVALUATED),
        (_constant("r", -1), S.UNKNOWN, Reason.INCONCLUSIVE),
        (_source("r", _hang, timeout=0.1), S.UNKNOWN, Reason.SOURCE_UNAVAILABLE),
        (_source("r", _fast, configured=False), S.NOT_CONFIGURED, Reason.NOT_CONFIGURED),
    ],
    ids=["pass", "fail", "inconclusive", "timeout", "not-configured"],
)
def test_every_result_carries_its_reason(
    source: registry.Source[int], expected: status.CheckStatus, reason: status.CheckReason
) -> None:
    result = _run([_check("B.r.one", source)]).results[0]
    assert (result.status, result.reason) == (expected, reason)


def test_an_evaluation_that_raises_is_unknown_with_unexpected_error() -> None:
    def explode(value: int, desired: spec.PayScopeSpec) -> registry.Finding:
        raise ValueError("secret-value-must-not-leak")

    check = _declared("B.e.boom", _source("e", _fast), explode)
    result = _run([check]).results[0]
    assert (result.status, result.reason) == (S.UNKNOWN, Reason.UNEXPECTED_ERROR)
    assert result.message == "could not evaluate the evidence: probe failed: ValueError"


def test_a_part_the_source_cannot_supply_is_unknown_with_the_reason_it_gives() -> None:
    checks = registry.Registry()
    whole = _constant("whole", 3)
    odd = whole.part(lambda v: v if v % 2 else registry.Finding.unknown(f"{v} is even"))
    even = whole.part(lambda v: v if not v % 2 else registry.Finding.unknown(f"{v} is odd"))

    @checks.check(
        "D.p.odd", source=odd, severity=status.Severity.LOW, grade=registry.Grade.REPORTED, title="t", passes_when="p"
    )
    @checks.check(
        "D.p.even", source=even, severity=status.Severity.LOW, grade=registry.Grade.REPORTED, title="t", passes_when="p"
    )
    def positive(value: int, desired: spec.PayScopeSpec) -> registry.Finding:
        return registry.Finding.passed(f"{value} judged")

    by_id = _by_id(_run(list(checks)))
    assert (by_id["D.p.odd"].status, by_id["D.p.odd"].message) == (S.PASS, "3 judged")
    assert (by_id["D.p.even"].status, by_id["D.p.even"].reason) == (S.UNKNOWN, Reason.INCONCLUSIVE)
    assert by_id["D.p.even"].message == "3 is odd"


# Waivers by prefix and of whole dimensions ------------------------------------------------------


def _waiving(*waivers: tuple[str, str]) -> spec.PayScopeSpec:
    listed = [{"check": check, "reason": f"accepted: {check}", "expires": expires} for check, expires in waivers]
    return spec.PayScopeSpec.model_validate({"audit": {"waivers": listed}})


@pytest.mark.parametrize(
    ("waiver", "waived"),
    [
        ("D.*", {"D.a.fail", "D.b.fail"}),
        ("D.a.*", {"D.a.fail"}),
        ("D.a.fail", {"D.a.fail"}),
        ("D.b.*", {"D.b.fail"}),
        ("E.*", {"E.a.fail"}),
        ("C.*", set()),
    ],
)
def test_a_waiver_names_one_check_an_area_or_a_dimension(waiver: str, waived: set[str]) -> None:
    bad = _constant("bad", 9)
    catalog = [
        _check("D.a.fail", bad),
        _check("D.b.fail", bad),
        _check("E.a.fail", bad),
        _check("D.a.pass", _constant("one", 1)),
    ]
    by_id = _by_id(_run(catalog, _waiving((waiver, "2027-01-31"))))
    assert {i for i, r in by_id.items() if r.status == S.WAIVED} == waived
    assert by_id["D.a.pass"].status == S.PASS  # a waiver never touches a passing check
    for check_id in waived:
        assert by_id[check_id].message.startswith(f"Waived by {waiver} until 2027-01-31: accepted: {waiver}")


def test_the_most_specific_live_waiver_applies_and_a_stale_one_is_reported() -> None:
    bad = _constant("bad", 9)
    desired = _waiving(("D.*", "2027-01-31"), ("D.a.fail", "2026-01-01"))
    report = _run([_check("D.a.fail", bad)], desired)
    (result,) = report.results
    assert result.message.startswith("Waived by D.* until 2027-01-31")
    assert report.expired_waivers == ()
    expired = _run([_check("D.a.fail", bad)], _waiving(("D.*", "2026-01-01"), ("D.a.*", "2026-02-01")))
    assert expired.results[0].status == S.FAIL
    assert [w.check for w in expired.expired_waivers] == ["D.a.*"]


def test_a_dimension_none_of_whose_checks_ran_is_accepted_only_by_a_live_dimension_waiver() -> None:
    off = _source("off", _fast, configured=False)
    catalog = [
        _check("D.a.one", off),
        _check("E.a.one", off),
        _check("F.a.one", off),
        _check("G.a.one", _constant("one", 1)),
    ]
    desired = _waiving(("D.*", "2027-01-31"), ("E.a.*", "2027-01-31"), ("F.*", "2026-01-01"), ("G.*", "2027-01-31"))
    report = _run(catalog, desired)
    assert {d.letter: w.check for d, w in report.waived_dimensions.items()} == {"D": "D.*"}
    assert [w.check for w in report.expired_waivers] == ["F.*"]  # E.a.* names an area, G ran
