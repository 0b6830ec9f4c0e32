"""Liveness: a quiet watch is healthy; a watch that misses changes for too long is not."""

from __future__ import annotations

import pytest

from payscope_operator import cli, telemetry


def test_a_quiet_watch_in_step_with_the_server_is_healthy() -> None:
    health = telemetry.Health(max_stale=120)
    for minute in range(10):
        health.compare({"a": "5", "b": "7"}, {"a": "5", "b": "7"}, now=minute * 60.0)
    assert health.problem(now=600.0) is None


def test_a_change_in_flight_is_not_staleness() -> None:
    health = telemetry.Health(max_stale=120)
    health.compare({"a": "6"}, {"a": "5"}, now=0.0)  # the watch event is on its way
    health.compare({"a": "6"}, {"a": "6"}, now=60.0)
    assert health.stale == frozenset()
    assert health.problem(now=500.0) is None


def test_a_watch_that_keeps_missing_a_change_fails_after_max_stale() -> None:
    health = telemetry.Health(max_stale=120)
    health.compare({"a": "6"}, {"a": "5"}, now=0.0)
    health.compare({"a": "6"}, {"a": "5"}, now=60.0)
    assert health.stale == frozenset({"a"})
    assert health.problem(now=120.0) is None
    health.compare({"a": "6"}, {"a": "5"}, now=180.0)
    problem = health.problem(now=181.0)
    assert problem is not None
    assert "missed changes to 1 resource" in problem


def test_a_resource_the_watch_never_delivered_counts_as_missed() -> None:
    health = telemetry.Health(max_stale=0)
    health.compare({"new": "1"}, {}, now=0.0)
    health.compare({"new": "1"}, {}, now=60.0)
    assert health.problem(now=61.0) is not None


def test_recovery_clears_the_problem() -> None:
    health = telemetry.Health(max_stale=0)
    health.compare({"a": "6"}, {"a": "5"}, now=0.0)
    health.compare({"a": "6"}, {"a": "5"}, now=60.0)
    assert health.problem(now=61.0) is not None
    health.compare({"a": "6"}, {"a": "6"}, now=120.0)
    assert health.problem(now=121.0) is None


def test_the_staleness_threshold_comes_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.parser().parse_args(["run"]).watch_stale_after == 120.0
    assert cli.parser().parse_args(["run", "--watch-stale-after", "30"]).watch_stale_after == 30.0
    monkeypatch.setenv("PAYSCOPE_WATCH_STALE_AFTER", "45")
    monkeypatch.setenv("PAYSCOPE_WATCH_CHECK_INTERVAL", "5")
    args = cli.parser().parse_args(["run"])
    assert (args.watch_stale_after, args.watch_check_interval) == (45.0, 5.0)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--watch-stale-after", "-1"),
        ("--watch-stale-after", "soon"),
        ("--watch-stale-after", "nan"),
        ("--watch-check-interval", "0"),
    ],
)
def test_a_setting_that_is_not_a_duration_is_refused(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["run", flag, value])
    assert flag in capsys.readouterr().err


def test_the_threshold_decides_when_a_missed_change_fails_liveness() -> None:
    health = telemetry.Health(max_stale=30)
    health.compare({"a": "6"}, {"a": "5"}, now=0.0)
    health.compare({"a": "6"}, {"a": "5"}, now=10.0)
    assert health.problem(now=40.0) is None
    assert health.problem(now=41.0) is not None
