"""Ownership through whole passes: what a resource did not create it observes and never changes.

Each test runs reconcile passes in this process (``local_pass``) against the real
servers of the test environment, with two resources of different uids where it matters:

- a bucket made by hand (versioning off, a policy and a lifecycle rule of its own) stays
  exactly as it was while the resource declares versioning, a public-access block and
  lifecycle rules; ``status.provisioned`` and ``status.plan`` show it Foreign, and
  ``adopt: true`` takes it over (the owner tags appear, the settings follow);
- a second resource declaring a bucket, an RLS policy or a Neo4j constraint that a first
  one created is Stalled with OwnedByAnotherResource naming the first, and changes nothing;
- an RLS policy an earlier operator version created (no comment) is migrated: the
  first pass records the resource in its comment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import neo4j
import psycopg
import pytest

from payscope_operator.api import status
from payscope_operator.backends import ownership
from tests.integration import local_pass
from tests.testenv import s3 as testenv_s3

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FIRST = "11111111-0000-4000-8000-000000000001"
SECOND = "22222222-0000-4000-8000-000000000002"
FOREIGN = status.ProvisionState.FOREIGN


@pytest.fixture
def s3_raw(testenv: dict[str, str]) -> S3Client:
    return testenv_s3.client(testenv)


@pytest.fixture
def buckets(s3_raw: S3Client) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        s3_raw.delete_bucket(Bucket=name)


def _s3(testenv: dict[str, str], bucket: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    spec = {
        "objectStorage": {
            "endpoint": testenv["PAYSCOPE_S3_ENDPOINT"],
            "forcePathStyle": True,
            "credentialsSecretRef": {"name": "s3"},
            "buckets": [bucket],
        }
    }
    secret = {"accessKeyId": testenv["PAYSCOPE_S3_ACCESS_KEY"], "secretAccessKey": testenv["PAYSCOPE_S3_SECRET_KEY"]}
    return spec, {"s3": secret}


def _bucket_settings(raw: S3Client, name: str) -> tuple[str | None, str, list[dict[str, Any]]]:
    versioning = raw.get_bucket_versioning(Bucket=name).get("Status")
    policy = raw.get_bucket_policy(Bucket=name)["Policy"]
    rules = raw.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    return versioning, policy, [dict(rule) for rule in rules]


def _tags(raw: S3Client, name: str) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in raw.get_bucket_tagging(Bucket=name)["TagSet"]}


async def test_a_bucket_made_by_hand_is_left_untouched_until_adopted(
    testenv: dict[str, str], s3_raw: S3Client, bucket_name: str, buckets: list[str]
) -> None:
    buckets.append(bucket_name)
    s3_raw.create_bucket(Bucket=bucket_name)
    statement = {"Sid": "TeamRead", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject",
                 "Resource": f"arn:aws:s3:::{bucket_name}/*",
                 "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}  # fmt: skip
    s3_raw.put_bucket_policy(Bucket=bucket_name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))
    rule: Any = {"ID": "team-expiry", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 3}}
    s3_raw.put_bucket_lifecycle_configuration(Bucket=bucket_name, LifecycleConfiguration={"Rules": [rule]})
    before = _bucket_settings(s3_raw, bucket_name)
    declared = {"name": bucket_name, "versioning": True, "blockPublicAccess": True,
                "lifecycle": {"noncurrentVersionExpirationDays": 30}}  # fmt: skip
    spec, secrets = _s3(testenv, declared)

    outcome = await local_pass.run_passes(spec, secrets, passes=2, uid=FIRST)

    assert _bucket_settings(s3_raw, bucket_name) == before  # versioning still off, policy and lifecycle as they were
    assert before[0] is None
    provisioned = outcome.status.provisioned
    assert provisioned is not None
    (bucket,) = [o for o in provisioned.object_storage if o.kind == "Bucket"]
    assert bucket.state is FOREIGN
    assert bucket.message is not None
    assert "versioning Enabled" in bucket.message  # what Full management would have done
    assert any(
        line.startswith(f"objectStorage: leave Bucket {bucket_name} as found (Foreign") for line in outcome.status.plan
    )
    condition = outcome.condition("Provisioned")
    assert (condition.status, condition.reason) == (status.ConditionStatus.FALSE, "DriftDetected")
    assert outcome.condition("Stalled").status is status.ConditionStatus.FALSE  # foreign is not a fault

    adopted = await local_pass.run_passes(_s3(testenv, {**declared, "adopt": True})[0], secrets, passes=2, uid=FIRST)

    versioning, policy, rules = _bucket_settings(s3_raw, bucket_name)
    assert versioning == "Enabled"
    assert "TeamRead" in policy  # a foreign statement stays, even in an adopted bucket
    assert {r["ID"] for r in rules} == {"team-expiry", "payscope-noncurrent-version-expiration"}
    tags = _tags(s3_raw, bucket_name)
    assert (tags[ownership.OWNER_UID_TAG], tags[ownership.OWNER_TAG]) == (FIRST, f"{local_pass.NAMESPACE}/psd")
    assert adopted.condition("Provisioned").reason in ("Provisioned", "NotImplementedByEndpoint")
    assert adopted.status.plan == ()


async def test_a_second_resource_declaring_the_same_bucket_is_refused(
    testenv: dict[str, str], s3_raw: S3Client, bucket_name: str, buckets: list[str]
) -> None:
    buckets.append(bucket_name)
    first_spec, secrets = _s3(testenv, {"name": bucket_name, "versioning": True})
    await local_pass.run_passes(first_spec, secrets, uid=FIRST, name="first")
    assert s3_raw.get_bucket_versioning(Bucket=bucket_name)["Status"] == "Enabled"
    second_spec, _ = _s3(testenv, {"name": bucket_name, "versioning": False, "adopt": True})

    second = await local_pass.run_passes(second_spec, secrets, passes=2, uid=SECOND, name="second")

    stalled = second.condition("Stalled")
    assert (stalled.status, stalled.reason) == (status.ConditionStatus.TRUE, "OwnedByAnotherResource")
    assert f"{local_pass.NAMESPACE}/first" in stalled.message
    assert FIRST in stalled.message
    assert s3_raw.get_bucket_versioning(Bucket=bucket_name)["Status"] == "Enabled"  # the second changed nothing
    assert _tags(s3_raw, bucket_name)[ownership.OWNER_UID_TAG] == FIRST


def _pg(dsn: str, table: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    spec = {
        "tenancy": {"tenantKey": "bank_id"},
        "postgres": {"connection": {"secretRef": {"name": "pg", "key": "dsn"}}, "tables": [table]},
    }
    return spec, {"pg": {"dsn": dsn}}


def _policy(dsn: str) -> tuple[str | None, bool, str | None]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT obj_description(p.oid, 'pg_policy'), c.relforcerowsecurity, pg_get_expr(p.polqual, p.polrelid)"
            " FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE p.polname = 'payscope_tenant_isolation'"
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


async def test_rls_another_resource_created_is_never_changed_and_an_earlier_versions_is_migrated(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE tx (id bigint PRIMARY KEY, bank_id text NOT NULL)")
    table = {"name": "tx", "rowLevelSecurity": {"enabled": True, "force": True}}
    await local_pass.run_passes(*_pg(pg_dsn, table), uid=FIRST, name="first")
    comment, forced, using = _policy(pg_dsn)
    assert comment == f"payscope-operator owner-uid={FIRST} owner={local_pass.NAMESPACE}/first"
    assert forced

    second = await local_pass.run_passes(
        *_pg(pg_dsn, {**table, "rowLevelSecurity": {"enabled": True, "force": False}, "adopt": True}),
        passes=2,
        uid=SECOND,
        name="second",
    )

    assert _policy(pg_dsn) == (comment, True, using)  # not even NO FORCE: the RLS flags belong with the policy
    assert second.condition("Stalled").reason == "OwnedByAnotherResource"
    provisioned = second.status.provisioned
    assert provisioned is not None
    assert {o.kind: o.state for o in provisioned.postgres} == {"RowLevelSecurity": FOREIGN, "Policy": FOREIGN}

    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # as an earlier operator version left it
        conn.execute("COMMENT ON POLICY payscope_tenant_isolation ON tx IS NULL")
    migrated = await local_pass.run_passes(*_pg(pg_dsn, table), uid=FIRST, name="first")
    assert _policy(pg_dsn)[0] == comment
    assert migrated.condition("Provisioned").reason == "Provisioned"


async def test_a_second_resource_declaring_the_same_constraint_is_refused(
    testenv: dict[str, str], graph_prefix: str
) -> None:
    label = f"{graph_prefix}Transaction"
    spec = {
        "neo4j": {
            "connection": {"uri": testenv["PAYSCOPE_NEO4J_URI"], "secretRef": {"name": "neo4j"}},
            "constraints": [{"label": label, "properties": ["id"]}],
        },
        "deletionPolicy": "Delete",
    }
    secrets = {"neo4j": {"username": testenv["PAYSCOPE_NEO4J_USER"], "password": testenv["PAYSCOPE_NEO4J_PASSWORD"]}}
    name = f"payscope_{label.lower()}_id_unique"
    auth = (testenv["PAYSCOPE_NEO4J_USER"], testenv["PAYSCOPE_NEO4J_PASSWORD"])
    with neo4j.GraphDatabase.driver(testenv["PAYSCOPE_NEO4J_URI"], auth=auth) as driver:
        try:
            await local_pass.run_passes(spec, secrets, uid=FIRST, name="first")
            marker = "MATCH (m:PayScopeOwnership {object: $o}) RETURN m.uid AS uid, m.resource AS resource"
            assert driver.execute_query(marker, o=name).records[0].data() == {
                "uid": FIRST, "resource": f"{local_pass.NAMESPACE}/first"
            }  # fmt: skip
            constraint_ids = "SHOW CONSTRAINTS YIELD id, name WHERE name = $o RETURN id"
            (before,) = driver.execute_query(constraint_ids, o=name).records

            second = await local_pass.run_passes(spec, secrets, passes=2, uid=SECOND, name="second")

            stalled = second.condition("Stalled")
            assert (stalled.status, stalled.reason) == (status.ConditionStatus.TRUE, "OwnedByAnotherResource")
            assert f"{local_pass.NAMESPACE}/first" in stalled.message
            assert driver.execute_query(constraint_ids, o=name).records == [before]  # never dropped or recreated
            provisioned = second.status.provisioned
            assert provisioned is not None
            assert [o.state for o in provisioned.neo4j] == [FOREIGN]
            assert next(c for c in second.status.checks if c.id == "B.neo4j.constraints").status is (
                status.CheckStatus.PASS
            )  # audited as present, whoever owns it
        finally:
            driver.execute_query(f"DROP CONSTRAINT `{name}` IF EXISTS")
            driver.execute_query("MATCH (m:PayScopeOwnership {object: $o}) DELETE m", o=name)
