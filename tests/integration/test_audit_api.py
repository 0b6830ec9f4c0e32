"""The C, D, E, F and G checks against the reference PayScope API (a real process) and the test Redis.

With no fault every check passes. For every check there is a fixture fault (or,
for the Redis checks, a real queue) that breaks exactly its behaviour: the test
switches it on over the fixture's ``/_faults`` endpoint, runs a full audit, and
sees exactly the expected checks leave Pass with their reason, then Pass again
once the fault is lifted. A hanging API turns only its own checks Unknown
within their timeouts; an unreachable Redis only the broker checks. Everything
goes over real sockets on 127.0.0.1; nothing is mocked.

What it must not do: write to the shared Redis outside keys of its own prefix,
or leave faults switched on for the next test.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql as psycopg_sql
from pydantic import SecretStr

from payscope_operator.api import spec, status
from payscope_operator.audit import catalog, runner
from payscope_operator.audit.sources import payscope_api
from payscope_operator.reconcile import secrets, session
from tests import empty_cluster
from tests.payscope_api import auditlog
from tests.payscope_worker import harness as worker_harness
from tests.testenv import process

S = status.CheckStatus
FAIL, WARN, UNKNOWN = S.FAIL, S.WARN, S.UNKNOWN
MINE = frozenset(c.id for c in catalog.CATALOG if c.source.name.startswith(("payscope.", "redis.", "celery.")))
"""The checks on PayScope's API, its broker and workers, and its audit log of the API's own requests."""
"""The checks on PayScope's API and its Redis broker: the ones this module's fixtures serve."""
REDIS_CHECKS = frozenset(c.id for c in catalog.CATALOG if c.source.name.startswith(("redis.", "celery.")))
"""The checks on the broker: the broker's own, and those of the workers asked over it."""
WORKER_DB, FAULTY_WORKER_DB = 7, 8
"""Redis databases of this module's Celery workers: remote control is scoped to one database."""
FIXTURE_TOKEN = "fixture-token-for-audit-tests"
SECRET = "audit-test-shared-secret-" + "0123456789abcdef" * 3
TODAY = datetime.date(2026, 11, 28)
REQUEST_S, QUERY_S = 2, 3
REPO = Path(__file__).resolve().parents[2]
INTENTS = ("DESCRIBE", "COMPARE", "ANOMALY", "FORECAST", "WHAT_IF")
Expected = dict[str, tuple[status.CheckStatus, str]]

NO_FAULT = {
    "C.broker.reachable": "an unreachable broker is Unknown by design: test_unreachable_redis_turns_only_broker_checks",
    "C.dlq.depth": "not a fixture behaviour: test_dead_letter_queue_depth fills a real queue",
    "F.health.worker": "no worker on the broker: test_no_worker_on_the_broker_fails_worker_health",
}


def _omitted(intent: str) -> Expected:
    expected: Expected = {
        "D.agents.coverage": (FAIL, f"No agent is configured for {intent}"),
        f"E.intents.{intent.lower()}": (FAIL, "error no_agent"),
    }
    if intent == "DESCRIBE":  # the fixture's fallback intent, and the intent of the audit-log probe
        expected["D.agents.fallback"] = (FAIL, "fallback intent DESCRIBE has no agent")
        expected["E.intents.fallback"] = (FAIL, "answered 500")
        expected["G.audit_log.query_logging"] = (UNKNOWN, "answered 500")
    if intent == "FORECAST":  # also the intent of the classification probe
        expected["D.forecast.finite"] = (UNKNOWN, "Blocked by E.intents.forecast")
        expected["D.forecast.stable"] = (UNKNOWN, "Blocked by E.intents.forecast")
        expected["E.intents.classification"] = (FAIL, "answered 500")
    if intent == "WHAT_IF":
        expected["D.simulation.deterministic"] = (UNKNOWN, "Blocked by E.intents.what_if")
        expected["D.simulation.bounded"] = (UNKNOWN, "Blocked by E.intents.what_if")
    return expected


