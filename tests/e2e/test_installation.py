"""A whole PayScope installation under the operator: provisioning, drift, and every dimension flipping.

One installation (every one of the five provisioned systems, the reference API,
Redis, three Deployments) is built for the module; each test breaks exactly one
thing out of band, waits for its dimension to turn False with the check id and
reason in ``status.checks``, restores it, and waits for True again, all within
an audit interval or two (the spec's interval is 5 s).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import neo4j
import pytest
import redis
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests import installation
from tests.conftest import unique
from tests.e2e import cluster
from tests.e2e.conftest import RunningOperator
from tests.testenv import pinecone_emulator, process

INTERVAL = 5.0
WITHIN = 2 * INTERVAL + 15  # one interval, the pass that notices (up to a probe timeout), and slack


@pytest.fixture(scope="module")
def inst(
    operator: RunningOperator,
    kube_api: k8s.ApiClient,
    testenv: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[installation.Installation]:
    namespace = unique("t-")
    k8s.CoreV1Api(kube_api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
    built = installation.build(kube_api, namespace, testenv, tmp_path_factory.mktemp("installation"))
    cluster.create_psd(kube_api, namespace, built.name, built.spec)
    try:
        yield built
    finally:
        cluster.remove_resources(kube_api, namespace)  # before its API stops: later operators never see it
        built.stop()


def _obj(api: k8s.ApiClient, inst: installation.Installation) -> dict[str, Any]:
    return cluster.psd(api, inst.namespace, inst.name)


def _checks(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in (obj.get("status") or {}).get("checks", [])}


def _wait(
    api: k8s.ApiClient, inst: installation.Installation, what: str, test: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    found: dict[str, Any] = cluster.wait_for(
        lambda: (obj := _obj(api, inst)) and test(obj) and obj, what=what, timeout=WITHIN, interval=0.5
    )
    return found


def _condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    return cluster.conditions(obj).get(ctype, {})


def _faults(inst: installation.Installation, *, enable: tuple[str, ...] = (), disable: tuple[str, ...] = ()) -> None:
    response = httpx.post(
        f"{inst.api_url}/_faults",
        json={"enable": list(enable), "disable": list(disable)},
        headers={"X-Fixture-Token": installation.FIXTURE_TOKEN},
        timeout=5,
    )
    response.raise_for_status()


def test_everything_is_provisioned_and_ready(kube_api: k8s.ApiClient, inst: installation.Installation) -> None:
    obj = _wait(kube_api, inst, "Ready True", lambda o: _condition(o, "Ready").get("status") == "True")
    assert _condition(obj, "Provisioned")["reason"] == "Provisioned"
    provisioned = obj["status"]["provisioned"]
    assert {"postgres", "neo4j", "pinecone", "objectStorage"} <= set(provisioned)
    assert all(item["state"] == "Ready" for items in provisioned.values() for item in items)
    for dimension in ("Infrastructure", "DataLayer", "Pipeline", "Agents", "APIs", "Observability", "Security"):
        assert _condition(obj, f"{dimension}Ready")["status"] == "True", _condition(obj, f"{dimension}Ready")
    checks = _checks(obj)
    assert checks["G.isolation.rls_probe"]["status"] == "Pass"
    assert checks["G.audit_log.hash_chain"]["status"] == "Pass"


def _plugin(*args: str) -> str:
    """``kubectl payscope ARGS``, found by kubectl on the PATH as on a user's machine."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [str(bin_dir / "kubectl"), "payscope", *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_kubectl_payscope_reads_what_the_operator_wrote(
    kube_api: k8s.ApiClient, inst: installation.Installation
) -> None:
    _wait(kube_api, inst, "Ready True", lambda o: _condition(o, "Ready").get("status") == "True")
    healthy = _plugin("status", inst.name, "-n", inst.namespace)
    assert re.split(r"\s{2,}", healthy.splitlines()[1])[:3] == [inst.name, "True", "AllChecksPassed"]
    assert "No failing or unknown check" in healthy
    report = _plugin("report", inst.name, "-n", inst.namespace)
    assert "**Status:** READY (AllChecksPassed)" in report
    assert "- [x] Expiry checking — Passed" in report
    assert " — Failing" not in report
    _faults(inst, enable=("accept_expired_token",))
    try:
        _wait(kube_api, inst, "SecurityReady False", lambda o: _condition(o, "SecurityReady").get("status") == "False")
        failing = _plugin("status", inst.name, "-n", inst.namespace)
        report = _plugin("report", inst.name, "-n", inst.namespace)
    finally:
        _faults(inst, disable=("accept_expired_token",))
    assert "Security: SecurityReady False (ChecksFailing)" in failing
    row = next(re.split(r"\s{2,}", line.strip()) for line in failing.splitlines() if "G.jwt.expired" in line)
    assert row[:4] == ["G.jwt.expired", "Fail", "Critical", "Observed"]
    assert re.fullmatch(r"\d+[sm]", row[4]), "failing since the pass that saw it"
    assert "- [ ] Expiry checking — Failing\n  - `G.jwt.expired` **Fail** · Critical · Observed · since " in report


