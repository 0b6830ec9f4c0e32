"""The checks on PayScope's pods, table-tested: probe handlers, pod states, and real log lines in.

The log checks are fed the reference PayScope fixture's own stdout (JSON lines;
plain text under ``unstructured_logs``; DEBUG lines under ``log_level_debug``),
captured from the fixture serving real requests, and a Celery worker's default
text lines. The test control plane has no kubelet, so ``pods/log`` cannot serve
these lines end to end: reading them through the API server is tested for its
RBAC and error path (tests/integration/test_audit_pods.py), judging them here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io

import pytest

from payscope_operator.api import spec, status
from payscope_operator.audit.checks import pods as pod_checks
from payscope_operator.audit.sources import kubernetes, pods
from payscope_operator.kube import pods as kube_pods
from payscope_operator.kube import workloads
from tests.payscope_api import harness, tokens
from tests.payscope_api.probing import VALID_BODY

S = status.CheckStatus
CHECKS = {c.id: c for c in pod_checks.CHECKS}
NAMES = {"api": "payscope-api", "worker": "payscope-worker", "ingestion": "payscope-ingestion"}
SPEC = spec.PayScopeSpec.model_validate({"workloads": {role: {"name": name} for role, name in NAMES.items()}})
CELERY_LINES = (
    "[2026-11-30 13:10:34,366: INFO/MainProcess] Connected to redis://:**@redis:6379/0",
    "[2026-11-30 13:10:35,402: INFO/MainProcess] payscope-worker@pod ready.",
)


def _fixture_lines(*faults: str) -> tuple[str, ...]:
    """What the reference fixture writes to stdout while it serves a health check, a query and a refusal."""

    async def serve() -> str:
        key = tokens.hs256_key()
        stream = io.StringIO()
        config = harness.fixture_config(key, faults=faults, log_stream=stream)
        async with harness.serve(config, key) as target:
            await target.client.get("/healthz")
            await target.chat({"query": "describe volumes", "intent": "DESCRIBE"})
            await target.chat(VALID_BODY, {"X-Bank-Id": target.bank})
        return stream.getvalue()

    return tuple(asyncio.run(serve()).splitlines())


JSON_LINES = _fixture_lines()
TEXT_LINES = _fixture_lines("unstructured_logs")
DEBUG_LINES = _fixture_lines("log_level_debug")


def _logs(*lines: tuple[str, ...], problem: str | None = None) -> pods.PodEvidence:
    logs = tuple(
        pods.Log("payscope-api", f"payscope-api-{n}", "app", sample, problem) for n, sample in enumerate(lines)
    )
    return pods.PodEvidence({}, logs)


def _judge(check_id: str, evidence: object) -> tuple[status.CheckStatus, str]:
    check = CHECKS[check_id]
    finding = check.judge(evidence, SPEC)
    return finding.status, finding.message


def test_the_fixture_really_logged_what_the_tests_feed() -> None:
    assert len(JSON_LINES) >= 3
    assert all(line.startswith("{") for line in JSON_LINES)
    assert TEXT_LINES
    assert not any(line.startswith("{") for line in TEXT_LINES)
    assert any('"level":"DEBUG"' in line for line in DEBUG_LINES)


@pytest.mark.parametrize(
    ("check_id", "evidence", "expected", "words"),
    [
        ("F.logging.structured", _logs(JSON_LINES), S.PASS, "every container read are structured JSON"),
        ("F.logging.structured", _logs(JSON_LINES, TEXT_LINES), S.FAIL, f"payscope-api-1/app (0/{len(TEXT_LINES)})"),
        ("F.logging.structured", _logs(JSON_LINES, CELERY_LINES), S.FAIL, "payscope-api-1/app (0/2)"),
        ("F.logging.structured", _logs(DEBUG_LINES), S.PASS, "structured JSON"),
        ("F.logging.structured", _logs((), ("",)), S.WARN, "The 2 container log(s) read hold no line yet"),
        ("F.logging.level", _logs(()), S.WARN, "hold no line yet"),
        ("F.logging.structured", _logs(JSON_LINES, problem="forbidden"), S.UNKNOWN, "payscope-api-0/app: forbidden"),
        ("F.logging.structured", pods.PodEvidence({}, ()), S.UNKNOWN, "No pod of the declared Deployments"),
        ("F.logging.level", _logs(JSON_LINES), S.PASS, "No recent log line is at DEBUG or TRACE"),
        ("F.logging.level", _logs(DEBUG_LINES), S.WARN, "logs at DEBUG in production: payscope-api-0/app"),
        ("F.logging.level", _logs(TEXT_LINES), S.PASS, "No recent log line is at DEBUG"),
        ("F.logging.level", _logs(CELERY_LINES), S.PASS, "No recent log line is at DEBUG"),
        ("F.logging.level", _logs(("plain words",)), S.UNKNOWN, "carries a level"),
    ],
)
def test_log_lines(check_id: str, evidence: pods.PodEvidence, expected: status.CheckStatus, words: str) -> None:
    finding = CHECKS[check_id].judge(evidence, SPEC)
    assert finding.status == expected, finding.message
    assert words in finding.message
    assert all(line[:40] not in finding.message for line in (*JSON_LINES, *TEXT_LINES) if len(line) > 40)


def test_lines_are_classified_by_their_fields_not_their_look() -> None:
    assert pod_checks.structured('{"time": "t", "severity": "INFO", "msg": "m"}')
    assert not pod_checks.structured('{"level": "INFO", "event": "no time"}')
    assert not pod_checks.structured('["level", "ts", "event"]')
    assert pod_checks.level_of('{"levelname": "debug"}') == "DEBUG"
    assert pod_checks.level_of(CELERY_LINES[0]) == "INFO"


# ---- probes and pods ------------------------------------------------------------------------------

API = workloads.ContainerFacts(
    "app",
    True,
    True,
    False,
    ("cpu", "memory"),
    ("memory",),
    True,
    liveness_handler="httpGet /healthz :8000",
    readiness_handler="httpGet /readyz :8000",
)
WORKER = dataclasses.replace(API, liveness_handler="exec celery inspect ping", readiness_handler="tcpSocket :6379")


def _deployment(name: str, *containers: workloads.ContainerFacts) -> workloads.DeploymentFacts:
    return workloads.DeploymentFacts(name, 2, 2, 2, 2, 1, 1, 30, containers, True, selector=(("app", name),))


def _workloads(
    api: workloads.ContainerFacts = API, worker: workloads.ContainerFacts = WORKER
) -> kubernetes.WorkloadEvidence:
    return kubernetes.WorkloadEvidence(
        {
            "api": _deployment(NAMES["api"], api, dataclasses.replace(WORKER, name="proxy")),
            "worker": _deployment(NAMES["worker"], worker),
            "ingestion": None,
        }
    )


@pytest.mark.parametrize(
    ("evidence", "expected", "words"),
    [
        (_workloads(), S.PASS, "distinct handlers"),
        (
            _workloads(api=dataclasses.replace(API, readiness_handler="httpGet /healthz :8000")),
            S.FAIL,
            "app: liveness httpGet /healthz :8000, readiness httpGet /healthz :8000",
        ),
        (_workloads(api=dataclasses.replace(API, liveness_handler="tcpSocket :8000")), S.FAIL, "liveness tcpSocket"),
        (_workloads(api=dataclasses.replace(API, readiness_handler=None)), S.FAIL, "readiness none"),
        (
            _workloads(worker=dataclasses.replace(WORKER, readiness_handler="exec celery inspect ping")),
            S.WARN,
            "payscope-worker/app run the same handler",
        ),
        (kubernetes.WorkloadEvidence({"api": None}), S.UNKNOWN, "None of the declared Deployments exists"),
    ],
)
def test_probe_paths(evidence: kubernetes.WorkloadEvidence, expected: status.CheckStatus, words: str) -> None:
    got, message = _judge("A.workloads.probe_paths", evidence)
    assert got == expected, message
    assert words in message


def _pod(
    name: str = "payscope-api-1", *, ready: bool = True, restart_count: int = 0, **container: object
) -> kube_pods.PodFacts:
    state = kube_pods.ContainerStatus("app", ready, restart_count, None, None)
    state = dataclasses.replace(state, **container)  # type: ignore[arg-type]
    return kube_pods.PodFacts(name, "Running" if ready else "Pending", ready, "node-1", (state,))


def _pods(*listed: kube_pods.PodFacts) -> pods.PodEvidence:
    return pods.PodEvidence({"api": pods.Workload("payscope-api", listed), "worker": pods.Workload("w", None)}, ())


@pytest.mark.parametrize(
    ("evidence", "expected", "words"),
    [
        (_pods(_pod(), _pod("payscope-api-2", restart_count=2)), S.PASS, "All 2 pods are ready (at most 2 restarts)"),
        (_pods(_pod(ready=False)), S.FAIL, "payscope-api/payscope-api-1: not ready (Pending)"),
        (_pods(_pod(restart_count=4, last_exit_code=1)), S.FAIL, "restarted 4 times, last exit code 1"),
        (_pods(_pod(restart_count=7, waiting_reason="CrashLoopBackOff")), S.FAIL, "CrashLoopBackOff after 7"),
        (_pods(), S.UNKNOWN, "No pod of the declared Deployments was found"),
    ],
)
def test_restarts(evidence: pods.PodEvidence, expected: status.CheckStatus, words: str) -> None:
    got, message = _judge("A.workloads.restarts", evidence)
    assert got == expected, message
    assert words in message


def test_selectors_name_exactly_the_deployments_pods() -> None:
    requirement = kube_pods.Requirement("tier", "In", ("api", "web"))
    text = kube_pods.selector_text(
        {"app": "payscope-api"}, [requirement, kube_pods.Requirement("canary", "DoesNotExist")]
    )
    assert text == "app=payscope-api,tier in (api,web),!canary"


def test_log_checks_are_not_configured_when_the_spec_says_not_to_read_logs() -> None:
    unread = pods.PodEvidence({}, (), logs_read=False)
    for check_id in ("F.logging.structured", "F.logging.level"):
        finding = CHECKS[check_id].judge(unread, SPEC)
        assert finding.status == S.NOT_CONFIGURED
        assert "spec.audit.readPodLogs is false" in finding.message
