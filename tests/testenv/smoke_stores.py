"""Checks that the stores of the test environment are real, and that every server listens on loopback only.

Postgres: forced RLS binds a non-owner role to its bank's rows. Redis: a list
round-trips. S3 (SeaweedFS): a bucket policy refuses an anonymous GET, versioning
keeps two versions. Neo4j: a uniqueness constraint is listed and refuses a duplicate,
unknown credentials are refused. Every process of the environment listens on
127.0.0.1 and nowhere else. Run by ``python -m tests.testenv check`` (``check``).

What it must not do: leave a database, role, key, bucket, constraint or node behind.
"""

from __future__ import annotations

import json

import httpx
import neo4j
import psycopg
import redis
from neo4j.exceptions import AuthError, ConstraintError
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.testenv import check, environment, s3, sockets


def forced_rls_shows_a_role_only_its_bank(ctx: check.Context) -> None:
    admin_dsn, database, role = ctx.env["PAYSCOPE_PG_DSN"], ctx.unique("smoke_"), ctx.unique("smoke_app_")
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'smoke-pass-1'").format(sql.Identifier(role)))

    def drop() -> None:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))

    ctx.later(drop)
    dsn = make_conninfo(admin_dsn, dbname=database)
    with psycopg.connect(dsn, autocommit=True) as owner:
        owner.execute("CREATE TABLE tx (id serial PRIMARY KEY, bank_id text NOT NULL, amount int)")
        owner.execute("INSERT INTO tx (bank_id, amount) VALUES ('bank-a', 1), ('bank-a', 2), ('bank-b', 3)")
        owner.execute("ALTER TABLE tx ENABLE ROW LEVEL SECURITY")
        owner.execute("ALTER TABLE tx FORCE ROW LEVEL SECURITY")
        owner.execute(
            "CREATE POLICY iso ON tx USING (bank_id = current_setting('app.current_bank_id', true))"
            " WITH CHECK (bank_id = current_setting('app.current_bank_id', true))"
        )
        owner.execute(sql.SQL("GRANT SELECT, INSERT ON tx TO {}").format(sql.Identifier(role)))
        owner.execute(sql.SQL("GRANT USAGE ON SEQUENCE tx_id_seq TO {}").format(sql.Identifier(role)))
    with psycopg.connect(make_conninfo(dsn, user=role, password="smoke-pass-1")) as app:
        app.execute("SELECT set_config('app.current_bank_id', 'bank-a', false)")
        rows = app.execute("SELECT bank_id, amount FROM tx ORDER BY amount").fetchall()
        assert rows == [("bank-a", 1), ("bank-a", 2)], rows
        check.raises(
            psycopg.errors.InsufficientPrivilege,
            lambda: app.execute("INSERT INTO tx (bank_id, amount) VALUES ('bank-b', 9)"),
        )


def redis_list_length_round_trips(ctx: check.Context) -> None:
    client = redis.Redis.from_url(ctx.env["PAYSCOPE_REDIS_URL"], socket_timeout=5)
    ctx.later(client.close)
    key = ctx.unique("smoke:") + ":dlq"
    ctx.later(lambda: client.delete(key))
    client.rpush(key, "a", "b", "c")
    assert client.llen(key) == 3


def _bucket(ctx: check.Context) -> str:
    """A bucket of the check's own, deleted with every object version afterwards."""
    client, name = s3.client(ctx.env), ctx.unique("payscope-smoke-")
    client.create_bucket(Bucket=name)

    def remove() -> None:
        listed = client.list_object_versions(Bucket=name)
        for version in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]:
            client.delete_object(Bucket=name, Key=version["Key"], VersionId=version["VersionId"])
        client.delete_bucket(Bucket=name)

    ctx.later(remove)
    return name