def test_a_dropped_neo4j_constraint_is_restored_within_one_interval(
    kube_api: k8s.ApiClient, inst: installation.Installation
) -> None:
    _wait(kube_api, inst, "provisioned", lambda o: _condition(o, "Provisioned").get("status") == "True")
    name = next(i["name"] for i in _obj(kube_api, inst)["status"]["provisioned"]["neo4j"] if i["kind"] == "Constraint")
    inst.cypher(f"DROP CONSTRAINT {name}")
    started = time.monotonic()

    def restored() -> bool:
        events = k8s.CoreV1Api(kube_api).list_namespaced_event(inst.namespace).items
        return any(e.reason == "DriftCorrected" and name in (e.message or "") for e in events)

    cluster.wait_for(restored, what="DriftCorrected Event for the constraint", timeout=WITHIN)
    assert time.monotonic() - started < INTERVAL + 8
    auth = (inst.env["PAYSCOPE_NEO4J_USER"], inst.env["PAYSCOPE_NEO4J_PASSWORD"])
    with neo4j.GraphDatabase.driver(inst.env["PAYSCOPE_NEO4J_URI"], auth=auth) as driver:
        records, _, _ = driver.execute_query("SHOW CONSTRAINTS YIELD name WHERE name = $name", name=name)
    assert len(records) == 1


Breaker = Callable[[installation.Installation], None]


def _set_deployment(available: int) -> Breaker:
    def act(inst: installation.Installation) -> None:
        with k8s_config.new_client_from_config(config_file=inst.env["KUBECONFIG"]) as api:
            cluster.set_deployment_available(api, inst.namespace, "payscope-worker", available, 2)

    return act


def _migration(version: str) -> Breaker:
    return lambda inst: inst.sql("UPDATE alembic_version SET version_num = %s", (version,))


def _dead_letters(count: int) -> Breaker:
    def act(inst: installation.Installation) -> None:
        client = redis.Redis.from_url(inst.env["PAYSCOPE_REDIS_URL"], socket_timeout=5)
        try:
            client.delete(inst.dlq)
            if count:
                client.rpush(inst.dlq, *[f"task-{i}" for i in range(count)])
        finally:
            client.close()

    return act


def _sql(statement: str) -> Breaker:
    return lambda inst: inst.sql(statement.format(app=inst.app_role))


def _cypher(statement: str) -> Breaker:
    return lambda inst: inst.cypher(statement.format(label=inst.label))


def _namespaces(counts: dict[str, int]) -> Breaker:
    return lambda inst: pinecone_emulator.Admin(inst.env["PAYSCOPE_PINECONE_URL"]).set_namespaces(inst.index, counts)


def _fault(name: str, on: bool) -> Breaker:
    return lambda inst: _faults(inst, enable=(name,) if on else (), disable=() if on else (name,))


# Things the operator audits but never corrects (it does not own them), broken out of band.
UNOWNED = [
    (
        "DataLayerReady",
        "B.postgres.foreign_keys",
        _sql("ALTER TABLE transactions DROP CONSTRAINT transactions_account_id_fkey"),
        _sql("ALTER TABLE transactions ADD FOREIGN KEY (account_id) REFERENCES accounts(id)"),
    ),
    ("DataLayerReady", "B.postgres.app_role", _sql("ALTER ROLE {app} BYPASSRLS"), _sql("ALTER ROLE {app} NOBYPASSRLS")),
    (
        "PipelineReady",
        "C.ingestion.idempotency_key",
        _sql("ALTER TABLE transactions DROP CONSTRAINT transactions_bank_id_idempotency_key_key"),
        _sql("ALTER TABLE transactions ADD UNIQUE (bank_id, idempotency_key)"),
    ),
    (
        "SecurityReady",
        "G.audit_log.hash_chain",
        _sql("UPDATE audit_log SET actor = 'mallory' WHERE id = 1"),
        _sql("UPDATE audit_log SET actor = 'alice' WHERE id = 1"),
    ),
    (
        "SecurityReady",
        "G.audit_log.immutable",
        _sql("GRANT UPDATE ON audit_log TO {app}"),
        _sql("REVOKE UPDATE ON audit_log FROM {app}"),
    ),
    (
        "DataLayerReady",
        "B.neo4j.tenant_property",
        _cypher("CREATE (:{label}Account {{id: 99}})"),
        _cypher("MATCH (n:{label}Account {{id: 99}}) DELETE n"),
    ),
    (
        "DataLayerReady",
        "B.pinecone.namespaces",
        _namespaces({"": 4, "bank-a": 2}),
        _namespaces({"": 0, "bank-a": 2, "bank-b": 1}),
    ),
]