_NOT_JSON = "not a JSON object"
_NO_ANSWER = "Blocked by E.endpoints.chat_query, which is Fail"
FAULTS: list[tuple[tuple[str, ...], Expected]] = [
    (("accept_missing_token",), {"G.jwt.missing": (FAIL, "let through no token (POST /chat/query → 422)")}),
    (("accept_expired_token",), {"G.jwt.expired": (FAIL, "verify exp")}),
    (("skip_signature_check",), {"G.jwt.signature": (FAIL, "a token signed by another key")}),
    (("accept_alg_none",), {"G.jwt.alg_none": (FAIL, "never alg: none")}),
    (("accept_other_algorithm",), {"G.jwt.algorithm": (FAIL, "let through a token signed with another algorithm")}),
    (
        ("accept_missing_required_claim",),
        {"G.jwt.claims": (FAIL, "let through a token without iat (POST /chat/query → 422), a token without exp")},
    ),
    (("accept_missing_bank_claim",), {"G.isolation.bank_claim": (FAIL, "let through a token without bank_id")}),
    (("ignore_audience",), {"G.jwt.audience": (FAIL, "verify aud")}),
    (("ignore_issuer",), {"G.jwt.issuer": (FAIL, "verify iss")}),
    (("ignore_key_id",), {"G.jwt.key_id": (FAIL, "a token naming an unknown key id")}),
    (("key_ids_unlisted",), {"G.jwt.key_id": (WARN, "does not list the ids it accepts")}),
    (("challenge_error_without_token",), {"G.jwt.missing": (WARN, "with no error code when no credentials")}),
    (("ignore_bank_header",), {"G.isolation.bank_header": (FAIL, "another probe tenant's X-Bank-Id")}),
    (("skip_chat_role_check",), {"G.rbac.chat_role": (FAIL, "analyst and admin roles")}),
    (("admin_open_to_all",), {"G.rbac.admin_endpoints": (FAIL, "an analyst token on /admin/agents")}),
    (
        ("admin_endpoint_fails",),
        {
            "E.endpoints.admin": (FAIL, "do not serve the admin role: GET /admin/runtime answered 500"),
            "G.jwt.key_id": (UNKNOWN, "the ids it accepts could not be read: GET /admin/runtime answered 500"),
        },
    ),
    (("leak_foreign_source",), {"G.isolation.sources": (FAIL, "another tenant's data")}),
    (
        ("audit_skip_queries",),
        {"G.audit_log.query_logging": (FAIL, "left no row carrying its trace id in public.audit_log within 5s")},
    ),
    (("audit_skip_operations",), {"G.audit_log.operation_logging": (FAIL, "left no row carrying its trace id")}),
    (("cite_no_sources",), {"G.isolation.sources": (UNKNOWN, "None of the 6 answers cited a source")}),
    (("healthz_fails",), {"F.health.api": (FAIL, "GET /healthz answered 500")}),
    (
        ("readyz_degraded",),
        {
            "F.health.dependencies": (FAIL, "postgres=fail"),
            "F.health.readiness_entries": (FAIL, "Readiness entries report postgres=fail"),
        },
    ),
    (
        ("readyz_no_checks",),
        {
            "F.health.dependencies": (UNKNOWN, "names no dependency"),
            "F.health.readiness_entries": (FAIL, "does not gate on postgres (spec.postgres), redis (spec.redis)"),
        },
    ),
    (("readyz_omit:redis",), {"F.health.readiness_entries": (FAIL, "does not gate on redis (spec.redis)")}),
    (("ingestion_down",), {"F.health.ingestion": (FAIL, "reports itself unhealthy")}),
    (("drop_metric:http_requests_total",), {"F.metrics.requests": (FAIL, "http_requests_total is missing")}),
    (
        ("drop_metric:http_request_duration_seconds",),
        {"F.metrics.latency": (FAIL, "http_request_duration_seconds is missing")},
    ),
    (("drop_metric:payscope_errors_total",), {"F.metrics.errors": (FAIL, "payscope_errors_total is missing")}),
    (("errors_count_5xx_only",), {"F.metrics.errors": (FAIL, "payscope_errors_total did not move across")}),
    (("drop_metric:payscope_agent_requests_total",), {"F.metrics.agents": (FAIL, "requests_total is missing")}),
    (("drop_metric:payscope_agent_latency_seconds",), {"F.metrics.agents": (FAIL, "latency_seconds is missing")}),
    (("drop_metric:payscope_auth_failures_total",), {"F.metrics.recommended": (WARN, "auth_failures_total")}),
    (
        ("metrics_broken",),
        {
            "F.metrics.endpoint": (FAIL, "served as 'text/html', not Prometheus text"),
            # A scraper refuses text/html, so no family is judged on the status source's scrapes; the error and
            # agent families are judged on their own sources' scrapes, by what they counted.
            **{
                f"F.metrics.{n}": (UNKNOWN, "Blocked by F.metrics.endpoint, which is Fail")
                for n in ("requests", "latency", "recommended")
            },
        },
    ),
    *(((f"omit_intent:{i}",), _omitted(i)) for i in INTENTS),
    (
        tuple(f"omit_intent:{i}" for i in INTENTS),
        {
            "E.endpoints.chat_query": (FAIL, "answered no intent"),
            "D.agents.coverage": (FAIL, "DESCRIBE, COMPARE, ANOMALY, FORECAST, WHAT_IF"),
            "D.agents.fallback": (FAIL, "has no agent"),
            **{f"D.agents.{n}": (UNKNOWN, "declares no agent") for n in ("temperature", "token_limits")},
            **{f"D.agents.{n}": (UNKNOWN, "declares no agent") for n in ("timeouts", "structured_output")},
            **{f"E.intents.{i.lower()}": (FAIL, "error no_agent") for i in INTENTS},
            "E.intents.fallback": (FAIL, "answered 500"),
            "E.intents.classification": (FAIL, "answered 500"),
            "D.forecast.stable": (UNKNOWN, "Blocked by E.intents.forecast"),
            **{f"E.responses.{n}": (UNKNOWN, _NO_ANSWER) for n in ("structured", "confidence")},
            **{f"E.responses.{n}": (UNKNOWN, _NO_ANSWER) for n in ("explainability", "traceability")},
            "D.forecast.finite": (UNKNOWN, "Blocked by E.intents.forecast"),
            "D.simulation.deterministic": (UNKNOWN, "Blocked by E.intents.what_if"),
            "D.simulation.bounded": (UNKNOWN, "Blocked by E.intents.what_if"),
            "G.isolation.sources": (UNKNOWN, "No answer was a JSON object citing a list of sources"),
            "F.metrics.agents": (UNKNOWN, "No chat probe was answered 200"),
            "G.audit_log.query_logging": (UNKNOWN, "answered 500"),
        },
    ),
    (("confidence_out_of_range",), {"E.responses.confidence": (FAIL, "is not in [0, 1]")}),
    (
        ("missing_trace_id",),
        {
            "E.responses.traceability": (FAIL, "no trace_id"),
            "G.audit_log.query_logging": (UNKNOWN, "without an X-Trace-Id header to look for"),
        },
    ),
    (("missing_explanation",), {"E.responses.explainability": (FAIL, "no explanation")}),
    (
        ("unstructured_response",),
        {
            "E.responses.structured": (FAIL, "body is text/plain"),
            "E.responses.confidence": (FAIL, "confidence None"),
            "E.responses.explainability": (FAIL, "no explanation"),
            "E.responses.traceability": (FAIL, "no trace_id"),
            **{f"E.intents.{i.lower()}": (UNKNOWN, _NOT_JSON) for i in INTENTS},
            "E.intents.fallback": (UNKNOWN, _NOT_JSON),
            "E.intents.classification": (UNKNOWN, _NOT_JSON),
            "D.forecast.finite": (UNKNOWN, "Blocked by E.intents.forecast, which is Unknown: " + "The FORECAST answer"),
            "D.forecast.stable": (UNKNOWN, "Blocked by E.intents.forecast, which is Unknown"),
            "D.simulation.deterministic": (UNKNOWN, "Blocked by E.intents.what_if, which is Unknown"),
            "D.simulation.bounded": (UNKNOWN, "Blocked by E.intents.what_if, which is Unknown"),
            "G.isolation.sources": (UNKNOWN, "No answer was a JSON object citing a list of sources"),
        },
    ),
    (("no_fallback",), {"E.intents.fallback": (FAIL, "answered 500")}),
    (("no_body_validation",), {"E.endpoints.validation": (FAIL, "answered 500")}),
    (("unstructured_errors",), {"E.endpoints.errors_structured": (FAIL, "never with a stack trace")}),
    (("forecast_nan",), {"D.forecast.finite": (FAIL, "NaN or Infinity")}),
    (("what_if_nondeterministic",), {"D.simulation.deterministic": (FAIL, "seed the simulation")}),
    (("forecast_unstable",), {"D.forecast.stable": (WARN, "Two identical FORECAST requests got different answers")}),
    (("simulation_unbounded",), {"D.simulation.bounded": (FAIL, "ran 5000 steps against a bound of 1000")}),
    (("explicit_intent_confidence",), {"E.responses.confidence": (WARN, "for a named intent, not 1.0")}),
    (
        ("answer_cache",),
        {
            "D.simulation.deterministic": (UNKNOWN, "replays the first"),
            "D.forecast.stable": (UNKNOWN, "replays the first"),
        },
    ),
    (
        # A cache in front of a simulation that forgot its seed must not make the determinism check pass.
        ("answer_cache", "what_if_nondeterministic"),
        {
            "D.simulation.deterministic": (UNKNOWN, "replays the first"),
            "D.forecast.stable": (UNKNOWN, "replays the first"),
        },
    ),
    (("agent_temperature_too_high",), {"D.agents.temperature": (FAIL, "temperature 1.2 is not in [0, 0.5]")}),
    (("agent_no_token_limit",), {"D.agents.token_limits": (FAIL, "max_tokens None")}),
    (("agent_no_timeout",), {"D.agents.timeouts": (FAIL, "timeout_s None")}),
    (("unstructured_output",), {"D.agents.structured_output": (FAIL, "structured_output is False")}),
    (("fallback_undeclared",), {"D.agents.fallback": (FAIL, "No valid fallback intent")}),
    (("no_confidence_threshold",), {"E.intents.confidence_threshold": (FAIL, "confidence_threshold=None")}),
    (("ingestion_no_validation",), {"C.ingestion.file_validation": (FAIL, "does not validate")}),
]