def s3_bucket_policy_refuses_an_anonymous_get(ctx: check.Context) -> None:
    client, bucket = s3.client(ctx.env), _bucket(ctx)
    client.put_object(Bucket=bucket, Key="k", Body=b"secret")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyAnonymous",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
                "Condition": {"StringEquals": {"aws:PrincipalType": "Anonymous"}},
            }
        ],
    }
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    anonymous = httpx.get(f"{ctx.env['PAYSCOPE_S3_ENDPOINT']}/{bucket}/k", timeout=10)
    assert anonymous.status_code == 403, anonymous.status_code
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"secret"


def s3_versioning_keeps_two_versions(ctx: check.Context) -> None:
    client, bucket = s3.client(ctx.env), _bucket(ctx)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=bucket, Key="k", Body=b"one")
    client.put_object(Bucket=bucket, Key="k", Body=b"two")
    assert len(client.list_object_versions(Bucket=bucket, Prefix="k")["Versions"]) == 2
    assert client.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def _neo4j(ctx: check.Context, user: str | None = None, password: str | None = None) -> neo4j.Driver:
    auth = (user or ctx.env["PAYSCOPE_NEO4J_USER"], password or ctx.env["PAYSCOPE_NEO4J_PASSWORD"])
    driver = neo4j.GraphDatabase.driver(ctx.env["PAYSCOPE_NEO4J_URI"], auth=auth, connection_timeout=5)
    ctx.later(driver.close)
    return driver


def neo4j_uniqueness_constraint_is_listed_and_refuses_a_duplicate(ctx: check.Context) -> None:
    driver = _neo4j(ctx)
    label = "T" + ctx.unique("") + "Account"
    name = f"{label.lower()}_iban_unique"
    ctx.later(lambda: driver.execute_query(f"DROP CONSTRAINT {name} IF EXISTS"))
    ctx.later(lambda: driver.execute_query(f"MATCH (n:{label}) DETACH DELETE n"))
    driver.execute_query(f"CREATE CONSTRAINT {name} IF NOT EXISTS FOR (n:{label}) REQUIRE n.iban IS UNIQUE")
    records, _, _ = driver.execute_query(
        "SHOW CONSTRAINTS YIELD name, type, entityType, labelsOrTypes, properties WHERE name = $name", name=name
    )
    expected = {
        "name": name,
        "type": "UNIQUENESS",
        "entityType": "NODE",
        "labelsOrTypes": [label],
        "properties": ["iban"],
    }
    assert [record.data() for record in records] == [expected], records
    driver.execute_query(f"CREATE (:{label} {{iban: 'DE001'}})")
    check.raises(ConstraintError, lambda: driver.execute_query(f"CREATE (:{label} {{iban: 'DE001'}})"))
    records, _, _ = driver.execute_query(f"MATCH (n:{label}) RETURN count(n) AS nodes")
    assert records[0]["nodes"] == 1


def neo4j_refuses_unknown_credentials(ctx: check.Context) -> None:
    check.raises(AuthError, _neo4j(ctx, "nobody", "not-the-password").verify_connectivity)


def every_server_listens_on_loopback_only(ctx: check.Context) -> None:
    state = environment.load()
    assert state is not None
    listening: dict[str, list[str]] = {}
    for running in state:
        for pid in running.pids:
            listening.setdefault(running.name, []).extend(sockets.listening(pid))
    assert all(listening.values()), listening  # each component listens somewhere
    outside = {
        name: [a for a in addresses if not a.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:"))]
        for name, addresses in listening.items()
    }
    assert {name: a for name, a in outside.items() if a} == {}, outside
    bolt = environment.running("neo4j")
    assert sockets.listening(bolt.pids[0]) == [bolt.env["PAYSCOPE_NEO4J_URI"].removeprefix("bolt://")]


CHECKS = (
    forced_rls_shows_a_role_only_its_bank,
    redis_list_length_round_trips,
    s3_bucket_policy_refuses_an_anonymous_get,
    s3_versioning_keeps_two_versions,
    neo4j_uniqueness_constraint_is_listed_and_refuses_a_duplicate,
    neo4j_refuses_unknown_credentials,
    every_server_listens_on_loopback_only,
)
