"""Dimensions A and F as PayScope's pods show them: what their probes run, how they restart, what they log.

Why this module exists: that PayScope waits for its dependencies, retries its
connections, gates traffic on readiness and logs structured lines at a sane level
are behaviours of its running pods, not of its self-description. Evidence: the
pod templates of the Deployments of ``spec.workloads`` (``kubernetes.workloads``:
which handler each probe runs), and the pods themselves (``kubernetes.pods``:
readiness, restart counts, and each container's most recent log lines).

What it must not do: put a log line into a finding (lines may carry tenant data:
findings name the pod, the container and counts), send requests, or do I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from payscope_operator.api import spec, status
from payscope_operator.audit import registry
from payscope_operator.audit.sources import kubernetes, pods
from payscope_operator.kube import pods as kube_pods
from payscope_operator.kube import workloads

Severity = status.Severity
Grade = registry.Grade
Finding = registry.Finding
CHECKS = registry.Registry()

LIVENESS_PATH, READINESS_PATH = "/healthz", "/readyz"
"""Where the API Deployment's probes must point (contract sections 2.1 and 2.2)."""
MAX_RESTARTS = 3
"""A container restarted this often is crashing, typically on a dependency it does not wait for or retry."""
MIN_STRUCTURED_SHARE = 0.95
"""Share of non-empty log lines that must be JSON objects with a level, a time and a message (contract 10)."""
LEVEL_KEYS = ("level", "levelname", "severity", "lvl")
TIME_KEYS = ("ts", "time", "timestamp", "@timestamp", "asctime")
MESSAGE_KEYS = ("event", "message", "msg")
PRODUCTION_LOG_LEVELS = ("INFO", "WARNING", "WARN", "ERROR", "CRITICAL")
VERBOSE_LOG_LEVELS = ("DEBUG", "TRACE")
_PLAIN_LEVEL = re.compile(r"\b(DEBUG|TRACE|INFO|WARNING|WARN|ERROR|CRITICAL)\b")
MAX_SHOWN = 6


# ---- probes: what they run -----------------------------------------------------------------------


def _api_probes(c: workloads.ContainerFacts) -> str | None:
    if (c.liveness_path, c.readiness_path) == (LIVENESS_PATH, READINESS_PATH):
        return None
    return f"liveness {c.liveness_handler or 'none'}, readiness {c.readiness_handler or 'none'}"


@CHECKS.check(
    "A.workloads.probe_paths",
    fix="Point the API's livenessProbe at GET /healthz and its readinessProbe at GET /readyz; give every"
    " container distinct liveness and readiness checks.",
    source=kubernetes.WORKLOADS,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="What the probes of the declared Deployments run: the API's liveness an HTTP GET of /healthz and its "
    "readiness one of /readyz; every other container's liveness and readiness probes distinct.",
    passes_when="A container of the api Deployment probes liveness at /healthz and readiness at /readyz, and no "
    "container runs the same handler for both (the same handler elsewhere: Warn).",
    covers=(
        "F/Health Checks/Liveness/readiness probes",
        "A/Docker Compose/Health checks configured",
        "A/Docker Compose/Dependency ordering (depends_on)",
        "A/Startup & Dependencies/Graceful startup behavior",
        "A/Startup & Dependencies/Wait-for scripts for Postgres, Redis, Neo4j",
    ),
)
def probe_paths(evidence: kubernetes.WorkloadEvidence, desired: spec.PayScopeSpec) -> Finding:
    existing = {role: d for role, d in evidence.deployments.items() if d is not None}
    if not existing:
        return Finding.unknown("None of the declared Deployments exists, so there is no probe to judge.")
    where = "; ".join(
        f"{d.name}/{c.name}: liveness {c.liveness_handler}, readiness {c.readiness_handler}"
        for d in existing.values()
        for c in d.containers
    )
    api = existing.get("api")
    if api is not None and all(_api_probes(c) is not None for c in api.containers):
        shown = "; ".join(f"{c.name}: {_api_probes(c)}" for c in api.containers)
        return Finding.failed(
            f"No container of {api.name} probes liveness at GET {LIVENESS_PATH} and readiness at GET "
            f"{READINESS_PATH} ({shown}): readiness must gate on the dependencies, liveness must not.",
            evidence=where,
        )
    same = [
        f"{d.name}/{c.name}"
        for d in existing.values()
        for c in d.containers
        if c.liveness_handler is not None and c.liveness_handler == c.readiness_handler
    ]
    if same:
        return Finding.warned(
            f"{', '.join(same[:MAX_SHOWN])} run the same handler for liveness and readiness: a dependency outage "
            "restarts these pods instead of taking them out of the Service.",
            evidence=where,
        )
    return Finding.passed("Readiness and liveness probes run distinct handlers (the API's: /readyz, /healthz).", where)


