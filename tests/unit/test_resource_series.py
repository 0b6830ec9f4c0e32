"""The compact per-resource series expose exactly what prometheus_client's own metrics did, and forget whole.

``resource_series`` replaced a prometheus_client child object per series; dashboards,
alerts and tests read the same names, labels, buckets and values, so the exposition
of the same history is compared sample by sample with one made by prometheus_client's
Counter, Gauge and Histogram (whose ``_created`` samples only they carried).
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from payscope_operator import resource_series, telemetry
from payscope_operator.api import status

WHO = ["namespace", "name"]
PSD = SimpleNamespace(namespace="ns", name="psd")
OTHER = SimpleNamespace(namespace="ns", name="other")


def _samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    found = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_created") and not sample.name.startswith(
                ("payscope_watch", "payscope_operator")
            ):
                found.add((sample.name, tuple(sorted(sample.labels.items())), sample.value))
    return found


def _result(check_status: status.CheckStatus) -> status.PayScopeStatus:
    check = status.CheckResult(
        id="B.postgres.rls",
        dimension="DataLayer",
        severity="High",
        status=check_status,
        message="m",
    )
    return status.PayScopeStatus(observed_generation=1, checks=[check])


def _reference() -> str:
    """The same history as :func:`_history`, recorded by prometheus_client's own metrics."""
    r = CollectorRegistry()
    buckets = resource_series.BUCKETS
    reconcile = Histogram("payscope_reconcile_duration_seconds", "d", WHO, registry=r, buckets=buckets)
    audit = Histogram("payscope_audit_duration_seconds", "d", WHO, registry=r, buckets=buckets)
    errors = Counter("payscope_reconcile_errors_total", "d", [*WHO, "stage"], registry=r)
    check = Gauge("payscope_check_result", "d", [*WHO, "check", "dimension", "severity", "status"], registry=r)
    transitions = Counter("payscope_condition_transitions_total", "d", WHO, registry=r)
    changes = Counter("payscope_provisioning_changes_total", "d", [*WHO, "system", "verb"], registry=r)
    drift = Counter("payscope_drift_corrections_total", "d", [*WHO, "system"], registry=r)
    for seconds in (0.05, 0.3, 10.0, 500.0):
        reconcile.labels("ns", "psd").observe(seconds)
        audit.labels("ns", "psd").observe(seconds / 2)
    check.labels("ns", "psd", "B.postgres.rls", "DataLayer", "High", "Fail").set(1)
    reconcile.labels("ns", "other").observe(1.0)
    audit.labels("ns", "other").observe(0.5)
    check.labels("ns", "other", "B.postgres.rls", "DataLayer", "High", "Fail").set(1)
    errors.labels("ns", "psd", "pass").inc(2)
    transitions.labels("ns", "psd").inc(3)
    changes.labels("ns", "psd", "postgres", "create").inc(2)
    drift.labels("ns", "psd", "postgres").inc()
    return generate_latest(r).decode()


def _history(metrics: telemetry.Metrics) -> None:
    for seconds in (0.05, 0.3, 10.0, 500.0):
        metrics.pass_finished(PSD, _result(status.CheckStatus.PASS), seconds, seconds / 2)
    metrics.pass_finished(PSD, _result(status.CheckStatus.FAIL), 0, 0)  # the last pass's checks replace the others
    metrics.pass_finished(OTHER, _result(status.CheckStatus.FAIL), 1.0, 0.5)
    metrics.error(PSD, "pass")
    metrics.error(PSD, "pass")
    metrics.transitions(PSD, 3)
    metrics.transitions(PSD, 0)
    create = SimpleNamespace(system="postgres", verb="create", drift=False)
    metrics.provisioned(PSD, [create, SimpleNamespace(system="postgres", verb="create", drift=True)])


def test_the_exposition_is_prometheus_clients_own() -> None:
    metrics = telemetry.Metrics()
    _history(metrics)
    ours = {s for s in _samples(generate_latest(metrics.registry).decode()) if "last_run" not in s[0]}
    reference = _samples(_reference())
    # The extra pass of 0 s: one more observation in every bucket of psd's histograms.
    adjusted = set()
    for name, labels, value in reference:
        extra = name.endswith(("_bucket", "_count")) and ("name", "psd") in labels
        adjusted.add((name, labels, value + 1 if extra else value))
    assert ours == adjusted


def test_forget_removes_every_series_of_one_resource_only() -> None:
    metrics = telemetry.Metrics()
    _history(metrics)
    assert metrics.series_of("ns", "psd") == 8  # check, 2 histograms, last run, errors, transitions, change, drift
    metrics.forget(PSD)
    scraped = generate_latest(metrics.registry).decode()
    assert 'name="psd"' not in scraped
    assert 'name="other"' in scraped
    assert metrics.series_of("ns", "psd") == 0


def test_resources_with_the_same_results_share_their_label_tuples() -> None:
    metrics = telemetry.Metrics()
    _history(metrics)
    psd, other = metrics.resources.records[("ns", "psd")], metrics.resources.records[("ns", "other")]
    assert psd.checks[0] is other.checks[0]


def test_a_scrape_in_another_thread_while_resources_come_and_go_sees_whole_records() -> None:
    metrics = telemetry.Metrics()
    failures: list[BaseException] = []
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            try:
                _samples(generate_latest(metrics.registry).decode())
            except BaseException as exc:  # noqa: BLE001 - collected and asserted on
                failures.append(exc)
                return

    reader = threading.Thread(target=scrape)
    reader.start()
    try:
        for i in range(3000):
            who = SimpleNamespace(namespace="ns", name=f"r{i % 50}")
            metrics.pass_finished(who, _result(status.CheckStatus.PASS), 0.1, 0.1)
            metrics.error(who, f"stage{i % 7}")
            if i % 3 == 0:
                metrics.forget(who)
    finally:
        stop.set()
        reader.join()
    assert failures == []