#: Under RS256 the operator's other-algorithm probe is HS256 keyed with the public key (algorithm confusion).
RS256_FAULTS: list[tuple[str, Expected]] = [
    ("skip_signature_check", {"G.jwt.signature": (FAIL, "a token altered after signing")}),
    ("accept_other_algorithm", {"G.jwt.algorithm": (FAIL, "let through a token signed with another algorithm")}),
]

_PIPELINE_DOC = ("C.ingestion.", "F.health.ingestion")
#: The faults of the Celery worker (tests/payscope_worker/app.py), each breaking one setting it reports.
WORKER_FAULTS: list[tuple[str, Expected]] = [
    ("no_retries", {"C.worker.retries": (FAIL, "payscope.ingest_file: max_retries=0")}),
    ("no_backoff", {"C.worker.backoff": (FAIL, "retry_backoff=False")}),
    ("no_time_limit", {"C.worker.time_limits": (FAIL, "soft None and hard None")}),
    ("no_acks_late", {"C.worker.acks_late": (FAIL, "acks_late=False")}),
    (
        "no_dlq",
        {
            "C.worker.dead_letter_queue": (FAIL, "declare no queue 'dlq'"),
            "C.dlq.depth": (UNKNOWN, "no worker declares a queue by that name"),
        },
    ),
]
HANGS: list[tuple[str, frozenset[str]]] = [
    ("/healthz", frozenset({"F.health.api"})),
    ("/metrics", frozenset(c for c in MINE if c.startswith("F.metrics."))),
    (
        "/admin/pipeline",
        frozenset(c for c in MINE if c.startswith(_PIPELINE_DOC))
        | {"E.endpoints.admin", "G.rbac.admin_endpoints", "G.jwt.missing"},
    ),
]