# ---- pods: ready, not restarting -----------------------------------------------------------------


def _pod_problems(deployment: str, pod: kube_pods.PodFacts) -> list[str]:
    problems = [f"{deployment}/{pod.name}: not ready ({pod.phase})"] if not pod.ready else []
    for c in pod.containers:
        if c.waiting_reason in ("CrashLoopBackOff", "Error", "CreateContainerError"):
            problems.append(f"{pod.name}/{c.name}: {c.waiting_reason} after {c.restart_count} restarts")
        elif c.restart_count >= MAX_RESTARTS:
            exit_code = f", last exit code {c.last_exit_code}" if c.last_exit_code is not None else ""
            problems.append(f"{pod.name}/{c.name}: restarted {c.restart_count} times{exit_code}")
    return problems


@CHECKS.check(
    "A.workloads.restarts",
    fix="Find why the named pods crash or are not ready (kubectl describe, logs of the previous run); make"
    " the process wait for and retry its dependencies.",
    source=pods.PODS,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="The pods of the declared Deployments (listed by each Deployment's selector): ready, and not restarting.",
    passes_when=f"Every pod is Ready and no container restarted {MAX_RESTARTS} times or waits in CrashLoopBackOff "
    "(no pod found: Unknown).",
    covers=(
        "A/Startup & Dependencies/Connection retry logic",
        "A/Startup & Dependencies/Wait-for scripts for Postgres, Redis, Neo4j",
        "A/Startup & Dependencies/Graceful startup behavior",
    ),
)
def restarts(evidence: pods.PodEvidence, desired: spec.PayScopeSpec) -> Finding:
    listed = [(w.deployment, p) for w in evidence.workloads.values() if w.pods for p in w.pods]
    if not listed:
        return Finding.unknown("No pod of the declared Deployments was found, so none could be seen to start.")
    problems = [problem for deployment, pod in listed for problem in _pod_problems(deployment, pod)]
    where = ", ".join(f"{w.deployment}: {len(w.pods or ())} pod(s)" for w in evidence.workloads.values())
    if problems:
        return Finding.failed(
            "PayScope's pods do not start cleanly: "
            + "; ".join(problems[:MAX_SHOWN])
            + ". A process should wait for and retry its dependencies, not crash on them.",
            evidence=where,
        )
    most = max(c.restart_count for _, p in listed for c in p.containers) if any(p.containers for _, p in listed) else 0
    return Finding.passed(f"All {len(listed)} pods are ready (at most {most} restarts).", evidence=where)


# ---- logs: structured, at a production level -----------------------------------------------------


def structured(line: str) -> bool:
    """A JSON object carrying a level, a time and a message (under any of their usual keys)."""
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and all(
        any(k in record for k in keys) for keys in (LEVEL_KEYS, TIME_KEYS, MESSAGE_KEYS)
    )


def level_of(line: str) -> str | None:
    """The line's level: its JSON level field, else the first level word of a plain-text line."""
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if isinstance(record, dict):
        found = next((record[k] for k in LEVEL_KEYS if isinstance(record.get(k), str)), None)
        return found.upper() if isinstance(found, str) else None
    match = _PLAIN_LEVEL.search(line[:120])
    return match.group(1) if match else None


