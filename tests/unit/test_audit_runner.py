"""The audit runner: timeouts per source, concurrency, NotConfigured, waivers, ordering."""

from __future__ import annotations

import asyncio
import datetime
import time
from dataclasses import dataclass
from typing import Any

from payscope_operator import errors
from payscope_operator.api import spec, status
from payscope_operator.audit import registry, runner

TODAY = datetime.date(2026, 11, 28)


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


def _check(check_id: str, source: registry.Source[int], limit: int = 5) -> registry.Check[int]:
    def evaluate(value: int, _: spec.PayScopeSpec) -> registry.Finding:
        return registry.Finding.passed("ok") if value <= limit else registry.Finding.failed(f"{value} > {limit}")

    return registry.Check(check_id, "t", "p", status.Severity.HIGH, source, evaluate)


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
    assert by_id["C.a.crash"].message == "c: probe failed: KeyError"
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
