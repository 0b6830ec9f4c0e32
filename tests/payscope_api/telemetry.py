"""Prometheus metrics and structured log lines of one reference PayScope fixture.

Why it exists: the F checks read ``/metrics`` and the API's log lines, so the
fixture must produce real ones: counters that really count, histograms that
really observe, one JSON object per log line. Each fixture instance owns its
own ``CollectorRegistry`` (never prometheus_client's global one), so several
fixtures in one test process never share a sample.

What it must not do: decide what to count (``app`` calls it), or write a
secret (a token, a signing key) into a metric label or a log line.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Literal, TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from tests.payscope_api import auth, contract
from tests.payscope_api.faults import FaultName, FaultSet

#: The Prometheus text format 0.0.4 media type, understood by every scraper.
METRICS_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
DATABASES: tuple[str, ...] = ("postgres", "neo4j", "pinecone", "redis")
FALLBACK_REASONS: tuple[str, ...] = ("low_confidence", "unclassified")

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogValue = str | int | float | bool | None


def family_name(metric: Metric) -> str:
    """The name a family carries in ``# TYPE`` lines (counters gain ``_total``)."""
    return f"{metric.name}_total" if metric.type == "counter" else metric.name


class _WithoutFamilies(Collector):
    """A view of a registry that hides some families (the ``drop_metric`` fault)."""

    def __init__(self, registry: CollectorRegistry, hidden: frozenset[str]) -> None:
        self._registry = registry
        self._hidden = hidden

    def collect(self) -> Iterable[Metric]:
        return [metric for metric in self._registry.collect() if family_name(metric) not in self._hidden]


class Metrics:
    """Every family of contract.METRIC_FAMILIES, in a registry of this instance's own."""

    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            "http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=reg,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration by method and route template.",
            ["method", "route"],
            registry=reg,
        )
        self.errors = Counter(
            "payscope_errors", "Server-side errors by component and kind.", ["component", "kind"], registry=reg
        )
        self.agent_requests = Counter(
            "payscope_agent_requests", "Agent invocations by intent and outcome.", ["intent", "outcome"], registry=reg
        )
        self.agent_latency = Histogram(
            "payscope_agent_latency_seconds", "Agent latency by intent.", ["intent"], registry=reg
        )
        self.auth_failures = Counter("payscope_auth_failures", "Refused requests by reason.", ["reason"], registry=reg)
        self.fallbacks = Counter(
            "payscope_intent_fallbacks", "Answers routed to the fallback intent, by reason.", ["reason"], registry=reg
        )
        self.db_queries = Counter(
            "payscope_db_queries", "Data-store queries by database and outcome.", ["db", "outcome"], registry=reg
        )
        self.db_duration = Histogram(
            "payscope_db_query_duration_seconds", "Data-store query duration by database.", ["db"], registry=reg
        )
        self.inflight = Gauge("payscope_inflight_requests", "HTTP requests being served.", registry=reg)
        build = Gauge(
            "payscope_build_info", "Build and contract version.", ["version", "contract_version"], registry=reg
        )
        build.labels(version, str(contract.CONTRACT_VERSION)).set(1)
        ProcessCollector(registry=reg)
        self._initialise_series()

    def _initialise_series(self) -> None:
        """Expose zero-valued series up front, so a rate() over them starts at the first scrape."""
        for code in contract.ERROR_CODES:
            self.errors.labels("agent" if code in ("no_agent", "unclassified_query") else "api", code)
        for intent in contract.INTENTS:
            self.agent_requests.labels(intent.value, "ok")
            self.agent_requests.labels(intent.value, "error")
            self.agent_latency.labels(intent.value)
        reasons: tuple[str, ...] = (*auth.AUTH_FAILURES, *auth.DENIALS)
        for reason in reasons:
            self.auth_failures.labels(reason)
        for reason in FALLBACK_REASONS:
            self.fallbacks.labels(reason)
        for db in DATABASES:
            self.db_queries.labels(db, "ok")
            self.db_duration.labels(db)

    def render(self, faults: FaultSet) -> bytes:
        """The text exposition, without the families the ``drop_metric`` faults hide."""
        return generate_latest(_WithoutFamilies(self.registry, faults.args(FaultName.DROP_METRIC)))


class LogWriter:
    """One JSON object per line on a stream (plain text under ``unstructured_logs``)."""

    LOGGER = "payscope.api"
    _ORDER: tuple[LogLevel, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")

    def __init__(self, stream: TextIO | None, faults: FaultSet, level: LogLevel = "INFO") -> None:
        self._stream = stream
        self._faults = faults
        self._level = level

    @property
    def level(self) -> LogLevel:
        """The level in force: DEBUG under the ``log_level_debug`` fault."""
        return "DEBUG" if FaultName.LOG_LEVEL_DEBUG in self._faults else self._level

    def log(self, level: LogLevel, event: str, **fields: LogValue) -> None:
        if self._stream is None or self._ORDER.index(level) < self._ORDER.index(self.level):
            return
        ts = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if FaultName.UNSTRUCTURED_LOGS in self._faults:
            pairs = " ".join(f"{name}={value}" for name, value in fields.items())
            line = f"{ts} {level} {self.LOGGER} {event} {pairs}".rstrip()
        else:
            record: dict[str, LogValue] = {"ts": ts, "level": level, "logger": self.LOGGER, "event": event}
            record.update(fields)
            line = json.dumps(record, separators=(",", ":"), allow_nan=False, default=str)
        self._stream.write(line + "\n")
        self._stream.flush()