def _silent(logs: tuple[pods.Log, ...], where: str) -> Finding:
    """Logs that were read but hold no line: legitimate for a container that has logged nothing yet."""
    return Finding.warned(
        f"The {len(logs)} container log(s) read hold no line yet (a container that logged nothing, or an API server "
        "that could not fetch the lines), so there is nothing to judge.",
        evidence=where,
    )


def _per_log(logs: tuple[pods.Log, ...], count: Callable[[list[str]], int]) -> list[tuple[pods.Log, int, int]]:
    """Each log with its non-empty line count and how many of them ``count`` counted."""
    counted = []
    for log in logs:
        lines = [line for line in log.lines if line.strip()]
        counted.append((log, len(lines), count(lines)))
    return counted


def _where(logs: tuple[pods.Log, ...]) -> str:
    """The containers read; no line counts, which move with every line logged."""
    return ", ".join(f"{log.pod}/{log.container}" for log in logs)


@CHECKS.check(
    "F.logging.structured",
    fix="Log one JSON object per line with a level, a time and a message (logging.format json).",
    source=pods.LOGS,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="The most recent log lines of the declared Deployments' pods (pods/log): JSON objects with a level, a "
    "time and a message.",
    passes_when=f"At least {MIN_STRUCTURED_SHARE:.0%} of the non-empty lines of every container are such JSON "
    "objects (logs holding no line yet: Warn; none readable: Unknown).",
    covers=("F/Logging/Structured logging",),
)
def log_format(logs: tuple[pods.Log, ...], desired: spec.PayScopeSpec) -> Finding:
    counted = _per_log(logs, lambda lines: sum(structured(line) for line in lines))
    where = _where(logs)
    if not sum(n for _, n, _ in counted):
        return _silent(logs, where)
    poor = [
        f"{log.pod}/{log.container} ({good}/{n})" for log, n, good in counted if n and good < MIN_STRUCTURED_SHARE * n
    ]
    if poor:
        return Finding.failed(
            f"Containers log lines that are not JSON objects with a level, a time and a message: "
            f"{', '.join(poor[:MAX_SHOWN])}; log aggregation cannot index them: switch their formatter to JSON.",
            evidence=where,
        )
    return Finding.passed(
        f"The recent log lines of every container read are structured JSON (at least {MIN_STRUCTURED_SHARE:.0%}).",
        evidence=where,
    )


@CHECKS.check(
    "F.logging.level",
    fix="Run with log level INFO or higher in production.",
    source=pods.LOGS,
    severity=Severity.LOW,
    grade=Grade.OBSERVED,
    title="The level of the most recent log lines of the declared Deployments' pods (pods/log).",
    passes_when=f"No line at {' or '.join(VERBOSE_LOG_LEVELS)} (such lines: Warn); at least one line carries a level "
    "(none: Unknown; no line yet: Warn).",
    covers=("F/Logging/Log levels appropriate",),
)
def log_level(logs: tuple[pods.Log, ...], desired: spec.PayScopeSpec) -> Finding:
    verbose = _per_log(logs, lambda lines: sum(level_of(line) in VERBOSE_LOG_LEVELS for line in lines))
    where = _where(logs)
    if not sum(n for _, n, _ in verbose):
        return _silent(logs, where)
    if not any(level_of(line) is not None for log in logs for line in log.lines if line.strip()):
        return Finding.unknown("No recent log line carries a level, so the level in force cannot be seen.", where)
    noisy = [f"{log.pod}/{log.container}" for log, _, bad in verbose if bad]
    if noisy:
        return Finding.warned(
            f"PayScope logs at DEBUG in production: {', '.join(noisy[:MAX_SHOWN])}; verbose logs cost money and may "
            "carry tenant data: log at INFO.",
            evidence=where,
        )
    return Finding.passed("No recent log line is at DEBUG or TRACE.", evidence=where)
