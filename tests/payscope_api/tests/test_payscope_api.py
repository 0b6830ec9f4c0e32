"""The reference PayScope API honours contract version 1, and each fault breaks exactly its behaviour.

Why it exists: the operator's audit checks are tested against this fixture, so
the fixture itself must be proven: with no fault every conformance probe
passes; with one fault exactly the probes of that behaviour fail, and pass
again once the fault is lifted. Everything goes over real HTTP (aiohttp's test
server on 127.0.0.1 and httpx, or the fixture as a spawned process); nothing is
mocked.

What it must not do: test the operator (its own tests do), or reach into the
fixture's state instead of observing it over HTTP (faults are switched through
``/_faults`` or the faults file, as the operator's tests will switch them).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.payscope_api import auditlog, contract, faults, harness, probes_access, probes_api, tokens
from tests.payscope_api.app import create_app
from tests.payscope_api.contract import Intent
from tests.payscope_api.faults import FaultName
from tests.payscope_api.probing import VALID_BODY, Probe, Target, run_probe

PROBES: list[Probe] = probes_api.PROBES + probes_access.PROBES
PROBE_NAMES = [item.name for item in PROBES]
FIXTURE_HEADERS = dict(harness.FIXTURE_HEADERS)
_config = harness.fixture_config
serve = harness.serve


@pytest.fixture
def hs_key() -> tokens.SigningKey:
    return tokens.hs256_key()


@pytest.fixture
async def api(hs_key: tokens.SigningKey) -> AsyncIterator[Target]:
    async with serve(_config(hs_key), hs_key, timeout=0.5) as target:
        yield target


async def _failing(target: Target, probes: list[Probe]) -> dict[str, str]:
    verdicts = {item.name: await run_probe(item, target) for item in probes}
    return {name: why for name, why in verdicts.items() if why is not None}


_switch = harness.switch_faults


# ---- no fault: the contract holds -----------------------------------------------------------------


@pytest.mark.parametrize("name", PROBE_NAMES)
async def test_contract_holds_without_faults(api: Target, name: str) -> None:
    item = next(p for p in PROBES if p.name == name)
    assert await run_probe(item, api) is None


async def test_counters_count_requests_and_refusals(api: Target) -> None:
    def total(text: str, sample: str, **labels: str) -> float:
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
        )

    before = (await api.client.get("/metrics")).text
    for _ in range(3):
        assert (await api.chat({"query": "compare banks", "intent": "COMPARE"})).status_code == 200
    assert (await api.chat(VALID_BODY, {contract.BANK_HEADER: api.bank})).status_code == 401
    after = (await api.client.get("/metrics")).text
    route = {"method": "POST", "route": "/chat/query"}
    assert (
        total(after, "http_requests_total", status="200", **route)
        - total(before, "http_requests_total", status="200", **route)
        == 3
    )
    assert (
        total(after, "http_request_duration_seconds_count", **route)
        - total(before, "http_request_duration_seconds_count", **route)
        == 4
    )
    assert total(after, "payscope_agent_latency_seconds_count", intent="COMPARE") == 3
    assert total(after, "payscope_auth_failures_total", reason="missing") == 1


async def test_each_fixture_has_its_own_registry(hs_key: tokens.SigningKey) -> None:
    async with serve(_config(hs_key), hs_key) as first, serve(_config(hs_key), hs_key) as second:
        await first.chat({"query": "x", "intent": "DESCRIBE"})
        text = (await second.client.get("/metrics")).text
    assert 'payscope_agent_requests_total{intent="DESCRIBE",outcome="ok"} 0.0' in text
    global_names = {metric.name for metric in prometheus_client.REGISTRY.collect()}
    assert "payscope_agent_requests" not in global_names


# ---- one fault: exactly its behaviour breaks, and comes back --------------------------------------

ONE_BEHAVIOUR: dict[str, set[str]] = {
    "accept_missing_token": {"jwt_missing"},
    "accept_expired_token": {"jwt_expired"},
    "skip_signature_check": {"jwt_bad_signature"},
    "accept_alg_none": {"jwt_alg_none"},
    "accept_other_algorithm": {"jwt_alg_mismatch"},
    "accept_missing_required_claim": {"jwt_missing_claims"},
    "accept_missing_bank_claim": {"jwt_missing_bank_claim"},
    "ignore_audience": {"jwt_wrong_audience"},
    "ignore_issuer": {"jwt_wrong_issuer"},
    "ignore_key_id": {"jwt_unknown_kid"},
    "ignore_bank_header": {"bank_header"},
    "skip_chat_role_check": {"chat_role"},
    "admin_open_to_all": {f"admin_forbidden:{path}" for path in probes_access.ADMIN_PATHS},
    "admin_endpoint_fails": {"admin_allowed:/admin/runtime", "runtime_auth", "log_level", "logs_structured"},
    "leak_foreign_source": {"chat_sources_isolated"},
    "healthz_fails": {"healthz"},
    "readyz_degraded": {"readyz"},
    "worker_down": {"pipeline_worker_health"},
    "ingestion_down": {"pipeline_ingestion_health"},
    "metrics_broken": {"metrics_endpoint"},
    "unstructured_logs": {"logs_structured"},
    "log_level_debug": {"log_level"},
    "confidence_out_of_range": {"chat_confidence"},
    "missing_trace_id": {"chat_trace", "logs_trace"},
    "missing_explanation": {"chat_explanation"},
    "no_fallback": {"chat_fallback"},
    "no_body_validation": {"body_validation"},
    "unstructured_errors": {"errors_structured"},
    "what_if_nondeterministic": {"what_if_deterministic"},
    "forecast_unstable": {"forecast_stable"},
    "agent_temperature_too_high": {"agents_temperature"},
    "agent_no_token_limit": {"agents_token_limit"},
    "agent_no_timeout": {"agents_timeout"},
    "unstructured_output": {"agents_structured_output"},
    "fallback_undeclared": {"agents_fallback_declared"},
    "no_confidence_threshold": {"agents_threshold_declared"},
    "pipeline_no_retries": {"pipeline_retries"},
    "pipeline_no_backoff": {"pipeline_backoff"},
    "pipeline_no_time_limit": {"pipeline_time_limit"},
    "pipeline_no_dlq": {"pipeline_dlq"},
    "pipeline_no_acks_late": {"pipeline_acks_late"},
    "ingestion_no_validation": {"pipeline_ingestion_validation"},
}
COUNTED_BY = {"http_requests_total": "metrics_counting", "payscope_agent_requests_total": "agent_metrics_counting"}
FAULT_CASES = [
    *ONE_BEHAVIOUR,
    "unstructured_response",
    "forecast_nan",
    "hang:/healthz",
    *(f"drop_metric:{family}" for family in contract.METRIC_FAMILIES),
    *(f"omit_intent:{intent.value}" for intent in contract.INTENTS),
]


def expected_broken(spec: str) -> set[str]:
    fault = faults.parse_fault(spec)
    if fault.name is FaultName.HANG:
        return {p.name for p in PROBES if fault.arg in p.routes or fault.arg == "*"}
    if fault.name is FaultName.OMIT_INTENT:
        return {p.name for p in PROBES if fault.arg in p.intents} | {"agents_cover_all_intents"}
    if fault.name is FaultName.DROP_METRIC:
        assert fault.arg is not None
        return {f"metrics_family:{fault.arg}"} | ({COUNTED_BY[fault.arg]} if fault.arg in COUNTED_BY else set())
    if fault.name is FaultName.UNSTRUCTURED_RESPONSE:
        return {p.name for p in PROBES if p.chat_json}
    if fault.name is FaultName.FORECAST_NAN:  # NaN makes every FORECAST answer invalid JSON
        return {p.name for p in PROBES if p.chat_json and Intent.FORECAST in p.intents}
    return ONE_BEHAVIOUR[spec]


def test_every_fault_has_a_case() -> None:
    assert {faults.parse_fault(spec).name for spec in FAULT_CASES} == set(FaultName)
    assert all(expected_broken(spec) <= set(PROBE_NAMES) for spec in FAULT_CASES)


@pytest.mark.parametrize("spec", FAULT_CASES)
async def test_fault_breaks_exactly_its_behaviour(api: Target, spec: str) -> None:
    assert await _switch(api, enable=[spec]) == [spec]
    failing = await _failing(api, PROBES)
    assert set(failing) == expected_broken(spec), failing
    assert await _switch(api, disable=[spec]) == []
    assert await _failing(api, [p for p in PROBES if p.name in failing]) == {}


async def test_a_hanging_route_does_not_stall_the_others(api: Target) -> None:
    await _switch(api, enable=["hang:/chat/query"])
    started = time.monotonic()
    with pytest.raises(httpx.TimeoutException):
        await api.chat(VALID_BODY)
    assert (await api.client.get("/healthz")).status_code == 200
    assert (await api.client.get("/metrics")).status_code == 200
    assert time.monotonic() - started < 1.5


async def test_hang_everywhere_can_still_be_lifted(api: Target) -> None:
    await _switch(api, enable=["hang:*"])
    with pytest.raises(httpx.TimeoutException):
        await api.client.get("/healthz")
    await _switch(api, disable=["hang:*"])
    assert (await api.client.get("/healthz")).status_code == 200


# ---- the fault switch itself ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("healthz_fails", faults.Fault(FaultName.HEALTHZ_FAILS)),
        (" drop_metric:payscope_errors_total ", faults.Fault(FaultName.DROP_METRIC, "payscope_errors_total")),
        ("omit_intent:WHAT_IF", faults.Fault(FaultName.OMIT_INTENT, "WHAT_IF")),
        ("hang:*", faults.Fault(FaultName.HANG, "*")),
        ("nonsense", None),
        ("healthz_fails:x", None),
        ("drop_metric", None),
        ("drop_metric:no_such_family", None),
        ("omit_intent:SMALLTALK", None),
        ("hang:/not-a-route", None),
    ],
)
def test_parse_fault(spec: str, parsed: faults.Fault | None) -> None:
    if parsed is None:
        with pytest.raises(faults.FaultError):
            faults.parse_fault(spec)
    else:
        assert faults.parse_fault(spec) == parsed
        assert str(parsed) == spec.strip()


async def test_faults_endpoint_is_guarded_and_all_or_nothing(api: Target, hs_key: tokens.SigningKey) -> None:
    assert (await api.client.get("/_faults")).status_code == 403
    assert (await api.client.get("/_faults", headers={contract.FIXTURE_TOKEN_HEADER: "wrong"})).status_code == 403
    bad = await api.client.post("/_faults", json={"enable": ["healthz_fails", "nonsense"]}, headers=FIXTURE_HEADERS)
    assert bad.status_code == 400
    listing = (await api.client.get("/_faults", headers=FIXTURE_HEADERS)).json()
    assert listing["active"] == []
    assert set(listing["available"]) >= {"healthz_fails", "drop_metric:<arg>"}
    async with serve(_config(hs_key, fixture_token=None), hs_key) as closed:
        assert (await closed.client.get("/_faults", headers=FIXTURE_HEADERS)).status_code == 404


async def test_faults_file_is_reread_when_it_changes(tmp_path: Path, hs_key: tokens.SigningKey) -> None:
    path = tmp_path / "faults.json"

    def write(specs: list[str]) -> None:
        staging = tmp_path / "faults.json.tmp"
        staging.write_text(json.dumps(specs))
        os.utime(staging, ns=(time.time_ns(), time.time_ns() + len(specs)))  # a distinct mtime for each write
        staging.replace(path)

    write(["healthz_fails"])
    async with serve(_config(hs_key, faults_file=path), hs_key) as target:
        assert (await target.client.get("/healthz")).status_code == 500
        write([])
        assert (await target.client.get("/healthz")).status_code == 200
    write(["not_a_fault"])
    with pytest.raises(faults.FaultError):
        create_app(_config(hs_key, faults_file=path))


# ---- keys: RS256, rotation, JWKS --------------------------------------------------------------------


async def test_rs256_with_two_keys_accepts_both_and_publishes_them() -> None:
    current, next_key = tokens.rs256_key(kid="2026-11"), tokens.rs256_key(kid="2027-01")
    config = _config(current, keys=tokens.verification_keys([current, next_key]))
    token_probes = [p for p in PROBES if p.name.startswith(("jwt_", "jwks_", "runtime_auth", "chat_intent"))]
    for key in (current, next_key):
        async with serve(config, key) as target:
            assert await _failing(target, token_probes) == {}
    async with serve(config, current) as target:
        jwks = (await target.client.get(probes_access.JWKS_PATH)).json()
        assert sorted(k["kid"] for k in jwks["keys"]) == ["2026-11", "2027-01"]
        unnamed = tokens.mint(next_key.with_kid(None), target.claims())
        assert (await target.chat(VALID_BODY, tokens.headers(unnamed, target.bank))).status_code == 200


async def test_accept_other_algorithm_under_rs256_is_algorithm_confusion() -> None:
    """The fault accepts HS256 keyed with the installation's public key, not any HS256 token."""
    key = tokens.rs256_key()
    async with serve(_config(key), key) as target:
        assert await _switch(target, enable=["accept_other_algorithm"]) == ["accept_other_algorithm"]
        token_probes = [p for p in PROBES if p.name.startswith("jwt_")]
        assert set(await _failing(target, token_probes)) == {"jwt_alg_mismatch"}
        stranger = tokens.mint_alg_confusion(tokens.rs256_key(kid=key.kid), target.claims())
        assert (await target.chat(VALID_BODY, tokens.headers(stranger, target.bank))).status_code == 401


