"""Every metric series of a resource, held as plain values and turned into samples only when scraped.

Why it exists: a resource exports about 120 series (a ``payscope_check_result`` per
check, its conditions, scores, two histograms, counters). prometheus_client keeps a
child object per series, each with its own lock and value objects per sample: about
a kilobyte a series, most of an operator's memory at a thousand resources. Here a
resource's series are one small record (:class:`Series`): its checks and conditions
as tuples of label tuples shared by every resource that has the same result
(interned), its histograms as bucket counts, its counters as numbers. A scrape
builds the samples from the records, the way kube-state-metrics renders its store
instead of keeping a client library's objects per object.

The exposition is what prometheus_client's own metrics produced for the same names,
labels and buckets (counters without their ``_created`` samples, which only
prometheus_client's objects carried). A record is replaced or dropped whole:
``forget`` removes every series of a resource in one step.

What it must not do: read Kubernetes or the resource (``telemetry.Metrics`` feeds it
plain values), keep a value read from a Secret, or hold anything per resource
beyond its record.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_BOUNDS = (*(floatToGoString(b) for b in BUCKETS), "+Inf")  # type: ignore[no-untyped-call]
_INTERNED_AT_MOST = 50_000
"""Distinct label tuples shared between resources; beyond it (never, with a closed vocabulary) they are not shared."""

Labels = tuple[str, ...]


@dataclass(slots=True)
class Histogram:
    """Observations in :data:`BUCKETS` (per bucket, not cumulative) and their sum."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        running, buckets = 0, []
        for bound, count in zip(_BOUNDS, list(self.counts), strict=True):
            running += count
            buckets.append((bound, float(running)))
        return buckets


@dataclass(slots=True)
class Series:
    """One resource's series: replaced by a pass (the status ones) or counted up (the others)."""

    conditions: tuple[Labels, ...] = ()
    """(type, status, reason) of each condition."""
    checks: tuple[Labels, ...] = ()
    """(check, dimension, severity, status) of each check."""
    scores: tuple[tuple[str, float], ...] = ()
    last_audit: float | None = None
    reconcile: Histogram | None = None
    audit: Histogram | None = None
    transitions: float = 0.0
    errors: dict[str, float] = field(default_factory=dict)
    changes: dict[tuple[str, str], float] = field(default_factory=dict)
    drift: dict[str, float] = field(default_factory=dict)

    def count(self) -> int:
        """How many series this record exports."""
        histograms = sum(1 for h in (self.reconcile, self.audit) if h is not None)
        singles = (self.last_audit is not None) + (self.transitions > 0)
        return (
            len(self.conditions) + len(self.checks) + len(self.scores) + singles + histograms
            + len(self.errors) + len(self.changes) + len(self.drift)
        )  # fmt: skip


class ResourceSeries(Collector):
    """The records of every resource, by (namespace, name); a prometheus_client collector."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], Series] = {}
        self._interned: dict[Labels, Labels] = {}

    def of(self, namespace: str, name: str) -> Series:
        return self.records.setdefault((namespace, name), Series())

    def forget(self, namespace: str, name: str) -> None:
        self.records.pop((namespace, name), None)

    def shared(self, labels: Labels) -> Labels:
        """``labels``, as the one tuple every resource with the same labels holds."""
        found = self._interned.get(labels)
        if found is not None:
            return found
        if len(self._interned) < _INTERNED_AT_MOST:
            self._interned[labels] = labels
        return labels

    def shared_all(self, many: Sequence[Labels]) -> tuple[Labels, ...]:
        return tuple(self.shared(labels) for labels in many)

    def collect(self) -> Iterator[Metric]:
        records = list(self.records.items())  # one step: a scrape in a thread sees a consistent set of resources
        yield from _histograms(records)
        yield from _gauges(records)
        yield from _counters(records)


_WHO = ["namespace", "name"]


def _histograms(records: list[tuple[tuple[str, str], Series]]) -> Iterator[Metric]:
    reconcile = HistogramMetricFamily(
        "payscope_reconcile_duration_seconds", "Duration of one reconcile pass.", labels=_WHO
    )
    audit = HistogramMetricFamily("payscope_audit_duration_seconds", "Duration of one audit.", labels=_WHO)
    for who, series in records:
        for family, histogram in ((reconcile, series.reconcile), (audit, series.audit)):
            if histogram is not None:
                family.add_metric(list(who), histogram.cumulative(), histogram.total)
    yield reconcile
    yield audit


def _gauges(records: list[tuple[tuple[str, str], Series]]) -> Iterator[Metric]:
    condition = GaugeMetricFamily(
        "payscope_condition", "1 for the current status of each condition.", labels=[*_WHO, "type", "status", "reason"]
    )
    check = GaugeMetricFamily(
        "payscope_check_result",
        "1 for the current result of each audit check.",
        labels=[*_WHO, "check", "dimension", "severity", "status"],
    )
    score = GaugeMetricFamily(
        "payscope_dimension_score", "Readiness score (0-100) per dimension.", labels=[*_WHO, "dimension"]
    )
    last = GaugeMetricFamily(
        "payscope_audit_last_run_timestamp_seconds", "Unix time the last audit of a resource finished.", labels=_WHO
    )
    for (ns, name), series in records:
        for labels in series.conditions:
            condition.add_metric([ns, name, *labels], 1.0)
        for labels in series.checks:
            check.add_metric([ns, name, *labels], 1.0)
        for dimension, value in series.scores:
            score.add_metric([ns, name, dimension], value)
        if series.last_audit is not None:
            last.add_metric([ns, name], series.last_audit)
    yield from (condition, check, score, last)


def _counters(records: list[tuple[tuple[str, str], Series]]) -> Iterator[Metric]:
    errors = CounterMetricFamily("payscope_reconcile_errors", "Passes or stages that failed.", labels=[*_WHO, "stage"])
    transitions = CounterMetricFamily(
        "payscope_condition_transitions", "Condition status or reason changes.", labels=_WHO
    )
    changes = CounterMetricFamily(
        "payscope_provisioning_changes",
        "Changes applied to external systems (create, update, replace, drop).",
        labels=[*_WHO, "system", "verb"],
    )
    drift = CounterMetricFamily(
        "payscope_drift_corrections",
        "Applied changes that corrected an out-of-band change to an object the operator manages.",
        labels=[*_WHO, "system"],
    )
    for (ns, name), series in records:
        for stage, value in tuple(series.errors.items()):
            errors.add_metric([ns, name, stage], value)
        if series.transitions:
            transitions.add_metric([ns, name], series.transitions)
        for (system, verb), value in tuple(series.changes.items()):
            changes.add_metric([ns, name, system, verb], value)
        for system, value in tuple(series.drift.items()):
            drift.add_metric([ns, name, system], value)
    yield from (errors, transitions, changes, drift)