FLIPS = [
    ("InfrastructureReady", "A.workloads.worker_available", _set_deployment(0), _set_deployment(2)),
    ("DataLayerReady", "B.postgres.migrations", _migration("0041"), _migration("0042")),
    ("PipelineReady", "C.dlq.depth", _dead_letters(3), _dead_letters(0)),
    (
        "AgentsReady",
        "D.agents.temperature",
        _fault("agent_temperature_too_high", True),
        _fault("agent_temperature_too_high", False),
    ),
    ("APIsReady", "E.intents.forecast", _fault("omit_intent:FORECAST", True), _fault("omit_intent:FORECAST", False)),
    (
        "ObservabilityReady",
        "F.metrics.errors",
        _fault("drop_metric:payscope_errors_total", True),
        _fault("drop_metric:payscope_errors_total", False),
    ),
    ("SecurityReady", "G.jwt.expired", _fault("accept_expired_token", True), _fault("accept_expired_token", False)),
]


@pytest.mark.parametrize(
    ("condition", "check_id", "breaks", "restores"), FLIPS + UNOWNED, ids=[f[1] for f in FLIPS + UNOWNED]
)
def test_breaking_one_thing_flips_its_dimension_and_restoring_it_flips_back(
    kube_api: k8s.ApiClient,
    inst: installation.Installation,
    condition: str,
    check_id: str,
    breaks: Breaker,
    restores: Breaker,
) -> None:
    _wait(kube_api, inst, f"{condition} True first", lambda o: _condition(o, condition).get("status") == "True")
    breaks(inst)
    try:
        obj = _wait(kube_api, inst, f"{condition} False", lambda o: _condition(o, condition).get("status") == "False")
        check = _checks(obj)[check_id]
        assert check["status"] == "Fail", check
        assert check["message"]
        assert check_id in _condition(obj, condition)["message"]
        assert _condition(obj, "Ready")["status"] == "False"
    finally:
        restores(inst)
    obj = _wait(kube_api, inst, f"{condition} True again", lambda o: _condition(o, condition).get("status") == "True")
    assert _checks(obj)[check_id]["status"] == "Pass"


def test_a_hanging_api_leaves_every_other_dimension_reported(
    kube_api: k8s.ApiClient, inst: installation.Installation
) -> None:
    _wait(kube_api, inst, "Ready", lambda o: _condition(o, "Ready").get("status") == "True")
    _faults(inst, enable=("hang:*",))
    started = time.monotonic()
    try:
        obj = _wait(kube_api, inst, "APIs Unknown", lambda o: _condition(o, "APIsReady").get("status") == "Unknown")
        # The pass ends when the slowest API probe gives up (query timeout 8 s + 2 s margin), not later.
        assert time.monotonic() - started < INTERVAL + 10 + 8
        assert _condition(obj, "DataLayerReady")["status"] == "True"
        assert _condition(obj, "InfrastructureReady")["status"] == "True"
        checks = _checks(obj)
        assert checks["E.intents.forecast"]["status"] == "Unknown"
        assert checks["B.postgres.rls_enabled"]["status"] == "Pass"
        assert checks["C.dlq.depth"]["status"] == "Pass"
    finally:
        _faults(inst, disable=("hang:*",))
    _wait(kube_api, inst, "APIs back", lambda o: _condition(o, "APIsReady").get("status") == "True")


def test_neo4j_unreachable_turns_only_neo4j_checks(kube_api: k8s.ApiClient, inst: installation.Installation) -> None:
    _wait(kube_api, inst, "Ready", lambda o: _condition(o, "Ready").get("status") == "True")
    real = inst.spec["neo4j"]["connection"]["uri"]
    closed = f"bolt://127.0.0.1:{process.free_port()}"
    cluster.patch_psd(kube_api, inst.namespace, inst.name, {"spec": {"neo4j": {"connection": {"uri": closed}}}})
    try:
        obj = _wait(
            kube_api,
            inst,
            "Neo4j checks not passing",
            lambda o: _checks(o).get("B.neo4j.constraints", {}).get("status") == "Unknown",
        )
        checks = _checks(obj)
        not_passing = {i for i, c in checks.items() if c["status"] not in ("Pass", "NotConfigured", "Warn")}
        assert not_passing == {
            "A.dependencies.neo4j",
            "B.neo4j.constraints",
            "B.neo4j.indexes",
            "B.neo4j.tenant_property",
        }
        assert checks["A.dependencies.neo4j"]["status"] == "Fail"
        assert _condition(obj, "Provisioned")["status"] == "Unknown"
        assert _condition(obj, "APIsReady")["status"] == "True"
    finally:
        cluster.patch_psd(kube_api, inst.namespace, inst.name, {"spec": {"neo4j": {"connection": {"uri": real}}}})
    _wait(kube_api, inst, "Ready again", lambda o: _condition(o, "Ready").get("status") == "True")


