"""What each client may reach, decided before it is built (``reconcile.reach``), and who owns an object.

Pure tables: Postgres DSNs and Redis URLs read for their endpoints and for options that
would make a driver use the operator's own files or identity; S3's default endpoint and
its credentials rule; the ownership verdicts every provisioner applies; the check reasons
the runner carries from a source's error; the Provisioned summary of Foreign objects.
The resolver is this test's (names ending ``.test`` resolve to one address).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from payscope_operator import errors
from payscope_operator.api import spec, status, stores_spec
from payscope_operator.audit import registry, runner
from payscope_operator.backends import base, ownership
from payscope_operator.egress import policy
from payscope_operator.reconcile import provision, reach

TESTENV = policy.Policy.from_settings("127.0.0.1/32")


async def _to(address: str) -> policy.Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        return [address]

    return resolve


# ---- Postgres ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://u:p@db.test:6432/payscope", [("db.test", 6432)]),
        ("postgresql://u:p@a.test,b.test:7000/x", [("a.test", 5432), ("b.test", 7000)]),
        ("host=a.test,b.test port=1,2 dbname=x", [("a.test", 1), ("b.test", 2)]),
        ("host=db.test hostaddr=10.0.0.5 dbname=x", [("10.0.0.5", 5432)]),  # libpq connects to hostaddr
    ],
)
def test_postgres_endpoints(dsn: str, expected: list[tuple[str, int]]) -> None:
    endpoints, _ = reach.postgres_endpoints(dsn, "spec.postgres.connection.secretRef", ambient=False)
    assert [(e.host, e.port) for e in endpoints] == expected
    assert {e.field for e in endpoints} == {"spec.postgres.connection.secretRef"}


@pytest.mark.parametrize(
    ("dsn", "error", "words"),
    [
        ("host=/var/run/postgresql dbname=x", errors.EgressDenied, "Unix-domain socket"),
        ("dbname=x", errors.EgressDenied, "names no host"),
        ("host=db.test passfile=/etc/payscope/pgpass", errors.CredentialsRequired, "passfile"),
        ("host=db.test sslkey=/var/run/secrets/key sslcert=/c", errors.CredentialsRequired, "sslcert"),
        ("host=db.test service=payscope", errors.CredentialsRequired, "service"),
        ("host=db.test gssencmode=require", errors.CredentialsRequired, "Kerberos"),
        ("postgresql:/u:s3cr3t@db/x", errors.SpecInvalid, "not a libpq connection string"),
    ],
)
def test_postgres_dsns_that_reach_beyond_the_namespace(dsn: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words) as caught:
        reach.postgres_endpoints(dsn, "spec.postgres.connection.secretRef", ambient=False)
    assert "s3cr3t" not in str(caught.value)


def test_ambient_credentials_allow_the_operators_files() -> None:
    endpoints, _ = reach.postgres_endpoints("host=db.test passfile=/etc/pgpass", "f", ambient=True)
    assert [e.host for e in endpoints] == ["db.test"]


async def test_postgres_connects_to_the_checked_address_and_never_to_ambient_sources() -> None:
    extra = await reach.postgres_params(
        TESTENV, "postgresql://u@db.test/x", "f", ambient=False, resolver=await _to("127.0.0.1")
    )
    assert extra == {"hostaddr": "127.0.0.1", "password": "", **reach.POSTGRES_NO_AMBIENT}
    given = await reach.postgres_params(TESTENV, "postgresql://u:pw@127.0.0.1/x", "f", ambient=True)
    assert given == {"hostaddr": "127.0.0.1"}
    with pytest.raises(errors.EgressDenied, match=r"f: db\.test:5432 resolves to 127\.0\.0\.2"):
        await reach.postgres_params(
            TESTENV, "postgresql://u@db.test/x", "f", ambient=False, resolver=await _to("127.0.0.2")
        )


# ---- Redis, Neo4j, S3 ----------------------------------------------------------------------------


async def test_redis_plain_tcp_goes_to_the_checked_address_and_tls_keeps_the_name() -> None:
    resolver = await _to("127.0.0.1")
    pinned = await reach.redis_url(TESTENV, "redis://:pw@cache.test:6380/2", "f", ambient=False, resolver=resolver)
    assert pinned == "redis://:pw@127.0.0.1:6380/2"
    tls = await reach.redis_url(TESTENV, "rediss://:pw@cache.test/0", "f", ambient=False, resolver=resolver)
    assert tls == "rediss://:pw@cache.test/0"


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("unix:///run/redis.sock", errors.EgressDenied),
        ("rediss://cache.test/0?ssl_keyfile=/etc/key", errors.CredentialsRequired),
        ("redis:///0?host=169.254.169.254", errors.SpecInvalid),  # redis-py would take the host from the query
        ("redis://:pw@169.254.169.254/0", errors.EgressDenied),
    ],
)
async def test_redis_urls_that_reach_beyond_the_namespace(url: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        await reach.redis_url(policy.Policy(), url, "spec.redis.connection.secretRef", ambient=False)


async def test_neo4j_routing_addresses_are_checked_and_named() -> None:
    check = reach.neo4j_check(TESTENV, "neo4j://graph.test:7687", resolver=await _to("127.0.0.2"))
    with pytest.raises(errors.EgressDenied, match=r"spec\.neo4j\.connection\.uri \(routing address core-2\.test\)"):
        await check("core-2.test", 7687)


def test_s3_defaults_to_the_regional_aws_endpoint_and_needs_credentials() -> None:
    storage = stores_spec.ObjectStorage.model_validate({"region": "eu-west-1", "buckets": [{"name": "payscope-x"}]})
    endpoint = reach.s3_endpoint(storage)
    assert (endpoint.host, endpoint.port) == ("s3.eu-west-1.amazonaws.com", 443)
    with pytest.raises(errors.CredentialsRequired, match=r"spec\.objectStorage\.credentialsSecretRef"):
        reach.require_s3_credentials(storage, ambient=False)
    reach.require_s3_credentials(storage, ambient=True)


def test_the_s3_hook_checks_every_request_host() -> None:
    @dataclass
    class Request:
        url: str

    guard = reach.s3_guard(policy.Policy())
    guard(Request("http://10.0.0.9:9000/bucket"))
    with pytest.raises(errors.EgressDenied):
        guard(Request("http://169.254.169.254/latest/meta-data/iam"))


# ---- ownership -----------------------------------------------------------------------------------

OWNER = ownership.Owner("uid-1", "payscope", "prod")


@pytest.mark.parametrize(
    ("mark", "adopt", "standing"),
    [
        (ownership.Mark("uid-1", "payscope/prod"), False, ownership.Standing.OURS),
        (ownership.Mark("uid-1", None), False, ownership.Standing.OURS),
        (ownership.Mark(), False, ownership.Standing.FOREIGN),
        (ownership.Mark(), True, ownership.Standing.MIGRATE),
        (ownership.Mark(legacy=True), False, ownership.Standing.MIGRATE),
        (ownership.Mark("uid-2", "team/other"), True, ownership.Standing.OWNED_ELSEWHERE),
        (ownership.Mark("uid-2", None), False, ownership.Standing.OWNED_ELSEWHERE),
        (ownership.Mark("uid-0", "payscope/prod"), False, ownership.Standing.OWNED_ELSEWHERE),  # an earlier incarnation
        (ownership.Mark("uid-0", "payscope/prod"), True, ownership.Standing.MIGRATE),
    ],
)
def test_judge(mark: ownership.Mark, adopt: bool, standing: ownership.Standing) -> None:
    verdict = ownership.judge(OWNER, mark, adopt=adopt)
    assert verdict.standing is standing
    assert verdict.manage is (standing in (ownership.Standing.OURS, ownership.Standing.MIGRATE))
    if standing is ownership.Standing.OWNED_ELSEWHERE:
        assert (mark.resource or mark.uid or "") in verdict.owner


def test_without_a_uid_the_standalone_audit_knows_its_objects_by_name() -> None:
    standalone = ownership.Owner("", "payscope", "prod")
    assert ownership.judge(standalone, ownership.Mark("uid-1", "payscope/prod"), adopt=False).standing is (
        ownership.Standing.OURS
    )
    assert ownership.judge(standalone, ownership.Mark("uid-2", "team/other"), adopt=False).standing is (
        ownership.Standing.OWNED_ELSEWHERE
    )


def test_comments_round_trip_and_a_strangers_comment_is_no_mark() -> None:
    assert ownership.parse_comment(ownership.comment_of(OWNER), legacy=True) == ownership.Mark.of(OWNER)
    assert ownership.parse_comment(None, legacy=True) == ownership.Mark(legacy=True)
    assert ownership.parse_comment("DBA: do not touch", legacy=True) == ownership.Mark()


# ---- what the runner and the summary make of it ---------------------------------------------------


@dataclass
class _Session:
    spec: spec.PayScopeSpec


@pytest.mark.parametrize(
    ("error", "reason", "check_status"),
    [
        (errors.EgressDenied("spec.api.url: denied"), "EgressDenied", status.CheckStatus.UNKNOWN),
        (errors.CredentialsRequired("spec.objectStorage.credentialsSecretRef"), "CredentialsRequired", "Unknown"),
        (errors.ResponseTooLarge("spec.api.url: too large"), "ResponseTooLarge", "Unknown"),
        (errors.DependencyUnavailable("refused"), "SourceUnavailable", "Fail"),  # a reachability check fails
    ],
)
def test_a_sources_error_carries_its_reason_to_its_checks(error: Exception, reason: str, check_status: str) -> None:
    async def gather(_: Any) -> int:
        raise error

    source = registry.Source("s", gather, lambda s: True, "absent")
    checks = registry.Registry()
    checks.check(
        "A.dependencies.x", source=source, severity=status.Severity.HIGH, grade=registry.Grade.OBSERVED,
        title="t", passes_when="p", fails_when_unreachable=True,
    )(lambda value, desired: registry.Finding.passed("ok"))  # fmt: skip
    report = asyncio.run(runner.run(checks, _Session(spec.PayScopeSpec()), today=datetime.date(2026, 1, 1)))
    (result,) = report.results
    assert (result.reason, result.status) == (reason, check_status)
    assert reach.stalled_by(report.results) == (
        (reason, result.message) if reason in ("EgressDenied", "CredentialsRequired") else None
    )


def test_foreign_objects_that_differ_are_drift_and_matching_ones_are_provisioned() -> None:
    def outcome(matches: bool) -> provision.Outcome:
        foreign = base.ObjectState("Bucket", "b", status.ProvisionState.FOREIGN, message="not ours", matches=matches)
        ready = base.ObjectState("Bucket", "a", status.ProvisionState.READY)
        return provision.Outcome(plans=[base.Plan("objectStorage", objects=(ready, foreign))])

    differing = outcome(matches=False)
    assert (differing.summary(managed=True).reason, differing.summary(managed=True).status) == (
        "DriftDetected",
        status.ConditionStatus.FALSE,
    )
    assert differing.foreign() == ["objectStorage: leave Bucket b as found (Foreign: not ours)"]
    matching = outcome(matches=True).summary(managed=True)
    assert (matching.reason, matching.status) == ("Provisioned", status.ConditionStatus.TRUE)
    assert "1 of them Foreign" in matching.message


# ---- the flags ---------------------------------------------------------------------------------


def test_the_run_flags_default_to_no_lending_and_a_one_mib_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    from payscope_operator import cli

    for name in ("PAYSCOPE_ALLOWED_EGRESS", "PAYSCOPE_ALLOW_AMBIENT_CREDENTIALS", "PAYSCOPE_MAX_RESPONSE_BYTES"):
        monkeypatch.delenv(name, raising=False)
    args = cli.parser().parse_args(["run"])
    assert (args.allowed_egress, args.allow_ambient_credentials, args.max_response_bytes) == ("", False, 1 << 20)
    monkeypatch.setenv("PAYSCOPE_ALLOW_AMBIENT_CREDENTIALS", "true")
    monkeypatch.setenv("PAYSCOPE_ALLOWED_EGRESS", "10.0.0.0/8")
    args = cli.parser().parse_args(["run", "--max-response-bytes", "2048"])
    assert (args.allowed_egress, args.allow_ambient_credentials, args.max_response_bytes) == ("10.0.0.0/8", True, 2048)
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["run", "--max-response-bytes", "0"])


def test_an_unreadable_allowlist_stops_the_operator_before_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    from payscope_operator import cli

    with pytest.raises(SystemExit, match="PAYSCOPE_ALLOWED_EGRESS: 'http://x'"):
        cli.main(["run", "--allowed-egress", "http://x"])