# ---- the fixture process --------------------------------------------------------------------------


_free_port = process.free_port


@dataclass(frozen=True)
class Fixture:
    url: str
    algorithm: str
    key: str  # what the operator signs with: the shared secret, or the RS256 private key
    log: Path  # the fixture's stdout: one JSON object per line
    audit_dsn: str  # the database whose audit_log the fixture appends to

    def faults(self, *, enable: tuple[str, ...] = (), disable: tuple[str, ...] = ()) -> None:
        response = httpx.post(
            f"{self.url}/_faults",
            json={"enable": list(enable), "disable": list(disable)},
            headers={"X-Fixture-Token": FIXTURE_TOKEN},
            timeout=5,
        )
        response.raise_for_status()
        assert response.json()["active"] == sorted(enable)


def _start(extra: list[str], env: dict[str, str], log: Path) -> Iterator[str]:
    port = _free_port()
    command = [sys.executable, "-m", "tests.payscope_api", "--port", str(port), "--fixture-token", FIXTURE_TOKEN]
    command += ["--hang-seconds", "30", "--graceful-timeout-s", "1", *extra]
    sink = log.open("wb")
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, **env}, stdout=sink, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the fixture exited: {process.stderr.read().decode() if process.stderr else ''}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the fixture did not start within 20s"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        sink.close()