def test_no_secret_value_reaches_status_or_events(kube_api: k8s.ApiClient, inst: installation.Installation) -> None:
    obj = _obj(kube_api, inst)
    events = k8s.CoreV1Api(kube_api).list_namespaced_event(inst.namespace).items
    text = str(obj) + "".join(str(e.message) for e in events)
    secrets = [
        inst.jwt_secret,
        inst.env["PAYSCOPE_NEO4J_PASSWORD"],
        inst.env["PAYSCOPE_PINECONE_API_KEY"],
        inst.env["PAYSCOPE_S3_SECRET_KEY"],
        inst.env["PAYSCOPE_REDIS_URL"].split("@")[0].split(":")[-1],
        inst.env["PAYSCOPE_PG_DSN"].split("@")[0].split(":")[-1],
    ]
    for secret in secrets:
        assert secret not in text


def test_no_secret_value_reaches_the_operator_log_or_metrics(
    operator: RunningOperator, inst: installation.Installation
) -> None:
    # Metrics are set after a pass's status write: wait until an audit's results are in them.
    metrics = cluster.wait_for(
        lambda: (text := operator.process.metrics()) and 'check="G.jwt.expired"' in text and text,
        what="the audit's results in the metrics",
        timeout=WITHIN,
    )
    log = Path(operator.process.log).read_text()
    for secret in (inst.jwt_secret, inst.env["PAYSCOPE_NEO4J_PASSWORD"], inst.env["PAYSCOPE_PINECONE_API_KEY"]):
        assert secret not in log
        assert secret not in metrics
    assert 'check="G.jwt.expired"' in metrics


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "payscope-operator"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_standalone_audit_gates_a_release(
    kube_api: k8s.ApiClient, inst: installation.Installation, tmp_path: Path
) -> None:
    _wait(kube_api, inst, "Ready", lambda o: _condition(o, "Ready").get("status") == "True")
    resource, secrets_yaml = installation.manifests(inst)
    (tmp_path / "psd.yaml").write_text(resource)
    (tmp_path / "secrets.yaml").write_text(secrets_yaml)
    args = ("-f", str(tmp_path / "psd.yaml"), "--secrets-file", str(tmp_path / "secrets.yaml"))

    good = _cli("audit", *args)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "A.workloads.api_available" in good.stdout  # NotConfigured without a cluster
    assert "NotConfigured" in good.stdout

    planned = _cli("plan", *args)
    assert planned.returncode == 0, planned.stderr
    assert "no changes" in planned.stdout

    _faults(inst, enable=("accept_expired_token",))
    try:
        bad = _cli("audit", *args, "--output", "junit")
        report = _cli("audit", *args, "--output", "markdown")
    finally:
        _faults(inst, disable=("accept_expired_token",))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    suite = ElementTree.fromstring(bad.stdout.split("?>", 1)[1])  # noqa: S314 - our own output
    failed = [case.get("name") for case in suite.iter("testcase") if case.find("failure") is not None]
    assert failed == ["G.jwt.expired"]
    assert suite.get("failures") == "1"
    for secret in installation.secret_values(inst)["jwt"].values():
        assert secret not in bad.stdout + bad.stderr
        assert secret not in report.stdout
    assert report.returncode == 1, report.stderr
    assert "- [ ] Expiry checking — Failing\n  - `G.jwt.expired` **Fail** · Critical · Observed" in report.stdout
    assert "- [x] Signature verification — Passed" in report.stdout


def test_standalone_plan_lists_what_full_would_do_and_changes_nothing(
    inst: installation.Installation, tmp_path: Path
) -> None:
    resource, secrets_yaml = installation.manifests(inst)
    spec = yaml.safe_load(resource)
    label = f"{inst.label}Extra"
    spec["spec"]["neo4j"]["constraints"].append({"label": label, "properties": ["ref"], "type": "Unique"})
    (tmp_path / "psd.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "secrets.yaml").write_text(secrets_yaml)
    planned = _cli("plan", "-f", str(tmp_path / "psd.yaml"), "--secrets-file", str(tmp_path / "secrets.yaml"))
    assert planned.returncode == 0, planned.stderr
    assert f"neo4j: create constraint payscope_{label.lower()}_ref_unique" in planned.stdout
    auth = (inst.env["PAYSCOPE_NEO4J_USER"], inst.env["PAYSCOPE_NEO4J_PASSWORD"])
    with neo4j.GraphDatabase.driver(inst.env["PAYSCOPE_NEO4J_URI"], auth=auth) as driver:
        records, _, _ = driver.execute_query("SHOW CONSTRAINTS YIELD name WHERE name CONTAINS $l", l=label.lower())
    assert records == []