async def test_hs256_rotation_accepts_a_kidless_token_of_either_key() -> None:
    old, new = tokens.hs256_key(kid="old"), tokens.hs256_key(kid="new")
    async with serve(_config(new, keys=tokens.verification_keys([old, new])), new) as target:
        for key in (old.with_kid(None), new.with_kid(None), old):
            token = tokens.mint(key, target.claims())
            assert (await target.chat(VALID_BODY, tokens.headers(token, target.bank))).status_code == 200


# ---- the fixture as a process ---------------------------------------------------------------------


async def test_process_serves_the_contract_and_drains_on_sigterm(hs_key: tokens.SigningKey, tmp_path: Path) -> None:
    """A real process: it answers the contract, and SIGTERM lets an in-flight request finish before exit 0."""
    log = tmp_path / "payscope-api.log"
    args = ["--issuer", "payscope", "--audience", "payscope-api", "--fault", "hang:/readyz", "--hang-seconds", "1"]
    async with harness.run_process(args, secret=hs_key.private, log=log) as (proc, base_url):
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
            target = Target(client=client, key=hs_key)
            assert await _failing(target, [p for p in PROBES if p.name.startswith(("chat_intent", "jwt_"))]) == {}
            in_flight = asyncio.create_task(client.get("/readyz"))
            await asyncio.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            assert (await in_flight).status_code == 200
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0
    output = log.read_text()
    assert '"event":"listening"' in output
    assert hs_key.private not in output