@pytest.fixture(scope="module")
def broker(testenv: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The test Redis on a database of this module's own, with a healthy Celery worker answering on it."""
    url = worker_harness.on_database(testenv["PAYSCOPE_REDIS_URL"], WORKER_DB)
    with worker_harness.running(url, log=tmp_path_factory.mktemp("worker") / "worker.log"):
        yield url


@pytest.fixture(scope="module")
def audit_db(testenv: dict[str, str]) -> Iterator[str]:
    """A database of this module's own holding the contract's audit-log table, which the fixture appends to."""
    name = f"audit_{uuid.uuid4().hex[:10]}"
    admin = testenv["PAYSCOPE_PG_DSN"]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psycopg_sql.SQL("CREATE DATABASE {}").format(psycopg_sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(admin, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(auditlog.ddl()[0])
    yield dsn
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(psycopg_sql.SQL("DROP DATABASE {} WITH (FORCE)").format(psycopg_sql.Identifier(name)))


@pytest.fixture(scope="module")
def hs256(tmp_path_factory: pytest.TempPathFactory, audit_db: str) -> Iterator[Fixture]:
    log = tmp_path_factory.mktemp("hs256") / "fixture.log"
    for url in _start([], {"PAYSCOPE_JWT_SECRET": SECRET, "PAYSCOPE_AUDIT_DSN": audit_db}, log):
        yield Fixture(url, "HS256", SECRET, log, audit_db)


@pytest.fixture(scope="module")
def rs256(tmp_path_factory: pytest.TempPathFactory, audit_db: str) -> Iterator[Fixture]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_file = tmp_path_factory.mktemp("rs256") / "public.pem"
    public_file.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    log = public_file.parent / "fixture.log"
    for url in _start(
        ["--algorithm", "RS256", "--public-key-file", str(public_file)], {"PAYSCOPE_AUDIT_DSN": audit_db}, log
    ):
        yield Fixture(url, "RS256", pem.decode(), log, audit_db)


# ---- one audit ------------------------------------------------------------------------------------


def _spec(fixture: Fixture, *, dlq: str = "dlq", max_dead_letters: int = 0) -> spec.PayScopeSpec:
    return spec.PayScopeSpec.model_validate(
        {
            "api": {
                "url": fixture.url,
                "auth": {
                    "jwtSecretRef": {"name": "jwt", "key": "signingKey"},
                    "algorithm": fixture.algorithm,
                    "issuer": "payscope",
                    "audience": "payscope-api",
                },
                "timeouts": {"request": f"{REQUEST_S}s", "query": f"{QUERY_S}s"},
            },
            "redis": {
                "connection": {"secretRef": {"name": "redis", "key": "url"}},
                "deadLetterQueue": dlq,
                "maxDeadLetters": max_dead_letters,
            },
            "postgres": {"connection": {"secretRef": {"name": "pg", "key": "dsn"}}},
            "audit": {"probeTenants": ["bank-a", "bank-b"], "probeTimeout": "3s"},
        }
    )


async def _audit(
    fixture: Fixture, redis_url: str, memory: runner.Memory | None = None, **spec_args: Any
) -> dict[str, status.CheckResult]:
    values = secrets.Secrets(
        {
            ("jwt", "signingKey"): SecretStr(fixture.key),
            ("redis", "url"): SecretStr(redis_url),
            ("pg", "dsn"): SecretStr(fixture.audit_dsn),
        }
    )
    run = session.PassSession(
        _spec(fixture, **spec_args), "ns", "psd", values, (), empty_cluster.EmptyCluster(), session.ClientCache()
    )
    try:
        report = await runner.run(catalog.CATALOG, run, today=TODAY, memory=memory)
    finally:
        await run.clients.close()
    return {r.id: r for r in report.results if r.id in MINE}


def _not_passing(results: dict[str, status.CheckResult]) -> dict[str, tuple[status.CheckStatus, str]]:
    return {i: (r.status, r.message) for i, r in results.items() if r.status != S.PASS}


def _assert_expected(results: dict[str, status.CheckResult], expected: Expected) -> None:
    found = _not_passing(results)
    assert set(found) == set(expected), found
    for check_id, (state, fragment) in expected.items():
        assert found[check_id][0] == state, (check_id, found[check_id])
        assert fragment in found[check_id][1], (check_id, found[check_id])
        blocked = results[check_id].reason == status.CheckReason.BLOCKED_BY
        assert blocked == fragment.startswith("Blocked by "), (check_id, results[check_id].reason)


# ---- the tests ------------------------------------------------------------------------------------


async def test_healthy_installation_passes_every_check(hs256: Fixture, broker: str) -> None:
    results = await _audit(hs256, broker)
    assert set(results) == MINE
    assert _not_passing(results) == {}


async def test_rs256_installation_passes_every_check(rs256: Fixture, broker: str) -> None:
    assert _not_passing(await _audit(rs256, broker)) == {}


@pytest.mark.parametrize(("fault", "expected"), RS256_FAULTS, ids=[f for f, _ in RS256_FAULTS])
async def test_rs256_signature_faults_fail_exactly_their_check(
    rs256: Fixture, broker: str, fault: str, expected: Expected
) -> None:
    rs256.faults(enable=(fault,))
    try:
        results = await _audit(rs256, broker)
    finally:
        rs256.faults(disable=(fault,))
    _assert_expected(results, expected)


@pytest.mark.parametrize(("faults", "expected"), FAULTS, ids=[",".join(f) for f, _ in FAULTS])
async def test_each_fault_fails_exactly_its_checks_and_restoring_it_passes_them(
    hs256: Fixture, broker: str, faults: tuple[str, ...], expected: Expected
) -> None:
    hs256.faults(enable=faults)
    try:
        broken = await _audit(hs256, broker)
    finally:
        hs256.faults(disable=faults)
    _assert_expected(broken, expected)
    assert _not_passing(await _audit(hs256, broker)) == {}


@pytest.mark.parametrize(("fault", "expected"), WORKER_FAULTS, ids=[f for f, _ in WORKER_FAULTS])
async def test_each_worker_fault_fails_exactly_its_checks(
    hs256: Fixture, broker: str, fault: str, expected: Expected, tmp_path: Path
) -> None:
    url = worker_harness.on_database(broker, FAULTY_WORKER_DB)
    with worker_harness.running(url, faults=(fault,), log=tmp_path / "worker.log"):
        results = await _audit(hs256, url)
    _assert_expected(results, expected)


async def test_no_worker_on_the_broker_fails_worker_health(hs256: Fixture, broker: str) -> None:
    """A broker no worker listens on: health fails; the settings cannot be read, and the absent queue proves nothing."""
    results = await _audit(hs256, worker_harness.on_database(broker, FAULTY_WORKER_DB))
    nobody = "No Celery worker answered over the broker"
    expected: Expected = {
        "F.health.worker": (FAIL, "No Celery worker listens on the broker"),
        **{c: (UNKNOWN, nobody) for c in REDIS_CHECKS if c.startswith("C.worker.")},
        "C.dlq.depth": (UNKNOWN, "no worker declares a queue by that name"),
    }
    _assert_expected(results, expected)


def test_every_check_is_broken_by_some_test() -> None:
    broken = {check for _, expected in FAULTS for check, (state, _) in expected.items() if state in (FAIL, WARN)}
    broken |= {check for _, expected in WORKER_FAULTS for check, (state, _) in expected.items() if state == FAIL}
    assert MINE - broken == set(NO_FAULT), "a check has neither a fault that breaks it nor a stated reason"


def _fill(client: redis.Redis, key: str, kind: str) -> None:
    """Three entries in a key of the given Redis type."""
    if kind == "list":
        client.rpush(key, "a", "b", "c")
    elif kind == "zset":
        client.zadd(key, {"a": 1, "b": 2, "c": 3})
    elif kind == "stream":
        for n in range(3):
            client.xadd(key, {"task": str(n)})
    else:
        client.sadd(key, "a", "b", "c")


@pytest.mark.parametrize("kind", ["list", "zset", "stream", "set"])
async def test_dead_letter_queue_depth(hs256: Fixture, broker: str, kind: str) -> None:
    """The queue the worker declares, on the worker's own database, filled with three entries of each Redis type."""
    key, url = "dlq", broker
    client = redis.Redis.from_url(url, socket_timeout=5)
    mismatch: Expected = {}
    try:
        _fill(client, key, kind)
        full = await _audit(hs256, url, dlq=key, max_dead_letters=2)
        _assert_expected(full, {**mismatch, "C.dlq.depth": (FAIL, f"{key} holds 3 failed tasks")})
        evidence = full["C.dlq.depth"].evidence
        assert evidence is not None
        assert key in evidence
        _assert_expected(await _audit(hs256, url, dlq=key, max_dead_letters=3), mismatch)
    finally:
        client.delete(key)
        client.close()
    _assert_expected(await _audit(hs256, url, dlq=key), mismatch)


async def test_hanging_api_turns_its_checks_unknown_within_their_timeout(hs256: Fixture, broker: str) -> None:
    hs256.faults(enable=("hang:*",))
    started = time.monotonic()
    try:
        results = await _audit(hs256, broker)
    finally:
        hs256.faults(disable=("hang:*",))
    elapsed = time.monotonic() - started
    assert elapsed < QUERY_S + 2 * REQUEST_S + 2, elapsed  # a scrape, then the probes, each under its timeout
    found = _not_passing(results)
    assert set(found) == MINE - REDIS_CHECKS
    assert all(state == UNKNOWN and "is not answering: no answer within" in msg for state, msg in found.values())


@pytest.mark.parametrize(("route", "depending"), HANGS, ids=[r for r, _ in HANGS])
async def test_one_hanging_route_turns_only_the_checks_reading_it_unknown(
    hs256: Fixture, broker: str, route: str, depending: frozenset[str]
) -> None:
    hs256.faults(enable=(f"hang:{route}",))
    try:
        results = await _audit(hs256, broker)
    finally:
        hs256.faults(disable=(f"hang:{route}",))
    found = _not_passing(results)
    assert set(found) == depending
    assert all(state == UNKNOWN and f"GET {route}: no answer within" in msg for state, msg in found.values()), found


async def test_unreachable_redis_turns_only_broker_checks_unknown(hs256: Fixture, broker: str) -> None:
    parts = urllib.parse.urlsplit(broker)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{_free_port()}"
    closed = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    found = _not_passing(await _audit(hs256, closed))
    assert set(found) == REDIS_CHECKS
    assert all(state == UNKNOWN and "is unreachable" in message for state, message in found.values())
    assert parts.password is not None
    assert all(parts.password not in message for _, message in found.values())


async def test_results_never_carry_a_token_or_a_secret(hs256: Fixture, broker: str) -> None:
    faults = ("accept_expired_token", "ignore_bank_header", "admin_open_to_all", "leak_foreign_source")
    hs256.faults(enable=faults)
    try:
        results = await _audit(hs256, broker)
    finally:
        hs256.faults(disable=faults)
    password = urllib.parse.urlsplit(broker).password or "unset"
    for result in results.values():
        text = f"{result.message} {result.evidence}"
        assert "eyJ" not in text  # the base64 of '{"' that starts every JWT segment
        assert SECRET not in text
        assert password not in text


def _agent_runs(fixture: Fixture) -> float:
    """What PayScope's agents have run so far: payscope_agent_requests_total over every series."""
    text = httpx.get(f"{fixture.url}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "payscope_agent_requests_total"
    )


async def test_agents_run_once_per_agent_probe_interval(hs256: Fixture, broker: str) -> None:
    """Contract section 1: the chat probes run agents at most once per agentProbeInterval (10m by default)."""
    memory: runner.Memory = {}
    before = _agent_runs(hs256)
    first = await _audit(hs256, broker, memory)
    ran = _agent_runs(hs256)
    second = await _audit(hs256, broker, memory)
    assert ran > before
    assert _agent_runs(hs256) == ran  # the second pass sent no chat probe that reached an agent
    assert {i: r.status for i, r in first.items()} == {i: r.status for i, r in second.items()}


async def test_the_second_of_each_identical_pair_leaves_after_the_first_was_answered(
    hs256: Fixture, broker: str
) -> None:
    """The fixture's DEBUG lines show when each request arrived: the repeat of each pair after the first's answer."""
    hs256.faults(enable=("log_level_debug",))
    start = hs256.log.stat().st_size
    try:
        await _audit(hs256, broker)
    finally:
        hs256.faults(disable=("log_level_debug",))
    with hs256.log.open("rb") as handle:
        handle.seek(start)
        lines = [json.loads(line) for line in handle.read().decode().splitlines() if line.startswith("{")]
    position = {(r["event"], r.get("trace_id")): n for n, r in enumerate(lines)}
    for intent in ("WHAT_IF", "FORECAST"):
        digest = hashlib.sha256(payscope_api.PROBE_QUERIES[intent].encode()).hexdigest()
        pair = [r["trace_id"] for r in lines if r["event"] == "chat_query" and r.get("query_sha256") == digest]
        first, second = pair[:2]
        assert position[("http_request", first)] < position[("dispatch", second)], intent
