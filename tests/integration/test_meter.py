"""The meter counts exactly what a client sent, on every server of the test environment.

``test_pass_cost`` trusts ``tests.testenv.meter``; this module earns that trust:
for each system it sends a known set of statements or requests and asserts the
meter's delta is exactly that set: nothing more (the meter's own reads are
taken out, other databases and users are not counted) and nothing less.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import neo4j
import psycopg
import pytest
import redis
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from psycopg.conninfo import conninfo_to_dict

from tests import installation
from tests.testenv import meter, process
from tests.testenv import s3 as testenv_s3


@pytest.fixture
def counter(testenv: dict[str, str], pg_dsn: str) -> Iterator[meter.Meter]:
    database = conninfo_to_dict(pg_dsn)["dbname"]
    with meter.Meter.from_env(testenv, postgres_database=str(database)) as found:
        yield found


def test_postgres_counts_each_statement_of_its_database_only(
    testenv: dict[str, str], pg_dsn: str, counter: meter.Meter
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("SELECT 1")  # a statement of the connection's first use, before the window
        before = counter.snapshot()
        conn.execute("SELECT 1")
        conn.execute("SELECT %s::int", (2,))
        with conn.transaction():
            conn.execute("SELECT %s::int", (3,))
    with psycopg.connect(testenv["PAYSCOPE_PG_DSN"], autocommit=True) as other:
        other.execute("SELECT 1")  # another database: not counted
    assert counter.delta(before)["postgres"] == Counter({"SELECT $1": 1, "SELECT $1::int": 2, "BEGIN": 1, "COMMIT": 1})


def test_timescale_counts_simple_and_extended_protocol_statements(
    testenv: dict[str, str], counter: meter.Meter
) -> None:
    with psycopg.connect(testenv["PAYSCOPE_TIMESCALE_DSN"], autocommit=True, connect_timeout=30) as conn:
        before = counter.snapshot()
        conn.execute("SELECT 1")
        conn.execute("SELECT %s::text", ("x" * 40_000,))  # one Execute, however long
        with conn.transaction():
            conn.execute("SELECT %s::int", (3,))
        delta = counter.delta(before)["timescale"]
    assert delta == Counter({"Query": 3, "Execute": 2})  # Query: SELECT 1, BEGIN, COMMIT


def test_neo4j_counts_transactions_per_database(testenv: dict[str, str], counter: meter.Meter) -> None:
    auth = (testenv["PAYSCOPE_NEO4J_USER"], testenv["PAYSCOPE_NEO4J_PASSWORD"])
    with neo4j.GraphDatabase.driver(testenv["PAYSCOPE_NEO4J_URI"], auth=auth) as driver:
        driver.execute_query("RETURN 1", database_="neo4j")  # opens (and logs in) the connection first
        before = counter.snapshot()
        driver.execute_query("RETURN 1", database_="neo4j")
        driver.execute_query("SHOW INDEXES YIELD name RETURN count(*)", database_="neo4j")
        with driver.session(database="neo4j") as session, session.begin_transaction() as tx:
            tx.run("RETURN 1").consume()
            tx.run("RETURN 2").consume()
            tx.commit()
        assert counter.delta(before)["neo4j"] == Counter({"neo4j": 3})


def test_redis_counts_commands_without_the_meters_info(testenv: dict[str, str], counter: meter.Meter) -> None:
    client = redis.Redis.from_url(testenv["PAYSCOPE_REDIS_URL"], socket_timeout=5)
    try:
        client.ping()
        before = counter.snapshot()
        client.ping()
        client.type("payscope:meter:absent")
        client.info("server")
        assert counter.delta(before)["redis"] == Counter({"ping": 1, "type": 1, "info": 1})
    finally:
        client.close()


def test_s3_counts_requests_by_method_bucket_and_status(
    testenv: dict[str, str], counter: meter.Meter, bucket_name: str
) -> None:
    s3 = testenv_s3.client(testenv, attempts=1)
    before = counter.snapshot()
    s3.create_bucket(Bucket=bucket_name)
    s3.get_bucket_versioning(Bucket=bucket_name)
    with pytest.raises(s3.exceptions.ClientError):
        s3.get_bucket_policy(Bucket=bucket_name)
    expected = {f"PUT {bucket_name} 200": 1, f"GET {bucket_name} 200": 1, f"GET {bucket_name} 404": 1}
    assert counter.delta(before)["s3"] == Counter(expected)


def test_pinecone_counts_api_requests(testenv: dict[str, str], counter: meter.Meter) -> None:
    headers = {"Api-Key": testenv["PAYSCOPE_PINECONE_API_KEY"], "X-Pinecone-Api-Version": "2025-10"}
    before = counter.snapshot()
    for _ in range(2):
        assert httpx.get(f"{testenv['PAYSCOPE_PINECONE_URL']}/indexes", headers=headers, timeout=10).status_code == 200
    assert counter.delta(before)["pinecone"] == Counter({"GET /indexes": 2})


def test_payscope_api_counts_requests_without_the_meters_scrapes(testenv: dict[str, str], tmp_path: Path) -> None:
    pid, url = installation.start_api(secrets.token_urlsafe(32), tmp_path / "api.log")
    try:
        with meter.Meter.from_env(testenv, api_url=url, systems=("payscope_api",)) as counter:
            before = counter.snapshot()
            for path in ("/healthz", "/healthz", "/metrics"):
                httpx.get(f"{url}{path}", timeout=10).raise_for_status()
            assert counter.delta(before)["payscope_api"] == Counter({"GET /healthz 200": 2, "GET /metrics 200": 1})
    finally:
        process.stop(pid)


def test_kubernetes_counts_reads_and_writes_of_the_metered_user_only(
    testenv: dict[str, str], kube_api: k8s.ApiClient, namespace: str, counter: meter.Meter
) -> None:
    metered = k8s_config.new_client_from_config(config_file=testenv["PAYSCOPE_KUBE_METERED_KUBECONFIG"])
    try:
        before = counter.snapshot()
        core = k8s.CoreV1Api(metered)
        core.read_namespace(namespace)
        core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="meter")))
        k8s.CoreV1Api(kube_api).read_namespace(namespace)  # as admin: not counted
        assert counter.delta(before)["kubernetes"] == Counter({"get namespaces": 1, "create configmaps": 1})
    finally:
        metered.close()


def test_a_window_in_which_postgres_evicted_statistics_is_refused(counter: meter.Meter) -> None:
    before = counter.snapshot()
    before["postgres"][meter.EVICTED] -= 1  # as if pg_stat_statements had deallocated entries since
    with pytest.raises(meter.MeterError, match="evicted"):
        counter.delta(before)