# ---- the audit-log hash chain ---------------------------------------------------------------------

GOLDEN_ENTRIES, GOLDEN_HASHES = auditlog.GOLDEN_ENTRIES, auditlog.GOLDEN_HASHES


def test_audit_chain_matches_the_golden_vector_and_detects_tampering() -> None:
    rows = auditlog.chain(GOLDEN_ENTRIES)
    assert [row["hash"] for row in rows] == GOLDEN_HASHES
    assert rows[0]["prev_hash"] == auditlog.GENESIS_HASH
    assert rows[1]["prev_hash"] == GOLDEN_HASHES[0]
    assert auditlog.verify(rows) is None
    edited: auditlog.AuditRow = {**rows[1], "payload": {**rows[1]["payload"], "n": 4}}
    assert auditlog.verify([rows[0], edited]) == auditlog.ChainBreak(2, "hash")
    assert auditlog.verify([rows[1]]) == auditlog.ChainBreak(2, "prev_hash")
    assert auditlog.verify([rows[0], {**rows[1], "id": 1}]) == auditlog.ChainBreak(1, "order")


@pytest.mark.parametrize("payload", [{"amount": 1.5}, {"é": 1}, {"big": 2**60}, {"nested": [{"x": float("nan")}]}])
def test_audit_payloads_with_no_single_canonical_form_are_refused(payload: dict[str, auditlog.JsonValue]) -> None:
    with pytest.raises(ValueError, match=r"not allowed|ASCII|2\*\*53"):
        auditlog.canonical_json(payload)
    with pytest.raises(ValueError, match="timezone-aware"):
        auditlog.format_ts(dt.datetime(2026, 1, 1))  # a naive timestamp


def test_audit_chain_survives_a_round_trip_through_postgres(pg_dsn: str) -> None:
    """Timestamps and jsonb come back from Postgres in a form that re-hashes to the same chain."""
    import psycopg
    from psycopg import sql
    from psycopg.rows import dict_row
    from psycopg.types.json import Jsonb

    suffix = secrets.token_hex(4)
    schema, role = f"audit_{suffix}", f"payscope_app_{suffix}"
    with psycopg.connect(pg_dsn, row_factory=dict_row) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        for statement in auditlog.ddl("audit_log", role):
            conn.execute(statement)
        for row in auditlog.chain(GOLDEN_ENTRIES):
            conn.execute(
                "INSERT INTO audit_log (id, ts, bank_id, actor, operation, payload, prev_hash, hash)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    row["id"],
                    row["ts"],
                    row["bank_id"],
                    row["actor"],
                    row["operation"],
                    Jsonb(row["payload"]),
                    row["prev_hash"],
                    row["hash"],
                ),
            )
        read = [auditlog.as_row(r) for r in conn.execute("SELECT * FROM audit_log ORDER BY id").fetchall()]
        assert auditlog.verify(read) is None
        privileges = conn.execute(
            "SELECT has_table_privilege(%(r)s, %(t)s, 'INSERT') AS ins, has_table_privilege(%(r)s, %(t)s, 'UPDATE')"
            " AS upd, has_table_privilege(%(r)s, %(t)s, 'DELETE') AS del, has_table_privilege(%(r)s, %(t)s,"
            " 'TRUNCATE') AS trunc",
            {"r": role, "t": f"{schema}.audit_log"},
        ).fetchone()
        assert privileges == {"ins": True, "upd": False, "del": False, "trunc": False}
        conn.execute("UPDATE audit_log SET payload = payload || '{\"n\": 4}' WHERE id = 2")
        read = [auditlog.as_row(r) for r in conn.execute("SELECT * FROM audit_log ORDER BY id").fetchall()]
        assert auditlog.verify(read) == auditlog.ChainBreak(2, "hash")
        conn.rollback()


# ---- the contract document ------------------------------------------------------------------------


def test_contract_document_names_every_route_family_fault_and_the_golden_hashes() -> None:
    text = (harness.REPO / "docs" / "payscope-contract.md").read_text(encoding="utf-8")
    assert "contract version 1" in text.lower()
    names = [*contract.ROUTES, *contract.METRIC_FAMILIES, *contract.READINESS_CHECKS, *GOLDEN_HASHES]
    names += [f"`{fault.value}" for fault in FaultName]
    missing = [name for name in names if name not in text]
    assert not missing, f"docs/payscope-contract.md does not mention {missing}"
